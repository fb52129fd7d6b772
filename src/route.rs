//! [`Route`]: which path carried a message. Below the error type, which
//! records the route that produced it, and below every backend.

use std::fmt;

/// The path that carried a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// RabbitMQ over AMQP 0-9-1.
    Amqp,
    /// `POST /message` over HTTP.
    Http,
    /// The in-process [`MemoryTransport`](crate::MemoryTransport).
    Memory,
}

impl Route {
    /// Every route, in declaration order: `Route::ALL[r as usize] == r`.
    pub const ALL: [Route; 3] = [Self::Amqp, Self::Http, Self::Memory];

    /// `"amqp"`, `"http"` or `"memory"`: metric labels and log fields.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Amqp => "amqp",
            Self::Http => "http",
            Self::Memory => "memory",
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

//! [`ErrorKind`]: what happened.

use std::fmt;

use super::ErrorClass;

macro_rules! error_kinds {
    ($($(#[$doc:meta])* $kind:ident => $name:literal,)*) => {
        /// What happened.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $($(#[$doc])* $kind,)*
        }

        impl ErrorKind {
            /// Every kind, in declaration order.
            #[cfg(test)]
            pub(crate) const ALL: &[ErrorKind] = &[$(Self::$kind,)*];

            /// A short lowercase name, used in logs, metric labels and the
            /// `kind` field of error replies.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$kind => $name,)*
                }
            }

            /// Parses [`as_str`](Self::as_str)'s output, as received in error
            /// replies from a peer.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Self::$kind),)*
                    _ => None,
                }
            }
        }
    };
}

error_kinds! {
    /// No connection to the broker or peer: not yet connected, refused,
    /// reconnecting, or the peer is shutting down.
    Unavailable => "unavailable",
    /// Nothing is bound to receive for the recipient (AMQP `NO_ROUTE`,
    /// unknown recipient in the resolver, HTTP `404`).
    NoRoute => "no_route",
    /// The broker or peer refused to take the message now: broker nack,
    /// `429`, `503` from our own endpoint, connection blocked.
    Overloaded => "overloaded",
    /// A circuit breaker is open for the recipient; see
    /// [`Error::circuit_key`](crate::Error::circuit_key) and [`Error::retry_after`](crate::Error::retry_after).
    CircuitOpen => "circuit_open",
    /// No answer within the attempt timeout or the call deadline.
    Timeout => "timeout",
    /// The connection or channel was lost while the call was in flight.
    ConnectionLost => "connection_lost",
    /// The receiving handler returned an error.
    Handler => "handler",
    /// The message is not a valid Stage7 message: malformed JSON, wrong field
    /// types, missing fields, wrong content type.
    InvalidMessage => "invalid_message",
    /// Missing or wrong credentials.
    Unauthorized => "unauthorized",
    /// The TLS handshake failed: the peer's certificate is not trusted
    /// (another CA, a name it does not cover, expired) or the peer does not
    /// speak TLS. Nothing was sent.
    Tls => "tls",
    /// The encoded message exceeds the configured size limit.
    TooLarge => "too_large",
    /// The peer answered in a way the protocol does not allow (unexpected
    /// status, undecodable reply).
    Protocol => "protocol",
    /// The transport or stack was configured with invalid settings.
    Config => "config",
    /// The transport was shut down by its owner.
    Closed => "closed",
}

impl ErrorKind {
    /// What is safe to do when a peer reports an error of this kind: the
    /// class a receiver's error reply maps back to on the sender's side.
    pub const fn remote_class(self) -> ErrorClass {
        match self {
            Self::Unavailable
            | Self::NoRoute
            | Self::Overloaded
            | Self::CircuitOpen
            | Self::Tls
            | Self::Closed => ErrorClass::NotDelivered,
            Self::Timeout | Self::ConnectionLost => ErrorClass::UnknownOutcome,
            Self::Handler
            | Self::InvalidMessage
            | Self::Unauthorized
            | Self::TooLarge
            | Self::Protocol
            | Self::Config => ErrorClass::Rejected,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

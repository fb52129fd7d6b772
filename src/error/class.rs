//! [`ErrorClass`]: what is safe to do after an error.

use std::fmt;

/// What is safe to do after an error: the decision every resilience layer
/// makes is a function of this alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The message certainly did not reach a receiver: connection down before
    /// publish, broker nack, unroutable return, circuit open, connection
    /// refused, overloaded peer. Falling back and retrying are always safe.
    NotDelivered,
    /// The message may have reached a receiver: timeout after publish,
    /// connection lost with a reply pending, `5xx` after the request was sent.
    /// Repeating it is safe only because receivers de-duplicate on `id`.
    UnknownOutcome,
    /// A receiver or the input refused the message: handler error, bad input,
    /// unauthorized, too large. Repeating it cannot succeed; never retried.
    Rejected,
}

impl ErrorClass {
    /// Every class, in declaration order: `ErrorClass::ALL[c as usize] == c`.
    pub const ALL: [ErrorClass; 3] = [Self::NotDelivered, Self::UnknownOutcome, Self::Rejected];

    /// A short lowercase name, used in logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotDelivered => "not_delivered",
            Self::UnknownOutcome => "unknown_outcome",
            Self::Rejected => "rejected",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s output.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "not_delivered" => Some(Self::NotDelivered),
            "unknown_outcome" => Some(Self::UnknownOutcome),
            "rejected" => Some(Self::Rejected),
            _ => None,
        }
    }

    /// What this class can mean when a receiver claims it in an answer: an
    /// answer proves the message was delivered, so only
    /// [`Rejected`](Self::Rejected) stands; anything else is an
    /// [`UnknownOutcome`](Self::UnknownOutcome) (the receiver may have acted).
    pub(crate) const fn answered(self) -> Self {
        match self {
            Self::Rejected => Self::Rejected,
            Self::NotDelivered | Self::UnknownOutcome => Self::UnknownOutcome,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotDelivered => "not delivered",
            Self::UnknownOutcome => "outcome unknown",
            Self::Rejected => "rejected",
        })
    }
}

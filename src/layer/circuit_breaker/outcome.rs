//! How a result counts for the breaker ([`Outcome`]): its classifier.

use std::sync::Arc;

use crate::error::{Error, ErrorClass, ErrorKind};

/// How a call's result counts for the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The path works.
    Success,
    /// The path is failing.
    Failure,
    /// Says nothing about the path; a probe that ends this way frees its slot.
    Ignore,
}

pub(crate) type Classifier = Arc<dyn Fn(&Error) -> Outcome + Send + Sync>;

/// The default classification of errors:
///
/// * [`NotDelivered`](ErrorClass::NotDelivered) and
///   [`UnknownOutcome`](ErrorClass::UnknownOutcome) are failures of the path;
/// * [`Rejected`](ErrorClass::Rejected) errors are successes — a peer that
///   answers "no" is reachable — except those raised before anything was
///   sent ([`TooLarge`](ErrorKind::TooLarge), [`Config`](ErrorKind::Config)),
///   which are ignored;
/// * [`CircuitOpen`](ErrorKind::CircuitOpen) from a breaker further in is
///   ignored.
pub fn classify(error: &Error) -> Outcome {
    match (error.class(), error.kind()) {
        (_, ErrorKind::CircuitOpen | ErrorKind::TooLarge | ErrorKind::Config) => Outcome::Ignore,
        (ErrorClass::NotDelivered | ErrorClass::UnknownOutcome, _) => Outcome::Failure,
        (ErrorClass::Rejected, _) => Outcome::Success,
    }
}

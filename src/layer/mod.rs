//! The tower middleware of the stack, one folder each.
//!
//! Every layer takes and returns the crate [`Error`](crate::Error), so they
//! compose in any order without nesting error types. The order
//! [`StackBuilder`](crate::StackBuilder) assembles, outermost first:
//!
//! ```text
//! metrics (call) → deadline → retry → fallback ┬ primary:   metrics (attempt) → circuit_breaker → timeout → backend
//!                                              └ secondary: metrics (attempt) → circuit_breaker → timeout → backend
//! ```
//!
//! None of them buffers: readiness passes straight through to the backend,
//! and each response future of the call path is a named `pin-project-lite`
//! type. ([`dedup`] is for receivers, not the call path; its future is
//! boxed because a run may have to outlive its caller.)

pub mod circuit_breaker;
pub mod deadline;
pub mod dedup;
pub mod fallback;
pub mod metrics;
pub mod retry;
pub mod timeout;

/// `get_ref`, `get_mut` and `into_inner` for a wrapper whose inner service
/// is the field `inner`.
macro_rules! inner_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Unwraps the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
pub(crate) use inner_accessors;

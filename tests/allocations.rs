//! The full stack allocates nothing of its own on the success path: counted
//! with a global allocator over a backend that answers at once without
//! allocating.
#![allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; this one only counts"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use serde_json::json;
use stage7_transport::{BoxHandler, BranchBuilder, Delivery, Error, Message, Route, Stack};
use tower::{Service, ServiceExt};

/// Counts the allocations of the current thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Clone, Copy)]
struct Bare(Route);

impl Service<Message> for Bare {
    type Response = Delivery;
    type Error = Error;
    type Future = Ready<Result<Delivery, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Message) -> Self::Future {
        ready(Ok(Delivery::new(self.0, None)))
    }
}

/// Allocations of 1000 calls of `service` on this thread, after a first
/// call (which may set things up: the breaker creates a recipient's circuit
/// on its first call); `check` sees each answer.
fn allocations_per_1000_calls<S>(mut service: S, check: impl Fn(S::Response)) -> u64
where
    S: Service<Message>,
    S::Error: std::fmt::Debug,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let message = Message::request("brain", json!({"q": 1}));
        service.ready().await.unwrap();
        service.call(message.clone()).await.unwrap();
        let before = ALLOCATIONS.with(Cell::get);
        for _ in 0..1000 {
            service.ready().await.unwrap();
            check(service.call(message.clone()).await.unwrap());
        }
        ALLOCATIONS.with(Cell::get) - before
    })
}

#[test]
fn the_success_path_allocates_nothing() {
    let stack = Stack::builder(Bare(Route::Amqp))
        .primary_branch(BranchBuilder::new(Route::Amqp))
        .secondary(Bare(Route::Http))
        .secondary_branch(BranchBuilder::new(Route::Http))
        .build()
        .unwrap();
    let allocations = allocations_per_1000_calls(stack, |delivery: Delivery| {
        assert_eq!(delivery.route(), Route::Amqp);
    });
    assert_eq!(allocations, 0, "allocations over 1000 calls");
}

#[test]
fn a_boxed_handler_is_not_boxed_again() {
    let handler = tower::service_fn(|_: Message| ready(Ok::<_, Error>(None)));
    let once = allocations_per_1000_calls(BoxHandler::new(handler), drop);
    assert_eq!(once, 1000, "one boxed future per call");
    let twice = allocations_per_1000_calls(BoxHandler::new(BoxHandler::new(handler)), drop);
    assert_eq!(twice, once);
}

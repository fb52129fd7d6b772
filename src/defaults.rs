//! Every default the crate uses, in one place and under one name each.
//!
//! Builders document which of these they start from; a setting's name here
//! is its area (`AMQP_`, `HTTP_`, `SERVER_`, `RETRY_`, `BREAKER_`, …) and what
//! it bounds, so no two defaults share a name. This module imports nothing:
//! every other module may read it.
//!
//! ```
//! use std::time::Duration;
//! use stage7_transport::defaults;
//!
//! assert_eq!(defaults::CALL_DEADLINE, Duration::from_secs(30));
//! assert!(defaults::ATTEMPT_TIMEOUT < defaults::CALL_DEADLINE);
//! ```

use std::time::Duration;

// The call.

/// Overall budget of a call: 30 s, the TypeScript services' RPC timeout.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);
/// Timeout of one attempt on one branch: 10 s.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest encoded message, in both directions and on every route: 1 MiB.
pub const MAX_MESSAGE_SIZE: usize = 1024 * 1024;
/// Broker URL when nothing is configured: the local default broker.
pub const RABBITMQ_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Time running handlers get to finish when an entity or endpoint stops:
/// 10 s.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

// AMQP.

/// AMQP heartbeat, in seconds: 10, so a dead peer is noticed within ~20 s
/// even when no traffic flows.
pub const AMQP_HEARTBEAT: u16 = 10;
/// Limit on establishing a broker connection: 2 s.
pub const AMQP_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// First wait before reconnecting to the broker: 20 ms, so a dropped
/// connection is replaced at once.
pub const AMQP_RECONNECT_MIN: Duration = Duration::from_millis(20);
/// Longest wait between reconnection attempts: 500 ms (up to 1 s with
/// jitter), so a broker that returns is in use again within a second.
pub const AMQP_RECONNECT_MAX: Duration = Duration::from_millis(500);
/// Calls awaiting the broker's confirm (or a reply) at once, beyond which
/// `poll_ready` waits: 4096. The broker confirms a persistent message once
/// it is on disk, which can take a few hundred milliseconds; a request's
/// reply usually comes first, yet its permit is held until the confirm. At
/// 10 000 calls a second, 1024 ran out. The window also bounds what lapin
/// buffers: at most this many unconfirmed publishes, each up to the
/// message size limit.
pub const AMQP_WINDOW: usize = 4096;
/// Unacknowledged messages an entity holds over AMQP, from its own queue and
/// its work queue together, which is also how many of its handlers run at
/// once: 64.
pub const PREFETCH: u16 = 64;
/// How long the queue of an entity with a generated id outlives its last
/// consumer: 30 minutes. Nobody consumes it once that instance is gone, and
/// its `message.{type}` and `message.all` bindings would otherwise keep
/// filling it. An instance cut off from a running broker for longer loses
/// what waited in its queue (the broker drops it) and gets a new, empty
/// queue when it reconnects.
pub const EPHEMERAL_QUEUE_EXPIRY: Duration = Duration::from_secs(30 * 60);
/// How long the queue of an entity with a chosen id, and a shared work
/// queue, outlive their last consumer: 7 days. Long enough that a service
/// down over a long weekend finds its messages waiting; short enough that
/// the queues of ids nobody uses any more (renamed services, pods named
/// after themselves) stop collecting every message for their type and
/// `all`. The broker drops what such a queue still holds.
pub const AMQP_QUEUE_EXPIRY: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Messages an entity's queue or a work queue holds ready before the oldest
/// go to the dead letters (`x-max-length`, overflow `drop-head`): 100 000.
/// Bounds what a consumer that is gone, or far behind, leaves on the
/// broker's disk; messages being handled do not count.
pub const AMQP_QUEUE_MAX_LENGTH: u32 = 100_000;
/// The reply queues a receiver answers besides direct reply-to
/// (`amq.rabbitmq.reply-to.…`): Stage7's `rpc-reply-{uuid}`, which its
/// TypeScript client declares exclusive per caller. In a pattern `{uuid}`
/// stands for a UUID and `*` for any run of characters.
pub const AMQP_REPLY_QUEUES: &[&str] = &["rpc-reply-{uuid}"];

// HTTP, sending.

/// Limit on opening an HTTP connection: 2 s.
pub const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Limit on one HTTP exchange, sending to the end of the reply: the attempt
/// timeout, 10 s.
pub const HTTP_REQUEST_TIMEOUT: Duration = ATTEMPT_TIMEOUT;
/// Time an unused pooled HTTP connection stays open: 4 s, under the 5 s
/// after which Node's HTTP servers close idle connections, so a request is
/// never sent on a connection the peer is closing.
pub const HTTP_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Idle HTTP connections kept per host: 256.
pub const HTTP_POOL_MAX_IDLE_PER_HOST: usize = 256;

// HTTP, receiving.

/// Where an entity's HTTP endpoint listens when neither its builder nor
/// `STAGE7_HTTP_LISTEN` says: any free port on loopback, reachable from this
/// host only.
pub const SERVER_LISTEN: &str = "127.0.0.1:0";

/// Time a client has to send its request headers (and to finish its TLS
/// handshake, and the longest a keep-alive connection stays idle): 30 s.
pub const SERVER_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time the endpoint gives one request to be read and handled: 30 s, the
/// call deadline, the longest any sender waits with the defaults.
pub const SERVER_HANDLER_TIMEOUT: Duration = CALL_DEADLINE;
/// Messages the endpoint handles at once: 1024.
pub const SERVER_MAX_CONCURRENT_REQUESTS: usize = 1024;

// Finding recipients.

/// Time a PostOffice answer (where a recipient lives) is reused: 30 s.
pub const ROUTE_CACHE_TTL: Duration = Duration::from_secs(30);
/// Limit on one PostOffice lookup or registration: 2 s.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

// De-duplication on the receiving side.

/// Message ids remembered: 100 000. Each keeps its handler's reply (for
/// synchronous messages) until it is forgotten, so the memory this takes is
/// about 100 000 times your typical reply size, plus ~100 bytes an id.
pub const DEDUP_CAPACITY: usize = 100_000;
/// Time a message id is remembered: 10 minutes, longer than any sender
/// keeps retrying.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(600);

// Retries.

/// First delay before a retry: 10 ms.
pub const RETRY_MIN_DELAY: Duration = Duration::from_millis(10);
/// Longest delay between retries: 1 s.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(1);
/// Growth of the delay per retry: ×2.
pub const RETRY_FACTOR: f32 = 2.0;
/// Retries after the first attempt: 3.
pub const MAX_RETRIES: usize = 3;
/// Share of calls that may be retried: 20 %.
pub const RETRY_RATIO: f64 = 0.2;
/// Retries allowed per second whatever the traffic: 10.
pub const RETRY_MIN_PER_SEC: u32 = 10;
/// Retry tokens that may accumulate: 100.
pub const RETRY_MAX_TOKENS: u32 = 100;

// Circuit breakers.

/// Trip after 5 failures in a row.
pub const BREAKER_CONSECUTIVE_FAILURES: u32 = 5;
/// Trip at a 50 % failure rate…
pub const BREAKER_FAILURE_RATE: f32 = 0.5;
/// …over the last 20 calls…
pub const BREAKER_WINDOW: u32 = 20;
/// …once 10 of them are counted.
pub const BREAKER_MIN_CALLS: u32 = 10;
/// First break: 250 ms, short because the fallback branch carries the
/// traffic meanwhile and the primary should be probed again soon.
pub const BREAKER_BREAK: Duration = Duration::from_millis(250);
/// Growth of the break per open in a row: ×2.
pub const BREAKER_BREAK_GROWTH: f32 = 2.0;
/// Longest break: 500 ms, so a recovered primary is probed within half a
/// second; probing a backend that fails fast costs little.
pub const BREAKER_MAX_BREAK: Duration = Duration::from_millis(500);
/// Probes admitted while half-open: 1.
pub const BREAKER_HALF_OPEN_PROBES: u32 = 1;
/// Keys (recipients) with their own circuit: 1024; the rest share one.
pub const BREAKER_MAX_KEYS: usize = 1024;

//! `stage7 bench amqp-node`: request/reply through RabbitMQ, the seed's
//! Node.js amqplib stack against ours (goal: at least twice its rate).
//!
//! * `amqplib`: `tests/interop/peer.js bench` (one channel, direct
//!   reply-to, a correlation map, persistent requests, no publisher
//!   confirms) calling `peer.js serve`, which parses each request and
//!   answers it as the TypeScript services do. Both turn TCP_NODELAY on,
//!   which the seed does not: `STAGE7_PEER_NODELAY=0` measures the seed's
//!   setting. The client runs in a `node` process of its own each round,
//!   warms up on its connection, then reports every call's latency.
//! * `stack`: our full stack calling our consumer (decode, de-duplication,
//!   handler, encode, reply), with publisher confirms.
//!
//! Needs `node` and the pinned amqplib (`npm ci --prefix tests/interop`,
//! which `scripts/test` runs).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::Options;
use super::broker::{echo_run, name, url};
use super::harness::{Comparison, Series, Side, compare, service_side};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop/peer.js");

/// `node peer.js …` against the broker at `url`.
fn node(url: &str, args: &[&str]) -> Result<Command, String> {
    let modules = Path::new(PEER).with_file_name("node_modules");
    if !modules.join("amqplib").is_dir() {
        return Err(format!(
            "amqplib is not installed in {}: run `npm ci --prefix tests/interop` (scripts/test does)",
            modules.display()
        ));
    }
    let mut command = Command::new("node");
    command
        .arg(PEER)
        .args(args)
        .env("RABBITMQ_URL", url)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    Ok(command)
}

/// The Node responder for entity `id`, once it consumes.
async fn node_responder(url: &str, id: &str) -> Result<Child, String> {
    let mut child = node(url, &["serve", id, "NodeEcho"])?
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run node (is Node.js installed?): {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout from node")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .map_err(|_| "the Node responder did not start within 20 s".to_owned())?
        .map_err(|e| e.to_string())?;
    if ready.as_deref() != Some("READY") {
        return Err(format!(
            "the Node responder said {ready:?} instead of READY"
        ));
    }
    // It prints the events it receives; a closed pipe would kill it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(child)
}

/// One round of the Node client: `n` calls to `recipient`, `concurrency`
/// in flight.
async fn node_round(
    url: String,
    recipient: String,
    n: usize,
    concurrency: usize,
) -> Result<Series, String> {
    let warmup = (n / 5).clamp(1, 2000);
    let mut client = node(
        &url,
        &[
            "bench",
            &recipient,
            &n.to_string(),
            &concurrency.to_string(),
            &warmup.to_string(),
        ],
    )?;
    client.stdout(Stdio::piped()).stderr(Stdio::piped());
    // Generous: the client itself fails a call after 30 s without a reply.
    let per_call = Duration::from_millis(5) * u32::try_from(n).unwrap_or(u32::MAX);
    let limit = Duration::from_secs(120) + per_call;
    let output = tokio::time::timeout(limit, client.output())
        .await
        .map_err(|_| format!("the Node client did not finish within {limit:?}"))?
        .map_err(|e| format!("cannot run node: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the Node client failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let elapsed_ms: f64 = lines
        .next()
        .and_then(|line| line.strip_prefix("ELAPSED "))
        .and_then(|ms| ms.parse().ok())
        .ok_or("the Node client did not report its elapsed time")?;
    let mut series = Series::new();
    for line in lines {
        let us: u64 = line
            .parse()
            .map_err(|_| format!("the Node client reported `{line}` as a latency"))?;
        series.record(Duration::from_micros(us));
    }
    if series.latencies.len() != n as u64 {
        return Err(format!(
            "the Node client reported {} latencies for {n} calls",
            series.latencies.len()
        ));
    }
    series.add_elapsed(Duration::from_secs_f64(elapsed_ms / 1000.0), n);
    Ok(series)
}

pub(crate) async fn run(options: &Options) -> Result<Vec<Comparison>, String> {
    let url = url()?;
    let node_id = name("node-echo");
    let _responder = node_responder(&url, &node_id).await?;

    let ours = echo_run(&url, "bench-node-comparison").await?;
    let mut comparisons = Vec::new();
    for &concurrency in &options.concurrency {
        let amqplib = {
            let (url, recipient) = (url.clone(), node_id.clone());
            Side::external("amqplib", move |n, concurrency| {
                node_round(url.clone(), recipient.clone(), n, concurrency)
            })
        };
        let stack = service_side("stack", ours.stack.clone(), ours.template.clone());
        comparisons.push(
            compare(
                "amqp-node",
                options.n,
                concurrency,
                options.rounds,
                vec![amqplib, stack],
            )
            .await?,
        );
    }
    ours.subscriber.shutdown(Duration::from_secs(1)).await;
    Ok(comparisons)
}

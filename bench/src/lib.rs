//! `stage7 bench`: load runs that put our transport beside its raw baseline
//! in the same process and report the ratios.
//!
//! The `stage7` binary parses [`Scenario`] and [`Options`] from its command
//! line and hands them to [`run`], which prints the results on stdout and
//! its progress on stderr.

// A load run reports what fails rather than panicking on it.
#![deny(clippy::unwrap_used)]
#![forbid(unsafe_code)]

mod amqp_node;
mod amqp_publish;
mod amqp_rpc;
mod broker;
mod failover;
mod harness;
mod http_rpc;
mod stack;

use clap::{Args, ValueEnum};

/// The load-run scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// In process: a bare service against the full stack over it.
    Stack,
    /// Request/reply through RabbitMQ: bare lapin on both sides against our
    /// transport and consumer, and the full stack over them.
    AmqpRpc,
    /// Confirmed persistent publishes: bare lapin against our transport.
    AmqpPublish,
    /// Request/reply through RabbitMQ: the seed's Node.js amqplib client
    /// and responder against our stack and consumer (needs node and
    /// `npm ci --prefix tests/interop`).
    AmqpNode,
    /// Time without service after the connection is killed (needs
    /// `rabbitmqctl` for the broker's node: `RABBITMQ_NODENAME`, default the
    /// local node).
    Failover,
    /// Sync calls over HTTP on 127.0.0.1: bare hyper against our transport
    /// and endpoint, and the full stack over them.
    HttpRpc,
}

/// Options shared by every scenario.
#[derive(Debug, Args)]
pub struct Options {
    /// Calls per series.
    #[arg(long, default_value_t = 20_000)]
    pub n: usize,
    /// Calls in flight; a comma-separated list runs each in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub concurrency: Vec<usize>,
    /// Interleaved rounds per side.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `scenario` and prints its figures: a table, or one JSON object per
/// line with [`Options::json`].
pub async fn run(scenario: Scenario, options: &Options) -> Result<(), String> {
    let comparisons = match scenario {
        Scenario::Stack => stack::run(options).await?,
        Scenario::AmqpRpc => amqp_rpc::run(options).await?,
        Scenario::AmqpPublish => amqp_publish::run(options).await?,
        Scenario::AmqpNode => amqp_node::run(options).await?,
        Scenario::Failover => return failover::run(options).await,
        Scenario::HttpRpc => http_rpc::run(options).await?,
    };
    for comparison in &comparisons {
        comparison.print(options.json);
    }
    Ok(())
}

//! `stage7 bench`: load runs that put our transport beside its raw baseline
//! in the same process and report the ratios.

mod harness;
mod stack;

use clap::{Args, ValueEnum};

/// The scenarios of DESIGN §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// In process: a bare service against the full stack over it.
    Stack,
}

/// Options shared by every scenario.
#[derive(Debug, Args)]
pub(crate) struct Options {
    /// Calls per series.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) n: usize,
    /// Calls in flight; a comma-separated list runs each in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub(crate) concurrency: Vec<usize>,
    /// Interleaved rounds per side.
    #[arg(long, default_value_t = 5)]
    pub(crate) rounds: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) async fn run(scenario: Scenario, options: &Options) -> Result<(), String> {
    let comparisons = match scenario {
        Scenario::Stack => stack::run(options).await?,
    };
    for comparison in &comparisons {
        comparison.print(options.json);
    }
    Ok(())
}

//! `stage7`: run Stage7 entities, send and call, and measure the transport
//! against its raw baselines. See `stage7 --help`.

mod bench;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "stage7",
    version,
    about = "Stage7 transport: run entities, send messages, measure"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A load run: the raw baseline and our transport side by side.
    Bench {
        /// What to measure.
        #[arg(value_enum)]
        scenario: bench::Scenario,
        #[command(flatten)]
        options: bench::Options,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stage7: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Bench { scenario, options } => bench::run(scenario, &options).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stage7: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `stage7`: run Stage7 entities, send and call, and measure the transport
//! against its raw baselines. See `stage7 --help`.

// Integration tests and benches unwrap freely; the library and the binary
// must not (a peer or the network can make anything fail).
#![deny(clippy::unwrap_used)]
#![forbid(unsafe_code)]

mod commands;

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
    /// Run an entity that answers requests with their content. Prints
    /// `READY {id} http={addr}` once it serves; stops on Ctrl-C or SIGTERM.
    Echo(commands::EchoArgs),
    /// One synchronous call: prints the reply as JSON, then the route.
    Call(commands::MessageArgs),
    /// One asynchronous send: prints the message id, then the route.
    Send(commands::MessageArgs),
    /// A load run: the raw baseline and our transport side by side.
    Bench {
        /// What to measure.
        #[arg(value_enum)]
        scenario: stage7_bench::Scenario,
        #[command(flatten)]
        options: stage7_bench::Options,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,lapin=error")),
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
            Command::Echo(args) => commands::echo(args).await,
            Command::Call(args) => commands::call(args).await,
            Command::Send(args) => commands::send(args).await,
            Command::Bench { scenario, options } => stage7_bench::run(scenario, &options).await,
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bench_takes_a_scenario_and_the_load_options() {
        let cli = Cli::try_parse_from([
            "stage7",
            "bench",
            "amqp-rpc",
            "--n",
            "500",
            "--concurrency",
            "1,64",
            "--rounds",
            "3",
            "--json",
        ])
        .expect("a valid bench command line");
        let Command::Bench { scenario, options } = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(scenario, stage7_bench::Scenario::AmqpRpc);
        assert_eq!(
            (options.n, options.concurrency, options.rounds, options.json),
            (500, vec![1, 64], 3, true)
        );
        assert!(Cli::try_parse_from(["stage7", "bench", "no-such-scenario"]).is_err());
    }
}

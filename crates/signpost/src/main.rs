//! `signpost`: the Signpost server (`serve`), its schema tool (`migrate`) and the cf-like CLI
//! verbs (`login`, `instance`, `key`, `dest`, `fragment`, `cert`, `export`, `import`; see
//! docs/CLI.md). Configuration is typed, read once from flags and `SIGNPOST_*` variables, and
//! validated before anything listens: a bad one is refused with a one-line reason (exit 2).

mod cli;
mod config;
mod serve;
mod tls;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "signpost",
    version,
    about = "Signpost: an open, self-hostable Destination service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (destination API, find destination, token service, service broker).
    Serve(config::ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(config::StoreArgs),
    /// Move data between databases.
    #[command(subcommand)]
    Store(StoreCommand),
    #[command(flatten)]
    Cli(cli::CliCommand),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy everything (keys and encrypted secrets included) from one database to an empty one
    /// and verify the counts, e.g. `signpost store copy --from sqlite://signpost-data/signpost.db
    /// --to postgres://signpost@db/signpost`. Both are opened with the same master key.
    Copy(config::CopyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("signpost: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Migrate(args) => serve::migrate(args).await,
            Command::Store(StoreCommand::Copy(args)) => serve::copy(args).await,
            Command::Cli(cmd) => cli::run(cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the reason, without a backtrace; configuration errors exit with 2.
            let code = if e.downcast_ref::<config::ConfigError>().is_some() {
                2
            } else {
                1
            };
            eprintln!("signpost: error: {e:#}");
            ExitCode::from(code)
        }
    }
}

//! The modules of the `signpost` binary (src/main.rs) as a library, so that integration tests
//! can reach its types: the secrets test formats the CLI's argument structs with `Debug`.

pub mod cli;
pub mod config;
pub mod serve;
mod tls;

use clap::{Parser, Subcommand};

/// The command line of `signpost`.
#[derive(Debug, Parser)]
#[command(
    name = "signpost",
    version,
    about = "Signpost: an open, self-hostable Destination service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
pub enum StoreCommand {
    /// Copy everything (keys and encrypted secrets included) from one database to an empty one
    /// and verify the counts, e.g. `signpost store copy --from sqlite://signpost-data/signpost.db
    /// --to postgres://signpost@db/signpost`. Both are opened with the same master key.
    Copy(config::CopyArgs),
    /// Write a consistent snapshot of the SQLite database of a server, running or not, to a new
    /// file, e.g. `signpost store backup --to signpost-2026-12-03.db`. Secrets stay encrypted in
    /// it: keep the master key apart from the backup.
    Backup(config::BackupArgs),
    /// Bring a backup back as the database of a data directory that has none, after checking it
    /// (integrity, the master key opens it, every secret decrypts), e.g. `signpost store restore
    /// --from signpost-2026-12-03.db --data-dir ./signpost-data`.
    Restore(config::RestoreArgs),
}

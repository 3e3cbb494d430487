//! `signpost`: the Signpost server (`serve`), its schema tool (`migrate`) and the cf-like CLI
//! verbs (`login`, `instance`, `key`, `dest`, `fragment`, `cert`, `export`, `import`; see
//! docs/CLI.md). Configuration is typed, read once from flags and `SIGNPOST_*` variables, and
//! validated before anything listens: a bad one is refused with a one-line reason (exit 2).

/// Every request allocates many small objects: mimalloc's thread-local free lists serve them
/// faster than glibc's malloc, and give freed memory back instead of keeping it in arenas (a
/// million finds of random names: bench/README.md, `scale`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;
use signpost::{cli, config, serve, Cli, Command, StoreCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // `--worker-threads` / SIGNPOST_WORKER_THREADS; Tokio's default is one per core.
    if let Command::Serve(args) = &cli.command {
        if let Some(n) = args.worker_threads {
            builder.worker_threads(usize::from(n));
        }
    }
    let runtime = match builder.enable_all().build() {
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
            Command::Store(StoreCommand::Backup(args)) => serve::backup(args).await,
            Command::Store(StoreCommand::Restore(args)) => serve::restore(args).await,
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

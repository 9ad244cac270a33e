//! The `kernel-host` command line. `main` only parses and dispatches; each
//! subcommand lives in its own file under `cli/`, and everything they do is
//! reachable from the library.

mod cli;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: host frames hold strings cell by
/// cell, and glibc spent about a fifth of a chunked run in malloc and
/// free. Measured on this 2-core machine, first by preloading Debian's
/// mimalloc (five runs each, 1M generated rows, impute -> one-hot ->
/// scale -> SGD in auto chunks): median 3.70 s against 4.70 s, peak RSS
/// 64 MiB against 55 MiB; then with this crate, the 1M-row whole
/// pipeline by reference: 3.4-4.3 s and 472-499 MiB against glibc's
/// 3.8-4.1 s and 506-507 MiB.
///
/// Built with `no_thp`: mimalloc otherwise asks for transparent huge pages
/// on its arenas, and every chunk's buffers then faulted in (and zeroed)
/// 2 MiB pages: 9 % of a chunked run's samples in `clear_page_erms`. 1M
/// rows, auto chunks, four interleaved runs with and without
/// `MIMALLOC_ALLOW_THP=0`: 2.90-3.27 s, 76-82 MiB -> 2.27-2.83 s,
/// 49-58 MiB; chunks of 65 536 rows, three interleaved runs of the two
/// builds: 3.02-3.63 s -> 2.60-2.75 s; 5 GB in chunks of 65 536, one run
/// each: 117.6 s -> 108.7 s.
/// Only mimalloc's own advice goes: snapshot restores still ask for huge
/// pages where they want them (`MADV_HUGEPAGE`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // Model selection runs hundreds of fits: kernels' warnings (a solver
    // stopping early on a poor candidate) would bury the table.
    let searching = matches!(
        args.command,
        cli::Command::Tune(_) | cli::Command::Compare(_)
    );
    cli::init_logging(args.verbose, args.quiet || (searching && args.verbose == 0));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::dispatch(&args.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Messages may quote what a kernel or a data file said: nothing
            // in them may act on the terminal.
            let text = error.to_string();
            eprintln!("error: {}", kernel_host::printable_lines(&text));
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                let text = cause.to_string();
                eprintln!("  caused by: {}", kernel_host::printable_lines(&text));
                source = cause.source();
            }
            ExitCode::from(u8::try_from(args.command.exit_code(&error)).unwrap_or(1))
        }
    }
}

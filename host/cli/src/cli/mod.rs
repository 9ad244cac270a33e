//! Command-line parsing (clap derive) and dispatch.

mod common;
mod explain;
mod fit;
mod freeze;
mod generate;
mod graph;
mod history;
mod info;
mod inspect;
mod lock;
mod mcp;
mod new;
mod predict;
mod profile;
mod progress;
mod recommend;
mod registry;
mod run;
mod select;
mod stream;
mod test;
mod validate;

use clap::{Parser, Subcommand};

/// `kernel-host --version`: the host and the kernel contract it implements.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (kernel contract: WIT kernel-host:kernel@",
    kernel_host::wit_version!(),
    ")"
);

/// Run untrusted machine-learning kernels, sandboxed.
#[derive(Parser)]
#[command(name = "kernel-host", version = VERSION, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log more (repeat for more detail). `KERNEL_HOST_LOG=debug` also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Clone, Subcommand)]
pub enum Command {
    /// Fit a pipeline on its training data, predict the test data, write and score the predictions.
    Run(run::RunArgs),
    /// Fit a pipeline (as `run` would) and save it, kernels and fitted state, as one bundle file.
    Fit(fit::FitArgs),
    /// Bake a bundle step's fitted state into a standalone component (.wasm).
    Freeze(freeze::FreezeArgs),
    /// Predict rows with a saved bundle (no refit) or a manifest (fitted first).
    Predict(predict::PredictArgs),
    /// Print what this machine offers kernels: tensor backends (CPU, CUDA) and why; --selftest checks them.
    Info(info::InfoArgs),
    /// Verify a kernel component and print what it says about itself.
    Inspect(inspect::InspectArgs),
    /// Create a kernel crate (transformer, classifier, regressor or clusterer) that builds to a component and passes `kernel-host test`.
    New(new::NewArgs),
    /// Score candidate pipelines on the same folds (manifests, or one manifest --vary STEP.PARAM=V1,V2) and recommend one.
    Compare(select::CompareArgs),
    /// Search the kernels' declared parameters with TPE and cross-validation, within a time budget.
    Tune(select::TuneArgs),
    /// Draw a pipeline: steps, kernels, data flow, parallel waves and (with --report) where the time went, as DOT, Mermaid, SVG or HTML.
    Graph(graph::GraphArgs),
    /// Check that a kernel component keeps the contract: properties run through the sandbox (exit 0 all pass, 1 a property failed, 2 not a kernel or could not run).
    Test(test::TestArgs),
    /// The run history `recommend` learns from: list, show or forget records (`run` and `recommend` add to it).
    History(history::HistoryArgs),
    /// Manage the local registry of kernels by name@version.
    Registry(registry::RegistryArgs),
    /// Pin the manifest's registry kernels in kernel-host.lock (keeps pins its ranges still allow).
    Lock(lock::LockArgs),
    /// Move kernel-host.lock to the newest versions the ranges allow, printing what changed.
    Upgrade(lock::LockArgs),
    /// Check a manifest (its kernels, parameters and data) or a bundle without running the job; list every problem.
    Validate(validate::ValidateArgs),
    /// Fit a pipeline (or load a bundle) and print what each kernel learned, with what the host observed.
    Explain(explain::ExplainArgs),
    /// Profile a table (CSV, Arrow or Parquet) in one streamed pass: types, missing values, cardinality, ranges, skew, ID-like and constant columns, the target and the task it implies.
    Profile(profile::ProfileArgs),
    /// Recommend pipelines for a table from the kernels at hand (probed in the sandbox, cross-validated within a budget), explain each step, and write the best as a manifest.
    Recommend(recommend::RecommendArgs),
    /// Write a deterministic synthetic data set (CSV, Arrow or Parquet) for tests and benchmarks.
    Generate(generate::GenerateArgs),
    /// Serve a bundle (or fit a manifest), predicting Arrow IPC batches from stdin to stdout (exit 65 bad input, 70 kernel fault or bug, 75 retry).
    Stream(stream::StreamArgs),
    /// Serve the kernels to agents over MCP (stdio): list, inspect, profile, recommend, validate, run, explain, compare and tune, sandboxed, files only under --root directories.
    Mcp(mcp::McpArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example:\n  kernel-host completions bash > ~/.local/share/bash-completion/completions/kernel-host"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The process exit code for `error` under this command's contract.
    pub fn exit_code(&self, error: &kernel_host::Error) -> i32 {
        match self {
            Command::Stream(_) => error.stream_exit_code(),
            Command::Test(_) => test::exit_code(error),
            _ => error.exit_code(),
        }
    }
}

pub async fn dispatch(command: &Command) -> Result<(), kernel_host::Error> {
    match command.clone() {
        Command::Run(args) => run::run(args).await,
        Command::Inspect(args) => inspect::inspect(args).await,
        Command::Test(args) => test::test(args).await,
        Command::New(args) => new::new(args),
        Command::Compare(args) => select::compare(args).await,
        Command::Tune(args) => select::tune(args).await,
        Command::Graph(args) => graph::graph(args).await,
        Command::Info(args) => info::info(args).await,
        Command::Registry(args) => registry::registry(args).await,
        Command::History(args) => history::history(args).await,
        Command::Lock(args) => lock::lock(args).await,
        Command::Upgrade(args) => lock::upgrade(args).await,
        Command::Fit(args) => fit::fit(args).await,
        Command::Freeze(args) => freeze::freeze(args).await,
        Command::Predict(args) => predict::predict(args).await,
        Command::Validate(args) => validate::validate(args).await,
        Command::Explain(args) => explain::explain(args).await,
        Command::Generate(args) => generate::generate(args).await,
        Command::Profile(args) => profile::profile(args).await,
        Command::Recommend(args) => recommend::recommend(args).await,
        Command::Stream(args) => stream::stream(args).await,
        Command::Mcp(args) => mcp::mcp(args).await,
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "kernel-host",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// Logs go to stderr; stdout is for results.
pub fn init_logging(verbose: u8, quiet: bool) {
    use tracing::level_filters::LevelFilter;
    let from_env = std::env::var("KERNEL_HOST_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok());
    let level = match (quiet, verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => from_env.unwrap_or(LevelFilter::WARN),
        (false, 1) => LevelFilter::INFO,
        (false, 2) => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
}

/// Writes `text` to `path` atomically, or to stdout.
pub fn write_output(path: Option<&std::path::Path>, text: &str) -> Result<(), kernel_host::Error> {
    match path {
        Some(path) => kernel_host::fsutil::write_atomic(path, text.as_bytes())
            .map_err(|e| kernel_host::Error::io(format!("writing {}", path.display()), e)),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// Pretty JSON for `--json` flags.
pub fn json(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Text a kernel wrote over several lines (a doc comment), as one line:
/// runs of whitespace become one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `12.3 ms`, `4.56 s`.
pub fn format_duration(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

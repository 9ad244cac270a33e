//! `kernel-host generate --rows N --out FILE`.

use std::path::PathBuf;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host generate --rows 1000000 --out data/train.csv
  kernel-host generate --rows 100000 --seed 7 --out data/test.arrows")]
pub struct GenerateArgs {
    /// Rows to write.
    #[arg(long, value_name = "N")]
    pub rows: u64,
    /// The file to write: CSV, Arrow IPC for .arrow/.arrows/.ipc/.feather, or Parquet for .parquet/.pq.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// The same seed gives the same file.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The target column: `label` (classes A, B, C) or `value` (a number).
    #[arg(long, value_enum, default_value_t = Task::Classification)]
    pub task: Task,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Task {
    Classification,
    Regression,
}

pub async fn generate(args: GenerateArgs) -> Result<(), kernel_host::Error> {
    use kernel_host::data::generate::{Task as T, generate};
    let task = match args.task {
        Task::Classification => T::Classification,
        Task::Regression => T::Regression,
    };
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(args.rows),
        indicatif::ProgressDrawTarget::stderr(),
    );
    generate(&args.out, args.rows, args.seed, task, |done| {
        bar.set_position(done)
    })
    .map_err(|e| kernel_host::Error::io(format!("writing {}", args.out.display()), e))?;
    bar.finish_and_clear();
    let bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} rows ({:.1} MiB) to {}",
        args.rows,
        bytes as f64 / (1 << 20) as f64,
        args.out.display()
    );
    Ok(())
}

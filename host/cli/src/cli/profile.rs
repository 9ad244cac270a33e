//! `kernel-host profile DATA [--target COL] [--json]`.

use kernel_host::data::CsvOptions;
use kernel_host::data::profile::{profile as profile_of, render};
use std::path::PathBuf;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host profile examples/penguins/data/penguins.csv --target species
  kernel-host profile big.parquet --json")]
pub struct ProfileArgs {
    /// The table: CSV, Arrow IPC (.arrow/.arrows/.ipc/.feather) or Parquet (.parquet/.pq).
    pub data: PathBuf,
    /// The column to predict: the profile describes its classes or distribution and infers the task.
    #[arg(long, value_name = "COL")]
    pub target: Option<String>,
    /// Print JSON for tools instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn profile(args: ProfileArgs) -> Result<(), kernel_host::Error> {
    let p = profile_of(&args.data, args.target.as_deref(), &CsvOptions::default())?;
    if args.json {
        let value = serde_json::to_value(&p)
            .map_err(|e| kernel_host::Error::io("writing the profile as JSON", e.into()))?;
        println!("{}", super::json(&value));
    } else {
        print!("{}", render(&p));
    }
    Ok(())
}

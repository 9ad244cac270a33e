//! `kernel-host predict model.khb --input data.csv --output predictions.csv`.

use super::common::{DataArgs, TelemetryArgs, open, run_job};
use kernel_host::job::{FitMode, JobOptions};
use std::path::PathBuf;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host predict penguins.khb --input new.csv --output predictions.csv
  kernel-host predict penguins.khb -i big.arrow -o out.arrow --chunk-rows 100000
  kernel-host predict pipeline.toml -i new.csv -o out.csv   # fits the manifest first")]
pub struct PredictArgs {
    /// A bundle written by `kernel-host fit --save` (or a manifest, fitted first).
    pub bundle: PathBuf,
    /// Where to write the predictions (CSV or Arrow, by extension).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

pub async fn predict(args: PredictArgs) -> Result<(), kernel_host::Error> {
    if args.data.input.is_none() {
        return Err(kernel_host::Error::Usage(
            "`predict` needs the rows to predict: --input FILE".into(),
        ));
    }
    let source = open(&args.bundle, &args.data)?;
    let options = JobOptions {
        save: None,
        predict: true,
    };
    let report = run_job(source, Some(&args.output), &args.telemetry, &options).await?;
    if let Some((name, value)) = report.metric {
        println!("{name}: {value:.4}");
    }
    println!(
        "predicted {} rows with `{}` ({}) to {} in {}",
        report.test_rows,
        report.pipeline,
        match report.fit {
            FitMode::Restored => "no refit".to_string(),
            mode => mode.to_string(),
        },
        args.output.display(),
        super::format_duration(report.elapsed)
    );
    Ok(())
}

//! `kernel-host predict model.khb --input data.csv --output predictions.csv`.

use super::common::{DataArgs, TelemetryArgs, open};
use kernel_host::job::{self, JobOptions};
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
    let mut source = open(&args.bundle, &args.data)?;
    source.plan_mut().output.predictions = Some(args.output.clone());
    let session = args.telemetry.start(&source).await?;
    let options = JobOptions {
        save: None,
        predict: true,
    };
    let result = job::run(
        &session.sandbox,
        source,
        &options,
        &super::progress::Bar::default(),
    )
    .await;
    let report = session
        .finish(
            result,
            super::run::report_json,
            kernel_host::Error::exit_code,
        )
        .await?;
    if let Some((name, value)) = report.metric {
        println!("{name}: {value:.4}");
    }
    println!(
        "predicted {} rows with `{}` ({}) to {} in {}",
        report.test_rows,
        report.pipeline,
        if report.fit == "none" {
            "no refit".to_string()
        } else {
            report.fit.clone()
        },
        args.output.display(),
        super::format_duration(report.elapsed)
    );
    Ok(())
}

//! `kernel-host fit MANIFEST --save model.khb`: the same fit as `run`
//! (whole or in chunks), saved as one bundle.

use super::common::{DataArgs, TelemetryArgs, open, refuse, run_job};
use kernel_host::job::JobOptions;
use std::path::PathBuf;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host fit examples/penguins/pipeline.toml --save penguins.khb
  kernel-host fit big.toml --chunk-rows 100000 --save big.khb --report fit.json")]
pub struct FitArgs {
    /// The pipeline manifest (TOML).
    pub manifest: PathBuf,
    /// Write the fitted pipeline here, as one bundle file.
    #[arg(long, value_name = "PATH")]
    pub save: PathBuf,
    /// Also predict the test rows (or --input) and write them here, as `run` would.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

pub async fn fit(args: FitArgs) -> Result<(), kernel_host::Error> {
    let source = open(&args.manifest, &args.data)?;
    if source.is_bundle() {
        return Err(refuse(
            "fit",
            &format!(
                "{} is a bundle, already fitted; give the manifest",
                args.manifest.display()
            ),
        ));
    }
    let options = JobOptions {
        save: Some(args.save.clone()),
        predict: args.output.is_some(),
    };
    let report = run_job(source, args.output.as_deref(), &args.telemetry, &options).await?;
    let bytes = std::fs::metadata(&args.save).map(|m| m.len()).unwrap_or(0);
    println!(
        "fitted `{}` on {} rows ({}); saved {} steps to {} ({:.1} KiB)",
        report.pipeline,
        report.train_rows,
        report.fit,
        report.steps.len(),
        args.save.display(),
        bytes as f64 / 1024.0
    );
    if options.predict {
        super::run::print_report(&report);
    }
    Ok(())
}

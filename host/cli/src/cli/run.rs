//! `kernel-host run MANIFEST|BUNDLE`: fit (or restore), predict, score,
//! write, report.

use super::common::{DataArgs, TelemetryArgs, open, run_job};
use kernel_host::job::{FitMode, JobOptions};
use kernel_host::report::RunReport;
use std::path::PathBuf;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host run examples/penguins/pipeline.toml
  kernel-host run pipeline.toml --chunk-rows 100000 --report run.json
  kernel-host run model.khb --input new.csv --output predictions.csv")]
pub struct RunArgs {
    /// The pipeline manifest (TOML), or a bundle from `fit --save` (restored, not refitted).
    pub manifest: PathBuf,
    /// Write predictions here (CSV or Arrow, by extension) instead of the manifest's `output.predictions`.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Cross-validate instead: K folds of the training rows (stratified for classifiers), each fitted in fresh sandboxes; prints per-fold scores, mean and standard deviation.
    #[arg(long, value_name = "K")]
    pub cv: Option<usize>,
    /// With --cv: the seed of the folds.
    #[arg(long, value_name = "S", default_value_t = 0, requires = "cv")]
    pub cv_seed: u64,
    /// With --cv: print JSON.
    #[arg(long, requires = "cv")]
    pub json: bool,
    /// Do not add this run to the run history (`kernel-host history`).
    #[arg(long)]
    pub no_history: bool,
}

pub async fn run(args: RunArgs) -> Result<(), kernel_host::Error> {
    if let Some(k) = args.cv {
        let cv = super::select::CvArgs {
            cv: k,
            seed: args.cv_seed,
            metric: None,
        };
        return super::select::run_cv(&args.manifest, &cv, args.json).await;
    }
    let source = open(&args.manifest, &args.data)?;
    if source.is_bundle() && args.data.input.is_none() {
        return Err(kernel_host::Error::Usage(format!(
            "{} is a bundle: `run` predicts with it without refitting; give the rows with --input FILE",
            args.manifest.display()
        )));
    }
    let options = JobOptions {
        save: None,
        predict: true,
    };
    let plan = match &source {
        kernel_host::job::Source::Plan(plan) if !args.no_history => Some(plan.clone()),
        _ => None,
    };
    let report = run_job(source, args.output.as_deref(), &args.telemetry, &options).await?;
    print_report(&report);
    if let Some(plan) = plan {
        super::history::record_run(&plan, &report);
    }
    Ok(())
}

/// The terminal summary of a job.
pub fn print_report(report: &RunReport) {
    let fit = match report.fit {
        FitMode::Restored => format!(
            "restored {} without refitting (no refit)",
            report.manifest.display()
        ),
        FitMode::Whole => format!("fitted on {} rows", report.train_rows),
        chunked => format!("fitted on {} rows ({chunked})", report.train_rows),
    };
    println!(
        "pipeline `{}`: {fit}, predicted {} rows in {}",
        report.pipeline,
        report.test_rows,
        super::format_duration(report.elapsed)
    );
    if let Some((name, value)) = report.metric {
        println!("{name}: {value:.4}");
    }
    println!();
    let width = report
        .steps
        .iter()
        .map(|s| s.id.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<width$} {:<28} {:>6} {:>10} {:>16} {:>10}",
        "step", "kernel", "calls", "time", "fuel", "peak mem"
    );
    for s in &report.steps {
        println!(
            "{:<width$} {:<28} {:>6} {:>10} {:>16} {:>7.1} MiB",
            s.id,
            s.kernel,
            s.calls,
            super::format_duration(s.busy),
            s.fuel,
            s.peak_memory as f64 / (1 << 20) as f64
        );
    }
    for s in &report.steps {
        if let Some(a) = &s.shadow {
            let delta = s
                .shadow_metric_delta
                .map(|d| format!(", metric delta {d:+.4}"))
                .unwrap_or_default();
            let failed = if a.failures > 0 {
                format!(", {} failed calls", a.failures)
            } else {
                String::new()
            };
            println!(
                "shadow of `{}`: {} agreed on {}/{} rows, max abs diff {:.3e}{delta}{failed}",
                s.id, a.kernel, a.equal_rows, a.rows, a.max_abs_diff
            );
        }
    }
    if let Some(path) = &report.saved {
        println!("\nfitted pipeline saved to {}", path.display());
    }
    if let Some(path) = &report.output {
        println!("\npredictions written to {}", path.display());
    }
}

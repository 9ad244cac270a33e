//! `kernel-host run MANIFEST`.

use kernel_host::telemetry::{AuditLog, MetricsServer};
use kernel_host::{Manifest, Sandbox, Telemetry};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, clap::Args)]
pub struct RunArgs {
    /// The pipeline manifest (TOML), or a bundle from `fit --save` (then
    /// `--input` rows are predicted without refitting, like `predict`).
    pub manifest: PathBuf,
    /// With a bundle: the rows to predict (CSV or Arrow).
    #[arg(long, short, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write predictions here instead of the manifest's `output.predictions`.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Compile kernels afresh instead of using the on-disk cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Serve Prometheus metrics on http://ADDR/metrics during the run (port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// After the run, keep serving metrics until one more scrape or SECONDS pass.
    #[arg(long, value_name = "SECONDS", requires = "metrics_addr")]
    pub metrics_hold: Option<u64>,
    /// Write the metrics in the text exposition format here at the end (node-exporter textfile style).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// Write a JSON run report here (overrides `output.report`).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Append one JSON line per kernel call here (overrides `output.audit-log`).
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// Stream the input this many rows at a time, in bounded memory (overrides `data.chunk-rows`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_rows: Option<u64>,
}

pub async fn run(args: RunArgs) -> Result<(), kernel_host::Error> {
    if kernel_host::bundle::is_bundle(&args.manifest) {
        let (Some(input), Some(output)) = (args.input, args.output) else {
            return Err(kernel_host::Error::Host(anyhow::anyhow!(
                "{} is a bundle: `run` predicts with it without refitting; give the rows with --input FILE and where to write predictions with --output FILE",
                args.manifest.display()
            )));
        };
        return super::predict::predict(super::predict::PredictArgs {
            bundle: args.manifest,
            input,
            output,
        })
        .await;
    }
    if args.input.is_some() {
        return Err(kernel_host::Error::Host(anyhow::anyhow!(
            "--input is for bundles; {} is a manifest, whose `[data]` says what to read",
            args.manifest.display()
        )));
    }
    let mut manifest = Manifest::load(&args.manifest)?;
    if let Some(output) = args.output {
        manifest.output.predictions = Some(output);
    }
    let report_path = args.report.or(manifest.output.report.clone());
    let mut telemetry = Telemetry::builder();
    if args.metrics_addr.is_some() || args.metrics_file.is_some() {
        telemetry = telemetry.metrics();
    }
    if let Some(path) = args.audit_log.or(manifest.output.audit_log.clone()) {
        telemetry = telemetry.audit(AuditLog::open(&path)?);
    }
    let telemetry = telemetry.build()?;
    let server = match (args.metrics_addr, telemetry.metrics()) {
        (Some(addr), Some(metrics)) => {
            let server = MetricsServer::start(addr, metrics.clone()).await?;
            eprintln!("serving metrics on http://{}/metrics", server.addr());
            Some(server)
        }
        _ => None,
    };

    let mut builder = Sandbox::builder()
        .telemetry(telemetry.clone())
        .device(manifest.device);
    if args.no_cache {
        builder = builder.cache_dir(None);
    }
    let sandbox = builder.build()?;
    let chunk_rows = args
        .chunk_rows
        .map(|n| n as usize)
        .or(manifest.data.chunk_rows);
    let result = match chunk_rows {
        Some(rows) => {
            kernel_host::chunked::run_chunked(
                &sandbox,
                manifest,
                rows,
                &super::progress::Bar::default(),
            )
            .await
        }
        None => kernel_host::run::run(&sandbox, manifest).await,
    };
    let scrapes_during_run = server.as_ref().map_or(0, MetricsServer::scrapes);

    if let (Some(path), Some(metrics)) = (&args.metrics_file, telemetry.metrics()) {
        metrics.write_to(path)?;
    }
    if let Some(path) = &report_path {
        match &result {
            Ok(report) => report.write_json(path)?,
            Err(error) => write_failure(path, error)?,
        }
    }
    if let (Some(server), Some(seconds)) = (&server, args.metrics_hold) {
        eprintln!("holding the metrics endpoint for a final scrape (up to {seconds} s)");
        server
            .hold_for_final_scrape(scrapes_during_run, Duration::from_secs(seconds))
            .await;
    }
    let report = result?;

    println!(
        "pipeline `{}`: fitted on {} rows, predicted {} rows in {}",
        report.pipeline,
        report.train_rows,
        report.test_rows,
        super::format_duration(report.elapsed)
    );
    if let Some((name, value)) = report.metric {
        println!("{name}: {value:.4}");
    }
    println!();
    println!(
        "{:<12} {:<28} {:>6} {:>10} {:>16} {:>10}",
        "step", "kernel", "calls", "time", "fuel", "peak mem"
    );
    for s in &report.steps {
        println!(
            "{:<12} {:<28} {:>6} {:>10} {:>16} {:>7.1} MiB",
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
    if let Some(path) = report.output {
        println!("\npredictions written to {}", path.display());
    }
    Ok(())
}

/// A report for a run that failed: what went wrong and the exit code.
fn write_failure(
    path: &std::path::Path,
    error: &kernel_host::Error,
) -> Result<(), kernel_host::Error> {
    let json = serde_json::json!({
        "outcome": "failed",
        "error": error.to_string(),
        "exit_code": error.exit_code(),
    });
    let text = serde_json::to_vec_pretty(&json).map_err(anyhow::Error::from)?;
    kernel_host::fsutil::write_atomic(path, &text)?;
    Ok(())
}

//! `kernel-host run MANIFEST`.

use kernel_host::{Manifest, Sandbox};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The pipeline manifest (TOML).
    pub manifest: PathBuf,
    /// Write predictions here instead of the manifest's `output.predictions`.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Compile kernels afresh instead of using the on-disk cache.
    #[arg(long)]
    pub no_cache: bool,
}

pub async fn run(args: RunArgs) -> Result<(), kernel_host::Error> {
    let mut manifest = Manifest::load(&args.manifest)?;
    if let Some(output) = args.output {
        manifest.output.predictions = Some(output);
    }
    let mut builder = Sandbox::builder();
    if args.no_cache {
        builder = builder.cache_dir(None);
    }
    let sandbox = builder.build()?;
    let report = kernel_host::run::run(&sandbox, manifest).await?;

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
    if let Some(path) = report.output {
        println!("\npredictions written to {}", path.display());
    }
    Ok(())
}

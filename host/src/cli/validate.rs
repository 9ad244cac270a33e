//! `kernel-host validate MANIFEST [--sample N]`.

use std::path::PathBuf;

#[derive(Clone, clap::Args)]
pub struct ValidateArgs {
    /// The pipeline manifest (TOML).
    pub manifest: PathBuf,
    /// Dry-run the pipeline on the first N training rows and project each step's fuel, time and memory to the full input.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
}

pub async fn validate(args: ValidateArgs) -> Result<(), kernel_host::Error> {
    let report = kernel_host::validate::validate(&args.manifest, args.sample).await;
    println!("checked {}", args.manifest.display());
    for (id, kernel) in &report.kernels {
        println!("  kernel `{id}`: {kernel} verified and configured");
    }
    if let Some(rows) = report.train_rows {
        let test = report
            .test_rows
            .map(|t| format!(", {t} test rows"))
            .unwrap_or_default();
        println!("  data: {rows} training rows{test}");
    }
    if !report.estimates.is_empty() {
        println!("\nsample run, projected to the full input:");
        println!(
            "  {:<10} {:<14} {:>8} {:>10} {:>11} {:>9} {:>10} {:>9} {:>9}",
            "step", "operation", "rows", "fuel/row", "fuel", "limit", "time", "timeout", "memory"
        );
        for e in &report.estimates {
            println!(
                "  {:<10} {:<14} {:>8} {:>10.0} {:>11.2e} {:>9.1e} {:>9.3}s {:>8.0}s {:>5.1} MiB",
                e.step,
                e.operation,
                e.full_rows,
                e.fuel_per_row,
                e.projected_fuel,
                e.limits.fuel as f64,
                e.projected_time.as_secs_f64(),
                e.limits.timeout.as_secs_f64(),
                e.projected_memory / (1 << 20) as f64
            );
        }
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    if report.ok() {
        println!("\nno problems found");
        Ok(())
    } else {
        Err(kernel_host::Error::Invalid {
            problems: report.problems,
        })
    }
}

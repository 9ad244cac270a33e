//! `kernel-host validate MANIFEST|BUNDLE [--sample N] [--json]`.

use std::path::PathBuf;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host validate examples/penguins/pipeline.toml --sample 100
  kernel-host validate penguins.khb --json")]
pub struct ValidateArgs {
    /// The pipeline manifest (TOML), or a bundle (its parts and kernels are checked).
    pub manifest: PathBuf,
    /// Dry-run the pipeline on the first N training rows and project each step's fuel, time and memory to the full input.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// Print JSON for tools instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn validate(args: ValidateArgs) -> Result<(), kernel_host::Error> {
    let report = if kernel_host::bundle::is_bundle(&args.manifest) {
        if args.sample.is_some() {
            return Err(super::common::refuse(
                "--sample",
                "a bundle is already fitted; a sample run measures fitting a manifest",
            ));
        }
        let bundle = kernel_host::bundle::Bundle::read(&args.manifest)?;
        kernel_host::validate::validate_bundle(bundle).await
    } else {
        kernel_host::validate::validate(&args.manifest, &super::common::registry(), args.sample)
            .await
    };
    if args.json {
        let json = serde_json::json!({
            "file": args.manifest,
            "ok": report.ok(),
            "problems": report.problems,
            "kernels": report.kernels.iter().map(|(id, k)| serde_json::json!({"step": id, "kernel": k})).collect::<Vec<_>>(),
            "train_rows": report.train_rows,
            "test_rows": report.test_rows,
            "estimates": report.estimates.iter().map(|e| serde_json::json!({
                "step": e.step, "operation": e.operation, "rows": e.full_rows,
                "fuel_per_row": e.fuel_per_row, "projected_fuel": e.projected_fuel,
                "fuel_limit": e.limits.fuel, "projected_seconds": e.projected_time.as_secs_f64(),
                "timeout_seconds": e.limits.timeout.as_secs_f64(), "projected_memory": e.projected_memory,
                "memory_limit": e.limits.memory_bytes,
            })).collect::<Vec<_>>(),
            "notes": report.notes,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        return if report.ok() {
            Ok(())
        } else {
            Err(kernel_host::Error::Invalid {
                problems: report.problems,
            })
        };
    }
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
        let w = report
            .estimates
            .iter()
            .map(|e| e.step.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "  {:<w$} {:<14} {:>8} {:>10} {:>11} {:>9} {:>10} {:>9} {:>9}",
            "step", "operation", "rows", "fuel/row", "fuel", "limit", "time", "timeout", "memory"
        );
        for e in &report.estimates {
            println!(
                "  {:<w$} {:<14} {:>8} {:>10.0} {:>11.2e} {:>9.1e} {:>9.3}s {:>8.0}s {:>5.1} MiB",
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

//! `kernel-host explain MANIFEST|BUNDLE [--step ID] [--json]`.

use super::common::{DataArgs, TelemetryArgs, open, with_provenance};
use kernel_host::bindings::ExplainValue;
use std::path::PathBuf;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host explain examples/penguins/pipeline.toml
  kernel-host explain penguins.khb --step model --json")]
pub struct ExplainArgs {
    /// The pipeline manifest (TOML), fitted first as `run` would, or a bundle (explained as fitted).
    pub manifest: PathBuf,
    /// Explain only this step.
    #[arg(long, value_name = "ID")]
    pub step: Option<String>,
    /// Print JSON for tools instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also measure permutation feature importance from outside (any kernel): the drop of the held-out score when a feature is shuffled, over the folds of --cv.
    #[arg(long)]
    pub importance: bool,
    /// With --importance: folds (stratified for classifiers).
    #[arg(long, value_name = "K", default_value_t = 5, requires = "importance")]
    pub cv: usize,
    /// With --importance: shuffles per feature and fold.
    #[arg(long, value_name = "N", default_value_t = 5, requires = "importance")]
    pub repeats: usize,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

fn short(v: f64) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

fn render(value: &ExplainValue) -> String {
    match value {
        ExplainValue::Scalar(v) => short(*v),
        ExplainValue::Vector(v) => v.iter().map(|x| short(*x)).collect::<Vec<_>>().join(", "),
        ExplainValue::Labels(v) => v.join(", "),
        ExplainValue::Text(v) => v.clone(),
        ExplainValue::Table(frame) => table(frame),
    }
}

/// A table as aligned text: numbers (f64) in the short form, right-aligned;
/// integers, labels and text as they are (a label "0" stays "0").
fn table(frame: &kernel_host::bindings::Frame) -> String {
    use kernel_host::bindings::ColumnValues;
    let cells: Vec<Vec<String>> = frame
        .columns
        .iter()
        .map(|c| {
            let mut column = vec![c.name.clone()];
            column.extend((0..frame.rows as usize).map(|row| {
                match (&c.values, kernel_host::data::cell_text(c, row)) {
                    (_, None) => "-".into(),
                    (ColumnValues::F64(v), Some(_)) => short(v[row]),
                    (_, Some(text)) => text,
                }
            }));
            column
        })
        .collect();
    let widths: Vec<usize> = cells
        .iter()
        .map(|c| c.iter().map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let numeric: Vec<bool> = frame
        .columns
        .iter()
        .map(|c| matches!(c.values, ColumnValues::F64(_) | ColumnValues::S64(_)))
        .collect();
    let lines: Vec<String> = (0..=frame.rows as usize)
        .map(|row| {
            cells
                .iter()
                .zip(&widths)
                .zip(&numeric)
                .map(|((column, &w), &right)| {
                    let cell = column.get(row).map_or("", String::as_str);
                    if right {
                        format!("{cell:>w$}")
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        })
        .collect();
    lines.join("\n      ")
}

pub async fn explain(args: ExplainArgs) -> Result<(), kernel_host::Error> {
    if args.data.input.is_some() {
        return Err(super::common::refuse(
            "--input",
            "`explain` looks at what the kernels learned from the training data; it predicts nothing",
        ));
    }
    let source = open(&args.manifest, &args.data)?;
    let importance = if args.importance {
        if source.is_bundle() {
            return Err(super::common::refuse(
                "--importance",
                "it refits the pipeline on folds of the training data, so it needs a manifest",
            ));
        }
        let sandbox = kernel_host::Sandbox::builder().build()?;
        let plan = source.plan().clone();
        let data = kernel_host::select::prepare(&sandbox, &plan, args.cv, 0).await?;
        Some(
            kernel_host::select::importance::importance(&sandbox, &plan, &data, args.repeats, None)
                .await?,
        )
    } else {
        None
    };
    let session = args.telemetry.start(&source).await?;
    let result = kernel_host::explain::explain(
        &session.sandbox,
        source,
        args.step.as_deref(),
        &super::progress::Bar::default(),
    )
    .await;
    let sandbox = session.sandbox.clone();
    let steps = session
        .finish(
            result,
            |steps| {
                with_provenance(
                    &sandbox,
                    serde_json::json!({ "steps": kernel_host::explain::to_json(steps) }),
                )
            },
            kernel_host::Error::exit_code,
        )
        .await?;
    if args.json {
        let mut value = kernel_host::explain::to_json(&steps);
        if let Some((metric, importances)) = &importance {
            value = serde_json::json!({
                "steps": value,
                "importance": {"metric": metric, "folds": args.cv, "repeats": args.repeats, "features": importances},
            });
        }
        let json = serde_json::to_string_pretty(&value)
            .map_err(|e| kernel_host::Error::Internal(e.to_string()))?;
        println!("{json}");
        return Ok(());
    }
    for s in &steps {
        println!("step `{}`: {} ({})", s.step, s.kernel, s.kind);
        match &s.explanation {
            Ok(e) => {
                println!("  {}", e.summary);
                let width = e
                    .entries
                    .iter()
                    .map(|entry| entry.name.chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(18);
                for entry in &e.entries {
                    println!("  {:<width$} {}", entry.name, render(&entry.value));
                }
            }
            Err(error) => println!("  (no explanation: {error})"),
        }
        let o = &s.observed;
        println!(
            "  host observed: {} calls, {}, {} fuel, peak memory {:.1} MiB, {} faults, {} restarts, {} cache hits\n",
            o.calls,
            super::format_duration(o.busy),
            o.fuel,
            o.peak_memory as f64 / (1 << 20) as f64,
            o.faults,
            o.restarts,
            o.cache_hits
        );
    }
    if let Some((metric, importances)) = &importance {
        println!(
            "permutation importance (drop of held-out {metric} when a feature is shuffled; {} folds × {} shuffles):",
            args.cv, args.repeats
        );
        let width = importances
            .iter()
            .map(|i| i.feature.chars().count())
            .max()
            .unwrap_or(7)
            .max(7);
        for i in importances {
            println!("  {:<width$} {:>8.4} ± {:.4}", i.feature, i.mean, i.std);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::table;
    use kernel_host::bindings::{Column, ColumnValues, Frame};

    #[test]
    fn tables_keep_labels_and_align_headers() {
        let frame = Frame {
            rows: 2,
            columns: vec![
                Column {
                    name: "cluster".into(),
                    values: ColumnValues::String(kernel_host::bindings::Texts::from(["0", "1"])),
                    nulls: None,
                },
                Column {
                    name: "x".into(),
                    values: ColumnValues::F64(vec![0.5, 12.25]),
                    nulls: None,
                },
            ],
        };
        let text = table(&frame);
        let lines: Vec<&str> = text.split("\n      ").collect();
        assert_eq!(
            lines,
            ["cluster        x", "0         0.5000", "1        12.2500"]
        );
    }
}

//! `kernel-host predict model.khb --input data.csv --output predictions.csv`.

use kernel_host::bundle::Bundle;
use kernel_host::data::{read_table, write_table};
use kernel_host::{Output, Sandbox};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, clap::Args)]
pub struct PredictArgs {
    /// A bundle written by `kernel-host fit --save`.
    pub bundle: PathBuf,
    /// Rows to predict (CSV or Arrow).
    #[arg(long, short, value_name = "FILE")]
    pub input: PathBuf,
    /// Where to write the predictions (CSV or Arrow, by extension).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
}

pub async fn predict(args: PredictArgs) -> Result<(), kernel_host::Error> {
    let started = Instant::now();
    let bundle = Bundle::read(&args.bundle)?;
    let sandbox = Sandbox::builder().build()?;
    let mut pipeline = bundle.load(&sandbox).await?;
    let loaded = started.elapsed();
    let input = read_table(&args.input, &Default::default())?;
    let (x, truth) = bundle.features(input, &args.input)?;
    let rows = x.rows;
    let table = match pipeline.predict(x, bundle.probabilities()).await? {
        Output::Predictions {
            values,
            probabilities,
        } => {
            let classifier = pipeline.final_kind() == kernel_host::bindings::KernelKind::Classifier;
            if let (true, Some(t)) = (classifier, &truth)
                && let Some(a) = kernel_host::score::accuracy(&values, t)
            {
                println!("accuracy: {a:.4}");
            }
            kernel_host::run::predictions_table(values, truth, probabilities)
        }
        Output::Transformed(frame) => frame,
    };
    write_table(&args.output, &table).map_err(kernel_host::Error::Host)?;
    println!(
        "loaded `{}` in {} (no refit), predicted {rows} rows to {}",
        bundle.info().pipeline,
        super::format_duration(loaded),
        args.output.display()
    );
    Ok(())
}

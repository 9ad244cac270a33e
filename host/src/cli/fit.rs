//! `kernel-host fit MANIFEST --save model.khb`.

use kernel_host::{Manifest, Pipeline, Sandbox};
use std::path::PathBuf;

#[derive(Clone, clap::Args)]
pub struct FitArgs {
    /// The pipeline manifest (TOML).
    pub manifest: PathBuf,
    /// Write the fitted pipeline here, as one bundle file.
    #[arg(long, value_name = "PATH")]
    pub save: PathBuf,
}

pub async fn fit(args: FitArgs) -> Result<(), kernel_host::Error> {
    let manifest = Manifest::load(&args.manifest)?;
    let sandbox = Sandbox::builder().device(manifest.device).build()?;
    let data = kernel_host::run::prepare(&manifest)?;
    let schema = data.x_train.schema();
    let rows = u64::from(data.x_train.rows);
    let mut pipeline = Pipeline::load(&sandbox, manifest).await?;
    pipeline.fit(data.x_train, data.y_train.as_ref()).await?;
    kernel_host::bundle::save(&mut pipeline, schema, rows, &args.save).await?;
    let bytes = std::fs::metadata(&args.save).map(|m| m.len()).unwrap_or(0);
    println!(
        "fitted `{}` on {rows} rows; saved {} steps to {} ({:.1} KiB)",
        pipeline.manifest().name,
        pipeline.steps().len(),
        args.save.display(),
        bytes as f64 / 1024.0
    );
    Ok(())
}

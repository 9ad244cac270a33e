//! `kernel-host stream MANIFEST`: Arrow IPC in on stdin, Arrow IPC out on
//! stdout, one output batch per input batch, flushed as it goes.
//!
//! The pipeline is fitted first from the manifest's training data (in
//! chunks when the manifest sets `data.chunk-rows`). Each input batch must
//! hold the manifest's feature columns; its output batch holds
//! `prediction` (and `proba_<class>` columns when the manifest asks) or the
//! transformed columns. Logs go to stderr only. Exit codes: 0 ok, 65 bad
//! input or schema, 70 kernel fault, 75 transient (safe to retry).

use kernel_host::data::arrow::{batch_to_frame, frame_to_batch};
use kernel_host::{DataError, Error, Manifest, Output, Pipeline, Sandbox};
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Clone, clap::Args)]
pub struct StreamArgs {
    /// The pipeline manifest (TOML); its training data fits the pipeline first.
    pub manifest: PathBuf,
}

fn stdin_error(message: String) -> Error {
    DataError {
        file: PathBuf::from("<stdin>"),
        row: None,
        column: None,
        message,
    }
    .into()
}

pub async fn stream(args: StreamArgs) -> Result<(), Error> {
    let manifest = Manifest::load(&args.manifest)?;
    let sandbox = Sandbox::builder().device(manifest.device).build()?;
    let (mut pipeline, schema) = fit(&sandbox, manifest.clone()).await?;
    tracing::info!("pipeline fitted; reading Arrow IPC batches from stdin");

    let stdin = std::io::stdin().lock();
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::BufReader::new(stdin), None)
        .map_err(|e| stdin_error(format!("not an Arrow IPC stream: {e}")))?;
    let mut writer: Option<arrow_ipc::writer::StreamWriter<std::io::StdoutLock<'static>>> = None;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch
            .map_err(|e| stdin_error(format!("unreadable record batch after {rows} rows: {e}")))?;
        let frame = batch_to_frame(&batch, Path::new("<stdin>"), rows)?;
        // Only the trained features, as trained: a bad batch is bad input (65).
        let x = frame.conform(&schema, Path::new("<stdin>"), rows + 1)?;
        rows += u64::from(x.rows);
        let out = match pipeline.predict(x, manifest.output.probabilities).await? {
            Output::Predictions {
                values,
                probabilities,
            } => kernel_host::run::predictions_table(values, None, probabilities),
            Output::Transformed(frame) => frame,
        };
        let out = frame_to_batch(&out).map_err(|e| Error::Host(e.into()))?;
        if writer.is_none() {
            let stdout = std::io::stdout().lock();
            writer = Some(
                arrow_ipc::writer::StreamWriter::try_new(stdout, &out.schema())
                    .map_err(|e| Error::Host(e.into()))?,
            );
        }
        if let Some(w) = writer.as_mut() {
            w.write(&out).map_err(|e| Error::Host(e.into()))?;
            w.get_mut().flush().map_err(|e| Error::Host(e.into()))?;
        }
    }
    if let Some(mut w) = writer {
        w.finish().map_err(|e| Error::Host(e.into()))?;
        w.get_mut().flush().map_err(|e| Error::Host(e.into()))?;
    }
    tracing::info!(rows, "stream finished");
    Ok(())
}

/// Fits the manifest's pipeline on its training data; returns it with the
/// feature schema it was fitted on.
async fn fit(
    sandbox: &Sandbox,
    manifest: Manifest,
) -> Result<(Pipeline, Vec<(String, kernel_host::data::ColumnType)>), Error> {
    let prepared = kernel_host::run::prepare(&manifest)?;
    let schema = prepared.x_train.schema();
    let mut pipeline = Pipeline::load(sandbox, manifest).await?;
    pipeline
        .fit(prepared.x_train, prepared.y_train.as_ref())
        .await?;
    Ok((pipeline, schema))
}

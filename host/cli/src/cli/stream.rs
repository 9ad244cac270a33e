//! `kernel-host stream MANIFEST|BUNDLE`: Arrow IPC in on stdin, Arrow IPC
//! out on stdout, one output batch per input batch, flushed as it goes.
//!
//! A bundle is restored without refitting (the cluster path: every worker
//! loads the same fitted model). A manifest is fitted first on its
//! training data, in chunks when it (or `--chunk-rows`) says so. Each input
//! batch must hold the fitted feature columns; its output batch holds
//! `prediction` (and `proba_<class>` columns when the plan asks) or the
//! transformed columns. Logs go to stderr only. Exit codes: 0 ok, 65 bad
//! input, schema or flags (do not retry), 70 a kernel fault or a host bug
//! (do not retry), 75 transient (a timeout, an I/O or resource failure:
//! safe to retry).

use super::common::{DataArgs, TelemetryArgs, open, refuse, with_provenance};
use kernel_host::Error;
use kernel_host::job::{self, Held};

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host stream penguins.khb < batches.arrows > predictions.arrows
  kernel-host stream pipeline.toml --chunk-rows 100000 < in.arrows > out.arrows")]
pub struct StreamArgs {
    /// A bundle (served as fitted) or a manifest (fitted first from its training data).
    pub manifest: std::path::PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

pub async fn stream(args: StreamArgs) -> Result<(), Error> {
    if let Some(input) = &args.data.input {
        return Err(refuse(
            "--input",
            &format!(
                "`stream` reads its rows from stdin, not {}",
                input.display()
            ),
        ));
    }
    let source = open(&args.manifest, &args.data)?;
    let session = args.telemetry.start(&source).await?;
    let result = async {
        let (mut fitted, _held): (_, Held) =
            job::load(&session.sandbox, source, &job::Quiet).await?;
        tracing::info!("pipeline ready; reading Arrow IPC batches from stdin");
        let predicted = kernel_host::stream::serve(
            &mut fitted,
            std::io::stdin().lock(),
            std::io::stdout().lock(),
        )
        .await?;
        tracing::info!(rows = predicted.rows, "stream finished");
        Ok(predicted)
    }
    .await;
    let sandbox = session.sandbox.clone();
    session
        .finish(
            result,
            |p| {
                with_provenance(
                    &sandbox,
                    serde_json::json!({
                        "rows": p.rows,
                        "metric": p.metric.map(|(name, value)| serde_json::json!({"name": name, "value": value})),
                    }),
                )
            },
            Error::stream_exit_code,
        )
        .await?;
    Ok(())
}

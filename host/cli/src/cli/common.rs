//! Flags every command that runs kernels shares, and the session they
//! set up: the source (manifest or bundle), the data overrides, the
//! sandbox with its telemetry, and the report written at the end whether
//! the command succeeded or not.

use kernel_host::job::{DataOverrides, Source};
use kernel_host::registry::Registry;
use kernel_host::report::{Provenance, failure_json};
use kernel_host::telemetry::{AuditLog, MetricsServer};
use kernel_host::{Error, Sandbox, Telemetry};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which rows to use, for manifests and bundles alike.
#[derive(Clone, Default, clap::Args)]
pub struct DataArgs {
    /// Fit on this file instead of the manifest's training data (not for bundles, which are not refitted).
    #[arg(long, value_name = "FILE")]
    pub train: Option<PathBuf>,
    /// The rows to predict (CSV or Arrow), instead of the manifest's test data.
    #[arg(long, short, visible_alias = "test", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Read (and fit) the data this many rows at a time, in bounded memory, or `auto`: chunks sized from `data.memory-budget-mib` (overrides `data.chunk-rows`).
    #[arg(long, value_name = "N|auto", value_parser = parse_chunk_rows)]
    pub chunk_rows: Option<ChunkRows>,
    /// Grant a bundle the rights it records (directories, clocks, entropy, limits above the defaults); without this a bundle asking for any is refused.
    #[arg(long)]
    pub trust_bundle: bool,
    /// Run a bundle with the grants and limits of this manifest (yours, steps matched by id) instead of those it records.
    #[arg(long, value_name = "MANIFEST", conflicts_with = "trust_bundle")]
    pub rights_from: Option<PathBuf>,
}

/// `--chunk-rows`: a number of rows or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkRows {
    Rows(usize),
    Auto,
}

fn parse_chunk_rows(text: &str) -> Result<ChunkRows, String> {
    if text == "auto" {
        return Ok(ChunkRows::Auto);
    }
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(ChunkRows::Rows(n)),
        Err(_) => Err(format!("`{text}` is not a number of rows (or `auto`)")),
    }
}

impl DataArgs {
    pub fn overrides(&self) -> Result<DataOverrides, Error> {
        let rights_from = match &self.rights_from {
            Some(path) => Some(kernel_host::Plan::load_with(path, &registry())?),
            None => None,
        };
        Ok(DataOverrides {
            train: self.train.clone(),
            input: self.input.clone(),
            chunk_rows: match self.chunk_rows {
                Some(ChunkRows::Rows(n)) => Some(n),
                _ => None,
            },
            chunk_auto: self.chunk_rows == Some(ChunkRows::Auto),
            trust_bundle: self.trust_bundle,
            rights_from,
        })
    }
}

/// What the host observed, for Prometheus and for the record.
#[derive(Clone, Default, clap::Args)]
pub struct TelemetryArgs {
    /// Serve Prometheus metrics on http://ADDR/metrics while the command runs (port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Afterwards, keep serving metrics until one more scrape or SECONDS pass.
    #[arg(long, value_name = "SECONDS", requires = "metrics_addr")]
    pub metrics_hold: Option<u64>,
    /// Write the metrics in the text exposition format here at the end (node-exporter textfile style).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// Write a JSON report here, also when the command fails (overrides `output.report`).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Append one JSON line per kernel call here (overrides `output.audit-log`).
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// Compile kernels afresh instead of using the on-disk cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Copy frames into every kernel, even those that take them by
    /// reference (to compare the two paths; results are the same).
    #[arg(long)]
    pub copy_frames: bool,
    /// Read and hash a kernel file at every load, even one this process
    /// already loaded and that has not changed on disk since.
    #[arg(long)]
    pub verify: bool,
}

/// The registry `registry = "name@range"` kernels come from:
/// `$KERNEL_HOST_REGISTRY` or the default directory.
/// The id a lone kernel file is known by in messages: its file stem.
pub fn kernel_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn registry() -> Registry {
    Registry::open(Registry::default_dir())
}

/// Opens `path` (a bundle or a manifest) with the data flags applied.
pub fn open(path: &Path, data: &DataArgs) -> Result<Source, Error> {
    let mut source = Source::open(path, &registry())?;
    data.overrides()?.apply(&mut source)?;
    Ok(source)
}

/// A command's sandbox and telemetry, and where its report goes.
pub struct Session {
    pub sandbox: Sandbox,
    telemetry: Telemetry,
    server: Option<MetricsServer>,
    report: Option<PathBuf>,
    metrics_file: Option<PathBuf>,
    hold: Option<u64>,
}

impl TelemetryArgs {
    /// Starts the telemetry and builds the sandbox for `source`.
    pub async fn start(&self, source: &Source) -> Result<Session, Error> {
        let plan = source.plan();
        let mut telemetry = Telemetry::builder();
        if self.metrics_addr.is_some() || self.metrics_file.is_some() {
            telemetry = telemetry.metrics();
        }
        if let Some(path) = self.audit_log.clone().or(plan.output.audit_log.clone()) {
            telemetry =
                telemetry.audit(AuditLog::open(&path).map_err(|e| {
                    Error::io(format!("opening the audit log {}", path.display()), e)
                })?);
        }
        let telemetry = telemetry.build().map_err(Error::Host)?;
        let server = match (self.metrics_addr, telemetry.metrics()) {
            (Some(addr), Some(metrics)) => {
                let server = MetricsServer::start(addr, metrics.clone())
                    .await
                    .map_err(|e| Error::io(format!("serving metrics on {addr}"), e))?;
                eprintln!("serving metrics on http://{}/metrics", server.addr());
                Some(server)
            }
            _ => None,
        };
        let mut builder = Sandbox::builder()
            .observer(telemetry.clone())
            .device(plan.device)
            .frames_by_reference(!self.copy_frames)
            .verify_loads(self.verify);
        // The commands started here (`run`, `fit`, `predict`, `stream`,
        // `explain`) end at a kernel's first fault unless a step carries on
        // after one (`on-failure = "rollback"`, or a shadow model): only
        // then can a spare instance, readied after each state-changing call
        // so that a rollback just swaps it in, serve a later call. Without
        // spares a small run is 1–1.5 ms faster.
        let carries_on = plan.steps.iter().any(|s| {
            s.on_failure == kernel_host::manifest::OnFailure::Rollback || s.shadow.is_some()
        });
        if !carries_on {
            builder = builder.spare_instances(0);
        }
        if self.no_cache {
            builder = builder.cache_dir(None);
        }
        Ok(Session {
            sandbox: builder.build()?,
            telemetry,
            server,
            report: self.report.clone().or(plan.output.report.clone()),
            metrics_file: self.metrics_file.clone(),
            hold: self.metrics_hold,
        })
    }
}

impl Session {
    /// Writes the report (`report` on success, a failure report with the
    /// exit code otherwise) and the metrics file, holds the metrics
    /// endpoint for a last scrape when asked, and hands `result` back.
    pub async fn finish<T>(
        self,
        result: Result<T, Error>,
        report: impl FnOnce(&T) -> serde_json::Value,
        exit_code: impl FnOnce(&Error) -> i32,
    ) -> Result<T, Error> {
        let scrapes = self.server.as_ref().map_or(0, MetricsServer::scrapes);
        if let (Some(path), Some(metrics)) = (&self.metrics_file, self.telemetry.metrics()) {
            metrics
                .write_to(path)
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        }
        if let Some(path) = &self.report {
            let json = match &result {
                Ok(value) => report(value),
                Err(error) => {
                    failure_json(error, &Provenance::now(&self.sandbox), exit_code(error))
                }
            };
            let mut text = serde_json::to_vec_pretty(&json)
                .map_err(|e| Error::Internal(format!("serializing the report: {e}")))?;
            text.push(b'\n');
            kernel_host::fsutil::write_atomic(path, &text)
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        }
        if let (Some(server), Some(seconds)) = (&self.server, self.hold) {
            eprintln!("holding the metrics endpoint for a final scrape (up to {seconds} s)");
            server
                .hold_for_final_scrape(scrapes, Duration::from_secs(seconds))
                .await;
        }
        result
    }
}

/// A report with provenance added to `value`'s fields.
pub fn with_provenance(sandbox: &Sandbox, value: serde_json::Value) -> serde_json::Value {
    let mut json = serde_json::json!({ "outcome": "ok" });
    if let (Some(map), Ok(serde_json::Value::Object(p))) = (
        json.as_object_mut(),
        serde_json::to_value(Provenance::now(sandbox)),
    ) {
        map.extend(p);
        match value {
            serde_json::Value::Object(fields) => map.extend(fields),
            other => {
                map.insert("result".into(), other);
            }
        }
    }
    json
}

/// The job behind `run`, `fit` and `predict`: writes predictions to
/// `output` when given, starts the telemetry, runs, and writes the report.
pub async fn run_job(
    mut source: Source,
    output: Option<&Path>,
    telemetry: &TelemetryArgs,
    options: &kernel_host::job::JobOptions,
) -> Result<kernel_host::report::RunReport, Error> {
    if let Some(output) = output {
        source.plan_mut().output.predictions = Some(output.to_path_buf());
    }
    let session = telemetry.start(&source).await?;
    let result = kernel_host::job::run(
        &session.sandbox,
        source,
        options,
        &super::progress::Bar::default(),
    )
    .await;
    session
        .finish(
            result,
            |report| serde_json::to_value(report).unwrap_or_default(),
            Error::exit_code,
        )
        .await
}

/// Refuses a flag that does not apply, saying why.
pub fn refuse(flag: &str, reason: &str) -> Error {
    Error::Usage(format!("{flag} does not apply here: {reason}"))
}

//! What a job did, for the terminal summary and `--report run.json`: the
//! same numbers, whatever the command and whether it succeeded.

use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Who ran the job, where and when: every report (and every failure
/// report) carries it, so a result can be traced to its host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Provenance {
    /// This kernel-host's version.
    pub kernel_host: &'static str,
    /// The WIT contract version it implements (`kernel-host:kernel@...`).
    pub contract: &'static str,
    /// Where host tensors ran: `cpu`, `cuda`, or the choice when no kernel
    /// used tensors (`auto`).
    pub device: String,
    /// When the report was made, RFC 3339 (UTC, seconds).
    pub timestamp: String,
}

impl Provenance {
    /// Now, on `sandbox`'s device.
    pub fn now(sandbox: &crate::Sandbox) -> Provenance {
        Provenance {
            kernel_host: env!("CARGO_PKG_VERSION"),
            contract: crate::bindings::WIT_VERSION,
            device: sandbox.tensors().device_name(),
            timestamp: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }
}

/// What a run did: the terminal summary and `--report run.json` are both
/// made from this.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    /// `"ok"` here; a failed run's report says `"failed"` with the error.
    pub outcome: &'static str,
    #[serde(flatten)]
    pub provenance: Provenance,
    pub pipeline: String,
    /// The manifest or bundle the job ran.
    pub manifest: PathBuf,
    /// `fit` (whole input) or `partial-fit` in chunks of this many rows;
    /// `none` for a bundle, which is not refitted.
    pub fit: crate::job::FitMode,
    /// The bundle written, if any.
    pub saved: Option<PathBuf>,
    pub train_rows: u64,
    pub test_rows: u64,
    /// Feature columns given to the first step.
    pub features: Vec<String>,
    /// Their types (for the run history; not in the report).
    #[serde(skip)]
    pub schema: Vec<(String, crate::data::ColumnType)>,
    /// e.g. `("accuracy", 0.98)`, computed on the test rows.
    #[serde(serialize_with = "metric")]
    pub metric: Option<(&'static str, f64)>,
    pub steps: Vec<StepReport>,
    pub output: Option<PathBuf>,
    #[serde(serialize_with = "seconds", rename = "elapsed_seconds")]
    pub elapsed: Duration,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepReport {
    pub id: String,
    /// `name@version`.
    pub kernel: String,
    /// transformer, classifier, regressor or clusterer.
    pub kind: String,
    pub sha256: String,
    pub calls: u64,
    #[serde(serialize_with = "seconds", rename = "busy_seconds")]
    pub busy: Duration,
    pub fuel: u64,
    pub peak_memory: u64,
    pub faults: u64,
    pub restarts: u64,
    /// Snapshots restored after failed calls.
    pub rollbacks: u64,
    /// The time the rollbacks took (replacing the store and writing the
    /// image back).
    #[serde(serialize_with = "seconds", rename = "rollback_seconds")]
    pub rollback_time: Duration,
    /// Fits that failed, were rolled back and skipped (`on-failure = "rollback"`).
    pub skipped_fits: u64,
    /// Most bytes of host tensors held at once.
    pub tensor_peak_bytes: u64,
    /// Snapshots taken, and the time they took.
    pub snapshots: u64,
    #[serde(serialize_with = "seconds", rename = "snapshot_seconds")]
    pub snapshot_time: Duration,
    pub cache_hits: u64,
    /// Times the step's memory was given back after a pass, the time that
    /// took, and the linear memory its instances held at the end, bytes.
    pub give_backs: u64,
    #[serde(serialize_with = "seconds", rename = "give_back_seconds")]
    pub give_back_time: Duration,
    pub final_memory: u64,
    /// How a shadow kernel's outputs compared, if the step has one.
    pub shadow: Option<crate::pipeline::Agreement>,
    /// The shadow's quality metric minus the primary's (final step only).
    pub shadow_metric_delta: Option<f64>,
}

impl StepReport {
    /// What a step did, from its stats (workers included).
    pub fn of(step: &crate::pipeline::Step) -> StepReport {
        let stats = step.stats();
        StepReport {
            id: step.spec.id.clone(),
            kernel: step.kernel_name(),
            kind: step.kind().to_string(),
            sha256: step.component.sha256().to_string(),
            calls: stats.calls,
            busy: stats.busy,
            fuel: stats.fuel,
            peak_memory: stats.peak_memory,
            faults: stats.faults,
            restarts: stats.restarts,
            rollbacks: stats.rollbacks,
            rollback_time: stats.rollback_time,
            skipped_fits: step.skipped_fits,
            tensor_peak_bytes: stats.tensor_peak,
            snapshots: stats.snapshots,
            snapshot_time: stats.snapshot_time,
            cache_hits: stats.cache_hits,
            give_backs: stats.give_backs,
            give_back_time: stats.give_back_time,
            final_memory: step.memory(),
            shadow: step.agreement().cloned(),
            shadow_metric_delta: None,
        }
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn metric<S: serde::Serializer>(m: &Option<(&'static str, f64)>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Metric<'a> {
        name: &'a str,
        value: f64,
    }
    m.map(|(name, value)| Metric { name, value }).serialize(s)
}

impl RunReport {
    /// Writes the report as pretty JSON, atomically.
    pub fn write_json(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let mut json = serde_json::to_vec_pretty(self)?;
        json.push(b'\n');
        crate::fsutil::write_atomic(path, &json)
    }
}

/// A report for a job that failed: what went wrong, whose fault it is,
/// and the exit code, with the same provenance as a successful report.
pub fn failure_json(
    error: &crate::Error,
    provenance: &Provenance,
    exit_code: i32,
) -> serde_json::Value {
    let mut json = serde_json::json!({
        "outcome": "failed",
        "error": error.to_string(),
        "blame": error.blame(),
        "exit_code": exit_code,
    });
    if let (Some(map), Ok(serde_json::Value::Object(p))) =
        (json.as_object_mut(), serde_json::to_value(provenance))
    {
        map.extend(p);
    }
    json
}

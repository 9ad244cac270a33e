//! What the host observed: every kernel call becomes a [`CallRecord`],
//! which [`Telemetry`] feeds to Prometheus metrics, to the audit log, and
//! to any in-process recorder (validation uses one to measure a sample run).
//!
//! Telemetry never changes what a call does and never fails it: a metrics
//! or audit problem is logged and the pipeline carries on.

mod audit;
mod metrics;
mod serve;

pub use audit::AuditLog;
pub use metrics::Metrics;
pub use serve::MetricsServer;

use crate::error::{Error, Fault};
use crate::limits::Limits;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a call ended, as a metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    /// The kernel returned its own `kernel-error`.
    KernelError,
    Trap,
    OutOfFuel,
    Timeout,
    MemoryLimit,
    /// The kernel returned output the host refused.
    BadOutput,
    /// The host failed around the call.
    HostError,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::KernelError => "kernel-error",
            Outcome::Trap => "trap",
            Outcome::OutOfFuel => "out-of-fuel",
            Outcome::Timeout => "timeout",
            Outcome::MemoryLimit => "memory-limit",
            Outcome::BadOutput => "bad-output",
            Outcome::HostError => "host-error",
        }
    }

    pub(crate) fn of<T>(result: &Result<T, Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(Error::Kernel { fault, .. }) => match fault {
                Fault::OutOfFuel { .. } => Outcome::OutOfFuel,
                Fault::MemoryLimit { .. } => Outcome::MemoryLimit,
                Fault::Timeout { .. } => Outcome::Timeout,
                Fault::Trap { .. } => Outcome::Trap,
                Fault::Refused { .. } => Outcome::KernelError,
                Fault::BadOutput(_) => Outcome::BadOutput,
            },
            Err(_) => Outcome::HostError,
        }
    }
}

/// Who made a call: the labels every metric and audit line carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CallContext {
    pub pipeline: String,
    pub step: String,
    pub kernel: String,
    pub version: String,
    pub sha256: String,
    #[serde(skip)]
    pub limits: Limits,
    pub grants: String,
}

/// One kernel call.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallRecord {
    pub operation: &'static str,
    /// When the call began (the first export call when several were made).
    #[serde(skip)]
    pub start: std::time::Instant,
    pub outcome: Outcome,
    /// The error's text, when the call failed.
    pub error: Option<String>,
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
    pub fuel: u64,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Linear memory of the instance after the call, bytes.
    pub memory: u64,
    /// Most bytes of host tensors the instance has held, so far.
    pub tensor_bytes: u64,
    /// Served from the result cache.
    pub cached: bool,
    /// The instance's store was replaced before this call (after a fault).
    pub restarted: bool,
    /// A snapshot was restored before this call returned (after a fault).
    pub rolled_back: bool,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Where call records go. Cheap to clone; share one per process or run.
#[derive(Clone, Default)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("metrics", &self.inner.metrics.is_some())
            .field("audit", &self.inner.audit.as_ref().map(AuditLog::path))
            .field("recording", &self.inner.recorded.is_some())
            .finish()
    }
}

#[derive(Default)]
struct Inner {
    metrics: Option<Metrics>,
    audit: Option<AuditLog>,
    recorded: Option<Mutex<Vec<(CallContext, CallRecord)>>>,
}

impl Telemetry {
    /// Telemetry that records nothing.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }

    pub fn metrics(&self) -> Option<&Metrics> {
        self.inner.metrics.as_ref()
    }

    /// Records kept in memory (when built with [`TelemetryBuilder::record`]).
    pub fn recorded(&self) -> Vec<(CallContext, CallRecord)> {
        self.inner
            .recorded
            .as_ref()
            .map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    pub(crate) fn record(&self, context: &CallContext, record: &CallRecord) {
        if let Some(metrics) = &self.inner.metrics {
            metrics.observe(context, record);
        }
        if let Some(audit) = &self.inner.audit {
            audit.append(context, record);
        }
        if let Some(recorded) = &self.inner.recorded {
            recorded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((context.clone(), record.clone()));
        }
    }
}

#[derive(Default)]
pub struct TelemetryBuilder {
    metrics: bool,
    audit: Option<AuditLog>,
    record: bool,
}

impl TelemetryBuilder {
    /// Keep Prometheus metrics.
    pub fn metrics(mut self) -> Self {
        self.metrics = true;
        self
    }

    /// Append one JSON line per call to `log`.
    pub fn audit(mut self, log: AuditLog) -> Self {
        self.audit = Some(log);
        self
    }

    /// Keep every record in memory.
    pub fn record(mut self) -> Self {
        self.record = true;
        self
    }

    pub fn build(self) -> anyhow::Result<Telemetry> {
        Ok(Telemetry {
            inner: Arc::new(Inner {
                metrics: if self.metrics {
                    Some(Metrics::new()?)
                } else {
                    None
                },
                audit: self.audit,
                recorded: self.record.then(|| Mutex::new(Vec::new())),
            }),
        })
    }
}

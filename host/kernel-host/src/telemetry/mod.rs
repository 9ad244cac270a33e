//! What the host observed: every kernel call becomes a [`CallRecord`],
//! which [`Telemetry`] feeds to Prometheus metrics, to the audit log, and
//! to any in-process recorder (validation uses one to measure a sample run).
//!
//! Telemetry never changes what a call does and never fails it: a metrics
//! or audit problem is logged and the pipeline carries on.

mod audit;
// Prometheus and its HTTP endpoint: the `telemetry` feature (on by
// default). Without it the audit log and in-process recording still work.
#[cfg(feature = "telemetry")]
mod metrics;
#[cfg(feature = "telemetry")]
mod serve;

pub use audit::AuditLog;
#[cfg(feature = "telemetry")]
pub use metrics::Metrics;
#[cfg(feature = "telemetry")]
pub use serve::MetricsServer;

pub use kernel_host_sandbox::observe::{CallContext, CallObserver, CallRecord, Outcome};
use std::sync::{Arc, Mutex};

/// Where call records go. Cheap to clone; share one per process or run.
#[derive(Clone, Default)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("metrics", &self.metrics_on())
            .field("audit", &self.inner.audit.as_ref().map(AuditLog::path))
            .field("recording", &self.inner.recorded.is_some())
            .finish()
    }
}

#[derive(Default)]
struct Inner {
    #[cfg(feature = "telemetry")]
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

    #[cfg(feature = "telemetry")]
    pub fn metrics(&self) -> Option<&Metrics> {
        self.inner.metrics.as_ref()
    }

    /// Whether Prometheus metrics are kept.
    pub fn metrics_on(&self) -> bool {
        #[cfg(feature = "telemetry")]
        return self.inner.metrics.is_some();
        #[cfg(not(feature = "telemetry"))]
        false
    }

    /// Records kept in memory (when built with [`TelemetryBuilder::record`]).
    pub fn recorded(&self) -> Vec<(CallContext, CallRecord)> {
        self.inner
            .recorded
            .as_ref()
            .map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }
}

impl CallObserver for Telemetry {
    fn call(&self, context: &CallContext, record: &CallRecord) {
        #[cfg(feature = "telemetry")]
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

    fn cache_miss(&self, _context: &CallContext, _operation: &str) {
        #[cfg(feature = "telemetry")]
        if let Some(metrics) = &self.inner.metrics {
            metrics.cache_miss(_context, _operation);
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
        #[cfg(not(feature = "telemetry"))]
        if self.metrics {
            anyhow::bail!("Prometheus metrics need kernel-host built with the `telemetry` feature");
        }
        Ok(Telemetry {
            inner: Arc::new(Inner {
                #[cfg(feature = "telemetry")]
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

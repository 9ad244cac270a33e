//! Prometheus metrics, labelled by pipeline, step, kernel name and version.
//!
//! | metric | type | extra labels |
//! |---|---|---|
//! | `kernel_host_calls_total` | counter | `operation`, `outcome` |
//! | `kernel_host_call_duration_seconds` | histogram | `operation` |
//! | `kernel_host_fuel_consumed_total` | counter | |
//! | `kernel_host_linear_memory_peak_bytes` | gauge | |
//! | `kernel_host_tensor_bytes_peak` | gauge | |
//! | `kernel_host_rows_in_total` | counter | `operation` |
//! | `kernel_host_rows_out_total` | counter | `operation` |
//! | `kernel_host_instance_restarts_total` | counter | |
//! | `kernel_host_rollbacks_total` | counter | |
//! | `kernel_host_rollback_duration_seconds` | histogram | |
//! | `kernel_host_cache_hits_total` | counter | `operation` |
//! | `kernel_host_cache_misses_total` | counter | `operation` |

use super::{CallContext, CallRecord};
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, Opts, Registry, TextEncoder,
};

const LABELS: [&str; 4] = ["pipeline", "step", "kernel", "version"];

/// The registry and every metric family kernel-host exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    calls: CounterVec,
    duration: HistogramVec,
    rollback_duration: HistogramVec,
    fuel: CounterVec,
    memory: GaugeVec,
    tensor_bytes: GaugeVec,
    rows_in: CounterVec,
    rows_out: CounterVec,
    restarts: CounterVec,
    rollbacks: CounterVec,
    cache_hits: CounterVec,
    cache_misses: CounterVec,
}

fn labels(extra: &[&'static str]) -> Vec<&'static str> {
    LABELS.iter().chain(extra).copied().collect()
}

impl Metrics {
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, extra: &[&'static str]| -> anyhow::Result<CounterVec> {
                let c = CounterVec::new(Opts::new(name, help), &labels(extra))?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let calls = counter(
            "kernel_host_calls_total",
            "Kernel calls by operation and outcome.",
            &["operation", "outcome"],
        )?;
        let fuel = counter(
            "kernel_host_fuel_consumed_total",
            "Fuel consumed by kernel calls (about one unit per wasm instruction).",
            &[],
        )?;
        let rows_in = counter(
            "kernel_host_rows_in_total",
            "Rows passed into kernel calls.",
            &["operation"],
        )?;
        let rows_out = counter(
            "kernel_host_rows_out_total",
            "Rows returned by kernel calls.",
            &["operation"],
        )?;
        let restarts = counter(
            "kernel_host_instance_restarts_total",
            "Kernel instances replaced by a fresh one after a fault.",
            &[],
        )?;
        let rollbacks = counter(
            "kernel_host_rollbacks_total",
            "Kernel instances restored to their last snapshot after a failed call.",
            &[],
        )?;
        let cache_hits = counter(
            "kernel_host_cache_hits_total",
            "Calls served from the result cache.",
            &["operation"],
        )?;
        let cache_misses = counter(
            "kernel_host_cache_misses_total",
            "Cacheable calls that ran because the cache had no result.",
            &["operation"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "kernel_host_call_duration_seconds",
                "Wall time of kernel calls.",
            )
            .buckets(prometheus::exponential_buckets(1e-5, 4.0, 12)?),
            &labels(&["operation"]),
        )?;
        registry.register(Box::new(duration.clone()))?;
        let rollback_duration = HistogramVec::new(
            HistogramOpts::new(
                "kernel_host_rollback_duration_seconds",
                "Wall time of restoring a kernel instance to its last snapshot.",
            )
            .buckets(prometheus::exponential_buckets(1e-5, 4.0, 12)?),
            &labels(&[]),
        )?;
        registry.register(Box::new(rollback_duration.clone()))?;
        let memory = GaugeVec::new(
            Opts::new(
                "kernel_host_linear_memory_peak_bytes",
                "Largest linear memory of the kernel's instance.",
            ),
            &labels(&[]),
        )?;
        registry.register(Box::new(memory.clone()))?;
        let tensor_bytes = GaugeVec::new(
            Opts::new(
                "kernel_host_tensor_bytes_peak",
                "Most bytes of host tensors (CPU or GPU) the kernel's instance held at once.",
            ),
            &labels(&[]),
        )?;
        registry.register(Box::new(tensor_bytes.clone()))?;
        Ok(Metrics {
            tensor_bytes,
            registry,
            calls,
            duration,
            rollback_duration,
            fuel,
            memory,
            rows_in,
            rows_out,
            restarts,
            rollbacks,
            cache_hits,
            cache_misses,
        })
    }

    pub(super) fn observe(&self, c: &CallContext, r: &CallRecord) {
        let base = [
            c.pipeline.as_str(),
            c.step.as_str(),
            c.kernel.as_str(),
            c.version.as_str(),
        ];
        let op = [base[0], base[1], base[2], base[3], r.operation];
        let outcome = [
            base[0],
            base[1],
            base[2],
            base[3],
            r.operation,
            r.outcome.label(),
        ];
        self.calls.with_label_values(&outcome).inc();
        self.duration
            .with_label_values(&op)
            .observe(r.duration.as_secs_f64());
        self.fuel.with_label_values(&base).inc_by(r.fuel as f64);
        if matches!(
            r.operation,
            "fit" | "partial-fit" | "transform" | "predict" | "predict-proba"
        ) {
            self.rows_in.with_label_values(&op).inc_by(r.rows_in as f64);
            self.rows_out
                .with_label_values(&op)
                .inc_by(r.rows_out as f64);
        }
        let memory = self.memory.with_label_values(&base);
        memory.set(memory.get().max(r.memory as f64));
        if r.tensor_bytes > 0 {
            let tensors = self.tensor_bytes.with_label_values(&base);
            tensors.set(tensors.get().max(r.tensor_bytes as f64));
        }
        if r.restarted {
            self.restarts.with_label_values(&base).inc();
        }
        if r.rolled_back {
            self.rollbacks.with_label_values(&base).inc();
            self.rollback_duration
                .with_label_values(&base)
                .observe(r.rollback_duration.as_secs_f64());
        }
        if matches!(r.operation, "transform" | "predict" | "predict-proba")
            && r.outcome == super::Outcome::Ok
        {
            // Counted only for steps with caching on; `cached` is false otherwise
            // and the miss counter is fed by the cache itself.
            if r.cached {
                self.cache_hits.with_label_values(&op).inc();
            }
        }
    }

    pub(crate) fn cache_miss(&self, c: &CallContext, operation: &str) {
        self.cache_misses
            .with_label_values(&[
                c.pipeline.as_str(),
                c.step.as_str(),
                c.kernel.as_str(),
                c.version.as_str(),
                operation,
            ])
            .inc();
    }

    /// The text exposition format, as served on `/metrics`.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!("encoding metrics failed: {e}");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Writes the exposition to `path` atomically (node-exporter textfile
    /// style: the collector never sees half a file).
    pub fn write_to(&self, path: &std::path::Path) -> anyhow::Result<()> {
        crate::fsutil::write_atomic(path, self.render().as_bytes())
    }
}

//! The audit log: one JSON line per kernel call, appended and flushed as
//! the call ends, so a crash loses at most the call in flight and never
//! leaves half a line behind (each line is one `write` to a file opened in
//! append mode).

use super::{CallContext, CallRecord};
use anyhow::Context as _;
use serde::Serialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// An append-only JSON-lines file.
#[derive(Clone)]
pub struct AuditLog {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    pipeline: &'a str,
    step: &'a str,
    kernel: String,
    sha256: &'a str,
    limits: Limits,
    grants: &'a str,
    operation: &'a str,
    outcome: &'a str,
    error: Option<&'a str>,
    duration_ms: f64,
    fuel: u64,
    rows_in: u64,
    rows_out: u64,
    cached: bool,
    /// Set when the call failed and the instance was restored to its last
    /// snapshot: how long that took.
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback_ms: Option<f64>,
}

#[derive(Serialize)]
struct Limits {
    fuel: u64,
    memory_mib: u64,
    timeout_ms: u128,
}

impl AuditLog {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: &Path) -> anyhow::Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the audit log {}", path.display()))?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn append(&self, c: &CallContext, r: &CallRecord) {
        let line = Line {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            pipeline: &c.pipeline,
            step: &c.step,
            kernel: format!("{}@{}", c.kernel, c.version),
            sha256: &c.sha256,
            limits: Limits {
                fuel: c.limits.fuel,
                memory_mib: c.limits.memory_bytes >> 20,
                timeout_ms: c.limits.timeout.as_millis(),
            },
            grants: &c.grants,
            operation: r.operation,
            outcome: r.outcome.label(),
            error: r.error.as_deref(),
            duration_ms: r.duration.as_secs_f64() * 1e3,
            fuel: r.fuel,
            rows_in: r.rows_in,
            rows_out: r.rows_out,
            cached: r.cached,
            rollback_ms: r
                .rolled_back
                .then_some(r.rollback_duration.as_secs_f64() * 1e3),
        };
        let mut bytes = match serde_json::to_vec(&line) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("could not encode an audit line: {e}");
                return;
            }
        };
        bytes.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(&bytes).and_then(|()| file.flush()) {
            tracing::warn!(path = %self.path.display(), "could not append to the audit log: {e}");
        }
    }
}

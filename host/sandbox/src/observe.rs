//! Call observation: every kernel call becomes a [`CallRecord`] handed to
//! the sandbox's [`CallObserver`] (metrics, an audit log, a test recorder:
//! whatever the embedding application plugs in). Observing never changes
//! what a call does and never fails it.

use crate::error::{Error, Fault};
use kernel_host_types::Limits;
use serde::Serialize;
use std::time::Duration;

/// Where call records go. Implementations must be cheap and must not fail:
/// log a problem and carry on.
pub trait CallObserver: Send + Sync + std::fmt::Debug {
    /// One kernel call ended.
    fn call(&self, context: &CallContext, record: &CallRecord);
    /// A step with a result cache computed instead of hitting it.
    fn cache_miss(&self, _context: &CallContext, _operation: &str) {}
}

/// Observes nothing.
#[derive(Debug)]
pub struct Unobserved;

impl CallObserver for Unobserved {
    fn call(&self, _: &CallContext, _: &CallRecord) {}
}

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

    pub fn of<T>(result: &Result<T, Error>) -> Outcome {
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
    /// The time restoring it took (zero without a rollback).
    #[serde(serialize_with = "seconds", rename = "rollback_seconds")]
    pub rollback_duration: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

//! Per-kernel resource limits and their enforcement.
//!
//! | limit | default | enforced by |
//! |---|---|---|
//! | `fuel` | 10 000 000 000 units per call (≈ one wasm instruction each) | wasmtime fuel metering; exhausted → [`Fault::OutOfFuel`] |
//! | `memory-mib` | 512 MiB of linear memory, all memories of the instance together | [`MemoryLimiter`]; a refused growth makes the guest's allocator fail → [`Fault::MemoryLimit`] |
//! | `timeout-ms` | 30 000 ms wall clock per call | a tokio timer around the async call; the guest yields every [`YIELD_INTERVAL_FUEL`] units so the timer can fire → [`Fault::Timeout`] |
//! | data handed to the host per call | 4 × `memory-mib` | wasmtime's hostcall fuel; more → a trap (the guest cannot hold more than its memory anyway) |
//! | table elements | 100 000 per table | [`MemoryLimiter`] |
//! | instances / tables / memories | 16 / 64 / 16 per store | [`MemoryLimiter`] |
//!
//! Every refusal is logged with the kernel id.
//!
//! [`Fault::OutOfFuel`]: crate::Fault::OutOfFuel
//! [`Fault::MemoryLimit`]: crate::Fault::MemoryLimit
//! [`Fault::Timeout`]: crate::Fault::Timeout

use serde::Deserialize;
use std::time::Duration;
use wasmtime::ResourceLimiter;

/// Fuel units between two yields to the async runtime. Small enough that a
/// timeout fires within about a millisecond of its deadline, large enough
/// that the yields cost nothing measurable.
pub const YIELD_INTERVAL_FUEL: u64 = 1_000_000;

/// The limits one kernel runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel granted to each call.
    pub fuel: u64,
    /// Linear memory cap, bytes, for the whole instance.
    pub memory_bytes: u64,
    /// Wall-clock limit of each call.
    pub timeout: Duration,
    /// Cap on the bytes of host tensors (CPU or GPU) the instance holds at
    /// once: wasmtime's memory limiter does not see them.
    pub tensor_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 10_000_000_000,
            memory_bytes: 512 << 20,
            timeout: Duration::from_secs(30),
            tensor_bytes: 1 << 30,
        }
    }
}

/// Limits as written in a manifest: every field optional, applied over the
/// manifest's `[defaults.limits]`, then over [`Limits::default`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsSpec {
    pub fuel: Option<u64>,
    pub memory_mib: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub tensor_mib: Option<u64>,
}

impl LimitsSpec {
    /// `self` over `base`.
    pub fn apply(&self, base: Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(base.fuel),
            memory_bytes: self.memory_mib.map_or(base.memory_bytes, |m| m << 20),
            timeout: self.timeout_ms.map_or(base.timeout, Duration::from_millis),
            tensor_bytes: self.tensor_mib.map_or(base.tensor_bytes, |m| m << 20),
        }
    }
}

const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Caps a store's memories and tables, and remembers what it refused so a
/// failed call can be classified as a memory-limit fault rather than a
/// generic trap.
#[derive(Debug)]
pub struct MemoryLimiter {
    kernel: String,
    limit: usize,
    /// Bytes of linear memory across the store's memories.
    total: usize,
    peak: usize,
    /// The size asked for in the last refused growth, if any since the last
    /// [`MemoryLimiter::take_refusal`].
    refused: Option<usize>,
}

impl MemoryLimiter {
    pub fn new(kernel: &str, limit_bytes: u64) -> Self {
        MemoryLimiter {
            kernel: kernel.to_string(),
            limit: usize::try_from(limit_bytes).unwrap_or(usize::MAX),
            total: 0,
            peak: 0,
            refused: None,
        }
    }

    /// Largest total linear memory the store has had, bytes.
    pub fn peak(&self) -> u64 {
        self.peak as u64
    }

    /// The refused size since the last call, clearing it.
    pub fn take_refusal(&mut self) -> Option<usize> {
        self.refused.take()
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total.saturating_sub(current).saturating_add(desired);
        if total > self.limit {
            tracing::warn!(
                kernel = %self.kernel,
                requested_mib = total >> 20,
                limit_mib = self.limit >> 20,
                "refused linear memory growth"
            );
            self.refused = Some(total);
            return Ok(false);
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            tracing::warn!(kernel = %self.kernel, desired, "refused table growth");
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_applies_over_base() {
        let base = Limits::default();
        let spec = LimitsSpec {
            fuel: Some(5),
            memory_mib: None,
            timeout_ms: Some(10),
            tensor_mib: Some(3),
        };
        let l = spec.apply(base);
        assert_eq!(l.fuel, 5);
        assert_eq!(l.tensor_bytes, 3 << 20);
        assert_eq!(l.memory_bytes, base.memory_bytes);
        assert_eq!(l.timeout, Duration::from_millis(10));
    }

    #[test]
    fn limiter_counts_all_memories_and_remembers_refusals() {
        let mut l = MemoryLimiter::new("k", 10 << 20);
        assert!(l.memory_growing(0, 6 << 20, None).unwrap());
        assert!(!l.memory_growing(0, 6 << 20, None).unwrap());
        assert_eq!(l.take_refusal(), Some(12 << 20));
        assert_eq!(l.take_refusal(), None);
        assert!(l.memory_growing(6 << 20, 9 << 20, None).unwrap());
        assert_eq!(l.peak(), 9 << 20);
    }
}

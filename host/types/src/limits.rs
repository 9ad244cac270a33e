//! Per-kernel resource limits and their enforcement.
//!
//! | limit | default | enforced by |
//! |---|---|---|
//! | `fuel` | 10 000 000 000 units per call (≈ one wasm instruction each) | wasmtime fuel metering; exhausted → `Fault::OutOfFuel` |
//! | `memory-mib` | 512 MiB of linear memory, all memories of the instance together | the sandbox's `MemoryLimiter`; a refused growth makes the guest's allocator fail → `Fault::MemoryLimit` |
//! | `timeout-ms` | 30 000 ms wall clock per call | a tokio timer around the async call; the guest yields every [`YIELD_INTERVAL_FUEL`] units so the timer can fire → `Fault::Timeout` |
//! | data handed to the host per call | 4 × `memory-mib` | wasmtime's hostcall fuel; more → a trap (the guest cannot hold more than its memory anyway) |
//! | table elements | 100 000 per table | the sandbox's `MemoryLimiter` |
//! | instances / tables / memories | 16 / 64 / 16 per store | the sandbox's `MemoryLimiter` |
//!
//! Every refusal is logged with the kernel id.
//!
//! `Fault::*`: the sandbox crate's fault classification.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Fuel units between two yields to the async runtime. Small enough that a
/// timeout fires within about a millisecond of its deadline, large enough
/// that the yields cost nothing measurable.
pub const YIELD_INTERVAL_FUEL: u64 = 1_000_000;

/// The limits one kernel runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Limits {
    /// Fuel granted to each call.
    pub fuel: u64,
    /// Linear memory cap, bytes, for the whole instance.
    pub memory_bytes: u64,
    /// Wall-clock limit of each call.
    #[serde(rename = "timeout-ms", with = "millis")]
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
}

/// A duration as whole milliseconds, the unit manifests use.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

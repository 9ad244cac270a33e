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
    /// `self` over `base`. A size too large for bytes in a `u64` saturates
    /// (and is then refused by the caller's range check, never wrapped to
    /// a small number).
    pub fn apply(&self, base: Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(base.fuel),
            memory_bytes: self.memory_mib.map_or(base.memory_bytes, mib_saturating),
            timeout: self.timeout_ms.map_or(base.timeout, Duration::from_millis),
            tensor_bytes: self.tensor_mib.map_or(base.tensor_bytes, mib_saturating),
        }
    }
}

/// `mib` MiB in bytes, `None` when that does not fit in a `u64`.
pub fn mib_to_bytes(mib: u64) -> Option<u64> {
    mib.checked_mul(1 << 20)
}

fn mib_saturating(mib: u64) -> u64 {
    mib_to_bytes(mib).unwrap_or(u64::MAX)
}

/// The largest `timeout-ms` accepted: a week. Longer is a mistake, and a
/// deadline that far out would overflow some clocks.
pub const MAX_TIMEOUT_MS: u64 = 7 * 24 * 3600 * 1000;
/// The largest `tensor-mib` accepted: 1 TiB.
pub const MAX_TENSOR_MIB: u64 = 1 << 20;

impl Limits {
    /// Refuses limits outside what the sandbox can enforce, naming the key.
    pub fn check(&self) -> Result<(), String> {
        if self.fuel == 0 {
            return Err("fuel must be greater than 0".into());
        }
        if self.memory_bytes == 0 || self.memory_bytes > 4 << 30 {
            return Err(format!(
                "memory-mib must be between 1 and 4096 (a kernel's 32-bit memory holds at most 4 GiB), not {}",
                self.memory_bytes >> 20
            ));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_millis(MAX_TIMEOUT_MS) {
            return Err(format!(
                "timeout-ms must be between 1 and {MAX_TIMEOUT_MS} (a week), not {}",
                self.timeout.as_millis()
            ));
        }
        if self.tensor_bytes > MAX_TENSOR_MIB << 20 {
            return Err(format!(
                "tensor-mib must be at most {MAX_TENSOR_MIB} (1 TiB), not {}",
                self.tensor_bytes >> 20
            ));
        }
        Ok(())
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
    fn huge_sizes_never_wrap() {
        // 2^44 + 1 MiB is 2^64 + 2^20 bytes: wrapped, that was 1 MiB.
        let spec = LimitsSpec {
            memory_mib: Some(17_592_186_044_417),
            tensor_mib: Some(1 << 44),
            ..LimitsSpec::default()
        };
        let l = spec.apply(Limits::default());
        assert_eq!(l.memory_bytes, u64::MAX);
        assert!(l.check().unwrap_err().contains("memory-mib"));
        let l = Limits {
            memory_bytes: 1 << 20,
            ..l
        };
        assert!(l.check().unwrap_err().contains("tensor-mib"));
        let l = LimitsSpec {
            timeout_ms: Some(u64::MAX),
            ..LimitsSpec::default()
        }
        .apply(Limits::default());
        assert!(l.check().unwrap_err().contains("timeout-ms"));
        assert!(Limits::default().check().is_ok());
        assert_eq!(mib_to_bytes(1 << 44), None);
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

//! What a manifest may grant a kernel beyond its sandbox. Nothing is granted
//! by default; the sandbox turns these into WASI preopens and clocks.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Capabilities a manifest grants one kernel. Nothing is granted by default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    /// Read-only directories: guest path (e.g. `/data`) → host directory
    /// (relative to the manifest in a manifest; absolute once loaded).
    #[serde(default)]
    pub read_dirs: BTreeMap<String, PathBuf>,
    /// Real wall and monotonic clocks. Without this grant both clocks are
    /// frozen at zero, so a kernel cannot time anything or leak the date.
    #[serde(default)]
    pub clocks: bool,
    /// Real entropy for `wasi:random`. Without this grant the kernel's
    /// random source is a deterministic stream from [`Grants::seed`], so a
    /// pipeline predicts the same way every run.
    #[serde(default)]
    pub entropy: bool,
    /// The seed of the kernel's random stream. Plans derive it from the
    /// pipeline's `seed` and the step id unless the manifest sets it.
    #[serde(default)]
    pub seed: Option<u64>,
}

impl Grants {
    /// The seed of the random stream of step `step` in a pipeline seeded
    /// with `pipeline_seed` (FNV-1a over both: stable across releases).
    pub fn derive_seed(pipeline_seed: u64, step: &str) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in pipeline_seed.to_le_bytes().iter().chain(step.as_bytes()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }

    /// A short description for logs and reports, e.g. `read /data, clocks`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.read_dirs.keys().map(|g| format!("read {g}")).collect();
        if self.clocks {
            parts.push("clocks".into());
        }
        if self.entropy {
            parts.push("entropy".into());
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

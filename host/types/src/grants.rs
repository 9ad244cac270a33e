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
}

impl Grants {
    /// A short description for logs and reports, e.g. `read /data, clocks`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.read_dirs.keys().map(|g| format!("read {g}")).collect();
        if self.clocks {
            parts.push("clocks".into());
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

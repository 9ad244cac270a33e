//! Mistakes in a manifest, located by file, line and key.

use std::path::PathBuf;

/// A mistake in a manifest, located by file, line and key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), key.as_ref().map(|k| format!(": `{k}`")).unwrap_or_default())]
pub struct ManifestError {
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `kernels.scale.sha256`.
    pub key: Option<String>,
    pub message: String,
}

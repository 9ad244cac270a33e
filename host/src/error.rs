//! Typed errors at the library edge.
//!
//! Users match on [`Error`] to tell a mistake in their manifest or data
//! (fix the input, exit code 1) from a kernel that misbehaved (the kernel is
//! at fault, exit code 2). A kernel fault always names the kernel id and
//! says what happened in plain words: "out of fuel", "memory limit",
//! "timeout", "trapped", or the kernel's own refusal.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong running a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest cannot be read, parsed or resolved.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// An input data file is unusable.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A kernel file was refused before anything ran.
    #[error("kernel `{kernel}` ({}): {problem}", path.display())]
    Load {
        kernel: String,
        path: PathBuf,
        problem: LoadProblem,
    },
    /// A kernel failed during a call. The kernel's store was discarded; the
    /// host and every other kernel carry on.
    #[error("kernel `{kernel}` failed in `{operation}`: {fault}")]
    Kernel {
        kernel: String,
        operation: &'static str,
        fault: Fault,
    },
    /// A saved bundle was refused.
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    /// Validation found problems; each is a complete message.
    #[error("validation found {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<String> },
    /// The host itself failed (engine setup, an output file).
    #[error(transparent)]
    Host(#[from] anyhow::Error),
}

impl Error {
    /// The CLI's exit code: 1 for a mistake in the input, 2 for a kernel at
    /// fault.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Load { .. } | Error::Kernel { .. } => 2,
            Error::Manifest(_)
            | Error::Data(_)
            | Error::Bundle(_)
            | Error::Invalid { .. }
            | Error::Host(_) => 1,
        }
    }

    /// The exit code of `kernel-host stream`, the contract a cluster
    /// engine relies on: 65 bad input or schema (do not retry), 70 a kernel
    /// fault (do not retry), 75 transient (a timeout, or the host could not
    /// do its part: safe to retry).
    pub fn stream_exit_code(&self) -> i32 {
        match self {
            Error::Manifest(_) | Error::Data(_) | Error::Bundle(_) | Error::Invalid { .. } => 65,
            Error::Kernel {
                fault:
                    Fault::Refused {
                        kind: RefusalKind::InvalidInput,
                        ..
                    },
                ..
            } => 65,
            Error::Kernel {
                fault: Fault::Timeout { .. },
                ..
            } => 75,
            Error::Load { .. } | Error::Kernel { .. } => 70,
            Error::Host(_) => 75,
        }
    }

    /// The fault, when this is a kernel failure.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            Error::Kernel { fault, .. } => Some(fault),
            _ => None,
        }
    }
}

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

/// A problem in an input data file, located by row and column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}{}: {message}", file.display(), row.map(|r| format!(": row {r}")).unwrap_or_default(), column.as_ref().map(|c| format!(", column `{c}`")).unwrap_or_default())]
pub struct DataError {
    pub file: PathBuf,
    /// 1-based data row (the header is row 0), when known.
    pub row: Option<u64>,
    pub column: Option<String>,
    pub message: String,
}

/// Why a kernel file was refused before it ran.
#[derive(Debug, thiserror::Error)]
pub enum LoadProblem {
    #[error("cannot read the file: {0}")]
    Read(std::io::Error),
    #[error(
        "sha256 mismatch: the manifest pins {expected} but the file hashes to {actual}; \
         rebuild the kernel or update the pin"
    )]
    HashMismatch { expected: String, actual: String },
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error(
        "does not export the kernel interface (it exports: {exports}); a kernel must export \
         {}@{}",
        crate::bindings::KERNEL_INTERFACE,
        crate::bindings::WIT_VERSION
    )]
    WrongWorld { exports: String },
    #[error(
        "was built for WIT kernel-host:kernel@{found}, which this host (WIT {supported}) cannot \
         run; rebuild it with a kernel-sdk for WIT {supported}"
    )]
    IncompatibleVersion { found: String, supported: String },
    #[error("needs imports this host does not provide: {0}")]
    Link(String),
    #[error("failed to compile: {0}")]
    Compile(String),
}

/// What went wrong inside a kernel call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Fault {
    #[error(
        "out of fuel: used its limit of {limit} units; raise `limits.fuel` if the work is legitimate"
    )]
    OutOfFuel { limit: u64 },
    #[error("memory limit: tried to grow its memory past {} MiB; raise `limits.memory-mib` if the work is legitimate", limit_bytes >> 20)]
    MemoryLimit { limit_bytes: u64 },
    #[error(
        "timeout: still running after {limit:?}; raise `limits.timeout-ms` if the work is legitimate"
    )]
    Timeout { limit: Duration },
    #[error("trapped: {message}")]
    Trap { message: String },
    #[error("the kernel refused: {kind}: {message}")]
    Refused { kind: RefusalKind, message: String },
    #[error("bad output: {0}")]
    BadOutput(String),
}

/// The kernel's own reason for refusing a call (the WIT `kernel-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    InvalidParams,
    InvalidInput,
    NotFitted,
    Unsupported,
    InvalidState,
    Failed,
}

impl std::fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefusalKind::InvalidParams => "invalid parameters",
            RefusalKind::InvalidInput => "invalid input",
            RefusalKind::NotFitted => "not fitted",
            RefusalKind::Unsupported => "unsupported",
            RefusalKind::InvalidState => "invalid state",
            RefusalKind::Failed => "failed",
        })
    }
}

impl From<crate::bindings::KernelError> for Fault {
    fn from(e: crate::bindings::KernelError) -> Self {
        use crate::bindings::KernelError as K;
        let (kind, message) = match e {
            K::InvalidParams(m) => (RefusalKind::InvalidParams, m),
            K::InvalidInput(m) => (RefusalKind::InvalidInput, m),
            K::NotFitted(m) => (RefusalKind::NotFitted, m),
            K::Unsupported(m) => (RefusalKind::Unsupported, m),
            K::InvalidState(m) => (RefusalKind::InvalidState, m),
            K::Failed(m) => (RefusalKind::Failed, m),
        };
        Fault::Refused { kind, message }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

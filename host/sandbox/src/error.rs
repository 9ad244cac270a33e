//! What can go wrong loading or calling a kernel, in words a user can act
//! on. Engine errors are turned into these by looking at what the store
//! observed (the limiter's recorded refusal, the fuel left, the deadline),
//! never by matching error text.

use std::path::PathBuf;
use std::time::Duration;

/// A kernel refused before it ran, a kernel that failed in a call, or the
/// sandbox itself unable to do its part.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    /// The sandbox was asked for something this machine does not have
    /// (e.g. tensors on a CUDA device without a usable GPU).
    #[error("{0}")]
    Unavailable(String),
    /// The sandbox could not do its part (engine or store set-up, the
    /// compile cache, a snapshot it could not take): not the kernel's
    /// fault, and often worth retrying.
    #[error(transparent)]
    Host(#[from] anyhow::Error),
}

impl Error {
    /// The fault, when this is a kernel failure.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            Error::Kernel { fault, .. } => Some(fault),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
         {}@{}: did you call `kernel_sdk::export_kernel!(YourKernel);` in the crate's lib.rs?",
        kernel_host_types::bindings::KERNEL_INTERFACE,
        kernel_host_types::bindings::WIT_VERSION
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
    #[error(
        "the file changed since it was loaded (sha256 {now}, loaded as {was}); load the kernel again"
    )]
    Changed { was: String, now: String },
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

impl From<kernel_host_types::bindings::KernelError> for Fault {
    fn from(e: kernel_host_types::bindings::KernelError) -> Self {
        use kernel_host_types::bindings::KernelError as K;
        let (kind, message) = match e {
            K::InvalidParams(m) => (RefusalKind::InvalidParams, m),
            K::InvalidInput(m) => (RefusalKind::InvalidInput, m),
            K::NotFitted(m) => (RefusalKind::NotFitted, m),
            K::Unsupported(m) => (RefusalKind::Unsupported, m),
            K::InvalidState(m) => (RefusalKind::InvalidState, m),
            K::Failed(m) => (RefusalKind::Failed, m),
        };
        let message = kernel_host_types::printable(&message).into_owned();
        Fault::Refused { kind, message }
    }
}

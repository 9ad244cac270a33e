//! Typed errors at the library edge, and whose fault each one is.
//!
//! Every [`Error`] belongs to one [`Blame`]: the user's input (a manifest,
//! a data file, a flag, a bundle: fix it and run again), a kernel that
//! misbehaved (it names the kernel and says what happened in plain words:
//! "out of fuel", "memory limit", "timeout", "trapped", or the kernel's own
//! refusal), the host's own bug (report it; retrying gives the same
//! result), or a transient failure of the machine (worth retrying). The
//! CLI's exit codes and `stream`'s retry contract come from the blame, so a
//! cluster engine never retries a deterministic failure.

pub use kernel_host_manifest::ManifestError;
pub use kernel_host_sandbox::{Fault, LoadProblem, RefusalKind};
pub use kernel_host_types::DataError;
use std::path::PathBuf;

/// Everything that can go wrong running a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest cannot be read, parsed or resolved.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// An input data file is unusable.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A saved bundle was refused.
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    /// Validation found problems; each is a complete message.
    #[error("validation found {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<String> },
    /// A request that cannot be carried out as asked: a flag that does not
    /// apply to this command or input, a missing argument.
    #[error("{0}")]
    Usage(String),
    /// The plan asks for something this machine does not have (e.g.
    /// `device = "cuda"` without a usable GPU).
    #[error("{0}")]
    Unavailable(String),
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
    /// A kernel broke properties of the contract (`kernel-host test`).
    #[error(
        "kernel `{kernel}` failed {} conformance propert{}: {}; the report above says what to fix",
        failed.len(),
        if failed.len() == 1 { "y" } else { "ies" },
        failed.join(", ")
    )]
    Conformance { kernel: String, failed: Vec<String> },
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The host broke its own invariants: a bug, the same on every retry.
    #[error("internal error (a kernel-host bug; please report it): {0}")]
    Internal(String),
    /// The host could not do its part for a reason outside the request
    /// (engine or store set-up, the async runtime, resources).
    #[error(transparent)]
    Host(anyhow::Error),
}

/// Whose fault an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blame {
    /// The input: manifest, data, bundle, flags, or what the machine lacks
    /// for this plan. Fix it; retrying changes nothing.
    User,
    /// A kernel misbehaved or refused. Retrying changes nothing.
    Kernel,
    /// A host bug. Retrying changes nothing.
    Internal,
    /// Worth retrying: a timeout, an I/O or resource failure.
    Transient,
}

impl Error {
    /// Whose fault this is.
    pub fn blame(&self) -> Blame {
        match self {
            Error::Manifest(_)
            | Error::Data(_)
            | Error::Bundle(_)
            | Error::Invalid { .. }
            | Error::Usage(_)
            | Error::Unavailable(_) => Blame::User,
            Error::Kernel {
                fault:
                    Fault::Refused {
                        kind: RefusalKind::InvalidInput,
                        ..
                    },
                ..
            } => Blame::User,
            // Wall-clock limits depend on the machine's load.
            Error::Kernel {
                fault: Fault::Timeout { .. },
                ..
            } => Blame::Transient,
            Error::Load { .. } | Error::Kernel { .. } | Error::Conformance { .. } => Blame::Kernel,
            Error::Io { source, .. } => io_blame(source),
            Error::Internal(_) => Blame::Internal,
            Error::Host(_) => Blame::Transient,
        }
    }

    /// The CLI's exit code: 1 a mistake in the input, 2 a kernel failed
    /// (a timeout too), 3 the host failed (a bug, or a transient failure).
    pub fn exit_code(&self) -> i32 {
        if let Error::Load { .. } | Error::Kernel { .. } = self {
            // Whatever a retry might do, the kernel is what failed.
            return 2;
        }
        match self.blame() {
            Blame::User => 1,
            Blame::Kernel => 2,
            Blame::Internal | Blame::Transient => 3,
        }
    }

    /// The exit code of `kernel-host stream`, the contract a cluster
    /// engine relies on (sysexits): 65 bad input or schema, 70 a kernel
    /// fault or a host bug (do not retry either), 75 transient (a timeout,
    /// an I/O or resource failure: safe to retry).
    pub fn stream_exit_code(&self) -> i32 {
        match self.blame() {
            Blame::User => 65,
            Blame::Kernel | Blame::Internal => 70,
            Blame::Transient => 75,
        }
    }

    /// The fault, when this is a kernel failure.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            Error::Kernel { fault, .. } => Some(fault),
            _ => None,
        }
    }

    /// A file operation that failed: an I/O error found in `error`'s chain
    /// keeps its kind (and so its blame); anything else is a host bug.
    pub fn io(context: impl Into<String>, error: anyhow::Error) -> Error {
        let context = context.into();
        match error
            .chain()
            .find_map(|e| e.downcast_ref::<std::io::Error>())
        {
            Some(io) => Error::Io {
                context,
                source: std::io::Error::new(io.kind(), format!("{error:#}")),
            },
            None => Error::Internal(format!("{context}: {error:#}")),
        }
    }
}

/// Missing files, permissions and bad paths are the user's to fix; the
/// rest (a full disk, interrupted or timed-out I/O) may pass.
fn io_blame(error: &std::io::Error) -> Blame {
    use std::io::ErrorKind as K;
    match error.kind() {
        K::NotFound
        | K::PermissionDenied
        | K::AlreadyExists
        | K::InvalidInput
        | K::InvalidData
        | K::IsADirectory
        | K::NotADirectory
        | K::ReadOnlyFilesystem
        | K::InvalidFilename => Blame::User,
        _ => Blame::Transient,
    }
}

impl From<kernel_host_sandbox::Error> for Error {
    fn from(e: kernel_host_sandbox::Error) -> Self {
        match e {
            kernel_host_sandbox::Error::Load {
                kernel,
                path,
                problem,
            } => Error::Load {
                kernel,
                path,
                problem,
            },
            kernel_host_sandbox::Error::Kernel {
                kernel,
                operation,
                fault,
            } => Error::Kernel {
                kernel,
                operation,
                fault,
            },
            kernel_host_sandbox::Error::Unavailable(why) => Error::Unavailable(why),
            kernel_host_sandbox::Error::Host(e) => Error::Host(e),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

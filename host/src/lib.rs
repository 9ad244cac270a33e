//! # kernel-host: run untrusted machine-learning kernels, sandboxed
//!
//! Kernels are WebAssembly components built against the WIT package in
//! `wit/` (usually with the `kernel-sdk` crate). This library loads them,
//! checks them before they run, and calls them under per-kernel fuel,
//! memory and wall-clock limits with no capabilities beyond what a manifest
//! grants. A kernel that traps, runs away or misbehaves yields a typed
//! [`Error`] naming it; the host and every other kernel carry on.
//!
//! Key types:
//! - [`Sandbox`]: the configured engine, shared by all kernels;
//! - [`KernelComponent`] / [`KernelInstance`]: a verified kernel and one
//!   sandboxed instance of it;
//! - [`Manifest`]: a pipeline description, parsed and resolved;
//! - [`Pipeline`]: the kernels of a manifest, fitted and used together;
//! - [`run::run`]: the whole job behind `kernel-host run`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kernel_host::Error> {
//! use kernel_host::{Manifest, Sandbox};
//! let sandbox = Sandbox::builder().build()?;
//! let manifest = Manifest::load("examples/penguins/pipeline.toml".as_ref())?;
//! let report = kernel_host::run::run(&sandbox, manifest).await?;
//! println!("{:?}", report.metric);
//! # Ok(()) }
//! ```

pub mod bindings;
pub mod blocking;
pub mod builder;
pub mod bundle;
pub mod cache;
pub mod chunked;
pub mod data;
mod engine;
mod error;
pub mod explain;
pub mod freeze;
pub mod fsutil;
pub mod graph;
mod imports;
mod kernel;
pub mod limits;
pub mod manifest;
mod pipeline;
pub mod registry;
pub mod run;
pub mod score;
pub mod snapshot;
mod state;
pub mod telemetry;
pub mod tensor;
pub mod validate;

pub use engine::{Metering, Sandbox, SandboxBuilder, sha256_hex};
pub use error::{DataError, Error, Fault, LoadProblem, ManifestError, RefusalKind, Result};
pub use kernel::{Checkpoint, KernelComponent, KernelInstance, KernelStats};
pub use limits::Limits;
pub use manifest::Manifest;
pub use pipeline::{Output, Pipeline, PipelineCheckpoint, Step};
pub use state::Grants;
pub use telemetry::Telemetry;

/// Tunes the process allocator for a host that moves large frames: freed
/// buffers up to 32 MiB (and up to 128 MiB of free heap, one large frame) are kept for reuse instead of being returned to the
/// OS and faulted in again on the next frame (glibc's default, which costs
/// about 1 µs per 4 KiB page). Call once, early in `main`. A no-op off glibc.
pub fn tune_process_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts glibc's allocation thresholds; it is
    // called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}

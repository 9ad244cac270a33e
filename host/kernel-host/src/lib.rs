//! # kernel-host: run untrusted machine-learning kernels, sandboxed
//!
//! Kernels are WebAssembly components built against the WIT package in
//! `wit/` (usually with the `kernel-sdk` crate). This library loads them,
//! checks them before they run, and calls them under per-kernel fuel,
//! memory and wall-clock limits with no capabilities beyond what a manifest
//! grants. A kernel that traps, runs away or misbehaves yields a typed
//! [`Error`] naming it; the host and every other kernel carry on.
//!
//! This crate is the facade over the host's crates, each named by its role
//! (arrows point one way): `kernel-host-tensor` (host tensors, CPU/CUDA) ←
//! `kernel-host-types` (the contract's types, frames, limits, grants) ←
//! `kernel-host-data` (CSV/Arrow, chunks, metrics) ←
//! `kernel-host-manifest` (manifests → [`Plan`]); `kernel-host-sandbox`
//! (engine, instances, faults, snapshots). Here: the [`Pipeline`], the one
//! job driver ([`job`]), bundles, the registry, telemetry, validation,
//! explanations, the stream loop, and the error users match on.
//!
//! Key types:
//! - [`Sandbox`]: the configured engine, shared by all kernels;
//! - [`Plan`]: a pipeline, resolved from a manifest or read from a bundle;
//! - [`Pipeline`]: the kernels of a plan, fitted and used together;
//! - [`job::run`]: the whole job behind `kernel-host run`, `fit`, `predict`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kernel_host::Error> {
//! use kernel_host::job::{self, JobOptions, Quiet, Source};
//! use kernel_host::{Plan, Sandbox};
//! let sandbox = Sandbox::builder().build()?;
//! let plan = Plan::load("examples/penguins/pipeline.toml".as_ref())?;
//! let options = JobOptions { predict: true, ..JobOptions::default() };
//! let report = job::run(&sandbox, Source::Plan(plan), &options, &Quiet).await?;
//! println!("{:?}", report.metric);
//! # Ok(()) }
//! ```

pub mod blocking;
pub mod bundle;
pub mod conformance;
mod error;
pub mod explain;
pub mod history;
pub mod job;
mod pipeline;
mod readahead;
pub mod recommend;
pub mod registry;
pub mod report;
pub mod scaffold;
pub mod select;
pub mod spill;
pub mod stream;
pub mod telemetry;
pub mod validate;
pub mod viz;

// The crates below, re-exported under the names their parts had when they
// were modules of this one: `kernel_host::data::read_table` and
// `kernel_host_data::read_table` are the same function.
pub use kernel_host_data as data;
pub use kernel_host_data::score;
pub use kernel_host_manifest as manifest;
pub use kernel_host_manifest::{builder, graph};
pub use kernel_host_sandbox::{cache, freeze, snapshot};
pub use kernel_host_tensor as tensor;
pub use kernel_host_types::{bindings, frame, fsutil, limits, wit_version};

pub use error::{Blame, DataError, Error, Fault, LoadProblem, ManifestError, RefusalKind, Result};
pub use kernel_host_manifest::Plan;
/// The sandbox's own error (what a [`KernelInstance`] call returns);
/// converts into [`Error`].
pub use kernel_host_sandbox::Error as SandboxError;
pub use kernel_host_sandbox::{
    Checkpoint, GiveBack, KernelComponent, KernelInstance, KernelStats, Metering, RESTORE_AHEAD,
    SPARE_INSTANCES, Sandbox, SandboxBuilder, sha256_hex,
};
pub use kernel_host_types::{Grants, Limits, printable, printable_lines};
pub use pipeline::{Output, Pipeline, PipelineCheckpoint, Step};
pub use telemetry::Telemetry;

/// Tunes the process allocator for a host that moves large frames: freed
/// buffers up to 32 MiB (and up to 128 MiB of free heap, one large frame)
/// are kept for reuse instead of being returned to the OS and faulted in
/// again on the next frame (glibc's default, which costs about 1 µs per
/// 4 KiB page); and every thread allocates from one arena, so memory one
/// thread frees (a CSV column's text) is what the next allocation reuses,
/// whichever thread makes it. Measured on the 1M-row pipeline: peak RSS
/// 724–777 MiB with glibc's per-thread arenas, 492–500 MiB with one, at
/// the same wall time. `KERNEL_HOST_MALLOC_ARENAS=N` allows N arenas
/// (threads allocating at once contend less, at the cost of that memory).
/// Call once, early in `main`. A no-op off glibc.
pub fn tune_process_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts glibc's allocation parameters; it is
    // called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
        let arenas = std::env::var("KERNEL_HOST_MALLOC_ARENAS")
            .ok()
            .and_then(|v| v.parse::<libc::c_int>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(1);
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

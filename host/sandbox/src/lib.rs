//! kernel-host-sandbox: untrusted WebAssembly kernels, run under limits.
//!
//! The engine every kernel shares ([`Sandbox`], built once with its
//! defaults documented in [`engine`]), the store each kernel gets (its
//! memory limiter, WASI context made from its grants and nothing else, its
//! host tensors), the host imports kernels call (one file per interface in
//! `imports/`), verified components ([`KernelComponent`]) and sandboxed
//! instances ([`KernelInstance`]) with fault classification, recovery,
//! transparent snapshots and rollback, the result cache, `freeze`, and call
//! observation ([`observe::CallObserver`]).
//!
//! This crate knows nothing of manifests, pipelines or files of data: it
//! loads the bytes it is given and calls the kernel it is asked to.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kernel_host_sandbox::Error> {
//! use kernel_host_sandbox::{KernelComponent, Sandbox};
//! use kernel_host_types::{Grants, Limits};
//! let sandbox = Sandbox::builder().build()?;
//! let component = KernelComponent::load(&sandbox, "scale", "scaler.wasm".as_ref(), None).await?;
//! let mut scaler = component.instantiate(Limits::default(), Grants::default()).await?;
//! println!("{}", scaler.describe().await?.name);
//! # Ok(()) }
//! ```

pub mod cache;
pub mod engine;
mod error;
pub mod freeze;
mod imports;
mod kernel;
mod limiter;
pub mod observe;
pub mod snapshot;
mod state;

pub use engine::{
    MAX_SPARE_INSTANCES, Metering, RESTORE_AHEAD, SPARE_INSTANCES, Sandbox, SandboxBuilder,
    sha256_hex,
};
pub use error::{Error, Fault, LoadProblem, RefusalKind, Result};
pub use kernel::{
    Checkpoint, GiveBack, KernelComponent, KernelInstance, KernelStats, MAX_KERNEL_BYTES,
};
pub use limiter::MemoryLimiter;
pub use observe::{CallContext, CallObserver, CallRecord, Outcome};

//! kernel-host-manifest: pipeline manifests and the plans made from them.
//!
//! A manifest is a TOML document (plain serde data, every table
//! `deny_unknown_fields`; see [`document`]). Loading one resolves it into a
//! [`Plan`]: paths made absolute, limits merged over the defaults,
//! parameters typed, registry kernels pinned, steps in execution order, and
//! every mistake reported with its file, line and key ([`ManifestError`]).
//! A plan is serializable: a bundle's index is one.
//!
//! This crate knows nothing of the engine: it never loads or runs a kernel,
//! and it reads no environment. Registry kernels are found through a
//! [`KernelResolver`] the caller passes in.
//!
//! ```no_run
//! use kernel_host_manifest::Plan;
//! # fn demo() -> Result<(), kernel_host_manifest::ManifestError> {
//! let plan = Plan::load("examples/penguins/pipeline.toml".as_ref())?;
//! for step in &plan.steps {
//!     println!("{} runs {}", step.id, step.source.display());
//! }
//! # Ok(()) }
//! ```

pub mod builder;
pub mod bundle_file;
pub mod document;
mod error;
pub mod graph;
pub mod lock;
mod plan;

pub use error::ManifestError;
pub use graph::Input;
pub use lock::{KernelResolver, Lock, NoRegistry, Pin, Resolved, parse_reference};
pub use plan::{DataSource, DataSpec, KernelSpec, OnFailure, OutputSpec, Plan, Spill};

//! Host matrices (`kernel-host:kernel/columns`'s `matrix` resource): f64,
//! row-major. The arithmetic is `sdk/src/matrix_ops.rs`, the file the SDK
//! runs natively, so a kernel computes the same numbers in the host and in
//! its own unit tests.

pub use crate::bindings::{Column, ColumnValues};

#[path = "../../../sdk/src/matrix_ops.rs"]
pub mod ops;

pub use ops::Mat;

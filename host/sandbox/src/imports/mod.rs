//! Host implementations of the interfaces kernels import, one file each.

mod columns;
mod log;
mod matrix;
mod tensor;

pub use log::LOG_MESSAGES_PER_CALL;

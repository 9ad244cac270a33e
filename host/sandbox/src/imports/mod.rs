//! Host implementations of the interfaces kernels import, one file each.

mod log;
mod columns;
mod tensor;

pub use log::LOG_MESSAGES_PER_CALL;

//! Host implementations of the interfaces kernels import, one file each.

mod log;

pub use log::LOG_MESSAGES_PER_CALL;

//! Logging into the host's log. Inside the sandbox these calls go through
//! the `log` import and are tagged with the kernel id by the host; in native
//! unit tests they print to stderr.

use crate::__bindings::kernel_host::kernel::log::Level;

fn emit(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::__bindings::kernel_host::kernel::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

pub fn debug(message: &str) {
    emit(Level::Debug, message);
}

pub fn info(message: &str) {
    emit(Level::Info, message);
}

pub fn warn(message: &str) {
    emit(Level::Warn, message);
}

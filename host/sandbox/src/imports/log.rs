//! `kernel-host:kernel/log`: a kernel's messages go into the host's log,
//! tagged with the kernel id. Each call may log at most
//! [`LOG_MESSAGES_PER_CALL`] messages of at most [`LOG_MESSAGE_BYTES`]
//! bytes; the rest is dropped (once noted) so a chatty or hostile kernel
//! cannot flood the host.

use crate::state::HostState;
use kernel_host_types::bindings::kernel_host::kernel::{log, types};

pub const LOG_MESSAGES_PER_CALL: u32 = 1000;
pub const LOG_MESSAGE_BYTES: usize = 4096;

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) {
        if self.log_budget == 0 {
            return;
        }
        self.log_budget -= 1;
        let kernel = &*self.kernel;
        let mut message = message;
        if message.len() > LOG_MESSAGE_BYTES {
            let mut cut = LOG_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [truncated]");
        }
        kernel_host_types::make_printable(&mut message);
        match level {
            log::Level::Trace => tracing::trace!(kernel, "{message}"),
            log::Level::Debug => tracing::debug!(kernel, "{message}"),
            log::Level::Info => tracing::info!(kernel, "{message}"),
            log::Level::Warn => tracing::warn!(kernel, "{message}"),
            log::Level::Error => tracing::error!(kernel, "{message}"),
        }
        if self.log_budget == 0 {
            tracing::warn!(
                kernel,
                "log limit reached: further messages in this call are dropped"
            );
        }
    }
}

impl types::Host for HostState {}

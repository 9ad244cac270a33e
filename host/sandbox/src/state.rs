//! What each kernel's wasmtime `Store` holds: its WASI context (built from
//! the kernel's grants and nothing else), its memory limiter, and a capped
//! capture of its stderr.
//!
//! A guest sees no environment variables, no arguments, no stdin, no
//! network, no filesystem except read-only directories its manifest grants,
//! frozen clocks unless granted real ones, and a seeded random stream
//! unless granted real entropy. Its stdout is discarded; its
//! stderr is kept (the last 64 KiB) so a panic message can be reported, and
//! is forwarded to the host's log.

use crate::limiter::MemoryLimiter;
use kernel_host_types::Grants;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{
    FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

/// The store data of one kernel instance.
pub struct HostState {
    pub(crate) kernel: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) stderr: GuestStderr,
    /// Log messages the guest may still send during the current call.
    pub(crate) log_budget: u32,
    /// The kernel's host tensors: backend, exchange, byte accounts.
    pub(crate) tensors: kernel_host_tensor::StoreTensors,
    /// When the current call's time is up (host work checks it).
    pub(crate) deadline: Option<std::time::Instant>,
    /// Values of the host columns the kernel holds handles to: handles and
    /// bytes charged, by the values' address (see `imports/columns.rs`).
    pub(crate) columns: std::collections::HashMap<usize, (u32, u64)>,
}

impl HostState {
    /// The store's resource table (tensors live there).
    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    pub(crate) fn table_ref(&self) -> &ResourceTable {
        &self.table
    }

    /// Whether the current call's time is up.
    pub(crate) fn past_deadline(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| std::time::Instant::now() >= deadline)
    }

    /// Host resources (streams, directories, tensors) the guest holds handles to.
    pub fn host_handles(&mut self) -> usize {
        self.table.iter_mut().count()
    }

    pub(crate) fn new(
        kernel: Arc<str>,
        memory_bytes: u64,
        grants: &Grants,
        tensors: kernel_host_tensor::StoreTensors,
    ) -> anyhow::Result<Self> {
        let stderr = GuestStderr::default();
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        if !grants.clocks {
            wasi.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
        }
        if !grants.entropy {
            // A deterministic stream, so runs repeat exactly; real entropy
            // only when granted.
            use rand::SeedableRng as _;
            let seed = grants.seed.unwrap_or(0);
            wasi.secure_random(rand::rngs::StdRng::seed_from_u64(seed))
                .insecure_random(rand::rngs::StdRng::seed_from_u64(
                    seed ^ 0x9e37_79b9_7f4a_7c15,
                ))
                .insecure_random_seed(u128::from(seed) << 64 | u128::from(!seed));
        }
        for (guest, host) in &grants.read_dirs {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .map_err(|e| e.context(format!("granting {} as {guest}", host.display())))?;
        }
        Ok(HostState {
            limiter: MemoryLimiter::new(&kernel, memory_bytes),
            kernel,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            stderr,
            log_budget: 0,
            tensors,
            deadline: None,
            columns: std::collections::HashMap::new(),
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Clocks stopped at zero.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

const STDERR_KEEP: usize = 64 << 10;

#[derive(Default)]
struct StderrBuffer {
    bytes: Vec<u8>,
    /// Bytes dropped from the front to stay within [`STDERR_KEEP`].
    dropped: u64,
}

/// A guest's stderr: always accepts writes (a full pipe must not make the
/// guest's own error reporting fail), keeps the most recent 64 KiB.
#[derive(Clone, Default)]
pub struct GuestStderr {
    buffer: Arc<Mutex<StderrBuffer>>,
}

impl GuestStderr {
    fn with<R>(&self, f: impl FnOnce(&mut StderrBuffer) -> R) -> R {
        let mut guard = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// A position to read from later with [`GuestStderr::since`].
    pub fn mark(&self) -> u64 {
        self.with(|b| b.dropped + b.bytes.len() as u64)
    }

    /// Text written after `mark` that is still retained.
    pub fn since(&self, mark: u64) -> String {
        self.with(|b| {
            let skip = usize::try_from(mark.saturating_sub(b.dropped)).unwrap_or(usize::MAX);
            String::from_utf8_lossy(b.bytes.get(skip..).unwrap_or_default()).into_owned()
        })
    }

    fn push(&self, data: &[u8]) {
        self.with(|b| {
            b.bytes.extend_from_slice(data);
            if b.bytes.len() > STDERR_KEEP {
                let excess = b.bytes.len() - STDERR_KEEP;
                b.bytes.drain(..excess);
                b.dropped += excess as u64;
            }
        });
    }
}

impl IsTerminal for GuestStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStderr {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for GuestStderr {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The panic message in a Rust guest's stderr, if it panicked: the text
/// after `panicked at <location>:`, up to the backtrace note.
pub fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.rfind("panicked at ")?;
    let rest = &stderr[start + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n").unwrap_or((rest, ""));
    let message: Vec<&str> = message
        .lines()
        .take_while(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    let message = message.join(" ");
    let location = kernel_host_types::printable(location.trim());
    Some(if message.trim().is_empty() {
        format!("panicked at {location}")
    } else {
        format!(
            "panicked at {location}: {}",
            kernel_host_types::printable(message.trim())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_is_extracted() {
        let err = "\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nboom on purpose\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(err).unwrap(),
            "panicked at src/lib.rs:12:9: boom on purpose"
        );
        assert_eq!(panic_message("nothing here"), None);
    }

    #[test]
    fn stderr_keeps_the_tail_and_marks_survive_drops() {
        let s = GuestStderr::default();
        s.push(&vec![b'a'; STDERR_KEEP]);
        let mark = s.mark();
        s.push(b"tail");
        assert_eq!(s.since(mark), "tail");
        assert_eq!(s.since(0).len(), STDERR_KEEP);
    }
}

//! The sandbox engine: one place where every wasmtime setting that matters
//! for isolation and speed is chosen and documented.
//!
//! | setting | default | why |
//! |---|---|---|
//! | metering | fuel | Bounds CPU per call deterministically. Fuel also drives the async yields that let a wall-clock timer cancel a runaway call, so one instrumentation gives both guarantees (see the benchmark in the README for the cost of each option). |
//! | epoch interruption | off | Only needed when fuel is off; costs more than fuel in tight loops on our machines. |
//! | max wasm stack | 1 MiB | Deep recursion traps as a stack overflow instead of exhausting the host. |
//! | allocator | pooling | Instantiation in microseconds; memory slots stay partly resident between uses. |
//! | memory init | copy-on-write | Instances start without copying their data segments. |
//! | compiled components | cached on disk | A second run of the same kernel skips compilation. |
//!
//! The engine never grants anything to a guest by itself: capabilities come
//! from [`Grants`](kernel_host_types::Grants), per kernel.

use crate::error::Error;
use crate::observe::{CallObserver, Unobserved};
use crate::state::HostState;
use anyhow::Context as _;
use kernel_host_types::bindings::MlKernelRef;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How CPU use is bounded and how timeouts get a chance to fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metering {
    /// Fuel counting; yields every [`YIELD_INTERVAL_FUEL`](kernel_host_types::limits::YIELD_INTERVAL_FUEL) units. The default.
    Fuel,
    /// Epoch interruption ticking every millisecond; no fuel limit.
    Epoch,
    /// Both.
    FuelAndEpoch,
    /// Neither: no CPU bound and no timeouts. For benchmarks only.
    Unmetered,
}

impl Metering {
    pub fn fuel(self) -> bool {
        matches!(self, Metering::Fuel | Metering::FuelAndEpoch)
    }

    pub fn epoch(self) -> bool {
        matches!(self, Metering::Epoch | Metering::FuelAndEpoch)
    }
}

/// Builds a [`Sandbox`].
#[derive(Clone, Debug)]
pub struct SandboxBuilder {
    metering: Metering,
    pooling: bool,
    cache_dir: Option<PathBuf>,
    observer: Arc<dyn CallObserver>,
    snapshots: bool,
    keep_resident: usize,
    spares: usize,
    restore_ahead: u64,
    device: kernel_host_tensor::DeviceChoice,
    by_reference: bool,
    verify_loads: bool,
    give_back_above: Option<u64>,
    perf_map: bool,
}

/// Memory an instance may hold after a pass before the host gives back
/// what it grew into beyond its state (see
/// [`crate::KernelInstance::give_back`]): smaller memories are kept, the
/// next call would fault their pages in again.
pub const GIVE_BACK_ABOVE: u64 = 32 << 20;

/// Bytes of each pooled memory slot kept resident (zeroed in place rather
/// than returned to the kernel) when an instance goes. A rollback writes
/// the snapshot into a fresh instance: within this size the pages are
/// already mapped. Measured (benches/snapshots.rs): restoring a 2 MiB image
/// took 455 µs with 1 MiB kept resident, 130 µs with 8 MiB; a small
/// kernel's memory is ~2 MiB (1.1 MiB of it the Rust runtime's). But every
/// slot a long-running host has used keeps this much: 1000 pipelines a
/// round (benches/soak.rs) grew to 2.5 GiB with 8 MiB and levelled off at
/// ~830 MiB with 2 MiB.
const KEEP_RESIDENT: usize = 2 << 20;

impl Default for SandboxBuilder {
    fn default() -> Self {
        SandboxBuilder {
            metering: Metering::Fuel,
            pooling: true,
            cache_dir: default_cache_dir(),
            observer: Arc::new(Unobserved),
            snapshots: true,
            keep_resident: KEEP_RESIDENT,
            spares: SPARE_INSTANCES,
            restore_ahead: RESTORE_AHEAD,
            device: kernel_host_tensor::DeviceChoice::Auto,
            by_reference: true,
            verify_loads: false,
            give_back_above: Some(GIVE_BACK_ABOVE),
            perf_map: std::env::var_os("KERNEL_HOST_PERF_MAP").is_some_and(|v| v == "1"),
        }
    }
}

/// `$KERNEL_HOST_CACHE_DIR`, else `$XDG_CACHE_HOME/kernel-host`, else
/// `~/.cache/kernel-host`. An empty `KERNEL_HOST_CACHE_DIR` turns the cache
/// off.
fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KERNEL_HOST_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("kernel-host"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/kernel-host"))
}

impl SandboxBuilder {
    pub fn metering(mut self, metering: Metering) -> Self {
        self.metering = metering;
        self
    }

    /// Use the pooling instance allocator (default) or allocate on demand.
    pub fn pooling(mut self, pooling: bool) -> Self {
        self.pooling = pooling;
        self
    }

    /// Where every kernel call made in this sandbox is reported.
    pub fn observer(mut self, observer: impl CallObserver + 'static) -> Self {
        self.observer = Arc::new(observer);
        self
    }

    /// Snapshot kernels after every state-changing call so failed calls
    /// roll back (default). Off, a failed call costs a kernel its state.
    pub fn snapshots(mut self, on: bool) -> Self {
        self.snapshots = on;
        self
    }

    /// Hand frames by reference to kernels that take them (default), or
    /// always copy them in through the plain `kernel` functions (to compare
    /// the two paths).
    pub fn frames_by_reference(mut self, on: bool) -> Self {
        self.by_reference = on;
        self
    }

    /// Bytes of each pooled linear memory kept mapped between instances
    /// (default 2 MiB): more makes re-instantiation and rollback of larger
    /// kernels faster, at the cost of that much resident memory per slot
    /// ever used.
    pub fn keep_resident(mut self, bytes: usize) -> Self {
        self.keep_resident = bytes;
        self
    }

    /// Spare instances kept at once, made ahead of rollbacks (default
    /// [`SPARE_INSTANCES`]; 0: a rollback makes its own instance).
    pub fn spare_instances(mut self, spares: usize) -> Self {
        self.spares = spares.min(MAX_SPARE_INSTANCES);
        self
    }

    /// Largest snapshot (bytes of changed pages) a spare instance is
    /// restored with ahead, on a task, after each snapshot (default
    /// [`RESTORE_AHEAD`]). A rollback to that state then only swaps stores;
    /// the price is one restore's work in the background per
    /// state-changing call, and the spare holding the state resident. A
    /// larger state is rolled back without a spare, in the failed store's
    /// own slot (0: every state is; spares then serve only kernels whose
    /// state cannot be restored).
    pub fn restore_ahead(mut self, bytes: u64) -> Self {
        self.restore_ahead = bytes;
        self
    }

    /// Where kernels' host tensors live: `auto` (CUDA when usable, default),
    /// `cpu` or `cuda`.
    pub fn device(mut self, device: kernel_host_tensor::DeviceChoice) -> Self {
        self.device = device;
        self
    }

    /// Re-read and re-hash a kernel file on every load instead of reusing
    /// what this sandbox loaded from the same unchanged file (default:
    /// off; `--verify` on the command line).
    pub fn verify_loads(mut self, verify: bool) -> Self {
        self.verify_loads = verify;
        self
    }

    /// Instances holding more linear memory than this after a pipeline
    /// step are given a fresh, small memory holding the same state (default
    /// [`GIVE_BACK_ABOVE`]); `None` keeps every memory at its peak.
    pub fn give_back_above(mut self, bytes: Option<u64>) -> Self {
        self.give_back_above = bytes;
        self
    }

    /// Name every kernel function in `/tmp/perf-<pid>.map`, so that
    /// `perf report` shows a kernel's own functions (`wasm[0]::function[N]::name`)
    /// instead of bare addresses. Off by default; `KERNEL_HOST_PERF_MAP=1`
    /// turns it on. Each load then writes a line per function.
    pub fn perf_map(mut self, on: bool) -> Self {
        self.perf_map = on;
        self
    }

    /// Where compiled components are cached; `None` turns caching off.
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Builds the sandbox. `KERNEL_HOST_DEVICE`, when set, overrides the
    /// tensor device chosen here (an unknown value is an error).
    pub fn build(self) -> Result<Sandbox, Error> {
        let device = kernel_host_tensor::DeviceChoice::from_env()
            .map_err(Error::Unavailable)?
            .unwrap_or(self.device);
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(self.metering.fuel());
        config.epoch_interruption(self.metering.epoch());
        config.max_wasm_stack(1 << 20);
        // No `.eh_frame` for the system unwinder: wasmtime walks wasm
        // frames itself (traps, backtraces) and catches host panics at the
        // boundary, and registering unwind info for every function is what
        // made a new process's load from the compile cache slow. Measured
        // (benches/sandbox.rs, logistic-regression): 422 µs with it, 276
        // and 285 µs without. Profilers unwinding with DWARF stop at wasm
        // frames.
        config.native_unwind_info(false);
        config.memory_init_cow(true);
        if self.perf_map {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if self.pooling {
            let mut pool = PoolingAllocationConfig::new();
            // Room for the spare instances (see [`SPARE_INSTANCES`]) on
            // top of what kernel instances may take.
            let spares = self.spares as u32;
            pool.total_component_instances(256 + spares)
                .total_core_instances(1024 + 4 * spares)
                .total_memories(512 + 2 * spares)
                .total_tables(1024 + 4 * spares)
                .total_stacks(256 + spares)
                .max_core_instances_per_component(16)
                .max_memories_per_component(8)
                .max_tables_per_component(32)
                .table_elements(100_000)
                // The per-kernel cap is enforced by `MemoryLimiter`; slots
                // reserve the whole 32-bit space so any cap up to 4 GiB fits.
                .max_memory_size(4 << 30)
                .linear_memory_keep_resident(self.keep_resident)
                // Reset only the pages an instance touched (Linux 6.7+;
                // elsewhere the first `keep_resident` bytes are memset): a
                // slot keeps what its last instance used, up to
                // `keep_resident`, rather than `keep_resident` each.
                .pagemap_scan(wasmtime::Enabled::Auto)
                // Reuse slots other kernels warmed before touching a cold
                // one: the slots a long-running host ever touches (each
                // keeping up to `keep_resident` bytes) are then as many as
                // it ran instances at once, not the whole pool. Measured
                // (benches/soak.rs, 1000 pipelines a round): with the
                // default (100) RSS grew 150 MiB a round.
                .max_unused_warm_slots(0)
                .table_keep_resident(64 << 10);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI")?;
        MlKernelRef::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(anyhow::Error::from)
            .context("linking the kernel-host imports")?;

        let tensors = kernel_host_tensor::Tensors::new(device);
        if device == kernel_host_tensor::DeviceChoice::Cuda {
            // Asked for explicitly: fail now, before any kernel runs.
            if let Err(e) = tensors.backend() {
                let why = match e {
                    kernel_host_tensor::TensorError::Backend(why) => why,
                    other => other.to_string(),
                };
                return Err(Error::Unavailable(format!(
                    "{why}; use device \"auto\" or \"cpu\" on this machine (`kernel-host info` shows what was found)"
                )));
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        if self.metering.epoch() {
            let engine = engine.weak();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("kernel-host-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(1));
                        match engine.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => break,
                        }
                    }
                })
                .context("starting the epoch ticker")?;
        }

        let fingerprint = engine_fingerprint(&engine);
        Ok(Sandbox {
            inner: Arc::new(Inner {
                fingerprint,
                engine,
                linker,
                metering: self.metering,
                cache_dir: self.cache_dir,
                observer: self.observer,
                snapshots: self.snapshots,
                by_reference: self.by_reference,
                tensors,
                stop,
                admission: Arc::new(tokio::sync::Semaphore::new(PIPELINE_INSTANCES as usize)),
                spares: Arc::new(tokio::sync::Semaphore::new(self.spares)),
                spare_limit: self.spares,
                restore_ahead: self.restore_ahead,
                kept_resident: if self.pooling { self.keep_resident } else { 0 },
                loads: crate::kernel::LoadCache::default(),
                verify_loads: self.verify_loads,
                give_back_above: self.give_back_above,
            }),
        })
    }
}

struct Inner {
    engine: Engine,
    /// [`engine_fingerprint`] of `engine`, computed once (hashing the
    /// engine's settings was 3.5% of a load from a load record).
    fingerprint: u64,
    linker: Linker<HostState>,
    metering: Metering,
    cache_dir: Option<PathBuf>,
    observer: Arc<dyn CallObserver>,
    snapshots: bool,
    by_reference: bool,
    tensors: kernel_host_tensor::Tensors,
    stop: Arc<AtomicBool>,
    /// Instance slots pipelines reserve before loading (see [`Sandbox::admit`]).
    admission: Arc<tokio::sync::Semaphore>,
    /// Spare instances made ahead of rollbacks (see [`SPARE_INSTANCES`]).
    spares: Arc<tokio::sync::Semaphore>,
    /// See [`SandboxBuilder::restore_ahead`].
    restore_ahead: u64,
    /// Bytes of each pooled memory kept mapped between instances (0
    /// without the pool): see [`SandboxBuilder::keep_resident`].
    kept_resident: usize,
    spare_limit: usize,
    /// Kernels this sandbox loaded, by file identity (see
    /// [`crate::KernelComponent::load_for`]).
    loads: crate::kernel::LoadCache,
    verify_loads: bool,
    give_back_above: Option<u64>,
}

/// Kernel instances pipelines may hold at once in one sandbox: the pool has
/// 256 component instances, and the rest are kept for instances made
/// outside pipelines (`inspect`, registry probes).
pub const PIPELINE_INSTANCES: u32 = 224;

/// Spare instances a sandbox keeps at once: a kernel instance that has a
/// snapshot gets an instance of its component readied ahead, on a task of
/// its own — restored with the snapshot when it is small (see
/// [`SandboxBuilder::restore_ahead`]), so that rolling back only swaps
/// stores rather than waiting for the failed store's slot to be reset, a
/// new instance to be made and the image to be written (see
/// `KernelInstance::rollback_to`). The pool has room for them beyond the
/// kernel instances', so a spare never takes a slot a kernel needs; past
/// this many, instances roll back without one.
pub const SPARE_INSTANCES: usize = 16;

/// Largest snapshot a spare instance is restored with ahead by default
/// (see [`SandboxBuilder::restore_ahead`]): the size up to which a spare
/// made for it has its pages faulted in anyway (`PREPARE_PREFAULT_MAX`),
/// so holding the state costs no more memory. Measured
/// (benches/snapshots.rs): a 1 MiB rollback after a trap 10–18 µs restored
/// ahead, 150–240 µs writing the image at the rollback.
pub const RESTORE_AHEAD: u64 = crate::snapshot::PREPARE_PREFAULT_MAX as u64;

/// Most spare instances [`SandboxBuilder::spare_instances`] accepts.
pub const MAX_SPARE_INSTANCES: usize = 256;

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A configured engine and linker, shared by every kernel it loads. Cheap
/// to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl Sandbox {
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn loads(&self) -> &crate::kernel::LoadCache {
        &self.inner.loads
    }

    /// Leave to keep one spare instance (see [`SPARE_INSTANCES`]), if
    /// fewer than that many are kept now.
    pub(crate) fn spare_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.inner.spares.clone().try_acquire_owned().ok()
    }

    /// See [`SandboxBuilder::restore_ahead`].
    pub fn restore_ahead(&self) -> u64 {
        self.inner.restore_ahead
    }

    /// Bytes of each pooled linear memory kept mapped between instances (0
    /// without the pooling allocator): see [`SandboxBuilder::keep_resident`].
    pub fn kept_resident(&self) -> usize {
        self.inner.kept_resident
    }

    /// Spare instances kept now (being made or made, see
    /// [`SPARE_INSTANCES`]).
    pub fn spares_held(&self) -> usize {
        self.inner.spare_limit - self.inner.spares.available_permits()
    }

    /// Whether every load re-reads and re-hashes its file (see
    /// [`SandboxBuilder::verify_loads`]).
    pub fn verify_loads(&self) -> bool {
        self.inner.verify_loads
    }

    /// Memory above which pipelines give an instance's memory back after a
    /// step (see [`SandboxBuilder::give_back_above`]).
    pub fn give_back_above(&self) -> Option<u64> {
        self.inner.give_back_above
    }

    /// Reserves `instances` instance slots for one pipeline, all at once,
    /// waiting (first come, first served) while other pipelines hold them.
    /// A thousand pipelines started together then run as slots free up,
    /// instead of failing on an exhausted pool or deadlocking halfway
    /// loaded. The slots go back when the returned permit is dropped.
    pub async fn admit(&self, instances: u32) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        if instances > PIPELINE_INSTANCES {
            return Err(Error::Unavailable(format!(
                "the pipeline needs {instances} kernel instances at once; a sandbox runs at most {PIPELINE_INSTANCES} (lower `parallel`, or split the pipeline)"
            )));
        }
        self.inner
            .admission
            .clone()
            .acquire_many_owned(instances)
            .await
            .map_err(|e| Error::Host(anyhow::anyhow!("the sandbox is shutting down: {e}")))
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.inner.linker
    }

    pub fn metering(&self) -> Metering {
        self.inner.metering
    }

    pub fn observer(&self) -> &Arc<dyn CallObserver> {
        &self.inner.observer
    }

    /// The tensor backend and exchange of this sandbox's kernels.
    pub fn tensors(&self) -> &kernel_host_tensor::Tensors {
        &self.inner.tensors
    }

    /// Whether frames go by reference to kernels that take them (see
    /// [`SandboxBuilder::frames_by_reference`]).
    pub fn frames_by_reference(&self) -> bool {
        self.inner.by_reference
    }

    /// Whether kernels loaded here are snapshotted (see
    /// [`SandboxBuilder::snapshots`]).
    pub fn snapshots(&self) -> bool {
        self.inner.snapshots
    }

    /// Compiles the bytes `source` makes, or loads the compiled form cached
    /// under `key` without calling `source`.
    pub(crate) fn compile_with<'a>(
        &self,
        key: &str,
        source: impl FnOnce() -> anyhow::Result<std::borrow::Cow<'a, [u8]>>,
    ) -> anyhow::Result<Component> {
        let engine = &self.inner.engine;
        let Some(dir) = &self.inner.cache_dir else {
            return Component::new(engine, &*source()?).map_err(anyhow::Error::from);
        };
        let path = dir.join(format!("{key}-{:016x}.cwasm", self.engine_fingerprint()));
        if path.is_file() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same fingerprint, into the user's own cache
            // directory, under the sha256 of the source bytes. Anyone able
            // to write there can already run code as this user.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e}")
                }
            }
        }
        let compiled = engine
            .precompile_component(&source()?)
            .map_err(anyhow::Error::from)?;
        if let Err(e) = write_cache_entry(dir, &path, &compiled) {
            tracing::warn!(path = %path.display(), "could not cache the compiled kernel: {e:#}");
        }
        // SAFETY: `compiled` was produced just above by this very engine.
        unsafe { Component::deserialize(engine, &compiled) }.map_err(anyhow::Error::from)
    }

    /// Where the record of loading the kernel file at `path` is kept (see
    /// `LoadRecord`): beside the compiled kernels, named by the path and
    /// the engine, or nowhere without a cache directory.
    pub(crate) fn load_record_path(&self, path: &Path) -> Option<PathBuf> {
        let dir = self.inner.cache_dir.as_ref()?;
        let path = std::path::absolute(path).ok()?;
        let mut hasher = Sha256::new();
        hasher.update(path.as_os_str().as_encoded_bytes());
        hasher.update(self.engine_fingerprint().to_le_bytes());
        let name = hex::encode(hasher.finalize());
        Some(dir.join("loads").join(format!("{name}.json")))
    }

    /// Identifies the engine settings a precompiled component depends on.
    fn engine_fingerprint(&self) -> u64 {
        self.inner.fingerprint
    }
}

/// Identifies the settings of `engine` a precompiled component depends on.
fn engine_fingerprint(engine: &Engine) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    env!("CARGO_PKG_VERSION").hash(&mut hasher);
    hasher.finish()
}

/// Writes a cache entry atomically: a reader sees the whole file or none.
fn write_cache_entry(dir: &Path, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    kernel_host_types::fsutil::write_atomic(path, bytes)
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

//! Loading kernels and calling them under their limits.
//!
//! [`KernelComponent`] is a kernel file that passed every check before
//! running: readable, matching its sha256 pin, a component, exporting a
//! compatible `kernel` interface, and needing only imports the host
//! provides. [`KernelInstance`] is one sandboxed instance of it, with its
//! own store, limits and grants. Every call runs with fresh fuel under a
//! wall-clock timer; any failure out of wasm is classified into a
//! [`Fault`]. After every successful state-changing call the instance is
//! snapshotted ([`crate::snapshot`]); a failed call drops the poisoned store
//! and continues in a fresh instance holding the last snapshot, so the
//! failure leaves no trace (a kernel the host cannot instrument gets a fresh
//! instance configured with the same parameters instead). The host never
//! crashes and other kernels never notice.

use crate::cache::{self, Cached, ResultCache};
use crate::engine::{Sandbox, sha256_hex};
use crate::error::{Error, Fault, LoadProblem};
use crate::freeze::Frozen;
use crate::observe::{CallContext, CallObserver, CallRecord, Outcome};
use crate::snapshot::{self, Access, Image, Snapshot, Written};
use crate::state::{HostState, panic_message};
use kernel_host_types::Grants;
use kernel_host_types::bindings::exports::kernel_host::kernel::{kernel as plain, kernel_ref};
use kernel_host_types::bindings::{self, Column, Explanation, Frame, KernelInfo, Param};
use kernel_host_types::frame::SharedColumn;
use kernel_host_types::fsutil::FileKey;
use kernel_host_types::limits::{Limits, YIELD_INTERVAL_FUEL};
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmtime::component::Instance;
use wasmtime::component::Resource;
use wasmtime::component::types::ComponentItem;
use wasmtime::{Store, Trap};

/// Kernel files larger than this are refused unread.
pub const MAX_KERNEL_BYTES: u64 = 256 << 20;

/// A verified, compiled kernel, ready to instantiate: the names the
/// caller gave it and what loading its file produced.
pub struct KernelComponent {
    id: String,
    path: PathBuf,
    sandbox: Sandbox,
    loaded: Arc<Loaded>,
}

/// Refuses a kernel whose sha256 is not the one the manifest pinned.
fn check_pin(pinned: Option<&str>, actual: &str) -> Result<(), LoadProblem> {
    match pinned {
        Some(expected) if !expected.eq_ignore_ascii_case(actual) => {
            Err(LoadProblem::HashMismatch {
                expected: expected.to_string(),
                actual: actual.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// What loading a kernel file produced (shared by every component loaded
/// from the same unchanged file).
#[derive(Clone)]
pub(crate) struct Loaded {
    sha256: String,
    wit_version: String,
    info: KernelInfo,
    pre: KernelPre,
    /// The snapshot accessors, or why the kernel has none.
    access: Result<Arc<Access>, String>,
    /// The component file's bytes (for `freeze` and bundles): read at load,
    /// or on demand after a load from a [`LoadRecord`].
    bytes: std::sync::OnceLock<Arc<[u8]>>,
    /// Size of the component file.
    size: usize,
    /// Set when the component is a frozen kernel.
    frozen: Option<Frozen>,
    /// The operations it takes frames by reference for (`kernel-ref`).
    by_reference: Arc<[String]>,
    /// What answering `describe` (and `by-reference`) at load took.
    probe: ProbeCost,
}

/// Fuel and linear memory the load-time `describe` used. A later load
/// reuses what an earlier one learned only under limits that would have
/// let that `describe` run: limits cover everything the host does for a
/// kernel, cached or not.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
struct ProbeCost {
    fuel: u64,
    memory: u64,
}

impl ProbeCost {
    fn fits(&self, limits: &Limits) -> bool {
        self.fuel <= limits.fuel && self.memory <= limits.memory_bytes
    }
}

/// The kernels a sandbox loaded, by file identity: a second load of the
/// same unchanged file takes microseconds (no read, hash, compile or
/// `describe`). Bounded: the oldest entries go past [`LoadCache::ENTRIES`]
/// kernels or [`LoadCache::BYTES`] of component files.
#[derive(Default)]
pub(crate) struct LoadCache {
    entries: std::sync::Mutex<std::collections::VecDeque<(FileKey, Arc<Loaded>)>>,
}

impl LoadCache {
    const ENTRIES: usize = 64;
    const BYTES: usize = 256 << 20;

    fn get(&self, key: &FileKey) -> Option<Arc<Loaded>> {
        let entries = self.entries.lock().ok()?;
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, loaded)| loaded.clone())
    }

    fn put(&self, key: FileKey, loaded: Arc<Loaded>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|(k, _)| k.path != key.path);
            entries.push_back((key, loaded));
            let bytes = |e: &std::collections::VecDeque<(FileKey, Arc<Loaded>)>| {
                e.iter().map(|(_, l)| l.size).sum::<usize>()
            };
            while entries.len() > Self::ENTRIES
                || (entries.len() > 1 && bytes(&entries) > Self::BYTES)
            {
                entries.pop_front();
            }
        }
    }
}

/// Bump when the instrumentation changes: compiled instrumented kernels are
/// cached under this.
const INSTRUMENTATION: u32 = 2;

/// Compiles the component `source` reads (whose sha256 is `sha256`)
/// instrumented for snapshots, or plain when the instrumentation does not
/// apply (the reason is returned). `source` is only called when the
/// compiled form is not cached.
fn compile_instrumented(
    sandbox: &Sandbox,
    source: &dyn Fn() -> anyhow::Result<Arc<[u8]>>,
    sha256: &str,
) -> Result<(wasmtime::component::Component, Result<Arc<Access>, String>), String> {
    let instrumented = if sandbox.snapshots() {
        let key = format!("{sha256}-snapshots{INSTRUMENTATION}");
        sandbox
            .compile_with(&key, || Ok(snapshot::instrument(&source()?)?.into()))
            .map_err(|e| format!("{e:#}"))
    } else {
        Err("snapshots are off in this sandbox".to_string())
    };
    match instrumented {
        Ok(component) => {
            let access = Access::of(&component)
                .map(Arc::new)
                .ok_or_else(|| "the instrumented component has no accessors".to_string());
            Ok((component, access))
        }
        Err(why) => {
            let component = sandbox
                .compile_with(sha256, || Ok(source()?.to_vec().into()))
                .map_err(|e| format!("{e:#}"))?;
            Ok((component, Err(why)))
        }
    }
}

/// What loading a kernel file learned that a later process can reuse
/// while the file keeps its identity: stored beside the compiled kernels
/// (`<cache>/loads/`), so that a load in a new process neither reads nor
/// hashes the file nor instantiates it to ask `describe`.
#[derive(serde::Serialize, serde::Deserialize)]
struct LoadRecord {
    file: FileKey,
    sha256: String,
    wit_version: String,
    #[serde(with = "kernel_host_types::bindings::info_serde")]
    info: KernelInfo,
    by_reference: Vec<String>,
    frozen: Option<Frozen>,
    probe: ProbeCost,
}

impl LoadRecord {
    /// The record for `file`, when there is one and it is still about
    /// the same file.
    fn read(sandbox: &Sandbox, file: &FileKey) -> Option<LoadRecord> {
        let path = sandbox.load_record_path(&file.path)?;
        let bytes = std::fs::read(path).ok()?;
        let record: LoadRecord = serde_json::from_slice(&bytes).ok()?;
        (record.file == *file).then_some(record)
    }

    fn write(&self, sandbox: &Sandbox) {
        let Some(path) = sandbox.load_record_path(&self.file.path) else {
            return;
        };
        let written = serde_json::to_vec(self)
            .map_err(anyhow::Error::from)
            .and_then(|json| {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                kernel_host_types::fsutil::write_atomic(&path, &json)
            });
        if let Err(e) = written {
            tracing::debug!(path = %path.display(), "could not record the load: {e:#}");
        }
    }
}

/// Reads the kernel file at `path` for a load that knows its sha256
/// already: a file that no longer has it is refused.
fn read_expecting(path: &Path, sha256: &str) -> Result<Arc<[u8]>, LoadProblem> {
    let bytes = kernel_host_types::fsutil::read_limited(path, MAX_KERNEL_BYTES)
        .map_err(LoadProblem::Read)?;
    let now = sha256_hex(&bytes);
    if now != sha256 {
        return Err(LoadProblem::Changed {
            was: sha256.to_string(),
            now,
        });
    }
    Ok(bytes.into())
}

impl KernelComponent {
    /// Reads, verifies and compiles the kernel at `path`, then asks it to
    /// `describe` itself (under default limits, nothing granted).
    pub async fn load(
        sandbox: &Sandbox,
        id: &str,
        path: &Path,
        pinned_sha256: Option<&str>,
    ) -> Result<KernelComponent, Error> {
        Self::load_for(sandbox, "", id, path, pinned_sha256, Limits::default()).await
    }

    /// Like [`KernelComponent::load`], labelling the load-time `describe`
    /// call with `pipeline` in metrics and the audit log, and running it
    /// under `limits` (the step's: the manifest's limits cover loading too).
    pub async fn load_for(
        sandbox: &Sandbox,
        pipeline: &str,
        id: &str,
        path: &Path,
        pinned_sha256: Option<&str>,
        limits: Limits,
    ) -> Result<KernelComponent, Error> {
        let refuse = |problem| Error::Load {
            kernel: id.to_string(),
            path: path.to_path_buf(),
            problem,
        };
        // The same unchanged file loaded before by this sandbox: its
        // verified, compiled and described parts, without reading it again.
        let file = (!sandbox.verify_loads())
            .then(|| FileKey::of(path))
            .flatten();
        if let Some(key) = &file
            && let Some(parts) = sandbox.loads().get(key)
            && parts.probe.fits(&limits)
        {
            check_pin(pinned_sha256, &parts.sha256).map_err(refuse)?;
            return Ok(KernelComponent {
                id: id.to_string(),
                path: path.to_path_buf(),
                sandbox: sandbox.clone(),
                loaded: parts,
            });
        }
        // Loaded by an earlier process: what it recorded, with the
        // compiled form from the on-disk cache.
        if let Some(key) = &file
            && let Some(record) = LoadRecord::read(sandbox, key)
            && record.probe.fits(&limits)
        {
            check_pin(pinned_sha256, &record.sha256).map_err(refuse)?;
            match Self::load_recorded(sandbox, record, path) {
                Ok(loaded) => {
                    let loaded = Arc::new(loaded);
                    sandbox.loads().put(key.clone(), loaded.clone());
                    return Ok(KernelComponent {
                        id: id.to_string(),
                        path: path.to_path_buf(),
                        sandbox: sandbox.clone(),
                        loaded,
                    });
                }
                Err(e) => tracing::debug!(kernel = id, "loading afresh: {e}"),
            }
        }
        let bytes = kernel_host_types::fsutil::read_limited(path, MAX_KERNEL_BYTES)
            .map_err(|e| refuse(LoadProblem::Read(e)))?;
        let component =
            Self::load_bytes(sandbox, pipeline, id, path, &bytes, pinned_sha256, limits).await?;
        // Kept only if the file did not change while it was read.
        if let Some(key) = file
            && FileKey::of(path).as_ref() == Some(&key)
        {
            let loaded = &component.loaded;
            LoadRecord {
                file: key.clone(),
                sha256: loaded.sha256.clone(),
                wit_version: loaded.wit_version.clone(),
                info: loaded.info.clone(),
                by_reference: loaded.by_reference.to_vec(),
                frozen: loaded.frozen.clone(),
                probe: loaded.probe,
            }
            .write(sandbox);
            sandbox.loads().put(key, component.loaded.clone());
        }
        Ok(component)
    }

    /// A kernel as `record` describes it: compiled form from the cache
    /// (compiled afresh if it is gone), linked, not instantiated.
    fn load_recorded(sandbox: &Sandbox, record: LoadRecord, path: &Path) -> Result<Loaded, String> {
        let read = std::sync::OnceLock::new();
        let source = || -> anyhow::Result<Arc<[u8]>> {
            if let Some(bytes) = read.get() {
                return Ok(Arc::clone(bytes));
            }
            let bytes = read_expecting(path, &record.sha256)?;
            Ok(Arc::clone(read.get_or_init(|| bytes)))
        };
        let started = Instant::now();
        let (component, access) = compile_instrumented(sandbox, &source, &record.sha256)?;
        let compiled = started.elapsed();
        let wit_version = kernel_export_version(sandbox, &component).map_err(|p| p.to_string())?;
        if wit_version != record.wit_version {
            return Err(format!(
                "the record says contract {}, the component {wit_version}",
                record.wit_version
            ));
        }
        let instance_pre = sandbox
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| format!("{e:#}"))?;
        let pre = KernelPre::new(instance_pre).map_err(|e| format!("{e:#}"))?;
        tracing::debug!(
            path = %path.display(),
            ?compiled,
            linked = ?started.elapsed() - compiled,
            "loaded from its load record"
        );
        Ok(Loaded {
            sha256: record.sha256,
            wit_version,
            info: record.info,
            pre,
            access,
            bytes: read,
            size: usize::try_from(record.file.len).unwrap_or(usize::MAX),
            frozen: record.frozen,
            by_reference: record.by_reference.into(),
            probe: record.probe,
        })
    }

    /// Like [`KernelComponent::load_for`], from bytes already in memory
    /// (`path` names where they came from, for messages).
    pub async fn load_bytes(
        sandbox: &Sandbox,
        pipeline: &str,
        id: &str,
        path: &Path,
        bytes: &[u8],
        pinned_sha256: Option<&str>,
        limits: Limits,
    ) -> Result<KernelComponent, Error> {
        let refuse = |problem| Error::Load {
            kernel: id.to_string(),
            path: path.to_path_buf(),
            problem,
        };
        let sha256 = sha256_hex(bytes);
        check_pin(pinned_sha256, &sha256).map_err(refuse)?;
        check_header(bytes).map_err(|m| refuse(LoadProblem::NotAComponent(m)))?;
        let shared: Arc<[u8]> = bytes.into();
        let (component, access) =
            compile_instrumented(sandbox, &|| Ok(Arc::clone(&shared)), &sha256)
                .map_err(|e| refuse(LoadProblem::Compile(e)))?;
        if let Err(why) = &access
            && sandbox.snapshots()
        {
            tracing::warn!(
                kernel = id,
                "no transparent snapshots for this kernel: {why}"
            );
        }
        let wit_version = kernel_export_version(sandbox, &component).map_err(refuse)?;
        let instance_pre = sandbox
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| refuse(LoadProblem::Link(format!("{e:#}"))))?;
        let pre = KernelPre::new(instance_pre)
            .map_err(|e| refuse(LoadProblem::Link(format!("{e:#}"))))?;
        let mut component = KernelComponent {
            id: id.to_string(),
            path: path.to_path_buf(),
            sandbox: sandbox.clone(),
            loaded: Arc::new(Loaded {
                sha256,
                wit_version,
                info: placeholder_info(),
                pre,
                access,
                bytes: std::sync::OnceLock::from(shared),
                size: bytes.len(),
                frozen: crate::freeze::frozen_record(bytes),
                by_reference: Arc::from([]),
                probe: ProbeCost::default(),
            }),
        };
        let mut probe = component.instantiate(limits, Grants::default()).await?;
        probe.set_pipeline(pipeline);
        let info = probe.describe().await?;
        let by_reference = if probe.bindings.by_ref.is_some() {
            probe.by_reference_operations().await?.into()
        } else {
            Arc::from([])
        };
        let stats = probe.stats();
        drop(probe);
        let loaded = Arc::make_mut(&mut component.loaded);
        loaded.info = info;
        loaded.by_reference = by_reference;
        loaded.probe = ProbeCost {
            fuel: stats.fuel,
            memory: stats.peak_memory,
        };
        Ok(component)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The operations (`fit`, `partial-fit`, `transform`) this kernel takes
    /// frames by reference for; empty for a plain kernel.
    pub fn by_reference(&self) -> &[String] {
        &self.loaded.by_reference
    }

    /// Lowercase hex sha256 of the component file.
    pub fn sha256(&self) -> &str {
        &self.loaded.sha256
    }

    /// The `kernel-host:kernel` version the component was built against.
    pub fn wit_version(&self) -> &str {
        &self.loaded.wit_version
    }

    /// What the kernel's `describe` reported.
    pub fn info(&self) -> &KernelInfo {
        &self.loaded.info
    }

    /// The component file's bytes: those loaded, or, for a kernel loaded
    /// from an earlier process's record, the file read now (refused if it
    /// no longer has the sha256 it was loaded with).
    pub fn bytes(&self) -> Result<Arc<[u8]>, Error> {
        if let Some(bytes) = self.loaded.bytes.get() {
            return Ok(Arc::clone(bytes));
        }
        let bytes =
            read_expecting(&self.path, &self.loaded.sha256).map_err(|problem| Error::Load {
                kernel: self.id.clone(),
                path: self.path.clone(),
                problem,
            })?;
        Ok(Arc::clone(self.loaded.bytes.get_or_init(|| bytes)))
    }

    /// The sandbox the kernel was loaded into.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// What a frozen kernel records about itself (`None`: not frozen).
    pub fn frozen(&self) -> Option<&Frozen> {
        self.loaded.frozen.as_ref()
    }

    /// Whether the host can snapshot and roll back this kernel without its
    /// help; the error says why not.
    pub fn snapshots(&self) -> Result<(), &str> {
        self.loaded
            .access
            .as_ref()
            .map(|_| ())
            .map_err(String::as_str)
    }

    /// A new sandboxed instance with its own store.
    pub async fn instantiate(
        &self,
        limits: Limits,
        grants: Grants,
    ) -> Result<KernelInstance, Error> {
        let shared = Arc::new(Shared {
            id: self.id.clone().into(),
            pre: self.loaded.pre.clone(),
            sandbox: self.sandbox.clone(),
            limits,
            grants,
            access: self.loaded.access.as_ref().ok().cloned(),
            frozen: self.loaded.frozen.is_some(),
            by_reference: self.loaded.by_reference.clone(),
            kind: self.loaded.info.kind,
        });
        let (store, bindings, instance) = shared.fresh().await?;
        let context = CallContext {
            pipeline: String::new(),
            step: self.id.clone(),
            kernel: self.loaded.info.name.clone(),
            version: self.loaded.info.version.clone(),
            sha256: self.loaded.sha256.clone(),
            limits,
            grants: shared.grants.describe(),
        };
        Ok(KernelInstance {
            shared,
            store,
            bindings,
            instance,
            snapshot: None,
            retired: Vec::new(),
            params: Vec::new(),
            poisoned: false,
            stats: KernelStats::default(),
            stderr_logged: 0,
            observer: self.sandbox.observer().clone(),
            context,
            cache: None,
            state_hash: None,
            restarted: false,
            rollback: None,
            last: (Duration::ZERO, 0),
            reload_refused: false,
            probe: None,
            spare: None,
            spare_for: Arc::default(),
            pinned: std::sync::Weak::new(),
        })
    }
}

fn placeholder_info() -> KernelInfo {
    KernelInfo {
        name: String::new(),
        version: String::new(),
        kind: bindings::KernelKind::Transformer,
        description: String::new(),
        params: Vec::new(),
        capabilities: bindings::Capabilities::empty(),
    }
}

/// Tells a component from a core module or something else entirely.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    match bytes {
        [0, b'a', b's', b'm', _, _, 1, 0, ..] => Ok(()),
        [0, b'a', b's', b'm', 1, 0, 0, 0, ..] => Err(
            "this is a core WebAssembly module; kernels are components: build with \
             `cargo build --target wasm32-wasip2`"
                .into(),
        ),
        [0, b'a', b's', b'm', ..] => Err("unsupported WebAssembly binary version".into()),
        _ => Err("the file does not start with the WebAssembly magic bytes".into()),
    }
}

/// Finds the component's `kernel-host:kernel/kernel@X` export and checks
/// that X is compatible with the host's WIT version.
fn kernel_export_version(
    sandbox: &Sandbox,
    component: &wasmtime::component::Component,
) -> Result<String, LoadProblem> {
    let ty = component.component_type();
    let mut names = Vec::new();
    for (name, item) in ty.exports(sandbox.engine()) {
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            names.push(name.to_string());
            continue;
        }
        let (base, version) = name.split_once('@').unwrap_or((name, ""));
        if base == bindings::KERNEL_INTERFACE {
            return if compatible(version, bindings::WIT_VERSION) {
                Ok(version.to_string())
            } else {
                Err(LoadProblem::IncompatibleVersion {
                    found: version.to_string(),
                    supported: bindings::WIT_VERSION.to_string(),
                })
            };
        }
        // The host's own snapshot instrumentation is not the author's.
        if name != crate::snapshot::ACCESS {
            names.push(name.to_string());
        }
    }
    Err(LoadProblem::WrongWorld {
        exports: if names.is_empty() {
            "nothing".into()
        } else {
            names.join(", ")
        },
    })
}

/// Semver compatibility as the component model links it: same major, or
/// for 0.x the same minor; and not newer than the host.
fn compatible(found: &str, host: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut it = v
            .split('.')
            .map(|p| p.split(['-', '+']).next().unwrap_or(p).parse::<u64>().ok());
        Some((it.next()??, it.next()??, it.next()??))
    };
    let (Some(f), Some(h)) = (parse(found), parse(host)) else {
        return false;
    };
    let same_line = if h.0 == 0 {
        f.0 == 0 && f.1 == h.1
    } else {
        f.0 == h.0
    };
    same_line && f <= h
}

/// Bytes a guest may hand the host in one call. Its output cannot be larger
/// than its linear memory, which `memory-mib` caps; lifting (strings above
/// all) can take up to a few times more room on the host than in the guest,
/// hence the factor. Wasmtime's default of 128 MiB would otherwise refuse a
/// legitimately large frame under a larger memory limit.
fn hostcall_budget(memory_bytes: u64) -> usize {
    usize::try_from(memory_bytes.saturating_mul(4)).unwrap_or(usize::MAX)
}

/// A linked component and where its exports are: `kernel` always,
/// `kernel-ref` when the component takes frames by reference.
#[derive(Clone)]
struct KernelPre {
    instance: wasmtime::component::InstancePre<HostState>,
    kernel: plain::GuestIndices,
    by_ref: Option<kernel_ref::GuestIndices>,
}

impl KernelPre {
    fn new(instance: wasmtime::component::InstancePre<HostState>) -> wasmtime::Result<KernelPre> {
        let kernel = plain::GuestIndices::new(&instance)?;
        let by_ref = kernel_ref::GuestIndices::new(&instance).ok();
        Ok(KernelPre {
            instance,
            kernel,
            by_ref,
        })
    }

    fn exports(
        &self,
        store: &mut Store<HostState>,
        instance: &Instance,
    ) -> wasmtime::Result<Exports> {
        Ok(Exports {
            kernel: self.kernel.load(&mut *store, instance)?,
            by_ref: match &self.by_ref {
                Some(indices) => Some(indices.load(&mut *store, instance)?),
                None => None,
            },
        })
    }
}

/// One instance's exports.
struct Exports {
    kernel: plain::Guest,
    by_ref: Option<kernel_ref::Guest>,
}

/// What an instance needs to rebuild its store.
struct Shared {
    id: Arc<str>,
    pre: KernelPre,
    sandbox: Sandbox,
    limits: Limits,
    grants: Grants,
    access: Option<Arc<Access>>,
    /// A frozen kernel: `configure` would reset its baked-in state.
    frozen: bool,
    /// The operations it takes frames by reference for.
    by_reference: Arc<[String]>,
    /// What it says it is: which call shows its behaviour on a probe.
    kind: bindings::KernelKind,
}

impl Shared {
    /// A new store and instance.
    async fn fresh(&self) -> Result<(Store<HostState>, Exports, Instance), Error> {
        let mut store = self.store()?;
        let (bindings, instance) = self.instantiate(&mut store).await?;
        Ok((store, bindings, instance))
    }

    /// Starts readying a spare instance on a task of its own, then dropping
    /// `replaced` there (a store a rollback replaced: resetting its pool
    /// slot is then off the rollback's path, and the spare is not kept
    /// waiting for it). The spare is the one `previous` is making, if it
    /// can take `like` (the state a rollback would restore), or a fresh
    /// instance. The spare is *restored* with `like` ahead when it holds at
    /// most [`Sandbox::restore_ahead`] bytes, so a rollback to it only swaps
    /// stores; otherwise only grown to its size (see `spare_serves`).
    /// `wanted` names the newest state asked for: a
    /// task whose state was superseded by a newer snapshot before it began
    /// leaves the restore to the task for that one. `None` when the sandbox
    /// keeps as many spares as it may or no runtime runs tasks; `replaced`
    /// is then dropped here.
    fn prepare_spare(
        self: &Arc<Self>,
        replaced: Option<Store<HostState>>,
        previous: Option<tokio::sync::oneshot::Receiver<Spare>>,
        like: Option<Snapshot>,
        wanted: &Arc<AtomicU64>,
    ) -> Option<tokio::sync::oneshot::Receiver<Spare>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        // A spare in the making brings its permit; otherwise one is taken
        // now (refused at the sandbox's cap).
        let mut leave = match previous {
            Some(_) => None,
            None => Some(self.sandbox.spare_permit()?),
        };
        let id = like.as_ref().map_or(0, |image| image.id);
        wanted.store(id, Ordering::Relaxed);
        let wanted = wanted.clone();
        let shared = self.clone();
        let (made_one, spare) = tokio::sync::oneshot::channel();
        // Held weakly until its turn: a task waiting behind another must
        // not keep an image the next snapshot would reuse the buffers of.
        let like = like.as_ref().map(Arc::downgrade);
        runtime.spawn(async move {
            let old = match previous {
                Some(previous) => previous.await.ok(),
                None => None,
            };
            // Superseded by a newer snapshot (or its image is gone): the
            // spare is passed on as it is, to the task for that one.
            let like = match (
                wanted.load(Ordering::Relaxed) == id,
                like.map(|image| image.upgrade()),
            ) {
                (true, None) => Some(None),
                (true, Some(Some(image))) => Some(Some(image)),
                _ => None,
            };
            let Some(like) = like else {
                if let Some(old) = old {
                    drop(made_one.send(old));
                }
                drop(replaced);
                return;
            };
            let made = async {
                let mut spare = match old {
                    Some(old) if old.fits(like.as_deref()) => old,
                    old => {
                        if let Some(old) = old {
                            leave = Some(old._leave);
                        }
                        let leave = match leave {
                            Some(leave) => leave,
                            None => shared.sandbox.spare_permit().ok_or_else(|| {
                                Error::Host(anyhow::anyhow!("the sandbox keeps all spares it may"))
                            })?,
                        };
                        let (store, bindings, instance) = shared.fresh().await?;
                        Spare {
                            store,
                            bindings,
                            instance,
                            sizes: None,
                            holds: None,
                            _leave: leave,
                        }
                    }
                };
                let (Some(access), Some(image)) = (&shared.access, like) else {
                    return Ok(spare);
                };
                let limit = shared.limits.timeout;
                let failed = |what: &str, e: String| Error::Host(anyhow::anyhow!("{what}: {e}"));
                if spare.sizes.is_none() {
                    let sizes = tokio::time::timeout(
                        limit,
                        access.prepare(&mut spare.store, &spare.instance, &image),
                    )
                    .await
                    .map_err(|_| failed("preparing it", "timed out".into()))?
                    .map_err(|e| failed("preparing it", format!("{e:#}")))?;
                    spare.sizes = Some(sizes);
                }
                if image.bytes() > shared.sandbox.restore_ahead() {
                    // Only grown: the rollback writes the image.
                    return Ok(spare);
                }
                let written = tokio::time::timeout(
                    limit,
                    access.restore_over(
                        &mut spare.store,
                        &spare.instance,
                        &image,
                        spare.holds.as_ref(),
                    ),
                )
                .await
                .map_err(|_| failed("restoring it ahead", "timed out".into()))?
                .map_err(|e| failed("restoring it ahead", format!("{e:#}")))?;
                spare.sizes = Some(image.memories.iter().map(|m| m.len).collect());
                spare.holds = Some(written);
                Ok::<_, Error>(spare)
            };
            match made.await {
                // Unsent (the instance is gone): dropped here.
                Ok(spare) => drop(made_one.send(spare)),
                Err(e) => tracing::debug!(kernel = %shared.id, "no spare instance: {e}"),
            }
            drop(replaced);
        });
        Some(spare)
    }

    /// A new store, limits and metering set, holding no instance yet.
    fn store(&self) -> Result<Store<HostState>, Error> {
        let tensors = kernel_host_tensor::StoreTensors::new(
            self.sandbox.tensors().clone(),
            self.limits.tensor_bytes,
        );
        let state = HostState::new(
            self.id.clone(),
            self.limits.memory_bytes,
            &self.grants,
            tensors,
        )
        .map_err(Error::Host)?;
        let mut store = Store::new(self.sandbox.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(hostcall_budget(self.limits.memory_bytes));
        let metering = self.sandbox.metering();
        if metering.epoch() {
            // Yield on every tick so the call's timer can fire; the deadline
            // must be set after choosing the behaviour.
            store.epoch_deadline_async_yield_and_update(1);
            store.set_epoch_deadline(1);
        }
        if metering.fuel() {
            store
                .set_fuel(self.limits.fuel)
                .map_err(|e| Error::Host(e.into()))?;
            store
                .fuel_async_yield_interval(Some(YIELD_INTERVAL_FUEL))
                .map_err(|e| Error::Host(e.into()))?;
        }
        Ok(store)
    }

    /// Instantiates the kernel in `store`.
    async fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> Result<(Exports, Instance), Error> {
        let instantiate = self.pre.instance.instantiate_async(&mut *store);
        let instance = match tokio::time::timeout(self.limits.timeout, instantiate).await {
            Ok(Ok(i)) => i,
            Ok(Err(e)) => {
                let fault = classify(store, e, self.limits, 0);
                return Err(self.fault("instantiate", fault));
            }
            Err(_) => {
                return Err(self.fault(
                    "instantiate",
                    Fault::Timeout {
                        limit: self.limits.timeout,
                    },
                ));
            }
        };
        let bindings = self.pre.exports(&mut *store, &instance).map_err(|e| {
            self.fault(
                "instantiate",
                Fault::Trap {
                    message: format!("{e:#}"),
                },
            )
        })?;
        Ok((bindings, instance))
    }

    /// Shows the snapshot accessors what a fresh instance of the component
    /// holds (once per component; sparse images are relative to it), in an
    /// instance of its own, so that loading a kernel never pays for it.
    async fn learn_fresh(&self, access: &Access) -> Result<(), Error> {
        if !access.needs_fresh() {
            return Ok(());
        }
        let mut store = self.store()?;
        let (_, instance) = self.instantiate(&mut store).await?;
        access
            .learn_fresh(&mut store, &instance)
            .await
            .map_err(|e| Error::Host(anyhow::anyhow!("reading a fresh instance: {e:#}")))
    }

    fn fault(&self, operation: &'static str, fault: Fault) -> Error {
        Error::Kernel {
            kernel: self.id.to_string(),
            operation,
            fault,
        }
    }
}

/// Resource use of one instance, summed over its calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub calls: u64,
    /// Fuel consumed (0 when fuel metering is off).
    pub fuel: u64,
    /// Largest linear memory of any store this instance used, bytes.
    pub peak_memory: u64,
    /// Wall time inside calls.
    pub busy: Duration,
    /// Calls that ended in a fault.
    pub faults: u64,
    /// Times the store was replaced after a fault.
    pub restarts: u64,
    /// Calls served from the result cache.
    pub cache_hits: u64,
    /// Snapshots taken (after each successful state-changing call) and the
    /// time they took.
    pub snapshots: u64,
    pub snapshot_time: Duration,
    /// Times a snapshot was restored: after a failed call, or on request,
    /// and the time that took (replacing the store and writing the image).
    pub rollbacks: u64,
    pub rollback_time: Duration,
    /// Times a store was replaced by a spare instance made ahead (see
    /// [`crate::SPARE_INSTANCES`]) rather than a new one.
    pub spares_used: u64,
    /// Of those, rollbacks that found the state already restored into the
    /// spare (small states are restored ahead after each snapshot): they
    /// only swapped stores.
    pub restored_ahead: u64,
    /// Most bytes of host tensors the kernel held at once.
    pub tensor_peak: u64,
    /// Times the instance gave its memory back after a peak, and the time
    /// that took (see [`KernelInstance::give_back`]).
    pub give_backs: u64,
    pub give_back_time: Duration,
}

/// What [`KernelInstance::give_back`] did; memory sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveBack {
    /// Kept the memory: it was small, the instance held host resources, or
    /// its state could not be carried into a smaller one.
    Kept,
    /// A fresh instance holds the last snapshot (or the parameters).
    Restored { from: u64, to: u64 },
    /// A fresh instance loaded the kernel's `save-state`, checked by saving
    /// it again.
    Reloaded { from: u64, to: u64 },
}

/// One sandboxed kernel instance.
pub struct KernelInstance {
    shared: Arc<Shared>,
    store: Store<HostState>,
    bindings: Exports,
    instance: Instance,
    /// The whole instance after its last successful state-changing call
    /// (`None` before the first one, or without snapshot support).
    snapshot: Option<Snapshot>,
    /// Earlier snapshots whose buffers can be reused once no checkpoint
    /// shares them.
    retired: Vec<Snapshot>,
    /// The last parameters `configure` accepted, re-applied after recovery.
    params: Vec<Param>,
    poisoned: bool,
    stats: KernelStats,
    stderr_logged: u64,
    observer: Arc<dyn CallObserver>,
    context: CallContext,
    cache: Option<ResultCache>,
    /// sha256 of `save-state` since the last state change; `None` until a
    /// cacheable call needs it.
    state_hash: Option<cache::Key>,
    /// The store was replaced since the last recorded call.
    restarted: bool,
    /// A snapshot was restored since the last recorded call, in this long.
    rollback: Option<Duration>,
    /// Wall time and fuel of export calls since the last recorded call.
    last: (Duration, u64),
    /// Its `save-state` failed or did not load back into the same bytes:
    /// memory is not given back through it.
    reload_refused: bool,
    /// The first rows of the last frame it was given: a fresh instance
    /// that loaded the saved state must answer them as this one does.
    probe: Option<Frame>,
    /// A spare instance being readied, or ready, for the next rollback.
    spare: Option<tokio::sync::oneshot::Receiver<Spare>>,
    /// [`Image::id`] of the state the newest spare task readies it for.
    spare_for: Arc<AtomicU64>,
    /// The image of the last checkpoint taken (not rolled back to), while
    /// anything holds it: the spare stays readied for it.
    pinned: std::sync::Weak<Image>,
}

/// A store and instance of a kernel made ahead of its next rollback (see
/// [`crate::SPARE_INSTANCES`]): it has run no kernel code, only
/// instantiation and the host's own accessors.
struct Spare {
    store: Store<HostState>,
    bindings: Exports,
    instance: Instance,
    /// Its memories' sizes once grown for an image (`None`: as
    /// instantiated): it can take images at least that large.
    sizes: Option<Vec<usize>>,
    /// The image restored into it ahead, if one was.
    holds: Option<Written>,
    /// Released once the store is gone (fields drop in order).
    _leave: tokio::sync::OwnedSemaphorePermit,
}

impl Spare {
    /// Whether a rollback to `image` (`None`: to a fresh, reconfigured
    /// instance) can use it: memories cannot shrink, and only an untouched
    /// instance passes for a fresh one.
    fn fits(&self, image: Option<&Image>) -> bool {
        match (&self.sizes, image) {
            (None, _) => true,
            (Some(sizes), Some(image)) => {
                sizes.len() == image.memories.len()
                    && sizes
                        .iter()
                        .zip(&image.memories)
                        .all(|(size, m)| *size <= m.len)
            }
            (Some(_), None) => false,
        }
    }
}

/// Rows of [`KernelInstance::probe`].
const PROBE_ROWS: usize = 16;

/// Longest a give-back may take (within the kernel's own time limit)
/// before the instance is rebuilt from its snapshot instead.
const GIVE_BACK_TIME: Duration = Duration::from_secs(2);

/// A state to return an instance to: see [`KernelInstance::checkpoint`].
pub enum Checkpoint {
    /// A snapshot of the whole instance (`None`: as instantiated) and the
    /// parameters it was configured with.
    Image {
        snapshot: Option<Snapshot>,
        params: Vec<Param>,
    },
    /// What the kernel's `save-state` returned.
    Saved(Vec<u8>),
}

/// Runs one export call under the instance's limits.
macro_rules! guarded {
    ($self:ident, $op:literal, by_ref, |$exports:ident, $store:ident| $call:expr) => {{
        match $self.revive().await {
            Err(e) => Err(e),
            Ok(()) if $self.bindings.by_ref.is_none() => Err(Error::Host(anyhow::anyhow!(
                "`{}` was called by reference but the kernel does not export kernel-ref",
                $op
            ))),
            Ok(()) => {
                let started = $self.begin();
                let outcome = match $self.bindings.by_ref.as_ref() {
                    Some($exports) => {
                        let $store = &mut $self.store;
                        tokio::time::timeout($self.shared.limits.timeout, $call).await
                    }
                    None => Ok(Err(wasmtime::format_err!("no kernel-ref export"))),
                };
                $self.finish($op, started, outcome)
            }
        }
    }};
    ($self:ident, $op:literal, |$exports:ident, $store:ident| $call:expr) => {{
        match $self.revive().await {
            Err(e) => Err(e),
            Ok(()) => {
                let started = $self.begin();
                let outcome = {
                    let $store = &mut $self.store;
                    let $exports = &$self.bindings.kernel;
                    tokio::time::timeout($self.shared.limits.timeout, $call).await
                };
                $self.finish($op, started, outcome)
            }
        }
    }};
}

/// Unwraps a kernel's `result<_, kernel-error>` into its value or a refusal.
fn refused<T>(
    id: &str,
    operation: &'static str,
    result: Result<T, bindings::KernelError>,
) -> Result<T, Error> {
    result.map_err(|e| Error::Kernel {
        kernel: id.to_string(),
        operation,
        fault: e.into(),
    })
}

impl KernelInstance {
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    pub fn grants(&self) -> &Grants {
        &self.shared.grants
    }

    pub fn stats(&self) -> KernelStats {
        KernelStats {
            peak_memory: self.stats.peak_memory.max(self.store.data().limiter.peak()),
            tensor_peak: self
                .stats
                .tensor_peak
                .max(self.store.data().tensors.accounts.peak),
            ..self.stats
        }
    }

    /// Linear memory the instance holds now, bytes.
    pub fn memory(&self) -> u64 {
        self.store.data().limiter.current()
    }

    /// Replaces a store poisoned by a failed call with a fresh instance
    /// holding the last snapshot: the state after the last successful
    /// state-changing call. Without a usable snapshot the fresh instance is
    /// reconfigured with the last accepted parameters and fitted state is
    /// gone.
    async fn revive(&mut self) -> Result<(), Error> {
        if !self.poisoned {
            return Ok(());
        }
        let started = Instant::now();
        let restored = self.rebuild().await?;
        self.restarted = true;
        self.stats.restarts += 1;
        if let Some(bytes) = restored {
            self.stats.rollbacks += 1;
            let took = started.elapsed();
            self.stats.rollback_time += took;
            self.rollback = Some(self.rollback.unwrap_or_default() + took);
            tracing::info!(
                kernel = %self.shared.id,
                bytes,
                "rolled back to the snapshot of its last good state"
            );
        } else {
            tracing::info!(kernel = %self.shared.id, "replaced a failed instance with a fresh one");
        }
        Ok(())
    }

    /// Replaces the store with a fresh instance holding the last snapshot
    /// (returns the image's bytes) or, without a usable one, configured
    /// with the last accepted parameters (returns `None`). The instance
    /// stays poisoned if this fails.
    async fn rebuild(&mut self) -> Result<Option<u64>, Error> {
        self.poisoned = true;
        self.fold_peaks();
        let image = self.usable_snapshot();
        let (replaced, holds) = match self.take_spare(image.as_deref()).await {
            // Made ahead: the failed store is dropped (its slot reset) on
            // the task that makes the next spare, after the restore.
            Some(spare) => {
                self.stats.spares_used += 1;
                self.bindings = spare.bindings;
                self.instance = spare.instance;
                let replaced = std::mem::replace(&mut self.store, spare.store);
                (Some(replaced), spare.holds)
            }
            None => {
                // The old store goes first: its pooled memory slot, pages
                // still mapped, is then the one the new instance gets (the
                // pool prefers the slot this component used last), and the
                // restore writes into resident pages instead of faulting
                // them in.
                self.store = self.shared.store()?;
                let (bindings, instance) = self.shared.instantiate(&mut self.store).await?;
                self.bindings = bindings;
                self.instance = instance;
                (None, None)
            }
        };
        self.stderr_logged = 0;
        self.poisoned = false;
        self.state_hash = None;
        let restored = self.restore_snapshot(image, holds.as_ref()).await;
        // The next spare, for the state now held (after the one still
        // being readied for another state, if a rollback left it).
        let like = self.restorable();
        if like.as_ref().is_none_or(|image| self.spare_serves(image)) {
            let previous = self.spare.take();
            self.spare = self
                .shared
                .prepare_spare(replaced, previous, like, &self.spare_for);
        }
        if let Some(bytes) = restored? {
            return Ok(Some(bytes));
        }
        if !self.params.is_empty() && !self.shared.frozen {
            // Not through `configure`, which would revive again on failure.
            let started = self.begin();
            let outcome = {
                let exports = &self.bindings.kernel;
                tokio::time::timeout(
                    self.shared.limits.timeout,
                    exports.call_configure(&mut self.store, &self.params),
                )
                .await
            };
            let result = self.finish("configure", started, outcome)?;
            refused(self.id(), "configure", result)?;
        }
        Ok(None)
    }

    /// Writes `image` (the last usable snapshot) into the instance, fresh
    /// or a spare holding `over` (nothing to write when that is `image`):
    /// its bytes, or `None` without one.
    async fn restore_snapshot(
        &mut self,
        image: Option<Snapshot>,
        over: Option<&Written>,
    ) -> Result<Option<u64>, Error> {
        let (Some(access), Some(image)) = (self.shared.access.clone(), image) else {
            return Ok(None);
        };
        if over.is_some_and(|over| over.is(&image)) {
            self.stats.restored_ahead += 1;
            return Ok(Some(image.bytes()));
        }
        let started = self.begin();
        let outcome = tokio::time::timeout(
            self.shared.limits.timeout,
            access.restore_over(&mut self.store, &self.instance, &image, over),
        )
        .await;
        self.finish("restore", started, outcome)?;
        Ok(Some(image.bytes()))
    }

    /// The spare instance, if one was made and can take `image` (without
    /// one: is as instantiated); one that cannot is dropped on a task. A
    /// spare still being readied for `image` is waited for (it started
    /// before a new instance would have); one still being readied for
    /// another state is left to finish (a new instance is sooner than
    /// waiting for it, then writing over what it wrote) and kept.
    async fn take_spare(&mut self, image: Option<&Image>) -> Option<Spare> {
        if image.is_some_and(|image| !self.spare_serves(image)) {
            // A large state: rolled back in the failed store's own slot
            // (see `rebuild`), the spare left as it is.
            return None;
        }
        let mut pending = self.spare.take()?;
        let spare = match pending.try_recv() {
            Ok(spare) => spare,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => return None,
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                let wanted = self.spare_for.load(Ordering::Relaxed);
                if image.map_or(0, |image| image.id) != wanted {
                    self.spare = Some(pending);
                    return None;
                }
                pending.await.ok()?
            }
        };
        if spare.fits(image) {
            return Some(spare);
        }
        // Dropped (its slot reset) off the rollback's path.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move { drop(spare) })),
            Err(_) => drop(spare),
        }
        None
    }

    /// Keeps the peaks of the store about to be replaced.
    fn fold_peaks(&mut self) {
        self.stats.peak_memory = self.stats.peak_memory.max(self.store.data().limiter.peak());
        self.stats.tensor_peak = self
            .stats
            .tensor_peak
            .max(self.store.data().tensors.accounts.peak);
    }

    /// Gives back the linear memory the instance grew into beyond its
    /// state, when it holds more than `above` bytes. A wasm memory never
    /// shrinks, and the pages a call touched (a frame copied in, buffers
    /// since freed) stay resident, so a kernel that once held a large frame
    /// would hold its memory for as long as the instance lives. The
    /// instance is replaced by a fresh one (its pooled slot returns the old
    /// pages) holding the same state:
    ///
    /// - the last snapshot when it is at most a quarter of the memory (or,
    ///   before any state-changing call, the parameters): exactly the
    ///   state, as a rollback restores it;
    /// - else the kernel's own `save-state` when it is at most a quarter of
    ///   the memory, loaded into the fresh instance and accepted only if
    ///   saving again there gives the same bytes and the fresh instance
    ///   answers the first rows of the last frame it was fitted on (its
    ///   `transform`, or `predict`) exactly as the old one does. A kernel
    ///   whose saved state does not round-trip (say a `HashMap` saved in
    ///   iteration order) or leaves something out keeps its memory, and is
    ///   not asked again. The snapshot is then retaken from the small
    ///   instance.
    ///
    /// With snapshots, a give-back taking over 2 s (within the kernel's
    /// own time limit) is abandoned: the instance is rebuilt from its
    /// snapshot and the error says so. The calls it makes are not counted
    /// in [`KernelStats::calls`] nor reported; their time is
    /// [`KernelStats::give_back_time`]. A kernel holding host resources
    /// (tensors, streams) keeps its memory. A `transform` that changes the
    /// kernel's state (it should not) loses that change, as it would to a
    /// rollback.
    pub async fn give_back(&mut self, above: u64) -> Result<GiveBack, Error> {
        self.revive().await?;
        let from = self.store.data().limiter.current();
        if from <= above || self.store.data_mut().host_handles() > 0 {
            return Ok(GiveBack::Kept);
        }
        let started = Instant::now();
        let (stats, last) = (self.stats, self.last);
        let outcome = if self.shared.access.is_some() {
            // The snapshot (or, before any state-changing call, the
            // parameters) is the state: a kernel slow to save or load gives
            // up after GIVE_BACK_TIME and is rebuilt from it, not waited for
            // up to its own limit.
            let previous = self.snapshot.clone();
            let limit = GIVE_BACK_TIME.min(self.shared.limits.timeout);
            match tokio::time::timeout(limit, self.give_back_from(from)).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    if self.snapshot.is_none() {
                        // Cancelled while retaking it.
                        self.snapshot = previous;
                    }
                    self.reload_refused = true;
                    self.poisoned = true;
                    let revived = self.revive().await;
                    // Not a failed call of the caller's: not reported as one.
                    self.rollback = None;
                    self.restarted = false;
                    revived.and(Err(self
                        .shared
                        .fault("give-back", Fault::Timeout { limit })))
                }
            }
        } else {
            self.give_back_from(from).await
        };
        // The memory it held (and the fresh one's) count; the calls do not.
        self.fold_peaks();
        self.stats = KernelStats {
            peak_memory: self.stats.peak_memory,
            tensor_peak: self.stats.tensor_peak,
            snapshots: self.stats.snapshots,
            snapshot_time: self.stats.snapshot_time,
            give_backs: stats.give_backs
                + u64::from(outcome.as_ref().is_ok_and(|g| *g != GiveBack::Kept)),
            give_back_time: stats.give_back_time + started.elapsed(),
            ..stats
        };
        self.last = last;
        if matches!(
            outcome,
            Ok(GiveBack::Restored { .. } | GiveBack::Reloaded { .. })
        ) {
            // Buffers of earlier images, kept for reuse, are as large as
            // the peak: they go too (a checkpoint sharing one keeps it).
            self.retired.clear();
        }
        if let Ok(done) = &outcome {
            tracing::debug!(kernel = %self.shared.id, ?done, elapsed = ?started.elapsed(), "gave back memory");
        }
        outcome
    }

    async fn give_back_from(&mut self, from: u64) -> Result<GiveBack, Error> {
        let restorable = match (&self.shared.access, &self.snapshot) {
            (Some(_), Some(image)) => {
                image.host_handles == 0 && image.bytes().saturating_mul(4) <= from
            }
            (Some(_), None) => true,
            (None, _) => false,
        };
        if restorable {
            self.rebuild().await?;
            let to = self.store.data().limiter.current();
            return Ok(GiveBack::Restored { from, to });
        }
        if self.reload_refused {
            return Ok(GiveBack::Kept);
        }
        let state = match guarded!(self, "save-state", |k, store| k.call_save_state(store))
            .and_then(|r| refused(self.id(), "save-state", r))
        {
            Ok(state) => state,
            Err(e) if self.poisoned => return Err(e),
            Err(e) => {
                tracing::debug!(kernel = %self.shared.id, "keeps its memory: {e}");
                self.reload_refused = true;
                return Ok(GiveBack::Kept);
            }
        };
        if (state.len() as u64).saturating_mul(4) > from {
            return Ok(GiveBack::Kept);
        }
        // Same bytes saved again is not enough: a `save-state` that leaves
        // the model out saves the same bytes from the instance it emptied.
        // The fresh instance must also answer the probe rows alike.
        let Some(probe) = self.probe.clone() else {
            return Ok(GiveBack::Kept);
        };
        let before = self.behaviour(&probe).await;
        if self.poisoned {
            return Ok(GiveBack::Kept);
        }
        self.fold_peaks();
        let (store, bindings, instance) = self.shared.fresh().await?;
        let old_store = std::mem::replace(&mut self.store, store);
        let old_bindings = std::mem::replace(&mut self.bindings, bindings);
        let old_instance = std::mem::replace(&mut self.instance, instance);
        let old_logged = std::mem::replace(&mut self.stderr_logged, 0);
        let same = match self.reload(&state).await {
            Ok(same) => same && self.behaviour(&probe).await == before && !self.poisoned,
            Err(e) => {
                tracing::debug!(kernel = %self.shared.id, "its saved state does not load back: {e}");
                false
            }
        };
        if !same {
            self.store = old_store;
            self.bindings = old_bindings;
            self.instance = old_instance;
            self.stderr_logged = old_logged;
            self.poisoned = false;
            self.reload_refused = true;
            tracing::info!(
                kernel = %self.shared.id,
                "keeps its memory at its peak: its saved state does not load back into an instance that behaves the same"
            );
            return Ok(GiveBack::Kept);
        }
        drop(old_store);
        if self.shared.access.is_some() {
            let previous = self.snapshot.clone();
            if let Err(e) = self.take_snapshot().await {
                // The previous image is the same state, laid out larger.
                self.snapshot = previous;
                return Err(e);
            }
        }
        let to = self.store.data().limiter.current();
        Ok(GiveBack::Reloaded { from, to })
    }

    /// A digest of what the kernel answers to `probe` (its transform, or
    /// its predictions), or the error it gives.
    async fn behaviour(&mut self, probe: &Frame) -> Result<cache::Key, String> {
        let answer = if self.shared.kind == bindings::KernelKind::Transformer {
            guarded!(self, "transform", |k, store| k.call_transform(store, probe))
                .and_then(|r| refused(self.id(), "transform", r))
        } else {
            guarded!(self, "predict", |k, store| k.call_predict(store, probe))
                .and_then(|r| refused(self.id(), "predict", r))
                .map(|c| Frame {
                    rows: probe.rows,
                    columns: vec![c],
                })
        };
        answer
            .map(|f| cache::frame_digest(&f))
            .map_err(|e| e.to_string())
    }

    /// Keeps the first rows of `x` as the probe of a later give-back.
    fn keep_probe(&mut self, x: &Frame) {
        if x.rows > 0 {
            self.probe = Some(x.slice_rows(0, (x.rows as usize).min(PROBE_ROWS)));
        }
    }

    /// Configures a fresh instance, loads `state` into it and saves it
    /// again: whether that gives the same bytes.
    async fn reload(&mut self, state: &[u8]) -> Result<bool, Error> {
        if !self.params.is_empty() && !self.shared.frozen {
            guarded!(self, "configure", |k, store| k
                .call_configure(store, &self.params))
            .and_then(|r| refused(self.id(), "configure", r))?;
        }
        guarded!(self, "load-state", |k, store| k
            .call_load_state(store, state))
        .and_then(|r| refused(self.id(), "load-state", r))?;
        let again = guarded!(self, "save-state", |k, store| k.call_save_state(store))
            .and_then(|r| refused(self.id(), "save-state", r))?;
        Ok(again == state)
    }

    /// Whether a spare instance is restored with `image` ahead (at most
    /// [`Sandbox::restore_ahead`] bytes).
    fn restores_ahead(&self, image: &Image) -> bool {
        image.bytes() <= self.shared.sandbox.restore_ahead()
    }

    /// Whether rollbacks to `image` go onto a spare: one restored with it
    /// ahead, or one only grown for it when its memories fit in the pages a
    /// pooled slot keeps resident (the restore then faults nothing in). A
    /// larger state is rolled back without a spare, in the failed store's
    /// own slot, reset first: with a spare, the failed store's pages and the
    /// spare's were both resident while the restore faulted in huge pages,
    /// and a 64 MiB rollback took 100–640 ms one time in ten
    /// (benches/snapshots.rs, 90th percentile) against 14–19 ms in its own
    /// slot; with the memory kept resident the spare took it from 18 ms to
    /// 6.5 ms.
    fn spare_serves(&self, image: &Image) -> bool {
        self.restores_ahead(image)
            || image.memory_bytes() <= self.shared.sandbox.kept_resident() as u64
    }

    /// Whether a checkpoint (anything besides this instance's own
    /// snapshot and retired images) still holds the image of the last one
    /// taken.
    fn checkpoint_held(&self) -> bool {
        let Some(image) = self.pinned.upgrade() else {
            return false;
        };
        let own = self
            .snapshot
            .iter()
            .chain(&self.retired)
            .filter(|held| Arc::ptr_eq(held, &image))
            .count();
        // One more: `image` itself.
        Arc::strong_count(&image) > own + 1
    }

    /// The last snapshot if a rollback could restore it (no host handles),
    /// quietly: what a spare instance is readied for.
    fn restorable(&self) -> Option<Snapshot> {
        self.snapshot.clone().filter(|s| s.host_handles == 0)
    }

    /// The snapshot to restore, unless it holds host handles a fresh
    /// instance would not have.
    fn usable_snapshot(&self) -> Option<Snapshot> {
        let usable = self.restorable();
        if let (None, Some(image)) = (&usable, &self.snapshot) {
            tracing::warn!(
                kernel = %self.shared.id,
                handles = image.host_handles,
                "cannot restore the snapshot: the kernel held host resources when it was taken"
            );
        }
        usable
    }

    /// Ends a state-changing call: on success the new state is snapshotted;
    /// on failure (trap, limit, timeout or refusal) the instance goes back
    /// to its last snapshot, so the failed call leaves no trace.
    ///
    /// A `configure` of an instance that has learned nothing yet is not
    /// snapshotted: a fresh instance replaying the parameters is the same
    /// state (and saves a copy in the common instantiate, configure, fit or
    /// load-state sequence).
    async fn settle<R>(&mut self, operation: &str, result: Result<R, Error>) -> Result<R, Error> {
        if self.shared.access.is_none() {
            return result;
        }
        match &result {
            Ok(_) if operation == "configure" && self.snapshot.is_none() => {}
            Ok(_) => {
                if let Err(e) = self.take_snapshot().await {
                    tracing::warn!(kernel = %self.shared.id, "could not snapshot the kernel: {e}");
                }
            }
            Err(_) => {
                self.poisoned = true;
                if let Err(e) = self.revive().await {
                    tracing::warn!(kernel = %self.shared.id, "could not roll back: {e}");
                }
            }
        }
        result
    }

    /// Snapshots the instance now (the host does after every successful
    /// state-changing call; this is for benchmarks and tools).
    pub async fn snapshot_now(&mut self) -> Result<Option<&Image>, Error> {
        self.revive().await?;
        self.take_snapshot().await?;
        Ok(self.snapshot.as_deref())
    }

    /// Copies the instance's memories and globals into `self.snapshot`.
    async fn take_snapshot(&mut self) -> Result<(), Error> {
        let Some(access) = self.shared.access.clone() else {
            return Ok(());
        };
        let started = Instant::now();
        if let Err(e) = self.shared.learn_fresh(&access).await {
            // Dense images then, from now on: slower, as exact.
            access.give_up_fresh();
            tracing::warn!(kernel = %self.shared.id, "{e}; snapshots of this kernel stay dense");
        }
        // Reuse the buffers of an image nothing else holds any more (their
        // pages are mapped: a fresh 2 MiB buffer costs ~200 µs of faults).
        // An image a checkpoint still shares is retired, to be reused once
        // the checkpoint is gone.
        if let Some(current) = self.snapshot.take() {
            self.retired.push(current);
        }
        let free = self.retired.iter().position(|s| Arc::strong_count(s) == 1);
        let reuse = free.and_then(|i| Arc::try_unwrap(self.retired.swap_remove(i)).ok());
        // Keep at most two retired images alive.
        while self.retired.len() > 2 {
            self.retired.remove(0);
        }
        let outcome = tokio::time::timeout(
            self.shared.limits.timeout,
            access.capture(&mut self.store, &self.instance, reuse),
        )
        .await;
        let mut image = match outcome {
            Ok(Ok(image)) => image,
            Ok(Err(e)) => {
                self.poisoned = true;
                return Err(Error::Host(anyhow::anyhow!("{e:#}")));
            }
            Err(_) => {
                self.poisoned = true;
                return Err(Error::Host(anyhow::anyhow!("taking a snapshot timed out")));
            }
        };
        image.host_handles = self.store.data_mut().host_handles();
        self.snapshot = Some(Arc::new(image));
        self.stats.snapshots += 1;
        self.stats.snapshot_time += started.elapsed();
        // A state worth rolling back to: have an instance ready for it
        // (restored ahead with it when it is small, see `prepare_spare`).
        // While a checkpoint holds an earlier image, the spare stays
        // restored with that one: the state a failure of this or a later
        // call of the pipeline goes back to.
        // A larger state gets none: see `spare_serves`.
        let like = self.restorable();
        let wanted = match &like {
            Some(image) if self.restores_ahead(image) => {
                self.spare.is_none() || !self.checkpoint_held()
            }
            Some(image) => self.spare.is_none() && self.spare_serves(image),
            None => self.spare.is_none(),
        };
        if wanted {
            let previous = self.spare.take();
            self.spare = self
                .shared
                .prepare_spare(None, previous, like, &self.spare_for);
        }
        Ok(())
    }

    /// The instance's current state, to come back to with
    /// [`KernelInstance::rollback_to`]. Cheap: it shares the last snapshot.
    /// Kernels the host cannot snapshot are asked for `save-state`.
    pub async fn checkpoint(&mut self) -> Result<Checkpoint, Error> {
        self.revive().await?;
        if self.shared.access.is_some()
            && self.snapshot.as_ref().is_none_or(|s| s.host_handles == 0)
        {
            if let Some(image) = self.restorable() {
                // Readies the spare for a rollback to it (see
                // `take_snapshot`), unless that is under way.
                self.pinned = Arc::downgrade(&image);
                if self.restores_ahead(&image) && self.spare_for.load(Ordering::Relaxed) != image.id
                {
                    let previous = self.spare.take();
                    self.spare =
                        self.shared
                            .prepare_spare(None, previous, Some(image), &self.spare_for);
                }
            }
            return Ok(Checkpoint::Image {
                snapshot: self.snapshot.clone(),
                params: self.params.clone(),
            });
        }
        Ok(Checkpoint::Saved(self.save_state().await?))
    }

    /// Returns the instance to `checkpoint`, discarding everything since.
    pub async fn rollback_to(&mut self, checkpoint: Checkpoint) -> Result<(), Error> {
        match checkpoint {
            Checkpoint::Image { snapshot, params } => {
                self.pinned = std::sync::Weak::new();
                // The image replaced is kept for its buffers (the next
                // snapshot reuses them): freeing a 64 MiB image here took
                // milliseconds of the rollback.
                if let Some(current) = std::mem::replace(&mut self.snapshot, snapshot) {
                    self.retired.push(current);
                }
                while self.retired.len() > 2 {
                    self.retired.remove(0);
                }
                self.params = params;
                self.poisoned = true;
                self.revive().await
            }
            Checkpoint::Saved(state) => self.load_state(&state).await,
        }
    }

    /// The parameters `configure` last accepted.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The store and raw instance (for `freeze`).
    pub(crate) fn raw(&mut self) -> (&mut Store<HostState>, Instance) {
        (&mut self.store, self.instance)
    }

    /// Waits until the spare instance being readied for the next rollback,
    /// if any, is ready (for tests and benchmarks: rollbacks do not wait
    /// for a spare being readied for another state than theirs).
    pub async fn spare_ready(&mut self) {
        let Some(pending) = self.spare.take() else {
            return;
        };
        if let Ok(spare) = pending.await {
            let (ready, receiver) = tokio::sync::oneshot::channel();
            // The receiver is alive: cannot fail.
            let _ = ready.send(spare);
            self.spare = Some(receiver);
        }
    }

    /// The last snapshot, if any (for tests and benchmarks).
    pub fn snapshot(&self) -> Option<&Image> {
        self.snapshot.as_deref()
    }

    fn begin(&mut self) -> (Instant, u64) {
        let limits = self.shared.limits;
        if self.shared.sandbox.metering().fuel() {
            // Cannot fail: fuel metering is on.
            let _ = self.store.set_fuel(limits.fuel);
        }
        let data = self.store.data_mut();
        data.log_budget = crate::imports::LOG_MESSAGES_PER_CALL;
        data.limiter.take_refusal();
        let now = Instant::now();
        data.deadline = now.checked_add(limits.timeout);
        (now, data.stderr.mark())
    }

    fn finish<R>(
        &mut self,
        operation: &'static str,
        (started, mark): (Instant, u64),
        outcome: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    ) -> Result<R, Error> {
        let limits = self.shared.limits;
        let elapsed = started.elapsed();
        let fuel = if self.shared.sandbox.metering().fuel() {
            limits
                .fuel
                .saturating_sub(self.store.get_fuel().unwrap_or(0))
        } else {
            0
        };
        self.stats.calls += 1;
        self.stats.busy += elapsed;
        self.stats.fuel += fuel;
        self.last.0 += elapsed;
        self.last.1 += fuel;
        self.forward_stderr();
        let fault = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => classify(&mut self.store, error, limits, mark),
            Err(_) => Fault::Timeout {
                limit: limits.timeout,
            },
        };
        // Any error out of wasm leaves the store unusable.
        self.poisoned = true;
        self.stats.faults += 1;
        // The caller reports the returned error; this is for tracing only.
        tracing::debug!(kernel = %self.shared.id, operation, "{fault}");
        Err(self.shared.fault(operation, fault))
    }

    /// Sends new guest stderr lines to the host log (info level: a panic
    /// message also reaches the caller inside the returned fault).
    fn forward_stderr(&mut self) {
        let stderr = &self.store.data().stderr;
        let text = stderr.since(self.stderr_logged);
        self.stderr_logged = stderr.mark();
        for line in text.lines().filter(|l| !l.trim().is_empty()).take(100) {
            let line = kernel_host_types::printable(line);
            tracing::info!(kernel = %self.shared.id, "stderr: {line}");
        }
    }

    /// Labels this instance's calls with `pipeline` in metrics and the
    /// audit log. (Calls are reported to the sandbox's observer.)
    pub fn set_pipeline(&mut self, pipeline: &str) {
        self.context.pipeline = pipeline.to_string();
    }

    /// Serves repeated `transform`/`predict`/`predict-proba` calls on the
    /// same input and state from `cache`.
    pub fn enable_cache(&mut self, cache: ResultCache) {
        self.cache = Some(cache);
    }

    /// The labels of this instance's calls.
    pub fn context(&self) -> &CallContext {
        &self.context
    }

    /// Records one public call: outcome, cost and rows.
    fn record<T>(
        &mut self,
        operation: &'static str,
        rows_in: u32,
        result: &Result<T, Error>,
        rows_out: impl Fn(&T) -> u64,
        cached: bool,
    ) {
        let (duration, fuel) = std::mem::take(&mut self.last);
        let rollback = self.rollback.take();
        let record = CallRecord {
            operation,
            start: Instant::now()
                .checked_sub(duration)
                .unwrap_or_else(Instant::now),
            outcome: Outcome::of(result),
            error: result.as_ref().err().map(ToString::to_string),
            duration,
            fuel,
            rows_in: rows_in.into(),
            rows_out: result.as_ref().map_or(0, rows_out),
            memory: self.store.data().limiter.peak(),
            // Kept across store replacements (a failed call's store is gone).
            tensor_bytes: self.stats().tensor_peak,
            cached,
            restarted: std::mem::take(&mut self.restarted),
            rolled_back: rollback.is_some(),
            rollback_duration: rollback.unwrap_or_default(),
        };
        self.observer.call(&self.context, &record);
    }

    pub async fn describe(&mut self) -> Result<KernelInfo, Error> {
        let result =
            guarded!(self, "describe", |k, store| k.call_describe(store)).map(printable_info);
        if let Ok(info) = &result
            && self.context.kernel.is_empty()
        {
            // A kernel being loaded is labelled by what it says it is.
            self.context.kernel.clone_from(&info.name);
            self.context.version.clone_from(&info.version);
        }
        self.record("describe", 0, &result, |_| 0, false);
        result
    }

    /// Sets parameters; they are re-applied if the instance is ever
    /// replaced after a fault.
    pub async fn configure(&mut self, params: &[Param]) -> Result<(), Error> {
        if self.shared.frozen {
            // Its parameters (and fitted state) are baked in.
            return match params.first() {
                None => Ok(()),
                Some(p) => Err(Error::Kernel {
                    kernel: self.id().to_string(),
                    operation: "configure",
                    fault: Fault::Refused {
                        kind: crate::error::RefusalKind::InvalidParams,
                        message: format!(
                            "this kernel is frozen with its parameters baked in; remove `{}` (and any other parameter)",
                            p.name
                        ),
                    },
                }),
            };
        }
        self.state_hash = None;
        let result = guarded!(self, "configure", |k, store| k
            .call_configure(store, params))
        .and_then(|r| refused(self.id(), "configure", r));
        if result.is_ok() {
            self.params = params.to_vec();
        }
        let result = self.settle("configure", result).await;
        self.record("configure", 0, &result, |_| 0, false);
        result
    }

    pub async fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), Error> {
        self.state_hash = None;
        self.keep_probe(x);
        let result = if self.takes_by_reference("fit") {
            self.fit_by_reference(x, y, false).await
        } else {
            guarded!(self, "fit", |k, store| k.call_fit(store, x, y))
                .and_then(|r| refused(self.id(), "fit", r))
        };
        let result = self.settle("fit", result).await;
        self.record("fit", x.rows, &result, |_| 0, false);
        result
    }

    pub async fn partial_fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), Error> {
        self.state_hash = None;
        self.keep_probe(x);
        let result = if self.takes_by_reference("partial-fit") {
            self.fit_by_reference(x, y, true).await
        } else {
            guarded!(self, "partial-fit", |k, store| k
                .call_partial_fit(store, x, y))
            .and_then(|r| refused(self.id(), "partial-fit", r))
        };
        let result = self.settle("partial-fit", result).await;
        self.record("partial-fit", x.rows, &result, |_| 0, false);
        result
    }

    /// Whether `operation` goes through `kernel-ref` (frames by reference).
    fn takes_by_reference(&self, operation: &str) -> bool {
        self.bindings.by_ref.is_some()
            && self.shared.sandbox.frames_by_reference()
            && self.shared.by_reference.iter().any(|o| o == operation)
    }

    /// Asks a `kernel-ref` kernel which operations it takes by reference;
    /// names it does not know are ignored.
    async fn by_reference_operations(&mut self) -> Result<Vec<String>, Error> {
        let said = guarded!(self, "by-reference", by_ref, |k, store| k
            .call_by_reference(store))?;
        let mut ops: Vec<String> = said
            .into_iter()
            .filter(|o| matches!(o.as_str(), "fit" | "partial-fit" | "transform"))
            .collect();
        ops.sort();
        ops.dedup();
        Ok(ops)
    }

    /// Lends `x`'s columns to the kernel for one call: each a handle
    /// passed to it (the host keeps the values, which are not charged to
    /// the kernel). Returns the handles and the rows they occupy in the
    /// kernel's table, for [`KernelInstance::revoke`].
    fn lend(
        &mut self,
        columns: Vec<Arc<Column>>,
    ) -> Result<(Vec<Resource<SharedColumn>>, Vec<u32>), Error> {
        let state = self.store.data_mut();
        let mut lent = Vec::with_capacity(columns.len());
        for column in columns {
            let name = column.name.clone();
            match state.keep_column_as(name.clone(), column, false, true) {
                Ok(handle) => lent.push(handle),
                Err(e) => {
                    let reps: Vec<u32> = lent.iter().map(Resource::rep).collect();
                    self.revoke(&reps);
                    return Err(Error::Host(anyhow::anyhow!(
                        "cannot lend column `{name}` to the kernel: {e:?}"
                    )));
                }
            }
        }
        let reps: Vec<u32> = lent.iter().map(Resource::rep).collect();
        Ok((lent, reps))
    }

    /// Ends a loan: a lent handle the kernel did not drop (or return) is
    /// emptied and marked revoked, so it reads nothing in a later call (its
    /// slot stays taken until the kernel drops it, so no new column can
    /// appear under it).
    fn revoke(&mut self, reps: &[u32]) {
        let state = self.store.data_mut();
        for &rep in reps {
            let handle = Resource::<SharedColumn>::new_own(rep);
            let Ok(column) = state.table().get_mut(&handle) else {
                continue;
            };
            if !column.lent || column.revoked {
                continue;
            }
            let emptied = SharedColumn {
                name: column.name.clone(),
                data: Arc::new(Column {
                    name: String::new(),
                    values: bindings::ColumnValues::F64(Vec::new()),
                    nulls: None,
                }),
                lent: false,
                revoked: true,
            };
            let kept = std::mem::replace(column, emptied);
            state.forget_column(&kept);
        }
    }

    /// Takes the handles a kernel returned out of its table.
    fn take_back(
        &mut self,
        handles: Vec<Resource<SharedColumn>>,
    ) -> Result<Vec<SharedColumn>, Error> {
        let state = self.store.data_mut();
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            let column = state.table().delete(handle).map_err(|e| {
                Error::Host(anyhow::anyhow!("a returned column handle is not live: {e}"))
            })?;
            state.forget_column(&column);
            out.push(column);
        }
        Ok(out)
    }

    async fn fit_by_reference(
        &mut self,
        x: &Frame,
        y: Option<&Column>,
        partial: bool,
    ) -> Result<(), Error> {
        let columns: Vec<Arc<Column>> = x.columns.iter().cloned().map(Arc::new).collect();
        let target = y.cloned().map(Arc::new);
        self.fit_lending(columns, target.as_ref(), x.rows, partial)
            .await
    }

    /// [`KernelInstance::fit`] of a frame the caller gets back: a kernel
    /// that takes `fit` by reference is lent the columns themselves (and
    /// the shared target), not copies, and the frame is handed back
    /// afterwards (copied only if the kernel kept a `share` of a column).
    /// Others as `fit`.
    pub async fn fit_owned(
        &mut self,
        x: Frame,
        y: Option<Arc<Column>>,
    ) -> (Result<(), Error>, Frame) {
        if !self.takes_by_reference("fit") {
            let result = self.fit(&x, y.as_deref()).await;
            return (result, x);
        }
        self.state_hash = None;
        self.keep_probe(&x);
        let rows = x.rows;
        let columns: Vec<Arc<Column>> = x.columns.into_iter().map(Arc::new).collect();
        let result = self
            .fit_lending(columns.clone(), y.as_ref(), rows, false)
            .await;
        // After a fault this revives the store: every handle goes with it.
        let result = self.settle("fit", result).await;
        self.record("fit", rows, &result, |_| 0, false);
        let columns = columns
            .into_iter()
            .map(|c| Arc::try_unwrap(c).unwrap_or_else(|c| (*c).clone()))
            .collect();
        (result, Frame { rows, columns })
    }

    /// [`KernelInstance::fit`] of a frame the caller no longer needs: a
    /// kernel that takes `fit` by reference is given the columns
    /// themselves, and each is freed as soon as the kernel lets go of it (a
    /// kernel that builds a host matrix from its columns frees them before
    /// it starts iterating). Others as `fit`.
    pub async fn fit_consumed(&mut self, x: Frame, y: Option<Arc<Column>>) -> Result<(), Error> {
        self.consume_for_fit(x, y, false).await
    }

    /// [`KernelInstance::partial_fit`] of a frame the caller no longer
    /// needs, as [`KernelInstance::fit_consumed`]: a chunked fit hands
    /// each chunk over instead of lending a copy.
    pub async fn partial_fit_consumed(
        &mut self,
        x: Frame,
        y: Option<Arc<Column>>,
    ) -> Result<(), Error> {
        self.consume_for_fit(x, y, true).await
    }

    async fn consume_for_fit(
        &mut self,
        x: Frame,
        y: Option<Arc<Column>>,
        partial: bool,
    ) -> Result<(), Error> {
        let operation = if partial { "partial-fit" } else { "fit" };
        if !self.takes_by_reference(operation) {
            return if partial {
                self.partial_fit(&x, y.as_deref()).await
            } else {
                self.fit(&x, y.as_deref()).await
            };
        }
        self.state_hash = None;
        self.keep_probe(&x);
        let rows = x.rows;
        let columns = x.columns.into_iter().map(Arc::new).collect();
        let result = self.fit_lending(columns, y.as_ref(), rows, partial).await;
        let result = self.settle(operation, result).await;
        self.record(operation, rows, &result, |_| 0, false);
        result
    }

    /// Lends `columns` (and `y`) to the kernel for one `fit-ref` (or
    /// `partial-fit-ref`).
    async fn fit_lending(
        &mut self,
        columns: Vec<Arc<Column>>,
        y: Option<&Arc<Column>>,
        rows: u32,
        partial: bool,
    ) -> Result<(), Error> {
        self.revive().await?;
        let (lent, mut reps) = self.lend(columns)?;
        let target = match y {
            Some(y) => match self.lend(vec![y.clone()]) {
                Ok((mut handle, rep)) => {
                    reps.extend(rep);
                    handle.pop()
                }
                Err(e) => {
                    self.revoke(&reps);
                    return Err(e);
                }
            },
            None => None,
        };
        let result = if partial {
            guarded!(self, "partial-fit", by_ref, |k, store| k
                .call_partial_fit_ref(store, &lent, rows, target))
        } else {
            guarded!(self, "fit", by_ref, |k, store| k
                .call_fit_ref(store, &lent, rows, target))
        };
        if !self.poisoned {
            self.revoke(&reps);
        }
        result.and_then(|r| refused(self.id(), if partial { "partial-fit" } else { "fit" }, r))
    }

    /// `transform` through `kernel-ref` on `columns` (moved in: a kernel
    /// that rewrites a column it holds the only handle to does it in
    /// place).
    async fn transform_by_reference(
        &mut self,
        columns: Vec<Column>,
        rows: u32,
    ) -> Result<Frame, Error> {
        self.revive().await?;
        let (lent, reps) = self.lend(columns.into_iter().map(Arc::new).collect())?;
        let result = guarded!(self, "transform", by_ref, |k, store| k
            .call_transform_ref(store, &lent, rows));
        if self.poisoned {
            // The store goes, and every handle with it.
            return Err(match result {
                Err(e) => e,
                Ok(_) => Error::Host(anyhow::anyhow!("a failed store returned a result")),
            });
        }
        let out = match result.and_then(|r| refused(self.id(), "transform", r)) {
            Ok(out) => out,
            Err(e) => {
                self.revoke(&reps);
                return Err(e);
            }
        };
        // The outputs out of the table first, then the loan ended, so an
        // output that shares a lent column's values is their last holder
        // and moves out without a copy.
        let taken = self.take_back(out);
        self.revoke(&reps);
        let columns = taken?.into_iter().map(SharedColumn::into_column).collect();
        Ok(Frame { rows, columns })
    }

    /// The cache key of `operation` on `x` when caching is on, hashing the
    /// state through `save-state` first if it changed.
    async fn cache_key(&mut self, operation: &str, x: &Frame) -> Option<cache::Key> {
        self.cache.as_ref()?;
        if self.state_hash.is_none() {
            let state = self.save_state().await.ok()?;
            self.state_hash = Some(sha2::Sha256::digest(&state).into());
        }
        let state = self.state_hash?;
        Some(cache::key(
            &self.context.sha256,
            &state,
            operation,
            &cache::frame_digest(x),
        ))
    }

    /// A cached result for `key`, counting the hit or miss.
    fn lookup(&mut self, key: Option<&cache::Key>, operation: &str) -> Option<Cached> {
        let hit = self.cache.as_ref()?.get(key?);
        match &hit {
            Some(_) => self.stats.cache_hits += 1,
            None => {
                self.observer.cache_miss(&self.context, operation);
            }
        }
        hit
    }

    fn remember(&self, key: Option<cache::Key>, value: Cached) {
        if let (Some(cache), Some(key)) = (&self.cache, key) {
            cache.insert(key, value);
        }
    }

    /// Transforms `x`; the output must have as many rows as `x`.
    pub async fn transform(&mut self, x: &Frame) -> Result<Frame, Error> {
        let key = self.cache_key("transform", x).await;
        if let Some(Cached::Frame(hit)) = self.lookup(key.as_ref(), "transform") {
            let result = Ok(hit);
            self.record("transform", x.rows, &result, |f| f.rows.into(), true);
            return result;
        }
        let result = if self.takes_by_reference("transform") {
            self.transform_by_reference(x.columns.clone(), x.rows).await
        } else {
            guarded!(self, "transform", |k, store| k.call_transform(store, x))
                .and_then(|r| refused(self.id(), "transform", r))
        };
        let result = result.and_then(|out| {
            self.check_output(
                "transform",
                kernel_host_types::check_frame(&out, Some(x.rows)),
            )?;
            Ok(out)
        });
        if let Ok(out) = &result {
            self.remember(key, Cached::Frame(out.clone()));
        }
        self.record("transform", x.rows, &result, |f| f.rows.into(), false);
        result
    }

    /// [`KernelInstance::transform`] of a frame the caller no longer needs:
    /// a kernel that takes frames by reference gets its columns without a
    /// copy (and may rewrite them in place); others as `transform`.
    pub async fn transform_owned(&mut self, x: Frame) -> Result<Frame, Error> {
        if !self.takes_by_reference("transform") || self.cache.is_some() {
            return self.transform(&x).await;
        }
        let rows = x.rows;
        let result = self
            .transform_by_reference(x.columns, rows)
            .await
            .and_then(|out| {
                self.check_output(
                    "transform",
                    kernel_host_types::check_frame(&out, Some(rows)),
                )?;
                Ok(out)
            });
        self.record("transform", rows, &result, |f| f.rows.into(), false);
        result
    }

    /// One prediction per row of `x`.
    pub async fn predict(&mut self, x: &Frame) -> Result<Column, Error> {
        let rows = |c: &Column| kernel_host_types::column_len(c) as u64;
        let key = self.cache_key("predict", x).await;
        if let Some(Cached::Column(hit)) = self.lookup(key.as_ref(), "predict") {
            let result = Ok(hit);
            self.record("predict", x.rows, &result, rows, true);
            return result;
        }
        let result = guarded!(self, "predict", |k, store| k.call_predict(store, x))
            .and_then(|r| refused(self.id(), "predict", r))
            .and_then(|out| {
                self.check_output("predict", kernel_host_types::check_column(&out, x.rows))?;
                Ok(out)
            });
        if let Ok(out) = &result {
            self.remember(key, Cached::Column(out.clone()));
        }
        self.record("predict", x.rows, &result, rows, false);
        result
    }

    /// One probability column per class, one row per row of `x`.
    pub async fn predict_proba(&mut self, x: &Frame) -> Result<Frame, Error> {
        let key = self.cache_key("predict-proba", x).await;
        if let Some(Cached::Frame(hit)) = self.lookup(key.as_ref(), "predict-proba") {
            let result = Ok(hit);
            self.record("predict-proba", x.rows, &result, |f| f.rows.into(), true);
            return result;
        }
        let result = guarded!(self, "predict-proba", |k, store| k
            .call_predict_proba(store, x))
        .and_then(|r| refused(self.id(), "predict-proba", r))
        .and_then(|out| {
            self.check_output(
                "predict-proba",
                kernel_host_types::check_frame(&out, Some(x.rows)),
            )?;
            Ok(out)
        });
        if let Ok(out) = &result {
            self.remember(key, Cached::Frame(out.clone()));
        }
        self.record("predict-proba", x.rows, &result, |f| f.rows.into(), false);
        result
    }

    pub async fn save_state(&mut self) -> Result<Vec<u8>, Error> {
        let result = guarded!(self, "save-state", |k, store| k.call_save_state(store))
            .and_then(|r| refused(self.id(), "save-state", r));
        self.record("save-state", 0, &result, |_| 0, false);
        result
    }

    pub async fn load_state(&mut self, state: &[u8]) -> Result<(), Error> {
        self.state_hash = None;
        let result = guarded!(self, "load-state", |k, store| k
            .call_load_state(store, state))
        .and_then(|r| refused(self.id(), "load-state", r));
        let result = self.settle("load-state", result).await;
        self.record("load-state", 0, &result, |_| 0, false);
        result
    }

    pub async fn explain(&mut self) -> Result<Explanation, Error> {
        let result = guarded!(self, "explain", |k, store| k.call_explain(store))
            .and_then(|r| refused(self.id(), "explain", r))
            .and_then(|e| {
                let check = check_explanation(&e);
                self.check_output("explain", check)?;
                Ok(printable_explanation(e))
            });
        self.record("explain", 0, &result, |_| 0, false);
        result
    }

    fn check_output(
        &self,
        operation: &'static str,
        check: Result<(), String>,
    ) -> Result<(), Error> {
        check.map_err(|message| self.shared.fault(operation, Fault::BadOutput(message)))
    }
}

/// What a kernel says about itself, safe to print (see
/// [`kernel_host_types::printable`]).
fn printable_info(mut info: KernelInfo) -> KernelInfo {
    use kernel_host_types::make_printable as clean;
    clean(&mut info.name);
    clean(&mut info.version);
    clean(&mut info.description);
    for p in &mut info.params {
        clean(&mut p.name);
        clean(&mut p.description);
        if let bindings::ParamType::Choice(choices) = &mut p.kind {
            choices.iter_mut().for_each(clean);
        }
        if let bindings::ParamValue::String(v) = &mut p.default {
            clean(v);
        }
    }
    info
}

/// Tables in an explanation are frames like any output: every column as
/// long as the table claims, names unique (the host lays them out row by
/// row, so a claimed row count must be real).
fn check_explanation(e: &Explanation) -> Result<(), String> {
    for entry in &e.entries {
        if let bindings::ExplainValue::Table(table) = &entry.value {
            kernel_host_types::check_frame(table, None).map_err(|m| {
                format!(
                    "explanation table `{}`: {m}",
                    kernel_host_types::printable(&entry.name)
                )
            })?;
        }
    }
    Ok(())
}

/// An explanation with everything textual made safe to print.
fn printable_explanation(mut e: Explanation) -> Explanation {
    use kernel_host_types::make_printable as clean;
    clean(&mut e.summary);
    for entry in &mut e.entries {
        clean(&mut entry.name);
        match &mut entry.value {
            bindings::ExplainValue::Labels(labels) => labels.iter_mut().for_each(clean),
            bindings::ExplainValue::Text(text) => clean(text),
            bindings::ExplainValue::Table(table) => {
                for column in &mut table.columns {
                    clean(&mut column.name);
                    if let bindings::ColumnValues::String(cells) = &mut column.values {
                        cells.rewrite(|_, cell| match kernel_host_types::printable(cell) {
                            std::borrow::Cow::Owned(clean) => Some(clean),
                            std::borrow::Cow::Borrowed(_) => None,
                        });
                    }
                }
            }
            bindings::ExplainValue::Scalar(_) | bindings::ExplainValue::Vector(_) => {}
        }
    }
    e
}

/// Turns an error out of wasm into a [`Fault`], using what the store saw:
/// a refused memory growth means the memory limit, whatever the guest did
/// next; a panic message on stderr explains an `unreachable` trap.
fn classify(
    store: &mut Store<HostState>,
    error: wasmtime::Error,
    limits: Limits,
    mark: u64,
) -> Fault {
    let refused_growth = store.data_mut().limiter.take_refusal();
    let stderr = store.data().stderr.since(mark);
    let trap = error.downcast_ref::<Trap>().copied();
    match trap {
        Some(Trap::OutOfFuel) => Fault::OutOfFuel { limit: limits.fuel },
        Some(Trap::Interrupt) => Fault::Timeout {
            limit: limits.timeout,
        },
        Some(Trap::StackOverflow) => Fault::Trap {
            message: "stack overflow: the call stack is exhausted (unbounded recursion?)".into(),
        },
        _ if refused_growth.is_some() => Fault::MemoryLimit {
            limit_bytes: limits.memory_bytes,
        },
        Some(trap) => Fault::Trap {
            message: panic_message(&stderr).unwrap_or_else(|| trap.to_string()),
        },
        None => Fault::Trap {
            message: panic_message(&stderr)
                .unwrap_or_else(|| format!("host call failed: {error:#}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_compatibility() {
        assert!(compatible("0.1.0", "0.1.0"));
    }

    #[test]
    fn a_rewritten_file_is_a_new_file_even_with_its_old_size_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.wasm");
        std::fs::write(&path, b"first").unwrap();
        let before = FileKey::of(&path).unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(FileKey::of(&path), Some(before.clone()), "unchanged");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"other").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(modified).unwrap();
        drop(file);
        let after = FileKey::of(&path).unwrap();
        assert_eq!((after.len, after.modified), (before.len, before.modified));
        assert_ne!(after, before, "same size and mtime, but changed");
        assert_eq!(FileKey::of(&dir.path().join("missing")), None);
        assert!(compatible("0.1.0", "0.1.3"));
        assert!(!compatible("0.1.4", "0.1.3"), "newer than the host");
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.0.0", "0.1.0"));
        assert!(compatible("1.0.0", "1.2.0"));
        assert!(!compatible("garbage", "0.1.0"));
    }

    #[test]
    fn headers() {
        assert!(check_header(b"\0asm\x0d\0\x01\0rest").is_ok());
        assert!(
            check_header(b"\0asm\x01\0\0\0")
                .unwrap_err()
                .contains("core WebAssembly module")
        );
        assert!(check_header(b"hello").unwrap_err().contains("magic"));
    }
}

//! Whole-instance snapshots, taken and restored without the kernel's help.
//!
//! Every kernel is compiled from an instrumented copy of its component
//! ([`instrument`]) that exports accessors for each core instance's memories
//! and mutable globals. An [`Image`] is all of them, copied out after a
//! successful state-changing call; restoring writes them into a *fresh*
//! instance (any error out of wasm poisons a store, so there is no other
//! way back). Kernel code does not run during either: the copies are the
//! canonical ABI's own list lifting and lowering.
//!
//! What an image cannot hold is the kernel's handles to host resources
//! (open streams, preopened directories): those live in the store, not in
//! linear memory. An image taken while the kernel holds any is marked
//! [`Image::host_handles`], and the host does not restore it blindly.

mod instrument;

pub use instrument::{ACCESS, GlobalKind, instrument};

use std::sync::{Arc, OnceLock};
use wasmtime::component::{Component, ComponentExportIndex, Instance, WasmList};
use wasmtime::{AsContextMut, Result};

/// Where the accessors of an instrumented component are.
pub struct Access {
    memories: Vec<MemoryAccess>,
    globals: Vec<GlobalAccess>,
    /// The memories of a fresh instance, once read (sparse images are the
    /// pages that differ from them). Unset for components whose
    /// instantiation runs code ([`Access::sparse`] is false).
    fresh: OnceLock<Arc<Fresh>>,
    /// Reading a fresh instance failed once: images stay dense rather than
    /// paying for (and warning about) a new attempt at every snapshot.
    fresh_failed: std::sync::atomic::AtomicBool,
}

struct MemoryAccess {
    read: ComponentExportIndex,
    write: ComponentExportIndex,
    /// Present when the component may be restored sparsely.
    seek: Option<ComponentExportIndex>,
}

struct GlobalAccess {
    kind: GlobalKind,
    get: ComponentExportIndex,
    set: ComponentExportIndex,
}

/// The value of one mutable global.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GlobalValue {
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
}

/// Granularity of sparse images: the host's page.
pub const PAGE: usize = 4096;

/// Equal pages shorter than this between two changed ones are copied with
/// them: one more write call costs more than copying a few pages.
const GAP_PAGES: usize = 4;

/// A fresh instance's memories, as instantiation leaves them.
#[derive(Debug)]
pub struct Fresh {
    memories: Vec<Vec<u8>>,
}

/// One linear memory in an [`Image`]: its size, and the bytes of the page
/// runs that differ from a fresh instance's (the rest is the fresh
/// instance's: its data segments, then zeros).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryImage {
    /// Size of the memory, bytes.
    pub len: usize,
    /// Byte ranges of the memory held in `data`, in order, not touching.
    pub runs: Vec<std::ops::Range<usize>>,
    /// The runs' bytes, concatenated.
    pub data: Vec<u8>,
}

impl MemoryImage {
    /// The runs with their bytes.
    pub fn pieces(&self) -> impl Iterator<Item = (usize, &[u8])> {
        let mut at = 0;
        self.runs.iter().map(move |run| {
            let bytes = &self.data[at..at + run.len()];
            at += run.len();
            (run.start, bytes)
        })
    }

    /// Records `memory` as the runs of pages that differ from `fresh`
    /// (beyond `fresh`, from zero), reusing this image's buffers.
    pub fn record(&mut self, memory: &[u8], fresh: Option<&[u8]>) {
        self.len = memory.len();
        self.runs.clear();
        self.data.clear();
        // At most the whole memory: reserved once rather than grown by
        // doubling (each growth copies what is held and faults fresh
        // pages in). Pages never written are never resident.
        self.data.reserve_exact(memory.len());
        let Some(fresh) = fresh else {
            self.runs.push(0..memory.len());
            self.data.extend_from_slice(memory);
            return;
        };
        static ZERO: [u8; PAGE] = [0; PAGE];
        let mut open: Option<std::ops::Range<usize>> = None;
        for start in (0..memory.len()).step_by(PAGE) {
            let end = (start + PAGE).min(memory.len());
            let page = &memory[start..end];
            let same = match fresh.get(start..end) {
                Some(before) => page == before,
                None if start >= fresh.len() => page == &ZERO[..page.len()],
                // A page straddling the end of the fresh memory.
                None => {
                    let (old, new) = page.split_at(fresh.len() - start);
                    old == &fresh[start..] && new == &ZERO[..new.len()]
                }
            };
            if same {
                continue;
            }
            match &mut open {
                Some(run) if start - run.end <= GAP_PAGES * PAGE => run.end = end,
                _ => {
                    if let Some(run) = open.replace(start..end) {
                        self.close(memory, run);
                    }
                }
            }
        }
        if let Some(run) = open {
            self.close(memory, run);
        }
    }

    fn close(&mut self, memory: &[u8], run: std::ops::Range<usize>) {
        self.data.extend_from_slice(&memory[run.clone()]);
        self.runs.push(run);
    }

    /// The parts of `dirty` (sorted ranges of a memory that may differ from
    /// a fresh one) that this image's runs do not cover: what writing this
    /// image over a memory so dirtied must set back to fresh bytes.
    pub fn cleaning(&self, dirty: &[std::ops::Range<usize>]) -> Vec<std::ops::Range<usize>> {
        let mut left = Vec::new();
        let mut runs = self.runs.iter().peekable();
        for range in dirty {
            let mut at = range.start;
            while at < range.end {
                // Runs wholly before `at` cover nothing from here on.
                while runs.next_if(|run| run.end <= at).is_some() {}
                match runs.peek() {
                    Some(run) if run.start < range.end => {
                        if run.start > at {
                            left.push(at..run.start);
                        }
                        at = run.end.max(at);
                    }
                    _ => {
                        left.push(at..range.end);
                        at = range.end;
                    }
                }
            }
        }
        left
    }

    /// The whole memory: `fresh` (zeros without it), grown to [`Self::len`],
    /// with the runs written over it.
    pub fn materialize(&self, fresh: Option<&[u8]>) -> Vec<u8> {
        let mut memory = vec![0; self.len];
        if let Some(fresh) = fresh {
            let n = fresh.len().min(self.len);
            memory[..n].copy_from_slice(&fresh[..n]);
        }
        for (at, bytes) in self.pieces() {
            memory[at..at + bytes.len()].copy_from_slice(bytes);
        }
        memory
    }
}

/// Everything a kernel instance holds in wasm: its memories and mutable
/// globals, in accessor order.
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub memories: Vec<MemoryImage>,
    pub globals: Vec<GlobalValue>,
    /// Host resources (streams, directories) the kernel held when the image
    /// was taken; an image with any cannot be restored transparently.
    pub host_handles: usize,
    /// The fresh memories the runs are relative to (`None`: to zeros, and
    /// each memory is one run).
    pub fresh: Option<Arc<Fresh>>,
    /// Which capture took it (0: none): two images with the same nonzero
    /// id are the same state.
    pub id: u64,
}

/// What a restore left in an instance's memories: the image it wrote and
/// the ranges of each memory that may differ from a fresh instance's. A
/// later [`Access::restore_over`] sets those ranges back where the next
/// image does not cover them.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// [`Image::id`] of the image written.
    pub id: u64,
    /// Per memory, in order, not overlapping.
    pub dirty: Vec<Vec<std::ops::Range<usize>>>,
}

impl Written {
    /// Whether what was written is `image` (a captured one: id 0 is none's).
    pub fn is(&self, image: &Image) -> bool {
        image.id != 0 && self.id == image.id
    }
}

/// Ids of captured images (0 is no image's).
static NEXT_IMAGE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Image {
    /// Bytes of memory the image holds (the changed pages' bytes).
    pub fn bytes(&self) -> u64 {
        self.memories.iter().map(|m| m.data.len() as u64).sum()
    }

    /// Size of the memories it describes, bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memories.iter().map(|m| m.len as u64).sum()
    }

    /// Every memory whole, as a restore leaves it.
    pub fn materialize(&self) -> Vec<Vec<u8>> {
        (0..self.memories.len())
            .map(|m| self.memories[m].materialize(self.fresh_memory(m)))
            .collect()
    }

    fn fresh_memory(&self, m: usize) -> Option<&[u8]> {
        Some(self.fresh.as_ref()?.memories.get(m)?.as_slice())
    }
}

/// A shared, immutable image: checkpoints of a pipeline hold these without
/// copying.
pub type Snapshot = Arc<Image>;

impl Access {
    /// The accessors of `component`, or `None` when it was not instrumented.
    pub fn of(component: &Component) -> Option<Access> {
        let (_, access) = component.get_export(None, ACCESS)?;
        let find = |name: &str| component.get_export_index(Some(&access), name);
        let mut memories = Vec::new();
        while let (Some(read), Some(write)) = (
            find(&format!("read{}", memories.len())),
            find(&format!("write{}", memories.len())),
        ) {
            let seek = find(&format!("seek{}", memories.len()));
            memories.push(MemoryAccess { read, write, seek });
        }
        let mut globals = Vec::new();
        'globals: loop {
            let g = globals.len();
            for kind in GlobalKind::ALL {
                let name = kind.name();
                if let (Some(get), Some(set)) = (
                    find(&format!("get{g}-{name}")),
                    find(&format!("set{g}-{name}")),
                ) {
                    globals.push(GlobalAccess { kind, get, set });
                    continue 'globals;
                }
            }
            break;
        }
        Some(Access {
            memories,
            globals,
            fresh: OnceLock::new(),
            fresh_failed: Default::default(),
        })
    }

    /// Number of memories and mutable globals a snapshot covers.
    pub fn shape(&self) -> (usize, usize) {
        (self.memories.len(), self.globals.len())
    }

    /// Whether images of this component hold only the pages that differ
    /// from a fresh instance and are restored page run by page run.
    pub fn sparse(&self) -> bool {
        self.memories.iter().all(|m| m.seek.is_some())
    }

    /// Whether sparse images wait for [`Access::learn_fresh`].
    pub fn needs_fresh(&self) -> bool {
        self.sparse()
            && self.fresh.get().is_none()
            && !self.fresh_failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A fresh instance could not be read: from now on images of this
    /// component are dense (exact, larger), without further attempts.
    pub fn give_up_fresh(&self) {
        self.fresh_failed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reads a fresh instance's memories once per component, the reference
    /// of sparse images. `instance` must not have run any call yet.
    pub async fn learn_fresh<T: Send + 'static>(
        &self,
        mut store: impl AsContextMut<Data = T>,
        instance: &Instance,
    ) -> Result<()> {
        if !self.needs_fresh() {
            return Ok(());
        }
        let mut store = store.as_context_mut();
        let mut memories = Vec::with_capacity(self.memories.len());
        for memory in &self.memories {
            memories.push(read(&mut store, instance, memory.read, |bytes| bytes.to_vec()).await?);
        }
        // Two instances learning at once learn the same thing.
        let _ = self.fresh.set(Arc::new(Fresh { memories }));
        Ok(())
    }

    /// Copies the instance's memories and globals into an image, reusing
    /// the buffers of `reuse` (their pages are already faulted in).
    pub async fn capture<T: Send + 'static>(
        &self,
        mut store: impl AsContextMut<Data = T>,
        instance: &Instance,
        reuse: Option<Image>,
    ) -> Result<Image> {
        let mut store = store.as_context_mut();
        let mut image = reuse.unwrap_or_default();
        image.id = NEXT_IMAGE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        image.fresh = self.fresh.get().cloned();
        image
            .memories
            .resize_with(self.memories.len(), MemoryImage::default);
        for (m, (memory, recorded)) in self.memories.iter().zip(&mut image.memories).enumerate() {
            let fresh = image.fresh.as_ref().and_then(|f| f.memories.get(m));
            read(&mut store, instance, memory.read, |bytes| {
                recorded.record(bytes, fresh.map(Vec::as_slice));
            })
            .await?;
        }
        image.globals.clear();
        for global in &self.globals {
            let value = match global.kind {
                GlobalKind::I32 => GlobalValue::I32(get(&mut store, instance, global.get).await?),
                GlobalKind::I64 => GlobalValue::I64(get(&mut store, instance, global.get).await?),
                GlobalKind::F32 => GlobalValue::F32(get(&mut store, instance, global.get).await?),
                GlobalKind::F64 => GlobalValue::F64(get(&mut store, instance, global.get).await?),
            };
            image.globals.push(value);
        }
        Ok(image)
    }

    /// Readies a fresh `instance` for a later [`Access::restore_over`] of an
    /// image like `image`: grows each memory to the image's size and, for
    /// images holding at most [`PREPARE_PREFAULT_MAX`] bytes, faults in the
    /// pages the image's runs will be written to, so that the restore only
    /// copies. Returns the memories' sizes; an instance so prepared may
    /// take any image whose memories are at least as large (memories never
    /// shrink).
    pub async fn prepare<T: Send + 'static>(
        &self,
        mut store: impl AsContextMut<Data = T>,
        instance: &Instance,
        image: &Image,
    ) -> Result<Vec<usize>> {
        let mut store = store.as_context_mut();
        let mut sizes = Vec::with_capacity(self.memories.len());
        let prefault_runs = image.bytes() <= PREPARE_PREFAULT_MAX as u64;
        for (memory, recorded) in self.memories.iter().zip(&image.memories) {
            if let Some(seek) = memory.seek {
                let seek = instance.get_typed_func::<(u32, u32), ()>(&mut store, seek)?;
                let total = u32::try_from(recorded.len)
                    .map_err(|_| wasmtime::Error::msg("a snapshot memory over 4 GiB"))?;
                seek.call_async(&mut store, (0, total)).await?;
            }
            let len = read(&mut store, instance, memory.read, |view| {
                if prefault_runs {
                    for (at, bytes) in recorded.pieces() {
                        if let Some(range) = view.get(at..at + bytes.len()) {
                            prefault(range);
                        }
                    }
                }
                view.len()
            })
            .await?;
            sizes.push(len);
        }
        Ok(sizes)
    }

    /// Writes `image` into `instance`, which must be an instance of this
    /// component (or of one with the same core modules) that ran no code
    /// since instantiation or since a restore left `over` in it (`None`: a
    /// fresh instance). An image taken relative to this component's fresh
    /// memories writes only its runs; any other is written whole. The ranges
    /// `over` dirtied that `image` does not cover are set back to a fresh
    /// instance's bytes first, so the instance ends exactly as a fresh one
    /// restored with `image`. Nothing is written when `over` is `image`.
    /// The memories `over` left must be at most as large as the image's.
    pub async fn restore_over<T: Send + 'static>(
        &self,
        mut store: impl AsContextMut<Data = T>,
        instance: &Instance,
        image: &Image,
        over: Option<&Written>,
    ) -> Result<Written> {
        let mut store = store.as_context_mut();
        if image.memories.len() != self.memories.len() || image.globals.len() != self.globals.len()
        {
            wasmtime::bail!("the snapshot does not match this component's memories and globals");
        }
        if let Some(over) = over {
            if over.dirty.len() != self.memories.len() {
                wasmtime::bail!("the instance was restored with another component's snapshot");
            }
            if over.is(image) {
                return Ok(over.clone());
            }
        }
        let fresh = self.fresh.get();
        let same_fresh = match (&image.fresh, fresh) {
            (Some(taken), Some(here)) => Arc::ptr_eq(taken, here),
            _ => false,
        };
        let mut dirty = Vec::with_capacity(self.memories.len());
        for (m, (memory, recorded)) in self.memories.iter().zip(&image.memories).enumerate() {
            let write = instance.get_typed_func::<(&[u8],), ()>(&mut store, memory.write)?;
            let seek = match memory.seek {
                Some(seek) if same_fresh => seek,
                _ => {
                    // Written whole from the start: covers whatever `over`
                    // left below the image's size, which is all of it.
                    let whole = recorded.materialize(image.fresh_memory(m));
                    write.call_async(&mut store, (whole.as_slice(),)).await?;
                    dirty.push(std::iter::once(0..recorded.len).collect());
                    continue;
                }
            };
            let seek = instance.get_typed_func::<(u32, u32), ()>(&mut store, seek)?;
            let total = u32::try_from(recorded.len)
                .map_err(|_| wasmtime::Error::msg("a snapshot memory over 4 GiB"))?;
            seek.call_async(&mut store, (0, total)).await?;
            if recorded.data.len() >= PREFAULT_MIN {
                // The memory has grown to its size: fault the pages the
                // runs will fill in one call each instead of one trap per
                // 4 KiB page as the copies touch them.
                read(&mut store, instance, memory.read, |view| {
                    for (at, bytes) in recorded.pieces() {
                        if let Some(range) = view.get(at..at + bytes.len()) {
                            prefault(range);
                        }
                    }
                })
                .await?;
            }
            if let Some(over) = over {
                let fresh = fresh
                    .and_then(|f| f.memories.get(m))
                    .map_or(&[][..], Vec::as_slice);
                for range in recorded.cleaning(&over.dirty[m]) {
                    if range.end > recorded.len {
                        wasmtime::bail!("the instance holds a larger memory than the snapshot");
                    }
                    let mut bytes = vec![0; range.len()];
                    if let Some(from) = fresh.get(range.start..range.end.min(fresh.len())) {
                        bytes[..from.len()].copy_from_slice(from);
                    }
                    seek.call_async(&mut store, (range.start as u32, total))
                        .await?;
                    write.call_async(&mut store, (bytes.as_slice(),)).await?;
                }
            }
            for (at, bytes) in recorded.pieces() {
                // Fits: `at` is below `total`.
                seek.call_async(&mut store, (at as u32, total)).await?;
                write.call_async(&mut store, (bytes,)).await?;
            }
            dirty.push(recorded.runs.clone());
        }
        for (global, value) in self.globals.iter().zip(&image.globals) {
            match *value {
                GlobalValue::I32(v) => set(&mut store, instance, global.set, v).await?,
                GlobalValue::I64(v) => set(&mut store, instance, global.set, v).await?,
                GlobalValue::F32(v) => set(&mut store, instance, global.set, v).await?,
                GlobalValue::F64(v) => set(&mut store, instance, global.set, v).await?,
            }
        }
        Ok(Written {
            id: image.id,
            dirty,
        })
    }
}

/// Images holding less than this are written without prefaulting.
const PREFAULT_MIN: usize = 4 << 20;

/// Largest image whose pages [`Access::prepare`] faults in ahead: the
/// ones [`Access::restore_over`] would otherwise fault in a page at a time (a
/// larger image's are faulted in by the restore itself, with huge pages).
pub const PREPARE_PREFAULT_MAX: usize = PREFAULT_MIN;

/// Runs at least this long are backed with 2 MiB pages where aligned.
const HUGE_RUN_MIN: usize = 8 << 20;

/// Asks the kernel to back the pages under `range` (part of a linear
/// memory: a private, writable anonymous mapping) now, in one call, with
/// transparent huge pages across the 2 MiB-aligned interior of a run of at
/// least [`HUGE_RUN_MIN`]. Measured (benches/snapshots.rs): restoring a
/// 64 MiB image took 40–46 ms faulting 4 KiB pages one at a time, 40 ms
/// with them populated in one call, 14.8 ms with huge pages (a host memcpy
/// into fresh pages: 37 ms). The interior is marked `MADV_HUGEPAGE` only
/// while it is populated, then `MADV_NOHUGEPAGE`, so later instances in
/// the slot fault 4 KiB pages as before (the mark splits the slot's
/// mapping at 2 MiB boundaries; only large restores make it). Advisory:
/// where a kernel lacks `MADV_POPULATE_WRITE` (before Linux 5.14) or THP,
/// the calls fail and the copies fault the pages in as before.
fn prefault(range: &[u8]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = range.as_ptr() as usize;
        let aligned = start & !(PAGE - 1);
        let end = start + range.len();
        if end <= aligned + PAGE {
            return;
        }
        let (huge_start, huge_end) = ((start + HUGE - 1) & !(HUGE - 1), end & !(HUGE - 1));
        let huge = range.len() >= HUGE_RUN_MIN && huge_end > huge_start;
        // SAFETY: the range lies within a mapping wasmtime owns and keeps
        // for the store's life. MADV_POPULATE_WRITE only faults its pages
        // in (writing nothing), as the store's own writes would; the huge
        // page marks change how, not what, the pages hold.
        unsafe {
            if huge {
                libc::madvise(
                    huge_start as *mut libc::c_void,
                    huge_end - huge_start,
                    libc::MADV_HUGEPAGE,
                );
            }
            libc::madvise(
                aligned as *mut libc::c_void,
                end - aligned,
                libc::MADV_POPULATE_WRITE,
            );
            if huge {
                libc::madvise(
                    huge_start as *mut libc::c_void,
                    huge_end - huge_start,
                    libc::MADV_NOHUGEPAGE,
                );
            }
        }
    }
}

/// Calls the read accessor `func` and hands its view of the memory to
/// `with`.
async fn read<T: Send + 'static, R>(
    store: &mut wasmtime::StoreContextMut<'_, T>,
    instance: &Instance,
    func: ComponentExportIndex,
    with: impl FnOnce(&[u8]) -> R,
) -> Result<R> {
    let read = instance.get_typed_func::<(), (WasmList<u8>,)>(&mut *store, func)?;
    let (list,) = read.call_async(&mut *store, ()).await?;
    // Post-return has run: the view is the kernel's memory exactly.
    Ok(with(list.as_le_slice(&*store)))
}

async fn get<T: Send + 'static, V>(
    store: &mut wasmtime::StoreContextMut<'_, T>,
    instance: &Instance,
    func: ComponentExportIndex,
) -> Result<V>
where
    V: wasmtime::component::Lift + Send + Sync + 'static,
{
    let get = instance.get_typed_func::<(), (V,)>(&mut *store, func)?;
    Ok(get.call_async(&mut *store, ()).await?.0)
}

async fn set<T: Send + 'static, V>(
    store: &mut wasmtime::StoreContextMut<'_, T>,
    instance: &Instance,
    func: ComponentExportIndex,
    value: V,
) -> Result<()>
where
    V: wasmtime::component::Lower + Send + Sync + 'static,
{
    let set = instance.get_typed_func::<(V,), ()>(&mut *store, func)?;
    set.call_async(&mut *store, (value,)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A memory grown past a fresh one, with random bytes in random pages
    /// (and sometimes a single byte changed, or a page of the fresh
    /// memory's data set back to zero).
    fn dirty(rng: &mut Rng, fresh: &[u8], len: usize, pages: usize) -> Vec<u8> {
        let mut memory = vec![0; len];
        memory[..fresh.len()].copy_from_slice(fresh);
        for _ in 0..pages {
            let page = rng.below(len.div_ceil(PAGE));
            let range = page * PAGE..((page + 1) * PAGE).min(len);
            match rng.below(3) {
                0 => memory[range].iter_mut().for_each(|b| *b = rng.next() as u8),
                1 => memory[range.start + rng.below(range.len())] ^= 1,
                _ => memory[range].fill(0),
            }
        }
        memory
    }

    #[test]
    fn a_sparse_image_round_trips_random_dirty_pages() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..200 {
            // Fresh memories of odd sizes, part data, part zero.
            let fresh_len = rng.below(40 * PAGE) + 1;
            let mut fresh = vec![0u8; fresh_len];
            for b in fresh.iter_mut().take(fresh_len / 2) {
                *b = rng.next() as u8;
            }
            let len = fresh_len + rng.below(200 * PAGE);
            let pages = rng.below(60);
            let memory = dirty(&mut rng, &fresh, len, pages);
            let mut image = MemoryImage::default();
            image.record(&memory, Some(&fresh));
            assert_eq!(image.materialize(Some(&fresh)), memory, "case {case}");
            assert!(image.runs.windows(2).all(|w| w[0].end < w[1].start));
            assert!(image.data.len() <= pages.max(1) * (GAP_PAGES + 1) * PAGE + PAGE);
            // Recorded again into the same buffers: the same image.
            let again = image.clone();
            image.record(&memory, Some(&fresh));
            assert_eq!(image, again);
        }
    }

    /// Writing an image over a memory another image was written into (the
    /// ranges [`MemoryImage::cleaning`] names set back to fresh bytes, then
    /// the image's runs) leaves what writing it into a fresh memory does.
    #[test]
    fn an_image_written_over_another_leaves_what_a_fresh_restore_does() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for case in 0..300 {
            let fresh_len = rng.below(30 * PAGE) + 1;
            let mut fresh = vec![0u8; fresh_len];
            for b in fresh.iter_mut().take(fresh_len / 3) {
                *b = rng.next() as u8;
            }
            let before_len = fresh_len + rng.below(100 * PAGE);
            let after_len = before_len + rng.below(3) * rng.below(50 * PAGE);
            let (mut before, mut after) = (MemoryImage::default(), MemoryImage::default());
            let before_pages = rng.below(60);
            before.record(
                &dirty(&mut rng, &fresh, before_len, before_pages),
                Some(&fresh),
            );
            let after_pages = rng.below(60);
            let wanted = dirty(&mut rng, &fresh, after_len, after_pages);
            after.record(&wanted, Some(&fresh));

            let mut memory = before.materialize(Some(&fresh));
            memory.resize(after_len, 0);
            let cleaning = after.cleaning(&before.runs);
            for range in &cleaning {
                assert!(
                    range.end <= before_len,
                    "case {case}: only what was dirtied"
                );
                for at in range.clone() {
                    memory[at] = fresh.get(at).copied().unwrap_or(0);
                }
            }
            for (at, bytes) in after.pieces() {
                memory[at..at + bytes.len()].copy_from_slice(bytes);
            }
            assert_eq!(memory, wanted, "case {case}");
            // Nothing cleaned twice, nothing the new runs cover.
            assert!(cleaning.windows(2).all(|w| w[0].end <= w[1].start));
            assert!(cleaning.iter().all(|c| {
                after
                    .runs
                    .iter()
                    .all(|r| c.end <= r.start || r.end <= c.start)
            }));
        }
        // Over the same runs: nothing to clean.
        let image = MemoryImage {
            runs: vec![PAGE..3 * PAGE, 8 * PAGE..9 * PAGE],
            ..MemoryImage::default()
        };
        assert!(image.cleaning(&image.runs.clone()).is_empty());
        assert_eq!(
            image.cleaning(std::slice::from_ref(&(0..10 * PAGE))),
            vec![0..PAGE, 3 * PAGE..8 * PAGE, 9 * PAGE..10 * PAGE]
        );
    }

    #[test]
    fn an_unchanged_memory_holds_nothing_and_a_dense_one_everything() {
        let fresh: Vec<u8> = (0..10 * PAGE).map(|i| (i % 251) as u8).collect();
        let mut memory = fresh.clone();
        memory.resize(30 * PAGE, 0);
        let mut image = MemoryImage::default();
        image.record(&memory, Some(&fresh));
        assert!(image.runs.is_empty() && image.data.is_empty());
        assert_eq!(image.materialize(Some(&fresh)), memory);
        // One changed byte: one page.
        memory[17 * PAGE + 5] = 1;
        image.record(&memory, Some(&fresh));
        assert_eq!(image.runs, vec![17 * PAGE..18 * PAGE]);
        // Without a fresh memory: the whole memory, one run.
        image.record(&memory, None);
        assert_eq!(image.runs, vec![0..memory.len()]);
        assert_eq!(image.materialize(None), memory);
    }
}

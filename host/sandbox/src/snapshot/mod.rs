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

use std::sync::Arc;
use wasmtime::component::{Component, ComponentExportIndex, Instance, WasmList};
use wasmtime::{AsContextMut, Result};

/// Where the accessors of an instrumented component are.
pub struct Access {
    memories: Vec<MemoryAccess>,
    globals: Vec<GlobalAccess>,
}

struct MemoryAccess {
    read: ComponentExportIndex,
    write: ComponentExportIndex,
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

/// Everything a kernel instance holds in wasm: its memories and mutable
/// globals, in accessor order.
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub memories: Vec<Vec<u8>>,
    pub globals: Vec<GlobalValue>,
    /// Host resources (streams, directories) the kernel held when the image
    /// was taken; an image with any cannot be restored transparently.
    pub host_handles: usize,
}

impl Image {
    /// Bytes of memory the image holds.
    pub fn bytes(&self) -> u64 {
        self.memories.iter().map(|m| m.len() as u64).sum()
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
            memories.push(MemoryAccess { read, write });
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
        Some(Access { memories, globals })
    }

    /// Number of memories and mutable globals a snapshot covers.
    pub fn shape(&self) -> (usize, usize) {
        (self.memories.len(), self.globals.len())
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
        image.memories.resize_with(self.memories.len(), Vec::new);
        for (memory, buffer) in self.memories.iter().zip(&mut image.memories) {
            let read = instance.get_typed_func::<(), (WasmList<u8>,)>(&mut store, memory.read)?;
            let (list,) = read.call_async(&mut store, ()).await?;
            // Post-return has run: the view is the kernel's memory exactly.
            let bytes = list.as_le_slice(&store);
            buffer.clear();
            buffer.extend_from_slice(bytes);
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

    /// Writes `image` into `instance`, which must be a fresh instance of the
    /// same component (memories never shrink, so each is at most as large
    /// as the image's).
    pub async fn restore<T: Send + 'static>(
        &self,
        mut store: impl AsContextMut<Data = T>,
        instance: &Instance,
        image: &Image,
    ) -> Result<()> {
        let mut store = store.as_context_mut();
        if image.memories.len() != self.memories.len() || image.globals.len() != self.globals.len()
        {
            wasmtime::bail!("the snapshot does not match this component's memories and globals");
        }
        for (memory, bytes) in self.memories.iter().zip(&image.memories) {
            let write = instance.get_typed_func::<(&[u8],), ()>(&mut store, memory.write)?;
            write.call_async(&mut store, (bytes.as_slice(),)).await?;
        }
        for (global, value) in self.globals.iter().zip(&image.globals) {
            match *value {
                GlobalValue::I32(v) => set(&mut store, instance, global.set, v).await?,
                GlobalValue::I64(v) => set(&mut store, instance, global.set, v).await?,
                GlobalValue::F32(v) => set(&mut store, instance, global.set, v).await?,
                GlobalValue::F64(v) => set(&mut store, instance, global.set, v).await?,
            }
        }
        Ok(())
    }
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

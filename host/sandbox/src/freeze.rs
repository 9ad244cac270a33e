//! `freeze`: a fitted kernel as a new standalone component whose initial
//! memory *is* its fitted state.
//!
//! The instance's memories and globals are snapshotted (transparently, so
//! kernels without `save-state` freeze too), written into a fresh instance
//! of the component instrumented by `wasmtime-wizer`, and wizer rewrites
//! the original component with that state as its data segments. The
//! result instantiates copy-on-write like any other component and predicts
//! without `configure` or `load-state`. A custom section
//! ([`FROZEN_SECTION`]) records where it came from; the host reads it to
//! know not to reconfigure the kernel (which would reset it).

use crate::error::Error;
use crate::kernel::{Checkpoint, KernelComponent, KernelInstance};
use crate::state::HostState;
use serde::{Deserialize, Serialize};
use wasmtime::Store;
use wasmtime::component::{Instance, WasmList};

/// Name of the custom section that marks a frozen kernel.
pub const FROZEN_SECTION: &str = "kernel-host:frozen";

/// What a frozen component says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frozen {
    /// `name@version` of the kernel.
    pub kernel: String,
    /// sha256 of the component it was frozen from.
    pub source_sha256: String,
    /// The parameters it was configured with, as `name=value`.
    pub params: Vec<String>,
    /// Bytes of memory baked in.
    pub state_bytes: u64,
    /// RFC 3339 time of freezing.
    pub frozen_at: String,
}

/// The [`Frozen`] record of `component`'s bytes, if it has one. Reads only
/// the top-level sections (nested modules are skipped whole), so it costs
/// microseconds on every kernel load.
pub fn frozen_record(component: &[u8]) -> Option<Frozen> {
    use wasmparser::{Chunk, Payload};
    let mut parser = wasmparser::Parser::new(0);
    let mut offset = 0;
    loop {
        let Chunk::Parsed { consumed, payload } = parser.parse(&component[offset..], true).ok()?
        else {
            return None;
        };
        offset += consumed;
        match payload {
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                // The outer parser goes on after the nested bytes.
                offset += unchecked_range.len();
            }
            Payload::CustomSection(section) if section.name() == FROZEN_SECTION => {
                return serde_json::from_slice(section.data()).ok();
            }
            Payload::End(_) => return None,
            _ => {}
        }
    }
}

/// Freezes `instance` (an instance of `component`) as it is now.
pub async fn freeze(
    component: &KernelComponent,
    instance: &mut KernelInstance,
) -> Result<Vec<u8>, Error> {
    let refuse = |why: String| {
        Error::Host(anyhow::anyhow!(
            "cannot freeze kernel `{}`: {why}",
            component.id()
        ))
    };
    component
        .snapshots()
        .map_err(|why| refuse(why.to_string()))?;
    let image = match instance.snapshot_now().await? {
        Some(image) if image.host_handles == 0 => image.clone(),
        Some(image) => {
            return Err(refuse(format!(
                "it holds {} host resource handles, which cannot be baked into memory",
                image.host_handles
            )));
        }
        None => return Err(refuse("it could not be snapshotted".into())),
    };
    let wizer = wasmtime_wizer::Wizer::new();
    let original = component.bytes()?;
    let (cx, instrumented) = std::panic::catch_unwind(|| wizer.instrument_component(&original))
        .map_err(|_| refuse("wizer could not instrument it".into()))?
        .map_err(|e| refuse(format!("{e:#}")))?;

    // A twin instance of the wizer-instrumented component, holding the
    // snapshot (the core modules, hence memories and globals, are the same).
    let twin = KernelComponent::load_bytes(
        component.sandbox(),
        "",
        component.id(),
        component.path(),
        &instrumented,
        None,
        instance.limits(),
    )
    .await?;
    let mut twin = twin
        .instantiate(instance.limits(), instance.grants().clone())
        .await?;
    twin.rollback_to(Checkpoint::Image {
        snapshot: Some(std::sync::Arc::new(image.clone())),
        params: Vec::new(),
    })
    .await?;
    let (store, raw) = twin.raw();
    let mut frozen = wizer
        .snapshot_component(
            &cx,
            &mut Accessors {
                store,
                instance: raw,
            },
        )
        .await
        .map_err(|e| refuse(format!("{e:#}")))?;

    let info = component.info();
    let record = Frozen {
        kernel: format!("{}@{}", info.name, info.version),
        source_sha256: component.sha256().to_string(),
        params: instance
            .params()
            .iter()
            .map(|p| format!("{}={}", p.name, p.value))
            .collect(),
        state_bytes: image.memory_bytes(),
        frozen_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    let mut section = wasm_encoder::Component::new();
    section.section(&wasm_encoder::CustomSection {
        name: FROZEN_SECTION.into(),
        data: serde_json::to_vec(&record)
            .map_err(|e| refuse(e.to_string()))?
            .into(),
    });
    // Append the section, without the second component header.
    let section = section.finish();
    frozen.extend_from_slice(&section[8..]);
    Ok(frozen)
}

/// Wizer's view of the twin instance: its accessor exports, called
/// through our store.
struct Accessors<'a> {
    store: &'a mut Store<HostState>,
    instance: Instance,
}

impl Accessors<'_> {
    async fn call<R>(&mut self, instance: &str, func: &str) -> wasmtime::Result<R>
    where
        R: wasmtime::component::Lift + Send + Sync + 'static,
    {
        let (_, outer) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .ok_or_else(|| wasmtime::format_err!("no export `{instance}`"))?;
        let (_, index) = self
            .instance
            .get_export(&mut *self.store, Some(&outer), func)
            .ok_or_else(|| wasmtime::format_err!("no export `{instance}#{func}`"))?;
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, index)?;
        Ok(func.call_async(&mut *self.store, ()).await?.0)
    }
}

// Wizer's trait has no way to report errors: a failed accessor call (which
// would be a bug in wizer's instrumentation) panics, as wizer's own
// implementation does.
#[allow(clippy::expect_used)]
impl wasmtime_wizer::ComponentInstanceState for Accessors<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        let list: WasmList<u8> = self.call(instance, func).await.expect("wizer accessor");
        contents(list.as_le_slice(&*self.store));
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func).await.expect("wizer accessor")
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func).await.expect("wizer accessor")
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func)
            .await
            .expect("wizer accessor")
            .to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func)
            .await
            .expect("wizer accessor")
            .to_bits()
    }
}

//! Rewrites a component so the host can read and write its core instances'
//! memories and mutable globals from outside.
//!
//! The idea is wasmtime-wizer's (which only reads): every core module that
//! is instantiated gets extra exports for its defined memories and mutable
//! globals; an "accessor" core module imports them and defines small
//! functions over them; those functions are lifted and exported from the
//! component as the instance [`ACCESS`]:
//!
//! | export | type | does |
//! |---|---|---|
//! | `read{m}` | `func() -> list<u8>` | the whole memory `m`, as a view the host copies once |
//! | `write{m}` | `func(image: list<u8>)` | grows memory `m` to hold the bytes at the cursor (initially 0); the canonical ABI copies them there |
//! | `seek{m}` | `func(offset: u32, total: u32)` | grows memory `m` to hold `total` bytes and moves its cursor to `offset` |
//! | `get{g}-{ty}` | `func() -> ty` | mutable global `g` |
//! | `set{g}-{ty}` | `func(value: ty)` | sets mutable global `g` |
//!
//! `read` needs 8 bytes of memory for the list's (pointer, length) pair: it
//! borrows the last 8 bytes, keeping their value in an accessor global, and
//! its post-return function puts them back, so the memory the host sees
//! after the call is exactly the kernel's (wizer instead grows the memory by
//! a page on every read). `write` works through its `realloc` option, which
//! grows the memory and answers the cursor: the lowering of the argument
//! *is* the restore, one copy, and no kernel code runs. `seek` makes sparse
//! restores possible: only the pages that differ from a fresh instance are
//! written, each run at its offset. It is only exported when no core module
//! has a start function, so that a fresh instance's memory is a function of
//! the component alone (the host compares against it).
//!
//! Only components this host can reason about are instrumented: one
//! instantiation per module, 32-bit memories with 64 KiB pages, scalar
//! globals. Anything else is reported and the kernel runs uninstrumented.

use anyhow::{Context as _, bail};
use wasm_encoder::{
    Alias, BlockType, CanonicalFunctionSection, CanonicalOption, Component, ComponentAliasSection,
    ComponentExportKind, ComponentExportSection, ComponentInstanceSection, ComponentTypeSection,
    ComponentValType, ExportKind, Function, InstanceSection, MemArg, ModuleArg, PrimitiveValType,
    RawSection, ValType,
};
use wasmparser::{
    CanonicalFunction, ComponentAlias, ComponentExternalKind, ComponentOuterAliasKind,
    ComponentTypeRef, Encoding, ExternalKind, Instance, Parser, Payload, TypeRef,
};

/// The component instance the instrumentation exports.
pub const ACCESS: &str = "kernel-host:snapshot/access";

/// The type of a mutable global, as named in the accessor exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalKind {
    I32,
    I64,
    F32,
    F64,
}

impl GlobalKind {
    pub const ALL: [GlobalKind; 4] = [Self::I32, Self::I64, Self::F32, Self::F64];

    pub fn name(self) -> &'static str {
        match self {
            Self::I32 => "i32",
            Self::I64 => "i64",
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }

    fn of(ty: wasmparser::ValType) -> Option<Self> {
        match ty {
            wasmparser::ValType::I32 => Some(Self::I32),
            wasmparser::ValType::I64 => Some(Self::I64),
            wasmparser::ValType::F32 => Some(Self::F32),
            wasmparser::ValType::F64 => Some(Self::F64),
            _ => None,
        }
    }

    fn core(self) -> ValType {
        match self {
            Self::I32 => ValType::I32,
            Self::I64 => ValType::I64,
            Self::F32 => ValType::F32,
            Self::F64 => ValType::F64,
        }
    }

    fn wit(self) -> PrimitiveValType {
        match self {
            Self::I32 => PrimitiveValType::S32,
            Self::I64 => PrimitiveValType::S64,
            Self::F32 => PrimitiveValType::F32,
            Self::F64 => PrimitiveValType::F64,
        }
    }
}

/// Name of the export added to a core module for its defined memory `i`.
fn memory_export(i: u32) -> String {
    format!("kernel-host:memory{i}")
}

/// Name of the export added to a core module for its global `i`.
fn global_export(i: u32) -> String {
    format!("kernel-host:global{i}")
}

/// A section of a core module: its id and where its bytes are.
type Section = (u8, std::ops::Range<usize>);

/// What a core module holds that a snapshot must capture.
#[derive(Default)]
struct ModuleState {
    imported_memories: u32,
    imported_globals: u32,
    /// Defined memories (absolute memory indices).
    memories: Vec<u32>,
    /// Defined mutable globals (absolute global indices) and their types.
    globals: Vec<(u32, GlobalKind)>,
    /// Whether the module has a start function (code that runs while the
    /// component is instantiated).
    start: bool,
}

/// Running counts of the component's index spaces, and what it holds.
#[derive(Default)]
struct Counts {
    core_modules: u32,
    core_instances: u32,
    core_funcs: u32,
    core_memories: u32,
    types: u32,
    funcs: u32,
    instances: u32,
    /// Core instance index of each module's one instantiation.
    instantiations: Vec<Option<u32>>,
}

impl Counts {
    fn component_item(&mut self, kind: ComponentExternalKind) -> anyhow::Result<()> {
        match kind {
            ComponentExternalKind::Func => self.funcs += 1,
            ComponentExternalKind::Type => self.types += 1,
            ComponentExternalKind::Instance => self.instances += 1,
            ComponentExternalKind::Module => bail!("imported or aliased core modules"),
            ComponentExternalKind::Component => bail!("nested component items"),
            ComponentExternalKind::Value => bail!("component values"),
        }
        Ok(())
    }
}

/// Returns `component` instrumented as described in the module docs, or why
/// it cannot be.
pub fn instrument(component: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Component::new();
    let mut counts = Counts::default();
    let mut modules: Vec<ModuleState> = Vec::new();
    // Nesting below the top-level component: a core module being copied, or
    // a nested component (passed through).
    let mut module: Option<(ModuleState, Vec<Section>)> = None;
    let mut nested_components = 0u32;

    for payload in Parser::new(0).parse_all(component) {
        let payload = payload.context("the component does not parse")?;
        if let Some((state, sections)) = &mut module {
            match payload {
                Payload::End(_) => {
                    let (state, sections) = module.take().unwrap_or_default();
                    let bytes = rewrite_module(component, &state, &sections)?;
                    out.section(&RawSection {
                        id: wasm_encoder::ComponentSectionId::CoreModule as u8,
                        data: &bytes,
                    });
                    modules.push(state);
                }
                payload => {
                    scan_module(&payload, state)?;
                    if let Some(section) = payload.as_section() {
                        sections.push(section);
                    }
                }
            }
            continue;
        }
        if nested_components > 0 {
            match payload {
                Payload::ModuleSection { .. } => bail!("core modules inside nested components"),
                Payload::ComponentSection { .. } => nested_components += 1,
                Payload::End(_) => nested_components -= 1,
                _ => {}
            }
            continue;
        }
        match &payload {
            Payload::Version {
                encoding: Encoding::Module,
                ..
            } => bail!("a core module, not a component"),
            Payload::ModuleSection { .. } => {
                counts.core_modules += 1;
                counts.instantiations.push(None);
                module = Some(Default::default());
                continue;
            }
            Payload::ComponentSection { .. } => {
                nested_components += 1;
                // The nested component's bytes are copied whole below.
            }
            Payload::InstanceSection(reader) => {
                for instance in reader.clone() {
                    let index = counts.core_instances;
                    counts.core_instances += 1;
                    if let Instance::Instantiate { module_index, .. } = instance? {
                        let slot = counts
                            .instantiations
                            .get_mut(module_index as usize)
                            .context("instantiation of an unknown module")?;
                        if slot.replace(index).is_some() {
                            bail!("a core module instantiated twice");
                        }
                    }
                }
            }
            Payload::ComponentInstanceSection(reader) => counts.instances += reader.count(),
            Payload::ComponentTypeSection(reader) => counts.types += reader.count(),
            Payload::ComponentAliasSection(reader) => {
                for alias in reader.clone() {
                    match alias? {
                        ComponentAlias::CoreInstanceExport { kind, .. } => match kind {
                            ExternalKind::Func => counts.core_funcs += 1,
                            ExternalKind::Memory => counts.core_memories += 1,
                            _ => {}
                        },
                        ComponentAlias::InstanceExport { kind, .. } => {
                            counts.component_item(kind)?;
                        }
                        ComponentAlias::Outer { kind, .. } => match kind {
                            ComponentOuterAliasKind::CoreType => {}
                            ComponentOuterAliasKind::Type => counts.types += 1,
                            _ => bail!("outer aliases of modules or components"),
                        },
                    }
                }
            }
            Payload::ComponentCanonicalSection(reader) => {
                for function in reader.clone() {
                    match function? {
                        CanonicalFunction::Lift { .. } => counts.funcs += 1,
                        _ => counts.core_funcs += 1,
                    }
                }
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader.clone() {
                    let kind = match import?.ty {
                        ComponentTypeRef::Type(_) => ComponentExternalKind::Type,
                        other => other.kind(),
                    };
                    counts.component_item(kind)?;
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader.clone() {
                    counts.component_item(export?.kind)?;
                }
            }
            Payload::ComponentStartSection { .. } => bail!("a component start function"),
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            out.section(&RawSection {
                id,
                data: &component[range],
            });
        }
    }
    append_accessors(&mut out, &counts, &modules)?;
    let bytes = out.finish();
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&bytes)
        .context("the instrumented component does not validate (a kernel-host bug)")?;
    Ok(bytes)
}

/// Collects what a module section holds that snapshots need.
fn scan_module(payload: &Payload<'_>, state: &mut ModuleState) -> anyhow::Result<()> {
    match payload {
        Payload::ImportSection(reader) => {
            for import in reader.clone().into_imports() {
                match import?.ty {
                    TypeRef::Memory(_) => state.imported_memories += 1,
                    TypeRef::Global(_) => state.imported_globals += 1,
                    _ => {}
                }
            }
        }
        Payload::MemorySection(reader) => {
            for (i, memory) in reader.clone().into_iter().enumerate() {
                let memory = memory?;
                if memory.memory64 || memory.shared || memory.page_size_log2.is_some() {
                    bail!("a 64-bit, shared or custom-page-size memory");
                }
                state.memories.push(state.imported_memories + index(i)?);
            }
        }
        Payload::StartSection { .. } => state.start = true,
        Payload::GlobalSection(reader) => {
            for (i, global) in reader.clone().into_iter().enumerate() {
                let ty = global?.ty;
                if !ty.mutable {
                    continue;
                }
                let kind = GlobalKind::of(ty.content_type)
                    .context("a mutable global that is not i32/i64/f32/f64")?;
                state
                    .globals
                    .push((state.imported_globals + index(i)?, kind));
            }
        }
        _ => {}
    }
    Ok(())
}

fn index(i: usize) -> anyhow::Result<u32> {
    u32::try_from(i).context("too many items")
}

/// The module's sections with exports added for its memories and globals.
fn rewrite_module(
    component: &[u8],
    state: &ModuleState,
    sections: &[Section],
) -> anyhow::Result<Vec<u8>> {
    const EXPORT: u8 = 7;
    let mut module = wasm_encoder::Module::new();
    let mut exported = state.memories.is_empty() && state.globals.is_empty();
    for (id, range) in sections {
        let data = &component[range.clone()];
        if *id != EXPORT {
            module.section(&RawSection { id: *id, data });
            continue;
        }
        let mut exports = wasm_encoder::ExportSection::new();
        let reader =
            wasmparser::ExportSectionReader::new(wasmparser::BinaryReader::new(data, range.start))?;
        for export in reader {
            let export = export?;
            exports.export(export.name, export.kind.into(), export.index);
        }
        for &memory in &state.memories {
            exports.export(&memory_export(memory), ExportKind::Memory, memory);
        }
        for &(global, _) in &state.globals {
            exports.export(&global_export(global), ExportKind::Global, global);
        }
        module.section(&exports);
        exported = true;
    }
    if !exported {
        bail!("a module with state but no export section");
    }
    Ok(module.finish())
}

/// One lifted accessor: core function name in the accessor module, its
/// component export name, its component type and canonical options.
struct Lift {
    name: String,
    ty: u32,
    memory: Option<u32>,
    realloc: Option<String>,
    post_return: Option<String>,
}

/// Appends the accessor module, its instance, the lifts and the exported
/// [`ACCESS`] instance.
fn append_accessors(
    out: &mut Component,
    counts: &Counts,
    modules: &[ModuleState],
) -> anyhow::Result<()> {
    // Component types: list<u8>, then read/write, then get/set per kind.
    let mut types = ComponentTypeSection::new();
    let list = counts.types;
    types
        .defined_type()
        .list(ComponentValType::Primitive(PrimitiveValType::U8));
    let read_ty = counts.types + 1;
    types
        .function()
        .params::<_, ComponentValType>([])
        .result(Some(ComponentValType::Type(list)));
    let write_ty = counts.types + 2;
    types
        .function()
        .params([("image", ComponentValType::Type(list))])
        .result(None);
    let get_ty = |k: usize| counts.types + 3 + 2 * index(k).unwrap_or(0);
    for kind in GlobalKind::ALL {
        types
            .function()
            .params::<_, ComponentValType>([])
            .result(Some(ComponentValType::Primitive(kind.wit())));
        types
            .function()
            .params([("value", ComponentValType::Primitive(kind.wit()))])
            .result(None);
    }
    let seek_ty = counts.types + 3 + 2 * index(GlobalKind::ALL.len())?;
    let u32_ty = ComponentValType::Primitive(PrimitiveValType::U32);
    types
        .function()
        .params([("offset", u32_ty), ("total", u32_ty)])
        .result(None);
    // Sparse restores compare against a fresh instance: only sound when
    // instantiating runs no module code.
    let sparse = modules.iter().all(|m| !m.start);

    let stateful = modules
        .iter()
        .enumerate()
        .filter(|(i, _)| counts.instantiations[*i].is_some());
    let mut accessor = Accessor {
        imported_globals: index(stateful.map(|(_, s)| s.globals.len()).sum())?,
        ..Accessor::default()
    };
    let mut lifts = Vec::new();
    let mut memory_aliases = ComponentAliasSection::new();
    let mut args = Vec::new();
    let (mut m, mut g) = (0u32, 0u32);
    for (module_index, state) in modules.iter().enumerate() {
        let Some(instance) = counts.instantiations[module_index] else {
            continue;
        };
        if state.memories.is_empty() && state.globals.is_empty() {
            continue;
        }
        let import = format!("i{instance}");
        for &memory in &state.memories {
            let core_memory = counts.core_memories + m;
            memory_aliases.alias(Alias::CoreInstanceExport {
                instance,
                kind: ExportKind::Memory,
                name: &memory_export(memory),
            });
            accessor.memory(&import, &memory_export(memory), m);
            lifts.push(Lift {
                name: format!("read{m}"),
                ty: read_ty,
                memory: Some(core_memory),
                realloc: None,
                post_return: Some(format!("read{m}-post")),
            });
            lifts.push(Lift {
                name: format!("write{m}"),
                ty: write_ty,
                memory: Some(core_memory),
                realloc: Some(format!("write{m}-realloc")),
                post_return: None,
            });
            if sparse {
                lifts.push(Lift {
                    name: format!("seek{m}"),
                    ty: seek_ty,
                    memory: None,
                    realloc: None,
                    post_return: None,
                });
            }
            m += 1;
        }
        for &(global, kind) in &state.globals {
            accessor.global(&import, &global_export(global), g, kind);
            let k = GlobalKind::ALL.iter().position(|&x| x == kind).unwrap_or(0);
            lifts.push(Lift {
                name: format!("get{g}-{}", kind.name()),
                ty: get_ty(k),
                memory: None,
                realloc: None,
                post_return: None,
            });
            lifts.push(Lift {
                name: format!("set{g}-{}", kind.name()),
                ty: get_ty(k) + 1,
                memory: None,
                realloc: None,
                post_return: None,
            });
            g += 1;
        }
        args.push((import, instance));
    }

    out.section(&wasm_encoder::ModuleSection(&accessor.finish()));
    let accessor_instance = counts.core_instances;
    let mut instances = InstanceSection::new();
    instances.instantiate(
        counts.core_modules,
        args.iter()
            .map(|(name, i)| (name.as_str(), ModuleArg::Instance(*i))),
    );
    out.section(&instances);
    out.section(&memory_aliases);

    // Core functions of the accessor, aliased in order of first use.
    let mut func_aliases = ComponentAliasSection::new();
    let mut core_funcs: Vec<String> = Vec::new();
    let mut core_func = |name: &str| -> u32 {
        let found = core_funcs.iter().position(|n| n == name);
        let position = found.unwrap_or_else(|| {
            func_aliases.alias(Alias::CoreInstanceExport {
                instance: accessor_instance,
                kind: ExportKind::Func,
                name,
            });
            core_funcs.push(name.to_string());
            core_funcs.len() - 1
        });
        counts.core_funcs + index(position).unwrap_or(0)
    };
    let mut canonicals = CanonicalFunctionSection::new();
    let mut lifted = Vec::new();
    for lift in &lifts {
        let func = core_func(&lift.name);
        let mut options = vec![];
        if let Some(memory) = lift.memory {
            options.push(CanonicalOption::Memory(memory));
        }
        if let Some(realloc) = &lift.realloc {
            options.push(CanonicalOption::Realloc(core_func(realloc)));
        }
        if let Some(post) = &lift.post_return {
            options.push(CanonicalOption::PostReturn(core_func(post)));
        }
        canonicals.lift(func, lift.ty, options);
        lifted.push((lift.name.as_str(), counts.funcs + index(lifted.len())?));
    }
    out.section(&func_aliases);
    out.section(&types);
    out.section(&canonicals);

    let mut instance = ComponentInstanceSection::new();
    instance.export_items(
        lifted
            .iter()
            .map(|&(name, func)| (name, ComponentExportKind::Func, func)),
    );
    out.section(&instance);
    let mut exports = ComponentExportSection::new();
    exports.export(
        ACCESS,
        ComponentExportKind::Instance,
        counts.instances,
        None,
    );
    out.section(&exports);
    Ok(())
}

/// The accessor core module being built.
#[derive(Default)]
struct Accessor {
    types: wasm_encoder::TypeSection,
    imports: wasm_encoder::ImportSection,
    functions: wasm_encoder::FunctionSection,
    exports: wasm_encoder::ExportSection,
    code: wasm_encoder::CodeSection,
    /// Number of imported globals: the globals that keep each memory's
    /// borrowed bytes are numbered after them.
    imported_globals: u32,
    memories: u32,
}

impl Accessor {
    /// Adds a function of type `params -> results` named `name`.
    fn function(&mut self, name: &str, params: &[ValType], results: &[ValType], body: &Function) {
        let ty = self.types.len();
        self.types
            .ty()
            .function(params.iter().copied(), results.iter().copied());
        let index = self.functions.len();
        self.functions.function(ty);
        self.code.function(body);
        self.exports.export(name, ExportKind::Func, index);
    }

    /// Accessors for the memory `name` of instance `import`, which becomes
    /// accessor memory `m`.
    fn memory(&mut self, import: &str, name: &str, m: u32) {
        self.imports.import(
            import,
            name,
            wasm_encoder::MemoryType {
                minimum: 0,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            },
        );
        self.memories += 1;
        // Each memory's two accessor globals: its borrowed bytes, its cursor.
        let saved = self.imported_globals + 2 * m;
        let cursor = saved + 1;
        let at = |offset| MemArg {
            offset,
            align: 2,
            memory_index: m,
        };
        let at64 = MemArg {
            offset: 0,
            align: 3,
            memory_index: m,
        };

        // read{m}: () -> i32, the address of (0, size) in the memory's last
        // 8 bytes, whose value is kept in `saved`.
        let mut read = Function::new([(1, ValType::I32)]);
        read.instructions()
            .memory_size(m)
            .i32_const(16)
            .i32_shl()
            .local_tee(0)
            .i32_const(8)
            .i32_lt_u()
            .if_(BlockType::Empty)
            .unreachable()
            .end()
            .local_get(0)
            .i32_const(8)
            .i32_sub()
            .local_set(0)
            .local_get(0)
            .i64_load(at64)
            .global_set(saved)
            .local_get(0)
            .i32_const(0)
            .i32_store(at(0))
            .local_get(0)
            .local_get(0)
            .i32_const(8)
            .i32_add()
            .i32_store(at(4))
            .local_get(0)
            .end();
        self.function(&format!("read{m}"), &[], &[ValType::I32], &read);

        // read{m}-post: (i32) -> (), puts the borrowed bytes back.
        let mut post = Function::new([]);
        post.instructions()
            .local_get(0)
            .global_get(saved)
            .i64_store(at64)
            .end();
        self.function(&format!("read{m}-post"), &[ValType::I32], &[], &post);

        // write{m}-realloc: (old, old_size, align, size) -> cursor, after
        // growing the memory to hold `size` bytes there.
        let mut realloc = Function::new([(2, ValType::I64)]);
        let mut body = realloc.instructions();
        body.global_get(cursor)
            .i64_extend_i32_u()
            .local_get(3)
            .i64_extend_i32_u()
            .i64_add()
            .local_set(4);
        grow_to(&mut body, m, 4, 5);
        body.global_get(cursor).end();
        self.function(
            &format!("write{m}-realloc"),
            &[ValType::I32; 4],
            &[ValType::I32],
            &realloc,
        );

        // write{m}: (ptr, len) -> (); the lowering already copied the bytes.
        let mut write = Function::new([]);
        write.instructions().end();
        self.function(
            &format!("write{m}"),
            &[ValType::I32, ValType::I32],
            &[],
            &write,
        );

        // seek{m}: (offset, total) -> (), grows the memory to hold `total`
        // bytes and moves the cursor.
        let mut seek = Function::new([(2, ValType::I64)]);
        let mut body = seek.instructions();
        body.local_get(1).i64_extend_i32_u().local_set(2);
        grow_to(&mut body, m, 2, 3);
        body.local_get(0).global_set(cursor).end();
        self.function(
            &format!("seek{m}"),
            &[ValType::I32, ValType::I32],
            &[],
            &seek,
        );
    }

    /// Accessors for the mutable global `name` of instance `import`, which
    /// becomes accessor global `g`.
    fn global(&mut self, import: &str, name: &str, g: u32, kind: GlobalKind) {
        self.imports.import(
            import,
            name,
            wasm_encoder::GlobalType {
                val_type: kind.core(),
                mutable: true,
                shared: false,
            },
        );
        let mut get = Function::new([]);
        get.instructions().global_get(g).end();
        self.function(
            &format!("get{g}-{}", kind.name()),
            &[],
            &[kind.core()],
            &get,
        );
        let mut set = Function::new([]);
        set.instructions().local_get(0).global_set(g).end();
        self.function(
            &format!("set{g}-{}", kind.name()),
            &[kind.core()],
            &[],
            &set,
        );
    }

    fn finish(self) -> wasm_encoder::Module {
        let mut globals = wasm_encoder::GlobalSection::new();
        for _ in 0..self.memories {
            globals.global(
                wasm_encoder::GlobalType {
                    val_type: ValType::I64,
                    mutable: true,
                    shared: false,
                },
                &wasm_encoder::ConstExpr::i64_const(0),
            );
            globals.global(
                wasm_encoder::GlobalType {
                    val_type: ValType::I32,
                    mutable: true,
                    shared: false,
                },
                &wasm_encoder::ConstExpr::i32_const(0),
            );
        }
        let mut module = wasm_encoder::Module::new();
        module.section(&self.types);
        module.section(&self.imports);
        module.section(&self.functions);
        module.section(&globals);
        module.section(&self.exports);
        module.section(&self.code);
        module
    }
}

/// Grows memory `m` so that it holds the number of bytes in i64 local
/// `end` (`delta`: a scratch i64 local); traps when it cannot.
fn grow_to(body: &mut wasm_encoder::InstructionSink<'_>, m: u32, end: u32, delta: u32) {
    body.local_get(end)
        .i64_const(65535)
        .i64_add()
        .i64_const(16)
        .i64_shr_u()
        .memory_size(m)
        .i64_extend_i32_u()
        .i64_sub()
        .local_tee(delta)
        .i64_const(0)
        .i64_gt_s()
        .if_(BlockType::Empty)
        .local_get(delta)
        .i32_wrap_i64()
        .memory_grow(m)
        .i32_const(-1)
        .i32_eq()
        .if_(BlockType::Empty)
        .unreachable()
        .end()
        .end();
}

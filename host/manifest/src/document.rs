//! The pipeline manifest: TOML, plain serde data, every table
//! `deny_unknown_fields`. [`Plan::load`] parses it and resolves it:
//! paths become absolute (relative to the manifest's directory), limits are
//! merged over the defaults, parameters become typed values, and every
//! mistake is reported with the file, line and key.
//!
//! ```toml
//! [pipeline]
//! name = "penguins"
//! steps = ["impute", "encode", "scale", "model"]
//!
//! [data]
//! train = "data/train.csv"
//! test = "data/test.csv"
//! target = "species"
//!
//! [output]
//! predictions = "out/predictions.csv"
//!
//! [defaults.limits]
//! fuel = 5_000_000_000
//!
//! [kernels.model]
//! source = "kernels/logistic_regression.wasm"
//! sha256 = "…"              # optional pin
//! params = { c = 1.0 }
//! limits = { memory-mib = 128 }
//! grants = { read-dirs = { "/data" = "data" } }
//! ```

use crate::error::ManifestError;
use crate::graph::Input;
use crate::lock::{KernelResolver, Lock, NoRegistry, Pin, parse_reference};
use crate::plan::{DataSource, DataSpec, KernelSpec, OnFailure, OutputSpec, Plan};
use kernel_host_data::CsvOptions;
use kernel_host_tensor::DeviceChoice;
use kernel_host_types::bindings::{Param, ParamValue};
use kernel_host_types::{ColumnType, Grants, Limits, LimitsSpec, Selection};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawManifest {
    pipeline: RawPipeline,
    data: RawData,
    #[serde(default)]
    output: RawOutput,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    tensor: RawTensor,
    #[serde(default)]
    kernels: BTreeMap<String, Spanned<RawKernel>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTensor {
    #[serde(default)]
    device: DeviceChoice,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCache {
    max_mib: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPipeline {
    name: Option<String>,
    /// Seeds every kernel's random stream (default 0).
    #[serde(default)]
    seed: u64,
    /// A chain: each step takes the previous one's output.
    steps: Option<Spanned<Vec<Spanned<String>>>>,
    /// A graph: `[[pipeline.step]]` tables.
    step: Option<Vec<Spanned<RawStep>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawStep {
    id: String,
    /// The `[kernels.*]` entry to run; defaults to the step's id.
    kernel: Option<String>,
    /// Step ids or `source`; defaults to the previous step (`source` for
    /// the first).
    inputs: Option<Vec<String>>,
    columns: Option<Vec<String>>,
    column_types: Option<Vec<ColumnType>>,
    #[serde(default)]
    passthrough: bool,
    parallel: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawData {
    train: Option<Spanned<String>>,
    test: Option<Spanned<String>>,
    input: Option<Spanned<String>>,
    split: Option<Spanned<RawSplit>>,
    target: Option<String>,
    features: Option<Vec<String>>,
    null_values: Option<Vec<String>>,
    #[serde(default)]
    schema: BTreeMap<String, ColumnType>,
    /// A number of rows, or `"auto"`.
    chunk_rows: Option<toml::Value>,
    memory_budget_mib: Option<u64>,
    /// `"input"`, `"outputs"` or `"none"`.
    spill: Option<crate::plan::Spill>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSplit {
    test_fraction: f64,
    #[serde(default)]
    seed: u64,
    #[serde(default = "yes")]
    stratify: bool,
}

fn yes() -> bool {
    true
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawOutput {
    predictions: Option<Spanned<String>>,
    #[serde(default)]
    probabilities: bool,
    audit_log: Option<String>,
    report: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDefaults {
    #[serde(default)]
    limits: LimitsSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawKernel {
    /// A component file.
    source: Option<Spanned<String>>,
    /// Or a registry kernel: `name@range`.
    registry: Option<Spanned<String>>,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    limits: LimitsSpec,
    #[serde(default)]
    grants: Grants,
    #[serde(default)]
    cache: bool,
    /// Another registry version (`name@range`) run beside this one on the
    /// same input, for comparison.
    shadow: Option<Spanned<String>>,
    #[serde(default)]
    on_failure: OnFailure,
}

/// Locates spans and builds errors for one manifest file.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
    dir: PathBuf,
    /// The lock beside the manifest, unless ignored (for `upgrade`).
    lock: Option<Lock>,
    /// Where registry kernels come from.
    resolver: &'a dyn KernelResolver,
}

impl Source<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn error_at(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ManifestError {
        ManifestError {
            file: self.path.to_path_buf(),
            line: span.map(|s| self.line(s.start)),
            key: Some(key.into()),
            message: message.into(),
        }
    }

    fn resolve(&self, relative: &str) -> PathBuf {
        let p = Path::new(relative);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// A path that must name an existing file.
    fn existing_file(
        &self,
        value: &Spanned<String>,
        key: &str,
        what: &str,
    ) -> Result<PathBuf, ManifestError> {
        let path = self.resolve(value.get_ref());
        let problem = match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => return Ok(path),
            // A pipe (`<(...)`) is checked when it is read (a data file may
            // be one); opening it here would wait for its writer.
            Ok(meta) if std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) => {
                return Ok(path);
            }
            // Say what it is: a device such as /dev/zero is not "missing".
            Ok(meta) => format!(
                "{what} {} is {}, not a regular file",
                path.display(),
                kernel_host_types::fsutil::special_kind(&meta).unwrap_or("not a regular file")
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("{what} not found: {}", path.display())
            }
            Err(e) => format!("{what} unreadable: {}: {e}", path.display()),
        };
        Err(self.error_at(Some(value.span()), key, problem))
    }
}

/// The largest manifest read. Real ones are a few KiB (the biggest example
/// is 1.6 KiB); the bound keeps `/dev/zero` or a huge file given by
/// mistake from being read into memory.
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// The manifest's text, or an error naming the file.
fn read(path: &Path) -> Result<String, ManifestError> {
    kernel_host_types::fsutil::read_limited_string(path, MAX_MANIFEST_BYTES).map_err(|e| {
        ManifestError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!(
                "cannot read the manifest: {}",
                without_path(path, e.to_string())
            ),
        }
    })
}

/// `message` without a leading `path`, which the error names already.
pub(crate) fn without_path(path: &Path, message: String) -> String {
    match message.strip_prefix(&path.display().to_string()) {
        Some(rest) => rest.trim_start().to_string(),
        None => message,
    }
}

fn param_value(value: &toml::Value) -> Result<ParamValue, &'static str> {
    match value {
        toml::Value::Integer(i) => Ok(ParamValue::S64(*i)),
        // TOML allows `nan` and `inf`; no kernel parameter means them, and
        // a plan holding one could not be saved in a bundle's index.
        toml::Value::Float(f) if !f.is_finite() => {
            Err("parameters must be finite numbers, not nan or inf")
        }
        toml::Value::Float(f) => Ok(ParamValue::F64(*f)),
        toml::Value::Boolean(b) => Ok(ParamValue::Bool(*b)),
        toml::Value::String(s) => Ok(ParamValue::String(s.clone())),
        _ => Err("parameters are numbers, booleans or strings"),
    }
}

fn check_limits(limits: &Limits) -> Result<(), String> {
    limits.check()
}

/// `mib` of `key` in bytes, refused when it does not fit in 64 bits.
fn mib_key(src: &Source, key: &str, mib: u64) -> Result<u64, ManifestError> {
    kernel_host_types::limits::mib_to_bytes(mib).ok_or_else(|| {
        src.error_at(
            None,
            key,
            format!("{mib} MiB is more bytes than a 64-bit number holds"),
        )
    })
}

impl Plan {
    /// Reads, parses and resolves the manifest at `path`, without a
    /// registry (a `registry = ...` kernel is refused; see
    /// [`Plan::load_with`]).
    pub fn load(path: &Path) -> Result<Plan, ManifestError> {
        Self::parse(path, &read(path)?)
    }

    /// Reads and resolves the manifest at `path`, finding registry kernels
    /// through `resolver` (pinned by `kernel-host.lock` when there is one).
    pub fn load_with(path: &Path, resolver: &dyn KernelResolver) -> Result<Plan, ManifestError> {
        Self::load_all_with(path, resolver).map_err(|mut errors| errors.swap_remove(0))
    }

    /// Parses and resolves manifest `text`, as if read from `path`,
    /// stopping at the first mistake.
    pub fn parse(path: &Path, text: &str) -> Result<Plan, ManifestError> {
        Self::parse_all(path, text).map_err(|mut errors| errors.swap_remove(0))
    }

    /// Reads and resolves the manifest at `path`, reporting every mistake
    /// found (a TOML syntax error stops the search, nothing after it can be
    /// read).
    pub fn load_all(path: &Path) -> Result<Plan, Vec<ManifestError>> {
        Self::load_all_with(path, &NoRegistry)
    }

    /// [`Plan::load_all`] with registry kernels found through `resolver`.
    pub fn load_all_with(
        path: &Path,
        resolver: &dyn KernelResolver,
    ) -> Result<Plan, Vec<ManifestError>> {
        let text = read(path).map_err(|e| vec![e])?;
        Self::resolve(path, &text, false, resolver)
    }

    /// Like [`Plan::parse`], collecting every mistake. The error list is
    /// never empty.
    pub fn parse_all(path: &Path, text: &str) -> Result<Plan, Vec<ManifestError>> {
        Self::resolve(path, text, false, &NoRegistry)
    }

    /// Loads the manifest resolving registry kernels to the newest versions
    /// their ranges allow, ignoring `kernel-host.lock` (what `upgrade` does).
    pub fn load_unlocked(
        path: &Path,
        resolver: &dyn KernelResolver,
    ) -> Result<Plan, Vec<ManifestError>> {
        let text = read(path).map_err(|e| vec![e])?;
        Self::resolve(path, &text, true, resolver)
    }

    /// The pins of the registry kernels this manifest resolved to.
    pub fn pins(&self) -> Lock {
        let mut pins: Vec<Pin> = Vec::new();
        for spec in &self.steps {
            if let Some((name, version)) = &spec.registry
                && !pins.iter().any(|p| p.id == spec.kernel)
            {
                pins.push(Pin {
                    id: spec.kernel.clone(),
                    name: name.clone(),
                    version: version.clone(),
                    sha256: spec.sha256.clone().unwrap_or_default(),
                });
            }
            // A shadow is pinned under `<kernel>.shadow`, where the manifest
            // resolver looks for it.
            let shadow_id = format!("{}.shadow", spec.kernel);
            if let Some(shadow) = &spec.shadow
                && let Some((name, version)) = &shadow.registry
                && !pins.iter().any(|p| p.id == shadow_id)
            {
                pins.push(Pin {
                    id: shadow_id,
                    name: name.clone(),
                    version: version.clone(),
                    sha256: shadow.sha256.clone().unwrap_or_default(),
                });
            }
        }
        Lock { pins }
    }

    fn resolve(
        path: &Path,
        text: &str,
        ignore_lock: bool,
        resolver: &dyn KernelResolver,
    ) -> Result<Plan, Vec<ManifestError>> {
        match Self::resolve_partial(path, text, ignore_lock, resolver) {
            (Some(plan), errors) if errors.is_empty() => Ok(plan),
            (_, errors) => Err(errors),
        }
    }

    /// Reads and resolves as much of the manifest at `path` as can be: the
    /// plan holds the steps that resolved (none may have), and is there
    /// whenever `[data]` resolved, so a checker can go on to the data.
    /// The errors are every mistake found.
    pub fn load_partial_with(
        path: &Path,
        resolver: &dyn KernelResolver,
    ) -> (Option<Plan>, Vec<ManifestError>) {
        match read(path) {
            Ok(text) => Self::resolve_partial(path, &text, false, resolver),
            Err(e) => (None, vec![e]),
        }
    }

    fn resolve_partial(
        path: &Path,
        text: &str,
        ignore_lock: bool,
        resolver: &dyn KernelResolver,
    ) -> (Option<Plan>, Vec<ManifestError>) {
        let dir = path
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .unwrap_or(Path::new("."));
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        // A lock that cannot be read is reported, not ignored: running
        // unpinned kernels silently is what the lock exists to prevent.
        let (lock, lock_error) = if ignore_lock {
            (None, None)
        } else {
            match Lock::read(path) {
                Ok(lock) => (lock, None),
                Err(e) => {
                    let file = Lock::path_for(path);
                    let cause = without_path(&file, e.root_cause().to_string());
                    let message = format!(
                        "cannot read the lock file: {cause}; fix it, or delete it and run `kernel-host lock` to pin the registry kernels again"
                    );
                    (
                        None,
                        Some(ManifestError {
                            file,
                            line: None,
                            key: None,
                            message,
                        }),
                    )
                }
            }
        };
        let src = Source {
            path,
            text,
            dir,
            lock,
            resolver,
        };
        let raw: RawManifest = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                return (
                    None,
                    vec![ManifestError {
                        file: path.to_path_buf(),
                        line: e.span().map(|s| src.line(s.start)),
                        key: None,
                        message: e.message().trim().to_string(),
                    }],
                );
            }
        };
        let mut errors: Vec<ManifestError> = lock_error.into_iter().collect();

        let defaults = raw.defaults.limits.apply(Limits::default());
        if let Err(m) = check_limits(&defaults) {
            errors.push(src.error_at(None, "defaults.limits", m));
        }

        let seed = raw.pipeline.seed;
        let mut steps = resolve_steps(
            &src,
            raw.pipeline.steps,
            raw.pipeline.step,
            &raw.kernels,
            defaults,
            &mut errors,
        );
        // Every kernel gets its own deterministic random stream.
        for step in &mut steps {
            step.grants
                .seed
                .get_or_insert(Grants::derive_seed(seed, &step.id));
        }

        let data = resolve_data(&src, raw.data)
            .map_err(|e| errors.push(e))
            .ok();
        let output = OutputSpec {
            predictions: raw.output.predictions.map(|p| src.resolve(p.get_ref())),
            probabilities: raw.output.probabilities,
            audit_log: raw.output.audit_log.map(|p| src.resolve(&p)),
            report: raw.output.report.map(|p| src.resolve(&p)),
        };
        let cache_bytes = mib_key(&src, "cache.max-mib", raw.cache.max_mib.unwrap_or(256))
            .map_err(|e| errors.push(e))
            .unwrap_or(0);
        let plan = data.map(|data| Plan {
            path: path.to_path_buf(),
            name: raw.pipeline.name.unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
            steps,
            data,
            output,
            cache_bytes,
            device: raw.tensor.device,
        });
        (plan, errors)
    }
}

/// One declared step before its kernel is resolved.
struct Declared {
    id: String,
    kernel: String,
    inputs: Option<Vec<String>>,
    select: Selection,
    passthrough: bool,
    parallel: u32,
    span: std::ops::Range<usize>,
}

/// Resolves the steps (either form), their kernels and the graph, in
/// execution order. Problems go to `errors`.
fn resolve_steps(
    src: &Source,
    chain: Option<Spanned<Vec<Spanned<String>>>>,
    graph: Option<Vec<Spanned<RawStep>>>,
    kernels: &BTreeMap<String, Spanned<RawKernel>>,
    defaults: Limits,
    errors: &mut Vec<ManifestError>,
) -> Vec<KernelSpec> {
    const KEY: &str = "pipeline.steps";
    let declared: Vec<Declared> = match (chain, graph) {
        (Some(chain), None) => {
            if chain.get_ref().is_empty() {
                errors.push(src.error_at(Some(chain.span()), KEY, "the pipeline has no steps"));
            }
            chain
                .into_inner()
                .into_iter()
                .map(|id| Declared {
                    span: id.span(),
                    kernel: id.get_ref().clone(),
                    id: id.into_inner(),
                    inputs: None,
                    select: Selection::All,
                    passthrough: false,
                    parallel: 1,
                })
                .collect()
        }
        (None, Some(graph)) => {
            let mut declared = Vec::with_capacity(graph.len());
            for step in graph {
                let span = step.span();
                let raw = step.into_inner();
                let select = match (raw.columns, raw.column_types) {
                    (Some(_), Some(_)) => {
                        errors.push(src.error_at(
                            Some(span.clone()),
                            "pipeline.step",
                            format!(
                                "step `{}` gives both `columns` and `column-types`; choose one",
                                raw.id
                            ),
                        ));
                        Selection::All
                    }
                    (Some(columns), None) => Selection::Columns(columns),
                    (None, Some(types)) => Selection::Types(types),
                    (None, None) => Selection::All,
                };
                if raw.parallel == Some(0) {
                    errors.push(src.error_at(
                        Some(span.clone()),
                        "pipeline.step",
                        format!("step `{}`: `parallel` must be at least 1", raw.id),
                    ));
                }
                declared.push(Declared {
                    kernel: raw.kernel.unwrap_or_else(|| raw.id.clone()),
                    id: raw.id,
                    inputs: raw.inputs,
                    select,
                    passthrough: raw.passthrough,
                    parallel: raw.parallel.unwrap_or(1).max(1),
                    span,
                });
            }
            if declared.is_empty() {
                errors.push(src.error_at(None, "pipeline.step", "the pipeline has no steps"));
            }
            declared
        }
        (Some(_), Some(_)) => {
            errors.push(src.error_at(
                None,
                "pipeline",
                "give either `steps = [...]` or `[[pipeline.step]]` tables, not both",
            ));
            return Vec::new();
        }
        (None, None) => {
            errors.push(src.error_at(
                None,
                "pipeline",
                "no steps: set `steps = [...]` or add `[[pipeline.step]]` tables",
            ));
            return Vec::new();
        }
    };

    let ids: Vec<String> = declared.iter().map(|d| d.id.clone()).collect();
    let mut specs = Vec::with_capacity(declared.len());
    let mut ok = true;
    for (i, step) in declared.iter().enumerate() {
        let id = &step.id;
        if ids[..i].contains(id) {
            errors.push(src.error_at(
                Some(step.span.clone()),
                KEY,
                format!("step `{id}` appears twice; step ids must be unique"),
            ));
            ok = false;
            continue;
        }
        let inputs: Vec<Input> = match &step.inputs {
            Some(names) => names.iter().map(|n| Input::parse(n)).collect(),
            None if i == 0 => vec![Input::Source],
            None => vec![Input::Step(ids[i - 1].clone())],
        };
        if inputs.is_empty() {
            errors.push(src.error_at(
                Some(step.span.clone()),
                KEY,
                format!(
                    "step `{id}` has no inputs; use `inputs = [\"source\"]` for the input data"
                ),
            ));
            ok = false;
        }
        for input in &inputs {
            if let Input::Step(name) = input
                && !ids.contains(name)
            {
                errors.push(src.error_at(
                    Some(step.span.clone()),
                    KEY,
                    format!("step `{id}` takes input `{name}`, which is neither `source` nor a step (steps: {})", ids.join(", ")),
                ));
                ok = false;
            }
        }
        let Some(kernel) = kernels.get(&step.kernel) else {
            let known: Vec<&str> = kernels.keys().map(String::as_str).collect();
            errors.push(src.error_at(
                Some(step.span.clone()),
                KEY,
                format!(
                    "step `{id}` names no kernel{}; defined kernels: {}",
                    if step.kernel == *id {
                        String::new()
                    } else {
                        format!(" (`{}`)", step.kernel)
                    },
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
            ok = false;
            continue;
        };
        match resolve_kernel(src, &step.kernel, kernel, defaults) {
            Ok(spec) => specs.push(KernelSpec {
                id: id.clone(),
                inputs,
                select: step.select.clone(),
                passthrough: step.passthrough,
                parallel: step.parallel,
                ..spec
            }),
            Err(e) => {
                errors.push(e);
                ok = false;
            }
        }
    }
    for name in kernels.keys() {
        if !declared.iter().any(|d| &d.kernel == name) {
            tracing::warn!(manifest = %src.path.display(), "kernel `{name}` is defined but no step uses it");
        }
    }
    if !ok {
        return specs;
    }

    // The graph: acyclic, with one final step.
    let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
    let inputs: Vec<Vec<Input>> = specs.iter().map(|s| s.inputs.clone()).collect();
    let order = match crate::graph::order(&ids, &inputs) {
        Ok(order) => order,
        Err(cycle) => {
            errors.push(src.error_at(
                None,
                KEY,
                format!("the steps form a cycle: {}", cycle.join(" → ")),
            ));
            return specs;
        }
    };
    let sinks: Vec<&str> = ids
        .iter()
        .filter(|id| !inputs.iter().flatten().any(|i| i.name() == id.as_str()))
        .map(String::as_str)
        .collect();
    if sinks.len() > 1 {
        errors.push(src.error_at(
            None,
            KEY,
            format!(
                    "steps {} feed no other step; a pipeline ends in exactly one step",
                    sinks
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
        ));
    }
    let mut slots: Vec<Option<KernelSpec>> = specs.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

fn resolve_kernel(
    src: &Source,
    id: &str,
    kernel: &Spanned<RawKernel>,
    defaults: Limits,
) -> Result<KernelSpec, ManifestError> {
    let key = |k: &str| format!("kernels.{id}.{k}");
    let line = Some(src.line(kernel.span().start));
    let raw = kernel.get_ref();
    let (source, resolved, registry) = match (&raw.source, &raw.registry) {
        (Some(file), None) => (
            src.existing_file(file, &key("source"), "kernel file")?,
            None,
            None,
        ),
        (None, Some(reference)) => {
            let (path, name, version, sha) = resolve_registry(src, id, reference)?;
            (path, Some(sha), Some((name, version)))
        }
        (Some(file), Some(_)) => {
            return Err(src.error_at(
                Some(file.span()),
                key("source"),
                "give either `source` (a file) or `registry` (name@range), not both",
            ));
        }
        (None, None) => {
            return Err(ManifestError {
                line,
                ..src.error_at(
                    None,
                    format!("kernels.{id}"),
                    "needs `source = \"kernel.wasm\"` or `registry = \"name@range\"`",
                )
            });
        }
    };
    let sha256 = match &raw.sha256 {
        Some(pin) => {
            let hex = pin.get_ref();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(src.error_at(
                    Some(pin.span()),
                    key("sha256"),
                    "must be 64 hexadecimal digits",
                ));
            }
            Some(hex.to_ascii_lowercase())
        }
        // A registry kernel is pinned to the blob it resolved to.
        None => resolved,
    };
    let mut params = Vec::with_capacity(raw.params.len());
    for (name, value) in &raw.params {
        let value = param_value(value.get_ref())
            .map_err(|why| src.error_at(Some(value.span()), key(&format!("params.{name}")), why))?;
        params.push(Param {
            name: name.clone(),
            value,
        });
    }
    let limits = raw.limits.apply(defaults);
    check_limits(&limits).map_err(|m| ManifestError {
        line,
        ..src.error_at(None, key("limits"), m)
    })?;
    let mut grants = raw.grants.clone();
    for (guest, host) in grants.read_dirs.iter_mut() {
        if !guest.starts_with('/') {
            return Err(ManifestError {
                line,
                ..src.error_at(
                    None,
                    key("grants.read-dirs"),
                    format!("guest path \"{guest}\" must be absolute, e.g. \"/data\""),
                )
            });
        }
        let resolved = src.resolve(&host.to_string_lossy());
        if !resolved.is_dir() {
            return Err(ManifestError {
                line,
                ..src.error_at(
                    None,
                    key("grants.read-dirs"),
                    format!("granted directory not found: {}", resolved.display()),
                )
            });
        }
        *host = resolved;
    }
    let mut spec = KernelSpec {
        id: id.to_string(),
        kernel: id.to_string(),
        inputs: vec![Input::Source],
        select: Selection::All,
        passthrough: false,
        parallel: 1,
        source,
        sha256,
        params,
        limits,
        grants,
        cache: raw.cache,
        registry,
        shadow: None,
        on_failure: raw.on_failure,
        line,
    };
    if let Some(reference) = &raw.shadow {
        let (path, name, version, sha) = resolve_registry(src, &format!("{id}.shadow"), reference)?;
        spec.shadow = Some(Box::new(KernelSpec {
            source: path,
            sha256: Some(sha),
            registry: Some((name, version)),
            shadow: None,
            ..spec.clone()
        }));
    }
    Ok(spec)
}

/// Resolves `registry = "name@range"`: the locked version when the lock
/// pins one the range allows, else the newest the range allows. Returns
/// the blob, the name, the exact version and the sha256 to pin.
fn resolve_registry(
    src: &Source,
    id: &str,
    reference: &Spanned<String>,
) -> Result<(PathBuf, String, String, String), ManifestError> {
    let key = format!("kernels.{id}.registry");
    let at = |m: String| src.error_at(Some(reference.span()), key.clone(), m);
    let (name, req) = parse_reference(reference.get_ref()).map_err(at)?;
    let locked = src.lock.as_ref().and_then(|l| l.pin(id)).filter(|p| {
        p.name == name && semver::Version::parse(&p.version).is_ok_and(|v| req.matches(&v))
    });
    if let Some(pin) = locked {
        let Some(blob) = src.resolver.blob(&pin.sha256) else {
            return Err(at(format!(
                "kernel-host.lock pins {name}@{}, which is not in {}; add it, or run `kernel-host upgrade`",
                pin.version,
                src.resolver.location()
            )));
        };
        return Ok((blob, name, pin.version.clone(), pin.sha256.clone()));
    }
    let found = src.resolver.resolve(&name, &req).map_err(at)?;
    Ok((found.blob, name, found.version.to_string(), found.sha256))
}

fn resolve_data(src: &Source, raw: RawData) -> Result<DataSpec, ManifestError> {
    let source = match (raw.train, raw.input) {
        (Some(train), None) => DataSource::Files {
            train: src.existing_file(&train, "data.train", "data file")?,
            test: raw
                .test
                .map(|t| src.existing_file(&t, "data.test", "data file"))
                .transpose()?,
        },
        (None, Some(input)) => {
            let Some(split) = raw.split else {
                return Err(src.error_at(
                    Some(input.span()),
                    "data.split",
                    "`input` needs a `split = { test-fraction = 0.25 }` (or give `train` and `test` files)",
                ));
            };
            let (span, split) = (split.span(), split.into_inner());
            if !(split.test_fraction > 0.0 && split.test_fraction < 1.0) {
                return Err(src.error_at(
                    Some(span),
                    "data.split.test-fraction",
                    "must be between 0 and 1 (exclusive)",
                ));
            }
            if raw.test.is_some() {
                return Err(src.error_at(
                    None,
                    "data.test",
                    "give either `input` with a split or `train`/`test` files, not both",
                ));
            }
            DataSource::Split {
                input: src.existing_file(&input, "data.input", "data file")?,
                test_fraction: split.test_fraction,
                seed: split.seed,
                stratify: split.stratify,
            }
        }
        (Some(train), Some(_)) => {
            return Err(src.error_at(
                Some(train.span()),
                "data",
                "give either `train` (and `test`) or `input` with a split, not both",
            ));
        }
        (None, None) => {
            return Err(src.error_at(
                None,
                "data",
                "no input: set `train` (and `test`) or `input` with a split",
            ));
        }
    };
    let mut csv = CsvOptions {
        schema: raw.schema,
        ..CsvOptions::default()
    };
    if let Some(nulls) = raw.null_values {
        csv.null_values = nulls;
    }
    let (chunk_rows, chunk_auto) = match raw.chunk_rows {
        None => (None, false),
        Some(toml::Value::Integer(n)) if n >= 1 => {
            (Some(usize::try_from(n).unwrap_or(usize::MAX)), false)
        }
        Some(toml::Value::String(w)) if w == "auto" => (None, true),
        Some(other) => {
            return Err(src.error_at(
                None,
                "data.chunk-rows",
                format!("`{other}` is not a number of rows: give one (at least 1), or \"auto\" to size the chunks from `memory-budget-mib`"),
            ));
        }
    };
    Ok(DataSpec {
        source,
        target: raw.target,
        features: raw.features,
        csv,
        chunk_rows,
        chunk_auto,
        memory_budget: mib_key(
            src,
            "data.memory-budget-mib",
            raw.memory_budget_mib.unwrap_or(512),
        )?,
        spill: raw.spill.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Plan, ManifestError> {
        Plan::parse(Path::new("/nonexistent/m.toml"), text)
    }

    #[test]
    fn unknown_key_is_located() {
        let e =
            parse("[pipeline]\nsteps = [\"a\"]\ncolour = 1\n[data]\ntrain = \"x\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("colour"), "{e}");
    }

    #[test]
    fn unknown_step_names_the_known_kernels() {
        let e = parse("[pipeline]\nsteps = [\"b\"]\n[data]\ntrain = \"x\"\n[kernels.a]\nsource = \"a.wasm\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("pipeline.steps"));
        assert!(e.message.contains("defined kernels: a"), "{e}");
    }

    #[test]
    fn missing_kernel_file_names_the_key() {
        let e = parse("[pipeline]\nsteps = [\"a\"]\n[data]\ntrain = \"x\"\n[kernels.a]\nsource = \"a.wasm\"\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("kernels.a.source"));
        assert_eq!(e.line, Some(6));
        assert!(
            e.to_string()
                .starts_with("/nonexistent/m.toml:6: `kernels.a.source`: kernel file not found"),
            "{e}"
        );
    }

    /// A fresh directory holding `d.csv`, `k.wasm` and a manifest `m.toml`
    /// training on `train`; removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(train: &str) -> Scratch {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "kh-manifest-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("d.csv"), "a,b\n1,2\n").unwrap();
            std::fs::write(dir.join("k.wasm"), "").unwrap();
            std::fs::write(
                dir.join("m.toml"),
                format!(
                    "[pipeline]\nsteps = [\"k\"]\n[data]\ntrain = {train:?}\n[kernels.k]\nsource = \"k.wasm\"\n"
                ),
            )
            .unwrap();
            Scratch(dir)
        }

        fn manifest(&self) -> PathBuf {
            self.0.join("m.toml")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A one-kernel manifest in `dir` whose `[data]` table ends with
    /// `line` (its line 5), loaded.
    fn with_data_line(dir: &Scratch, line: &str) -> Result<Plan, ManifestError> {
        let text = format!(
            "[pipeline]\nsteps = [\"k\"]\n[data]\ntrain = \"d.csv\"\n{line}\n[kernels.k]\nsource = \"k.wasm\"\n"
        );
        std::fs::write(dir.manifest(), text).unwrap();
        Plan::load(&dir.manifest())
    }

    #[test]
    fn chunk_rows_is_a_number_or_auto() {
        let dir = Scratch::new("d.csv");
        let with = |value: &str| with_data_line(&dir, &format!("chunk-rows = {value}"));
        let auto = with("\"auto\"").unwrap();
        assert_eq!((auto.data.chunk_rows, auto.data.chunk_auto), (None, true));
        let rows = with("500").unwrap();
        assert_eq!(
            (rows.data.chunk_rows, rows.data.chunk_auto),
            (Some(500), false)
        );
        for bad in ["\"lots\"", "0", "-5", "1.5"] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.key.as_deref(), Some("data.chunk-rows"), "{bad}: {e}");
            assert!(e.message.contains("is not a number of rows"), "{bad}: {e}");
            assert!(e.message.contains("\"auto\""), "{bad}: {e}");
        }
    }

    #[test]
    fn spill_names_what_a_chunked_fit_keeps() {
        let dir = Scratch::new("d.csv");
        let with = |line: &str| with_data_line(&dir, line);
        assert_eq!(with("").unwrap().data.spill, crate::plan::Spill::Input);
        for (value, spill) in [
            ("input", crate::plan::Spill::Input),
            ("outputs", crate::plan::Spill::Outputs),
            ("none", crate::plan::Spill::None),
        ] {
            assert_eq!(
                with(&format!("spill = {value:?}")).unwrap().data.spill,
                spill
            );
        }
        let e = with("spill = \"sometimes\"").unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("sometimes"), "{e}");
        assert!(e.message.contains("outputs"), "{e}");
    }

    #[test]
    fn a_device_or_a_huge_file_as_manifest_is_refused_with_the_reason() {
        let e = Plan::load(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: cannot read the manifest: is a character device, not a regular file"
        );
        let dir = Scratch::new("d.csv");
        let huge = dir.0.join("huge.toml");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(MAX_MANIFEST_BYTES + 1)
            .unwrap();
        let e = Plan::load(&huge).unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "cannot read the manifest: is {} bytes, over the {MAX_MANIFEST_BYTES}-byte limit for this kind of file",
                MAX_MANIFEST_BYTES + 1
            )
        );
        assert!(Plan::load(&dir.manifest()).is_ok());
    }

    #[test]
    fn a_device_as_data_file_is_not_called_missing_and_a_pipe_is_accepted() {
        let e = Plan::load(&Scratch::new("/dev/zero").manifest()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("data.train"));
        assert!(
            e.message
                .ends_with("/dev/zero is a character device, not a regular file"),
            "{e}"
        );
        assert!(!e.message.contains("not found"), "{e}");
        let dir = Scratch::new("pipe.csv");
        let made = std::process::Command::new("mkfifo")
            .arg(dir.0.join("pipe.csv"))
            .status();
        if made.is_ok_and(|s| s.success()) {
            // Accepted without opening it (which would wait for a writer).
            assert!(Plan::load(&dir.manifest()).is_ok());
        }
    }

    #[test]
    fn an_unreadable_lock_is_reported_not_ignored() {
        let dir = Scratch::new("d.csv");
        let lock = dir.0.join("kernel-host.lock");
        std::os::unix::fs::symlink("/dev/zero", &lock).unwrap();
        let errors = Plan::load_all(&dir.manifest()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].file, lock);
        assert!(
            errors[0].message.starts_with(
                "cannot read the lock file: is a character device, not a regular file; fix it, or delete it"
            ),
            "{}",
            errors[0]
        );
        std::fs::remove_file(&lock).unwrap();
        std::fs::write(&lock, "[[kernel]]\nid = 1\n").unwrap();
        let errors = Plan::load_all(&dir.manifest()).unwrap_err();
        assert!(
            errors[0].message.starts_with("cannot read the lock file: "),
            "{}",
            errors[0]
        );
        // `upgrade` ignores the lock, so it can replace a broken one.
        assert!(Plan::load_unlocked(&dir.manifest(), &NoRegistry).is_ok());
    }
}

//! Fitted pipelines saved as one file: the plan, every kernel component,
//! every kernel's fitted state and metadata, each part hashed.
//!
//! Layout: the magic `KHBUNDL1`, the index length (u64, little endian), the
//! index (JSON: plan, metadata, and for each part its name, offset, length
//! and sha256), the parts, then a trailer: the sha256 of everything before
//! it. Loading checks the trailer and every part, and names what is wrong:
//! a truncated file, a corrupted part, a modified index. Writes are atomic
//! (temporary file, fsync, rename), so a killed writer leaves no bundle
//! rather than half of one. Components compile through the on-disk cache,
//! so loading a small pipeline the second time takes milliseconds.

use crate::bindings::{Column, Frame, Param, ParamValue};
use crate::data::ColumnType;
use crate::engine::{Sandbox, sha256_hex};
use crate::error::{DataError, Error};
use crate::graph::{Input, Selection};
use crate::kernel::KernelComponent;
use crate::limits::Limits;
use crate::manifest::{DataSource, DataSpec, KernelSpec, Manifest, OutputSpec};
use crate::pipeline::{Pipeline, Step};
use crate::state::Grants;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MAGIC: &[u8; 8] = b"KHBUNDL1";

/// Whether the file at `path` starts like a bundle.
pub fn is_bundle(path: &Path) -> bool {
    use std::io::Read as _;
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == MAGIC
}
const FORMAT: u32 = 1;

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a kernel-host bundle (wrong magic bytes)", path.display())]
    NotABundle { path: PathBuf },
    #[error("{}: truncated: {detail}", path.display())]
    Truncated { path: PathBuf, detail: String },
    #[error("{}: part `{part}` is corrupted (sha256 {actual}, expected {expected})", path.display())]
    CorruptPart {
        path: PathBuf,
        part: String,
        expected: String,
        actual: String,
    },
    #[error("{}: the index is corrupted or was modified: {detail}", path.display())]
    CorruptIndex { path: PathBuf, detail: String },
    #[error("{}: written by bundle format {found}; this kernel-host reads format {FORMAT}", path.display())]
    Format { path: PathBuf, found: u32 },
}

/// A parameter value, serializably.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
enum Value {
    F64(f64),
    S64(i64),
    Bool(bool),
    String(String),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Select {
    All,
    Columns(Vec<String>),
    Types(Vec<ColumnType>),
}

/// One step, as the bundle records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct StepRecord {
    id: String,
    kernel: String,
    /// name@version as the kernel described itself.
    describes_as: String,
    inputs: Vec<String>,
    select: Select,
    passthrough: bool,
    parallel: u32,
    params: Vec<(String, Value)>,
    fuel: u64,
    memory_bytes: u64,
    timeout_ms: u64,
    #[serde(default)]
    tensor_bytes: Option<u64>,
    grants: Grants,
    cache: bool,
    /// sha256 of the component (its part is `kernel/<sha256>`).
    component: String,
    #[serde(default)]
    on_failure: crate::manifest::OnFailure,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct PartRecord {
    name: String,
    offset: u64,
    len: u64,
    sha256: String,
}

/// The bundle's index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Index {
    format: u32,
    created: String,
    kernel_host: String,
    wit: String,
    pipeline: String,
    /// The manifest the pipeline was fitted from.
    manifest: PathBuf,
    target: Option<String>,
    probabilities: bool,
    /// Feature columns and types the pipeline was fitted on.
    schema: Vec<(String, ColumnType)>,
    train_rows: u64,
    steps: Vec<StepRecord>,
    parts: Vec<PartRecord>,
}

/// Metadata of a bundle, for `inspect`-style listings.
#[derive(Clone, Debug, PartialEq)]
pub struct BundleInfo {
    pub pipeline: String,
    pub created: String,
    pub kernel_host: String,
    pub steps: Vec<(String, String)>,
    pub schema: Vec<(String, ColumnType)>,
    pub train_rows: u64,
    pub bytes: u64,
}

fn value_of(v: &ParamValue) -> Value {
    match v {
        ParamValue::F64(x) => Value::F64(*x),
        ParamValue::S64(x) => Value::S64(*x),
        ParamValue::Bool(x) => Value::Bool(*x),
        ParamValue::String(x) => Value::String(x.clone()),
    }
}

fn param_of(v: &Value) -> ParamValue {
    match v {
        Value::F64(x) => ParamValue::F64(*x),
        Value::S64(x) => ParamValue::S64(*x),
        Value::Bool(x) => ParamValue::Bool(*x),
        Value::String(x) => ParamValue::String(x.clone()),
    }
}

/// Saves a fitted pipeline, with the training schema and row count, to
/// `path` atomically.
pub async fn save(
    pipeline: &mut Pipeline,
    schema: Vec<(String, ColumnType)>,
    train_rows: u64,
    path: &Path,
) -> Result<(), Error> {
    let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
    let mut steps = Vec::new();
    for step in pipeline.steps_mut() {
        let bytes = std::fs::read(&step.spec.source).map_err(|e| {
            Error::Host(anyhow::anyhow!(
                "re-reading {} to bundle it: {e}",
                step.spec.source.display()
            ))
        })?;
        let sha = sha256_hex(&bytes);
        if sha != step.component.sha256() {
            return Err(Error::Host(anyhow::anyhow!(
                "{} changed since the pipeline loaded it (sha256 {sha}, loaded {}); fit again",
                step.spec.source.display(),
                step.component.sha256()
            )));
        }
        if !parts.iter().any(|(n, _)| *n == format!("kernel/{sha}")) {
            parts.push((format!("kernel/{sha}"), bytes));
        }
        let state = step.instance.save_state().await?;
        parts.push((format!("state/{}", step.spec.id), state));
        steps.push(record(step, sha));
    }
    let manifest = pipeline.manifest();
    let mut index = Index {
        format: FORMAT,
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        kernel_host: env!("CARGO_PKG_VERSION").into(),
        wit: crate::bindings::WIT_VERSION.into(),
        pipeline: manifest.name.clone(),
        manifest: manifest.path.clone(),
        target: manifest.data.target.clone(),
        probabilities: manifest.output.probabilities,
        schema,
        train_rows,
        steps,
        parts: Vec::new(),
    };
    let mut offset = 0u64;
    for (name, bytes) in &parts {
        index.parts.push(PartRecord {
            name: name.clone(),
            offset,
            len: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        });
        offset += bytes.len() as u64;
    }
    let index_json = serde_json::to_vec(&index).map_err(|e| Error::Host(e.into()))?;
    let mut out = Vec::with_capacity(index_json.len() + offset as usize + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(index_json.len() as u64).to_le_bytes());
    out.extend_from_slice(&index_json);
    for (_, bytes) in &parts {
        out.extend_from_slice(bytes);
    }
    let trailer = sha2::Sha256::digest(&out);
    out.extend_from_slice(&trailer);
    crate::fsutil::write_atomic(path, &out)
        .map_err(|e| Error::Host(e.context(format!("writing {}", path.display()))))
}

use sha2::Digest as _;

fn record(step: &Step, sha: String) -> StepRecord {
    let spec = &step.spec;
    StepRecord {
        id: spec.id.clone(),
        kernel: spec.kernel.clone(),
        describes_as: step.kernel_name(),
        inputs: spec.inputs.iter().map(|i| i.name().to_string()).collect(),
        select: match &spec.select {
            Selection::All => Select::All,
            Selection::Columns(c) => Select::Columns(c.clone()),
            Selection::Types(t) => Select::Types(t.clone()),
        },
        passthrough: spec.passthrough,
        parallel: spec.parallel,
        params: spec
            .params
            .iter()
            .map(|p| (p.name.clone(), value_of(&p.value)))
            .collect(),
        fuel: spec.limits.fuel,
        memory_bytes: spec.limits.memory_bytes,
        timeout_ms: u64::try_from(spec.limits.timeout.as_millis()).unwrap_or(u64::MAX),
        tensor_bytes: Some(spec.limits.tensor_bytes),
        grants: spec.grants.clone(),
        cache: spec.cache,
        component: sha,
        on_failure: spec.on_failure,
    }
}

/// A bundle read and verified, ready to load.
pub struct Bundle {
    path: PathBuf,
    index: Index,
    bytes: Vec<u8>,
    /// Where the parts start in `bytes`.
    base: usize,
}

impl Bundle {
    /// Reads `path` and verifies every part.
    pub fn read(path: &Path) -> Result<Bundle, BundleError> {
        let p = || path.to_path_buf();
        let bytes =
            std::fs::read(path).map_err(|source| BundleError::Read { path: p(), source })?;
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(BundleError::NotABundle { path: p() });
        }
        let index_len = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default()) as usize;
        let base = 16usize.saturating_add(index_len);
        if bytes.len() < base.saturating_add(32) {
            return Err(BundleError::Truncated {
                path: p(),
                detail: format!(
                    "the index needs {index_len} bytes, the file has {}",
                    bytes.len()
                ),
            });
        }
        let index: Index =
            serde_json::from_slice(&bytes[16..base]).map_err(|e| BundleError::CorruptIndex {
                path: p(),
                detail: format!("unreadable ({e})"),
            })?;
        if index.format != FORMAT {
            return Err(BundleError::Format {
                path: p(),
                found: index.format,
            });
        }
        let parts_end = bytes.len() - 32;
        for part in &index.parts {
            let (start, end) = (
                base as u64 + part.offset,
                base as u64 + part.offset + part.len,
            );
            if end > parts_end as u64 {
                return Err(BundleError::Truncated {
                    path: p(),
                    detail: format!(
                        "part `{}` needs bytes {start}..{end}, the file has {} before its trailer",
                        part.name, parts_end
                    ),
                });
            }
            let actual = sha256_hex(&bytes[start as usize..end as usize]);
            if actual != part.sha256 {
                return Err(BundleError::CorruptPart {
                    path: p(),
                    part: part.name.clone(),
                    expected: part.sha256.clone(),
                    actual,
                });
            }
        }
        let trailer = sha2::Sha256::digest(&bytes[..parts_end]);
        if trailer.as_slice() != &bytes[parts_end..] {
            return Err(BundleError::CorruptIndex {
                path: p(),
                detail: "the trailer hash does not match".into(),
            });
        }
        Ok(Bundle {
            path: p(),
            index,
            bytes,
            base,
        })
    }

    fn part(&self, name: &str) -> Option<&[u8]> {
        let part = self.index.parts.iter().find(|x| x.name == name)?;
        let start = self.base + part.offset as usize;
        self.bytes.get(start..start + part.len as usize)
    }

    pub fn info(&self) -> BundleInfo {
        BundleInfo {
            pipeline: self.index.pipeline.clone(),
            created: self.index.created.clone(),
            kernel_host: self.index.kernel_host.clone(),
            steps: self
                .index
                .steps
                .iter()
                .map(|s| (s.id.clone(), s.describes_as.clone()))
                .collect(),
            schema: self.index.schema.clone(),
            train_rows: self.index.train_rows,
            bytes: self.bytes.len() as u64,
        }
    }

    /// The feature columns and types the pipeline was fitted on.
    pub fn schema(&self) -> &[(String, ColumnType)] {
        &self.index.schema
    }

    pub fn target(&self) -> Option<&str> {
        self.index.target.as_deref()
    }

    pub fn probabilities(&self) -> bool {
        self.index.probabilities
    }

    /// Loads every kernel from the bundle, configures it and restores its
    /// fitted state: a pipeline ready to predict, without refitting.
    pub async fn load(&self, sandbox: &Sandbox) -> Result<Pipeline, Error> {
        let manifest = self.manifest();
        let mut steps = Vec::with_capacity(self.index.steps.len());
        for (record, spec) in self.index.steps.iter().zip(&manifest.steps) {
            let component_bytes = self
                .part(&format!("kernel/{}", record.component))
                .unwrap_or_default();
            let component = KernelComponent::load_bytes(
                sandbox,
                &manifest.name,
                &spec.id,
                &self.path,
                component_bytes,
                Some(&record.component),
            )
            .await?;
            let state = self
                .part(&format!("state/{}", record.id))
                .unwrap_or_default()
                .to_vec();
            steps.push(Pipeline::restore_step(&manifest, spec, component, &state).await?);
        }
        Ok(Pipeline::from_steps(manifest, steps))
    }

    /// The plan as a manifest (paths point at the bundle).
    fn manifest(&self) -> Manifest {
        let steps = self
            .index
            .steps
            .iter()
            .map(|r| KernelSpec {
                id: r.id.clone(),
                kernel: r.kernel.clone(),
                inputs: r.inputs.iter().map(|i| Input::parse(i)).collect(),
                select: match &r.select {
                    Select::All => Selection::All,
                    Select::Columns(c) => Selection::Columns(c.clone()),
                    Select::Types(t) => Selection::Types(t.clone()),
                },
                passthrough: r.passthrough,
                parallel: r.parallel,
                source: self.path.clone(),
                sha256: Some(r.component.clone()),
                params: r
                    .params
                    .iter()
                    .map(|(n, v)| Param {
                        name: n.clone(),
                        value: param_of(v),
                    })
                    .collect(),
                limits: Limits {
                    fuel: r.fuel,
                    memory_bytes: r.memory_bytes,
                    timeout: Duration::from_millis(r.timeout_ms),
                    tensor_bytes: r.tensor_bytes.unwrap_or(Limits::default().tensor_bytes),
                },
                grants: r.grants.clone(),
                cache: r.cache,
                registry: None,
                shadow: None,
                on_failure: r.on_failure,
                line: None,
            })
            .collect();
        Manifest {
            path: self.path.clone(),
            name: self.index.pipeline.clone(),
            steps,
            data: DataSpec {
                source: DataSource::Files {
                    train: self.path.clone(),
                    test: None,
                },
                target: self.index.target.clone(),
                features: Some(self.index.schema.iter().map(|(n, _)| n.clone()).collect()),
                csv: Default::default(),
                chunk_rows: None,
                memory_budget: 512 << 20,
            },
            output: OutputSpec {
                predictions: None,
                probabilities: self.index.probabilities,
                audit_log: None,
                report: None,
            },
            cache_bytes: 256 << 20,
            device: crate::tensor::DeviceChoice::Auto,
        }
    }

    /// `input`'s trained features, in order and type; the target (if the
    /// input has it) is returned beside them.
    pub fn features(
        &self,
        input: Frame,
        file: &Path,
    ) -> Result<(Frame, Option<Column>), DataError> {
        let mut input = input;
        let truth = self
            .index
            .target
            .as_deref()
            .and_then(|t| input.take_column(t));
        Ok((input.conform(&self.index.schema, file, 1)?, truth))
    }
}

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

use crate::data::ColumnType;
use crate::error::Error;
use crate::job::Fitted;
use crate::manifest::Plan;
use crate::pipeline::Pipeline;
use crate::{KernelComponent, Sandbox, sha256_hex};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
/// 2: the index is a serialized plan (format 1 listed steps field by field).
const FORMAT: u32 = 2;

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
    #[error("{}: written by bundle format {found}; this kernel-host reads format {FORMAT}: fit the manifest again with this kernel-host (`kernel-host fit MANIFEST --save ...`)", path.display())]
    Format { path: PathBuf, found: u32 },
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
    /// The plan the pipeline was fitted from, as it ran (its `path` is the
    /// manifest; every step pinned to the sha256 of its component part).
    plan: Plan,
    /// `name@version` of each step's kernel, as it described itself.
    kernels: Vec<String>,
    /// Feature columns and types the pipeline was fitted on.
    schema: Vec<(String, ColumnType)>,
    train_rows: u64,
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

/// Saves a fitted pipeline, with the training schema and row count, to
/// `path` atomically.
pub async fn save(fitted: &mut Fitted, path: &Path) -> Result<(), Error> {
    let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
    let mut plan = fitted.pipeline.plan().clone();
    let mut kernels = Vec::new();
    for (step, spec) in fitted.pipeline.steps_mut().iter_mut().zip(&mut plan.steps) {
        let sha = step.component.sha256().to_string();
        if !parts.iter().any(|(n, _)| *n == format!("kernel/{sha}")) {
            parts.push((format!("kernel/{sha}"), step.component.bytes().to_vec()));
        }
        let state = step.instance.save_state().await?;
        parts.push((format!("state/{}", spec.id), state));
        kernels.push(step.kernel_name());
        spec.sha256 = Some(sha);
        // A shadow is a comparison, not part of the fitted model.
        spec.shadow = None;
    }
    let mut index = Index {
        format: FORMAT,
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        kernel_host: env!("CARGO_PKG_VERSION").into(),
        wit: crate::bindings::WIT_VERSION.into(),
        plan,
        kernels,
        schema: fitted.schema.clone(),
        train_rows: fitted.train_rows,
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
    let index_json = serde_json::to_vec(&index)
        .map_err(|e| Error::Internal(format!("serializing the bundle index: {e}")))?;
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
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

use sha2::Digest as _;

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
        // The format first, so an older bundle is named as such rather than
        // reported as corrupted.
        #[derive(Deserialize)]
        struct Header {
            format: u32,
        }
        let header: Header =
            serde_json::from_slice(&bytes[16..base]).map_err(|e| BundleError::CorruptIndex {
                path: p(),
                detail: format!("unreadable ({e})"),
            })?;
        if header.format != FORMAT {
            return Err(BundleError::Format {
                path: p(),
                found: header.format,
            });
        }
        let mut index: Index =
            serde_json::from_slice(&bytes[16..base]).map_err(|e| BundleError::CorruptIndex {
                path: p(),
                detail: format!("unreadable ({e})"),
            })?;
        index.plan.path = p();
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
            pipeline: self.index.plan.name.clone(),
            created: self.index.created.clone(),
            kernel_host: self.index.kernel_host.clone(),
            steps: self
                .index
                .plan
                .steps
                .iter()
                .zip(&self.index.kernels)
                .map(|(s, k)| (s.id.clone(), k.clone()))
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

    /// The plan the pipeline was fitted from; its `path` is the bundle.
    pub fn plan(&self) -> &Plan {
        &self.index.plan
    }

    /// The plan, to change what the bundle is run with (its output, its
    /// input rows, its limits).
    pub fn plan_mut(&mut self) -> &mut Plan {
        &mut self.index.plan
    }

    /// Loads every kernel from the bundle, configures it and restores its
    /// fitted state: a pipeline ready to predict, without refitting.
    pub async fn load(&self, sandbox: &Sandbox) -> Result<Pipeline, Error> {
        let plan = &self.index.plan;
        let mut steps = Vec::with_capacity(plan.steps.len());
        for spec in &plan.steps {
            let sha = spec.sha256.as_deref().unwrap_or_default();
            let bytes =
                self.part(&format!("kernel/{sha}"))
                    .ok_or_else(|| BundleError::CorruptIndex {
                        path: self.path.clone(),
                        detail: format!(
                            "step `{}` names component {sha}, which the bundle lacks",
                            spec.id
                        ),
                    })?;
            let component = KernelComponent::load_bytes(
                sandbox,
                &plan.name,
                &spec.id,
                &self.path,
                bytes,
                Some(sha),
            )
            .await?;
            let state = self
                .part(&format!("state/{}", spec.id))
                .ok_or_else(|| BundleError::CorruptIndex {
                    path: self.path.clone(),
                    detail: format!("no fitted state for step `{}`", spec.id),
                })?
                .to_vec();
            steps.push(Pipeline::restore_step(plan, spec, component, &state).await?);
        }
        Ok(Pipeline::from_steps(plan.clone(), steps))
    }
}

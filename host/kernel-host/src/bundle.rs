//! Fitted pipelines saved as one file: the plan, every kernel component,
//! every kernel's fitted state and metadata, each part hashed.
//!
//! The file format lives in [`crate::manifest::bundle_file`], which checks
//! the structure, the trailer and every part, and names what is wrong: a
//! truncated file, a corrupted part, a modified index. Writes are atomic
//! (temporary file, fsync, rename), so a killed writer leaves no bundle
//! rather than half of one. Components compile through the on-disk cache,
//! so loading a small pipeline the second time takes milliseconds.

use crate::data::ColumnType;
use crate::error::Error;
use crate::job::Fitted;
use crate::limits::Limits;
use crate::manifest::Plan;
use crate::pipeline::Pipeline;
use crate::{KernelComponent, Sandbox};
use std::path::{Path, PathBuf};

use crate::manifest::bundle_file::{self, Container, Index};
pub use crate::manifest::bundle_file::{BundleError, FORMAT, MAX_BUNDLE_BYTES, is_bundle};

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
            parts.push((format!("kernel/{sha}"), step.component.bytes()?.to_vec()));
        }
        let state = step.instance.save_state().await?;
        parts.push((format!("state/{}", spec.id), state));
        kernels.push(step.kernel_name());
        spec.sha256 = Some(sha);
        // A shadow is a comparison, not part of the fitted model.
        spec.shadow = None;
    }
    let index = Index {
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
    let out = bundle_file::encode(index, &parts).map_err(Error::Internal)?;
    crate::fsutil::write_atomic(path, &out)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// One right a bundle's plan asks for beyond the sandbox's defaults: a
/// grant, or a limit raised above [`Limits::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Right {
    pub step: String,
    /// e.g. `read /data (from /srv/data)`, `fuel 1e12 (default 1e10)`.
    pub what: String,
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step `{}`: {}", self.step, self.what)
    }
}

/// The rights `spec` asks for beyond the defaults.
fn rights_of(spec: &crate::manifest::KernelSpec) -> Vec<Right> {
    let right = |what: String| Right {
        step: spec.id.clone(),
        what,
    };
    let mut rights = Vec::new();
    for (guest, host) in &spec.grants.read_dirs {
        rights.push(right(format!(
            "read {guest} (host directory {})",
            host.display()
        )));
    }
    if spec.grants.clocks {
        rights.push(right("real clocks".into()));
    }
    if spec.grants.entropy {
        rights.push(right("real entropy".into()));
    }
    let (l, d) = (spec.limits, Limits::default());
    if l.fuel > d.fuel {
        rights.push(right(format!(
            "fuel {:.1e} per call (default {:.0e})",
            l.fuel as f64, d.fuel as f64
        )));
    }
    if l.memory_bytes > d.memory_bytes {
        rights.push(right(format!(
            "memory {} MiB (default {})",
            l.memory_bytes >> 20,
            d.memory_bytes >> 20
        )));
    }
    if l.timeout > d.timeout {
        rights.push(right(format!(
            "timeout {} ms (default {})",
            l.timeout.as_millis(),
            d.timeout.as_millis()
        )));
    }
    if l.tensor_bytes > d.tensor_bytes {
        rights.push(right(format!(
            "tensors {} MiB (default {})",
            l.tensor_bytes >> 20,
            d.tensor_bytes >> 20
        )));
    }
    rights
}

/// A bundle read and verified, ready to load.
///
/// A bundle is data that may come from anywhere: the grants and raised
/// limits its plan records are not trusted. [`Bundle::load`] refuses a
/// bundle that asks for any until the user confirms them, with
/// [`Bundle::trust`] (`--trust-bundle`) or by supplying them from a
/// manifest of their own with [`Bundle::rights_from`] (`--rights-from`).
pub struct Bundle {
    path: PathBuf,
    container: Container,
    /// The user confirmed the rights the plan holds.
    confirmed: bool,
}

impl Bundle {
    /// Reads `path` and verifies its structure and every part.
    pub fn read(path: &Path) -> Result<Bundle, BundleError> {
        let container = bundle_file::read(path)?;
        for spec in &container.index.plan.steps {
            spec.limits.check().map_err(|m| BundleError::CorruptIndex {
                path: path.to_path_buf(),
                detail: format!("step `{}`: limits: {m}", spec.id),
            })?;
        }
        Ok(Bundle {
            path: path.to_path_buf(),
            container,
            confirmed: false,
        })
    }

    fn index(&self) -> &Index {
        &self.container.index
    }

    /// What the bundle's plan asks for beyond the sandbox's defaults.
    pub fn rights(&self) -> Vec<Right> {
        self.index().plan.steps.iter().flat_map(rights_of).collect()
    }

    /// Accepts the rights the bundle asks for, as recorded.
    pub fn trust(&mut self) {
        self.confirmed = true;
    }

    /// Takes every step's grants and limits from `plan` (the user's own
    /// manifest, steps matched by id) instead of the bundle's; a step the
    /// manifest lacks is refused.
    pub fn rights_from(&mut self, plan: &Plan) -> Result<(), Error> {
        for spec in &mut self.container.index.plan.steps {
            let Some(own) = plan.steps.iter().find(|s| s.id == spec.id) else {
                return Err(Error::Usage(format!(
                    "--rights-from {}: it has no step `{}`, which the bundle {} holds; the manifest given must be the one the bundle was fitted from",
                    plan.path.display(),
                    spec.id,
                    self.path.display()
                )));
            };
            spec.grants = own.grants.clone();
            spec.limits = own.limits;
        }
        self.confirmed = true;
        Ok(())
    }

    /// Drops every right the bundle asks for: no grants (the random seed
    /// kept), limits no higher than the defaults. For looking at a bundle
    /// (`validate`, `freeze`) without trusting it.
    pub fn without_rights(&mut self) {
        let d = Limits::default();
        for spec in &mut self.container.index.plan.steps {
            spec.grants = crate::Grants {
                seed: spec.grants.seed,
                ..crate::Grants::default()
            };
            let l = &mut spec.limits;
            l.fuel = l.fuel.min(d.fuel);
            l.memory_bytes = l.memory_bytes.min(d.memory_bytes);
            l.timeout = l.timeout.min(d.timeout);
            l.tensor_bytes = l.tensor_bytes.min(d.tensor_bytes);
        }
    }

    /// Refuses to run a bundle whose plan asks for rights nobody confirmed.
    pub fn check_rights(&self) -> Result<(), Error> {
        let rights = self.rights();
        if self.confirmed || rights.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = rights.iter().map(|r| format!("  - {r}")).collect();
        Err(Error::Usage(format!(
            "the bundle {} asks for rights beyond the sandbox's defaults:\n{}\na bundle is data and cannot grant itself rights: confirm them with --trust-bundle, or give your own manifest's grants and limits with --rights-from MANIFEST",
            self.path.display(),
            list.join("\n")
        )))
    }
    fn part(&self, name: &str) -> Option<&[u8]> {
        self.container.part(name)
    }

    pub fn info(&self) -> BundleInfo {
        BundleInfo {
            pipeline: self.index().plan.name.clone(),
            created: self.index().created.clone(),
            kernel_host: self.index().kernel_host.clone(),
            steps: self
                .index()
                .plan
                .steps
                .iter()
                .zip(&self.index().kernels)
                .map(|(s, k)| (s.id.clone(), k.clone()))
                .collect(),
            schema: self.index().schema.clone(),
            train_rows: self.index().train_rows,
            bytes: self.container.len(),
        }
    }

    /// The feature columns and types the pipeline was fitted on.
    pub fn schema(&self) -> &[(String, ColumnType)] {
        &self.index().schema
    }

    /// The plan the pipeline was fitted from; its `path` is the bundle.
    pub fn plan(&self) -> &Plan {
        &self.index().plan
    }

    /// The plan, to change what the bundle is run with (its output, its
    /// input rows, its limits).
    pub fn plan_mut(&mut self) -> &mut Plan {
        &mut self.container.index.plan
    }

    /// Loads every kernel from the bundle, configures it and restores its
    /// fitted state: a pipeline ready to predict, without refitting.
    pub async fn load(&self, sandbox: &Sandbox) -> Result<Pipeline, Error> {
        self.check_rights()?;
        let plan = &self.index().plan;
        let admission = sandbox.admit(Pipeline::instances(plan)).await?;
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
                spec.limits,
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
        Ok(Pipeline::from_steps(plan.clone(), steps).hold(admission))
    }
}

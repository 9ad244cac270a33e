//! A linear pipeline of sandboxed kernels with scikit-learn's semantics:
//! `fit` fits each transformer and feeds its output to the next step, the
//! last step may be a model; `predict` runs new rows through the fitted
//! transformers and the model.

use crate::bindings::{Capabilities, Column, Frame, KernelKind};
use crate::cache::ResultCache;
use crate::engine::Sandbox;
use crate::error::{Error, Fault, ManifestError, RefusalKind};
use crate::kernel::{KernelComponent, KernelInstance};
use crate::manifest::{KernelSpec, Manifest};

/// One step: its manifest entry, its verified component and its instance.
pub struct Step {
    pub spec: KernelSpec,
    pub component: KernelComponent,
    pub instance: KernelInstance,
}

impl Step {
    pub fn kind(&self) -> KernelKind {
        self.component.info().kind
    }

    /// `name@version` as the kernel describes itself.
    pub fn kernel_name(&self) -> String {
        let info = self.component.info();
        format!("{}@{}", info.name, info.version)
    }
}

/// What `predict` produces.
pub enum Output {
    /// The last step is a model.
    Predictions {
        values: Column,
        probabilities: Option<Frame>,
    },
    /// The last step is a transformer.
    Transformed(Frame),
}

pub struct Pipeline {
    manifest: Manifest,
    steps: Vec<Step>,
}

impl Pipeline {
    /// Loads, verifies, instantiates and configures every step's kernel.
    /// Fails before anything runs if a kernel is refused or its parameters
    /// are invalid.
    pub async fn load(sandbox: &Sandbox, manifest: Manifest) -> Result<Pipeline, Error> {
        let cache = Self::cache_for(&manifest);
        let mut steps = Vec::with_capacity(manifest.steps.len());
        for spec in &manifest.steps {
            steps.push(Self::load_step(sandbox, &manifest, spec, cache.as_ref()).await?);
        }
        if let Some(error) = Self::check_kinds(&manifest, &steps).into_iter().next() {
            return Err(error.into());
        }
        Ok(Pipeline { manifest, steps })
    }

    /// A pipeline from steps loaded one by one (see [`Pipeline::load_step`]).
    pub fn from_steps(manifest: Manifest, steps: Vec<Step>) -> Pipeline {
        Pipeline { manifest, steps }
    }

    /// The shared result cache, when any step asks for caching.
    pub fn cache_for(manifest: &Manifest) -> Option<ResultCache> {
        manifest
            .steps
            .iter()
            .any(|s| s.cache)
            .then(|| ResultCache::new(usize::try_from(manifest.cache_bytes).unwrap_or(usize::MAX)))
    }

    /// Loads, verifies, instantiates and configures one step's kernel.
    pub async fn load_step(
        sandbox: &Sandbox,
        manifest: &Manifest,
        spec: &KernelSpec,
        cache: Option<&ResultCache>,
    ) -> Result<Step, Error> {
        let component = KernelComponent::load_for(
            sandbox,
            &manifest.name,
            &spec.id,
            &spec.source,
            spec.sha256.as_deref(),
        )
        .await
        .map_err(|e| pin_error(manifest, spec, e))?;
        let mut instance = component
            .instantiate(spec.limits, spec.grants.clone())
            .await?;
        instance.set_pipeline(&manifest.name);
        if let (true, Some(cache)) = (spec.cache, cache) {
            instance.enable_cache(cache.clone());
        }
        instance
            .configure(&spec.params)
            .await
            .map_err(|e| params_error(manifest, spec, e))?;
        Ok(Step {
            spec: spec.clone(),
            component,
            instance,
        })
    }

    /// Only the last step may be a model.
    pub fn check_kinds(manifest: &Manifest, steps: &[Step]) -> Vec<ManifestError> {
        let last = steps.len().saturating_sub(1);
        steps[..last]
            .iter()
            .filter(|step| step.kind() != KernelKind::Transformer)
            .map(|step| ManifestError {
                file: manifest.path.clone(),
                line: step.spec.line,
                key: Some("pipeline.steps".into()),
                message: format!(
                    "step `{}` ({}) is a {}; only the last step may be a model",
                    step.spec.id,
                    step.kernel_name(),
                    step.kind()
                ),
            })
            .collect()
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn steps_mut(&mut self) -> &mut [Step] {
        &mut self.steps
    }

    /// The last step, which decides what the pipeline outputs.
    pub fn final_kind(&self) -> KernelKind {
        self.steps
            .last()
            .map_or(KernelKind::Transformer, Step::kind)
    }

    /// Fits every step on `x` (and target `y`).
    pub async fn fit(&mut self, x: Frame, y: Option<&Column>) -> Result<(), Error> {
        let needs_target = matches!(
            self.final_kind(),
            KernelKind::Classifier | KernelKind::Regressor
        );
        if needs_target && y.is_none() {
            return Err(ManifestError {
                file: self.manifest.path.clone(),
                line: None,
                key: Some("data.target".into()),
                message: "the last step is a supervised model: name the target column".into(),
            }
            .into());
        }
        let last = self.steps.len().saturating_sub(1);
        let mut current = x;
        for (i, step) in self.steps.iter_mut().enumerate() {
            step.instance.fit(&current, y).await?;
            if i < last {
                current = step.instance.transform(&current).await?;
            }
        }
        Ok(())
    }

    /// Runs `x` through the fitted pipeline.
    pub async fn predict(&mut self, x: Frame, probabilities: bool) -> Result<Output, Error> {
        let Some((model, transformers)) = self.steps.split_last_mut() else {
            return Ok(Output::Transformed(x));
        };
        let mut current = x;
        for step in transformers {
            current = step.instance.transform(&current).await?;
        }
        if model.kind() == KernelKind::Transformer {
            return Ok(Output::Transformed(
                model.instance.transform(&current).await?,
            ));
        }
        let values = model.instance.predict(&current).await?;
        let wants_proba = probabilities
            && model
                .component
                .info()
                .capabilities
                .contains(Capabilities::PREDICT_PROBA);
        let probabilities = if wants_proba {
            Some(model.instance.predict_proba(&current).await?)
        } else {
            None
        };
        Ok(Output::Predictions {
            values,
            probabilities,
        })
    }
}

/// A sha256 pin that does not match the file is a mistake in the manifest
/// (or a tampered file): report it at the pin.
fn pin_error(manifest: &Manifest, spec: &KernelSpec, error: Error) -> Error {
    match error {
        Error::Load {
            problem: crate::error::LoadProblem::HashMismatch { expected, actual },
            path,
            ..
        } => ManifestError {
            file: manifest.path.clone(),
            line: spec.line,
            key: Some(format!("kernels.{}.sha256", spec.id)),
            message: format!(
                "{} hashes to {actual}, not the pinned {expected}; rebuild the kernel or update the pin",
                path.display()
            ),
        }
        .into(),
        other => other,
    }
}

/// A kernel's refusal of its parameters is a mistake in the manifest.
fn params_error(manifest: &Manifest, spec: &KernelSpec, error: Error) -> Error {
    match error {
        Error::Kernel {
            fault:
                Fault::Refused {
                    kind: RefusalKind::InvalidParams,
                    message,
                },
            ..
        } => ManifestError {
            file: manifest.path.clone(),
            line: spec.line,
            key: Some(format!("kernels.{}.params", spec.id)),
            message,
        }
        .into(),
        other => other,
    }
}

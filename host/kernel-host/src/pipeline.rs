//! A linear pipeline of sandboxed kernels with scikit-learn's semantics:
//! `fit` fits each transformer and feeds its output to the next step, the
//! last step may be a model; `predict` runs new rows through the fitted
//! transformers and the model.

use crate::Sandbox;
use crate::bindings::{Capabilities, Column, Frame, KernelKind};
use crate::cache::ResultCache;
use crate::error::{Error, Fault, ManifestError, RefusalKind};
use crate::graph::Input;
use crate::manifest::{KernelSpec, OnFailure, Plan};
use crate::readahead::ReadAhead;
use crate::{Checkpoint, KernelComponent, KernelInstance};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// One step: its manifest entry, its verified component and its instance
/// (plus, for `parallel` transforms, worker instances holding copies of its
/// state).
pub struct Step {
    pub spec: KernelSpec,
    pub component: KernelComponent,
    pub instance: KernelInstance,
    workers: Vec<KernelInstance>,
    /// Bumped by every fit; workers hold the state of `workers_fit`.
    fits: u64,
    workers_fit: u64,
    /// A second kernel run on the same input, for comparison only.
    shadow: Option<Shadow>,
    /// Failed fits rolled back and skipped (`on-failure = "rollback"`).
    pub skipped_fits: u64,
}

/// The state of every step of a pipeline, to return to when a fit fails:
/// see [`Pipeline::checkpoint`].
pub struct PipelineCheckpoint {
    /// Per step: its instance's checkpoint (`None` when it has none: the
    /// kernel can neither be snapshotted nor save its state), its shadow's,
    /// and its fit count.
    steps: Vec<(Option<Checkpoint>, Option<Checkpoint>, u64)>,
}

/// A shadow kernel and what comparing it with the primary found.
pub struct Shadow {
    pub instance: KernelInstance,
    pub agreement: Agreement,
}

/// How a shadow's outputs compared with the primary's.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Agreement {
    /// `name@version` of the shadow.
    pub kernel: String,
    /// Rows both produced.
    pub rows: u64,
    /// Rows whose every cell matched exactly.
    pub equal_rows: u64,
    /// Largest difference between matching numeric cells.
    pub max_abs_diff: f64,
    /// Calls the shadow failed (the primary carried on).
    pub failures: u64,
    pub last_error: Option<String>,
    /// The shadow's last predictions, for scoring it against the truth.
    #[serde(skip)]
    pub last_predictions: Option<Column>,
}

impl Agreement {
    fn failed(&mut self, error: Error) {
        self.failures += 1;
        self.last_error = Some(error.to_string());
    }

    /// Compares two frames cell by cell.
    fn compare(&mut self, primary: &Frame, shadow: &Frame) {
        let rows = primary.rows.min(shadow.rows) as usize;
        self.rows += rows as u64;
        let pairs: Vec<(&Column, Option<&Column>)> = primary
            .columns
            .iter()
            .map(|c| (c, shadow.column(&c.name)))
            .collect();
        for row in 0..rows {
            let mut equal = shadow.columns.len() == primary.columns.len();
            for (a, b) in &pairs {
                let (x, y) = (
                    crate::data::cell_text(a, row),
                    b.and_then(|b| crate::data::cell_text(b, row)),
                );
                if let (Some(x), Some(y)) = (
                    x.as_deref().and_then(|v| v.parse::<f64>().ok()),
                    y.as_deref().and_then(|v| v.parse::<f64>().ok()),
                ) {
                    self.max_abs_diff = self.max_abs_diff.max((x - y).abs());
                }
                if x != y {
                    equal = false;
                }
            }
            self.equal_rows += u64::from(equal);
        }
    }
}

/// Rows below which a parallel transform is not split (per instance).
const MIN_ROWS_PER_WORKER: usize = 1024;

/// What a step does in one pass over the graph.
#[derive(Clone, Copy, Debug)]
enum Pass {
    Fit,
    Predict { probabilities: bool },
}

/// What a step produced in a pass.
enum Produced {
    Frame(Frame),
    Predictions {
        values: Column,
        probabilities: Option<Frame>,
    },
    Fitted,
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

    /// Resource use of the step: its instance and any workers.
    pub fn stats(&self) -> crate::KernelStats {
        let mut total = self.instance.stats();
        for w in &self.workers {
            let s = w.stats();
            total.calls += s.calls;
            total.busy += s.busy;
            total.fuel += s.fuel;
            total.peak_memory = total.peak_memory.max(s.peak_memory);
            total.faults += s.faults;
            total.restarts += s.restarts;
            total.rollbacks += s.rollbacks;
            total.rollback_time += s.rollback_time;
            total.spares_used += s.spares_used;
            total.restored_ahead += s.restored_ahead;
            total.tensor_peak = total.tensor_peak.max(s.tensor_peak);
            total.snapshots += s.snapshots;
            total.snapshot_time += s.snapshot_time;
            total.cache_hits += s.cache_hits;
            total.give_backs += s.give_backs;
            total.give_back_time += s.give_back_time;
        }
        total
    }

    /// Linear memory the step's instances (workers and shadow included)
    /// hold now, bytes.
    pub fn memory(&self) -> u64 {
        let shadow = self.shadow.as_ref().map(|s| s.instance.memory());
        self.instance.memory()
            + self.workers.iter().map(KernelInstance::memory).sum::<u64>()
            + shadow.unwrap_or(0)
    }

    /// What comparing with the shadow found, if the step has one.
    pub fn agreement(&self) -> Option<&Agreement> {
        self.shadow.as_ref().map(|s| &s.agreement)
    }

    fn graph_error(&self, message: String) -> Error {
        ManifestError {
            file: PathBuf::new(),
            line: self.spec.line,
            key: Some("pipeline.step".into()),
            message: format!("step `{}` {message}", self.spec.id),
        }
        .into()
    }

    /// The step's inputs from `outputs`, joined column-wise in the
    /// declared order, moving out each input this step is the last reader
    /// of (counted in `readers`) instead of copying it.
    fn take_inputs(
        &self,
        outputs: &mut HashMap<String, Frame>,
        readers: &mut HashMap<String, usize>,
    ) -> Result<Frame, Error> {
        self.gather(|name| {
            let left = readers.get_mut(name).map(|n| {
                *n = n.saturating_sub(1);
                *n
            });
            if left == Some(0) {
                outputs.remove(name)
            } else {
                outputs.get(name).cloned()
            }
        })
    }

    /// The inputs `input` gives for each of the step's input names, joined
    /// column-wise in the declared order.
    fn gather(&self, mut input: impl FnMut(&str) -> Option<Frame>) -> Result<Frame, Error> {
        let parts = self
            .spec
            .inputs
            .iter()
            .filter_map(|i| input(i.name()).map(|f| (i.name().to_string(), f)))
            .collect();
        let joined = kernel_host_types::concat(parts)
            .map_err(|m| self.graph_error(format!("cannot join its inputs: {m}")))?;
        if joined.columns.is_empty() && joined.rows > 0 {
            // A kernel given rows and no column to read answers in its own
            // way (a model predicts no rows, or a constant): refused here,
            // naming where the columns went.
            let inputs: Vec<String> = self
                .spec
                .inputs
                .iter()
                .map(|i| format!("`{}`", i.name()))
                .collect();
            return Err(self.graph_error(format!(
                "has no column to work on: its input{} {} gave {} rows and no columns; a step needs at least one (check what the step before it keeps)",
                if inputs.len() == 1 { "" } else { "s" },
                inputs.join(", "),
                joined.rows
            )));
        }
        Ok(joined)
    }

    /// Runs the step on its joined input for one pass, then gives back
    /// the memory its instances grew into (see [`Step::give_back`]).
    async fn run(
        &mut self,
        pass: Pass,
        input: Frame,
        y: Option<Arc<Column>>,
        feeds_others: bool,
    ) -> Result<Produced, Error> {
        let produced = self.run_pass(pass, input, y, feeds_others).await;
        if produced.is_ok() {
            self.give_back().await;
        }
        produced
    }

    /// Gives back the linear memory the step's instances (its kernel, its
    /// workers and shadow) hold beyond their state, when over the
    /// sandbox's threshold ([`kernel_host_sandbox::SandboxBuilder::give_back_above`]):
    /// a step done with a large frame does not keep the frame's pages
    /// while the next steps run. A failure is logged: the instance is
    /// rebuilt from its snapshot at its next call.
    pub async fn give_back(&mut self) {
        let Some(above) = self.component.sandbox().give_back_above() else {
            return;
        };
        let shadow = self.shadow.as_mut().map(|s| &mut s.instance);
        let instances = std::iter::once(&mut self.instance)
            .chain(&mut self.workers)
            .chain(shadow);
        for instance in instances {
            if let Err(e) = instance.give_back(above).await {
                tracing::warn!(step = %self.spec.id, "could not give back the kernel's memory: {e}");
            }
        }
    }

    /// [`Step::run`] without the give-back.
    async fn run_pass(
        &mut self,
        pass: Pass,
        input: Frame,
        y: Option<Arc<Column>>,
        feeds_others: bool,
    ) -> Result<Produced, Error> {
        let (mut selected, rest) = self
            .spec
            .select
            .split(input)
            .map_err(|m| self.graph_error(m))?;
        let transforms = feeds_others || self.kind() == KernelKind::Transformer;
        match pass {
            Pass::Fit => {
                let fitted = if self.shadow.is_some() {
                    self.instance.fit(&selected, y.as_deref()).await
                } else if !feeds_others {
                    // Nothing reads the frame after this step: its columns
                    // go with the fit, freed as soon as the kernel is done
                    // with them.
                    let fitted = self.instance.fit_consumed(selected, y).await;
                    self.fitted(fitted.map_err(Error::from))?;
                    return Ok(Produced::Fitted);
                } else {
                    // Lent to a kernel that fits by reference, not copied.
                    let (fitted, x) = self.instance.fit_owned(selected, y.clone()).await;
                    selected = x;
                    fitted
                };
                self.fitted(fitted.map_err(Error::from))?;
                if let Some(shadow) = &mut self.shadow
                    && let Err(e) = shadow.instance.fit(&selected, y.as_deref()).await
                {
                    shadow.agreement.failed(e.into());
                }
                if !feeds_others {
                    return Ok(Produced::Fitted);
                }
            }
            Pass::Predict { probabilities } if !transforms => {
                let values = self.instance.predict(&selected).await?;
                let wants = probabilities
                    && self
                        .component
                        .info()
                        .capabilities
                        .contains(Capabilities::PREDICT_PROBA);
                let probabilities = if wants {
                    Some(self.instance.predict_proba(&selected).await?)
                } else {
                    None
                };
                if let Some(shadow) = &mut self.shadow {
                    match shadow.instance.predict(&selected).await {
                        Ok(theirs) => {
                            let as_frame = |c: &Column| Frame {
                                rows: crate::data::column_len(c) as u32,
                                columns: vec![c.clone()],
                            };
                            shadow
                                .agreement
                                .compare(&as_frame(&values), &as_frame(&theirs));
                            shadow.agreement.last_predictions = Some(theirs);
                        }
                        Err(e) => shadow.agreement.failed(e.into()),
                    }
                }
                return Ok(Produced::Predictions {
                    values,
                    probabilities,
                });
            }
            Pass::Predict { .. } => {}
        }
        let out = if self.shadow.is_some() {
            let out = self.transform(&selected).await?;
            if let Some(shadow) = &mut self.shadow {
                match shadow.instance.transform(&selected).await {
                    Ok(theirs) => shadow.agreement.compare(&out, &theirs),
                    Err(e) => shadow.agreement.failed(e.into()),
                }
            }
            out
        } else {
            self.transform_owned(selected).await?
        };
        if self.spec.passthrough && !rest.columns.is_empty() {
            let joined = kernel_host_types::concat(vec![
                (self.spec.id.clone(), out),
                ("the columns it passes through".into(), rest),
            ])
            .map_err(|m| self.graph_error(m))?;
            return Ok(Produced::Frame(joined));
        }
        Ok(Produced::Frame(out))
    }

    /// Accounts for a fit: a failed one is an error unless the step says
    /// `on-failure = "rollback"`, in which case the kernel (already rolled
    /// back by its instance) keeps its previous state and the run goes on.
    fn fitted(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        match result {
            Ok(()) => {
                self.fits += 1;
                Ok(())
            }
            Err(e @ Error::Kernel { .. }) if self.spec.on_failure == OnFailure::Rollback => {
                tracing::warn!(
                    step = %self.spec.id,
                    "{e}; rolled back to its previous state and carrying on (on-failure = \"rollback\")"
                );
                self.skipped_fits += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// [`Step::transform`] of a frame nothing needs afterwards: a kernel
    /// that takes frames by reference gets its columns without a copy.
    pub async fn transform_owned(&mut self, x: Frame) -> Result<Frame, Error> {
        let n = self.spec.parallel as usize;
        if n <= 1 || (x.rows as usize) < n * MIN_ROWS_PER_WORKER {
            return Ok(self.instance.transform_owned(x).await?);
        }
        self.transform(&x).await
    }

    /// Transforms `x`, split across `parallel` instances when it is large
    /// enough; chunks are contiguous, so row order is kept.
    pub async fn transform(&mut self, x: &Frame) -> Result<Frame, Error> {
        let n = self.spec.parallel as usize;
        if n <= 1 || (x.rows as usize) < n * MIN_ROWS_PER_WORKER {
            return Ok(self.instance.transform(x).await?);
        }
        self.prepare_workers(n - 1).await?;
        let mut chunks = x.split_rows(n).into_iter();
        let first = chunks.next().unwrap_or(Frame {
            rows: 0,
            columns: Vec::new(),
        });
        let mut tasks = Vec::new();
        for (mut worker, chunk) in std::mem::take(&mut self.workers).into_iter().zip(chunks) {
            tasks.push(tokio::spawn(async move {
                let out = worker.transform(&chunk).await;
                (worker, out)
            }));
        }
        let mut parts = vec![self.instance.transform(&first).await.map_err(Error::from)];
        for task in tasks {
            match task.await {
                Ok((worker, out)) => {
                    self.workers.push(worker);
                    parts.push(out.map_err(Error::from));
                }
                Err(e) => parts.push(Err(Error::Internal(format!(
                    "a transform worker of step `{}` stopped: {e}",
                    self.spec.id
                )))),
            }
        }
        let parts = parts.into_iter().collect::<Result<Vec<_>, _>>()?;
        Frame::concat_rows(parts).map_err(|m| self.graph_error(m))
    }

    /// Ensures `count` workers holding the current fitted state.
    async fn prepare_workers(&mut self, count: usize) -> Result<(), Error> {
        if self.workers.len() == count && self.workers_fit == self.fits {
            return Ok(());
        }
        let state = self.instance.save_state().await?;
        while self.workers.len() < count {
            let mut worker = self
                .component
                .instantiate(self.spec.limits, self.spec.grants.clone())
                .await?;
            worker.set_pipeline(&self.instance.context().pipeline);
            worker.configure(&self.spec.params).await?;
            self.workers.push(worker);
        }
        for worker in &mut self.workers {
            worker.load_state(&state).await?;
        }
        self.workers_fit = self.fits;
        Ok(())
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
    plan: Plan,
    steps: Vec<Step>,
    /// The sandbox's instance slots this pipeline holds (see
    /// [`Sandbox::admit`]).
    _admission: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Pipeline {
    /// Loads, verifies, instantiates and configures every step's kernel.
    /// Fails before anything runs if a kernel is refused or its parameters
    /// are invalid.
    pub async fn load(sandbox: &Sandbox, manifest: Plan) -> Result<Pipeline, Error> {
        let admission = sandbox.admit(Self::instances(&manifest)).await?;
        let cache = Self::cache_for(&manifest);
        let mut steps = Vec::with_capacity(manifest.steps.len());
        for spec in &manifest.steps {
            steps.push(Self::load_step(sandbox, &manifest, spec, cache.as_ref()).await?);
        }
        if let Some(error) = Self::check_kinds(&manifest, &steps).into_iter().next() {
            return Err(error.into());
        }
        Ok(Pipeline {
            plan: manifest,
            steps,
            _admission: Some(admission),
        })
    }

    /// The most kernel instances `plan` holds at once: each step's (its
    /// `parallel` workers, its shadow), and the one a load-time `describe`
    /// uses.
    pub fn instances(plan: &Plan) -> u32 {
        let held: u32 = plan
            .steps
            .iter()
            .map(|s| s.parallel.max(1) + u32::from(s.shadow.is_some()))
            .sum();
        held.saturating_add(1)
    }

    /// A pipeline from steps loaded one by one (see [`Pipeline::load_step`]).
    pub fn from_steps(manifest: Plan, steps: Vec<Step>) -> Pipeline {
        Pipeline {
            plan: manifest,
            steps,
            _admission: None,
        }
    }

    /// Keeps `admission` (slots reserved with [`Sandbox::admit`]) for as
    /// long as the pipeline lives.
    pub fn hold(mut self, admission: tokio::sync::OwnedSemaphorePermit) -> Pipeline {
        self._admission = Some(admission);
        self
    }

    /// The shared result cache, when any step asks for caching.
    pub fn cache_for(manifest: &Plan) -> Option<ResultCache> {
        manifest
            .steps
            .iter()
            .any(|s| s.cache)
            .then(|| ResultCache::new(usize::try_from(manifest.cache_bytes).unwrap_or(usize::MAX)))
    }

    /// Loads, verifies, instantiates and configures one step's kernel.
    pub async fn load_step(
        sandbox: &Sandbox,
        manifest: &Plan,
        spec: &KernelSpec,
        cache: Option<&ResultCache>,
    ) -> Result<Step, Error> {
        let component = KernelComponent::load_for(
            sandbox,
            &manifest.name,
            &spec.id,
            &spec.source,
            spec.sha256.as_deref(),
            spec.limits,
        )
        .await
        .map_err(|e| pin_error(manifest, spec, e.into()))?;
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
            .map_err(|e| params_error(manifest, spec, e.into()))?;
        let shadow = match &spec.shadow {
            Some(shadow) => {
                let component = KernelComponent::load_for(
                    sandbox,
                    &manifest.name,
                    &format!("{}.shadow", spec.id),
                    &shadow.source,
                    shadow.sha256.as_deref(),
                    shadow.limits,
                )
                .await?;
                let mut instance = component
                    .instantiate(shadow.limits, shadow.grants.clone())
                    .await?;
                instance.set_pipeline(&manifest.name);
                instance.configure(&shadow.params).await?;
                let kernel = format!("{}@{}", component.info().name, component.info().version);
                Some(Shadow {
                    instance,
                    agreement: Agreement {
                        kernel,
                        ..Agreement::default()
                    },
                })
            }
            None => None,
        };
        Ok(Step {
            spec: spec.clone(),
            component,
            instance,
            workers: Vec::new(),
            fits: 0,
            workers_fit: 0,
            shadow,
            skipped_fits: 0,
        })
    }

    /// A step from a saved component and state: instantiated, configured
    /// and restored, ready to predict without refitting.
    pub async fn restore_step(
        manifest: &Plan,
        spec: &KernelSpec,
        component: KernelComponent,
        state: &[u8],
    ) -> Result<Step, Error> {
        let mut instance = component
            .instantiate(spec.limits, spec.grants.clone())
            .await?;
        instance.set_pipeline(&manifest.name);
        instance.configure(&spec.params).await?;
        instance.load_state(state).await?;
        Ok(Step {
            spec: spec.clone(),
            component,
            instance,
            workers: Vec::new(),
            fits: 1,
            workers_fit: 0,
            shadow: None,
            skipped_fits: 0,
        })
    }

    /// Only the last step may be a model.
    pub fn check_kinds(manifest: &Plan, steps: &[Step]) -> Vec<ManifestError> {
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

    /// The plan the pipeline runs.
    pub fn plan(&self) -> &Plan {
        &self.plan
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
                file: self.plan.path.clone(),
                line: None,
                key: Some("data.target".into()),
                message: "the last step is a supervised model: name the target column".into(),
            }
            .into());
        }
        let checkpoint = self.checkpoint().await?;
        match self.pass(x, y, Pass::Fit).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // The fit's error is the one to report; a failed rollback
                // is logged (and leaves the failed steps to recover at
                // their next call).
                if let Err(rollback) = self.rollback_to(checkpoint).await {
                    tracing::error!(pipeline = %self.plan.name, "rolling back the failed fit: {rollback}");
                }
                Err(e)
            }
        }
    }

    /// The state of every step (and shadow), to come back to with
    /// [`Pipeline::rollback_to`]: a fit is all or nothing. Cheap for kernels
    /// the host can snapshot (it shares their last snapshot); other kernels
    /// are asked for `save-state`.
    pub async fn checkpoint(&mut self) -> Result<PipelineCheckpoint, Error> {
        let mut steps = Vec::new();
        for step in &mut self.steps {
            let shadow = match &mut step.shadow {
                Some(shadow) => shadow.instance.checkpoint().await.ok(),
                None => None,
            };
            let primary = match step.instance.checkpoint().await {
                Ok(checkpoint) => Some(checkpoint),
                Err(e) => {
                    tracing::warn!(step = %step.spec.id, "a failed fit cannot undo this step: {e}");
                    None
                }
            };
            steps.push((primary, shadow, step.fits));
        }
        Ok(PipelineCheckpoint { steps })
    }

    /// Returns every step to `checkpoint`, taken from this pipeline.
    pub async fn rollback_to(&mut self, checkpoint: PipelineCheckpoint) -> Result<(), Error> {
        if checkpoint.steps.len() != self.steps.len() {
            return Err(Error::Internal(format!(
                "cannot roll back pipeline `{}`: a step was lost",
                self.plan.name
            )));
        }
        for (step, (primary, shadow, fits)) in self.steps.iter_mut().zip(checkpoint.steps) {
            if let Some(primary) = primary {
                step.instance.rollback_to(primary).await?;
            }
            if let (Some(s), Some(checkpoint)) = (&mut step.shadow, shadow) {
                s.instance.rollback_to(checkpoint).await?;
            }
            // Workers hold the state of `workers_fit`: still right if they
            // were prepared before the fit.
            step.fits = fits;
        }
        tracing::info!(pipeline = %self.plan.name, "the fit failed: every step is back to its state before it");
        Ok(())
    }

    /// Runs `x` through the fitted pipeline.
    pub async fn predict(&mut self, x: Frame, probabilities: bool) -> Result<Output, Error> {
        match self.pass(x, None, Pass::Predict { probabilities }).await? {
            Produced::Predictions {
                values,
                probabilities,
            } => Ok(Output::Predictions {
                values,
                probabilities,
            }),
            Produced::Frame(frame) => Ok(Output::Transformed(frame)),
            Produced::Fitted => Err(Error::Internal("the final step produced no output".into())),
        }
    }

    /// One pass over the graph, wave by wave; the steps of a wave run at
    /// once, each in its own task with its own store. Returns what the
    /// final step produced.
    async fn pass(&mut self, x: Frame, y: Option<&Column>, pass: Pass) -> Result<Produced, Error> {
        let ids: Vec<String> = self.steps.iter().map(|s| s.spec.id.clone()).collect();
        let inputs: Vec<Vec<Input>> = self.steps.iter().map(|s| s.spec.inputs.clone()).collect();
        let feeds: Vec<bool> = ids
            .iter()
            .map(|id| inputs.iter().flatten().any(|i| i.name() == id))
            .collect();
        let mut outputs: HashMap<String, Frame> = HashMap::from([("source".to_string(), x)]);
        // How many steps still read each output: the last one takes it
        // instead of a copy.
        let mut readers: HashMap<String, usize> = HashMap::new();
        for input in inputs.iter().flatten() {
            *readers.entry(input.name().to_string()).or_default() += 1;
        }
        // One copy of the target per pass, shared by every step.
        let y: Option<Arc<Column>> = y.cloned().map(Arc::new);
        let mut slots: Vec<Option<Step>> = std::mem::take(&mut self.steps)
            .into_iter()
            .map(Some)
            .collect();
        let mut last = Produced::Fitted;
        let mut failure = None;
        'waves: for wave in crate::graph::waves(&ids, &inputs) {
            let mut tasks = Vec::new();
            for i in wave {
                let Some(mut step) = slots[i].take() else {
                    continue;
                };
                let input = match step.take_inputs(&mut outputs, &mut readers) {
                    Ok(frame) => frame,
                    Err(e) => {
                        failure = Some(e);
                        slots[i] = Some(step);
                        break 'waves;
                    }
                };
                let (y, feeds_others) = (y.clone(), feeds[i]);
                tasks.push((
                    i,
                    tokio::spawn(async move {
                        let produced = step.run(pass, input, y, feeds_others).await;
                        (step, produced)
                    }),
                ));
            }
            // Wait for every task of the wave, even after a failure, so no
            // step is lost and the other branches finish their work.
            for (i, task) in tasks {
                match task.await {
                    Ok((step, produced)) => {
                        slots[i] = Some(step);
                        match produced {
                            Ok(Produced::Frame(frame)) if feeds[i] => {
                                outputs.insert(ids[i].clone(), frame);
                            }
                            Ok(other) => last = other,
                            Err(e) => {
                                failure.get_or_insert(e);
                            }
                        }
                    }
                    Err(e) => {
                        failure.get_or_insert(Error::Internal(format!(
                            "step `{}` stopped unexpectedly: {e}",
                            ids[i]
                        )));
                    }
                }
            }
            if failure.is_some() {
                break;
            }
        }
        self.steps = slots.into_iter().flatten().collect();
        match failure {
            Some(e) => Err(self.in_manifest(e)),
            None => Ok(last),
        }
    }

    /// A step's mistake (its graph, its inputs) placed in the manifest the
    /// pipeline came from.
    fn in_manifest(&self, e: Error) -> Error {
        match e {
            Error::Manifest(mut e) if e.file.as_os_str().is_empty() => {
                e.file.clone_from(&self.plan.path);
                e.into()
            }
            e => e,
        }
    }
}

/// A chunk as a pass of a chunked fit reads it: the frames by name
/// ("source", or what the previous pass kept), the target, and how far
/// into the file it ends.
pub struct ChunkIn {
    pub frames: HashMap<String, Frame>,
    pub y: Option<Column>,
    pub bytes_read: u64,
}

/// What [`Pipeline::fit_pass`] tells its `keep` about a chunk.
pub struct ChunkDone {
    /// Rows in the chunk.
    pub rows: u64,
    /// Bytes of the file read up to the chunk's end.
    pub bytes_read: u64,
}

/// A chunk the earlier steps have transformed, with who still reads each
/// frame.
struct Staged {
    outputs: HashMap<String, Frame>,
    readers: HashMap<String, usize>,
    y: Option<Arc<Column>>,
    done: ChunkDone,
}

/// The earlier steps' side of [`Pipeline::fit_pass`] for one chunk: runs
/// the steps of `earlier` whose outputs are missing (with `carried`, only
/// those read from here on), taking each input from its last reader.
async fn transform_earlier(
    earlier: &mut [(usize, Step)],
    chunk: ChunkIn,
    carried: bool,
    needed: &std::collections::HashSet<String>,
    wave_reads: &[String],
) -> Result<Staged, Error> {
    let ChunkIn {
        frames: mut outputs,
        y,
        bytes_read,
    } = chunk;
    let rows = outputs.values().next().map_or(0, |f| u64::from(f.rows));
    let upstream: Vec<usize> = (0..earlier.len())
        .filter(|&j| !outputs.contains_key(&earlier[j].1.spec.id))
        .filter(|&j| !carried || needed.contains(&earlier[j].1.spec.id))
        .collect();
    // Who still reads each frame: the upstream steps, the wave's, and
    // `keep` for what the next pass needs.
    let mut readers: HashMap<String, usize> = HashMap::new();
    let upstream_reads = upstream.iter().flat_map(|&j| {
        earlier[j]
            .1
            .spec
            .inputs
            .iter()
            .map(|i| i.name().to_string())
    });
    for name in upstream_reads
        .chain(wave_reads.iter().cloned())
        .chain(needed.iter().cloned())
    {
        *readers.entry(name).or_default() += 1;
    }
    for j in upstream {
        let step = &mut earlier[j].1;
        let input = step.take_inputs(&mut outputs, &mut readers)?;
        let produced = step
            .run(
                Pass::Predict {
                    probabilities: false,
                },
                input,
                None,
                true,
            )
            .await?;
        if let Produced::Frame(frame) = produced {
            outputs.insert(step.spec.id.clone(), frame);
        }
    }
    Ok(Staged {
        outputs,
        readers,
        y: y.map(Arc::new),
        done: ChunkDone { rows, bytes_read },
    })
}

/// The wave's side of [`Pipeline::fit_pass`] for one chunk.
async fn fit_staged(
    manifest: &std::path::Path,
    slots: &mut [Option<Step>],
    chunk: Staged,
    needed: &std::collections::HashSet<String>,
    wave: &[usize],
    buffered: &mut Buffered,
    keep: &mut impl FnMut(&[(&str, &Frame)], Option<&Column>, &ChunkDone),
) -> Result<(), Error> {
    let Staged {
        mut outputs,
        mut readers,
        y,
        done,
    } = chunk;
    let kept: Vec<(&str, &Frame)> = outputs
        .iter()
        .filter(|(name, _)| needed.contains(*name))
        .map(|(name, frame)| (name.as_str(), frame))
        .collect();
    keep(&kept, y.as_deref(), &done);
    for name in needed {
        if let Some(n) = readers.get_mut(name) {
            *n = n.saturating_sub(1);
        }
    }
    for &i in wave {
        let Some(step) = slots[i].as_mut() else {
            continue;
        };
        let input = step.take_inputs(&mut outputs, &mut readers)?;
        let (selected, _) = step
            .spec
            .select
            .split(input)
            .map_err(|m| step.graph_error(m))?;
        if step
            .component
            .info()
            .capabilities
            .contains(Capabilities::PARTIAL_FIT)
        {
            let fitted = step
                .instance
                .partial_fit_consumed(selected, y.clone())
                .await;
            step.fitted(fitted.map_err(Error::from))?;
            continue;
        }
        buffered.bytes += crate::cache::frame_bytes(&selected) as u64;
        let held = buffered.frames.entry(i).or_default();
        let rows: u64 =
            held.0.iter().map(|f| u64::from(f.rows)).sum::<u64>() + u64::from(selected.rows);
        if buffered.bytes > buffered.budget {
            return Err(ManifestError {
                file: manifest.to_path_buf(),
                line: step.spec.line,
                key: Some("data.memory-budget-mib".into()),
                message: format!(
                    "step `{}` ({}) cannot fit in chunks, and its input passed the memory budget of {} MiB after {rows} rows; \
                     use a kernel with partial-fit (e.g. sgd-classifier), raise `data.memory-budget-mib`, or run without chunks",
                    step.spec.id,
                    step.kernel_name(),
                    buffered.budget >> 20
                ),
            }
            .into());
        }
        held.0.push(selected);
        if let Some(y) = &y {
            held.1.push(Column::clone(y));
        }
    }
    Ok(())
}

/// Inputs held for steps that cannot fit incrementally, within a budget.
pub struct Buffered {
    frames: HashMap<usize, (Vec<Frame>, Vec<Column>)>,
    bytes: u64,
    budget: u64,
}

impl Buffered {
    /// Holds at most `budget` bytes of input.
    pub fn new(budget: u64) -> Self {
        Buffered {
            frames: HashMap::new(),
            bytes: 0,
            budget,
        }
    }
}

impl Pipeline {
    /// The steps grouped into waves (see [`crate::graph::waves`]): a
    /// chunked fit makes one pass over the input per wave.
    pub fn waves(&self) -> Vec<Vec<usize>> {
        let ids: Vec<String> = self.steps.iter().map(|s| s.spec.id.clone()).collect();
        let inputs: Vec<Vec<Input>> = self.steps.iter().map(|s| s.spec.inputs.clone()).collect();
        crate::graph::waves(&ids, &inputs)
    }

    /// One pass of a chunked fit: feeds every chunk `chunks` reads to the
    /// steps of `wave`. The frames a chunk needs are made from what was
    /// read ("source", or the outputs of earlier steps a previous pass
    /// kept), earlier (fitted) steps transforming what is missing, then
    /// each step of the wave partial-fits its share, or holds it in
    /// `buffered` if its kernel cannot fit incrementally. With `carried`,
    /// a chunk is what `keep` was given for it in the previous wave's
    /// pass, and only the steps whose outputs are read from here on still
    /// transform it; otherwise every earlier step runs.
    ///
    /// Before the wave's steps take a chunk, `keep` is given the frames a
    /// pass for the next wave needs ("source" and the earlier steps'
    /// outputs that a step of this wave or a later one reads, by name),
    /// the target and the chunk's size. Each frame is handed to its last
    /// reader, not copied.
    ///
    /// The earlier steps run on a task of their own, a chunk ahead of the
    /// wave's steps (with the reader a chunk ahead of them): on two cores
    /// the transforms cost little wall time. Chunks keep their order, so
    /// every fit sees what a sequential pass would give it.
    pub async fn fit_pass(
        &mut self,
        chunks: ReadAhead<ChunkIn>,
        carried: bool,
        wave: &[usize],
        buffered: &mut Buffered,
        keep: impl FnMut(&[(&str, &Frame)], Option<&Column>, &ChunkDone),
    ) -> Result<(), Error> {
        let result = self
            .fit_pass_of_wave(chunks, carried, wave, buffered, keep)
            .await;
        result.map_err(|e| self.in_manifest(e))
    }

    /// [`Pipeline::fit_pass`], its errors not yet placed in the manifest.
    async fn fit_pass_of_wave(
        &mut self,
        mut chunks: ReadAhead<ChunkIn>,
        carried: bool,
        wave: &[usize],
        buffered: &mut Buffered,
        mut keep: impl FnMut(&[(&str, &Frame)], Option<&Column>, &ChunkDone),
    ) -> Result<(), Error> {
        let waves = self.waves();
        let depth = |i: usize| waves.iter().position(|w| w.contains(&i)).unwrap_or(0);
        let current = wave.first().map_or(0, |i| depth(*i));
        // What this wave's steps and later ones read.
        let needed: Arc<std::collections::HashSet<String>> = Arc::new(
            self.steps
                .iter()
                .enumerate()
                .filter(|(i, _)| depth(*i) >= current)
                .flat_map(|(_, s)| s.spec.inputs.iter().map(|i| i.name().to_string()))
                .collect(),
        );
        // What the wave's steps read, one count a reader.
        let wave_reads: Vec<String> = wave
            .iter()
            .flat_map(|&i| {
                self.steps[i]
                    .spec
                    .inputs
                    .iter()
                    .map(|i| i.name().to_string())
            })
            .collect();
        // The earlier steps go to the transforming task and come back.
        let mut slots: Vec<Option<Step>> = std::mem::take(&mut self.steps)
            .into_iter()
            .map(Some)
            .collect();
        // In the order of the waves, so every input is made before it is
        // read.
        let mut order: Vec<usize> = (0..slots.len()).filter(|&i| depth(i) < current).collect();
        order.sort_by_key(|&i| (depth(i), i));
        let earlier: Vec<(usize, Step)> = order
            .into_iter()
            .filter_map(|i| slots[i].take().map(|s| (i, s)))
            .collect();
        let (staged, mut ready) = tokio::sync::mpsc::channel::<Result<Staged, Error>>(1);
        let transforming = {
            let needed = needed.clone();
            tokio::spawn(async move {
                let mut earlier = earlier;
                loop {
                    let item = match chunks.next().await {
                        Ok(Some(chunk)) => {
                            transform_earlier(&mut earlier, chunk, carried, &needed, &wave_reads)
                                .await
                        }
                        Ok(None) => break,
                        Err(e) => Err(e),
                    };
                    let failed = item.is_err();
                    // The wave's side stopped (it failed): nothing more
                    // is wanted.
                    if staged.send(item).await.is_err() || failed {
                        break;
                    }
                }
                earlier
            })
        };
        let mut failure = None;
        while let Some(item) = ready.recv().await {
            let fed = match item {
                Ok(chunk) => {
                    fit_staged(
                        &self.plan.path,
                        &mut slots,
                        chunk,
                        &needed,
                        wave,
                        buffered,
                        &mut keep,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = fed {
                failure = Some(e);
                break;
            }
        }
        drop(ready);
        match transforming.await {
            Ok(earlier) => {
                for (i, step) in earlier {
                    slots[i] = Some(step);
                }
            }
            Err(e) => {
                failure.get_or_insert(Error::Internal(format!(
                    "the task transforming chunks for the next steps stopped: {e}"
                )));
            }
        }
        self.steps = slots.into_iter().flatten().collect();
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Fits the steps of `wave` that were given their input in
    /// `buffered`, on all of it at once.
    pub async fn finish_wave(
        &mut self,
        wave: &[usize],
        buffered: &mut Buffered,
    ) -> Result<(), Error> {
        for &i in wave {
            let Some((frames, ys)) = buffered.frames.remove(&i) else {
                continue;
            };
            let step = &mut self.steps[i];
            let x = Frame::concat_rows(frames).map_err(|m| step.graph_error(m))?;
            let y = if ys.is_empty() {
                None
            } else {
                let rows: Vec<Frame> = ys
                    .into_iter()
                    .map(|c| Frame {
                        rows: crate::data::column_len(&c) as u32,
                        columns: vec![c],
                    })
                    .collect();
                Frame::concat_rows(rows)
                    .map_err(|m| step.graph_error(m))?
                    .columns
                    .pop()
            };
            let fitted = step.instance.fit(&x, y.as_ref()).await;
            step.fitted(fitted.map_err(Error::from))?;
        }
        // The wave is fitted: what its steps (and the earlier ones, which
        // transformed every chunk) grew into is given back.
        for step in &mut self.steps {
            step.give_back().await;
        }
        buffered.bytes = buffered
            .frames
            .values()
            .flat_map(|(f, _)| f)
            .map(|f| crate::cache::frame_bytes(f) as u64)
            .sum();
        Ok(())
    }
}

/// A sha256 pin that does not match the file is a mistake in the manifest
/// (or a tampered file): report it at the pin.
fn pin_error(manifest: &Plan, spec: &KernelSpec, error: Error) -> Error {
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
fn params_error(manifest: &Plan, spec: &KernelSpec, error: Error) -> Error {
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

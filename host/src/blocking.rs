//! A blocking front to the async API, for callers without an async
//! runtime (scripts, tests, other languages' bindings).
//!
//! Each [`BlockingPipeline`] owns a small multi-threaded tokio runtime (two
//! workers, so independent branches still run in parallel) and blocks on
//! it. Do not use it from inside an async runtime: call the async API there.
//!
//! ```no_run
//! use kernel_host::blocking::BlockingPipeline;
//! # fn demo() -> Result<(), kernel_host::Error> {
//! let manifest = kernel_host::Manifest::load("examples/penguins/pipeline.toml".as_ref())?;
//! let data = kernel_host::run::prepare(&manifest)?;
//! let mut pipeline = BlockingPipeline::load(manifest)?;
//! pipeline.fit(data.x_train, data.y_train.as_ref())?;
//! let predictions = pipeline.predict(data.x_test.unwrap(), true)?;
//! # Ok(()) }
//! ```

use crate::bindings::{Column, Frame};
use crate::engine::Sandbox;
use crate::error::Error;
use crate::manifest::Manifest;
use crate::pipeline::{Output, Pipeline};
use crate::run::RunReport;

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Host(anyhow::Error::from(e).context("starting the async runtime")))
}

/// Runs the manifest's whole job (see [`crate::run::run`]), blocking.
pub fn run(manifest: Manifest) -> Result<RunReport, Error> {
    let runtime = runtime()?;
    let sandbox = Sandbox::builder().build()?;
    runtime.block_on(crate::run::run(&sandbox, manifest))
}

/// A [`Pipeline`] whose methods block.
pub struct BlockingPipeline {
    runtime: tokio::runtime::Runtime,
    pipeline: Pipeline,
}

impl BlockingPipeline {
    /// Loads, verifies and configures the manifest's kernels in a default
    /// sandbox.
    pub fn load(manifest: Manifest) -> Result<Self, Error> {
        let sandbox = Sandbox::builder().build()?;
        Self::load_in(&sandbox, manifest)
    }

    /// Like [`BlockingPipeline::load`], in a given sandbox.
    pub fn load_in(sandbox: &Sandbox, manifest: Manifest) -> Result<Self, Error> {
        let runtime = runtime()?;
        let pipeline = runtime.block_on(Pipeline::load(sandbox, manifest))?;
        Ok(BlockingPipeline { runtime, pipeline })
    }

    pub fn fit(&mut self, x: Frame, y: Option<&Column>) -> Result<(), Error> {
        self.runtime.block_on(self.pipeline.fit(x, y))
    }

    pub fn predict(&mut self, x: Frame, probabilities: bool) -> Result<Output, Error> {
        self.runtime
            .block_on(self.pipeline.predict(x, probabilities))
    }

    /// The async pipeline inside.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}

//! `kernel-host mcp --root DIR...`: an MCP server over stdio (the official
//! Rust SDK, `rmcp`) that lets an agent list, inspect and run our kernels,
//! always in the sandbox. Every path a tool is given, and every file a
//! manifest names (data, kernels, outputs, granted directories), must lie
//! under one of the roots; kernel limits are capped server-wide. Results
//! are structured JSON plus a one-line text summary; a failure is a tool
//! error with the same shape, and the server keeps serving.

use kernel_host::job::{JobOptions, Quiet, Source};
use kernel_host::recommend::{self, KernelsFrom, Options};
use kernel_host::{Error, Plan, Sandbox};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt as _, schemars, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, clap::Args)]
#[command(after_help = "Example (an MCP client's configuration):
  {\"mcpServers\": {\"kernel-host\": {\"command\": \"kernel-host\",
    \"args\": [\"mcp\", \"--root\", \"/home/me/data\", \"--kernels\", \"/home/me/kernels\"]}}}")]
pub struct McpArgs {
    /// A directory the tools may read and write under (repeatable; at least one).
    #[arg(long = "root", value_name = "DIR", required = true)]
    pub roots: Vec<PathBuf>,
    /// Kernels `list_kernels` and `recommend` offer: a directory of components or `registry` (repeatable; default: the registry). Manifests may run kernels from these directories too (read only).
    #[arg(long, value_name = "DIR|registry")]
    pub kernels: Vec<String>,
    /// The most fuel any kernel call may have, whatever a manifest asks.
    #[arg(long, value_name = "N", default_value_t = 100_000_000_000)]
    pub max_fuel: u64,
    /// The most linear memory any kernel may have, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    pub max_memory_mib: u64,
    /// The longest any kernel call may run, seconds.
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub max_seconds: u64,
}

/// The server: its roots, caps and sandbox.
#[derive(Clone)]
pub struct Server {
    roots: Arc<Vec<PathBuf>>,
    /// The `--kernels` directories: kernels may be read from them.
    kernel_dirs: Arc<Vec<PathBuf>>,
    kernels: Arc<Vec<String>>,
    caps: kernel_host::Limits,
    sandbox: Sandbox,
    #[allow(dead_code, reason = "read by the tool_handler macro")]
    tool_router: ToolRouter<Self>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct DataArgs {
    /// The table (CSV, Arrow or Parquet), under a root.
    pub path: String,
    /// The column to predict.
    pub target: Option<String>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct RecommendArgs {
    /// The table (CSV, Arrow or Parquet), under a root.
    pub path: String,
    /// The column to predict (none: clustering).
    pub target: Option<String>,
    /// Seconds to cross-validate candidates (default 30; 0: rules only).
    pub budget_seconds: Option<f64>,
    /// Write the recommended pipeline here as a manifest (under a root).
    pub write: Option<String>,
    /// Rows to score on in a file of their own, under a root (default: 25 % of the data, split off).
    pub test: Option<String>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct PathArgs {
    /// The file, under a root.
    pub path: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct ListArgs {
    /// A directory of kernel components under a root (default: the server's kernels).
    pub dir: Option<String>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct CompareArgs {
    /// Two or more pipeline manifests under a root, scored on the same folds.
    pub manifests: Vec<String>,
    /// Folds (default 5).
    pub folds: Option<usize>,
    /// The metric to rank by (default: the task's primary one).
    pub metric: Option<String>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct TuneArgs {
    /// The pipeline manifest under a root; its model's declared parameters are searched.
    pub manifest: String,
    /// Seconds for the search (default 30, at most 600).
    pub budget_seconds: Option<f64>,
    /// Stop after this many trials.
    pub trials: Option<usize>,
    /// Ranges to search instead of the declared ones: `step.param=log(1e-3,1e3)`, `step.param=a,b`.
    pub params: Option<Vec<String>>,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct RunArgs {
    /// The pipeline manifest (TOML), under a root.
    pub path: String,
    /// Write predictions here instead of the manifest's output (under a root).
    pub output: Option<String>,
}

fn result(summary: String, value: Value) -> CallToolResult {
    let mut r = CallToolResult::structured(value);
    r.content = vec![ContentBlock::text(summary)];
    r
}

fn failure(error: &Error) -> CallToolResult {
    let message = kernel_host::printable_lines(&error.to_string()).into_owned();
    let mut r = CallToolResult::structured_error(json!({
        "error": message,
        "kind": format!("{:?}", error.blame()).to_lowercase(),
        "exit_code": error.exit_code(),
    }));
    r.content = vec![ContentBlock::text(format!("failed: {message}"))];
    r
}

impl Server {
    pub fn new(args: &McpArgs) -> Result<Server, Error> {
        let mut kernel_dirs = Vec::new();
        for dir in args.kernels.iter().filter(|k| *k != "registry") {
            kernel_dirs.push(std::fs::canonicalize(dir).map_err(|e| {
                Error::Usage(format!(
                    "--kernels {dir}: {e}; give an existing directory or `registry`"
                ))
            })?);
        }
        let mut roots = Vec::new();
        for root in &args.roots {
            let canonical = std::fs::canonicalize(root).map_err(|e| {
                Error::Usage(format!(
                    "--root {}: {e}; give existing directories",
                    root.display()
                ))
            })?;
            if !canonical.is_dir() {
                return Err(Error::Usage(format!(
                    "--root {}: not a directory",
                    root.display()
                )));
            }
            roots.push(canonical);
        }
        let caps = kernel_host::Limits {
            fuel: args.max_fuel,
            memory_bytes: args.max_memory_mib << 20,
            timeout: Duration::from_secs(args.max_seconds),
            ..kernel_host::Limits::default()
        };
        Ok(Server {
            roots: Arc::new(roots),
            kernel_dirs: Arc::new(kernel_dirs),
            kernels: Arc::new(args.kernels.clone()),
            caps,
            sandbox: Sandbox::builder().build()?,
            tool_router: Self::tool_router(),
        })
    }

    /// `path` made absolute and resolved (symbolic links included, for the
    /// deepest part that exists), refused unless it lies under a root.
    fn allowed(&self, path: &Path) -> Result<PathBuf, Error> {
        self.allowed_in(path, &[])
    }

    /// A kernel component: under a root or a `--kernels` directory.
    fn allowed_kernel(&self, path: &Path) -> Result<PathBuf, Error> {
        self.allowed_in(path, &self.kernel_dirs)
    }

    fn allowed_in(&self, path: &Path, also: &[PathBuf]) -> Result<PathBuf, Error> {
        let absolute = std::path::absolute(path)
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        // Resolve the deepest existing ancestor; the rest is new names.
        let mut existing = absolute.as_path();
        let mut rest = Vec::new();
        let resolved = loop {
            match std::fs::canonicalize(existing) {
                Ok(p) => break p,
                Err(_) => match (existing.parent(), existing.file_name()) {
                    (Some(parent), Some(name)) => {
                        rest.push(name.to_os_string());
                        existing = parent;
                    }
                    _ => break absolute.clone(),
                },
            }
        };
        let mut full = resolved;
        for name in rest.iter().rev() {
            if name == ".." {
                return Err(Error::Usage(format!(
                    "{}: `..` in a path that does not exist yet",
                    path.display()
                )));
            }
            full.push(name);
        }
        if self
            .roots
            .iter()
            .chain(also)
            .any(|root| full.starts_with(root))
        {
            Ok(full)
        } else {
            Err(Error::Usage(format!(
                "{} is outside the server's roots ({}); the server reads and writes only there",
                path.display(),
                self.roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// Loads a manifest under a root, checks every file it names, and caps
    /// its kernels' limits.
    fn plan(&self, path: &Path, output: Option<&Path>) -> Result<Plan, Error> {
        let path = self.allowed(path)?;
        let mut plan = match Source::open(&path, &super::common::registry())? {
            Source::Plan(plan) => plan,
            Source::Bundle(_) => {
                return Err(Error::Usage(format!(
                    "{}: a bundle; the server runs manifests",
                    path.display()
                )));
            }
        };
        if let Some(output) = output {
            plan.output.predictions = Some(self.allowed(output)?);
        }
        match &plan.data.source {
            kernel_host::manifest::DataSource::Files { train, test } => {
                self.allowed(train)?;
                if let Some(test) = test {
                    self.allowed(test)?;
                }
            }
            kernel_host::manifest::DataSource::Split { input, .. } => {
                self.allowed(input)?;
            }
        }
        for out in [
            &plan.output.predictions,
            &plan.output.report,
            &plan.output.audit_log,
        ]
        .into_iter()
        .flatten()
        {
            self.allowed(out)?;
        }
        let caps = self.caps;
        for step in &mut plan.steps {
            let registry = step.registry.is_some();
            if !registry {
                self.allowed_kernel(&step.source)?;
            }
            for dir in step.grants.read_dirs.values() {
                self.allowed(dir)?;
            }
            cap(&mut step.limits, &caps);
            if let Some(shadow) = &mut step.shadow {
                if shadow.registry.is_none() {
                    self.allowed_kernel(&shadow.source)?;
                }
                cap(&mut shadow.limits, &caps);
            }
        }
        Ok(plan)
    }

    fn sources(&self, dir: Option<&str>) -> Result<Vec<KernelsFrom>, Error> {
        let registry = || {
            KernelsFrom::Registry(kernel_host::registry::Registry::open(
                kernel_host::registry::Registry::default_dir(),
            ))
        };
        if let Some(dir) = dir {
            return Ok(vec![KernelsFrom::Dir(self.allowed_kernel(Path::new(dir))?)]);
        }
        if self.kernels.is_empty() {
            return Ok(vec![registry()]);
        }
        self.kernels
            .iter()
            .map(|k| match k.as_str() {
                "registry" => Ok(registry()),
                dir => Ok(KernelsFrom::Dir(self.allowed_kernel(Path::new(dir))?)),
            })
            .collect()
    }
}

fn cap(limits: &mut kernel_host::Limits, caps: &kernel_host::Limits) {
    limits.fuel = limits.fuel.min(caps.fuel);
    limits.memory_bytes = limits.memory_bytes.min(caps.memory_bytes);
    limits.timeout = limits.timeout.min(caps.timeout);
}

#[tool_router]
impl Server {
    #[tool(
        description = "List the kernels the server offers (or those in a directory under a root), with what each declares: name, version, kind, capabilities, parameters."
    )]
    async fn list_kernels(&self, Parameters(args): Parameters<ListArgs>) -> CallToolResult {
        let run = async {
            let sources = self.sources(args.dir.as_deref())?;
            let (available, skipped) = recommend::discover(&self.sandbox, &sources).await?;
            let kernels: Vec<Value> = available
                .iter()
                .map(|a| {
                    json!({
                        "name": a.info.name,
                        "version": a.info.version,
                        "kind": a.info.kind.to_string(),
                        "description": super::one_line(&a.info.description),
                        "capabilities": kernel_host::explain::capability_names(&a.info),
                        "probed_roles": a.roles.describe(),
                        "path": a.path,
                        "params": a.info.params.iter().map(|p| json!({
                            "name": p.name,
                            "type": kernel_host::explain::param_type_text(&p.kind),
                            "default": p.default.to_string(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            Ok::<_, Error>(result(
                format!(
                    "{} kernels: {}",
                    kernels.len(),
                    available
                        .iter()
                        .map(|a| format!("{} ({})", a.info.name, a.info.kind))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                json!({"kernels": kernels, "skipped": skipped}),
            ))
        };
        run.await.unwrap_or_else(|e| failure(&e))
    }

    #[tool(description = "Verify one kernel component (under a root) and return what it declares.")]
    async fn inspect_kernel(&self, Parameters(args): Parameters<PathArgs>) -> CallToolResult {
        let run = async {
            let path = self.allowed_kernel(Path::new(&args.path))?;
            let component =
                kernel_host::KernelComponent::load(&self.sandbox, "inspected", &path, None).await?;
            let value = kernel_host::explain::component_json(&component);
            let info = component.info();
            Ok::<_, Error>(result(
                format!("{}@{}: {}", info.name, info.version, info.kind),
                value,
            ))
        };
        run.await.unwrap_or_else(|e| failure(&e))
    }

    #[tool(
        description = "Profile a table under a root in one streamed pass: types, missing values, cardinality, ranges, skew, ID-like and constant columns, the target and the task it implies."
    )]
    async fn profile_data(&self, Parameters(args): Parameters<DataArgs>) -> CallToolResult {
        let run = || -> Result<CallToolResult, Error> {
            let path = self.allowed(Path::new(&args.path))?;
            let p = kernel_host::data::profile::profile(
                &path,
                args.target.as_deref(),
                &Default::default(),
            )?;
            let value = serde_json::to_value(&p)
                .map_err(|e| Error::Internal(format!("profile as JSON: {e}")))?;
            Ok(result(
                format!(
                    "{} rows x {} columns; task: {}; {}",
                    p.rows,
                    p.columns.len(),
                    p.task,
                    p.findings().join("; ")
                ),
                value,
            ))
        };
        run().unwrap_or_else(|e| failure(&e))
    }

    #[tool(
        description = "Recommend pipelines for a table under a root from the server's kernels: each step explained, candidates cross-validated within the budget, the best optionally written as a manifest (under a root) that run_manifest runs as is."
    )]
    async fn recommend(&self, Parameters(args): Parameters<RecommendArgs>) -> CallToolResult {
        let run = async {
            let data = self.allowed(Path::new(&args.path))?;
            let write = args
                .write
                .as_deref()
                .map(|w| self.allowed(Path::new(w)))
                .transpose()?;
            let test = args
                .test
                .as_deref()
                .map(|t| self.allowed(Path::new(t)))
                .transpose()?;
            let options = Options {
                target: args.target.clone(),
                test,
                budget: Duration::from_secs_f64(
                    args.budget_seconds.unwrap_or(30.0).clamp(0.0, 3600.0),
                ),
                ..Options::default()
            };
            let scratch = tempfile::tempdir()
                .map_err(|e| Error::io("creating a temporary directory", e.into()))?;
            let mut history = kernel_host::history::default_path()
                .and_then(|p| kernel_host::history::History::open(&p).ok());
            let (rec, available) = recommend::recommend(
                &self.sandbox,
                &data,
                &self.sources(None)?,
                &options,
                scratch.path(),
                history.as_mut(),
                &|_| {},
            )
            .await?;
            let mut value = serde_json::to_value(&rec)
                .map_err(|e| Error::Internal(format!("recommendation as JSON: {e}")))?;
            if let (Some(path), Some(best)) = (&write, rec.candidates.first()) {
                let dir = path.parent().unwrap_or(Path::new("/"));
                let text = recommend::manifest(
                    &rec,
                    best,
                    &available,
                    &data,
                    Some(dir),
                    options.test_fraction,
                    options.seed,
                );
                kernel_host::fsutil::write_atomic(path, text.as_bytes())
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
                value["written"] = Value::String(path.display().to_string());
            }
            Ok::<_, Error>(result(rec.recommendation.clone(), value))
        };
        run.await.unwrap_or_else(|e| failure(&e))
    }

    #[tool(
        description = "Check a manifest under a root (kernels, parameters, data) without running it; list every problem."
    )]
    async fn validate_manifest(&self, Parameters(args): Parameters<PathArgs>) -> CallToolResult {
        let run = async {
            let path = self.allowed(Path::new(&args.path))?;
            // The files it names must be under the roots too.
            self.plan(&path, None)?;
            // Its future is not Send (it borrows the resolver as a plain
            // trait object): on a thread of its own.
            let report = tokio::task::spawn_blocking(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::io("starting a runtime", e.into()))?;
                Ok::<_, Error>(runtime.block_on(kernel_host::validate::validate(
                    &path,
                    &super::common::registry(),
                    None,
                )))
            })
            .await
            .map_err(|e| Error::Internal(format!("validation stopped: {e}")))??;
            let value = json!({
                "ok": report.ok(),
                "problems": report.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                "train_rows": report.train_rows,
                "test_rows": report.test_rows,
                "notes": report.notes,
            });
            let summary = if report.ok() {
                "valid".to_string()
            } else {
                format!("{} problems", report.problems.len())
            };
            Ok::<_, Error>(result(summary, value))
        };
        run.await.unwrap_or_else(|e| failure(&e))
    }

    #[tool(
        description = "Run a pipeline manifest under a root in the sandbox (its limits, capped server-wide): fit, predict, score, write the predictions; returns the run report."
    )]
    async fn run_manifest(&self, Parameters(args): Parameters<RunArgs>) -> CallToolResult {
        let run = async {
            let plan = self.plan(Path::new(&args.path), args.output.as_deref().map(Path::new))?;
            let options = JobOptions {
                save: None,
                predict: true,
            };
            let report =
                kernel_host::job::run(&self.sandbox, Source::Plan(plan.clone()), &options, &Quiet)
                    .await?;
            if kernel_host::history::default_path().is_some() {
                super::history::record_run(&plan, &report);
            }
            let value = serde_json::to_value(&report)
                .map_err(|e| Error::Internal(format!("report as JSON: {e}")))?;
            let summary = match report.metric {
                Some((name, v)) => format!(
                    "pipeline `{}`: fitted on {} rows, predicted {}; {name} {v:.4}",
                    report.pipeline, report.train_rows, report.test_rows
                ),
                None => format!(
                    "pipeline `{}`: fitted on {} rows, predicted {}",
                    report.pipeline, report.train_rows, report.test_rows
                ),
            };
            Ok::<_, Error>(result(summary, value))
        };
        run.await.unwrap_or_else(|e| failure(&e))
    }

    #[tool(
        description = "Score two or more manifests under a root on the same cross-validation folds (sandboxed, capped): quality, time, fuel, memory, and a recommendation that says why."
    )]
    async fn compare(&self, Parameters(args): Parameters<CompareArgs>) -> CallToolResult {
        use kernel_host::select::{self, compare};
        let run = async {
            let paths: Vec<PathBuf> = args.manifests.iter().map(PathBuf::from).collect();
            let plans = paths
                .iter()
                .map(|p| self.plan(p, None))
                .collect::<Result<Vec<_>, _>>()?;
            let candidates = compare::candidates(&paths, plans, None)?;
            let folds = args.folds.unwrap_or(5).clamp(2, 20);
            let data = select::prepare(&self.sandbox, &candidates[0].plan, folds, 0).await?;
            let comparison = compare::compare(
                &self.sandbox,
                &candidates,
                &data,
                args.metric.as_deref(),
                &|_| {},
            )
            .await;
            let value = serde_json::to_value(&comparison)
                .map_err(|e| Error::Internal(format!("comparison as JSON: {e}")))?;
            Ok::<_, Error>(result(comparison.recommendation.clone(), value))
        };
        run.await.unwrap_or_else(|e| failure(&e))
    }

    #[tool(
        description = "Tune a manifest's model parameters under a root with TPE and cross-validation within a time budget (sandboxed, capped); returns every trial and the best."
    )]
    async fn tune(&self, Parameters(args): Parameters<TuneArgs>) -> CallToolResult {
        use kernel_host::select::{self, tune};
        let run = async {
            let plan = self.plan(Path::new(&args.manifest), None)?;
            let params = args.params.unwrap_or_default();
            let space = tune::space(&self.sandbox, &plan, &params).await?;
            let data = std::sync::Arc::new(select::prepare(&self.sandbox, &plan, 5, 0).await?);
            let options = tune::TuneOptions {
                budget: Duration::from_secs_f64(
                    args.budget_seconds.unwrap_or(30.0).clamp(1.0, 600.0),
                ),
                trials: args.trials,
                jobs: 1,
                seed: 0,
                metric: None,
                random: false,
                startup: 8,
            };
            let tuned = tune::tune(&self.sandbox, &plan, data, space, &options, &|_| {}).await?;
            let best = tuned
                .best
                .and_then(|b| tuned.trials.iter().find(|t| t.number == b));
            let summary = match best {
                Some(t) => format!(
                    "best {} {:.4} with {} ({} trials)",
                    tuned.metric,
                    t.score.unwrap_or(f64::NAN),
                    t.params
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    tuned.trials.len()
                ),
                None => format!("no trial could be scored ({} trials)", tuned.trials.len()),
            };
            let value = serde_json::to_value(&tuned)
                .map_err(|e| Error::Internal(format!("search as JSON: {e}")))?;
            Ok::<_, Error>(result(summary, value))
        };
        run.await.unwrap_or_else(|e| failure(&e))
    }

    #[tool(
        description = "Fit a manifest under a root (sandboxed, capped) and return what each kernel learned, in its own words, with what the host observed."
    )]
    async fn explain(&self, Parameters(args): Parameters<PathArgs>) -> CallToolResult {
        let run = async {
            let plan = self.plan(Path::new(&args.path), None)?;
            let steps =
                kernel_host::explain::explain(&self.sandbox, Source::Plan(plan), None, &Quiet)
                    .await?;
            let value: Vec<Value> = steps
                .iter()
                .map(|s| {
                    json!({
                        "step": s.step,
                        "kernel": s.kernel,
                        "kind": s.kind,
                        "explanation": match &s.explanation {
                            Ok(e) => kernel_host::explain::explanation_json(e),
                            Err(why) => json!({"error": why}),
                        },
                        "observed": kernel_host::explain::stats_json(&s.observed),
                    })
                })
                .collect();
            let summary = steps
                .iter()
                .map(|s| match &s.explanation {
                    Ok(e) => format!("{}: {}", s.step, super::one_line(&e.summary)),
                    Err(why) => format!("{}: {why}", s.step),
                })
                .collect::<Vec<_>>()
                .join("; ");
            Ok::<_, Error>(result(summary, json!({"steps": value})))
        };
        run.await.unwrap_or_else(|e| failure(&e))
    }
}

#[tool_handler]
impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "kernel-host",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Untrusted ML kernels (WebAssembly components) run in kernel-host's sandbox. \
                 Profile a table, recommend a pipeline (write it as a manifest), run or explain \
                 it. Paths must lie under the server's roots.",
            )
    }
}

pub async fn mcp(args: McpArgs) -> Result<(), Error> {
    let server = Server::new(&args)?;
    let service = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| Error::Internal(format!("starting the MCP server: {e}")))?;
    service
        .waiting()
        .await
        .map_err(|e| Error::Internal(format!("the MCP server stopped: {e}")))?;
    Ok(())
}

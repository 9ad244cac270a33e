//! `kernel-host graph MANIFEST|BUNDLE [--report run.json] [--format F] [-o FILE]`.

use kernel_host::{Error, Sandbox};
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Dot,
    Mermaid,
    Svg,
    Html,
}

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host graph examples/penguins/dag.toml --format mermaid
  kernel-host run examples/penguins/dag.toml --report run.json
  kernel-host graph examples/penguins/dag.toml --report run.json --format html -o dag.html")]
pub struct GraphArgs {
    /// The pipeline manifest, or a bundle.
    pub manifest: PathBuf,
    /// A run report (`run --report FILE`): each step's time, fuel and peak memory, the slowest marked.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// dot (Graphviz), mermaid, svg or html (a self-contained page).
    #[arg(long, value_enum, default_value = "dot")]
    pub format: Format,
    /// Write here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub async fn graph(args: GraphArgs) -> Result<(), Error> {
    let source = kernel_host::job::Source::open(&args.manifest, &super::common::registry())?;
    let report = match &args.report {
        None => None,
        Some(path) => {
            let text = kernel_host::fsutil::read_limited_string(path, 64 << 20).map_err(|e| {
                Error::Io {
                    context: format!("reading the run report {}", path.display()),
                    source: e,
                }
            })?;
            Some(
                serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
                    Error::Usage(format!(
                        "{} is not a run report (JSON from `run --report`): {e}",
                        path.display()
                    ))
                })?,
            )
        }
    };
    let sandbox = Sandbox::builder().build()?;
    let graph = kernel_host::viz::graph(&sandbox, source.plan(), report.as_ref()).await?;
    let text = match args.format {
        Format::Dot => graph.dot(),
        Format::Mermaid => graph.mermaid(),
        Format::Svg => graph.svg(),
        Format::Html => graph.html(),
    };
    super::write_output(args.output.as_deref(), &text)
}

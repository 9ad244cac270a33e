//! `kernel-host recommend DATA --target COL [--kernels DIR|registry] [--budget 60s] [--write m.toml] [--json]`.

use kernel_host::recommend::{self, KernelsFrom, Options};
use kernel_host::registry::Registry;
use kernel_host::{Error, Sandbox};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host recommend examples/penguins/data/penguins.csv --target species \\
      --kernels target/kernels --write penguins.toml && kernel-host run penguins.toml
  kernel-host recommend big.parquet --target price --kernels registry --budget 2m --json")]
pub struct RecommendArgs {
    /// The table: CSV, Arrow IPC or Parquet.
    pub data: PathBuf,
    /// The column to predict (without it: clustering).
    #[arg(long, value_name = "COL")]
    pub target: Option<String>,
    /// Where candidate kernels come from: a directory of .wasm components, or `registry` (repeatable; default: the registry).
    #[arg(long, value_name = "DIR|registry")]
    pub kernels: Vec<String>,
    /// Time to cross-validate candidates (`90`, `60s`, `2m`); 0 ranks by the rules alone.
    #[arg(long, value_name = "TIME", default_value = "60s", value_parser = parse_budget)]
    pub budget: Duration,
    /// Folds of the cross-validation.
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub cv: usize,
    /// Seed of the sample, the folds and the written manifest's test split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rows to score on in a file of their own (the manifest then reads `train` and `test` instead of splitting DATA; a chunked fit needs one to be scored).
    #[arg(long, value_name = "FILE")]
    pub test: Option<PathBuf>,
    /// Write the recommended pipeline as a manifest that runs as is.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Print JSON for tools instead of text.
    #[arg(long)]
    pub json: bool,
    /// Above this much memory for the data read whole, recommend a chunked fit (kernels with partial-fit only).
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub memory_budget_mib: u64,
    /// Neither read nor add to the run history.
    #[arg(long)]
    pub no_history: bool,
}

/// `90`, `90s`, `2m`, `1h` as a duration.
pub fn parse_budget(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, "s"),
    };
    let value: f64 = number.parse().map_err(|_| {
        format!("`{text}` is not a time: write seconds (`90`) or `90s`, `2m`, `1h`")
    })?;
    let seconds = match unit {
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("`{other}` is not a unit: use s, m or h")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

fn sources(kernels: &[String]) -> Vec<KernelsFrom> {
    if kernels.is_empty() {
        return vec![KernelsFrom::Registry(Registry::open(
            Registry::default_dir(),
        ))];
    }
    kernels
        .iter()
        .map(|k| match k.as_str() {
            "registry" => KernelsFrom::Registry(Registry::open(Registry::default_dir())),
            dir => KernelsFrom::Dir(PathBuf::from(dir)),
        })
        .collect()
}

pub async fn recommend(args: RecommendArgs) -> Result<(), Error> {
    if args.cv < 2 {
        return Err(Error::Usage(format!(
            "--cv {}: cross-validation needs at least 2 folds",
            args.cv
        )));
    }
    let options = Options {
        target: args.target.clone(),
        budget: args.budget,
        folds: args.cv,
        seed: args.seed,
        memory_budget: args.memory_budget_mib << 20,
        test: args.test.clone(),
        ..Options::default()
    };
    let sandbox = Sandbox::builder().build()?;
    let scratch =
        tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e.into()))?;
    let quiet = args.json;
    let progress = move |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let mut history = match kernel_host::history::default_path() {
        Some(path) if !args.no_history => match kernel_host::history::History::open(&path) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!("the run history is not used: {e:#}");
                None
            }
        },
        _ => None,
    };
    let (rec, available) = recommend::recommend(
        &sandbox,
        &args.data,
        &sources(&args.kernels),
        &options,
        scratch.path(),
        history.as_mut(),
        &progress,
    )
    .await?;
    let mut written = None;
    if let (Some(path), Some(best)) = (&args.write, rec.candidates.first()) {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let text = recommend::manifest(
            &rec,
            best,
            &available,
            &args.data,
            Some(dir),
            options.test_fraction,
            options.seed,
        );
        super::write_output(Some(path), &text)?;
        written = Some(path.clone());
    }
    if args.json {
        let mut value = serde_json::to_value(&rec)
            .map_err(|e| Error::io("writing the recommendation as JSON", e.into()))?;
        if let Some(path) = &written {
            value["written"] = serde_json::Value::String(path.display().to_string());
        }
        println!("{}", super::json(&value));
    } else {
        print!("{}", recommend::render(&rec));
        if let Some(path) = written {
            println!("wrote {0}: kernel-host run {0}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_as_people_write_them() {
        assert_eq!(parse_budget("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_budget("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_budget("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_budget("0"), Ok(Duration::ZERO));
        assert!(parse_budget("soon").is_err());
        assert!(parse_budget("5d").unwrap_err().contains("not a unit"));
    }
}

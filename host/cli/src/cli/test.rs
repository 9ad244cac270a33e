//! `kernel-host test KERNEL.wasm [--data FILE --target COL] [--params k=v,...] [--json]`.

use kernel_host::conformance::{self, Options};
use kernel_host::{Error, KernelComponent, Limits, Sandbox};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, clap::Args)]
#[command(
    after_help = "Properties: describe, parameters, not-fitted, frames, outputs, determinism, state, partial-fit, probabilities, resources (see the README).

Exit status: 0 every property passed, 1 a property failed, 2 the file is not a kernel or the kit could not run.

Examples:
  kernel-host test target/wasm32-wasip2/release/my_kernel.wasm
  kernel-host test scaler.wasm --data examples/penguins/train.csv --target species --params with-std=false
  kernel-host test scaler.wasm --json > conformance.json"
)]
pub struct TestArgs {
    /// The kernel component (.wasm).
    pub kernel: PathBuf,
    /// Your own data (CSV or Arrow), checked beside the generated frames (its first 5000 rows).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// The target column of --data (passed to fit as `y`, removed from the features).
    #[arg(long, value_name = "COL", requires = "data")]
    pub target: Option<String>,
    /// Parameters every check starts from, NAME=VALUE, comma-separated or repeated.
    #[arg(long, value_name = "K=V,...", value_delimiter = ',')]
    pub params: Vec<String>,
    /// Fuel per call (default: the host's default limit).
    #[arg(long, value_name = "UNITS")]
    pub fuel: Option<u64>,
    /// Linear memory cap per instance, MiB.
    #[arg(long, value_name = "MIB")]
    pub memory_mib: Option<u64>,
    /// Wall-clock limit per call, milliseconds.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Print the report as JSON for CI instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// 1 when the kernel broke a property, 2 for everything that kept the kit
/// from judging it (not a kernel, a bad flag, unreadable data).
pub fn exit_code(error: &Error) -> i32 {
    match error {
        Error::Conformance { .. } => 1,
        _ => 2,
    }
}

pub async fn test(args: TestArgs) -> Result<(), Error> {
    let mut limits = Limits::default();
    if let Some(fuel) = args.fuel {
        limits.fuel = fuel;
    }
    if let Some(mib) = args.memory_mib {
        limits.memory_bytes = kernel_host::limits::mib_to_bytes(mib).unwrap_or(u64::MAX);
    }
    if let Some(ms) = args.timeout_ms {
        limits.timeout = std::time::Duration::from_millis(ms);
    }
    limits.check().map_err(Error::Usage)?;
    let sandbox = Sandbox::builder().build()?;
    let id = super::common::kernel_id(&args.kernel);
    let component =
        match KernelComponent::load_for(&sandbox, "", &id, &args.kernel, None, limits).await {
            Ok(component) => component,
            // A component whose `describe` fails at load is a kernel that
            // breaks the first property, not a file that is not a kernel.
            Err(error) if error.fault().is_some() => {
                let reason = format!("`describe` failed at load: {error}");
                if args.json {
                    let value = serde_json::json!({
                        "kernel": args.kernel,
                        "passed": false,
                        "report": {"kernel": id, "checks": [
                            {"property": "describe", "result": "fail", "reason": reason}
                        ]},
                    });
                    println!("{}", super::json(&value));
                } else {
                    println!(
                        "conformance of {id}\n  FAIL  describe       {}",
                        kernel_host::printable(&reason)
                    );
                }
                return Err(Error::Conformance {
                    kernel: id,
                    failed: vec!["describe".into()],
                });
            }
            Err(error) => return Err(error.into()),
        };
    let mut options = Options::default();
    for text in args.params.iter().filter(|p| !p.trim().is_empty()) {
        options
            .params
            .push(conformance::parse_param(&component, text)?);
    }
    if let Some(path) = &args.data {
        let frame = kernel_host::data::read_table(path, &Default::default())?;
        options.data = Some(conformance::data_from(&frame, args.target.as_deref())?);
    }
    let report = conformance::check(Arc::new(component), limits, options).await?;
    if args.json {
        let value = serde_json::json!({
            "kernel": args.kernel,
            "passed": report.passed(),
            "report": report,
        });
        println!("{}", super::json(&value));
    } else {
        print!("{}", kernel_host::printable_lines(&report.table()));
    }
    if report.passed() {
        Ok(())
    } else {
        Err(Error::Conformance {
            kernel: report.kernel.clone(),
            failed: report.failures().map(|c| c.property.to_string()).collect(),
        })
    }
}

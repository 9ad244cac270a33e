//! `kernel-host info [--selftest]`: what this machine offers kernels.

use kernel_host::tensor::{self, Backend, CudaProbe, selftest};

#[derive(Clone, clap::Args)]
#[command(after_help = "Examples:
  kernel-host info
  kernel-host info --selftest --json")]
pub struct InfoArgs {
    /// Also run every tensor operation on each available backend against
    /// an f64 reference, and print the table.
    #[arg(long)]
    pub selftest: bool,
    /// Print JSON for tools instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn info(args: InfoArgs) -> Result<(), kernel_host::Error> {
    if args.json {
        return info_json(args.selftest);
    }
    println!("kernel-host {}", env!("CARGO_PKG_VERSION"));
    println!(
        "contract:     kernel-host:kernel@{}",
        kernel_host::bindings::WIT_VERSION
    );
    for (name, what) in tensor::report() {
        println!("{:<13} {what}", format!("{name}:"));
    }
    if !args.selftest {
        return Ok(());
    }
    let mut backends: Vec<(String, std::sync::Arc<dyn Backend>)> =
        vec![("cpu".into(), std::sync::Arc::new(tensor::Cpu::new()))];
    match tensor::probe_cuda() {
        CudaProbe::Ready(cuda) => backends.push(("cuda".into(), cuda)),
        CudaProbe::Unavailable(why) => println!("\ncuda selftest: SKIPPED ({why})"),
    }
    let mut failures = 0;
    for (name, backend) in backends {
        let checks = selftest::every_operation(&*backend);
        let passed = checks.iter().filter(|c| c.passed()).count();
        let worst = checks
            .iter()
            .filter_map(|c| c.outcome.as_ref().ok().map(|e| (*e, c.operation.as_str())))
            .fold((0.0, ""), |a, b| if b.0 > a.0 { b } else { a });
        println!(
            "\n{name} selftest: {passed}/{} operations within {:e} of f64 (worst: {} at {:.1e})",
            checks.len(),
            selftest::TOLERANCE,
            worst.1,
            worst.0
        );
        for c in checks.iter().filter(|c| !c.passed()) {
            failures += 1;
            println!("  FAILED {}: {:?}", c.operation, c.outcome);
        }
    }
    if failures > 0 {
        return Err(kernel_host::Error::Internal(format!(
            "{failures} tensor operation(s) failed the selftest"
        )));
    }
    Ok(())
}

/// `info --json`: the same facts, and with `--selftest` every check.
fn info_json(selftest: bool) -> Result<(), kernel_host::Error> {
    let mut json = serde_json::json!({
        "kernel_host": env!("CARGO_PKG_VERSION"),
        "contract": kernel_host::bindings::WIT_VERSION,
    });
    let backends: serde_json::Map<String, serde_json::Value> = tensor::report()
        .into_iter()
        .map(|(name, what)| (name, serde_json::Value::String(what)))
        .collect();
    json["tensor"] = serde_json::Value::Object(backends);
    let mut failures = 0;
    if selftest {
        let mut runs = serde_json::Map::new();
        let mut backends: Vec<(String, std::sync::Arc<dyn Backend>)> =
            vec![("cpu".into(), std::sync::Arc::new(tensor::Cpu::new()))];
        if let CudaProbe::Ready(cuda) = tensor::probe_cuda() {
            backends.push(("cuda".into(), cuda));
        }
        for (name, backend) in backends {
            let checks: Vec<serde_json::Value> = selftest::every_operation(&*backend)
                .iter()
                .map(|c| {
                    failures += usize::from(!c.passed());
                    match &c.outcome {
                        Ok(error) => serde_json::json!({"operation": c.operation, "passed": c.passed(), "max_error": error}),
                        Err(e) => serde_json::json!({"operation": c.operation, "passed": false, "error": format!("{e:?}")}),
                    }
                })
                .collect();
            runs.insert(name, serde_json::Value::Array(checks));
        }
        json["selftest"] = serde_json::Value::Object(runs);
        json["tolerance"] = serde_json::json!(selftest::TOLERANCE);
    }
    println!("{}", super::json(&json));
    if failures > 0 {
        return Err(kernel_host::Error::Internal(format!(
            "{failures} tensor operation(s) failed the selftest"
        )));
    }
    Ok(())
}

//! `kernel-host info [--selftest]`: what this machine offers kernels.

use kernel_host::tensor::{self, Backend, CudaProbe, selftest};

#[derive(Clone, clap::Args)]
pub struct InfoArgs {
    /// Also run every tensor operation on each available backend against
    /// an f64 reference, and print the table.
    #[arg(long)]
    pub selftest: bool,
}

pub async fn info(args: InfoArgs) -> Result<(), kernel_host::Error> {
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

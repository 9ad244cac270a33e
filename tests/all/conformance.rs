//! `kernel-host test`: every shipped kernel keeps the contract, and each
//! faulty kernel (one fault each, `tests/guests/faulty`) is caught by the
//! property it breaks, with a message that says what to fix.

use crate::common::{kernel_host, sandbox, workspace};
use kernel_host::conformance::{self, Options, Report, Verdict};
use kernel_host::{KernelComponent, Limits};
use std::path::Path;
use std::sync::Arc;

async fn report(path: &str, options: Options) -> Report {
    let sandbox = sandbox();
    let component = KernelComponent::load(&sandbox, "under-test", Path::new(path), None)
        .await
        .unwrap();
    conformance::check(Arc::new(component), Limits::default(), options)
        .await
        .unwrap()
}

const SHIPPED: &[&str] = &[
    kernel_host_guests::STANDARD_SCALER,
    kernel_host_guests::SIMPLE_IMPUTER,
    kernel_host_guests::ONE_HOT_ENCODER,
    kernel_host_guests::LOGISTIC_REGRESSION,
    kernel_host_guests::RIDGE_REGRESSION,
    kernel_host_guests::K_MEANS,
    kernel_host_guests::SGD_CLASSIFIER,
    kernel_host_guests::MLP_CLASSIFIER,
    kernel_host_guests::PCA,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_kernel_keeps_the_contract() {
    for path in SHIPPED {
        let report = report(path, Options::default()).await;
        assert!(report.passed(), "{path}:\n{}", report.table());
        // Every property ran or said why it does not apply.
        assert_eq!(report.checks.len(), conformance::PROPERTIES.len());
        for check in &report.checks {
            if let Verdict::Skip(why) = &check.verdict {
                assert!(
                    ["partial-fit", "probabilities"].contains(&check.property),
                    "{path}: {} skipped: {why}",
                    check.property
                );
            }
        }
        // Resources are measured per operation.
        let fit = &report.usage["fit"];
        assert!(fit.calls > 0 && fit.fuel.is_some_and(|f| f > 0) && fit.peak_memory.is_some());
    }
}

/// The property each faulty kernel breaks.
fn expected(fault: &str) -> &'static [&'static str] {
    match fault {
        "faultless" => &[],
        // The default outside its range is also refused by configure.
        "bad-describe" => &["describe", "parameters"],
        "accepts-out-of-range" | "refuses-range-end" | "traps-on-unknown-param" => &["parameters"],
        "no-not-fitted" => &["not-fitted"],
        "panics-on-empty" | "loops-on-constant" => &["frames"],
        "nondeterministic" => &["determinism"],
        "drops-row" => &["outputs"],
        "forgets-state" => &["state"],
        "partial-fit-forgets" => &["partial-fit"],
        "unnormalized-proba" | "predict-not-argmax" => &["probabilities"],
        "leaks" => &["resources"],
        other => panic!("no expectation for faulty kernel `{other}`: add one"),
    }
}

/// Words the message must hold: what was seen and what to do.
fn hint(fault: &str) -> &'static [&'static str] {
    match fault {
        "bad-describe" => &["default 2000 lies outside its declared range"],
        "accepts-out-of-range" => &["was accepted", "refuse it with invalid-params"],
        "traps-on-unknown-param" => &["no-such-parameter", "never trap"],
        "refuses-range-end" => &[
            "temperature = 1000.0",
            "the top of its range",
            "was refused",
        ],
        "no-not-fitted" => &["before any fit", "refuse with not-fitted"],
        "panics-on-empty" => &["`empty` (0 rows", "index out of bounds", "invalid-input"],
        "loops-on-constant" => &["`constant`", "out of fuel"],
        "nondeterministic" => &["the same call twice", "no counters"],
        "drops-row" => &["returned 0 rows for 1 input rows", "keep the row count"],
        "forgets-state" => &["load-state", "not-fitted", "save everything"],
        "partial-fit-forgets" => &["chunks of 1 row", "must add to what was learned"],
        "unnormalized-proba" => &["sum to 0.9", "normalize them"],
        "predict-not-argmax" => &["most probable class", "arg-max"],
        "leaks" => &["memory grew", "a leak"],
        _ => &[],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_faulty_kernel_is_caught_by_the_property_it_breaks() {
    assert!(kernel_host_guests::FAULTY.len() >= 16);
    for (name, path) in kernel_host_guests::FAULTY {
        if *name == "describe-traps" {
            continue; // it cannot be loaded: see the CLI test
        }
        let report = report(path, Options::default()).await;
        let failed: Vec<&str> = report.failures().map(|c| c.property).collect();
        assert_eq!(failed, expected(name), "{name}:\n{}", report.table());
        let reasons: String = report
            .failures()
            .map(|c| c.verdict.reason())
            .collect::<Vec<_>>()
            .join("\n");
        for words in hint(name) {
            assert!(
                reasons.contains(words),
                "{name}: the report should say `{words}`:\n{}",
                report.table()
            );
        }
    }
}

fn guest(name: &str) -> &'static str {
    kernel_host_guests::FAULTY
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
        .unwrap()
}

#[test]
fn the_cli_exits_0_1_or_2_and_speaks_json() {
    let out = kernel_host(&["test", kernel_host_guests::STANDARD_SCALER, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["passed"], true);
    assert_eq!(json["report"]["kernel"], "standard-scaler");
    let checks = json["report"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), conformance::PROPERTIES.len());
    assert_eq!(checks[0]["property"], "describe");
    assert_eq!(checks[0]["result"], "pass");
    assert!(
        json["report"]["usage"]["transform"]["fuel"]
            .as_u64()
            .unwrap()
            > 0
    );

    let out = kernel_host(&["test", guest("leaks")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("FAIL  resources"), "{stdout}");
    assert!(
        stderr.contains("kernel `centroids` failed 1 conformance property: resources"),
        "{stderr}"
    );

    // A kernel whose describe traps at load fails the first property.
    let out = kernel_host(&["test", guest("describe-traps")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAIL  describe") && stdout.contains("describe is not ready"),
        "{stdout}"
    );

    // Not a kernel: 2, with the reason.
    let out = kernel_host(&["test", "README.md"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly component"));
    let out = kernel_host(&["test", kernel_host_guests::OTHER_WORLD]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("export_kernel!"));
    // A parameter the kernel does not have: 2, naming the ones it has.
    let out = kernel_host(&[
        "test",
        kernel_host_guests::STANDARD_SCALER,
        "--params",
        "alpha=1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no parameter `alpha`"), "{stderr}");
}

#[test]
fn the_authors_data_and_parameters_are_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.csv");
    let mut csv = String::from("x1,x2,label\n");
    for i in 0..300 {
        let (a, b) = ((i * 37 % 101) as f64 / 10.0, (i * 53 % 89) as f64 / 7.0);
        let label = if a + b > 11.0 { "big" } else { "small" };
        csv.push_str(&format!("{a},{b},{label}\n"));
    }
    std::fs::write(&data, csv).unwrap();
    let out = kernel_host(&[
        "test",
        kernel_host_guests::SGD_CLASSIFIER,
        "--data",
        data.to_str().unwrap(),
        "--target",
        "label",
        "--params",
        "epochs=3,alpha=0.001",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let frames = json["report"]["checks"][3]["reason"].as_str().unwrap();
    assert!(frames.starts_with("13 frames"), "{frames}");
    assert_eq!(json["report"]["notes"].as_array().unwrap().len(), 0);

    // Data the kernel cannot take alone is a note, not a failure.
    let penguins = workspace().join("examples/penguins/data/train.csv");
    let out = kernel_host(&[
        "test",
        kernel_host_guests::ONE_HOT_ENCODER,
        "--data",
        penguins.to_str().unwrap(),
        "--target",
        "species",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("note: the kernel refused your data") && stdout.contains("`sex`"),
        "{stdout}"
    );
    let out = kernel_host(&[
        "test",
        kernel_host_guests::ONE_HOT_ENCODER,
        "--data",
        penguins.to_str().unwrap(),
        "--target",
        "no-such-column",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no target column `no-such-column`"));
}

/// `cargo` in `dir` as an author runs it: none of the outer build's flags,
/// one target directory shared by the test's crates (and kept between runs).
fn cargo(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
    command
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", workspace().join("target/scaffold"));
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        command.env_remove(var);
    }
    command.output().unwrap()
}

/// `kernel-host new` makes, for every kind, a crate outside this repository
/// that builds to a component at once, passes its own `cargo test` (which
/// includes the SDK's conformance) and passes `kernel-host test`.
#[test]
fn new_kernels_build_and_keep_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["classifier", "transformer", "regressor", "clusterer"] {
        let name = format!("my-{kind}");
        let crate_dir = dir.path().join(&name);
        let out = kernel_host(&[
            "new",
            &name,
            "--kind",
            kind,
            "--path",
            crate_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{out:?}");
        assert!(crate_dir.join("vendor/kernel-sdk/wit/kernel.wit").is_file());
        let readme = std::fs::read_to_string(crate_dir.join("README.md")).unwrap();
        assert!(readme.contains(&format!(
            "kernel-host test target/wasm32-wasip2/release/my_{kind}.wasm"
        )));

        let out = cargo(
            &crate_dir,
            &["build", "--release", "--target", "wasm32-wasip2"],
        );
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("warning"), "{kind}: {stderr}");
        let out = cargo(&crate_dir, &["test", "--release"]);
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stdout)
        );

        let component = workspace().join(format!(
            "target/scaffold/wasm32-wasip2/release/my_{kind}.wasm"
        ));
        let out = kernel_host(&["test", component.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // The name is checked, and an existing crate is never overwritten.
    let out = kernel_host(&["new", "Bad_Name", "--kind", "classifier"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("kebab-case"));
    let existing = dir.path().join("my-classifier");
    let out = kernel_host(&[
        "new",
        "my-classifier",
        "--kind",
        "classifier",
        "--path",
        existing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}

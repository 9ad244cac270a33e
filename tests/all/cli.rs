//! The `kernel-host` binary: exit codes, stdout and stderr.

use crate::common::*;
use kernel_host_guests as guests;
use std::process::Output;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_prints_the_accuracy_and_per_kernel_costs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.csv");
    let o = kernel_host(&[
        "run",
        "examples/penguins/pipeline.toml",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let accuracy: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("accuracy: "))
        .unwrap_or_else(|| panic!("no accuracy in {text}"))
        .parse()
        .unwrap();
    assert!(accuracy >= 0.99, "{text}");
    for step in [
        "impute",
        "encode",
        "scale",
        "model",
        "logistic-regression@1.0.0",
        "MiB",
    ] {
        assert!(text.contains(step), "`{step}` missing from {text}");
    }
    assert!(out.is_file());

    // In chunks sized from the memory budget; a bad size is a usage error.
    let o = kernel_host(&[
        "run",
        "examples/penguins/pipeline.toml",
        "--chunk-rows",
        "auto",
        "--output",
        out.to_str().unwrap(),
        "-v",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("chunk-rows = \"auto\": chunks of"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("accuracy: "), "{}", stdout(&o));
    let o = kernel_host(&[
        "run",
        "examples/penguins/pipeline.toml",
        "--chunk-rows",
        "many",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`many` is not a number of rows (or `auto`)"),
        "{}",
        stderr(&o)
    );
}

/// Every kind of hostile kernel, through the binary: exit code 2, the
/// kernel's id and the cause in plain words, no Debug dump.
#[test]
fn hostile_kernels_exit_2_naming_the_kernel_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "x\n1\n2\n").unwrap();
    let core_module = dir.path().join("core.wasm");
    std::fs::write(&core_module, b"\0asm\x01\0\0\0").unwrap();
    let hostile = |behaviour: &str, limits: &str| {
        (
            guests::HOSTILE.to_string(),
            format!(
                "params = {{ behaviour = \"{behaviour}\", target = \"/etc/passwd\" }}\nlimits = {{ {limits} }}"
            ),
        )
    };
    let cases = [
        (
            hostile("loop", "fuel = 10_000_000"),
            "failed in `fit`: out of fuel",
        ),
        (
            hostile("loop", "timeout-ms = 200"),
            "failed in `fit`: timeout",
        ),
        (
            hostile("memory-bomb", "memory-mib = 16"),
            "failed in `fit`: memory limit",
        ),
        (
            hostile("recursion", ""),
            "failed in `fit`: trapped: stack overflow",
        ),
        (
            hostile("panic", ""),
            "failed in `fit`: trapped: panicked at",
        ),
        (
            hostile("read-file", ""),
            "trapped: panicked at tests/guests/hostile/src/lib.rs",
        ),
        (
            hostile("wrong-rows", ""),
            "failed in `transform`: bad output: returned 3 rows for 2 input rows",
        ),
        (
            (core_module.display().to_string(), String::new()),
            "not a WebAssembly component",
        ),
        (
            (guests::OTHER_WORLD.to_string(), String::new()),
            "does not export the kernel interface",
        ),
        (
            (guests::FUTURE_KERNEL.to_string(), String::new()),
            "was built for WIT kernel-host:kernel@0.2.0",
        ),
    ];
    for ((source, extra), expected) in cases {
        let manifest = dir.path().join("m.toml");
        std::fs::write(
            &manifest,
            format!(
                "[pipeline]\nsteps = [\"villain\"]\n[data]\ntrain = \"d.csv\"\ntest = \"d.csv\"\n\
                 [kernels.villain]\nsource = {source:?}\n{extra}\n"
            ),
        )
        .unwrap();
        let o = kernel_host(&["run", manifest.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{expected}: {err}");
        assert!(
            err.contains("kernel `villain`") && err.contains(expected),
            "expected `{expected}` in: {err}"
        );
        assert!(
            !err.contains("Kernel {") && !err.contains("Trap {"),
            "a Debug dump leaked: {err}"
        );
    }
}

#[test]
fn a_manifest_mistake_exits_1_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        "[pipeline]\nsteps = []\n[data]\ntrain = \"x.csv\"\n",
    )
    .unwrap();
    let o = kernel_host(&["run", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("m.toml:2: `pipeline.steps`: the pipeline has no steps"),
        "{}",
        stderr(&o)
    );
}

/// `KERNEL_HOST_PERF_MAP=1` names each kernel function for `perf` in
/// `/tmp/perf-<pid>.map`; without it no map is written.
#[test]
fn a_perf_map_names_the_kernels_functions_when_asked() {
    let map_of = |perf_map: Option<&str>| {
        let mut command = kernel_host_command();
        command
            .args(["inspect", guests::STANDARD_SCALER])
            .stdout(std::process::Stdio::null());
        if let Some(v) = perf_map {
            command.env("KERNEL_HOST_PERF_MAP", v);
        } else {
            command.env_remove("KERNEL_HOST_PERF_MAP");
        }
        let mut child = command.spawn().unwrap();
        let path = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        assert!(child.wait().unwrap().success());
        let map = std::fs::read_to_string(&path).ok();
        let _ = std::fs::remove_file(&path);
        map
    };
    let map = map_of(Some("1")).expect("a perf map was written");
    let named = map
        .lines()
        .filter(|l| l.contains("wasm[0]::function[") && l.contains("standard_scaler"))
        .count();
    assert!(named > 3, "kernel functions named in the map:\n{map}");
    // Each line: start address, size in hex, name.
    for line in map.lines() {
        let mut parts = line.splitn(3, ' ');
        let (start, size) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(start.starts_with("0x"), "{line}");
        assert!(u64::from_str_radix(size, 16).is_ok(), "{line}");
    }
    assert_eq!(map_of(None), None);
}

#[test]
fn inspect_describes_a_kernel_and_refuses_a_non_kernel() {
    let o = kernel_host(&["inspect", guests::STANDARD_SCALER]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("standard-scaler@1.0.0")
            && text.contains("kernel-host:kernel@0.1.3")
            && text.contains("by reference: fit, partial-fit, transform"),
        "{text}"
    );
    assert!(
        text.contains("with_mean") && text.contains("partial-fit"),
        "{text}"
    );
    let o = kernel_host(&["inspect", guests::OTHER_WORLD]);
    assert_eq!(o.status.code(), Some(2));
    // The hint names the macro an author forgot; the host's own snapshot
    // instrumentation is not listed as the component's export.
    assert!(
        stderr(&o).contains("does not export the kernel interface")
            && stderr(&o).contains("export_kernel!")
            && !stderr(&o).contains("kernel-host:snapshot/access"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn json_for_tools_and_one_line_descriptions() {
    let o = kernel_host(&["inspect", guests::SIMPLE_IMPUTER, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["name"], "simple-imputer");
    let params = json["parameters"].as_array().unwrap();
    assert!(!params.is_empty());
    for p in params {
        let d = p["description"].as_str().unwrap();
        assert!(!d.contains("  ") && !d.contains('\n'), "{d:?}");
        assert!(p["default"].is_string(), "{p}");
    }
    // The text form puts each description on its own line, after the default.
    let text = stdout(&kernel_host(&["inspect", guests::SIMPLE_IMPUTER]));
    for p in params.iter().filter(|p| p["description"] != "") {
        let d = p["description"].as_str().unwrap();
        assert!(
            text.lines().any(|l| l.trim() == d),
            "{d:?} not on its own line in:\n{text}"
        );
    }

    let o = kernel_host(&["info", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["contract"], kernel_host::bindings::WIT_VERSION);
    assert!(json["tensor"]["cpu"].is_string(), "{json}");

    let registry = tempfile::tempdir().unwrap();
    let o = crate::common::kernel_host_command()
        .env("KERNEL_HOST_REGISTRY", registry.path())
        .args(["registry", "list", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(),
        serde_json::json!([])
    );

    let o = kernel_host(&["validate", "examples/penguins/pipeline.toml", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["kernels"].as_array().unwrap().len(), 4, "{json}");
}

/// Data with no column besides the target (or `features = []`) is refused
/// for the file before any kernel runs: before, the SGD classifier fitted
/// a constant and predicted no rows, logistic regression refused a frame
/// of 0 rows, and k-means put every row in cluster 0.
#[test]
fn data_without_feature_columns_is_refused_before_a_kernel_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "label\na\nb\nb\n").unwrap();
    for (kernel, features) in [
        (guests::SGD_CLASSIFIER, ""),
        (guests::LOGISTIC_REGRESSION, ""),
        (guests::K_MEANS, ""),
        (guests::SGD_CLASSIFIER, "features = []\n"),
    ] {
        let manifest = dir.path().join("m.toml");
        std::fs::write(
            &manifest,
            format!(
                "[pipeline]\nsteps = [\"model\"]\n[data]\ntrain = \"d.csv\"\ntarget = \"label\"\n{features}\
                 [output]\npredictions = \"p.csv\"\n[kernels.model]\nsource = {kernel:?}\n"
            ),
        )
        .unwrap();
        let o = kernel_host(&["run", manifest.to_str().unwrap(), "--no-history"]);
        let err = stderr(&o);
        assert_ne!(o.status.code(), Some(0), "{err}");
        if features.is_empty() {
            assert!(
                err.contains("d.csv: has no feature columns besides the target `label`"),
                "{err}"
            );
        } else {
            assert!(err.contains("`data.features`: lists no columns"), "{err}");
        }
        assert!(!dir.path().join("p.csv").exists(), "{err}");
    }
}

/// A step that returns every row and no column (the hostile kernel's
/// `empty`) leaves the next step nothing to read: refused before that
/// step runs, naming both, and nothing is written.
#[test]
fn a_step_given_rows_and_no_columns_is_refused_naming_the_step_before() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "x,label\n1,a\n2,b\n3,b\n4,a\n").unwrap();
    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        format!(
            "[pipeline]\nsteps = [\"drop\", \"model\"]\n[data]\ntrain = \"d.csv\"\ntest = \"d.csv\"\n\
             target = \"label\"\n[output]\npredictions = \"p.csv\"\n\
             [kernels.drop]\nsource = {:?}\nparams = {{ behaviour = \"transform-empty\" }}\n\
             [kernels.model]\nsource = {:?}\n",
            guests::HOSTILE,
            guests::SGD_CLASSIFIER
        ),
    )
    .unwrap();
    // Whole, and in chunks of two rows.
    for (chunks, rows) in [(None, 4), (Some("2"), 2)] {
        let mut args = vec!["run", manifest.to_str().unwrap(), "--no-history"];
        if let Some(n) = chunks {
            args.extend(["--chunk-rows", n]);
        }
        let o = kernel_host(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "m.toml:12: `pipeline.step`: step `model` has no column to work on: its input `drop` gave {rows} rows and no columns"
            )),
            "{err}"
        );
        assert!(!dir.path().join("p.csv").exists(), "{err}");
    }
}

#[test]
fn validate_reports_a_missing_kernel_and_a_bad_target_together() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "a,b\n1,2\n3,4\n").unwrap();
    let manifest = dir.path().join("m.toml");
    std::fs::write(
        &manifest,
        "[pipeline]\nsteps = [\"model\"]\n[data]\ntrain = \"d.csv\"\ntarget = \"nope\"\n\
         [kernels.model]\nsource = \"missing.wasm\"\n",
    )
    .unwrap();
    let o = kernel_host(&["validate", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("kernel file not found") && err.contains("`nope`"),
        "{err}"
    );
}

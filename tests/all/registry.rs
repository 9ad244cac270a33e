//! The kernel registry: add two versions, resolve a range, lock, upgrade
//! (printing what changed), run with the lock honoured, remove.

use crate::common::*;
use kernel_host_guests as guests;
use std::path::Path;
use std::process::Output;

fn with_registry(registry: &Path, args: &[&str]) -> Output {
    kernel_host_command()
        .env("KERNEL_HOST_REGISTRY", registry)
        .args(args)
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The scaler under version 1.1.0: the same component with its version
/// string patched (same length), so it hashes differently and describes
/// itself as `standard-scaler@1.1.0`.
fn next_version(dir: &Path) -> std::path::PathBuf {
    let mut bytes = std::fs::read(guests::STANDARD_SCALER).unwrap();
    let at = bytes
        .windows(20)
        .position(|w| w == b"standard-scaler1.0.0")
        .expect("the version string");
    bytes[at + 17] = b'1';
    let path = dir.join("standard_scaler_next.wasm");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The kernel the `scale` step ran, from a run report.
fn scaler_used(registry: &Path, manifest: &Path, dir: &Path) -> String {
    let report = dir.join("report.json");
    let o = with_registry(
        registry,
        &[
            "run",
            manifest.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", out(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "scale")
        .unwrap()["kernel"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn add_resolve_lock_upgrade_and_remove() {
    let registry = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let r = registry.path();
    let next = next_version(work.path());
    let data = workspace().join("examples/penguins/data");
    let manifest = work.path().join("m.toml");
    let write = |range: &str| {
        std::fs::write(
            &manifest,
            format!(
                "[pipeline]\nsteps = [\"impute\", \"encode\", \"scale\", \"model\"]\n[data]\ntrain = {:?}\ntest = {:?}\ntarget = \"species\"\n\
                 [kernels.impute]\nsource = {:?}\n[kernels.encode]\nsource = {:?}\n[kernels.scale]\nregistry = \"standard-scaler@{range}\"\n\
                 [kernels.model]\nsource = {:?}\n",
                data.join("train.csv"),
                data.join("test.csv"),
                guests::SIMPLE_IMPUTER,
                guests::ONE_HOT_ENCODER,
                guests::LOGISTIC_REGRESSION
            ),
        )
        .unwrap();
    };
    write("^1.0");

    let o = with_registry(r, &["registry", "add", guests::STANDARD_SCALER]);
    assert!(out(&o).contains("standard-scaler@1.0.0"), "{}", out(&o));
    let o = with_registry(r, &["lock", manifest.to_str().unwrap()]);
    assert!(
        out(&o).contains("scale: standard-scaler 1.0.0 (new)"),
        "{}",
        out(&o)
    );
    let lock = std::fs::read_to_string(work.path().join("kernel-host.lock")).unwrap();
    assert!(
        lock.contains("version = \"1.0.0\"") && lock.contains("name = \"standard-scaler\""),
        "{lock}"
    );

    // A newer version arrives; the lock keeps the run on 1.0.0.
    let o = with_registry(r, &["registry", "add", next.to_str().unwrap()]);
    assert!(out(&o).contains("standard-scaler@1.1.0"), "{}", out(&o));
    assert_eq!(
        scaler_used(r, &manifest, work.path()),
        "standard-scaler@1.0.0"
    );

    // upgrade moves the pin and says so; the run follows.
    let o = with_registry(r, &["upgrade", manifest.to_str().unwrap()]);
    assert!(
        out(&o).contains("scale: standard-scaler 1.0.0 -> 1.1.0"),
        "{}",
        out(&o)
    );
    assert_eq!(
        scaler_used(r, &manifest, work.path()),
        "standard-scaler@1.1.0"
    );
    let o = with_registry(r, &["upgrade", manifest.to_str().unwrap()]);
    assert!(out(&o).contains("unchanged (1 pinned)"), "{}", out(&o));

    // An exact range overrides a pin it does not allow.
    write("=1.0.0");
    assert_eq!(
        scaler_used(r, &manifest, work.path()),
        "standard-scaler@1.0.0"
    );

    let o = with_registry(r, &["registry", "list"]);
    assert!(
        out(&o).contains("1.0.0") && out(&o).contains("1.1.0"),
        "{}",
        out(&o)
    );
    let o = with_registry(r, &["registry", "remove", "standard-scaler@1.0.0"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = with_registry(r, &["run", manifest.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).contains("`kernels.scale.registry`: no version of `standard-scaler` matches =1.0.0; registered: 1.1.0"),
        "{}",
        out(&o)
    );
    // Adding the same file again changes nothing.
    let o = with_registry(r, &["registry", "add", next.to_str().unwrap()]);
    assert!(
        o.status.success() && out(&o).contains("standard-scaler@1.1.0"),
        "{}",
        out(&o)
    );
}

#[test]
fn shadow_runs_report_agreement_and_never_change_the_output() {
    let registry = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let r = registry.path();
    let next = next_version(work.path());
    for kernel in [
        guests::STANDARD_SCALER,
        next.to_str().unwrap(),
        guests::LOGISTIC_REGRESSION,
        guests::HOSTILE,
    ] {
        let o = with_registry(r, &["registry", "add", kernel]);
        assert!(o.status.success(), "{}", out(&o));
    }
    let data = workspace().join("examples/penguins/data");
    let manifest = work.path().join("m.toml");
    let predictions = |name: &str| work.path().join(name);
    let write = |shadows: bool| {
        let shadow = |s: &str| {
            if shadows {
                format!("shadow = \"{s}\"\n")
            } else {
                String::new()
            }
        };
        std::fs::write(
            &manifest,
            format!(
                "[pipeline]\nsteps = [\"impute\", \"encode\", \"scale\", \"model\"]\n[data]\ntrain = {:?}\ntest = {:?}\ntarget = \"species\"\n\
                 [kernels.impute]\nsource = {:?}\n[kernels.encode]\nsource = {:?}\n{}\
                 [kernels.scale]\nregistry = \"standard-scaler@=1.0.0\"\n{}[kernels.model]\nsource = {:?}\n{}",
                data.join("train.csv"),
                data.join("test.csv"),
                guests::SIMPLE_IMPUTER,
                guests::ONE_HOT_ENCODER,
                shadow("hostile@*"),
                shadow("standard-scaler@=1.1.0"),
                guests::LOGISTIC_REGRESSION,
                shadow("logistic-regression@*"),
            ),
        )
        .unwrap();
    };
    write(false);
    let plain = with_registry(
        r,
        &[
            "run",
            manifest.to_str().unwrap(),
            "-o",
            predictions("plain.csv").to_str().unwrap(),
        ],
    );
    assert!(plain.status.success(), "{}", out(&plain));
    write(true);
    let report = work.path().join("report.json");
    let o = with_registry(
        r,
        &[
            "run",
            manifest.to_str().unwrap(),
            "-o",
            predictions("shadowed.csv").to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", out(&o));
    // The primaries' outputs are used, whatever the shadows do.
    assert_eq!(
        std::fs::read(predictions("plain.csv")).unwrap(),
        std::fs::read(predictions("shadowed.csv")).unwrap()
    );
    let text = out(&o);
    assert!(
        text.contains("shadow of `scale`: standard-scaler@1.1.0 agreed on 344/344 rows"),
        "{text}"
    );
    assert!(
        text.contains("shadow of `model`: logistic-regression@1.0.0 agreed on 86/86 rows")
            && text.contains("metric delta +0.0000"),
        "{text}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let encode = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "encode")
        .unwrap();
    assert_eq!(encode["shadow"]["kernel"], "hostile@0.1.0");
    assert_eq!(
        encode["shadow"]["equal_rows"], 0,
        "the passthrough shadow disagrees with the encoder"
    );
    assert!(encode["shadow"]["rows"].as_u64().unwrap() >= 344);
}

#[test]
fn lock_pins_shadows_too() {
    let registry = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let r = registry.path();
    let next = next_version(work.path());
    for kernel in [guests::STANDARD_SCALER, next.to_str().unwrap()] {
        let o = with_registry(r, &["registry", "add", kernel]);
        assert!(o.status.success(), "{}", out(&o));
    }
    let data = workspace().join("examples/penguins/data/train.csv");
    std::fs::write(
        work.path().join("m.toml"),
        format!(
            "[pipeline]\nsteps = [\"scale\"]\n[data]\ntrain = {data:?}\nfeatures = [\"bill_length_mm\"]\n\
             [kernels.scale]\nregistry = \"standard-scaler@=1.0.0\"\nshadow = \"standard-scaler@^1\"\n"
        ),
    )
    .unwrap();
    let manifest = work.path().join("m.toml");
    let o = with_registry(r, &["lock", manifest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let lock = std::fs::read_to_string(work.path().join("kernel-host.lock")).unwrap();
    assert!(lock.contains("scale.shadow"), "{lock}");
    assert!(
        lock.contains("1.1.0"),
        "the shadow's newest match is pinned: {lock}"
    );
}

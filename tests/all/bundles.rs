//! Fitted bundles: fit and save in one process, predict in another without
//! refitting; every kind of damage is refused, naming what is wrong; a
//! killed writer leaves no bundle, or a whole one.

use crate::common::*;
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Fits the penguins pipeline into `dir/model.khb`.
pub fn fitted(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let bundle = dir.path().join("model.khb");
    let o = kernel_host(&[
        "fit",
        "examples/penguins/pipeline.toml",
        "--save",
        bundle.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    bundle
}

fn predict(bundle: &std::path::Path, out: &std::path::Path) -> Output {
    kernel_host(&[
        "predict",
        bundle.to_str().unwrap(),
        "--input",
        "examples/penguins/data/test.csv",
        "--output",
        out.to_str().unwrap(),
    ])
}

#[test]
fn a_bundle_predicts_like_the_run_without_refitting() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = fitted(&dir);
    let from_bundle = dir.path().join("b.csv");
    let o = predict(&bundle, &from_bundle);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("(no refit)") && text(&o).contains("accuracy: 1.0000"),
        "{}",
        text(&o)
    );
    let from_run = dir.path().join("r.csv");
    let o = kernel_host(&[
        "run",
        "examples/penguins/pipeline.toml",
        "-o",
        from_run.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(
        std::fs::read_to_string(from_bundle).unwrap(),
        std::fs::read_to_string(from_run).unwrap()
    );
}

/// The offset of the part called `name` (parts start after the index).
fn part_offset(bytes: &[u8], name: &str) -> usize {
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    let index: serde_json::Value = serde_json::from_slice(&bytes[16..16 + len]).unwrap();
    let part = index["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()
        .clone();
    16 + len + part["offset"].as_u64().unwrap() as usize
}

#[test]
fn damaged_bundles_are_refused_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = fitted(&dir);
    let good = std::fs::read(&bundle).unwrap();
    let out = dir.path().join("p.csv");
    let check = |bytes: &[u8], expected: &str| {
        let damaged = dir.path().join("damaged.khb");
        std::fs::write(&damaged, bytes).unwrap();
        let o = predict(&damaged, &out);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            text(&o).contains(expected),
            "expected `{expected}` in: {}",
            text(&o)
        );
        assert!(!out.exists(), "no predictions from a damaged bundle");
    };
    let mut tampered = good.clone();
    tampered[part_offset(&good, "state/model") + 3] ^= 0x40;
    check(&tampered, "part `state/model` is corrupted");
    let mut tampered = good.clone();
    tampered[part_offset(&good, "state/scale")] ^= 1;
    check(&tampered, "part `state/scale` is corrupted");
    check(&good[..good.len() - 100], "truncated");
    check(&good[..20], "truncated");
    let mut renamed = good.clone();
    let at = renamed
        .windows(10)
        .position(|w| w == b"\"penguins\"")
        .unwrap();
    renamed[at + 1] = b'P';
    check(&renamed, "the index is corrupted or was modified");
    check(
        b"just some text, certainly not a bundle",
        "not a kernel-host bundle",
    );
}

#[test]
fn a_killed_writer_leaves_no_bundle_or_a_whole_one() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("model.khb");
    for delay_ms in [0u64, 5, 20, 60, 150, 400] {
        let _ = std::fs::remove_file(&bundle);
        let mut child = kernel_host_command()
            .args([
                "fit",
                "examples/penguins/pipeline.toml",
                "--save",
                bundle.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        if bundle.exists() {
            kernel_host::bundle::Bundle::read(&bundle)
                .unwrap_or_else(|e| panic!("after {delay_ms} ms: {e}"));
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert!(
            leftovers
                .iter()
                .all(|n| n == "model.khb" || n.to_string_lossy().ends_with(".tmp")),
            "{leftovers:?}"
        );
    }
}

#[test]
fn run_takes_a_bundle_and_freeze_bakes_a_step_into_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = fitted(&dir);
    let out = dir.path().join("p.csv");
    let o = kernel_host(&[
        "run",
        bundle.to_str().unwrap(),
        "--input",
        "examples/penguins/data/test.csv",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(text(&o).contains("(no refit)"), "{}", text(&o));
    let o = kernel_host(&["run", bundle.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--input FILE"), "{}", text(&o));

    let frozen = dir.path().join("model.wasm");
    let o = kernel_host(&[
        "freeze",
        bundle.to_str().unwrap(),
        "--step",
        "model",
        "--out",
        frozen.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = kernel_host(&["inspect", frozen.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("frozen:       from logistic-regression@1.0.0"),
        "{}",
        text(&o)
    );
    let o = kernel_host(&[
        "freeze",
        bundle.to_str().unwrap(),
        "--step",
        "nope",
        "--out",
        "x",
    ]);
    assert!(
        text(&o).contains("has no step `nope`; its steps are: impute, encode, scale, model"),
        "{}",
        text(&o)
    );
}

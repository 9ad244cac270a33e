//! Replays the fuzzers' saved crashes (`fuzz/regressions/<target>/`) and
//! seeds (`fuzz/corpus/<target>/`) through the fuzz harnesses, on stable, so
//! a crash stays fixed without the fuzzer. The harnesses are the fuzz
//! crate's own source, included as a module.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../../../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut failed = Vec::new();
    for dir in ["regressions", "corpus"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files.into_iter().filter(|f| f.is_file()) {
            let bytes = std::fs::read(&file).unwrap();
            if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: these inputs panic:\n{}",
        failed.join("\n")
    );
}

#[test]
fn manifest() {
    replay("manifest", harness::manifest)
}
#[test]
fn csv() {
    replay("csv", harness::csv)
}
#[test]
fn arrow() {
    replay("arrow", harness::arrow)
}
#[test]
fn parquet() {
    replay("parquet", harness::parquet)
}
#[test]
fn frame() {
    replay("frame", harness::frame)
}
#[test]
fn bundle() {
    replay("bundle", harness::bundle)
}

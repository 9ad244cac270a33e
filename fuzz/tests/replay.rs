//! Replays every saved crash (`regressions/<target>/`) and every seed
//! (`corpus/<target>/`) through its harness, without libFuzzer, so a fixed
//! crash stays fixed on stable Rust:
//!
//!     cargo test --release --manifest-path fuzz/Cargo.toml
//!
//! `regressions/README.md` proposes the same test for the main suite.

use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failed = Vec::new();
    let mut count = 0;
    for dir in ["regressions", "corpus"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files.into_iter().filter(|f| f.is_file()) {
            if file.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let bytes = std::fs::read(&file).unwrap();
            count += 1;
            if std::panic::catch_unwind(|| harness(&bytes)).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {count} inputs panic:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn manifest() {
    replay("manifest", kernel_host_fuzz::manifest);
}

#[test]
fn csv() {
    replay("csv", kernel_host_fuzz::csv);
}

#[test]
fn arrow() {
    replay("arrow", kernel_host_fuzz::arrow);
}

#[test]
fn frame() {
    replay("frame", kernel_host_fuzz::frame);
}

#[test]
fn bundle() {
    replay("bundle", kernel_host_fuzz::bundle);
}

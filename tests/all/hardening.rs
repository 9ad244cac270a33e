//! The host's own work for a kernel counts against that kernel's limits;
//! bundles cannot grant themselves rights; outputs cannot be corrupted or
//! misdirected; nothing a kernel says can act on a terminal; limits never
//! wrap; kernels get a seeded random source. Each test is one class of
//! failure found by a hostile-input campaign.

use crate::common::*;
use kernel_host::{Fault, Grants, Limits};
use kernel_host_guests as guests;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

fn all_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A one-step manifest running `source` with `extra` lines in its kernel
/// table, on a tiny data file; returns its path.
fn manifest(dir: &Path, source: &str, extra: &str) -> PathBuf {
    std::fs::write(dir.join("d.csv"), "x\n1\n2\n3\n4\n").unwrap();
    let path = dir.join("m.toml");
    std::fs::write(
        &path,
        format!(
            "[pipeline]\nsteps = [\"villain\"]\n[data]\ntrain = \"d.csv\"\ntest = \"d.csv\"\n\
             [kernels.villain]\nsource = {source:?}\n{extra}\n"
        ),
    )
    .unwrap();
    path
}

fn hostile(dir: &Path, behaviour: &str, limits: &str) -> PathBuf {
    manifest(
        dir,
        guests::HOSTILE,
        &format!("params = {{ behaviour = \"{behaviour}\" }}\nlimits = {{ {limits} }}"),
    )
}

// 1. Limits cover everything the host does for a kernel.

#[test]
fn the_load_time_describe_runs_under_the_steps_limits() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        guests::STANDARD_SCALER,
        "limits = { fuel = 2000 }",
    );
    let o = kernel_host(&["run", m.to_str().unwrap()]);
    let err = all_text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    // Before, `describe` ran under the built-in 10^10 and the first call to
    // see the manifest's fuel was `configure`.
    assert!(
        err.contains("out of fuel") && !err.contains("`configure`"),
        "{err}"
    );
}

#[test]
fn validate_stays_within_the_manifests_limits() {
    let dir = tempfile::tempdir().unwrap();
    let m = hostile(
        dir.path(),
        "configure-loop",
        "timeout-ms = 300, fuel = 1_000_000_000_000_000",
    );
    let started = Instant::now();
    let o = kernel_host(&["validate", m.to_str().unwrap()]);
    let err = all_text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // The manifest's 300 ms, not validate's former 120 s.
    assert!(
        err.contains("failed in `configure`: timeout: still running after 300ms"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

async fn probe(behaviour: &str, target: &str, limits: Limits) -> kernel_host::KernelInstance {
    crate::tensors::probe(&sandbox(), behaviour, target, limits).await
}

#[tokio::test]
async fn host_tensor_work_counts_against_the_call_timeout() {
    let limits = Limits {
        timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let mut looping = probe("matmul-loop", "384", limits).await;
    let started = Instant::now();
    let (_, fault) = fault_of(
        looping
            .fit(&frame(vec![f64_column("a", vec![1.0])]), None)
            .await,
    );
    assert!(matches!(fault, Fault::Timeout { .. }), "{fault}");
    // Matmuls back to back never yield to the timer on their own: without
    // the deadline check this ran until the fuel ran out, minutes later.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn tensor_exchange_names_are_bounded() {
    let mut flood = probe("long-names", "", Limits::default()).await;
    let (_, fault) = fault_of(
        flood
            .fit(&frame(vec![f64_column("a", vec![1.0])]), None)
            .await,
    );
    assert!(
        fault.to_string().contains("names are at most 256 bytes"),
        "{fault}"
    );
}

async fn hostile_instance(behaviour: &str) -> kernel_host::KernelInstance {
    instance(
        &sandbox(),
        "villain",
        guests::HOSTILE,
        &[("behaviour", text(behaviour))],
    )
    .await
}

#[tokio::test]
async fn an_explanation_table_must_hold_the_rows_it_claims() {
    let mut liar = hostile_instance("explain-lie").await;
    let (_, fault) = fault_of(liar.explain().await);
    assert!(
        matches!(&fault, Fault::BadOutput(m) if m.contains("claims 4294967295 rows but has no columns")),
        "{fault}"
    );
}

#[tokio::test]
async fn a_repeated_name_among_a_hundred_thousand_columns_is_refused() {
    let mut wide = hostile_instance("wide").await;
    let (_, fault) = fault_of(
        wide.transform(&frame(vec![f64_column("x", vec![1.0])]))
            .await,
    );
    assert!(
        matches!(&fault, Fault::BadOutput(m) if m.contains("column name `c0` appears twice")),
        "{fault}"
    );
}

// 2. Unbounded reads.

#[test]
fn devices_are_refused_as_inputs_naming_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), "/dev/zero", "");
    let o = kernel_host(&["run", m.to_str().unwrap()]);
    let err = all_text(&o);
    assert_ne!(o.status.code(), Some(0));
    assert!(err.contains("/dev/zero is a character device"), "{err}");
    let o = kernel_host(&["validate", "/dev/zero"]);
    assert!(
        all_text(&o).contains("is a character device"),
        "{}",
        all_text(&o)
    );
    let o = kernel_host(&[
        "predict",
        "/dev/zero",
        "--input",
        "/dev/zero",
        "-o",
        "p.csv",
    ]);
    assert!(
        all_text(&o).contains("is a character device"),
        "{}",
        all_text(&o)
    );
}

// 3. Bundles carry no rights of their own.

/// Rewrites a bundle's index with `edit` and recomputes the length and the
/// trailer, as someone editing a bundle would.
fn edit_bundle(bundle: &Path, out: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    use sha2::Digest as _;
    let bytes = std::fs::read(bundle).unwrap();
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    let mut index: serde_json::Value = serde_json::from_slice(&bytes[16..16 + len]).unwrap();
    edit(&mut index);
    let index = serde_json::to_vec(&index).unwrap();
    let mut edited = bytes[..8].to_vec();
    edited.extend_from_slice(&(index.len() as u64).to_le_bytes());
    edited.extend_from_slice(&index);
    edited.extend_from_slice(&bytes[16 + len..bytes.len() - 32]);
    let trailer = sha2::Sha256::digest(&edited);
    edited.extend_from_slice(&trailer);
    std::fs::write(out, edited).unwrap();
}

fn predict(bundle: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "predict",
        bundle.to_str().unwrap(),
        "--input",
        "examples/penguins/data/test.csv",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    kernel_host(&args)
}

#[test]
fn a_bundle_cannot_grant_itself_rights() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = crate::bundles::fitted(&dir);
    let out = dir.path().join("p.csv");
    let granted = dir.path().join("granted.khb");
    edit_bundle(&bundle, &granted, |index| {
        let step = &mut index["plan"]["steps"][3];
        step["grants"]["read-dirs"] = serde_json::json!({ "/host": "/" });
        step["limits"]["fuel"] = serde_json::json!(u64::MAX);
    });
    let o = predict(&granted, &out, &[]);
    let err = all_text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("asks for rights")
            && err.contains("read /host (host directory /)")
            && err.contains("--trust-bundle"),
        "{err}"
    );
    assert!(!out.exists());
    // The user's own manifest supplies the rights: none beyond the defaults.
    let o = predict(
        &granted,
        &out,
        &["--rights-from", "examples/penguins/pipeline.toml"],
    );
    assert!(o.status.success(), "{}", all_text(&o));
    // Or the user confirms what the bundle asks for.
    let o = predict(&granted, &out, &["--trust-bundle"]);
    assert!(o.status.success(), "{}", all_text(&o));
    // Limits no sandbox can enforce are refused even when trusted.
    let forever = dir.path().join("forever.khb");
    edit_bundle(&bundle, &forever, |index| {
        index["plan"]["steps"][0]["limits"]["timeout-ms"] = serde_json::json!(u64::MAX);
    });
    let o = predict(&forever, &out, &["--trust-bundle"]);
    assert!(
        all_text(&o).contains("timeout-ms must be between 1 and"),
        "{}",
        all_text(&o)
    );
}

// 4. Outputs cannot be corrupted or misdirected.

#[test]
fn an_output_whose_type_changes_between_chunks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = hostile(dir.path(), "drift", "");
    for output in ["out.arrow", "out.csv"] {
        let out = dir.path().join(output);
        let o = kernel_host(&[
            "run",
            m.to_str().unwrap(),
            "--chunk-rows",
            "2",
            "-o",
            out.to_str().unwrap(),
        ]);
        let err = all_text(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains("kernel `villain`")
                && err.contains(
                    "changed between batches at row 3: column `y` was f64 and is now string"
                ),
            "{err}"
        );
        assert!(!out.exists(), "no corrupt {output}");
    }
}

#[test]
fn outputs_never_replace_devices_or_inputs_and_stale_temporaries_go() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path(), guests::STANDARD_SCALER, "");
    let o = kernel_host(&["run", m.to_str().unwrap(), "-o", "/dev/null"]);
    assert_eq!(o.status.code(), Some(1), "{}", all_text(&o));
    assert!(
        all_text(&o).contains("/dev/null is a character device"),
        "{}",
        all_text(&o)
    );
    let data = dir.path().join("d.csv");
    let before = std::fs::read(&data).unwrap();
    let o = kernel_host(&["run", m.to_str().unwrap(), "-o", data.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", all_text(&o));
    assert!(
        all_text(&o).contains("is also an input of this job"),
        "{}",
        all_text(&o)
    );
    assert_eq!(std::fs::read(&data).unwrap(), before, "the input is intact");
    // A temporary file of a killed writer (no such process) is removed.
    let stale = dir.path().join(".out.csv.4000000.0.tmp");
    let stale_chunked = dir.path().join(".out.csv.4000001.0.partial");
    std::fs::write(&stale, "half").unwrap();
    std::fs::write(&stale_chunked, "half").unwrap();
    let out = dir.path().join("out.csv");
    let o = kernel_host(&["run", m.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", all_text(&o));
    assert!(out.exists() && !stale.exists() && !stale_chunked.exists());
}

// 5. Limits never wrap.

#[test]
fn huge_sizes_in_a_manifest_are_refused_not_wrapped() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(
        dir.path(),
        guests::STANDARD_SCALER,
        "limits = { memory-mib = 17592186044417 }",
    );
    let err = kernel_host::Plan::load(&m).unwrap_err().to_string();
    assert!(
        err.contains("memory-mib must be between 1 and 4096"),
        "{err}"
    );
    let text = std::fs::read_to_string(&m)
        .unwrap()
        .replace("limits = { memory-mib = 17592186044417 }", "")
        .replace(
            "test = \"d.csv\"",
            "test = \"d.csv\"\nmemory-budget-mib = 17592186044416",
        );
    std::fs::write(&m, text).unwrap();
    let err = kernel_host::Plan::load(&m).unwrap_err().to_string();
    assert!(
        err.contains("data.memory-budget-mib") && err.contains("more bytes than"),
        "{err}"
    );
}

// 6. Nothing a kernel says acts on a terminal.

#[test]
fn kernel_strings_reach_the_terminal_escaped() {
    let o = kernel_host(&["inspect", guests::HOSTILE]);
    let out = all_text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("\\u{1b}[2J\\u{7}\\u{202e}"), "{out}");
    assert!(!out.contains('\x1b') && !out.contains('\u{202e}'), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let m = hostile(dir.path(), "escape", "");
    let o = kernel_host(&["run", m.to_str().unwrap()]);
    let err = all_text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\\u{1b}[2J\\u{1b}[Hall clear\\nerror: forged line"),
        "{err}"
    );
    assert!(
        !err.contains('\x1b') && !err.contains("\nerror: forged"),
        "{err}"
    );
}

// 8. Determinism: a seeded random source unless entropy is granted.

async fn draw(grants: Grants) -> f64 {
    let mut kernel = instance_with(
        &sandbox(),
        "dice",
        guests::HOSTILE,
        &[("behaviour", text("random"))],
        Limits::default(),
        grants,
    )
    .await;
    let out = kernel
        .transform(&frame(vec![f64_column("x", vec![1.0])]))
        .await
        .unwrap();
    f64s(&out.columns[0])[0]
}

#[tokio::test]
async fn kernels_draw_from_a_seeded_random_source_unless_granted_entropy() {
    let seeded = |seed| Grants {
        seed: Some(seed),
        ..Grants::default()
    };
    assert_eq!(draw(seeded(7)).await, draw(seeded(7)).await);
    assert_ne!(draw(seeded(7)).await, draw(seeded(8)).await);
    let entropy = || Grants {
        entropy: true,
        ..Grants::default()
    };
    assert_ne!(draw(entropy()).await, draw(entropy()).await);
    // A plan gives every step its own stream, the same on every load.
    let penguins = workspace().join("examples/penguins/pipeline.toml");
    let plan = kernel_host::Plan::load(&penguins).unwrap();
    let seeds: Vec<_> = plan.steps.iter().map(|s| s.grants.seed).collect();
    assert!(seeds.iter().all(Option::is_some), "{seeds:?}");
    assert_ne!(seeds[0], seeds[1]);
    let again = kernel_host::Plan::load(&penguins).unwrap();
    assert_eq!(
        seeds,
        again
            .steps
            .iter()
            .map(|s| s.grants.seed)
            .collect::<Vec<_>>()
    );
}

#[test]
fn writers_of_one_path_in_one_process_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let frame = frame(vec![f64_column("a", vec![1.0, 2.0])]);
    // Two writers open at once (tasks of one process): each has its own
    // temporary file, and the last to finish wins whole.
    let mut first = kernel_host::data::TableWriter::create(&out).unwrap();
    let mut second = kernel_host::data::TableWriter::create(&out).unwrap();
    first.write(&frame).unwrap();
    second.write(&frame).unwrap();
    first.finish().unwrap();
    second.finish().unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "a\n1\n2\n");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

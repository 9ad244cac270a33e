//! One plan, one job: every command goes through the same driver, takes a
//! manifest or a bundle the same way, and shares the data and telemetry
//! flags.

use crate::common::kernel_host;
use std::path::Path;
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const MANIFEST: &str = "examples/penguins/pipeline.toml";
const TEST: &str = "examples/penguins/data/test.csv";

#[test]
fn run_equals_fit_save_then_predict_whole_and_chunked() {
    let dir = tempfile::tempdir().unwrap();
    for chunk in [None, Some("40")] {
        let chunk_args: Vec<&str> = chunk.map(|n| vec!["--chunk-rows", n]).unwrap_or_default();
        let ran = dir.path().join(format!("run{chunk:?}.csv"));
        let o = kernel_host(&[&["run", MANIFEST, "-o", s(&ran)], &chunk_args[..]].concat());
        assert!(o.status.success(), "{}", text(&o));
        let bundle = dir.path().join(format!("m{chunk:?}.khb"));
        let o = kernel_host(&[&["fit", MANIFEST, "--save", s(&bundle)], &chunk_args[..]].concat());
        assert!(o.status.success(), "{}", text(&o));
        if chunk.is_some() {
            assert!(
                text(&o).contains("partial-fit (40 rows a chunk)"),
                "{}",
                text(&o)
            );
        }
        let predicted = dir.path().join(format!("predict{chunk:?}.csv"));
        let o = kernel_host(
            &[
                &["predict", s(&bundle), "--input", TEST, "-o", s(&predicted)],
                &chunk_args[..],
            ]
            .concat(),
        );
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("no refit"), "{}", text(&o));
        let (a, b) = (
            std::fs::read(&ran).unwrap(),
            std::fs::read(&predicted).unwrap(),
        );
        assert!(!a.is_empty());
        assert_eq!(a, b, "run and fit --save + predict differ ({chunk:?})");
    }
}

#[test]
fn every_command_takes_a_manifest_or_a_bundle_or_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("m.khb");
    let o = kernel_host(&["fit", MANIFEST, "--save", s(&bundle)]);
    assert!(o.status.success(), "{}", text(&o));
    let out = dir.path().join("p.csv");
    for source in [MANIFEST, s(&bundle)] {
        for args in [
            vec!["explain", source],
            vec!["explain", source, "--json"],
            vec!["validate", source],
            vec!["validate", source, "--json"],
            vec!["predict", source, "--input", TEST, "-o", s(&out)],
            vec!["run", source, "--input", TEST, "-o", s(&out)],
        ] {
            let o = kernel_host(&args);
            assert!(o.status.success(), "{args:?}: {}", text(&o));
        }
    }
    // Flags that cannot apply are refused with the reason, exit 1.
    for (args, reason) in [
        (
            vec!["run", s(&bundle), "--train", TEST, "--input", TEST],
            "not refitted",
        ),
        (vec!["fit", s(&bundle), "--save", s(&out)], "already fitted"),
        (
            vec!["validate", s(&bundle), "--sample", "5"],
            "already fitted",
        ),
        (
            vec!["explain", MANIFEST, "--input", TEST],
            "predicts nothing",
        ),
        (vec!["predict", s(&bundle), "-o", s(&out)], "--input FILE"),
    ] {
        let o = kernel_host(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(reason), "{args:?}: {}", text(&o));
    }
}

#[test]
fn telemetry_flags_work_on_every_command_that_runs_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("m.khb");
    let out = dir.path().join("p.csv");
    let commands: Vec<Vec<String>> = vec![
        vec!["run".into(), MANIFEST.into(), "-o".into(), s(&out).into()],
        vec![
            "fit".into(),
            MANIFEST.into(),
            "--save".into(),
            s(&bundle).into(),
        ],
        vec![
            "predict".into(),
            s(&bundle).into(),
            "--input".into(),
            TEST.into(),
            "-o".into(),
            s(&out).into(),
        ],
        vec!["explain".into(), s(&bundle).into()],
    ];
    for (i, args) in commands.iter().enumerate() {
        let report = dir.path().join(format!("r{i}.json"));
        let metrics = dir.path().join(format!("m{i}.prom"));
        let audit = dir.path().join(format!("a{i}.jsonl"));
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend([
            "--report",
            s(&report),
            "--metrics-file",
            s(&metrics),
            "--audit-log",
            s(&audit),
        ]);
        let o = kernel_host(&all);
        assert!(o.status.success(), "{all:?}: {}", text(&o));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(json["outcome"], "ok", "{json}");
        for key in ["kernel_host", "contract", "device", "timestamp"] {
            assert!(json[key].is_string(), "{args:?}: no `{key}` in {json}");
        }
        assert_eq!(json["contract"], kernel_host::bindings::WIT_VERSION);
        let prom = std::fs::read_to_string(&metrics).unwrap();
        assert!(prom.contains("kernel_host_calls_total"), "{args:?}: {prom}");
        let lines = std::fs::read_to_string(&audit).unwrap();
        assert!(lines.lines().count() > 3, "{args:?}: {lines}");
    }
    // A failed command still writes its report, saying whose fault it was.
    let report = dir.path().join("failed.json");
    let o = kernel_host(&[
        "predict",
        s(&bundle),
        "--input",
        "examples/penguins/data/SOURCE.md",
        "-o",
        s(&out),
        "--report",
        s(&report),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["outcome"], "failed", "{json}");
    assert_eq!(json["blame"], "user", "{json}");
    assert_eq!(json["exit_code"], 1, "{json}");
}

#[test]
fn version_names_the_contract() {
    let o = kernel_host(&["--version"]);
    assert!(
        text(&o).contains(&format!(
            "kernel-host:kernel@{}",
            kernel_host::bindings::WIT_VERSION
        )),
        "{}",
        text(&o)
    );
    let o = kernel_host(&["completions", "bash"]);
    assert!(
        o.status.success() && text(&o).contains("kernel-host"),
        "{}",
        text(&o)
    );
}

#[test]
fn stream_serves_a_bundle_without_refitting_and_refuses_what_cannot_apply() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("m.khb");
    let o = kernel_host(&["fit", MANIFEST, "--save", s(&bundle)]);
    assert!(o.status.success(), "{}", text(&o));
    let rows = kernel_host::data::read_table(
        Path::new(&crate::common::workspace().join(TEST)),
        &Default::default(),
    )
    .unwrap();
    let arrows = dir.path().join("in.arrows");
    kernel_host::data::write_table(&arrows, &rows).unwrap();
    let input = std::fs::read(&arrows).unwrap();
    let serve = |extra: &[&str]| crate::common::stream(&[&[s(&bundle)], extra].concat(), &input);
    let (code, stdout, stderr) = serve(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(stdout), None).unwrap();
    let answered: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(answered, rows.rows as usize);
    // A flag that does not apply is the caller's mistake: 65, not retried.
    let (code, _, stderr) = serve(&["--input", TEST]);
    assert_eq!(code, Some(65), "{stderr}");
    assert!(stderr.contains("stdin"), "{stderr}");
}

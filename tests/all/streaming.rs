//! Chunked runs, formats and the `stream` contract: partial fits are
//! chunk-invariant through the sandbox, chunked runs equal whole runs,
//! kernels that cannot fit in chunks stop at the memory budget, bad CSV and
//! Arrow input is located, Arrow works in and out, and `kernel-host stream`
//! keeps its exit codes.

use crate::common::*;
use kernel_host::bindings::{Frame, ParamValue};
use kernel_host::data::generate::{Task, generate};
use kernel_host::data::{CsvOptions, read_table, write_table};
use kernel_host::{Error, Plan};
use kernel_host_guests as guests;

fn generated(dir: &tempfile::TempDir, name: &str, rows: u64, seed: u64) -> std::path::PathBuf {
    let path = dir.path().join(name);
    generate(&path, rows, seed, Task::Classification, |_| {}).unwrap();
    path
}

fn rows(frame: &Frame, range: std::ops::Range<usize>) -> Frame {
    frame.take_rows(&range.collect::<Vec<_>>())
}

/// Every kernel with partial fit, through the sandbox: chunks of 1, 7,
/// 1000 and the whole input leave the same state (the scaler's merged
/// statistics may differ in the last bits, so its transform is compared
/// within 1e-12).
#[tokio::test]
async fn partial_fit_is_chunk_invariant_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let data = read_table(&generated(&dir, "d.csv", 2000, 3), &CsvOptions::default()).unwrap();
    let mut x = data.clone();
    let y = x.take_column("label").unwrap();
    let numeric = Frame {
        rows: x.rows,
        columns: x
            .columns
            .iter()
            .filter(|c| c.name.starts_with('x'))
            .cloned()
            .collect(),
    };
    let sandbox = sandbox();
    let mut imputer = instance(&sandbox, "i", guests::SIMPLE_IMPUTER, &[]).await;
    imputer.fit(&numeric, None).await.unwrap();
    let complete = imputer.transform(&numeric).await.unwrap();
    let strings = Frame {
        rows: x.rows,
        columns: vec![
            x.column("colour").unwrap().clone(),
            x.column("region").unwrap().clone(),
        ],
    };
    imputer.fit(&strings, None).await.unwrap();
    let strings = imputer.transform(&strings).await.unwrap();
    // (what, kernel, params, input, whether it takes the target)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, ParamValue)>, Frame, bool);
    let cases: Vec<Case> = vec![
        (
            "imputer mean",
            guests::SIMPLE_IMPUTER,
            vec![],
            x.clone(),
            false,
        ),
        (
            "imputer mode",
            guests::SIMPLE_IMPUTER,
            vec![("strategy", text("most_frequent"))],
            x.clone(),
            false,
        ),
        ("one-hot", guests::ONE_HOT_ENCODER, vec![], strings, false),
        (
            "sgd",
            guests::SGD_CLASSIFIER,
            vec![],
            complete.clone(),
            true,
        ),
        (
            "k-means",
            guests::K_MEANS,
            vec![
                ("k", ParamValue::S64(3)),
                ("init_size", ParamValue::S64(300)),
            ],
            complete.clone(),
            false,
        ),
    ];
    for (what, kernel, params, input, supervised) in cases {
        let mut states = Vec::new();
        for size in [1usize, 7, 1000, 2000] {
            let mut k = instance(&sandbox, what, kernel, &params).await;
            for start in (0..2000).step_by(size) {
                let range = start..(start + size).min(2000);
                let target = supervised.then(|| {
                    rows(
                        &Frame {
                            rows: 2000,
                            columns: vec![y.clone()],
                        },
                        range.clone(),
                    )
                    .columns
                    .pop()
                    .unwrap()
                });
                k.partial_fit(&rows(&input, range), target.as_ref())
                    .await
                    .unwrap();
            }
            states.push(k.save_state().await.unwrap());
        }
        assert!(
            states.windows(2).all(|w| w[0] == w[1]),
            "{what}: the state depends on the chunk size"
        );
    }
    let mut outputs = Vec::new();
    for size in [1usize, 7, 1000, 2000] {
        let mut scaler = instance(&sandbox, "s", guests::STANDARD_SCALER, &[]).await;
        for start in (0..2000).step_by(size) {
            scaler
                .partial_fit(&rows(&complete, start..(start + size).min(2000)), None)
                .await
                .unwrap();
        }
        outputs.push(scaler.transform(&complete).await.unwrap());
    }
    for out in &outputs[1..] {
        for (a, b) in out.columns.iter().zip(&outputs[0].columns) {
            for (u, v) in f64s(a).iter().zip(f64s(b)) {
                assert!(
                    (u - v).abs() <= 1e-12 * v.abs().max(1.0),
                    "scaler: {u} vs {v}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_run_equals_the_whole_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = workspace().join("examples/penguins/pipeline.toml");
    let predict = async |chunk: Option<usize>| {
        let mut m = Plan::load(&path).unwrap();
        let out = dir.path().join(format!("p{chunk:?}.csv"));
        m.output.predictions = Some(out.clone());
        let report = match chunk {
            Some(n) => crate::common::run_chunked(&sandbox(), m, n).await.unwrap(),
            None => crate::common::run(&sandbox(), m).await.unwrap(),
        };
        (report, read_table(&out, &CsvOptions::default()).unwrap())
    };
    let (whole_report, whole) = predict(None).await;
    for n in [1, 7, 1000] {
        let (report, chunked) = predict(Some(n)).await;
        assert_eq!((report.train_rows, report.test_rows), (258, 86));
        assert_eq!(report.metric, whole_report.metric, "chunks of {n}");
        assert_eq!(
            chunked.column("prediction"),
            whole.column("prediction"),
            "chunks of {n}"
        );
        for class in ["Adelie", "Chinstrap", "Gentoo"] {
            let name = format!("proba_{class}");
            for (a, b) in f64s(chunked.column(&name).unwrap())
                .iter()
                .zip(f64s(whole.column(&name).unwrap()))
            {
                // Only the scaler's merged statistics differ, in the last bits.
                assert!((a - b).abs() < 1e-12, "chunks of {n}: {a} vs {b}");
            }
        }
    }
}

/// A chunked fit parses its training file once: the later passes (one per
/// wave: four for impute -> one-hot -> scale -> model) read the chunks the
/// first pass spilled. Proved by removing the file as soon as the first
/// pass is over: the run still succeeds, with the same predictions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_fit_reads_its_input_once() {
    use kernel_host::job::{JobOptions, Progress, Source, run};
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    /// Records every pass, and removes the training file after the first.
    struct RemovesTheInput {
        train: PathBuf,
        passes: Mutex<Vec<PathBuf>>,
    }
    impl Progress for RemovesTheInput {
        fn start(&self, _pass: &str, file: &Path, _bytes: u64) {
            self.passes.lock().unwrap().push(file.to_path_buf());
        }
        fn update(&self, _bytes: u64, _rows: u64) {}
        fn finish(&self) {
            let _ = std::fs::remove_file(&self.train);
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let penguins = workspace().join("examples/penguins");
    let train = dir.path().join("train.csv");
    std::fs::copy(penguins.join("data/train.csv"), &train).unwrap();
    let plan = |train: &Path, out: &str| {
        let mut plan = Plan::load(&penguins.join("pipeline.toml")).unwrap();
        plan.data.source = kernel_host::manifest::DataSource::Files {
            train: train.to_path_buf(),
            test: Some(penguins.join("data/test.csv")),
        };
        plan.data.chunk_rows = Some(25);
        plan.output.predictions = Some(dir.path().join(out));
        plan
    };
    let reference = crate::common::run(&sandbox(), plan(&penguins.join("data/train.csv"), "a.csv"))
        .await
        .unwrap();
    let progress = RemovesTheInput {
        train: train.clone(),
        passes: Mutex::new(Vec::new()),
    };
    let options = JobOptions {
        predict: true,
        ..Default::default()
    };
    let report = run(
        &sandbox(),
        Source::Plan(plan(&train, "b.csv")),
        &options,
        &progress,
    )
    .await
    .unwrap();
    assert!(!train.exists());
    let passes = progress.passes.into_inner().unwrap();
    // Four fit passes, then the test file's.
    assert!(passes.len() >= 4, "{passes:?}");
    assert_eq!(passes[0], train);
    assert!(passes[1..4].iter().all(|p| p != &train), "{passes:?}");
    assert_eq!(report.metric, reference.metric);
    assert_eq!(report.train_rows, 258);
    let read = |name: &str| read_table(&dir.path().join(name), &CsvOptions::default()).unwrap();
    assert_eq!(read("a.csv"), read("b.csv"));
    // The spill is gone with the fit.
    for pass in &passes[1..4] {
        assert!(!pass.exists(), "{} left behind", pass.display());
    }
}

#[tokio::test]
async fn a_kernel_without_partial_fit_stops_at_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    generated(&dir, "train.csv", 60_000, 1);
    let text = format!(
        "[pipeline]\nsteps = [\"impute\", \"model\"]\n[data]\ntrain = \"train.csv\"\ntarget = \"label\"\nfeatures = [\"x1\", \"x2\", \"x3\", \"x4\", \"x5\", \"x6\"]\nmemory-budget-mib = 1\n\
         [kernels.impute]\nsource = {:?}\n[kernels.model]\nsource = {:?}\n",
        guests::SIMPLE_IMPUTER,
        guests::LOGISTIC_REGRESSION
    );
    std::fs::write(dir.path().join("m.toml"), text).unwrap();
    let manifest = Plan::load(&dir.path().join("m.toml")).unwrap();
    let error = crate::common::run_chunked(&sandbox(), manifest, 4096)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, Error::Manifest(_)) && error.exit_code() == 1,
        "{message}"
    );
    assert!(
        message.contains("`data.memory-budget-mib`: step `model` (logistic-regression@1.0.0) cannot fit in chunks, and its input passed the memory budget of 1 MiB"),
        "{message}"
    );
}

#[tokio::test]
async fn bad_cells_and_broken_arrow_files_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let csv = generated(&dir, "train.csv", 20_000, 2);
    // Corrupt a cell far past the rows used to infer the types.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut cells: Vec<String> = lines[15_000].split(',').map(String::from).collect();
    cells[2] = "n/a?".into();
    lines[15_000] = cells.join(",");
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let mut chunks = kernel_host::data::Chunks::open(&csv, &CsvOptions::default()).unwrap();
    let error = loop {
        match chunks.next_chunk(4096) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the bad cell was not noticed"),
            Err(e) => break e,
        }
    };
    assert_eq!(
        (error.row, error.column.as_deref()),
        (Some(15_000), Some("x3"))
    );
    assert!(
        error
            .to_string()
            .contains("cannot read \"n/a?\" as f64; declare the column's type"),
        "{error}"
    );

    let arrow = dir.path().join("t.arrow");
    generate(&arrow, 1000, 0, Task::Classification, |_| {}).unwrap();
    let bytes = std::fs::read(&arrow).unwrap();
    std::fs::write(&arrow, &bytes[..bytes.len() / 2]).unwrap();
    let error = read_table(&arrow, &CsvOptions::default()).unwrap_err();
    assert!(
        error.to_string().contains("t.arrow") && error.to_string().contains("Arrow"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_files_work_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["train", "test"] {
        let frame = read_table(
            &workspace().join(format!("examples/penguins/data/{name}.csv")),
            &CsvOptions::default(),
        )
        .unwrap();
        write_table(&dir.path().join(format!("{name}.arrow")), &frame).unwrap();
    }
    let original =
        std::fs::read_to_string(workspace().join("examples/penguins/pipeline.toml")).unwrap();
    let kernels = workspace().join("target/guests/wasm32-wasip2/release");
    let text = original
        .replace("data/train.csv", "train.arrow")
        .replace("data/test.csv", "test.arrow")
        .replace("out/predictions.csv", "predictions.arrow")
        .replace(
            "../../target/guests/wasm32-wasip2/release",
            kernels.to_str().unwrap(),
        );
    std::fs::write(dir.path().join("m.toml"), text).unwrap();
    let report = crate::common::run(&sandbox(), Plan::load(&dir.path().join("m.toml")).unwrap())
        .await
        .unwrap();
    assert_eq!(report.metric.unwrap().1, 1.0);
    let predictions = read_table(
        &dir.path().join("predictions.arrow"),
        &CsvOptions::default(),
    )
    .unwrap();
    assert_eq!(predictions.rows, 86);
    assert_eq!(
        predictions.column_names()[..2],
        ["species_true", "prediction"]
    );
}

/// Parquet in and out. Files pandas wrote (snappy; `island` and `sex` as
/// categories, i.e. dictionary-encoded; `species` as large strings;
/// tests/fixtures/parquet/make.py) predict bit for bit what the CSV predicts,
/// whole and in chunks, and predictions written as Parquet read back equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_files_work_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = workspace().join("tests/fixtures/parquet");
    let original =
        std::fs::read_to_string(workspace().join("examples/penguins/pipeline.toml")).unwrap();
    let kernels = workspace().join("target/guests/wasm32-wasip2/release");
    let manifest = |train: &str, test: &str, out: &str| {
        let text = original
            .replace("data/train.csv", train)
            .replace("data/test.csv", test)
            .replace("out/predictions.csv", out)
            .replace(
                "../../target/guests/wasm32-wasip2/release",
                kernels.to_str().unwrap(),
            );
        let path = dir.path().join(format!("{out}.toml"));
        std::fs::write(&path, text).unwrap();
        Plan::load(&path).unwrap()
    };
    let csv = |name: &str| workspace().join(format!("examples/penguins/data/{name}.csv"));
    let pandas = |name: &str| fixtures.join(format!("penguins-{name}.snappy.parquet"));
    let as_text = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    for chunk in [None, Some(50)] {
        let run = async |plan: Plan| match chunk {
            Some(n) => crate::common::run_chunked(&sandbox(), plan, n)
                .await
                .unwrap(),
            None => crate::common::run(&sandbox(), plan).await.unwrap(),
        };
        let from_csv = run(manifest(
            &as_text(csv("train")),
            &as_text(csv("test")),
            "p-csv.csv",
        ))
        .await;
        let from_parquet = run(manifest(
            &as_text(pandas("train")),
            &as_text(pandas("test")),
            "p.parquet",
        ))
        .await;
        assert_eq!(from_parquet.metric, from_csv.metric, "chunks {chunk:?}");
        let a = read_table(&dir.path().join("p-csv.csv"), &CsvOptions::default()).unwrap();
        let b = read_table(&dir.path().join("p.parquet"), &CsvOptions::default()).unwrap();
        assert_eq!(b.rows, 86);
        assert_eq!(a.column_names(), b.column_names());
        assert_eq!(a.column("prediction"), b.column("prediction"));
        for class in ["Adelie", "Chinstrap", "Gentoo"] {
            let name = format!("proba_{class}");
            let bits = |f: &Frame| -> Vec<u64> {
                f64s(f.column(&name).unwrap())
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            // CSV text round-trips f64 exactly (shortest representation).
            assert_eq!(bits(&a), bits(&b), "{name}, chunks {chunk:?}");
        }
    }
    // The pandas file reads as the CSV does, column for column, though it
    // stores categories and large strings.
    let from_pandas = read_table(&pandas("train"), &CsvOptions::default()).unwrap();
    let from_csv = read_table(&csv("train"), &CsvOptions::default()).unwrap();
    assert_eq!(from_pandas.schema(), from_csv.schema());
    for (p, c) in from_pandas.columns.iter().zip(&from_csv.columns) {
        assert_eq!(p.nulls, c.nulls, "{}", p.name);
    }
    // What we write reads back; a damaged file is refused by name.
    let ours = dir.path().join("ours.parquet");
    write_table(&ours, &from_csv).unwrap();
    let back = read_table(&ours, &CsvOptions::default()).unwrap();
    assert_eq!(back.schema(), from_csv.schema());
    assert_eq!(back.column("island"), from_csv.column("island"));
    let bytes = std::fs::read(&ours).unwrap();
    std::fs::write(&ours, &bytes[..bytes.len() / 2]).unwrap();
    let error = read_table(&ours, &CsvOptions::default()).unwrap_err();
    assert!(
        error.to_string().contains("ours.parquet") && error.to_string().contains("Parquet"),
        "{error}"
    );
}

fn stream(manifest: &std::path::Path, input: &[u8]) -> (Option<i32>, Vec<u8>, String) {
    crate::common::stream(&[manifest.to_str().unwrap()], input)
}

fn stream_manifest(dir: &tempfile::TempDir, model: &str, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "[pipeline]\nsteps = [\"impute\", \"encode\", \"model\"]\n[data]\ntrain = \"train.csv\"\ntarget = \"label\"\n[output]\nprobabilities = true\n\
         [kernels.impute]\nsource = {:?}\n[kernels.encode]\nsource = {:?}\n[kernels.model]\nsource = {model:?}\n{extra}\n",
        guests::SIMPLE_IMPUTER,
        guests::ONE_HOT_ENCODER
    );
    let path = dir.path().join(format!("m{}.toml", text.len()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_stream_contract() {
    let dir = tempfile::tempdir().unwrap();
    generated(&dir, "train.csv", 3000, 7);
    let input = generated(&dir, "in.arrows", 150_000, 8);
    let bytes = std::fs::read(&input).unwrap();
    let ok = stream_manifest(&dir, guests::SGD_CLASSIFIER, "");

    // One output batch per input batch (the generator writes 65 536 rows a batch).
    let (code, stdout, stderr) = stream(&ok, &bytes);
    assert_eq!(code, Some(0), "{stderr}");
    let reader =
        arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(stdout), None).unwrap();
    let sizes: Vec<usize> = reader.map(|b| b.unwrap().num_rows()).collect();
    assert_eq!(sizes, [65_536, 65_536, 18_928]);

    // 65: not Arrow, or a missing feature column.
    assert_eq!(stream(&ok, b"definitely not arrow").0, Some(65));
    let frame = read_table(&input, &CsvOptions::default()).unwrap();
    let mut missing = frame.take_rows(&(0..10).collect::<Vec<_>>());
    missing.take_column("x2");
    let partial = dir.path().join("missing.arrows");
    write_table(&partial, &missing).unwrap();
    let (code, _, stderr) = stream(&ok, &std::fs::read(&partial).unwrap());
    assert_eq!(code, Some(65), "{stderr}");
    assert!(stderr.contains("x2"), "{stderr}");

    // 70: a kernel fault; 75: a timeout, safe to retry.
    let faulty = stream_manifest(
        &dir,
        guests::HOSTILE,
        "params = { behaviour = \"transform-panic\" }",
    );
    let (code, _, stderr) = stream(&faulty, &bytes);
    assert_eq!(code, Some(70), "{stderr}");
    let slow = stream_manifest(
        &dir,
        guests::HOSTILE,
        "params = { behaviour = \"transform-loop\" }\nlimits = { timeout-ms = 200, fuel = 1_000_000_000_000_000 }",
    );
    let (code, _, stderr) = stream(&slow, &bytes);
    assert_eq!(code, Some(75), "{stderr}");
}

#[test]
fn the_generator_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let a = generated(&dir, "a.csv", 5000, 42);
    let b = generated(&dir, "b.csv", 5000, 42);
    let c = generated(&dir, "c.csv", 5000, 43);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    let frame = read_table(&a, &CsvOptions::default()).unwrap();
    assert_eq!(frame.rows, 5000);
    assert_eq!(
        frame.column_names(),
        [
            "x1", "x2", "x3", "x4", "x5", "x6", "count", "colour", "region", "label"
        ]
    );
    assert!(
        frame.column("x1").unwrap().nulls.is_some(),
        "numeric columns have gaps"
    );
}

/// Giving memory back after every step (threshold 0: every instance, every
/// pass) changes no prediction, bit for bit: the penguins pipeline and a
/// generated data set with holes and strings through impute -> one-hot ->
/// scale -> logistic regression, whole and in chunks, with frames copied
/// into the kernels and by reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_memory_back_changes_no_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let synthetic = {
        let mut plan = Plan::load(&workspace().join("examples/synthetic/pipeline.toml")).unwrap();
        plan.data.source = kernel_host::manifest::DataSource::Files {
            train: generated(&dir, "train.csv", 3000, 5),
            test: Some(generated(&dir, "test.csv", 600, 6)),
        };
        plan
    };
    let penguins = Plan::load(&workspace().join("examples/penguins/pipeline.toml")).unwrap();
    for (name, plan) in [("penguins", penguins), ("synthetic", synthetic)] {
        for by_reference in [false, true] {
            for chunk in [None, Some(100)] {
                let mut outputs = Vec::new();
                for give_back in [None, Some(0)] {
                    let sandbox = kernel_host::Sandbox::builder()
                        .cache_dir(Some(workspace().join("target/test-cache")))
                        .frames_by_reference(by_reference)
                        .give_back_above(give_back)
                        .build()
                        .unwrap();
                    let mut plan = plan.clone();
                    let out = dir.path().join(format!("{name}-{give_back:?}.csv"));
                    plan.output.predictions = Some(out.clone());
                    plan.data.chunk_rows = chunk;
                    let report = run(&sandbox, plan).await.unwrap();
                    let gave: u64 = report.steps.iter().map(|s| s.give_backs).sum();
                    let case = format!("{name}, by reference {by_reference}, chunks {chunk:?}");
                    if give_back.is_some() {
                        assert!(
                            gave >= report.steps.len() as u64,
                            "{case}: {gave} give-backs"
                        );
                    } else {
                        assert_eq!(gave, 0, "{case}");
                    }
                    let table = read_table(&out, &CsvOptions::default()).unwrap();
                    outputs.push((
                        report.metric,
                        kernel_host::cache::frame_digest(&table),
                        case,
                    ));
                }
                let (a, b) = (&outputs[0], &outputs[1]);
                assert_eq!(a.0, b.0, "{}: metric", a.2);
                assert_eq!(a.1, b.1, "{}: predictions differ", a.2);
            }
        }
    }
}

/// `chunk-rows = "auto"` sizes the chunks from the memory budget and the
/// data's parsed row size, and runs exactly as that many rows given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_chunk_rows_come_from_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = Plan::load(&workspace().join("examples/synthetic/pipeline.toml")).unwrap();
    let train = generated(&dir, "train.csv", 20_000, 7);
    plan.data.source = kernel_host::manifest::DataSource::Files {
        train: train.clone(),
        test: Some(generated(&dir, "test.csv", 2_000, 8)),
    };
    let csv = CsvOptions::default();
    // 1/256 of the budget, within 512 KiB and 8 MiB, over ~150 bytes a row.
    let rows = |budget: u64| kernel_host::job::auto_chunk_rows(&train, &csv, budget).unwrap();
    let default = rows(512 << 20);
    assert!((8_000..20_000).contains(&default), "{default}");
    assert!(rows(1 << 20) < default / 3, "a small budget, small chunks");
    assert_eq!(rows(1 << 40), rows(64 << 30), "capped");
    let mut outputs = Vec::new();
    for auto in [true, false] {
        let mut plan = plan.clone();
        let out = dir.path().join(format!("p-{auto}.csv"));
        plan.output.predictions = Some(out.clone());
        if auto {
            plan.data.chunk_auto = true;
        } else {
            plan.data.chunk_rows = Some(default);
        }
        let report = run(&sandbox(), plan).await.unwrap();
        assert_eq!(report.fit, kernel_host::job::FitMode::Chunked(default));
        let table = read_table(&out, &csv).unwrap();
        outputs.push((report.metric, kernel_host::cache::frame_digest(&table)));
    }
    assert_eq!(outputs[0], outputs[1]);
}

/// Each pass of a chunked fit reads what the previous one kept (the parsed
/// input, then the outputs of the steps fitted so far), so every chunk goes
/// through each step once: impute, encode and scale each see every chunk
/// once to fit, once to transform for the next step, and once to predict —
/// the same number of calls — where re-reading the input would make the
/// first step transform each chunk once per later wave
/// (`a_chunked_run_equals_the_whole_run` checks the predictions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_fit_transforms_each_chunk_once_per_step() {
    let plan = Plan::load(&workspace().join("examples/penguins/pipeline.toml")).unwrap();
    let report = crate::common::run_chunked(&sandbox(), plan, 25)
        .await
        .unwrap();
    let calls = |id: &str| {
        report
            .steps
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.calls)
            .unwrap()
    };
    // 258 training rows: 11 chunks; 86 test rows: 4.
    assert!(calls("impute") >= 11 + 11 + 4, "{}", calls("impute"));
    assert_eq!(calls("impute"), calls("encode"));
    assert_eq!(calls("encode"), calls("scale"));
}

//! `kernel-host profile` and `kernel-host recommend`: the written manifest
//! runs as is and scores within a point of the shipped pipelines on the
//! same rows; kernels take part by what they declare and what probing
//! shows, so a classifier added to the registry becomes a candidate.

use crate::common::*;
use kernel_host_guests as guests;
use std::path::{Path, PathBuf};
use std::process::Output;

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The shipped kernels, copied into `dir/kernels`.
fn shipped(dir: &Path) -> PathBuf {
    let kernels = dir.join("kernels");
    std::fs::create_dir_all(&kernels).unwrap();
    for k in [
        guests::SIMPLE_IMPUTER,
        guests::ONE_HOT_ENCODER,
        guests::STANDARD_SCALER,
        guests::PCA,
        guests::LOGISTIC_REGRESSION,
        guests::MLP_CLASSIFIER,
        guests::SGD_CLASSIFIER,
        guests::RIDGE_REGRESSION,
        guests::K_MEANS,
    ] {
        let from = Path::new(k);
        std::fs::copy(from, kernels.join(from.file_name().unwrap())).unwrap();
    }
    kernels
}

/// `kernel-host generate`: `rows` rows of the `task` data set at `path`.
fn generate(path: &Path, rows: u64, seed: u64, task: &str) {
    let o = kernel_host(&[
        "generate",
        "--rows",
        &rows.to_string(),
        "--seed",
        &seed.to_string(),
        "--task",
        task,
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", out(&o));
}

/// `kernel-host run MANIFEST --report`: the report's metric value.
fn metric_of(manifest: &Path) -> (String, f64) {
    let report = manifest.with_extension("report.json");
    let o = kernel_host(&[
        "run",
        manifest.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let metric = &report["metric"];
    (
        metric["name"].as_str().unwrap_or_default().to_string(),
        metric["value"].as_f64().unwrap(),
    )
}

/// `manifest` with its `[data]` table replaced by the one in `from`, and
/// its relative kernel paths made absolute.
fn with_data_of(manifest: &Path, from: &str, dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut doc: toml::Table = text.parse().unwrap();
    let data: toml::Table = from.parse().unwrap();
    doc.insert("data".into(), data["data"].clone());
    let base = manifest.parent().unwrap();
    if let Some(toml::Value::Table(kernels)) = doc.get_mut("kernels") {
        for (_, k) in kernels.iter_mut() {
            if let Some(toml::Value::String(s)) = k.get_mut("source") {
                *s = base.join(&*s).to_str().unwrap().to_string();
            }
        }
    }
    doc.remove("output");
    let path = dir.join(name);
    std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
    path
}

/// What a person would write: impute, one-hot, scale, then `model` (with
/// `model_params`, a TOML line), on `data` split 75/25.
fn hand_written(data: &Path, target: &str, model: &str, model_params: &str) -> String {
    format!(
        "[pipeline]\nsteps = [\"impute\", \"encode\", \"scale\", \"model\"]\n\
         [data]\ninput = {data:?}\nsplit = {{ test-fraction = 0.25, seed = 0, stratify = false }}\ntarget = {target:?}\n\
         [kernels.impute]\nsource = {:?}\nparams = {{ strategy = \"mean\", string_strategy = \"most_frequent\" }}\n\
         [kernels.encode]\nsource = {:?}\nparams = {{ handle_unknown = \"ignore\" }}\n\
         [kernels.scale]\nsource = {:?}\n[kernels.model]\nsource = {model:?}\n{model_params}\n",
        guests::SIMPLE_IMPUTER,
        guests::ONE_HOT_ENCODER,
        guests::STANDARD_SCALER,
    )
}

fn recommend(data: &Path, target: &str, kernels: &Path, write: &Path) -> serde_json::Value {
    let o = kernel_host(&[
        "recommend",
        data.to_str().unwrap(),
        "--target",
        target,
        "--kernels",
        kernels.to_str().unwrap(),
        "--budget",
        "120s",
        "--write",
        write.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn penguins_recommendation_runs_as_written_and_matches_the_shipped_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let kernels = shipped(dir.path());
    let data = workspace().join("examples/penguins/data/penguins.csv");
    let manifest = dir.path().join("m.toml");
    let rec = recommend(&data, "species", &kernels, &manifest);
    assert_eq!(rec["profile"]["task"], "multiclass");
    // Every classifier is a candidate; no clusterer or regressor is.
    let names: Vec<String> = rec["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["steps"].as_array().unwrap().last().unwrap()["kernel"].to_string())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    for model in ["logistic-regression", "mlp-classifier", "sgd-classifier"] {
        assert!(names.iter().any(|n| n.contains(model)), "{names:?}");
    }
    // Steps chosen by what the data needs, each with its reason.
    let reasons = rec["reasons"].to_string();
    assert!(reasons.contains("sex 3.2 %"), "{reasons}");
    assert!(reasons.contains("island has 3 categories"), "{reasons}");
    let best = &rec["candidates"][0];
    let kernels_of_best: Vec<&str> = best["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kernel"].as_str().unwrap())
        .collect();
    assert_eq!(
        kernels_of_best[..3],
        ["simple-imputer", "one-hot-encoder", "standard-scaler"]
    );
    assert!(best["score"][0].as_f64().unwrap() > 0.95, "{best}");

    // The manifest runs without edits; the shipped pipelines on the same
    // rows (the written [data] table) score no more than a point better.
    let (metric, recommended) = metric_of(&manifest);
    assert_eq!(metric, "accuracy");
    let written = std::fs::read_to_string(&manifest).unwrap();
    let data_table = {
        let doc: toml::Table = written.parse().unwrap();
        let mut data = doc["data"].as_table().unwrap().clone();
        let input = manifest
            .parent()
            .unwrap()
            .join(data["input"].as_str().unwrap());
        data.insert("input".into(), input.to_str().unwrap().into());
        let mut t = toml::Table::new();
        t.insert("data".into(), toml::Value::Table(data));
        toml::to_string(&t).unwrap()
    };
    for shipped in ["pipeline.toml", "mlp.toml"] {
        let path = with_data_of(
            &workspace().join("examples/penguins").join(shipped),
            &data_table,
            dir.path(),
            shipped,
        );
        let (_, score) = metric_of(&path);
        assert!(
            recommended >= score - 0.01,
            "{shipped}: {score} vs recommended {recommended}"
        );
    }
}

#[test]
fn generated_regression_with_holes_and_strings() {
    let dir = tempfile::tempdir().unwrap();
    let kernels = shipped(dir.path());
    let data = dir.path().join("reg.parquet");
    generate(&data, 4000, 11, "regression");
    let manifest = dir.path().join("reg.toml");
    let rec = recommend(&data, "value", &kernels, &manifest);
    assert_eq!(rec["profile"]["task"], "regression");
    assert_eq!(rec["candidates"].as_array().unwrap().len(), 1);
    let (metric, recommended) = metric_of(&manifest);
    assert_eq!(metric, "r2");
    let hand = hand_written(&data, "value", guests::RIDGE_REGRESSION, "");
    let hand_path = dir.path().join("hand.toml");
    std::fs::write(&hand_path, hand).unwrap();
    let (_, score) = metric_of(&hand_path);
    assert!(
        recommended >= score - 0.01,
        "hand-written {score} vs recommended {recommended}"
    );
}

#[test]
fn a_classifier_added_to_the_registry_becomes_a_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    let with_registry = |args: &[&str]| {
        kernel_host_command()
            .env("KERNEL_HOST_REGISTRY", &registry)
            .args(args)
            .output()
            .unwrap()
    };
    for k in [
        guests::SIMPLE_IMPUTER,
        guests::ONE_HOT_ENCODER,
        guests::STANDARD_SCALER,
        guests::LOGISTIC_REGRESSION,
    ] {
        let o = with_registry(&["registry", "add", k]);
        assert!(o.status.success(), "{}", out(&o));
    }
    let data = workspace().join("examples/penguins/data/penguins.csv");
    let candidates = || {
        let o = with_registry(&[
            "recommend",
            data.to_str().unwrap(),
            "--target",
            "species",
            "--budget",
            "0",
            "--json",
        ]);
        assert!(o.status.success(), "{}", out(&o));
        let rec: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut models: Vec<String> = rec["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c["steps"].as_array().unwrap().last().unwrap()["kernel"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        models.sort();
        models
    };
    assert_eq!(candidates(), ["logistic-regression"]);
    let o = with_registry(&["registry", "add", guests::MLP_CLASSIFIER]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(candidates(), ["logistic-regression", "mlp-classifier"]);
    // A registry manifest runs as written too (kernels pinned by version).
    let manifest = dir.path().join("m.toml");
    let o = with_registry(&[
        "recommend",
        data.to_str().unwrap(),
        "--target",
        "species",
        "--budget",
        "30s",
        "--write",
        manifest.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(
        text.contains("registry = \"simple-imputer@=1.0.0\""),
        "{text}"
    );
    let o = with_registry(&["run", manifest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
}

#[test]
fn profile_and_recommend_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = workspace().join("examples/penguins/data/penguins.csv");
    let o = kernel_host(&["profile", data.to_str().unwrap(), "--target", "specie"]);
    assert!(!o.status.success());
    assert!(
        out(&o).contains("specie") && out(&o).contains("no such column (columns: species, island"),
        "{}",
        out(&o)
    );
    let o = kernel_host(&[
        "profile",
        data.to_str().unwrap(),
        "--target",
        "species",
        "--json",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["rows"], 344);
    assert_eq!(
        p["target"]["classes"][0],
        serde_json::json!(["Adelie", 152])
    );
    let sex = p["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sex")
        .unwrap();
    assert_eq!(
        (sex["missing"].as_u64(), sex["distinct"].as_u64()),
        (Some(11), Some(2))
    );
    // No kernel that fits the task: said, with what to do.
    let kernels = dir.path().join("only-transformers");
    std::fs::create_dir_all(&kernels).unwrap();
    std::fs::copy(guests::SIMPLE_IMPUTER, kernels.join("imputer.wasm")).unwrap();
    std::fs::copy(guests::ONE_HOT_ENCODER, kernels.join("encoder.wasm")).unwrap();
    std::fs::write(kernels.join("junk.wasm"), b"not a component").unwrap();
    let o = kernel_host(&[
        "recommend",
        data.to_str().unwrap(),
        "--target",
        "species",
        "--kernels",
        kernels.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        out(&o).contains("no available kernel is a classifier"),
        "{}",
        out(&o)
    );
}

/// The history: runs on one data set change what `recommend` puts first on
/// a similar one (and it says why); two processes writing at once both
/// land every record.
#[test]
fn the_history_changes_a_recommendation_and_survives_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.sqlite");
    let kernels = dir.path().join("kernels");
    std::fs::create_dir_all(&kernels).unwrap();
    for k in [
        guests::SIMPLE_IMPUTER,
        guests::ONE_HOT_ENCODER,
        guests::STANDARD_SCALER,
        guests::LOGISTIC_REGRESSION,
        guests::SGD_CLASSIFIER,
    ] {
        let from = Path::new(k);
        std::fs::copy(from, kernels.join(from.file_name().unwrap())).unwrap();
    }
    let with_history = |args: &[&str]| {
        kernel_host_command()
            .env("KERNEL_HOST_HISTORY", &history)
            .args(args)
            .output()
            .unwrap()
    };
    let first = dir.path().join("first.csv");
    let second = dir.path().join("second.csv");
    generate(&first, 3000, 1, "classification");
    generate(&second, 3000, 2, "classification");
    let top = |data: &Path| {
        let o = with_history(&[
            "recommend",
            data.to_str().unwrap(),
            "--target",
            "label",
            "--kernels",
            kernels.to_str().unwrap(),
            "--budget",
            "0",
            "--json",
        ]);
        assert!(o.status.success(), "{}", out(&o));
        let rec: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let model = rec["candidates"][0]["steps"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["kernel"]
            .as_str()
            .unwrap()
            .to_string();
        (model, rec["recommendation"].as_str().unwrap().to_string())
    };
    // No history: the rules alone, in name order.
    let (model, why) = top(&second);
    assert_eq!(model, "logistic-regression", "{why}");
    assert!(why.contains("the rules alone"), "{why}");

    // On the first data set, an over-regularized logistic regression loses
    // to the SGD classifier: two runs, recorded.
    let manifest = |name: &str, model: &str, params: &str| {
        let text = hand_written(&first, "label", model, params);
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let weak = manifest(
        "weak.toml",
        guests::LOGISTIC_REGRESSION,
        "params = { c = 1e-6 }",
    );
    let sgd = manifest("sgd.toml", guests::SGD_CLASSIFIER, "");
    for m in [&weak, &sgd] {
        let o = with_history(&["run", m.to_str().unwrap()]);
        assert!(o.status.success(), "{}", out(&o));
    }
    let o = with_history(&["history", "list", "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    let records: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 2, "{records}");
    let score = |model: &str| {
        records
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["pipeline"].as_array().unwrap().last().unwrap() == model)
            .unwrap()["score"]
            .as_f64()
            .unwrap()
    };
    assert!(
        score("sgd-classifier") > score("logistic-regression"),
        "{records}"
    );
    // The second data set is similar (same columns, another seed): the
    // history now puts the SGD classifier first, and says why.
    let (model, why) = top(&second);
    assert_eq!(model, "sgd-classifier", "{why}");
    assert!(
        why.contains("chosen by the history")
            && why.contains("sgd-classifier scored best (beating logistic-regression)"),
        "{why}"
    );
    // `--no-history` ignores it.
    let o = with_history(&[
        "recommend",
        second.to_str().unwrap(),
        "--target",
        "label",
        "--kernels",
        kernels.to_str().unwrap(),
        "--budget",
        "0",
        "--no-history",
    ]);
    assert!(out(&o).contains("the rules alone"), "{}", out(&o));

    // Two processes writing at once: every record lands.
    let writers: Vec<_> = [&weak, &sgd]
        .into_iter()
        .map(|m| {
            let m = m.clone();
            let history = history.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let o = kernel_host_command()
                        .env("KERNEL_HOST_HISTORY", &history)
                        .args(["run", m.to_str().unwrap()])
                        .output()
                        .unwrap();
                    assert!(o.status.success(), "{}", out(&o));
                    assert!(!out(&o).contains("could not record"), "{}", out(&o));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let o = with_history(&["history", "list", "--limit", "100", "--json"]);
    let records: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 12);
    // Forget the first data set: what is left is about nothing.
    let o = with_history(&["history", "forget", "--data", first.to_str().unwrap()]);
    assert!(out(&o).contains("forgot 12 records"), "{}", out(&o));
    // `compare` records each cross-validated candidate.
    let o = with_history(&[
        "compare",
        weak.to_str().unwrap(),
        sgd.to_str().unwrap(),
        "--cv",
        "3",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let o = with_history(&["history", "list", "--json"]);
    let records: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records
            .iter()
            .all(|r| r["command"] == "compare" && r["scored_on"] == "3-fold CV on 2250 rows")
    );
}

/// Data that would take more than the memory budget read whole: only
/// kernels with partial-fit are candidates, the manifest fits in chunks,
/// and it runs as written.
#[test]
fn data_over_the_memory_budget_gets_a_chunked_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let kernels = shipped(dir.path());
    let data = dir.path().join("big.csv");
    let test = dir.path().join("rows.csv");
    // More rows than the 20 000 cross-validated: the sample is drawn while
    // streaming the file.
    generate(&data, 30_000, 5, "classification");
    generate(&test, 2000, 6, "classification");
    let manifest = dir.path().join("chunked.toml");
    let o = kernel_host(&[
        "recommend",
        data.to_str().unwrap(),
        "--target",
        "label",
        "--kernels",
        kernels.to_str().unwrap(),
        "--memory-budget-mib",
        "1",
        "--test",
        test.to_str().unwrap(),
        "--budget",
        "60s",
        "--write",
        manifest.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let rec: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let models: Vec<&str> = rec["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["steps"].as_array().unwrap().last().unwrap()["kernel"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(models, ["sgd-classifier"]);
    let reasons = rec["reasons"].to_string();
    assert!(
        reasons.contains("chunked fit: 30000 rows")
            && reasons.contains("sgd-classifier supports partial-fit"),
        "{reasons}"
    );
    assert_eq!(rec["sample_rows"], 20000);
    let chunk = rec["chunk_rows"].as_u64().unwrap();
    assert!((1024..30000).contains(&chunk), "{chunk}");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains(&format!("chunk-rows = {chunk}")), "{text}");
    assert!(
        text.contains("train = \"big.csv\"") && text.contains("test = \"rows.csv\""),
        "{text}"
    );
    let (metric, score) = metric_of(&manifest);
    assert_eq!(metric, "accuracy");
    assert!(score > 0.5, "{score}");
}

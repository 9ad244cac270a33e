//! Model selection: cross-validation folds, `compare` and `tune`.

use crate::common::{kernel_host, sandbox, workspace};
use kernel_host::Plan;
use kernel_host::bindings::{Param, ParamValue};
use kernel_host::select::compare::{self, Candidate, Outcome};
use kernel_host::select::tune::{self, TuneOptions};
use kernel_host::select::{self, Dataset};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn penguins() -> Plan {
    Plan::load(&workspace().join("examples/penguins/pipeline.toml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folds_are_stratified_seeded_and_shared() {
    let sandbox = sandbox();
    let plan = penguins();
    let a = select::prepare(&sandbox, &plan, 5, 11).await.unwrap();
    let b = select::prepare(&sandbox, &plan, 5, 11).await.unwrap();
    assert_eq!(a.folds, b.folds);
    assert_ne!(
        a.folds,
        select::prepare(&sandbox, &plan, 5, 12).await.unwrap().folds
    );
    let y = a.y.as_ref().unwrap();
    let label = |r: usize| kernel_host::data::cell_text(y, r).unwrap();
    for species in ["Adelie", "Chinstrap", "Gentoo"] {
        let per: Vec<usize> = a
            .folds
            .iter()
            .map(|f| f.iter().filter(|&&r| label(r) == species).count())
            .collect();
        assert!(
            per.iter().max().unwrap() - per.iter().min().unwrap() <= 1,
            "{species}: {per:?}"
        );
    }
    // Not stratified: the same rows, other folds.
    let plain = Dataset::of(&plan, 5, 11, false).unwrap();
    assert_eq!(plain.x.rows, a.x.rows);
}

fn with_param(plan: &Plan, step: &str, name: &str, value: ParamValue) -> Plan {
    let mut plan = plan.clone();
    compare::set_param(&mut plan, step, name, value).unwrap();
    plan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_ranks_the_worse_configuration_lower_and_survives_a_trap() {
    let sandbox = sandbox();
    let plan = penguins();
    let data = select::prepare(&sandbox, &plan, 5, 0).await.unwrap();
    let mut trapping = plan.clone();
    let scale = trapping.steps.iter_mut().find(|s| s.id == "scale").unwrap();
    scale.source = kernel_host_guests::HOSTILE.into();
    scale.sha256 = None;
    scale.params = vec![Param {
        name: "behaviour".into(),
        value: ParamValue::String("panic".into()),
    }];
    let candidates = vec![
        Candidate {
            name: "weak".into(),
            plan: with_param(&plan, "model", "c", ParamValue::F64(1e-4)),
        },
        Candidate {
            name: "trap".into(),
            plan: trapping,
        },
        Candidate {
            name: "good".into(),
            plan: with_param(&plan, "model", "c", ParamValue::F64(1.0)),
        },
    ];
    let c = compare::compare(&sandbox, &candidates, &data, None, &|_| {}).await;
    assert_eq!(c.metric, "accuracy");
    let score = |i: usize| match &c.rows[i].outcome {
        Outcome::Scored(cv) => {
            assert_eq!(cv.folds.len(), 5);
            cv.summary("accuracy").unwrap().0
        }
        Outcome::Failed(e) => panic!("{e}"),
    };
    assert!(score(2) > score(0) + 0.3, "{} vs {}", score(2), score(0));
    match &c.rows[1].outcome {
        Outcome::Failed(e) => assert!(e.contains("panicked on purpose"), "{e}"),
        Outcome::Scored(_) => panic!("the trapping candidate scored"),
    }
    assert_eq!(c.recommended, Some(2));
    assert!(
        c.recommendation.starts_with("recommended: good"),
        "{}",
        c.recommendation
    );
}

fn options(seed: u64, trials: usize) -> TuneOptions {
    TuneOptions {
        budget: Duration::from_secs(120),
        trials: Some(trials),
        jobs: 1,
        seed,
        metric: None,
        random: false,
        startup: 4,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tune_stays_in_the_declared_space_and_is_reproducible() {
    let sandbox = sandbox();
    let plan = penguins();
    let space = tune::space(&sandbox, &plan, &["model.c=log(0.01,100)".into()])
        .await
        .unwrap();
    let data = Arc::new(select::prepare(&sandbox, &plan, 3, 0).await.unwrap());
    let run = |seed| {
        let (sandbox, plan, data, space) =
            (sandbox.clone(), plan.clone(), data.clone(), space.clone());
        async move {
            tune::tune(&sandbox, &plan, data, space, &options(seed, 12), &|_| {})
                .await
                .unwrap()
        }
    };
    let a = run(5).await;
    let b = run(5).await;
    let params = |t: &tune::Tuned| {
        t.trials
            .iter()
            .map(|t| t.params.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        params(&a),
        params(&b),
        "the same seed proposes the same trials"
    );
    assert_ne!(params(&a), params(&run(6).await));
    assert_eq!(a.trials.len(), 12);
    for trial in &a.trials {
        for (name, value) in &trial.params {
            match name.as_str() {
                "model.c" => {
                    let c: f64 = value.parse().unwrap();
                    assert!((0.01..=100.0).contains(&c) || trial.number == 0, "{c}");
                }
                "model.max_iter" => {
                    let n: i64 = value.parse().unwrap();
                    assert!((1..=1_000_000).contains(&n), "{n}");
                }
                "model.tol" => {
                    let t: f64 = value.parse().unwrap();
                    assert!((0.0..=1.0).contains(&t), "{t}");
                }
                "model.fit_intercept" => assert!(value == "true" || value == "false"),
                other => panic!("unexpected parameter {other}"),
            }
        }
    }
    // The best is at least the manifest as written (trial 0).
    let best = a.trials.iter().find(|t| Some(t.number) == a.best).unwrap();
    assert!(best.score.unwrap() >= a.trials[0].score.unwrap());

    // A range outside the declared one, an unknown step or parameter: refused.
    for (bad, says) in [
        ("model.c=log(1e-20,1)", "leaves the declared range"),
        ("nope.c=log(1,2)", "no step `nope`"),
        ("model.gamma=log(1,2)", "has no parameter `gamma`"),
        (
            "model.c=int(1,5)",
            "does not fit the parameter's declared type",
        ),
    ] {
        let e = tune::space(&sandbox, &plan, &[bad.into()])
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tune_stops_at_its_budget() {
    let sandbox = sandbox();
    let plan = penguins();
    let space = tune::space(&sandbox, &plan, &[]).await.unwrap();
    let data = Arc::new(select::prepare(&sandbox, &plan, 3, 0).await.unwrap());
    let mut opts = options(1, usize::MAX);
    opts.trials = None;
    opts.budget = Duration::from_millis(800);
    opts.jobs = 2;
    let started = Instant::now();
    let t = tune::tune(&sandbox, &plan, data, space, &opts, &|_| {})
        .await
        .unwrap();
    // Generous: the point is that it stops, not how fast this machine is.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(t.trials.len() >= 2, "{} trials", t.trials.len());
    assert!(
        t.trials.iter().all(|x| x.at <= 0.8 + 0.5),
        "trials finished after the budget"
    );
}

/// A copy of the penguins manifest with absolute paths, in `dir`.
fn penguins_in(dir: &Path) -> std::path::PathBuf {
    let root = workspace();
    let text = std::fs::read_to_string(root.join("examples/penguins/pipeline.toml"))
        .unwrap()
        .replace(
            "\"data/",
            &format!("\"{}/examples/penguins/data/", root.display()),
        )
        .replace("\"../../target/", &format!("\"{}/target/", root.display()))
        .replace("\"out/", &format!("\"{}/", dir.display()));
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_tuned_manifest_reruns_to_the_reported_score() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = penguins_in(dir.path());
    let best = dir.path().join("best.toml");
    let out = kernel_host(&[
        "tune",
        manifest.to_str().unwrap(),
        "--trials",
        "8",
        "--cv",
        "3",
        "--seed",
        "4",
        "--param",
        "model.c=log(0.001,1000)",
        "--out",
        best.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let best_trial = json["best"].as_u64().unwrap();
    let reported = json["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["number"].as_u64() == Some(best_trial))
        .unwrap()["score"]
        .as_f64()
        .unwrap();
    let out = kernel_host(&[
        "run",
        best.to_str().unwrap(),
        "--cv",
        "3",
        "--cv-seed",
        "4",
        "--json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let rerun: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rerun["summary"]["accuracy"]["mean"].as_f64().unwrap(),
        reported
    );
    // And the tuned manifest runs as a plain job too.
    let out = kernel_host(&["run", best.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn compare_on_the_command_line() {
    let out = kernel_host(&[
        "compare",
        "examples/penguins/pipeline.toml",
        "--vary",
        "model.c=0.0001,1",
        "--cv",
        "3",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("recommended: model.c=1"), "{stdout}");
    let out = kernel_host(&["compare", "examples/penguins/pipeline.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("two manifests or more"));
}

/// Chromium for the HTML checks: the test setup installs Debian's package
/// (scripts/test); `None`, with the reason printed, where there is none.
fn chromium() -> Option<&'static str> {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::process::Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return Some(candidate);
        }
    }
    eprintln!(
        "SKIPPED the browser check: no chromium here (scripts/test installs it with apt-get; \
         install `chromium` to run it)"
    );
    None
}

/// Loads `page` in headless Chromium: the DOM it built, and what the page
/// logged to the console.
fn load_in_browser(browser: &str, page: &Path) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn graph_shows_the_parallel_branches_in_one_wave() {
    let out = kernel_host(&["graph", "examples/penguins/dag.toml", "--format", "mermaid"]);
    assert!(out.status.success(), "{out:?}");
    let mermaid = String::from_utf8_lossy(&out.stdout);
    // Wave 1 holds both imputers, wave 2 the scaler and the encoder.
    let wave = |n: usize| {
        let start = mermaid.find(&format!("subgraph wave{n}[")).unwrap();
        let end = start + mermaid[start..].find("  end").unwrap();
        mermaid[start..end].to_string()
    };
    assert!(wave(1).contains("2 steps in parallel"), "{mermaid}");
    assert!(
        wave(1).contains("numeric<br/>simple-imputer@1.0.0"),
        "{mermaid}"
    );
    assert!(
        wave(1).contains("categorical<br/>simple-imputer@1.0.0"),
        "{mermaid}"
    );
    assert!(
        wave(2).contains("scale<br/>") && wave(2).contains("encode<br/>"),
        "{mermaid}"
    );
    assert!(
        wave(3).contains("model<br/>logistic-regression@1.0.0"),
        "{mermaid}"
    );

    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run.json");
    let out = kernel_host(&[
        "run",
        "examples/penguins/dag.toml",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = kernel_host(&[
        "graph",
        "examples/penguins/dag.toml",
        "--report",
        report.to_str().unwrap(),
    ]);
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(
        dot.contains("subgraph cluster_wave1") && dot.contains("(258 rows)"),
        "{dot}"
    );
    assert_eq!(dot.matches("slowest").count(), 1, "{dot}");
    assert!(dot.contains("fuel"), "{dot}");

    let page = dir.path().join("dag.html");
    let out = kernel_host(&[
        "graph",
        "examples/penguins/dag.toml",
        "--report",
        report.to_str().unwrap(),
        "--format",
        "html",
        "-o",
        page.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: no scripts, no address but the SVG namespace.
    assert!(!html.contains("<script"), "{html}");
    assert_eq!(
        html.matches("http").count(),
        html.matches("http://www.w3.org/2000/svg").count()
    );
    if let Some(browser) = chromium() {
        let (dom, console) = load_in_browser(browser, &page);
        for step in ["numeric", "scale", "categorical", "encode", "model"] {
            assert!(
                dom.contains(&format!("id=\"step-{step}\"")),
                "{step} missing:\n{dom}"
            );
        }
        assert!(dom.contains("<svg"), "{dom}");
        assert!(
            !console.contains("Uncaught") && !console.contains("ERROR:CONSOLE"),
            "{console}"
        );
    }
}

#[test]
fn compare_and_tune_write_pages_that_load() {
    let dir = tempfile::tempdir().unwrap();
    let compare_page = dir.path().join("compare.html");
    let out = kernel_host(&[
        "compare",
        "examples/penguins/pipeline.toml",
        "--vary",
        "model.c=0.0001,1",
        "--cv",
        "3",
        "--html",
        compare_page.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let manifest = penguins_in(dir.path());
    let tune_page = dir.path().join("tune.html");
    let out = kernel_host(&[
        "tune",
        manifest.to_str().unwrap(),
        "--trials",
        "6",
        "--cv",
        "3",
        "--html",
        tune_page.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    if let Some(browser) = chromium() {
        let (dom, console) = load_in_browser(browser, &compare_page);
        assert!(
            dom.contains("model.c=0.0001") && dom.contains("<svg"),
            "{dom}"
        );
        assert!(!console.contains("Uncaught"), "{console}");
        let (dom, console) = load_in_browser(browser, &tune_page);
        assert!(dom.contains("<circle") && dom.contains("model.c="), "{dom}");
        assert!(!console.contains("Uncaught"), "{console}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permutation_importance_finds_the_features_the_model_uses() {
    let sandbox = sandbox();
    let mut plan = penguins();
    // `year` says nothing about the species.
    plan.data.features.as_mut().unwrap().push("year".into());
    let data = select::prepare(&sandbox, &plan, 5, 0).await.unwrap();
    let (metric, importances) = select::importance::importance(&sandbox, &plan, &data, 3, None)
        .await
        .unwrap();
    assert_eq!(metric, "accuracy");
    let of = |name: &str| importances.iter().find(|i| i.feature == name).unwrap();
    assert!(of("bill_length_mm").mean > 0.1, "{importances:?}");
    assert!(of("year").mean.abs() < 0.03, "{importances:?}");
    assert_eq!(importances[0].feature, "bill_length_mm", "{importances:?}");

    let out = kernel_host(&[
        "explain",
        "examples/penguins/pipeline.toml",
        "--importance",
        "--cv",
        "3",
        "--repeats",
        "2",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("permutation importance") && stdout.contains("bill_length_mm"),
        "{stdout}"
    );
}

/// A trial scored elsewhere: the plan as JSON pinned to its kernels, the
/// kernels by sha256 written to another folder, the result as JSON — the
/// same score, bit for bit; the search told that result asks the same next
/// trial; a kernel swapped in the worker's folder is refused by its pin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_scored_elsewhere_is_the_same_trial() {
    use kernel_host::select::{CvResult, remote};
    let sandbox = sandbox();
    let plan = penguins();
    let data = select::prepare(&sandbox, &plan, 3, 5).await.unwrap();
    let here = select::cross_validate(&sandbox, &plan, &data)
        .await
        .unwrap();

    let mut shipped = vec![plan.clone()];
    let kernels = remote::kernels(&mut shipped).unwrap();
    assert_eq!(kernels.len(), 4, "one entry per distinct component");
    assert!(shipped[0].steps.iter().all(|s| s.sha256.is_some()));
    let json = remote::plan_json(&shipped[0]).unwrap();
    let worker = tempfile::tempdir().unwrap();
    let there_plan =
        remote::localize(remote::plan_of(&json).unwrap(), &kernels, worker.path()).unwrap();
    assert!(
        there_plan
            .steps
            .iter()
            .all(|s| s.source.starts_with(worker.path()))
    );
    let there = select::cross_validate(&sandbox, &there_plan, &data)
        .await
        .unwrap();
    let back: CvResult = serde_json::from_str(&serde_json::to_string(&there).unwrap()).unwrap();
    for (a, b) in here.folds.iter().zip(&back.folds) {
        assert_eq!(a.scores, b.scores);
    }
    assert_eq!(back.kind, here.kind);

    // ask/tell with results that travelled gives the same trials as tune.
    let space = tune::space(&sandbox, &plan, &[]).await.unwrap();
    let local = tune::tune(
        &sandbox,
        &plan,
        Arc::new(data.clone()),
        space.clone(),
        &options(3, 4),
        &|_| {},
    )
    .await
    .unwrap();
    let mut search = tune::Search::new(&plan, space, &options(3, 4));
    while let Some(tune::Asked {
        number,
        plan: trial_plan,
        ..
    }) = search.ask().unwrap()
    {
        let cv = select::cross_validate(&sandbox, &trial_plan, &data)
            .await
            .unwrap();
        let travelled: CvResult =
            serde_json::from_str(&serde_json::to_string(&cv).unwrap()).unwrap();
        search.tell(number, Ok(travelled), Duration::ZERO).unwrap();
    }
    assert!(
        search
            .tell(0, Err("again".into()), Duration::ZERO)
            .is_none(),
        "told twice"
    );
    let remote_tuned = search.finish();
    let scores = |t: &tune::Tuned| {
        t.trials
            .iter()
            .map(|t| (t.params.clone(), t.score))
            .collect::<Vec<_>>()
    };
    assert_eq!(scores(&remote_tuned), scores(&local));
    assert_eq!(remote_tuned.best, local.best);

    // A different file of the same size under the kernel's name: refused.
    let (sha, bytes) = kernels.iter().next().unwrap();
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    std::fs::write(worker.path().join(format!("{sha}.wasm")), &tampered).unwrap();
    let again = remote::localize(remote::plan_of(&json).unwrap(), &kernels, worker.path()).unwrap();
    let err = kernel_host::Pipeline::load(&sandbox, again)
        .await
        .err()
        .expect("a swapped kernel must be refused");
    assert!(err.to_string().contains("sha256"), "{err}");
    // Kernels the driver did not send, or a name that is not a sha256.
    assert!(
        remote::localize(
            remote::plan_of(&json).unwrap(),
            &Default::default(),
            worker.path()
        )
        .is_err()
    );
    let mut odd = remote::plan_of(&json).unwrap();
    odd.steps[0].sha256 = Some("../../etc/passwd".into());
    let mut sent = kernels.clone();
    sent.insert("../../etc/passwd".into(), bytes.clone());
    assert!(remote::localize(odd, &sent, worker.path()).is_err());
}

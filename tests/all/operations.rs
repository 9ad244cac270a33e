//! Operating kernel-host: metrics scraped over HTTP and parsed as
//! Prometheus text, outcome labels, the audit log, the result cache,
//! validate and explain.

use crate::common::*;
use kernel_host::bindings::ParamValue;
use kernel_host::telemetry::AuditLog;
use kernel_host::{Plan, Telemetry};
use kernel_host_guests as guests;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of the sample of `metric` whose labels include all of `labels`.
fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

async fn scrape(addr: &str) -> String {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::get("/metrics")
        .header("host", addr)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn metrics_are_served_during_a_run_and_match_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = kernel_host_command()
        .args([
            "run",
            "examples/penguins/pipeline.toml",
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-hold",
            "60",
            "-o",
        ])
        .arg(dir.path().join("p.csv"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("serving metrics on http://")
                .map(|a| a.trim_end_matches("/metrics").to_string())
        })
        .expect("the metrics address on stderr");
    // The run is short: wait until it is done and the endpoint held open.
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("holding the metrics endpoint"))
    );
    let text = scrape(&addr).await;
    let status = child.wait().unwrap();
    assert!(status.success());

    let m = parse(&text);
    let model = [
        ("pipeline", "penguins"),
        ("step", "model"),
        ("kernel", "logistic-regression"),
        ("version", "1.0.0"),
    ];
    let fit = [model.as_slice(), &[("operation", "fit"), ("outcome", "ok")]].concat();
    assert_eq!(
        value(&m, "kernel_host_calls_total", &fit),
        Some(1.0),
        "{text}"
    );
    // Rows in equal the rows of the files: 258 training rows, 86 test rows.
    assert_eq!(
        value(
            &m,
            "kernel_host_rows_in_total",
            &[("step", "impute"), ("operation", "fit")]
        ),
        Some(258.0)
    );
    assert_eq!(
        value(
            &m,
            "kernel_host_rows_in_total",
            &[("step", "model"), ("operation", "predict")]
        ),
        Some(86.0)
    );
    assert_eq!(
        value(
            &m,
            "kernel_host_rows_out_total",
            &[("step", "model"), ("operation", "predict")]
        ),
        Some(86.0)
    );
    assert_eq!(
        value(
            &m,
            "kernel_host_call_duration_seconds_count",
            &[("step", "model"), ("operation", "fit")]
        ),
        Some(1.0)
    );
    assert!(value(&m, "kernel_host_fuel_consumed_total", &model).unwrap() > 1e6);
    assert!(value(&m, "kernel_host_linear_memory_peak_bytes", &model).unwrap() >= 65536.0);
}

#[tokio::test]
async fn a_trap_is_counted_under_its_outcome_and_the_restart_too() {
    let telemetry = Telemetry::builder().metrics().build().unwrap();
    let sandbox = sandbox_with(telemetry.clone());
    let mut hostile = instance(
        &sandbox,
        "villain",
        guests::HOSTILE,
        &[("behaviour", text("panic"))],
    )
    .await;
    let x = frame(vec![f64_column("x", vec![1.0])]);
    assert!(hostile.fit(&x, None).await.is_err());
    hostile
        .configure(&params_of(&[("behaviour", text("none"))]))
        .await
        .unwrap();
    let m = parse(&telemetry.metrics().unwrap().render());
    let labels = [
        ("step", "villain"),
        ("kernel", "hostile"),
        ("operation", "fit"),
        ("outcome", "trap"),
    ];
    assert_eq!(value(&m, "kernel_host_calls_total", &labels), Some(1.0));
    assert_eq!(
        value(
            &m,
            "kernel_host_instance_restarts_total",
            &[("step", "villain")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_rollback_is_counted_and_timed() {
    let telemetry = Telemetry::builder().metrics().build().unwrap();
    let sandbox = sandbox_with(telemetry.clone());
    let params = [("fail", text("trap")), ("fail-from", ParamValue::S64(2))];
    let mut kernel = instance(&sandbox, "keeper", guests::OPAQUE, &params).await;
    let x = frame(vec![f64_column("x", vec![1.0, 2.0])]);
    kernel.fit(&x, None).await.unwrap();
    assert!(kernel.fit(&x, None).await.is_err());
    let m = parse(&telemetry.metrics().unwrap().render());
    let step = [("step", "keeper")];
    assert_eq!(value(&m, "kernel_host_rollbacks_total", &step), Some(1.0));
    assert_eq!(
        value(&m, "kernel_host_rollback_duration_seconds_count", &step),
        Some(1.0)
    );
    let seconds = value(&m, "kernel_host_rollback_duration_seconds_sum", &step).unwrap();
    assert!(seconds > 0.0 && seconds < 10.0, "{seconds}");
    assert_eq!(
        kernel.stats().rollback_time.as_secs_f64(),
        seconds,
        "the metric and the kernel's own count agree"
    );
}

#[tokio::test]
async fn the_audit_log_says_which_call_was_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let telemetry = Telemetry::builder()
        .audit(AuditLog::open(&log).unwrap())
        .build()
        .unwrap();
    let sandbox = sandbox_with(telemetry);
    let params = [("fail", text("trap")), ("fail-from", ParamValue::S64(2))];
    let mut kernel = instance(&sandbox, "keeper", guests::OPAQUE, &params).await;
    let x = frame(vec![f64_column("x", vec![1.0, 2.0])]);
    kernel.fit(&x, None).await.unwrap();
    assert!(kernel.fit(&x, None).await.is_err());
    let fits: Vec<serde_json::Value> = audit_lines(&log)
        .into_iter()
        .filter(|l| l["operation"] == "fit")
        .collect();
    assert_eq!(fits.len(), 2);
    assert!(fits[0].get("rollback_ms").is_none(), "{}", fits[0]);
    assert_eq!(fits[1]["outcome"], "trap");
    assert!(
        fits[1]["rollback_ms"].as_f64().unwrap() > 0.0,
        "{}",
        fits[1]
    );
}

fn audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn the_audit_log_has_one_line_per_call_and_survives_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let report = dir.path().join("run.json");
    let o = kernel_host_command()
        // `--verify`: every kernel is read and asked `describe` (a load
        // from an earlier process's record asks nothing).
        .args([
            "run",
            "examples/penguins/pipeline.toml",
            "--verify",
            "--audit-log",
        ])
        .arg(&log)
        .arg("--report")
        .arg(&report)
        .arg("-o")
        .arg(dir.path().join("p.csv"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let steps = report["steps"].as_array().unwrap();
    let calls: u64 = steps.iter().map(|s| s["calls"].as_u64().unwrap()).sum();
    let lines = audit_lines(&log);
    // One `describe` per kernel while it is verified, then the pipeline's calls.
    assert_eq!(lines.len() as u64, calls + steps.len() as u64);
    for line in &lines {
        for key in [
            "time",
            "pipeline",
            "step",
            "kernel",
            "sha256",
            "limits",
            "grants",
            "operation",
            "outcome",
            "duration_ms",
            "fuel",
        ] {
            assert!(line.get(key).is_some(), "`{key}` missing from {line}");
        }
    }
    assert_eq!(report["metric"]["value"].as_f64(), Some(1.0));

    // A faulting kernel: its call is logged with the outcome and the error.
    std::fs::write(dir.path().join("d.csv"), "x\n1\n2\n").unwrap();
    std::fs::write(
        dir.path().join("m.toml"),
        format!(
            "[pipeline]\nsteps = [\"villain\"]\n[data]\ntrain = \"d.csv\"\n[output]\naudit-log = \"audit2.jsonl\"\nreport = \"run2.json\"\n\
             [kernels.villain]\nsource = {:?}\nparams = {{ behaviour = \"panic\" }}\n",
            guests::HOSTILE
        ),
    )
    .unwrap();
    let o = kernel_host_command()
        .args(["run", "--verify"])
        .arg(dir.path().join("m.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let lines = audit_lines(&dir.path().join("audit2.jsonl"));
    let ops: Vec<&str> = lines
        .iter()
        .map(|l| l["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["describe", "configure", "fit"]);
    let last = lines.last().unwrap();
    assert_eq!(last["outcome"], "trap");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("hostile kernel panicked on purpose")
    );
    let failed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run2.json")).unwrap())
            .unwrap();
    assert_eq!(
        (failed["outcome"].as_str(), failed["exit_code"].as_i64()),
        (Some("failed"), Some(2))
    );
}

fn bits(frame: &kernel_host::bindings::Frame) -> Vec<u64> {
    frame
        .columns
        .iter()
        .flat_map(|c| f64s(c).iter().map(|v| v.to_bits()))
        .collect()
}

#[tokio::test]
async fn the_cache_serves_identical_bytes_and_a_refit_invalidates() {
    let telemetry = Telemetry::builder().metrics().build().unwrap();
    let sandbox = sandbox_with(telemetry.clone());
    let mut scaler = instance(&sandbox, "scale", guests::STANDARD_SCALER, &[]).await;
    scaler.enable_cache(kernel_host::cache::ResultCache::new(1 << 20));
    let x = frame(vec![f64_column("a", vec![1.0, 2.0, 4.0])]);
    scaler.fit(&x, None).await.unwrap();
    let first = scaler.transform(&x).await.unwrap();
    let second = scaler.transform(&x).await.unwrap();
    assert_eq!(scaler.stats().cache_hits, 1);
    assert_eq!(bits(&first), bits(&second));
    // Other input: a miss.
    let other = frame(vec![f64_column("a", vec![3.0])]);
    scaler.transform(&other).await.unwrap();
    assert_eq!(scaler.stats().cache_hits, 1);
    // A refit changes the state: the old result is not served.
    scaler
        .fit(&frame(vec![f64_column("a", vec![10.0, 20.0])]), None)
        .await
        .unwrap();
    let refitted = scaler.transform(&x).await.unwrap();
    assert_eq!(scaler.stats().cache_hits, 1);
    assert_ne!(bits(&refitted), bits(&first));
    let m = parse(&telemetry.metrics().unwrap().render());
    assert_eq!(
        value(
            &m,
            "kernel_host_cache_hits_total",
            &[("step", "scale"), ("operation", "transform")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "kernel_host_cache_misses_total",
            &[("step", "scale"), ("operation", "transform")]
        ),
        Some(3.0)
    );
}

/// Replacements in the penguins manifest.
type Edits = &'static [(&'static str, &'static str)];

/// (what, edits, number of problems, fragments that must each appear).
const BROKEN: &[(&str, Edits, usize, &[&str])] = &[
    (
        "three mistakes at once",
        &[
            (
                "steps = [\"impute\", \"encode\", \"scale\", \"model\"]",
                "steps = [\"impute\", \"encode\", \"scael\", \"model\"]",
            ),
            ("simple_imputer.wasm", "simple_imputr.wasm"),
            ("data/test.csv", "data/tset.csv"),
        ],
        3,
        &[
            "step `scael` names no kernel",
            "`kernels.impute.source`: kernel file not found",
            "`data.test`: data file not found",
        ],
    ),
    (
        "a wrong pin and a bad parameter",
        &[
            (
                "params = { handle_unknown = \"ignore\" }",
                "params = { handle_unknown = \"ignore\" }\nsha256 = \"1111111111111111111111111111111111111111111111111111111111111111\"",
            ),
            ("c = 1.0,", "c = 0.0,"),
        ],
        2,
        &[
            "`kernels.encode.sha256`",
            "`kernels.model.params`: parameter `c` = 0 is out of range",
        ],
    ),
    (
        "limits too small for the data",
        &[(
            "params = { c = 1.0, max_iter = 1000 }",
            "params = { c = 1.0, max_iter = 1000 }\nlimits = { fuel = 2_000_000 }",
        )],
        1,
        &[
            "step `model` will need ~",
            "fuel for `fit` on 258 rows; its limit is 2.0e6 per call: raise `limits.fuel`",
        ],
    ),
    (
        "a missing target column",
        &[("target = \"species\"", "target = \"specie\"")],
        1,
        &["`data.target`: target column `specie` is not in"],
    ),
];

#[tokio::test]
async fn validate_lists_every_seeded_mistake() {
    let original =
        std::fs::read_to_string(workspace().join("examples/penguins/pipeline.toml")).unwrap();
    let path = workspace().join("examples/penguins/validate-test.toml");
    let mut failures = Vec::new();
    for (what, edits, count, expected) in BROKEN {
        let mut text = original.clone();
        for (from, to) in *edits {
            assert!(text.contains(from), "{what}: `{from}` not in the manifest");
            text = text.replacen(from, to, 1);
        }
        // Next to the original, so relative paths resolve the same way.
        std::fs::write(&path, &text).unwrap();
        let report =
            kernel_host::validate::validate(&path, &kernel_host::manifest::NoRegistry, Some(40))
                .await;
        if report.problems.len() != *count {
            failures.push(format!(
                "{what}: {} problems, expected {count}: {:#?}",
                report.problems.len(),
                report.problems
            ));
        }
        for fragment in *expected {
            if !report.problems.iter().any(|p| p.contains(fragment)) {
                failures.push(format!(
                    "{what}: no problem mentions `{fragment}`: {:#?}",
                    report.problems
                ));
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn validate_predicts_fuel_within_2x_of_the_real_run() {
    let manifest_path = workspace().join("examples/penguins/pipeline.toml");
    let report = kernel_host::validate::validate(
        &manifest_path,
        &kernel_host::manifest::NoRegistry,
        Some(60),
    )
    .await;
    assert!(report.ok(), "{:#?}", report.problems);
    let recorder = Telemetry::builder().record().build().unwrap();
    let sandbox = sandbox_with(recorder.clone());
    let mut manifest = Plan::load(&manifest_path).unwrap();
    manifest.output.predictions = None;
    crate::common::run(&sandbox, manifest).await.unwrap();
    let real = recorder.recorded();
    for estimate in report.estimates.iter().filter(|e| e.operation == "fit") {
        let actual = real
            .iter()
            .find(|(c, r)| c.step == estimate.step && r.operation == "fit")
            .map(|(_, r)| r.fuel as f64)
            .unwrap();
        let ratio = estimate.projected_fuel / actual;
        assert!(
            (0.5..=2.0).contains(&ratio),
            "step `{}`: projected {:.3e}, real {actual:.3e}",
            estimate.step,
            estimate.projected_fuel
        );
    }
}

#[test]
fn explain_reports_the_fitted_values() {
    let reference = reference();
    let o = kernel_host_command()
        .args(["explain", "examples/penguins/pipeline.toml", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let steps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let step = |id: &str| {
        steps
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == id)
            .unwrap()
            .clone()
    };
    // Imputer: the column means scikit-learn computed on train.csv.
    let impute = step("impute");
    for (i, column) in [
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
    ]
    .iter()
    .enumerate()
    {
        let fill = impute["learned"]["entries"][column].as_f64().unwrap();
        assert!(
            (fill - floats(&reference, "imputer", "mean")[i]).abs() < 1e-9,
            "{column}"
        );
    }
    assert_eq!(impute["learned"]["entries"]["sex"], "female");
    // Encoder: the categories of the data.
    let encode = step("encode");
    assert_eq!(
        encode["learned"]["entries"]["island"],
        serde_json::json!(["Biscoe", "Dream", "Torgersen"])
    );
    assert_eq!(
        encode["learned"]["entries"]["sex"],
        serde_json::json!(["female", "male"])
    );
    // Scaler: mean imputation keeps each column's mean.
    let scale = step("scale");
    let columns: Vec<&str> = scale["learned"]["entries"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let j = columns.iter().position(|c| *c == "bill_length_mm").unwrap();
    let mean = scale["learned"]["entries"]["mean"][j].as_f64().unwrap();
    assert!((mean - floats(&reference, "scaler", "mean")[0]).abs() < 1e-9);
    // Model: classes, one coefficient vector per class, host observations.
    let model = step("model");
    assert_eq!(
        model["learned"]["entries"]["classes"],
        serde_json::json!(["Adelie", "Chinstrap", "Gentoo"])
    );
    assert_eq!(
        model["learned"]["entries"]["coef[Gentoo]"]
            .as_array()
            .unwrap()
            .len(),
        9
    );
    assert_eq!(model["observed"]["faults"], 0);
    assert!(model["observed"]["fuel"].as_u64().unwrap() > 0);

    let o = kernel_host_command()
        .args([
            "explain",
            "examples/penguins/pipeline.toml",
            "--step",
            "nope",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("there is no step `nope`; the steps are impute, encode, scale, model")
    );
}

#[tokio::test]
async fn audit_log_from_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::builder()
        .audit(AuditLog::open(&dir.path().join("a.jsonl")).unwrap())
        .build()
        .unwrap();
    // A cache of its own: the first load asks `describe`; a second
    // "process" (sandbox) on the same cache loads from the record and asks
    // nothing, which the log shows.
    let process = || {
        kernel_host::Sandbox::builder()
            .observer(telemetry.clone())
            .cache_dir(Some(dir.path().join("cache")))
            .build()
            .unwrap()
    };
    let mut seen = 0;
    for expected in [&["describe", "configure", "fit"][..], &["configure", "fit"]] {
        let mut scaler = instance(
            &process(),
            "s",
            guests::STANDARD_SCALER,
            &[("with_mean", ParamValue::Bool(false))],
        )
        .await;
        scaler
            .fit(&frame(vec![f64_column("a", vec![1.0])]), None)
            .await
            .unwrap();
        let lines = audit_lines(&dir.path().join("a.jsonl"));
        let ops: Vec<&str> = lines[seen..]
            .iter()
            .map(|l| l["operation"].as_str().unwrap())
            .collect();
        assert_eq!(ops, expected);
        assert_eq!(lines.last().unwrap()["rows_in"], 1);
        seen = lines.len();
    }
}

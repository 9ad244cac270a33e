//! Pipelines as graphs: the TOML and the builder give the same plan and the
//! same predictions as a reference computed step by step; graph mistakes are
//! named; independent branches run at the same time; a runaway branch times
//! out while the other completes; parallel transforms keep row order.

use crate::common::*;
use kernel_host::bindings::{ColumnValues, Frame};
use kernel_host::builder::{KernelDef, StepDef};
use kernel_host::frame::{Selection, concat};
use kernel_host::{Error, Fault, Output, Pipeline, Plan, Telemetry};
use kernel_host_guests as guests;

const KERNELS: &str = "../../target/guests/wasm32-wasip2/release";

fn built() -> Plan {
    let k = |file: &str| format!("{KERNELS}/{file}");
    Plan::builder(workspace().join("examples/penguins"))
        .name("penguins-dag")
        .step(
            StepDef::new("numeric")
                .kernel("impute-mean")
                .inputs(["source"])
                .column_types(["f64", "s64"]),
        )
        .step(StepDef::new("scale").inputs(["numeric"]))
        .step(
            StepDef::new("categorical")
                .kernel("impute-mode")
                .inputs(["source"])
                .column_types(["string"]),
        )
        .step(StepDef::new("encode").inputs(["categorical"]))
        .step(StepDef::new("model").inputs(["scale", "encode"]))
        .train("data/train.csv")
        .test("data/test.csv")
        .target("species")
        .features([
            "island",
            "bill_length_mm",
            "bill_depth_mm",
            "flipper_length_mm",
            "body_mass_g",
            "sex",
        ])
        .predictions("out/dag-predictions.csv")
        .probabilities(true)
        .kernel(
            "impute-mean",
            KernelDef::new(&k("simple_imputer.wasm")).param("strategy", "mean"),
        )
        .kernel(
            "impute-mode",
            KernelDef::new(&k("simple_imputer.wasm")).param("string_strategy", "most_frequent"),
        )
        .kernel("scale", KernelDef::new(&k("standard_scaler.wasm")))
        .kernel("encode", KernelDef::new(&k("one_hot_encoder.wasm")))
        .kernel(
            "model",
            KernelDef::new(&k("logistic_regression.wasm")).param("c", 1.0),
        )
        .build()
        .unwrap()
}

fn toml() -> Plan {
    Plan::load(&workspace().join("examples/penguins/dag.toml")).unwrap()
}

#[test]
fn the_builder_gives_the_same_plan_as_the_toml() {
    let (mut a, mut b) = (toml(), built());
    for s in a.steps.iter_mut().chain(b.steps.iter_mut()) {
        s.line = None;
    }
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.data, b.data);
    assert_eq!(a.output, b.output);
    let order: Vec<&str> = a.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        order,
        ["numeric", "scale", "categorical", "encode", "model"]
    );
}

async fn probabilities(manifest: Plan) -> Frame {
    let prepared = crate::common::prepare(&manifest).unwrap();
    let mut pipeline = Pipeline::load(&sandbox(), manifest).await.unwrap();
    pipeline
        .fit(prepared.x_train, prepared.y_train.as_ref())
        .await
        .unwrap();
    match pipeline
        .predict(prepared.x_test.unwrap(), true)
        .await
        .unwrap()
    {
        Output::Predictions { probabilities, .. } => probabilities.unwrap(),
        Output::Transformed(_) => panic!("expected predictions"),
    }
}

/// The same computation, one kernel call at a time, joined by hand.
async fn step_by_step() -> Frame {
    let sandbox = sandbox();
    let manifest = toml();
    let p = crate::common::prepare(&manifest).unwrap();
    let numeric = Selection::Types(vec![
        kernel_host::data::ColumnType::F64,
        kernel_host::data::ColumnType::S64,
    ]);
    let strings = Selection::Types(vec![kernel_host::data::ColumnType::String]);
    let mut impute_mean = instance(
        &sandbox,
        "a",
        guests::SIMPLE_IMPUTER,
        &[("strategy", text("mean"))],
    )
    .await;
    let mut scale = instance(&sandbox, "b", guests::STANDARD_SCALER, &[]).await;
    let mut impute_mode = instance(
        &sandbox,
        "c",
        guests::SIMPLE_IMPUTER,
        &[("string_strategy", text("most_frequent"))],
    )
    .await;
    let mut encode = instance(&sandbox, "d", guests::ONE_HOT_ENCODER, &[]).await;
    let mut model = instance(
        &sandbox,
        "e",
        guests::LOGISTIC_REGRESSION,
        &[("c", kernel_host::bindings::ParamValue::F64(1.0))],
    )
    .await;
    let mut features = async |x: Frame, fit: bool| {
        let (num, _) = numeric.split(x.clone()).unwrap();
        let (cat, _) = strings.split(x).unwrap();
        if fit {
            impute_mean.fit(&num, None).await.unwrap();
        }
        let num = impute_mean.transform(&num).await.unwrap();
        if fit {
            scale.fit(&num, None).await.unwrap();
        }
        let num = scale.transform(&num).await.unwrap();
        if fit {
            impute_mode.fit(&cat, None).await.unwrap();
        }
        let cat = impute_mode.transform(&cat).await.unwrap();
        if fit {
            encode.fit(&cat, None).await.unwrap();
        }
        let cat = encode.transform(&cat).await.unwrap();
        concat(vec![("scale".into(), num), ("encode".into(), cat)]).unwrap()
    };
    let train = features(p.x_train, true).await;
    let test = features(p.x_test.unwrap(), false).await;
    model.fit(&train, p.y_train.as_ref()).await.unwrap();
    model.predict_proba(&test).await.unwrap()
}

fn bits(f: &Frame) -> Vec<u64> {
    f.columns
        .iter()
        .flat_map(|c| f64s(c).iter().map(|v| v.to_bits()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_builder_and_step_by_step_agree_exactly() {
    let from_toml = probabilities(toml()).await;
    let from_builder = probabilities(built()).await;
    let reference = step_by_step().await;
    assert_eq!(from_toml.column_names(), ["Adelie", "Chinstrap", "Gentoo"]);
    assert_eq!(bits(&from_toml), bits(&from_builder));
    assert_eq!(bits(&from_toml), bits(&reference));
}

/// Graph mistakes, each named with the steps involved.
#[test]
fn graph_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "a,b\n1,2\n").unwrap();
    let base = format!(
        "[data]\ntrain = \"d.csv\"\n[kernels.k]\nsource = {:?}\n[kernels.m]\nsource = {:?}\n",
        guests::STANDARD_SCALER,
        guests::STANDARD_SCALER
    );
    let cases = [
        (
            "[[pipeline.step]]\nid = \"a\"\nkernel = \"k\"\ninputs = [\"c\"]\n[[pipeline.step]]\nid = \"b\"\nkernel = \"k\"\ninputs = [\"a\"]\n[[pipeline.step]]\nid = \"c\"\nkernel = \"k\"\ninputs = [\"b\"]\n",
            "the steps form a cycle: a → b → c → a",
        ),
        (
            "[[pipeline.step]]\nid = \"a\"\nkernel = \"k\"\ninputs = [\"nowhere\"]\n",
            "step `a` takes input `nowhere`, which is neither `source` nor a step (steps: a)",
        ),
        (
            "[[pipeline.step]]\nid = \"a\"\nkernel = \"k\"\n[[pipeline.step]]\nid = \"b\"\nkernel = \"m\"\ninputs = [\"source\"]\n",
            "steps `a` and `b` feed no other step; a pipeline ends in exactly one step",
        ),
        (
            "[[pipeline.step]]\nid = \"a\"\nkernel = \"k\"\ncolumns = [\"a\"]\ncolumn-types = [\"f64\"]\n",
            "step `a` gives both `columns` and `column-types`",
        ),
        (
            "[[pipeline.step]]\nid = \"a\"\nkernel = \"k\"\n[[pipeline.step]]\nid = \"a\"\nkernel = \"m\"\n",
            "step `a` appears twice",
        ),
        (
            "[[pipeline.step]]\nid = \"a\"\nkernel = \"zz\"\n",
            "step `a` names no kernel (`zz`); defined kernels: k, m",
        ),
        (
            "steps = [\"k\"]\n[[pipeline.step]]\nid = \"a\"\n",
            "give either `steps = [...]` or `[[pipeline.step]]` tables, not both",
        ),
    ];
    for (pipeline, expected) in cases {
        let text = format!("[pipeline]\n{pipeline}{base}");
        let errors = Plan::parse_all(&dir.path().join("m.toml"), &text).unwrap_err();
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            all.iter().any(|e| e.contains(expected)),
            "expected `{expected}` in {all:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_clash_between_branches_names_both_steps() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "a,b\n1,2\n3,5\n").unwrap();
    let text = format!(
        "[pipeline]\n[[pipeline.step]]\nid = \"left\"\nkernel = \"k\"\ninputs = [\"source\"]\n[[pipeline.step]]\nid = \"right\"\nkernel = \"k\"\ninputs = [\"source\"]\n\
         [[pipeline.step]]\nid = \"join\"\nkernel = \"k\"\ninputs = [\"left\", \"right\"]\n[data]\ntrain = \"d.csv\"\n[kernels.k]\nsource = {:?}\n",
        guests::STANDARD_SCALER
    );
    let path = dir.path().join("m.toml");
    std::fs::write(&path, text).unwrap();
    let error = crate::common::run(&sandbox(), Plan::load(&path).unwrap())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Manifest(_)), "{message}");
    assert!(
        message.contains("m.toml")
            && message.contains(
                "step `join` cannot join its inputs: column `a` comes from both `left` and `right`"
            ),
        "{message}"
    );
}

/// Two branches that each burn a known amount of CPU, joined at the end.
fn burning(dir: &tempfile::TempDir, left: &str, right: &str) -> Plan {
    std::fs::write(dir.path().join("d.csv"), "x1,x2\n1,2\n3,4\n").unwrap();
    let text = format!(
        "[pipeline]\n\
         [[pipeline.step]]\nid = \"left\"\ninputs = [\"source\"]\ncolumns = [\"x1\"]\n\
         [[pipeline.step]]\nid = \"right\"\ninputs = [\"source\"]\ncolumns = [\"x2\"]\n\
         [[pipeline.step]]\nid = \"join\"\ninputs = [\"left\", \"right\"]\n\
         [data]\ntrain = \"d.csv\"\n\
         [kernels.left]\nsource = {hostile:?}\n{left}\n\
         [kernels.right]\nsource = {hostile:?}\n{right}\n\
         [kernels.join]\nsource = {hostile:?}\n",
        hostile = guests::HOSTILE
    );
    let path = dir.path().join("m.toml");
    std::fs::write(&path, text).unwrap();
    Plan::load(&path).unwrap()
}

const BURN: &str = "params = { behaviour = \"burn\", target = \"30000000\" }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_branches_run_at_the_same_time() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Telemetry::builder().record().build().unwrap();
    let report = crate::common::run(&sandbox_with(recorder.clone()), burning(&dir, BURN, BURN))
        .await
        .unwrap();
    assert_eq!(report.steps.len(), 3);
    let fit = |step: &str| {
        recorder
            .recorded()
            .into_iter()
            .find(|(c, r)| c.step == step && r.operation == "fit" && c.pipeline == "m")
            .map(|(_, r)| (r.start, r.start + r.duration))
            .unwrap()
    };
    let (left, right) = (fit("left"), fit("right"));
    // Each started before the other finished: they ran at the same time,
    // whatever else the machine was doing.
    assert!(
        left.0 < right.1 && right.0 < left.1,
        "left {left:?} right {right:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_branch_times_out_while_the_other_completes() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Telemetry::builder().record().build().unwrap();
    let runaway = "params = { behaviour = \"loop\" }\nlimits = { timeout-ms = 300, fuel = 1_000_000_000_000_000 }";
    let error = crate::common::run(
        &sandbox_with(recorder.clone()),
        burning(&dir, runaway, BURN),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, Error::Kernel { kernel, fault: Fault::Timeout { .. }, .. } if kernel == "left"),
        "{error}"
    );
    let right: Vec<(&'static str, &'static str)> = recorder
        .recorded()
        .into_iter()
        .filter(|(c, _)| c.step == "right" && c.pipeline == "m")
        .map(|(_, r)| (r.operation, r.outcome.label()))
        .collect();
    assert!(
        right.contains(&("fit", "ok")) && right.contains(&("transform", "ok")),
        "{right:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_transforms_keep_row_order() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 5000;
    let mut csv = String::from("a,b\n");
    for i in 0..rows {
        csv.push_str(&format!("{},{}\n", (i * 37 % 101) as f64 * 0.5, i % 7));
    }
    std::fs::write(dir.path().join("d.csv"), csv).unwrap();
    let run = async |parallel: u32| {
        let text = format!(
            "[pipeline]\n[[pipeline.step]]\nid = \"scale\"\nparallel = {parallel}\n[data]\ntrain = \"d.csv\"\ntest = \"d.csv\"\n[output]\npredictions = \"out{parallel}.csv\"\n[kernels.scale]\nsource = {:?}\n",
            guests::STANDARD_SCALER
        );
        let path = dir.path().join(format!("m{parallel}.toml"));
        std::fs::write(&path, text).unwrap();
        let report = crate::common::run(&sandbox(), Plan::load(&path).unwrap())
            .await
            .unwrap();
        let out = kernel_host::data::read_csv(
            &dir.path().join(format!("out{parallel}.csv")),
            &Default::default(),
        )
        .unwrap();
        (report, out)
    };
    let (one, serial) = run(1).await;
    let (three, parallel) = run(3).await;
    assert_eq!(serial, parallel);
    assert_eq!(serial.rows as usize, rows);
    assert!(matches!(&serial.columns[1].values, ColumnValues::F64(_)));
    // The parallel run's extra calls are the workers' (configure, load-state, transform).
    assert!(
        three.steps[0].calls > one.steps[0].calls,
        "{} vs {}",
        three.steps[0].calls,
        one.steps[0].calls
    );
}

/// A graph fitted in chunks keeps its branches apart whatever is spilled
/// between passes: the three `data.spill` modes give byte-identical
/// predictions, and the same labels as the whole fit (the scaler's merged
/// statistics may move a probability in its last bits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_fitted_in_chunks_predicts_the_same_whatever_it_spills() {
    use kernel_host::manifest::Spill;
    let dir = tempfile::tempdir().unwrap();
    let predict = async |spill: Option<Spill>| {
        let mut plan = toml();
        let out = dir.path().join(format!("{spill:?}.csv"));
        plan.output.predictions = Some(out.clone());
        let report = match spill {
            Some(spill) => {
                plan.data.spill = spill;
                crate::common::run_chunked(&sandbox(), plan, 40).await
            }
            None => crate::common::run(&sandbox(), plan).await,
        }
        .unwrap();
        assert_eq!(report.train_rows, 258, "{spill:?}");
        std::fs::read(&out).unwrap()
    };
    let whole = predict(None).await;
    let labels = |csv: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(csv)
            .lines()
            .map(|l| l.split(',').take(2).collect::<Vec<_>>().join(","))
            .collect()
    };
    let input = predict(Some(Spill::Input)).await;
    assert_eq!(labels(&input), labels(&whole));
    for spill in [Spill::Outputs, Spill::None] {
        assert_eq!(predict(Some(spill)).await, input, "{spill:?} vs input");
    }
}

/// The blocking wrapper gives the same predictions as the async API.
#[test]
fn the_blocking_wrapper_agrees_with_the_async_api() {
    let manifest = toml();
    let data = crate::common::prepare(&manifest).unwrap();
    let mut pipeline =
        kernel_host::blocking::BlockingPipeline::load_in(&sandbox(), manifest).unwrap();
    pipeline.fit(data.x_train, data.y_train.as_ref()).unwrap();
    let Output::Predictions { probabilities, .. } =
        pipeline.predict(data.x_test.unwrap(), true).unwrap()
    else {
        panic!("expected predictions")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let expected = runtime.block_on(self::probabilities(toml()));
    assert_eq!(bits(&probabilities.unwrap()), bits(&expected));
}

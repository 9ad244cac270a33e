//! Each kernel, as a sandboxed component, against values computed
//! independently by scikit-learn and numpy (tests/reference/
//! make_references.py) on the real penguins data.

use crate::common::*;
use kernel_host::bindings::{ColumnValues, ExplainValue, Explanation, Frame, ParamValue};
use kernel_host_guests as guests;

const NUMERIC: [&str; 4] = [
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
];

fn select(frame: &Frame, names: &[&str]) -> Frame {
    let columns = names
        .iter()
        .map(|n| frame.column(n).unwrap().clone())
        .collect();
    Frame {
        rows: frame.rows,
        columns,
    }
}

fn entry<'a>(e: &'a Explanation, name: &str) -> &'a ExplainValue {
    &e.entries
        .iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("no `{name}` in {e:?}"))
        .value
}

fn vector(e: &Explanation, name: &str) -> Vec<f64> {
    match entry(e, name) {
        ExplainValue::Vector(v) => v.clone(),
        other => panic!("`{name}` is {other:?}"),
    }
}

#[tokio::test]
async fn standard_scaler_matches_sklearn() {
    let sandbox = sandbox();
    let reference = reference();
    let mut scaler = instance(&sandbox, "scale", guests::STANDARD_SCALER, &[]).await;
    let train = select(&penguins("train.csv"), &NUMERIC);
    scaler.fit(&train, None).await.unwrap();
    let explained = scaler.explain().await.unwrap();
    assert_close(
        &vector(&explained, "mean"),
        &floats(&reference, "scaler", "mean"),
        1e-12,
        "mean",
    );
    assert_close(
        &vector(&explained, "scale"),
        &floats(&reference, "scaler", "scale"),
        1e-12,
        "scale",
    );
    // Transformed columns have zero mean and unit population variance,
    // nulls stay null.
    let out = scaler.transform(&train).await.unwrap();
    let column = &out.columns[0];
    let nulls = column.nulls.clone().unwrap();
    let present: Vec<f64> = f64s(column)
        .iter()
        .zip(&nulls)
        .filter(|(_, n)| **n == 0)
        .map(|(v, _)| *v)
        .collect();
    let mean = present.iter().sum::<f64>() / present.len() as f64;
    let var = present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / present.len() as f64;
    assert!(
        mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12,
        "mean {mean} var {var}"
    );
}

#[tokio::test]
async fn simple_imputer_matches_sklearn() {
    let sandbox = sandbox();
    let reference = reference();
    let train = penguins("train.csv");
    for strategy in ["mean", "median", "most_frequent"] {
        let mut imputer = instance(
            &sandbox,
            "impute",
            guests::SIMPLE_IMPUTER,
            &[("strategy", text(strategy))],
        )
        .await;
        imputer.fit(&select(&train, &NUMERIC), None).await.unwrap();
        let explained = imputer.explain().await.unwrap();
        let fills: Vec<f64> = NUMERIC
            .iter()
            .map(|n| match entry(&explained, n) {
                ExplainValue::Scalar(v) => *v,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_close(
            &fills,
            &floats(&reference, "imputer", strategy),
            1e-12,
            strategy,
        );
    }
    let mut imputer = instance(&sandbox, "impute", guests::SIMPLE_IMPUTER, &[]).await;
    let strings = select(&train, &["island", "sex"]);
    imputer.fit(&strings, None).await.unwrap();
    let out = imputer.transform(&strings).await.unwrap();
    assert!(
        out.columns.iter().all(|c| c.nulls.is_none()),
        "nulls remain"
    );
    let explained = imputer.explain().await.unwrap();
    let expected = reference["imputer"]["most_frequent_strings"]
        .as_array()
        .unwrap()
        .clone();
    for (name, want) in ["island", "sex"].iter().zip(expected) {
        assert_eq!(
            entry(&explained, name),
            &ExplainValue::Text(want.as_str().unwrap().into())
        );
    }
}

#[tokio::test]
async fn one_hot_encoder_counts_match_the_data() {
    let sandbox = sandbox();
    let data = select(&penguins("penguins.csv"), &["island"]);
    let mut encoder = instance(&sandbox, "encode", guests::ONE_HOT_ENCODER, &[]).await;
    encoder.fit(&data, None).await.unwrap();
    let out = encoder.transform(&data).await.unwrap();
    assert_eq!(
        out.column_names(),
        ["island_Biscoe", "island_Dream", "island_Torgersen"]
    );
    // Counts from the CSV itself: 168 Biscoe, 124 Dream, 52 Torgersen.
    let counts: Vec<f64> = out.columns.iter().map(|c| f64s(c).iter().sum()).collect();
    assert_eq!(counts, [168.0, 124.0, 52.0]);
    // An unseen category is all zeros by default.
    let unseen = Frame {
        rows: 1,
        columns: vec![kernel_host::bindings::Column {
            name: "island".into(),
            values: ColumnValues::String(kernel_host::bindings::Texts::from(["Atlantis"])),
            nulls: None,
        }],
    };
    let out = encoder.transform(&unseen).await.unwrap();
    assert!(out.columns.iter().all(|c| f64s(c) == [0.0]));
}

#[tokio::test]
async fn logistic_regression_probabilities_match_sklearn() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let manifest = crate::penguins::manifest_with(&dir, "c = 0.5, max_iter = 10000, tol = 1e-10");
    let report = crate::common::run(&sandbox(), manifest).await.unwrap();
    assert!(report.metric.unwrap().1 >= 0.99);
    let predictions =
        kernel_host::data::read_csv(&dir.path().join("predictions.csv"), &Default::default())
            .unwrap();
    for class in ["Adelie", "Chinstrap", "Gentoo"] {
        let ours = f64s(predictions.column(&format!("proba_{class}")).unwrap());
        let theirs = floats(&reference, "logistic", &format!("proba_{class}"));
        // Both solvers stop near the optimum; 1e-5 absolute is far tighter
        // than any change of a predicted class.
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                (a - b).abs() < 1e-5,
                "row {i} class {class}: {a} vs sklearn {b}"
            );
        }
    }
}

/// Rows of penguins.csv with all four measurements.
fn complete_numeric() -> Frame {
    let all = select(&penguins("penguins.csv"), &NUMERIC);
    let keep: Vec<usize> = (0..all.rows as usize)
        .filter(|r| {
            all.columns
                .iter()
                .all(|c| kernel_host::data::cell_text(c, *r).is_some())
        })
        .collect();
    all.take_rows(&keep)
}

#[tokio::test]
async fn ridge_regression_matches_sklearn_and_the_closed_form() {
    let sandbox = sandbox();
    let reference = reference();
    let mut data = complete_numeric();
    let y = data.take_column("body_mass_g").unwrap();
    let mut ridge = instance(
        &sandbox,
        "ridge",
        guests::RIDGE_REGRESSION,
        &[("alpha", ParamValue::F64(10.0))],
    )
    .await;
    ridge.fit(&data, Some(&y)).await.unwrap();
    let explained = ridge.explain().await.unwrap();
    assert_close(
        &vector(&explained, "coef"),
        &floats(&reference, "ridge", "coef"),
        1e-9,
        "coef",
    );
    let intercept = match entry(&explained, "intercept") {
        ExplainValue::Scalar(v) => *v,
        other => panic!("{other:?}"),
    };
    let expected = reference["ridge"]["intercept"].as_float().unwrap();
    assert!(
        (intercept - expected).abs() < 1e-9 * expected.abs(),
        "{intercept} vs {expected}"
    );
    let predicted = ridge.predict(&data).await.unwrap();
    assert!(kernel_host::score::r2(&predicted, &y).unwrap() > 0.7);
}

#[tokio::test]
async fn k_means_reaches_sklearn_inertia() {
    let sandbox = sandbox();
    let reference = reference();
    let data = complete_numeric();
    let mut scaler = instance(&sandbox, "scale", guests::STANDARD_SCALER, &[]).await;
    scaler.fit(&data, None).await.unwrap();
    let scaled = scaler.transform(&data).await.unwrap();
    let params = [
        ("k", ParamValue::S64(3)),
        ("n_init", ParamValue::S64(20)),
        ("seed", ParamValue::S64(0)),
    ];
    let mut kmeans = instance(&sandbox, "cluster", guests::K_MEANS, &params).await;
    kmeans.fit(&scaled, None).await.unwrap();
    let explained = kmeans.explain().await.unwrap();
    let inertia = match entry(&explained, "inertia") {
        ExplainValue::Scalar(v) => *v,
        other => panic!("{other:?}"),
    };
    let expected = reference["kmeans"]["inertia"].as_float().unwrap();
    assert!(
        (inertia - expected).abs() <= 1e-6 * expected,
        "inertia {inertia} vs sklearn {expected}"
    );
    let ExplainValue::Table(centres) = entry(&explained, "centres") else {
        panic!()
    };
    let mut first: Vec<f64> = f64s(&centres.columns[0]).to_vec();
    first.sort_by(f64::total_cmp);
    assert_close(
        &first,
        &floats(&reference, "kmeans", "sorted_first_coordinates"),
        1e-6,
        "centres",
    );
    let labels = kmeans.predict(&scaled).await.unwrap();
    assert_eq!(kernel_host::data::column_len(&labels), scaled.rows as usize);
}

#[tokio::test]
async fn state_round_trips_into_a_new_instance() {
    let sandbox = sandbox();
    let mut train = penguins("train.csv");
    let y = train.take_column("species").unwrap();
    let x = select(&train, &NUMERIC[..3]);
    let x = {
        let mut imputer = instance(&sandbox, "impute", guests::SIMPLE_IMPUTER, &[]).await;
        imputer.fit(&x, None).await.unwrap();
        imputer.transform(&x).await.unwrap()
    };
    let mut model = instance(&sandbox, "model", guests::LOGISTIC_REGRESSION, &[]).await;
    model.fit(&x, Some(&y)).await.unwrap();
    let state = model.save_state().await.unwrap();
    let mut restored = instance(&sandbox, "model", guests::LOGISTIC_REGRESSION, &[]).await;
    restored.load_state(&state).await.unwrap();
    assert_eq!(
        restored.predict_proba(&x).await.unwrap(),
        model.predict_proba(&x).await.unwrap()
    );
    // Another kernel's state is refused with a clear reason.
    let mut scaler = instance(&sandbox, "scale", guests::STANDARD_SCALER, &[]).await;
    let (_, fault) = fault_of(scaler.load_state(&state).await);
    assert!(fault.to_string().contains("invalid state"), "{fault}");
}

//! The example pipeline, end to end, against scikit-learn.
//!
//! scikit-learn's number, from examples/penguins/reference.py (scikit-learn
//! 1.9.1): SimpleImputer(mean / most_frequent) → OneHotEncoder → StandardScaler
//! → LogisticRegression(C=1), fitted on data/train.csv (258 rows, a
//! stratified 75 % split with random_state=0), scores 1.000 accuracy on
//! data/test.csv (86 rows); 0.994 in 5-fold cross-validation.

use crate::common::*;
use kernel_host::Plan;

const SKLEARN_HOLDOUT_ACCURACY: f64 = 1.0;

/// The example manifest with the model's params replaced and predictions
/// written into `dir`.
pub fn manifest_with(dir: &tempfile::TempDir, model_params: &str) -> Plan {
    let path = workspace().join("examples/penguins/pipeline.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "params = { c = 1.0, max_iter = 1000 }",
        &format!("params = {{ {model_params} }}"),
    );
    let mut manifest = Plan::parse(&path, &text).unwrap();
    manifest.output.predictions = Some(dir.path().join("predictions.csv"));
    manifest
}

#[tokio::test]
async fn penguins_pipeline_is_within_a_point_of_sklearn() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with(&dir, "c = 1.0, max_iter = 1000");
    let report = crate::common::run(&sandbox(), manifest).await.unwrap();
    assert_eq!((report.train_rows, report.test_rows), (258, 86));
    let (name, accuracy) = report.metric.unwrap();
    assert_eq!(name, "accuracy");
    assert!(
        accuracy >= SKLEARN_HOLDOUT_ACCURACY - 0.01,
        "accuracy {accuracy}"
    );
    assert_eq!(report.steps.len(), 4);
    assert!(report.steps.iter().all(|s| s.fuel > 0 && s.peak_memory > 0));
    let predictions =
        kernel_host::data::read_csv(&dir.path().join("predictions.csv"), &Default::default())
            .unwrap();
    assert_eq!(predictions.rows, 86);
    assert_eq!(
        predictions.column_names(),
        [
            "species_true",
            "prediction",
            "proba_Adelie",
            "proba_Chinstrap",
            "proba_Gentoo"
        ]
    );
}

#[tokio::test]
async fn a_split_of_one_file_works_too() {
    let path = workspace().join("examples/penguins/pipeline.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "train = \"data/train.csv\"\ntest = \"data/test.csv\"",
        "input = \"data/penguins.csv\"\nsplit = { test-fraction = 0.25, seed = 3 }",
    );
    let mut manifest = Plan::parse(&path, &text).unwrap();
    manifest.output.predictions = None;
    let report = crate::common::run(&sandbox(), manifest).await.unwrap();
    assert_eq!(report.train_rows + report.test_rows, 344);
    assert!(report.metric.unwrap().1 > 0.95);
}

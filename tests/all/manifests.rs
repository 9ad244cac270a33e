//! Manifests with mistakes: each gives one error naming the file, the line
//! when known, the key, and what to do. A table of golden cases.

use crate::common::*;
use kernel_host::{Error, Plan};
use kernel_host_guests as guests;

const GOOD: &str = r#"[pipeline]
steps = ["scale", "model"]

[data]
train = "train.csv"
target = "species"

[kernels.scale]
source = "SCALER"

[kernels.model]
source = "MODEL"
params = { c = 1.0 }
"#;

/// Replacements applied to GOOD, in order.
type Edits = &'static [(&'static str, &'static str)];

/// (what, edits, expected fragments of the message).
const CASES: &[(&str, Edits, &[&str])] = &[
    (
        "unknown key",
        &[("[pipeline]\n", "[pipeline]\ncolour = 1\n")],
        &["m.toml:2", "unknown field `colour`"],
    ),
    (
        "toml syntax",
        &[("target = \"species\"", "target = species\"")],
        &["m.toml:6", "missing opening quote"],
    ),
    (
        "missing kernel file",
        &[("\"MODEL\"", "\"nowhere.wasm\"")],
        &[
            "m.toml:12",
            "`kernels.model.source`",
            "kernel file not found",
            "nowhere.wasm",
        ],
    ),
    (
        "malformed pin",
        &[(
            "params = { c = 1.0 }",
            "params = { c = 1.0 }\nsha256 = \"abc\"",
        )],
        &[
            "m.toml:14",
            "`kernels.model.sha256`",
            "64 hexadecimal digits",
        ],
    ),
    (
        "wrong pin",
        &[(
            "params = { c = 1.0 }",
            "params = { c = 1.0 }\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"",
        )],
        &["m.toml:11", "`kernels.model.sha256`", "not the pinned 0000"],
    ),
    (
        "unknown step",
        &[("[\"scale\", \"model\"]", "[\"scale\", \"modle\"]")],
        &[
            "m.toml:2",
            "step `modle` names no kernel; defined kernels: model, scale",
        ],
    ),
    (
        "duplicate step",
        &[(
            "[\"scale\", \"model\"]",
            "[\"scale\", \"scale\", \"model\"]",
        )],
        &["`pipeline.steps`", "appears twice"],
    ),
    (
        "param out of range",
        &[("c = 1.0", "c = -1.0")],
        &[
            "m.toml:11",
            "`kernels.model.params`",
            "`c` = -1 is out of range: expected a number in [1e-12, 1e12]",
        ],
    ),
    (
        "unknown param",
        &[("c = 1.0", "colour = 1")],
        &[
            "`kernels.model.params`",
            "unknown parameter `colour`; this kernel accepts: c, fit_intercept, max_iter, tol",
        ],
    ),
    (
        "param of wrong type",
        &[("c = 1.0", "c = \"big\"")],
        &["`kernels.model.params`", "expects a number"],
    ),
    (
        "param that is a list",
        &[("c = 1.0", "c = [1]")],
        &["`kernels.model.params.c`", "numbers, booleans or strings"],
    ),
    (
        "missing data file",
        &[("\"train.csv\"", "\"absent.csv\"")],
        &["m.toml:5", "`data.train`", "data file not found"],
    ),
    (
        "model before the end",
        &[("[\"scale\", \"model\"]", "[\"model\", \"scale\"]")],
        &[
            "`pipeline.steps`",
            "step `model` (logistic-regression@1.0.0) is a classifier; only the last step may be a model",
        ],
    ),
    (
        "unknown target",
        &[("target = \"species\"", "target = \"colour\"")],
        &["`data.target`", "target column `colour` is not in"],
    ),
    (
        "relative grant",
        &[(
            "[kernels.scale]\n",
            "[kernels.scale]\ngrants = { read-dirs = { \"data\" = \".\" } }\n",
        )],
        &["`kernels.scale.grants.read-dirs`", "must be absolute"],
    ),
    (
        "zero fuel",
        &[(
            "[kernels.scale]\n",
            "[kernels.scale]\nlimits = { fuel = 0 }\n",
        )],
        &["`kernels.scale.limits`", "fuel must be greater than 0"],
    ),
    (
        "no data",
        &[("train = \"train.csv\"\n", "")],
        &["`data`", "no input"],
    ),
];

/// Loads and runs a manifest; returns the first error.
async fn error_of(dir: &tempfile::TempDir, text: &str) -> Error {
    let path = dir.path().join("m.toml");
    std::fs::write(&path, text).unwrap();
    let manifest = match Plan::load(&path) {
        Ok(m) => m,
        Err(e) => return e.into(),
    };
    match crate::common::run(&sandbox(), manifest).await {
        Ok(report) => panic!("expected an error, the run succeeded: {report:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn each_mistake_is_named_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("train.csv"),
        "a,b,species\n1,2,x\n2,1,y\n3,3,x\n4,1,y\n",
    )
    .unwrap();
    let fill = |text: &str| {
        text.replace("SCALER", guests::STANDARD_SCALER)
            .replace("MODEL", guests::LOGISTIC_REGRESSION)
    };
    let good = fill(GOOD);
    // The unedited manifest runs, so every failure below is the edit's.
    let path = dir.path().join("good.toml");
    std::fs::write(&path, &good).unwrap();
    crate::common::run(&sandbox(), Plan::load(&path).unwrap())
        .await
        .unwrap();

    let mut failures = Vec::new();
    for (what, edits, expected) in CASES {
        let mut text = GOOD.to_string();
        for (from, to) in *edits {
            assert!(
                text.contains(from),
                "{what}: edit target `{from}` not found"
            );
            text = text.replacen(from, to, 1);
        }
        let error = error_of(&dir, &fill(&text)).await;
        let message = error.to_string();
        if !matches!(error, Error::Manifest(_)) {
            failures.push(format!("{what}: not a manifest error: {message}"));
        }
        if error.exit_code() != 1 {
            failures.push(format!("{what}: exit code {}", error.exit_code()));
        }
        for fragment in *expected {
            if !message.contains(fragment) {
                failures.push(format!("{what}: `{fragment}` missing from: {message}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

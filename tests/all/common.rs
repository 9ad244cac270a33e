//! Helpers shared by the test modules.

#![allow(dead_code)]

use kernel_host::bindings::{Column, ColumnValues, Frame, Param, ParamValue};
use kernel_host::data::{CsvOptions, read_csv};
use kernel_host::{
    Error, Grants, KernelComponent, KernelInstance, Limits, Sandbox, SandboxBuilder,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `kernel-host` binary, run from the workspace with the shared
/// compiled-component cache.
pub fn kernel_host_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kernel-host"));
    command
        .env(
            "KERNEL_HOST_CACHE_DIR",
            workspace().join("target/test-cache"),
        )
        // Tests keep no run history unless they set one up.
        .env("KERNEL_HOST_HISTORY", "off")
        .current_dir(workspace());
    command
}

/// Runs `kernel-host` with `args` to completion.
pub fn kernel_host(args: &[&str]) -> std::process::Output {
    kernel_host_command().args(args).output().unwrap()
}

pub fn workspace() -> PathBuf {
    Path::new(kernel_host_guests::WORKSPACE)
        .canonicalize()
        .unwrap()
}

/// A sandbox with the default settings and a compiled-component cache that
/// lives in the target directory, shared by every test.
pub fn sandbox() -> Sandbox {
    sandbox_with(kernel_host::Telemetry::none())
}

/// A sandbox with the tests' compile cache, set up further by `with`.
pub fn sandbox_from(with: impl FnOnce(SandboxBuilder) -> SandboxBuilder) -> Sandbox {
    with(Sandbox::builder().cache_dir(Some(workspace().join("target/test-cache"))))
        .build()
        .unwrap()
}

/// Like [`sandbox`], reporting calls to `telemetry`.
pub fn sandbox_with(telemetry: kernel_host::Telemetry) -> Sandbox {
    Sandbox::builder()
        .observer(telemetry)
        .cache_dir(Some(workspace().join("target/test-cache")))
        .build()
        .unwrap()
}

pub async fn load(sandbox: &Sandbox, id: &str, path: &str) -> KernelComponent {
    KernelComponent::load(sandbox, id, Path::new(path), None)
        .await
        .unwrap()
}

pub async fn instance(
    sandbox: &Sandbox,
    id: &str,
    path: &str,
    params: &[(&str, ParamValue)],
) -> KernelInstance {
    instance_with(
        sandbox,
        id,
        path,
        params,
        Limits::default(),
        Grants::default(),
    )
    .await
}

pub async fn instance_with(
    sandbox: &Sandbox,
    id: &str,
    path: &str,
    params: &[(&str, ParamValue)],
    limits: Limits,
    grants: Grants,
) -> KernelInstance {
    let component = load(sandbox, id, path).await;
    let mut instance = component.instantiate(limits, grants).await.unwrap();
    instance.configure(&params_of(params)).await.unwrap();
    instance
}

pub fn params_of(params: &[(&str, ParamValue)]) -> Vec<Param> {
    params
        .iter()
        .map(|(n, v)| Param {
            name: n.to_string(),
            value: v.clone(),
        })
        .collect()
}

pub fn text(s: &str) -> ParamValue {
    ParamValue::String(s.into())
}

pub fn limits(fuel: u64, memory_mib: u64, timeout_ms: u64) -> Limits {
    Limits {
        tensor_bytes: Limits::default().tensor_bytes,
        fuel,
        memory_bytes: memory_mib << 20,
        timeout: Duration::from_millis(timeout_ms),
    }
}

pub fn f64_column(name: &str, values: Vec<f64>) -> Column {
    Column {
        name: name.into(),
        values: ColumnValues::F64(values),
        nulls: None,
    }
}

pub fn frame(columns: Vec<Column>) -> Frame {
    let rows = columns.first().map_or(0, kernel_host::data::column_len) as u32;
    Frame { rows, columns }
}

pub fn f64s(column: &Column) -> &[f64] {
    match &column.values {
        ColumnValues::F64(v) => v,
        other => panic!("expected an f64 column, got {other:?}"),
    }
}

/// One of the penguins CSV files (`train.csv`, `test.csv`, `penguins.csv`).
pub fn penguins(file: &str) -> Frame {
    read_csv(
        &workspace().join("examples/penguins/data").join(file),
        &CsvOptions::default(),
    )
    .unwrap()
}

/// The scikit-learn / numpy reference values.
pub fn reference() -> toml::Table {
    let text = std::fs::read_to_string(workspace().join("tests/fixtures/reference.toml")).unwrap();
    text.parse().unwrap()
}

pub fn floats(table: &toml::Table, section: &str, key: &str) -> Vec<f64> {
    table[section][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_float().unwrap())
        .collect()
}

pub fn assert_close(actual: &[f64], expected: &[f64], rel: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let tol = rel * e.abs().max(1.0);
        assert!(
            (a - e).abs() <= tol,
            "{what}[{i}]: {a} vs expected {e} (tolerance {tol})"
        );
    }
}

/// The fault of a kernel error, or a panic naming what came instead.
pub fn fault_of<T: std::fmt::Debug, E: Into<Error>>(
    result: Result<T, E>,
) -> (String, kernel_host::Fault) {
    match result.map_err(Into::into) {
        Err(Error::Kernel { kernel, fault, .. }) => (kernel, fault),
        other => panic!("expected a kernel fault, got {other:?}"),
    }
}

/// The whole job on a plan, as `kernel-host run` does it.
pub async fn run(
    sandbox: &Sandbox,
    plan: kernel_host::Plan,
) -> Result<kernel_host::report::RunReport, Error> {
    let options = kernel_host::job::JobOptions {
        predict: true,
        ..Default::default()
    };
    kernel_host::job::run(
        sandbox,
        kernel_host::job::Source::Plan(plan),
        &options,
        &kernel_host::job::Quiet,
    )
    .await
}

/// [`run`] reading (and fitting) `chunk_rows` rows at a time.
pub async fn run_chunked(
    sandbox: &Sandbox,
    mut plan: kernel_host::Plan,
    chunk_rows: usize,
) -> Result<kernel_host::report::RunReport, Error> {
    plan.data.chunk_rows = Some(chunk_rows);
    run(sandbox, plan).await
}

/// A plan's data read whole: features and target of the training and the
/// test rows.
pub struct Prepared {
    pub x_train: Frame,
    pub y_train: Option<Column>,
    pub x_test: Option<Frame>,
    pub y_test: Option<Column>,
}

pub fn prepare(plan: &kernel_host::Plan) -> Result<Prepared, Error> {
    use kernel_host::job::{Held, features_and_target, read_training};
    let (train, held) = read_training(plan)?;
    let file = PathBuf::from("<data>");
    let (x_train, y_train) = features_and_target(plan, train, &file, true)?;
    let test = match held {
        Held::Rows(rows) => Some(rows),
        Held::File(Some(path)) => Some(kernel_host::data::read_table(&path, &plan.data.csv)?),
        Held::File(None) => None,
    };
    let (x_test, y_test) = match test {
        Some(test) => {
            let (x, y) = features_and_target(plan, test, &file, false)?;
            (Some(x), y)
        }
        None => (None, None),
    };
    Ok(Prepared {
        x_train,
        y_train,
        x_test,
        y_test,
    })
}

/// `kernel-host stream ARGS` with `input` on stdin: the exit code, stdout
/// and stderr.
pub fn stream(args: &[&str], input: &[u8]) -> (Option<i32>, Vec<u8>, String) {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = kernel_host_command()
        .arg("stream")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

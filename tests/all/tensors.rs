//! The host tensor API: every operation against a float64 reference on each
//! backend, caps, isolation and hand-over between kernels, the 0.1.0
//! contract still loading, and the kernels built on tensors.

use crate::common::*;
use kernel_host::bindings::{Column, ColumnValues, Frame, ParamValue};
use kernel_host::tensor::selftest::values;
use kernel_host::tensor::{Backend, Cpu, CudaProbe, probe_cuda};
use kernel_host::{Fault, Grants, Limits};
use kernel_host_guests as guests;

/// Runs the conformance suite on `backend`, failing on any operation off
/// the f64 reference by more than the tolerance.
fn conforms(backend: &dyn Backend) {
    let checks = kernel_host::tensor::selftest::every_operation(backend);
    assert!(checks.len() > 60, "{} checks", checks.len());
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed())
        .map(|c| format!("{}: {:?}", c.operation, c.outcome))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn cpu_operations_match_a_float64_reference() {
    conforms(&Cpu::new());
}

#[test]
#[ignore = "needs an NVIDIA GPU with CUDA 12/13 libraries: scripts/gpu-check.sh runs it"]
fn cuda_operations_match_a_float64_reference() {
    match probe_cuda() {
        CudaProbe::Ready(cuda) => conforms(&*cuda),
        CudaProbe::Unavailable(why) => panic!("CUDA is not usable here: {why}"),
    }
}

pub async fn probe(
    sandbox: &kernel_host::Sandbox,
    behaviour: &str,
    target: &str,
    limits: Limits,
) -> kernel_host::KernelInstance {
    instance_with(
        sandbox,
        behaviour,
        guests::TENSOR_PROBE,
        &[("behaviour", text(behaviour)), ("target", text(target))],
        limits,
        Grants::default(),
    )
    .await
}

#[tokio::test]
async fn a_kernel_hoarding_tensors_hits_its_cap_with_a_typed_error() {
    let telemetry = kernel_host::Telemetry::builder().metrics().build().unwrap();
    let sandbox = sandbox_with(telemetry.clone());
    let limits = Limits {
        tensor_bytes: 64 << 20,
        ..Limits::default()
    };
    let mut hoarder = probe(&sandbox, "hoard", "", limits).await;
    let x = frame(vec![f64_column("a", vec![1.0])]);
    let (kernel, fault) = fault_of(hoarder.fit(&x, None).await);
    assert_eq!(kernel, "hoard");
    let message = fault.to_string();
    assert!(
        message.contains("out of tensor memory")
            && message.contains("cap of 64 MiB")
            && message.contains("limits.tensor-mib"),
        "{message}"
    );
    // The same process, and the same kernel, carry on.
    hoarder
        .configure(&params_of(&[("behaviour", text("none"))]))
        .await
        .unwrap();
    hoarder.fit(&x, None).await.unwrap();
    // It held up to its cap, never more; the failed store's tensors are gone.
    let peak = hoarder.stats().tensor_peak;
    assert!(peak > 60 << 20 && peak <= 64 << 20, "{peak}");
    // The peak is a Prometheus gauge too.
    let text = telemetry.metrics().unwrap().render();
    let gauge = text
        .lines()
        .find(|l| l.starts_with("kernel_host_tensor_bytes_peak{") && l.contains("step=\"hoard\""))
        .unwrap_or_else(|| panic!("{text}"));
    let value: f64 = gauge.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        value > (60 << 20) as f64 && value <= (64 << 20) as f64,
        "{gauge}"
    );
}

#[tokio::test]
async fn a_result_past_the_cap_is_refused_before_it_is_allocated() {
    let sandbox = sandbox();
    let mut bomb = probe(&sandbox, "outer", "", Limits::default()).await;
    let x = frame(vec![f64_column("a", vec![1.0])]);
    let (_, fault) = fault_of(bomb.fit(&x, None).await);
    let message = fault.to_string();
    assert!(
        message.contains("out of tensor memory") && message.contains("4096 MiB"),
        "{message}"
    );
    // Nothing that large was ever held.
    assert!(
        bomb.stats().tensor_peak < 1 << 20,
        "{}",
        bomb.stats().tensor_peak
    );
}

#[tokio::test]
async fn publishing_cannot_escape_the_caps() {
    let sandbox = sandbox();
    let limits = Limits {
        tensor_bytes: 8 << 20,
        ..Limits::default()
    };
    let mut flood = probe(&sandbox, "flood", "", limits).await;
    let x = frame(vec![f64_column("a", vec![1.0])]);
    let (_, fault) = fault_of(flood.fit(&x, None).await);
    let message = fault.to_string();
    assert!(
        message.contains("out of tensor memory") && message.contains("waiting to be taken"),
        "{message}"
    );
}

#[tokio::test]
async fn tensors_cross_kernels_only_through_publish_and_take() {
    let sandbox = sandbox();
    let x = frame(vec![f64_column("a", vec![1.5, -2.0, 3.25])]);
    let mut publisher = probe(&sandbox, "publish", "features", Limits::default()).await;
    publisher.fit(&x, None).await.unwrap();
    let mut taker = probe(&sandbox, "take", "features", Limits::default()).await;
    let out = taker.transform(&x).await.unwrap();
    assert_eq!(f64s(&out.columns[0]), [1.5, -2.0, 3.25]);
    // Taken once: a second take finds nothing.
    let (_, fault) = fault_of(taker.transform(&x).await);
    assert!(
        fault
            .to_string()
            .contains("no tensor was published as `features`"),
        "{fault}"
    );
    // A handle number from elsewhere names nothing in this kernel's table.
    publisher.fit(&x, None).await.unwrap();
    let mut thief = probe(&sandbox, "forge", "1", Limits::default()).await;
    let (kernel, fault) = fault_of(thief.transform(&x).await);
    assert_eq!(kernel, "forge");
    assert!(matches!(fault, Fault::Trap { .. }), "{fault}");
}

#[tokio::test]
async fn a_kernel_built_for_the_previous_contract_still_runs() {
    let sandbox = sandbox();
    let component = load(&sandbox, "legacy", guests::LEGACY_KERNEL).await;
    assert_eq!(component.wit_version(), "0.1.0");
    let mut legacy = component
        .instantiate(Limits::default(), Grants::default())
        .await
        .unwrap();
    let x = frame(vec![f64_column("a", vec![1.0, 2.0, 6.0])]);
    legacy.fit(&x, None).await.unwrap();
    let out = legacy.transform(&x).await.unwrap();
    assert_eq!(f64s(&out.columns[0]), [-2.0, -1.0, 3.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_built_for_contract_0_1_1_still_runs() {
    let sandbox = sandbox();
    let component = load(&sandbox, "contract", guests::CONTRACT_0_1_1).await;
    assert_eq!(component.wit_version(), "0.1.1");
    assert!(component.by_reference().is_empty());
    let mut kernel = component
        .instantiate(Limits::default(), Grants::default())
        .await
        .unwrap();
    let x = frame(vec![f64_column("a", vec![1.0, 2.0, 6.0])]);
    kernel.fit(&x, None).await.unwrap();
    // The mean (3) came from the host's tensor API (f32).
    let out = kernel.transform(&x).await.unwrap();
    assert_eq!(f64s(&out.columns[0]), [-2.0, -1.0, 3.0]);
}

/// Two interleaving half circles with noise, seeded (scikit-learn's
/// `make_moons`).
fn moons(n: usize, noise: f64, seed: u64) -> (Frame, Column) {
    let mut state = seed | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut x0, mut x1, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let t = std::f64::consts::PI * uniform();
        let (a, b, label) = if i % 2 == 0 {
            (t.cos(), t.sin(), "upper")
        } else {
            (1.0 - t.cos(), 0.5 - t.sin(), "lower")
        };
        let gauss = |u: &mut dyn FnMut() -> f64| {
            let (u1, u2) = (u().max(1e-12), u());
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        };
        x0.push(a + noise * gauss(&mut uniform));
        x1.push(b + noise * gauss(&mut uniform));
        y.push(label.to_string());
    }
    (
        frame(vec![f64_column("x0", x0), f64_column("x1", x1)]),
        Column {
            name: "moon".into(),
            values: ColumnValues::String(y.into()),
            nulls: None,
        },
    )
}

#[tokio::test]
async fn the_mlp_learns_two_moons() {
    let sandbox = sandbox();
    let (x, y) = moons(800, 0.1, 7);
    let (test_x, test_y) = moons(400, 0.1, 99);
    let params = [
        ("hidden", ParamValue::S64(16)),
        ("epochs", ParamValue::S64(60)),
        ("learning_rate", ParamValue::F64(0.02)),
        ("seed", ParamValue::S64(3)),
    ];
    let mut mlp = instance(&sandbox, "mlp", guests::MLP_CLASSIFIER, &params).await;
    mlp.fit(&x, Some(&y)).await.unwrap();
    let predicted = mlp.predict(&test_x).await.unwrap();
    let (ColumnValues::String(p), ColumnValues::String(t)) = (&predicted.values, &test_y.values)
    else {
        panic!("labels come back as strings");
    };
    let accuracy = p.iter().zip(t).filter(|(a, b)| a == b).count() as f64 / t.len() as f64;
    assert!(accuracy >= 0.95, "held-out accuracy {accuracy}");
    // A linear model cannot separate the moons this well.
    let mut linear = instance(&sandbox, "linear", guests::LOGISTIC_REGRESSION, &[]).await;
    linear.fit(&x, Some(&y)).await.unwrap();
    let lp = linear.predict(&test_x).await.unwrap();
    let ColumnValues::String(lp) = &lp.values else {
        panic!()
    };
    let linear_accuracy = lp.iter().zip(t).filter(|(a, b)| a == b).count() as f64 / t.len() as f64;
    assert!(
        linear_accuracy < accuracy,
        "linear {linear_accuracy} vs mlp {accuracy}"
    );
    eprintln!("two moons, held out: mlp {accuracy:.4}, logistic regression {linear_accuracy:.4}");
    // The same seed fits the same network.
    let mut again = instance(&sandbox, "mlp", guests::MLP_CLASSIFIER, &params).await;
    again.fit(&x, Some(&y)).await.unwrap();
    assert_eq!(
        again.predict_proba(&test_x).await.unwrap(),
        mlp.predict_proba(&test_x).await.unwrap()
    );
}

#[tokio::test]
async fn pca_finds_the_leading_eigenvectors() {
    // Correlated data: x1 = 2·x0 + noise, x2 independent, smaller.
    let n = 500;
    let base = values(n, 3, 11);
    let x0: Vec<f64> = (0..n).map(|i| base[3 * i]).collect();
    let x1: Vec<f64> = (0..n)
        .map(|i| 2.0 * base[3 * i] + 0.3 * base[3 * i + 1])
        .collect();
    let x2: Vec<f64> = (0..n).map(|i| 0.5 * base[3 * i + 2]).collect();
    let x = frame(vec![
        f64_column("x0", x0.clone()),
        f64_column("x1", x1.clone()),
        f64_column("x2", x2.clone()),
    ]);
    let sandbox = sandbox();
    let mut pca = instance(
        &sandbox,
        "pca",
        guests::PCA,
        &[("n_components", ParamValue::S64(2))],
    )
    .await;
    pca.fit(&x, None).await.unwrap();
    let out = pca.transform(&x).await.unwrap();
    // Reference in f64: the covariance's eigenvalues by power iteration.
    let data = [x0, x1, x2];
    let mean: Vec<f64> = data
        .iter()
        .map(|c| c.iter().sum::<f64>() / n as f64)
        .collect();
    let mut cov = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            cov[i][j] = (0..n)
                .map(|r| (data[i][r] - mean[i]) * (data[j][r] - mean[j]))
                .sum::<f64>()
                / (n as f64 - 1.0);
        }
    }
    let mut expected = Vec::new();
    for _ in 0..2 {
        let mut v = [1.0, 0.7, 0.3];
        let mut lambda = 0.0;
        for _ in 0..2000 {
            let w: Vec<f64> = (0..3)
                .map(|i| (0..3).map(|j| cov[i][j] * v[j]).sum())
                .collect();
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            lambda = norm;
            for i in 0..3 {
                v[i] = w[i] / norm;
            }
        }
        for i in 0..3 {
            for j in 0..3 {
                cov[i][j] -= lambda * v[i] * v[j];
            }
        }
        expected.push(lambda);
    }
    // The projections' variances are the eigenvalues.
    for (k, column) in out.columns.iter().enumerate() {
        let p = f64s(column);
        let m = p.iter().sum::<f64>() / n as f64;
        let var = p.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n as f64 - 1.0);
        assert!(
            (var - expected[k]).abs() / expected[k] < 1e-4,
            "pc{}: {var} vs {}",
            k + 1,
            expected[k]
        );
    }
}

#[test]
fn the_penguins_mlp_pipeline_runs_from_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.csv");
    let o = kernel_host(&[
        "run",
        "examples/penguins/mlp.toml",
        "-o",
        out.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let accuracy: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("accuracy: "))
        .and_then(|a| a.trim().parse().ok())
        .unwrap();
    assert!(accuracy >= 0.95, "{text}");
}

#[test]
fn asking_for_cuda_without_it_fails_before_any_kernel_runs() {
    if let CudaProbe::Ready(_) = probe_cuda() {
        return; // Only meaningful on a machine without CUDA.
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(workspace().join("examples/penguins/mlp.toml"))
        .unwrap()
        .replace("device = \"auto\"", "device = \"cuda\"")
        .replace(
            "\"data/",
            &format!(
                "\"{}/",
                workspace().join("examples/penguins/data").display()
            ),
        )
        .replace(
            "\"../../target",
            &format!("\"{}", workspace().join("target").display()),
        );
    let path = dir.path().join("m.toml");
    std::fs::write(&path, manifest).unwrap();
    let o = kernel_host(&[
        "run",
        path.to_str().unwrap(),
        "-o",
        dir.path().join("p.csv").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("device `cuda` was asked for, but CUDA is not usable here")
            && stderr.contains("libcublas")
            && stderr.contains("kernel-host info"),
        "{stderr}"
    );
    let o = kernel_host_command()
        .env("KERNEL_HOST_DEVICE", "tpu")
        .args(["run", "examples/penguins/mlp.toml"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("KERNEL_HOST_DEVICE: unknown device `tpu`")
    );
}

//! The host tensor API: every operation against a float64 reference on each
//! backend, caps, isolation and hand-over between kernels, the 0.1.0
//! contract still loading, and the kernels built on tensors.

use crate::common::*;
use kernel_host::bindings::{Column, ColumnValues, Frame, ParamValue};
use kernel_host::tensor::{
    Backend, BinaryOp, Cpu, CudaProbe, ReduceOp, ScalarOp, Tensor, UnaryOp, probe_cuda,
};
use kernel_host::{Fault, Grants, Limits};
use kernel_host_guests as guests;

/// A seeded matrix of non-zero values in ±[0.5, 2).
fn values(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..rows * cols)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            let v = 0.5 + 1.5 * u;
            if state & 1 == 0 { v } else { -v }
        })
        .collect()
}

/// Row-major f64 matrix.
#[derive(Clone)]
struct M {
    rows: usize,
    cols: usize,
    v: Vec<f64>,
}

impl M {
    fn new(rows: usize, cols: usize, seed: u64) -> M {
        M {
            rows,
            cols,
            v: values(rows, cols, seed),
        }
    }
    fn at(&self, r: usize, c: usize) -> f64 {
        self.v[r * self.cols + c]
    }
    fn map(&self, f: impl Fn(f64) -> f64) -> M {
        M {
            v: self.v.iter().map(|&x| f(x)).collect(),
            ..self.clone()
        }
    }
    fn t(&self) -> M {
        let mut v = Vec::with_capacity(self.v.len());
        for c in 0..self.cols {
            for r in 0..self.rows {
                v.push(self.at(r, c));
            }
        }
        M {
            rows: self.cols,
            cols: self.rows,
            v,
        }
    }
    fn matmul(&self, b: &M) -> M {
        let mut v = vec![0.0; self.rows * b.cols];
        for i in 0..self.rows {
            for k in 0..self.cols {
                let a = self.at(i, k);
                for j in 0..b.cols {
                    v[i * b.cols + j] += a * b.at(k, j);
                }
            }
        }
        M {
            rows: self.rows,
            cols: b.cols,
            v,
        }
    }
    fn zip(&self, b: &M, f: impl Fn(f64, f64) -> f64) -> M {
        let mut v = Vec::with_capacity(self.v.len());
        for r in 0..self.rows {
            for c in 0..self.cols {
                let br = if b.rows == 1 { 0 } else { r };
                let bc = if b.cols == 1 { 0 } else { c };
                v.push(f(self.at(r, c), b.at(br, bc)));
            }
        }
        M { v, ..self.clone() }
    }
    fn lines(&self, axis: usize) -> Vec<Vec<f64>> {
        if axis == 0 {
            (0..self.cols)
                .map(|c| (0..self.rows).map(|r| self.at(r, c)).collect())
                .collect()
        } else {
            (0..self.rows)
                .map(|r| (0..self.cols).map(|c| self.at(r, c)).collect())
                .collect()
        }
    }
    fn reduce(&self, axis: usize, f: impl Fn(&[f64]) -> f64) -> M {
        let v: Vec<f64> = self.lines(axis).iter().map(|l| f(l)).collect();
        if axis == 0 {
            M {
                rows: 1,
                cols: self.cols,
                v,
            }
        } else {
            M {
                rows: self.rows,
                cols: 1,
                v,
            }
        }
    }
}

fn upload(b: &dyn Backend, m: &M) -> Tensor {
    let data: Vec<f32> = m.v.iter().map(|&x| x as f32).collect();
    b.upload(m.rows, m.cols, &data).unwrap()
}

/// ‖actual − expected‖ / ‖expected‖ ≤ 1e-5, and the shapes agree.
fn check(b: &dyn Backend, what: &str, actual: Tensor, expected: &M) {
    assert_eq!(
        (actual.rows, actual.cols),
        (expected.rows, expected.cols),
        "{what}: shape"
    );
    let got = b.download(&actual).unwrap();
    let (mut err, mut norm) = (0.0f64, 0.0f64);
    for (g, e) in got.iter().zip(&expected.v) {
        err += (f64::from(*g) - e).powi(2);
        norm += e * e;
    }
    let relative = (err / norm.max(1e-300)).sqrt();
    assert!(relative <= 1e-5, "{what}: relative error {relative:e}");
}

type Op1 = fn(f64) -> f64;
type Op2 = fn(f64, f64) -> f64;
type Fold = fn(&[f64]) -> f64;

/// Every operation of `b` against the f64 reference.
fn every_operation(b: &dyn Backend) {
    let a = M::new(37, 29, 1);
    let c = M::new(29, 23, 2);
    let same = M::new(37, 29, 3);
    let row = M::new(1, 29, 4);
    let col = M::new(37, 1, 5);
    let one = M::new(1, 1, 6);
    let (ta, tc) = (upload(b, &a), upload(b, &c));
    check(b, "upload/download", ta.clone(), &a);

    check(
        b,
        "matmul",
        b.matmul(&ta, &tc, false, false).unwrap(),
        &a.matmul(&c),
    );
    let at = upload(b, &a.t());
    check(
        b,
        "matmul Aᵀ·C",
        b.matmul(&at, &tc, true, false).unwrap(),
        &a.matmul(&c),
    );
    let ct = upload(b, &c.t());
    check(
        b,
        "matmul A·Cᵀ",
        b.matmul(&ta, &ct, false, true).unwrap(),
        &a.matmul(&c),
    );
    check(
        b,
        "matmul Aᵀ·Cᵀ",
        b.matmul(&at, &ct, true, true).unwrap(),
        &a.matmul(&c),
    );
    let big = (M::new(300, 256, 7), M::new(256, 200, 8));
    check(
        b,
        "matmul 300x256x200",
        b.matmul(&upload(b, &big.0), &upload(b, &big.1), false, false)
            .unwrap(),
        &big.0.matmul(&big.1),
    );

    let ops: [(BinaryOp, Op2); 6] = [
        (BinaryOp::Add, |x, y| x + y),
        (BinaryOp::Sub, |x, y| x - y),
        (BinaryOp::Mul, |x, y| x * y),
        (BinaryOp::Div, |x, y| x / y),
        (BinaryOp::Maximum, f64::max),
        (BinaryOp::Minimum, f64::min),
    ];
    for (op, f) in ops {
        for (name, other) in [
            ("same", &same),
            ("row", &row),
            ("column", &col),
            ("scalar", &one),
        ] {
            check(
                b,
                &format!("{op:?} {name}"),
                b.binary(op, &ta, &upload(b, other)).unwrap(),
                &a.zip(other, f),
            );
        }
    }
    let scalars: [(ScalarOp, Op2); 8] = [
        (ScalarOp::Add, |x, s| x + s),
        (ScalarOp::Sub, |x, s| x - s),
        (ScalarOp::Mul, |x, s| x * s),
        (ScalarOp::Div, |x, s| x / s),
        (ScalarOp::Pow, f64::powf),
        (ScalarOp::Maximum, f64::max),
        (ScalarOp::Minimum, f64::min),
        (ScalarOp::Rsub, |x, s| s - x),
    ];
    let positive = a.map(f64::abs);
    let tp = upload(b, &positive);
    for (op, f) in scalars {
        check(
            b,
            &format!("{op:?}"),
            b.scalar(op, &tp, 1.75).unwrap(),
            &positive.map(|x| f(x, 1.75)),
        );
    }
    let unary: [(UnaryOp, Op1); 10] = [
        (UnaryOp::Neg, |x| -x),
        (UnaryOp::Exp, f64::exp),
        (UnaryOp::Log, f64::ln),
        (UnaryOp::Sqrt, f64::sqrt),
        (UnaryOp::Abs, f64::abs),
        (UnaryOp::Tanh, f64::tanh),
        (UnaryOp::Sigmoid, |x| 1.0 / (1.0 + (-x).exp())),
        (UnaryOp::Relu, |x| x.max(0.0)),
        (UnaryOp::Step, |x| if x > 0.0 { 1.0 } else { 0.0 }),
        (UnaryOp::Square, |x| x * x),
    ];
    for (op, f) in unary {
        let input = if matches!(op, UnaryOp::Log | UnaryOp::Sqrt) {
            &positive
        } else {
            &a
        };
        check(
            b,
            &format!("{op:?}"),
            b.unary(op, &upload(b, input)).unwrap(),
            &input.map(f),
        );
    }
    for axis in [0, 1] {
        let softmax = {
            let lines = a.lines(axis);
            let soft: Vec<Vec<f64>> = lines
                .iter()
                .map(|l| {
                    let max = l.iter().copied().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = l.iter().map(|x| (x - max).exp()).collect();
                    let s: f64 = e.iter().sum();
                    e.iter().map(|x| x / s).collect()
                })
                .collect();
            let m = M {
                rows: if axis == 0 { a.cols } else { a.rows },
                cols: if axis == 0 { a.rows } else { a.cols },
                v: soft.concat(),
            };
            if axis == 0 { m.t() } else { m }
        };
        check(
            b,
            &format!("softmax {axis}"),
            b.softmax(&ta, axis).unwrap(),
            &softmax,
        );
        let reductions: [(ReduceOp, Fold); 4] = [
            (ReduceOp::Sum, |l| l.iter().sum()),
            (ReduceOp::Mean, |l| l.iter().sum::<f64>() / l.len() as f64),
            (ReduceOp::Max, |l| {
                l.iter().copied().fold(f64::MIN, f64::max)
            }),
            (ReduceOp::Argmax, |l| {
                (0..l.len()).fold(0, |best, i| if l[i] > l[best] { i } else { best }) as f64
            }),
        ];
        for (op, f) in reductions {
            check(
                b,
                &format!("{op:?} {axis}"),
                b.reduce(op, &ta, axis).unwrap(),
                &a.reduce(axis, f),
            );
        }
    }
    check(b, "transpose", b.transpose(&ta).unwrap(), &a.t());
    let picked = [5u32, 0, 36, 5];
    let gathered = M {
        rows: 4,
        cols: a.cols,
        v: picked
            .iter()
            .flat_map(|&r| a.lines(1)[r as usize].clone())
            .collect(),
    };
    check(
        b,
        "gather rows",
        b.gather_rows(&ta, &picked).unwrap(),
        &gathered,
    );
    let stacked = M {
        rows: a.rows + same.rows,
        cols: a.cols,
        v: [a.v.clone(), same.v.clone()].concat(),
    };
    let tsame = upload(b, &same);
    check(
        b,
        "concat rows",
        b.concat(&[&ta, &tsame], 0).unwrap(),
        &stacked,
    );
    let side = M {
        rows: a.rows,
        cols: a.cols + col.cols,
        v: (0..a.rows)
            .flat_map(|r| {
                let mut line = a.lines(1)[r].clone();
                line.push(col.at(r, 0));
                line
            })
            .collect(),
    };
    check(
        b,
        "concat columns",
        b.concat(&[&ta, &upload(b, &col)], 1).unwrap(),
        &side,
    );
    check(
        b,
        "fill",
        b.fill(3, 4, 2.5).unwrap(),
        &M {
            rows: 3,
            cols: 4,
            v: vec![2.5; 12],
        },
    );
}

#[test]
fn cpu_operations_match_a_float64_reference() {
    every_operation(&Cpu::new());
}

#[test]
#[ignore = "needs an NVIDIA GPU with CUDA 12/13 libraries: scripts/gpu-check.sh runs it"]
fn cuda_operations_match_a_float64_reference() {
    match probe_cuda() {
        CudaProbe::Ready(cuda) => every_operation(&*cuda),
        CudaProbe::Unavailable(why) => panic!("CUDA is not usable here: {why}"),
    }
}

async fn probe(
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
    let sandbox = sandbox();
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
            values: ColumnValues::String(y),
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

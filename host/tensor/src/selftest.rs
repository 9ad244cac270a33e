//! The conformance suite of a tensor backend: every operation on seeded,
//! non-zero inputs against the same computation in f64. The tests run it on
//! the CPU; `kernel-host info --selftest` (and `scripts/gpu-check.sh`) run it
//! on every backend this machine has.

use super::{Backend, BinaryOp, ReduceOp, ScalarOp, Tensor, TensorError, UnaryOp};

/// A seeded matrix of non-zero values in ±[0.5, 2), row-major.
pub fn values(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
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

fn upload(b: &dyn Backend, m: &M) -> Result<Tensor, TensorError> {
    let data: Vec<f32> = m.v.iter().map(|&x| x as f32).collect();
    b.upload(m.rows, m.cols, &data)
}

/// ‖actual − expected‖ / ‖expected‖ ≤ 1e-5, and the shapes agree.
/// One operation's outcome: its relative error `‖actual − expected‖ /
/// ‖expected‖`, or what went wrong.
#[derive(Clone, Debug)]
pub struct Check {
    pub operation: String,
    pub outcome: Result<f64, String>,
}

impl Check {
    /// Within [`TOLERANCE`].
    pub fn passed(&self) -> bool {
        self.outcome.as_ref().is_ok_and(|e| *e <= TOLERANCE)
    }
}

/// The largest relative error an f32 operation may have.
pub const TOLERANCE: f64 = 1e-5;

struct Checks<'a> {
    backend: &'a dyn Backend,
    results: Vec<Check>,
}

impl Checks<'_> {
    fn check(&mut self, what: &str, actual: Result<Tensor, TensorError>, expected: &M) {
        let outcome = actual.map_err(|e| format!("{e:?}")).and_then(|actual| {
            if (actual.rows, actual.cols) != (expected.rows, expected.cols) {
                return Err(format!(
                    "shape {}x{}, expected {}x{}",
                    actual.rows, actual.cols, expected.rows, expected.cols
                ));
            }
            let got = self
                .backend
                .download(&actual)
                .map_err(|e| format!("{e:?}"))?;
            let (mut err, mut norm) = (0.0f64, 0.0f64);
            for (g, e) in got.iter().zip(&expected.v) {
                err += (f64::from(*g) - e).powi(2);
                norm += e * e;
            }
            Ok((err / norm.max(1e-300)).sqrt())
        });
        self.results.push(Check {
            operation: what.to_string(),
            outcome,
        });
    }

    fn up(&mut self, m: &M) -> Result<Tensor, TensorError> {
        upload(self.backend, m)
    }
}

type Op1 = fn(f64) -> f64;
type Op2 = fn(f64, f64) -> f64;
type Fold = fn(&[f64]) -> f64;

const BINARY: [(BinaryOp, Op2); 6] = [
    (BinaryOp::Add, |x, y| x + y),
    (BinaryOp::Sub, |x, y| x - y),
    (BinaryOp::Mul, |x, y| x * y),
    (BinaryOp::Div, |x, y| x / y),
    (BinaryOp::Maximum, f64::max),
    (BinaryOp::Minimum, f64::min),
];

const SCALAR: [(ScalarOp, Op2); 8] = [
    (ScalarOp::Add, |x, s| x + s),
    (ScalarOp::Sub, |x, s| x - s),
    (ScalarOp::Mul, |x, s| x * s),
    (ScalarOp::Div, |x, s| x / s),
    (ScalarOp::Pow, f64::powf),
    (ScalarOp::Maximum, f64::max),
    (ScalarOp::Minimum, f64::min),
    (ScalarOp::Rsub, |x, s| s - x),
];

const UNARY: [(UnaryOp, Op1); 10] = [
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

const REDUCE: [(ReduceOp, Fold); 4] = [
    (ReduceOp::Sum, |l| l.iter().sum()),
    (ReduceOp::Mean, |l| l.iter().sum::<f64>() / l.len() as f64),
    (ReduceOp::Max, |l| {
        l.iter().copied().fold(f64::MIN, f64::max)
    }),
    (ReduceOp::Argmax, |l| {
        (0..l.len()).fold(0, |best, i| if l[i] > l[best] { i } else { best }) as f64
    }),
];

fn softmax_reference(a: &M, axis: usize) -> M {
    let soft: Vec<Vec<f64>> = a
        .lines(axis)
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
}

/// Runs every operation of `backend` on seeded, non-zero inputs and
/// compares it with the same computation in f64.
pub fn every_operation(backend: &dyn Backend) -> Vec<Check> {
    let mut checks = Checks {
        backend,
        results: Vec::new(),
    };
    if let Err(e) = run(&mut checks) {
        checks.results.push(Check {
            operation: "upload".into(),
            outcome: Err(format!("{e:?}")),
        });
    }
    checks.results
}

fn run(k: &mut Checks<'_>) -> Result<(), TensorError> {
    let b = k.backend;
    let a = M::new(37, 29, 1);
    let c = M::new(29, 23, 2);
    let same = M::new(37, 29, 3);
    let row = M::new(1, 29, 4);
    let col = M::new(37, 1, 5);
    let one = M::new(1, 1, 6);
    let (ta, tc, at, ct) = (k.up(&a)?, k.up(&c)?, k.up(&a.t())?, k.up(&c.t())?);
    k.check("upload/download", Ok(ta.clone()), &a);
    let ac = a.matmul(&c);
    k.check("matmul A·C", b.matmul(&ta, &tc, false, false), &ac);
    k.check("matmul Aᵀ·C", b.matmul(&at, &tc, true, false), &ac);
    k.check("matmul A·Cᵀ", b.matmul(&ta, &ct, false, true), &ac);
    k.check("matmul Aᵀ·Cᵀ", b.matmul(&at, &ct, true, true), &ac);
    let (big, big2) = (M::new(300, 256, 7), M::new(256, 200, 8));
    let (tb, tb2) = (k.up(&big)?, k.up(&big2)?);
    k.check(
        "matmul 300x256·256x200",
        b.matmul(&tb, &tb2, false, false),
        &big.matmul(&big2),
    );
    let operands = [
        ("same shape", &same),
        ("row", &row),
        ("column", &col),
        ("scalar", &one),
    ];
    for (op, f) in BINARY {
        for (name, other) in operands {
            let t = k.up(other)?;
            k.check(
                &format!("{op:?} ({name})"),
                b.binary(op, &ta, &t),
                &a.zip(other, f),
            );
        }
    }
    let positive = a.map(f64::abs);
    let tp = k.up(&positive)?;
    for (op, f) in SCALAR {
        k.check(
            &format!("scalar {op:?}"),
            b.scalar(op, &tp, 1.75),
            &positive.map(|x| f(x, 1.75)),
        );
    }
    for (op, f) in UNARY {
        let (input, t) = if matches!(op, UnaryOp::Log | UnaryOp::Sqrt) {
            (&positive, &tp)
        } else {
            (&a, &ta)
        };
        k.check(&format!("{op:?}"), b.unary(op, t), &input.map(f));
    }
    for axis in [0, 1] {
        k.check(
            &format!("softmax axis {axis}"),
            b.softmax(&ta, axis),
            &softmax_reference(&a, axis),
        );
        for (op, f) in REDUCE {
            k.check(
                &format!("{op:?} axis {axis}"),
                b.reduce(op, &ta, axis),
                &a.reduce(axis, f),
            );
        }
    }
    k.check("transpose", b.transpose(&ta), &a.t());
    let picked = [5u32, 0, 36, 5];
    let gathered = M {
        rows: picked.len(),
        cols: a.cols,
        v: picked
            .iter()
            .flat_map(|&r| a.lines(1)[r as usize].clone())
            .collect(),
    };
    k.check("gather rows", b.gather_rows(&ta, &picked), &gathered);
    let stacked = M {
        rows: a.rows + same.rows,
        cols: a.cols,
        v: [a.v.clone(), same.v.clone()].concat(),
    };
    let ts = k.up(&same)?;
    k.check("concat axis 0", b.concat(&[&ta, &ts], 0), &stacked);
    let side = M {
        rows: a.rows,
        cols: a.cols + 1,
        v: (0..a.rows)
            .flat_map(|r| {
                let mut line = a.lines(1)[r].clone();
                line.push(col.at(r, 0));
                line
            })
            .collect(),
    };
    let tcol = k.up(&col)?;
    k.check("concat axis 1", b.concat(&[&ta, &tcol], 1), &side);
    k.check(
        "fill",
        b.fill(3, 4, 2.5),
        &M {
            rows: 3,
            cols: 4,
            v: vec![2.5; 12],
        },
    );
    Ok(())
}

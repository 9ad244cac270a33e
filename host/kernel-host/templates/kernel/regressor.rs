//! __NAME__: a regressor kernel for kernel-host.
//!
//! This skeleton is a working ridge regression: `fit` solves the normal
//! equations (XᵀX + αI) w = Xᵀy on centred data, `predict` returns
//! x·w + b. Replace the maths with yours; keep the shape:
//!
//! - the struct holds the parameters and everything learned, and is
//!   serialized whole by `save-state` (keep it plain data);
//! - refuse what you cannot use with `KernelError::invalid_input` (missing
//!   values, strings, a singular system...), never panic;
//! - outputs depend only on parameters, what was learned and the input.
//!
//! Build and check it (see README.md):
//!   cargo build --release --target wasm32-wasip2
//!   kernel-host test target/wasm32-wasip2/release/__CRATE__.wasm

use kernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};

kernel_sdk::params! {
    /// Parameters of [`__TYPE__`]: each becomes `params = { ... }` in a
    /// manifest, checked against its type and range before your code runs.
    pub struct __TYPE__Params {
        /// L2 penalty on the weights (0: ordinary least squares).
        alpha: f64 = 1.0, range(0.0, 1e9);
    }
}

/// What `fit` learned.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct __TYPE__Model {
    features: Vec<String>,
    weights: Vec<f64>,
    intercept: f64,
    target: String,
}

#[derive(Serialize, Deserialize)]
pub struct __TYPE__ {
    params: __TYPE__Params,
    model: Option<__TYPE__Model>,
}

/// Solves `a · w = b` (a is n×n, row-major) by Gaussian elimination with
/// partial pivoting; `None` when the system is singular.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if !(a[pivot * n + col].abs() > 1e-12) {
            return None;
        }
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
        }
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row * n + col] / a[col * n + col];
            for k in col..n {
                a[row * n + k] -= f * a[col * n + k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut w = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row * n + k] * w[k]).sum();
        w[row] = (b[row] - s) / a[row * n + row];
    }
    Some(w)
}

impl Kernel for __TYPE__ {
    type Params = __TYPE__Params;

    fn meta() -> Meta {
        Meta::new("__NAME__", env!("CARGO_PKG_VERSION"), KernelKind::Regressor)
            .description("ridge regression by the normal equations")
    }

    fn new(params: __TYPE__Params) -> Self {
        __TYPE__ {
            params,
            model: None,
        }
    }

    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        let y = y.ok_or_else(|| KernelError::invalid_input("a regressor needs a target"))?;
        let target: Vec<f64> = (0..y.len())
            .map(|i| {
                y.numeric().and_then(|v| v.get(i)).ok_or_else(|| {
                    KernelError::invalid_input(format!(
                        "target `{}` must be numeric and present (row {i})",
                        y.name
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let m = x.to_matrix()?;
        m.require_finite()?;
        if m.rows == 0 {
            return Err(KernelError::invalid_input("no rows to fit"));
        }
        let (n, d) = (m.rows as f64, m.cols);
        // Centre the features and the target: the intercept is not penalized.
        let means: Vec<f64> = (0..d).map(|j| m.rows().map(|r| r[j]).sum::<f64>() / n).collect();
        let y_mean = target.iter().sum::<f64>() / n;
        let mut xtx = vec![0.0; d * d];
        let mut xty = vec![0.0; d];
        for (row, t) in m.rows().zip(&target) {
            for i in 0..d {
                let xi = row[i] - means[i];
                xty[i] += xi * (t - y_mean);
                for j in 0..d {
                    xtx[i * d + j] += xi * (row[j] - means[j]);
                }
            }
        }
        for i in 0..d {
            xtx[i * d + i] += self.params.alpha;
        }
        let weights = solve(xtx, xty).ok_or_else(|| {
            KernelError::invalid_input(
                "the features are collinear (or constant) and alpha is 0: raise alpha or drop a column",
            )
        })?;
        let intercept = y_mean - weights.iter().zip(&means).map(|(w, m)| w * m).sum::<f64>();
        self.model = Some(__TYPE__Model {
            features: m.names,
            weights,
            intercept,
            target: y.name.clone(),
        });
        Ok(())
    }

    fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("call fit first"))?;
        let m = x.select_matrix(&model.features)?;
        let values = m
            .rows()
            .map(|r| model.intercept + r.iter().zip(&model.weights).map(|(a, w)| a * w).sum::<f64>())
            .collect();
        Ok(Column::f64(model.target.clone(), values))
    }
}

kernel_sdk::export_kernel!(__TYPE__);

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_sdk::testing::Local;

    #[test]
    fn recovers_a_line() {
        let x = Frame::new(vec![Column::f64("a", vec![0.0, 1.0, 2.0, 3.0])]).unwrap();
        let y = Column::f64("y", vec![1.0, 3.0, 5.0, 7.0]);
        let mut kernel = Local::<__TYPE__>::with_params(&[("alpha", 0.0.into())]).unwrap();
        kernel.fit(&x, Some(&y)).unwrap();
        let ColumnValues::F64(p) = kernel.predict(&x).unwrap().values else {
            unreachable!("predictions are f64")
        };
        for (p, t) in p.iter().zip([1.0, 3.0, 5.0, 7.0]) {
            assert!((p - t).abs() < 1e-9, "{p} vs {t}");
        }
    }

    /// The contract's properties, natively (`kernel-host test` runs the
    /// same ones on the built component, with fuel and memory measured).
    #[test]
    fn keeps_the_contract() {
        kernel_sdk::testing::conformance::<__TYPE__>();
    }
}

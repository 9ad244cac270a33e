//! Ridge regression: least squares with an L2 penalty, solved in closed
//! form, like scikit-learn's `Ridge` (and `LinearRegression` at
//! `alpha = 0`).
//!
//! With an intercept, `X` and `y` are centred first so the intercept is not
//! penalized; then `(XᵀX + αI)·β = Xᵀy` is solved by Cholesky and the
//! intercept is `ȳ − x̄·β`. A singular system (collinear columns with
//! `alpha = 0`) is refused with advice, not answered with NaNs.

use kernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};

kernel_sdk::params! {
    /// Parameters of [`RidgeRegression`].
    pub struct RidgeParams {
        /// L2 penalty strength; 0 gives ordinary least squares.
        alpha: f64 = 1.0, range(0.0, 1e15);
        /// Fit an unpenalized intercept.
        fit_intercept: bool = true;
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Model {
    pub features: Vec<String>,
    pub coef: Vec<f64>,
    pub intercept: f64,
    target: String,
}

#[derive(Serialize, Deserialize)]
pub struct RidgeRegression {
    params: RidgeParams,
    model: Option<Model>,
}

impl RidgeRegression {
    pub fn model(&self) -> Option<&Model> {
        self.model.as_ref()
    }
}

/// Solves `a·x = b` for symmetric positive definite `a` (row-major, `n×n`).
fn cholesky_solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    // Scale-aware singularity threshold.
    let scale = (0..n)
        .map(|i| a[i * n + i].abs())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    for j in 0..n {
        let mut diag = a[j * n + j];
        for k in 0..j {
            diag -= a[j * n + k] * a[j * n + k];
        }
        if diag <= scale * 1e-12 {
            return None;
        }
        let diag = diag.sqrt();
        a[j * n + j] = diag;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / diag;
        }
    }
    for i in 0..n {
        let mut v = b[i];
        for k in 0..i {
            v -= a[i * n + k] * b[k];
        }
        b[i] = v / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut v = b[i];
        for k in i + 1..n {
            v -= a[k * n + i] * b[k];
        }
        b[i] = v / a[i * n + i];
    }
    Some(b)
}

impl Kernel for RidgeRegression {
    type Params = RidgeParams;

    fn meta() -> Meta {
        Meta::new(
            "ridge-regression",
            env!("CARGO_PKG_VERSION"),
            KernelKind::Regressor,
        )
        .description("linear least squares with an L2 penalty, closed form")
    }

    fn new(params: RidgeParams) -> Self {
        RidgeRegression {
            params,
            model: None,
        }
    }

    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        let y_col =
            y.ok_or_else(|| KernelError::invalid_input("ridge regression needs a target column"))?;
        let values = y_col.numeric().ok_or_else(|| {
            KernelError::invalid_input(format!(
                "target `{}` must be numeric, not {}",
                y_col.name,
                y_col.type_name()
            ))
        })?;
        let y: Vec<f64> = (0..values.len())
            .map(|row| {
                values.get(row).ok_or_else(|| {
                    KernelError::invalid_input(format!(
                        "target `{}` is missing in row {row}",
                        y_col.name
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let m = x.to_matrix()?;
        let (n, d) = (m.rows, m.cols);
        if n == 0 {
            return Err(KernelError::invalid_input("cannot fit on zero rows"));
        }
        let (x_mean, y_mean) = if self.params.fit_intercept {
            let mut means = vec![0.0; d];
            for row in m.rows() {
                means.iter_mut().zip(row).for_each(|(a, v)| *a += v);
            }
            means.iter_mut().for_each(|a| *a /= n as f64);
            (means, y.iter().sum::<f64>() / n as f64)
        } else {
            (vec![0.0; d], 0.0)
        };
        let mut gram = vec![0.0; d * d];
        let mut rhs = vec![0.0; d];
        let mut centred = vec![0.0; d];
        for (row, yi) in m.rows().zip(&y) {
            centred
                .iter_mut()
                .zip(row)
                .zip(&x_mean)
                .for_each(|((c, v), mu)| *c = v - mu);
            let yc = yi - y_mean;
            for i in 0..d {
                rhs[i] += centred[i] * yc;
                for j in 0..=i {
                    gram[i * d + j] += centred[i] * centred[j];
                }
            }
        }
        for i in 0..d {
            gram[i * d + i] += self.params.alpha;
            for j in 0..i {
                gram[j * d + i] = gram[i * d + j];
            }
        }
        let coef = cholesky_solve(gram, rhs, d).ok_or_else(|| {
            KernelError::invalid_input(
                "the features are collinear (XᵀX + αI is singular); set alpha > 0 or drop a redundant column",
            )
        })?;
        let intercept = y_mean - coef.iter().zip(&x_mean).map(|(b, mu)| b * mu).sum::<f64>();
        self.model = Some(Model {
            features: m.names,
            coef,
            intercept,
            target: y_col.name.clone(),
        });
        Ok(())
    }

    fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        // Row by row from blocks of 512 rows of the features: the frame
        // and one block held, never the whole matrix beside the frame.
        let mut predictions = Vec::with_capacity(x.len());
        x.select_row_blocks(&model.features, 512, |m| {
            predictions.extend(m.rows().map(|row| {
                model.intercept + row.iter().zip(&model.coef).map(|(a, b)| a * b).sum::<f64>()
            }));
            Ok(())
        })?;
        Ok(Column::f64(model.target.clone(), predictions))
    }

    fn explain(&self) -> Result<Explanation, KernelError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        Ok(Explanation {
            summary: format!(
                "linear model over {} features, alpha = {}",
                model.coef.len(),
                self.params.alpha
            ),
            entries: vec![
                ExplainEntry {
                    name: "features".into(),
                    value: ExplainValue::Labels(model.features.clone()),
                },
                ExplainEntry {
                    name: "coef".into(),
                    value: ExplainValue::Vector(model.coef.clone()),
                },
                ExplainEntry {
                    name: "intercept".into(),
                    value: ExplainValue::Scalar(model.intercept),
                },
            ],
        })
    }
}

kernel_sdk::export_kernel!(RidgeRegression);

#[cfg(test)]
mod tests {
    /// The contract's properties, natively: the same checks as
    /// `kernel-host test` runs on the component.
    #[test]
    fn keeps_the_contract() {
        kernel_sdk::testing::conformance::<super::RidgeRegression>();
    }

    use super::*;
    use kernel_sdk::testing::Local;

    #[test]
    fn exact_line_is_recovered_without_penalty() {
        let a: Vec<f64> = (0..10).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..10).map(|i| ((i * 7) % 5) as f64).collect();
        let y: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(a, b)| 3.0 * a - 2.0 * b + 5.0)
            .collect();
        let x = Frame::new(vec![Column::f64("a", a), Column::f64("b", b)]).unwrap();
        let mut k = Local::<RidgeRegression>::with_params(&[("alpha", 0.0.into())]).unwrap();
        k.fit(&x, Some(&Column::f64("y", y))).unwrap();
        let m = k.kernel().model().unwrap();
        assert!(
            (m.coef[0] - 3.0).abs() < 1e-9 && (m.coef[1] + 2.0).abs() < 1e-9,
            "{m:?}"
        );
        assert!((m.intercept - 5.0).abs() < 1e-9);
    }

    #[test]
    fn collinear_without_penalty_is_refused() {
        let a: Vec<f64> = (0..5).map(|i| i as f64).collect();
        let x = Frame::new(vec![
            Column::f64("a", a.clone()),
            Column::f64("a2", a.iter().map(|v| v * 2.0).collect()),
        ])
        .unwrap();
        let mut k = Local::<RidgeRegression>::with_params(&[("alpha", 0.0.into())]).unwrap();
        let err = k.fit(&x, Some(&Column::f64("y", a))).unwrap_err();
        assert!(err.message().contains("collinear"), "{err:?}");
    }
}

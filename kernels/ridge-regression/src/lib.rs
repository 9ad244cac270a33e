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

/// The sums of ridge's normal equations: the lower triangle of the
/// centred `XᵀX` and `Xᵀy`, one row at a time in row order.
struct NormalSums {
    gram: Vec<f64>,
    rhs: Vec<f64>,
    /// The row being added, centred.
    centred: Vec<f64>,
}

impl NormalSums {
    fn new(d: usize) -> NormalSums {
        NormalSums {
            gram: vec![0.0; d * d],
            rhs: vec![0.0; d],
            centred: vec![0.0; d],
        }
    }

    /// Adds `row` (centred by `mean`) with its centred target `yc`.
    fn add(&mut self, row: &[f64], mean: &[f64], yc: f64) {
        let d = self.centred.len();
        self.centred
            .iter_mut()
            .zip(row)
            .zip(mean)
            .for_each(|((c, v), mu)| *c = v - mu);
        for i in 0..d {
            self.rhs[i] += self.centred[i] * yc;
            for j in 0..=i {
                self.gram[i * d + j] += self.centred[i] * self.centred[j];
            }
        }
    }
}

/// Rows of features built at once for a fit's sums and for predictions
/// (computed here, row by row: 512 rows of 16 features are 64 KiB).
const ROW_BLOCK: usize = 512;

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
        // Two passes over the rows a block at a time (the kernel holds the
        // frame and one block, never a matrix of every row): the sums run
        // in row order, as over one matrix, so the bits are the same.
        let (n, d) = (x.len(), x.columns.len());
        if n == 0 {
            // A column that is not numeric is named first, as before.
            x.row_blocks(ROW_BLOCK, |_| Ok(()))?;
            return Err(KernelError::invalid_input("cannot fit on zero rows"));
        }
        let (x_mean, y_mean) = if self.params.fit_intercept {
            let mut means = vec![0.0; d];
            x.row_blocks(ROW_BLOCK, |m| {
                for row in m.rows() {
                    means.iter_mut().zip(row).for_each(|(a, v)| *a += v);
                }
                Ok(())
            })?;
            means.iter_mut().for_each(|a| *a /= n as f64);
            (means, y.iter().sum::<f64>() / n as f64)
        } else {
            (vec![0.0; d], 0.0)
        };
        let mut sums = NormalSums::new(d);
        let mut y = y.iter();
        x.row_blocks(ROW_BLOCK, |m| {
            for (row, yi) in m.rows().zip(&mut y) {
                sums.add(row, &x_mean, yi - y_mean);
            }
            Ok(())
        })?;
        let NormalSums { mut gram, rhs, .. } = sums;
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
            features: x.columns.iter().map(|c| c.name.clone()).collect(),
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
        x.select_row_blocks(&model.features, ROW_BLOCK, |m| {
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

    /// The fit reads its rows 512 at a time; the normal equations' sums
    /// still run in row order, so they are bit for bit the sums over one
    /// matrix of every row (computed here the way the kernel did before).
    #[test]
    fn blocks_of_rows_give_the_sums_of_the_whole_matrix() {
        let rows = 1500;
        let column = |j: usize| {
            Column::f64(
                format!("x{j}"),
                (0..rows)
                    .map(|i| ((i * 37 + j * 11) % 101) as f64 / 7.0 - (j as f64).powi(3))
                    .collect(),
            )
        };
        let x = Frame::new((0..3).map(column).collect()).unwrap();
        let y: Vec<f64> = (0..rows).map(|i| ((i * 13) % 17) as f64 * 0.3).collect();
        let m = x.to_matrix().unwrap();
        let d = m.cols;
        let mut mean = vec![0.0; d];
        for row in m.rows() {
            mean.iter_mut().zip(row).for_each(|(a, v)| *a += v);
        }
        mean.iter_mut().for_each(|a| *a /= rows as f64);
        let y_mean = y.iter().sum::<f64>() / rows as f64;
        let mut sums = NormalSums::new(d);
        for (row, yi) in m.rows().zip(&y) {
            sums.add(row, &mean, yi - y_mean);
        }
        let alpha = 0.5;
        let mut gram = sums.gram;
        for i in 0..d {
            gram[i * d + i] += alpha;
            for j in 0..i {
                gram[j * d + i] = gram[i * d + j];
            }
        }
        let coef = cholesky_solve(gram, sums.rhs, d).unwrap();
        let mut k = Local::<RidgeRegression>::with_params(&[("alpha", alpha.into())]).unwrap();
        k.fit(&x, Some(&Column::f64("y", y))).unwrap();
        let fitted = k.kernel().model().unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fitted.coef), bits(&coef));
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

//! Logistic regression: a multinomial (softmax) linear classifier with an
//! L2 penalty, like scikit-learn's `LogisticRegression(penalty="l2")`.
//!
//! It minimizes scikit-learn's objective, scaled by `1/n`:
//! `mean log-loss + ||W||² / (2·C·n)`, the intercepts unpenalized, with
//! L-BFGS. Two classes use one weight vector (the binomial model, as
//! scikit-learn does); more use one per class. Inputs must be numeric with
//! no gaps; scale them first for fast convergence. Labels may be strings,
//! integers, floats or bools; predictions come back in the same type.

use kernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};

mod lbfgs;

kernel_sdk::params! {
    /// Parameters of [`LogisticRegression`].
    pub struct LogisticParams {
        /// Inverse of the L2 penalty strength (scikit-learn's `C`).
        c: f64 = 1.0, range(1e-12, 1e12);
        /// Fit an unpenalized intercept per class.
        fit_intercept: bool = true;
        /// Most L-BFGS iterations.
        max_iter: u32 = 1000, range(1, 1000000);
        /// Stop when the largest gradient component is below this.
        tol: f64 = 1e-8, range(0.0, 1.0);
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Model {
    pub features: Vec<String>,
    pub classes: Vec<String>,
    label_type: LabelType,
    target: String,
    /// One row per output vector (1 for two classes, else one per class):
    /// `d` weights followed by the intercept.
    pub weights: Vec<Vec<f64>>,
    pub iterations: usize,
    pub converged: bool,
}

#[derive(Serialize, Deserialize)]
pub struct LogisticRegression {
    params: LogisticParams,
    model: Option<Model>,
}

impl LogisticRegression {
    pub fn model(&self) -> Option<&Model> {
        self.model.as_ref()
    }
}

impl Model {
    /// Class probabilities of the rows of `x`, row-major (`rows × classes`)
    /// a block of rows at a time, in order, each block computed by the
    /// host: one linear map and one softmax.
    fn probability_blocks(
        &self,
        x: &Frame,
        mut f: impl FnMut(&[f64]) -> Result<(), KernelError>,
    ) -> Result<(), KernelError> {
        let d = self.features.len();
        let mut weights = Vec::with_capacity(self.weights.len() * d);
        let mut bias = Vec::with_capacity(self.weights.len());
        for w in &self.weights {
            weights.extend_from_slice(&w[..d]);
            bias.push(w[d]);
        }
        x.select_row_blocks(&self.features, kernel_sdk::HOST_BLOCK_ROWS, |block| {
            let probabilities = HostMatrix::from_matrix(block)?
                .linear(&weights, self.weights.len(), &bias)?
                .softmax()?
                .to_vec()?;
            f(&probabilities)
        })
    }
}

/// The penalized objective and its gradient at `theta`, computed by the
/// host on the whole frame (a host matrix): one linear map, one softmax
/// cross-entropy and one `Rᵀ·X` per evaluation. L-BFGS itself stays here.
struct Objective<'a> {
    x: &'a HostMatrix,
    /// Class index of each row, `rows × 1`.
    labels: &'a HostMatrix,
    rows: usize,
    cols: usize,
    classes: usize,
    c: f64,
    fit_intercept: bool,
}

impl Objective<'_> {
    fn outputs(&self) -> usize {
        if self.classes == 2 { 1 } else { self.classes }
    }

    fn eval(&self, theta: &[f64], grad: &mut [f64]) -> Result<f64, KernelError> {
        let d = self.cols;
        let n = self.rows as f64;
        let k = self.outputs();
        let mut weights = Vec::with_capacity(k * d);
        let mut bias = Vec::with_capacity(k);
        for o in 0..k {
            let w = &theta[o * (d + 1)..(o + 1) * (d + 1)];
            weights.extend_from_slice(&w[..d]);
            bias.push(w[d]);
        }
        let logits = self.x.linear(&weights, k, &bias)?;
        let (loss, residual) = logits.softmax_cross_entropy(self.labels)?;
        drop(logits);
        // k × d: Σ_i r_io · x_ij
        let g = residual.t_mul(self.x)?;
        let intercepts = if self.fit_intercept {
            residual.column_sums()?
        } else {
            vec![0.0; k]
        };
        let mut penalty = 0.0;
        for o in 0..k {
            let w = &weights[o * d..(o + 1) * d];
            let out = &mut grad[o * (d + 1)..(o + 1) * (d + 1)];
            for ((gj, sum), wj) in out[..d].iter_mut().zip(&g[o * d..(o + 1) * d]).zip(w) {
                *gj = sum / n + wj / (self.c * n);
                penalty += wj * wj;
            }
            out[d] = intercepts[o] / n;
        }
        Ok(loss / n + penalty / (2.0 * self.c * n))
    }
}

impl LogisticRegression {
    /// Fits on `x` (a host matrix of the columns `features`) and `y`.
    fn fit_matrix(
        &mut self,
        x: &HostMatrix,
        features: Vec<String>,
        target: String,
        (classes, kind, targets): (Vec<String>, LabelType, Vec<usize>),
    ) -> Result<(), KernelError> {
        if targets.len() != x.rows() {
            return Err(KernelError::invalid_input(format!(
                "the target has {} rows, the frame {}",
                targets.len(),
                x.rows()
            )));
        }
        let labels = HostMatrix::from_list(
            targets.len(),
            1,
            targets.iter().map(|t| *t as f64).collect(),
        )?;
        let objective = Objective {
            x,
            labels: &labels,
            rows: x.rows(),
            cols: x.cols(),
            classes: classes.len(),
            c: self.params.c,
            fit_intercept: self.params.fit_intercept,
        };
        let d = objective.cols;
        let theta = vec![0.0; objective.outputs() * (d + 1)];
        let mut failure = None;
        let result = lbfgs::minimize(
            |t, g| {
                if failure.is_some() {
                    g.fill(0.0);
                    return f64::NAN;
                }
                objective.eval(t, g).unwrap_or_else(|e| {
                    failure = Some(e);
                    g.fill(0.0);
                    f64::NAN
                })
            },
            theta,
            self.params.max_iter as usize,
            self.params.tol,
        );
        if let Some(e) = failure {
            return Err(e);
        }
        if !result.converged {
            kernel_sdk::log::warn(&format!(
                "L-BFGS stopped after {} iterations without reaching tol {}; raise max_iter or scale the inputs",
                result.iterations, self.params.tol
            ));
        }
        self.model = Some(Model {
            features,
            classes,
            label_type: kind,
            target,
            weights: result.x.chunks(d + 1).map(<[f64]>::to_vec).collect(),
            iterations: result.iterations,
            converged: result.converged,
        });
        Ok(())
    }
}

impl Kernel for LogisticRegression {
    type Params = LogisticParams;

    fn meta() -> Meta {
        Meta::new(
            "logistic-regression",
            env!("CARGO_PKG_VERSION"),
            KernelKind::Classifier,
        )
        .description("multinomial logistic regression with an L2 penalty (L-BFGS)")
        .capabilities(Capabilities::PREDICT_PROBA)
        .by_reference(&["fit"])
    }

    fn new(params: LogisticParams) -> Self {
        LogisticRegression {
            params,
            model: None,
        }
    }

    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        let y = y.ok_or_else(|| {
            KernelError::invalid_input("logistic regression needs a target column")
        })?;
        let labels = LabelType::encode(y)?;
        let matrix = x.to_matrix()?;
        let host = HostMatrix::from_matrix(&matrix)?;
        drop(matrix.data);
        self.fit_matrix(&host, matrix.names, y.name.clone(), labels)
    }

    /// By reference: the frame's columns become a host matrix without
    /// passing through the kernel's memory; only the target is read in.
    fn fit_ref(&mut self, x: FrameRef, y: Option<&HostColumn>) -> Result<(), KernelError> {
        let y = y.ok_or_else(|| {
            KernelError::invalid_input("logistic regression needs a target column")
        })?;
        let labels = LabelType::encode_ref(y)?;
        let features = x.columns.iter().map(HostColumn::name).collect();
        // The handles themselves: the host frees each column once the
        // matrix holds its values, before the optimizer starts.
        let host = HostMatrix::from_columns(x.columns)?;
        self.fit_matrix(&host, features, y.name(), labels)
    }

    fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        let mut best: Vec<&str> = Vec::with_capacity(x.len());
        model.probability_blocks(x, |probabilities| {
            for p in probabilities.chunks(model.classes.len()) {
                let k = (0..p.len()).fold(0, |best, k| if p[k] > p[best] { k } else { best });
                best.push(&model.classes[k]);
            }
            Ok(())
        })?;
        Ok(model.label_type.column(model.target.clone(), &best))
    }

    fn predict_proba(&self, x: &Frame) -> Result<Frame, KernelError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        let mut columns = F64Columns::with_capacity(model.classes.len(), x.len());
        model.probability_blocks(x, |probabilities| {
            columns.push_rows(probabilities, |p| p);
            Ok(())
        })?;
        columns.into_frame(model.classes.iter().cloned())
    }

    fn explain(&self) -> Result<Explanation, KernelError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        let d = model.features.len();
        let rows = if model.classes.len() == 2 {
            &model.classes[1..]
        } else {
            &model.classes[..]
        };
        let mut entries = vec![
            ExplainEntry {
                name: "classes".into(),
                value: ExplainValue::Labels(model.classes.clone()),
            },
            ExplainEntry {
                name: "features".into(),
                value: ExplainValue::Labels(model.features.clone()),
            },
        ];
        let mut strongest = Vec::new();
        for (class, w) in rows.iter().zip(&model.weights) {
            entries.push(ExplainEntry {
                name: format!("coef[{class}]"),
                value: ExplainValue::Vector(w[..d].to_vec()),
            });
            entries.push(ExplainEntry {
                name: format!("intercept[{class}]"),
                value: ExplainValue::Scalar(w[d]),
            });
            let mut order: Vec<usize> = (0..d).collect();
            order.sort_by(|a, b| w[*b].abs().total_cmp(&w[*a].abs()));
            let top: Vec<String> = order
                .iter()
                .take(3)
                .map(|j| format!("{} ({:+.3})", model.features[*j], w[*j]))
                .collect();
            strongest.push(format!("{class}: {}", top.join(", ")));
        }
        entries.push(ExplainEntry {
            name: "strongest".into(),
            value: ExplainValue::Text(strongest.join("; ")),
        });
        Ok(Explanation {
            summary: format!(
                "{} classes over {d} features; L-BFGS {} in {} iterations",
                model.classes.len(),
                if model.converged {
                    "converged"
                } else {
                    "did not converge"
                },
                model.iterations
            ),
            entries,
        })
    }
}

kernel_sdk::export_kernel!(LogisticRegression);

#[cfg(test)]
mod tests {
    /// The contract's properties, natively: the same checks as
    /// `kernel-host test` runs on the component.
    #[test]
    fn keeps_the_contract() {
        kernel_sdk::testing::conformance::<super::LogisticRegression>();
    }

    use super::*;
    use kernel_sdk::testing::Local;

    #[test]
    fn gradient_matches_finite_differences() {
        let x =
            HostMatrix::from_list(4, 2, vec![0.5, -1.0, 1.5, 0.2, -0.3, 0.8, 2.0, -1.2]).unwrap();
        for classes in [2, 3] {
            let y: Vec<f64> = (0..4).map(|i| (i % classes) as f64).collect();
            let labels = HostMatrix::from_list(4, 1, y).unwrap();
            let f = Objective {
                x: &x,
                labels: &labels,
                rows: 4,
                cols: 2,
                classes,
                c: 0.7,
                fit_intercept: true,
            };
            let theta: Vec<f64> = (0..f.outputs() * 3).map(|i| 0.1 * i as f64 - 0.2).collect();
            let mut g = vec![0.0; theta.len()];
            f.eval(&theta, &mut g).unwrap();
            for j in 0..theta.len() {
                let (mut up, mut down) = (theta.clone(), theta.clone());
                up[j] += 1e-6;
                down[j] -= 1e-6;
                let mut scratch = vec![0.0; theta.len()];
                let numeric = (f.eval(&up, &mut scratch).unwrap()
                    - f.eval(&down, &mut scratch).unwrap())
                    / 2e-6;
                assert!(
                    (numeric - g[j]).abs() < 1e-6,
                    "classes {classes} j {j}: {numeric} vs {}",
                    g[j]
                );
            }
        }
    }

    #[test]
    fn by_reference_fits_the_same_model() {
        let x = Frame::new(vec![
            Column::f64("a", vec![0.1, 0.4, 2.2, 2.9, 5.0, 5.5, 0.3, 2.5]),
            Column::s64("b", vec![1, 0, 1, 1, 0, 0, 1, 0]),
        ])
        .unwrap();
        let y = Column::string(
            "y",
            ["p", "p", "q", "q", "r", "r", "p", "q"]
                .map(String::from)
                .to_vec(),
        );
        let mut plain = Local::<LogisticRegression>::new();
        plain.fit(&x, Some(&y)).unwrap();
        let mut by_ref = Local::<LogisticRegression>::new();
        by_ref.fit_ref(&x, Some(&y)).unwrap();
        assert_eq!(plain.kernel().model(), by_ref.kernel().model());
        // a hole is refused by name, on both paths
        let holed = Frame::new(vec![Column {
            name: "a".into(),
            values: ColumnValues::F64(vec![1.0, 2.0]),
            nulls: Some(vec![0, 1]),
        }])
        .unwrap();
        let y2 = Column::s64("y", vec![0, 1]);
        for err in [
            plain.fit(&holed, Some(&y2)).unwrap_err(),
            by_ref.fit_ref(&holed, Some(&y2)).unwrap_err(),
        ] {
            assert!(err.to_string().contains("missing value in row 1"), "{err}");
        }
    }

    #[test]
    fn separable_three_classes_and_label_types() {
        let xs = [0.0, 0.1, 0.2, 5.0, 5.1, 5.2, 10.0, 10.1, 10.2];
        let x = Frame::new(vec![Column::f64("x", xs.to_vec())]).unwrap();
        let y = Column::s64("y", vec![3, 3, 3, 20, 20, 20, 100, 100, 100]);
        let mut k = Local::<LogisticRegression>::with_params(&[("c", 100.0.into())]).unwrap();
        k.fit(&x, Some(&y)).unwrap();
        assert_eq!(k.kernel().model().unwrap().classes, ["3", "20", "100"]);
        assert_eq!(k.predict(&x).unwrap().values, y.values);
        let proba = k.predict_proba(&x).unwrap();
        assert_eq!(proba.column_names(), ["3", "20", "100"]);
    }
}

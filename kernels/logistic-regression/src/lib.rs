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
    /// Class scores (logits) of one row.
    fn logits(&self, row: &[f64], out: &mut [f64]) {
        let d = self.features.len();
        let binary = self.classes.len() == 2;
        if binary {
            out[0] = 0.0;
        }
        for (o, w) in self.weights.iter().enumerate() {
            let z = w[d] + w[..d].iter().zip(row).map(|(a, b)| a * b).sum::<f64>();
            out[if binary { 1 } else { o }] = z;
        }
    }

    fn probabilities(&self, x: &Matrix) -> Vec<Vec<f64>> {
        let k = self.classes.len();
        let mut z = vec![0.0; k];
        x.rows()
            .map(|row| {
                self.logits(row, &mut z);
                softmax(&z)
            })
            .collect()
    }

    fn matrix(&self, x: &Frame) -> Result<Matrix, KernelError> {
        x.select_matrix(&self.features)
    }
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The penalized objective and its gradient at `theta`.
struct Objective<'a> {
    x: &'a Matrix,
    /// Class index of each row.
    y: &'a [usize],
    classes: usize,
    c: f64,
    fit_intercept: bool,
}

impl Objective<'_> {
    fn outputs(&self) -> usize {
        if self.classes == 2 { 1 } else { self.classes }
    }

    fn eval(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let d = self.x.cols;
        let n = self.x.rows as f64;
        let binary = self.classes == 2;
        grad.fill(0.0);
        let mut loss = 0.0;
        let mut z = vec![0.0; self.classes];
        for (i, row) in self.x.rows().enumerate() {
            if binary {
                z[0] = 0.0;
            }
            for o in 0..self.outputs() {
                let w = &theta[o * (d + 1)..(o + 1) * (d + 1)];
                let zi = w[d] + w[..d].iter().zip(row).map(|(a, b)| a * b).sum::<f64>();
                z[if binary { 1 } else { o }] = zi;
            }
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            loss += lse - z[self.y[i]];
            for o in 0..self.outputs() {
                let k = if binary { 1 } else { o };
                let residual = (z[k] - lse).exp() - f64::from(u8::from(self.y[i] == k));
                let g = &mut grad[o * (d + 1)..(o + 1) * (d + 1)];
                for (gj, xj) in g[..d].iter_mut().zip(row) {
                    *gj += residual * xj;
                }
                if self.fit_intercept {
                    g[d] += residual;
                }
            }
        }
        let mut penalty = 0.0;
        for o in 0..self.outputs() {
            let w = &theta[o * (d + 1)..o * (d + 1) + d];
            let g = &mut grad[o * (d + 1)..o * (d + 1) + d];
            for (gj, wj) in g.iter_mut().zip(w) {
                *gj = *gj / n + wj / (self.c * n);
                penalty += wj * wj;
            }
            grad[o * (d + 1) + d] /= n;
        }
        loss / n + penalty / (2.0 * self.c * n)
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
        let (classes, kind, targets) = LabelType::encode(y)?;
        let matrix = x.to_matrix()?;
        let objective = Objective {
            x: &matrix,
            y: &targets,
            classes: classes.len(),
            c: self.params.c,
            fit_intercept: self.params.fit_intercept,
        };
        let d = matrix.cols;
        let theta = vec![0.0; objective.outputs() * (d + 1)];
        let result = lbfgs::minimize(
            |t, g| objective.eval(t, g),
            theta,
            self.params.max_iter as usize,
            self.params.tol,
        );
        if !result.converged {
            kernel_sdk::log::warn(&format!(
                "L-BFGS stopped after {} iterations without reaching tol {}; raise max_iter or scale the inputs",
                result.iterations, self.params.tol
            ));
        }
        self.model = Some(Model {
            features: matrix.names.clone(),
            classes,
            label_type: kind,
            target: y.name.clone(),
            weights: result.x.chunks(d + 1).map(<[f64]>::to_vec).collect(),
            iterations: result.iterations,
            converged: result.converged,
        });
        Ok(())
    }

    fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        let probabilities = model.probabilities(&model.matrix(x)?);
        let best: Vec<&String> = probabilities
            .iter()
            .map(|p| {
                let k = (0..p.len()).fold(0, |best, k| if p[k] > p[best] { k } else { best });
                &model.classes[k]
            })
            .collect();
        let name = model.target.clone();
        let best: Vec<&str> = best.into_iter().map(String::as_str).collect();
        Ok(model.label_type.column(name, &best))
    }

    fn predict_proba(&self, x: &Frame) -> Result<Frame, KernelError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        let probabilities = model.probabilities(&model.matrix(x)?);
        let columns = model
            .classes
            .iter()
            .enumerate()
            .map(|(k, class)| {
                Column::f64(class.clone(), probabilities.iter().map(|p| p[k]).collect())
            })
            .collect();
        Frame::new(columns)
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
        let x = Matrix {
            rows: 4,
            cols: 2,
            data: vec![0.5, -1.0, 1.5, 0.2, -0.3, 0.8, 2.0, -1.2],
            names: vec!["a".into(), "b".into()],
        };
        for classes in [2, 3] {
            let y: Vec<usize> = (0..4).map(|i| i % classes).collect();
            let f = Objective {
                x: &x,
                y: &y,
                classes,
                c: 0.7,
                fit_intercept: true,
            };
            let theta: Vec<f64> = (0..f.outputs() * 3).map(|i| 0.1 * i as f64 - 0.2).collect();
            let mut g = vec![0.0; theta.len()];
            f.eval(&theta, &mut g);
            for j in 0..theta.len() {
                let (mut up, mut down) = (theta.clone(), theta.clone());
                up[j] += 1e-6;
                down[j] -= 1e-6;
                let mut scratch = vec![0.0; theta.len()];
                let numeric = (f.eval(&up, &mut scratch) - f.eval(&down, &mut scratch)) / 2e-6;
                assert!(
                    (numeric - g[j]).abs() < 1e-6,
                    "classes {classes} j {j}: {numeric} vs {}",
                    g[j]
                );
            }
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

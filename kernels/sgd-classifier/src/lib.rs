//! SGD classifier: multinomial logistic regression trained by stochastic
//! gradient descent, one row at a time, for inputs too large to fit at
//! once (like scikit-learn's `SGDClassifier(loss="log_loss")`).
//!
//! - Each row updates the weights: `W -= η_t ((p - y) xᵀ + α W)`, with the
//!   learning rate `η_t = eta0 / (1 + eta0 · alpha · t)` over the global row
//!   count `t`. Intercepts are not penalized.
//! - Rows are processed in order and the state carries `t`, so
//!   `partial_fit` over any chunking of the input gives bit-identical
//!   weights to one call over the whole input.
//! - Classes are learned as they appear (a new class starts at zero
//!   weights); predictions and probabilities come out in sorted class order,
//!   in the target's own type.
//! - `fit` starts afresh and makes `epochs` passes over its input.

use kernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};

kernel_sdk::params! {
    /// Parameters of [`SgdClassifier`].
    pub struct SgdParams {
        /// L2 penalty strength.
        alpha: f64 = 1e-4, range(0.0, 1e6);
        /// Initial learning rate.
        eta0: f64 = 0.1, range(1e-9, 1e3);
        /// Passes over the input in `fit` (`partial_fit` makes one).
        epochs: u32 = 5, range(1, 100000);
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Model {
    pub features: Vec<String>,
    /// In order of first appearance.
    pub classes: Vec<String>,
    /// One row per class: weights then intercept.
    pub weights: Vec<Vec<f64>>,
    /// Rows seen so far.
    pub t: u64,
    label_type: LabelType,
    target: String,
}

#[derive(Serialize, Deserialize)]
pub struct SgdClassifier {
    params: SgdParams,
    model: Option<Model>,
}

impl SgdClassifier {
    pub fn model(&self) -> Option<&Model> {
        self.model.as_ref()
    }
}

fn softmax(z: &mut [f64]) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    z.iter_mut().for_each(|v| *v /= sum);
}

impl Model {
    fn scores(&self, row: &[f64]) -> Vec<f64> {
        let mut z = Vec::with_capacity(self.weights.len());
        self.scores_into(row, &mut z);
        z
    }

    /// The class probabilities of `row` into `z` (reused across rows).
    fn scores_into(&self, row: &[f64], z: &mut Vec<f64>) {
        let d = self.features.len();
        z.clear();
        z.extend(
            self.weights
                .iter()
                .map(|w| w[d] + w[..d].iter().zip(row).map(|(a, b)| a * b).sum::<f64>()),
        );
        softmax(z);
    }

    /// Class indices in sorted class order (numeric targets numerically).
    fn sorted(&self) -> Vec<usize> {
        let mut sorted = self.classes.clone();
        self.label_type.sort(&mut sorted);
        sorted
            .iter()
            .filter_map(|c| self.classes.iter().position(|k| k == c))
            .collect()
    }
}

/// Each row's class index (`None`: no label), numbering the classes in
/// `known` first and the others in order of first appearance; and the
/// labels those indices name. A label is `Column::label`'s text, without
/// making it for every row.
fn class_codes(y: &Column, known: &[String]) -> (Vec<Option<usize>>, Vec<String>) {
    let mut labels = known.to_vec();
    let mut index = |label: String| match labels.iter().position(|c| *c == label) {
        Some(k) => k,
        None => {
            labels.push(label);
            labels.len() - 1
        }
    };
    let rows = y.len();
    let mut codes = Vec::with_capacity(rows);
    match &y.values {
        ColumnValues::String(values) => {
            // Few classes: the last one found is usually the next one too.
            let mut last: Option<(usize, usize)> = None;
            for (row, value) in values.iter().enumerate() {
                if y.is_null(row) {
                    codes.push(None);
                    continue;
                }
                let k = match last {
                    Some((r, k)) if values[r] == *value => k,
                    _ => index(value.clone()),
                };
                last = Some((row, k));
                codes.push(Some(k));
            }
        }
        _ => {
            // Numbers and booleans: the text made once per distinct value.
            let mut seen: Vec<(u64, usize)> = Vec::new();
            for row in 0..rows {
                let bits = match &y.values {
                    ColumnValues::F64(v) => v[row].to_bits(),
                    ColumnValues::S64(v) => v[row] as u64,
                    ColumnValues::Bool(v) => u64::from(v[row]),
                    ColumnValues::String(_) => unreachable!("handled above"),
                };
                if y.is_null(row) {
                    codes.push(None);
                    continue;
                }
                let k = match seen.iter().find(|(b, _)| *b == bits) {
                    Some(&(_, k)) => k,
                    None => {
                        let k = index(y.label(row).unwrap_or_default());
                        seen.push((bits, k));
                        k
                    }
                };
                codes.push(Some(k));
            }
        }
    }
    (codes, labels)
}

impl SgdClassifier {
    /// One pass over `x`, row by row.
    fn learn(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        let y = y.ok_or_else(|| {
            KernelError::invalid_input("the SGD classifier needs a target column")
        })?;
        let matrix = match &self.model {
            Some(m) => x.select_matrix(&m.features)?,
            None => x.to_matrix()?,
        };
        let model = self.model.get_or_insert_with(|| Model {
            features: matrix.names.clone(),
            classes: Vec::new(),
            weights: Vec::new(),
            t: 0,
            label_type: LabelType::of(y),
            target: y.name.clone(),
        });
        let d = model.features.len();
        let (alpha, eta0) = (self.params.alpha, self.params.eta0);
        let (codes, labels) = class_codes(y, &model.classes);
        let mut p = Vec::new();
        for (row, values) in matrix.rows().enumerate() {
            let Some(class) = codes.get(row).copied().flatten() else {
                return Err(KernelError::invalid_input(format!(
                    "target `{}` is missing in row {row}",
                    y.name
                )));
            };
            // A class joins, with zero weights, at its first row.
            if class == model.classes.len() {
                model.classes.push(labels[class].clone());
                model.weights.push(vec![0.0; d + 1]);
            }
            let eta = eta0 / (1.0 + eta0 * alpha * model.t as f64);
            model.scores_into(values, &mut p);
            for (k, w) in model.weights.iter_mut().enumerate() {
                let residual = p[k] - f64::from(u8::from(k == class));
                for (wj, xj) in w[..d].iter_mut().zip(values) {
                    *wj -= eta * (residual * xj + alpha * *wj);
                }
                w[d] -= eta * residual;
            }
            model.t += 1;
        }
        Ok(())
    }

    fn fitted(&self) -> Result<&Model, KernelError> {
        self.model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))
    }
}

impl Kernel for SgdClassifier {
    type Params = SgdParams;

    fn meta() -> Meta {
        Meta::new(
            "sgd-classifier",
            env!("CARGO_PKG_VERSION"),
            KernelKind::Classifier,
        )
        .description("multinomial logistic regression by per-row SGD; exact under chunking")
        .capabilities(Capabilities::PARTIAL_FIT | Capabilities::PREDICT_PROBA)
    }

    fn new(params: SgdParams) -> Self {
        SgdClassifier {
            params,
            model: None,
        }
    }

    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        self.model = None;
        for _ in 0..self.params.epochs {
            self.learn(x, y)?;
        }
        Ok(())
    }

    fn partial_fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        self.learn(x, y)
    }

    fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        let model = self.fitted()?;
        let m = x.select_matrix(&model.features)?;
        let mut p = Vec::new();
        let best: Vec<&String> = m
            .rows()
            .map(|row| {
                model.scores_into(row, &mut p);
                let k = (0..p.len()).fold(0, |b, k| if p[k] > p[b] { k } else { b });
                &model.classes[k]
            })
            .collect();
        let best: Vec<&str> = best.into_iter().map(String::as_str).collect();
        Ok(model.label_type.column(model.target.clone(), &best))
    }

    fn predict_proba(&self, x: &Frame) -> Result<Frame, KernelError> {
        let model = self.fitted()?;
        let m = x.select_matrix(&model.features)?;
        let p: Vec<Vec<f64>> = m.rows().map(|row| model.scores(row)).collect();
        Frame::new(
            model
                .sorted()
                .into_iter()
                .map(|k| Column::f64(model.classes[k].clone(), p.iter().map(|r| r[k]).collect()))
                .collect(),
        )
    }

    fn explain(&self) -> Result<Explanation, KernelError> {
        let model = self.fitted()?;
        let d = model.features.len();
        let mut entries = vec![
            ExplainEntry {
                name: "classes".into(),
                value: ExplainValue::Labels(model.classes.clone()),
            },
            ExplainEntry {
                name: "features".into(),
                value: ExplainValue::Labels(model.features.clone()),
            },
            ExplainEntry {
                name: "rows_seen".into(),
                value: ExplainValue::Scalar(model.t as f64),
            },
        ];
        for (class, w) in model.classes.iter().zip(&model.weights) {
            entries.push(ExplainEntry {
                name: format!("coef[{class}]"),
                value: ExplainValue::Vector(w[..d].to_vec()),
            });
            entries.push(ExplainEntry {
                name: format!("intercept[{class}]"),
                value: ExplainValue::Scalar(w[d]),
            });
        }
        Ok(Explanation {
            summary: format!(
                "{} classes over {d} features after {} rows of SGD",
                model.classes.len(),
                model.t
            ),
            entries,
        })
    }
}

kernel_sdk::export_kernel!(SgdClassifier);

#[cfg(test)]
mod tests {
    /// The contract's properties, natively: the same checks as
    /// `kernel-host test` runs on the component.
    #[test]
    fn keeps_the_contract() {
        kernel_sdk::testing::conformance::<super::SgdClassifier>();
    }

    use super::*;
    use kernel_sdk::testing::Local;

    fn data() -> (Frame, Column) {
        let a: Vec<f64> = (0..200)
            .map(|i| ((i * 37) % 101) as f64 / 50.0 - 1.0)
            .collect();
        let b: Vec<f64> = (0..200)
            .map(|i| ((i * 53) % 97) as f64 / 48.0 - 1.0)
            .collect();
        let y: Vec<String> = a
            .iter()
            .zip(&b)
            .map(|(a, b)| {
                if a + b > 0.3 {
                    "hi"
                } else if a - b > 0.2 {
                    "mid"
                } else {
                    "lo"
                }
                .to_string()
            })
            .collect();
        (
            Frame::new(vec![Column::f64("a", a), Column::f64("b", b)]).unwrap(),
            Column::string("y", y),
        )
    }

    #[test]
    fn chunking_does_not_change_the_weights() {
        let (x, y) = data();
        let mut whole = Local::<SgdClassifier>::new();
        whole.partial_fit(&x, Some(&y)).unwrap();
        for size in [1, 7, 64] {
            let mut chunked = Local::<SgdClassifier>::new();
            for start in (0..200).step_by(size) {
                let rows: Vec<usize> = (start..(start + size).min(200)).collect();
                let part = |c: &Column| match &c.values {
                    ColumnValues::F64(v) => {
                        Column::f64(c.name.clone(), rows.iter().map(|r| v[*r]).collect())
                    }
                    ColumnValues::String(v) => {
                        Column::string(c.name.clone(), rows.iter().map(|r| v[*r].clone()).collect())
                    }
                    _ => unreachable!(),
                };
                let chunk = Frame::new(x.columns.iter().map(part).collect()).unwrap();
                chunked.partial_fit(&chunk, Some(&part(&y))).unwrap();
            }
            assert_eq!(
                whole.kernel().model(),
                chunked.kernel().model(),
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn learns_a_separable_problem() {
        let (x, y) = data();
        let mut k =
            Local::<SgdClassifier>::with_params(&[("epochs", 30i64.into()), ("eta0", 0.5.into())])
                .unwrap();
        k.fit(&x, Some(&y)).unwrap();
        let predicted = k.predict(&x).unwrap();
        let right = (0..200)
            .filter(|r| predicted.label(*r) == y.label(*r))
            .count();
        assert!(right >= 180, "{right}/200");
        assert_eq!(
            k.predict_proba(&x).unwrap().column_names(),
            ["hi", "lo", "mid"]
        );
    }
}

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

use kernel_sdk::Text;
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
    // The largest score (a NaN skipped, as `f64::max` skips it) without a
    // call to libm's `fmax` per score: only the sign of a zero maximum can
    // differ, and `z - max` then differs only in the sign of a zero, which
    // `exp` maps to 1 either way.
    let max = z
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, |m, v| if v > m { v } else { m });
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    z.iter_mut().for_each(|v| *v /= sum);
}

/// Rows of features a prediction builds at a time.
const ROW_BLOCK: usize = 512;

impl Model {
    /// The class probabilities of `row` into `z` (reused across rows).
    fn scores_into(&self, row: &[f64], z: &mut Vec<f64>) {
        let d = self.features.len();
        let x = &row[..d.min(row.len())];
        z.clear();
        let mut rest = self.weights.as_slice();
        loop {
            rest = match rest {
                [] => break,
                [a, b, c, e, tail @ ..] => {
                    push_scores(z, [a, b, c, e], x, d);
                    tail
                }
                [a, b, c] => {
                    push_scores(z, [a, b, c], x, d);
                    break;
                }
                [a, b] => {
                    push_scores(z, [a, b], x, d);
                    break;
                }
                [a] => {
                    push_scores(z, [a], x, d);
                    break;
                }
            };
        }
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

/// Pushes the scores of `N` classes for the features `x`: each class's
/// intercept (`w[d]`) plus its dot product with `x`, summed in the order
/// of `x` from `-0.0` exactly as `Iterator::sum` adds, the classes side by
/// side so that their additions overlap instead of waiting on each other.
fn push_scores<const N: usize>(z: &mut Vec<f64>, weights: [&Vec<f64>; N], x: &[f64], d: usize) {
    let w = weights.map(|w| &w[..x.len()]);
    let mut sums = [-0.0_f64; N];
    for (j, &xj) in x.iter().enumerate() {
        for k in 0..N {
            sums[k] += w[k][j] * xj;
        }
    }
    z.extend((0..N).map(|k| weights[k][d] + sums[k]));
}

fn needs_target() -> KernelError {
    KernelError::invalid_input("the SGD classifier needs a target column")
}

/// A classifier's target as `learn` reads it: a plain column, or the text
/// of a string column read by reference in bulk (no allocation per row).
enum Target<'a> {
    Column(&'a Column),
    Text { name: &'a str, text: &'a Text },
}

/// A target read by reference: a string column as bulk text, others as a
/// column.
enum TargetRead {
    Column(Column),
    Text { name: String, text: Text },
}

impl TargetRead {
    fn of(y: &HostColumn) -> Result<TargetRead, KernelError> {
        Ok(if y.kind() == ColumnType::String {
            TargetRead::Text {
                name: y.name(),
                text: y.read_text(0, y.len())?,
            }
        } else {
            TargetRead::Column(y.read()?)
        })
    }

    fn target(&self) -> Target<'_> {
        match self {
            TargetRead::Column(y) => Target::Column(y),
            TargetRead::Text { name, text } => Target::Text { name, text },
        }
    }
}

impl Target<'_> {
    fn name(&self) -> &str {
        match self {
            Target::Column(y) => &y.name,
            Target::Text { name, .. } => name,
        }
    }

    fn label_type(&self) -> LabelType {
        match self {
            Target::Column(y) => LabelType::of(y),
            Target::Text { .. } => LabelType::Text,
        }
    }

    /// Each row's class index (`None`: no label), numbering the classes in
    /// `known` first and the others in order of first appearance; and the
    /// labels those indices name. A label is `Column::label`'s text,
    /// without making it for every row.
    fn codes(&self, known: &[String]) -> (Vec<Option<usize>>, Vec<String>) {
        let mut labels = known.to_vec();
        let codes = match self {
            Target::Text { text, .. } => text_codes(text.len(), |row| text.get(row), &mut labels),
            Target::Column(y) => match &y.values {
                ColumnValues::String(values) => text_codes(
                    y.len(),
                    |row| (!y.is_null(row)).then(|| values[row].as_str()),
                    &mut labels,
                ),
                _ => value_codes(y, &mut labels),
            },
        };
        (codes, labels)
    }
}

/// The index of `label` among `labels`, appended when new.
fn index_of(labels: &mut Vec<String>, label: &str) -> usize {
    match labels.iter().position(|c| c == label) {
        Some(k) => k,
        None => {
            labels.push(label.to_string());
            labels.len() - 1
        }
    }
}

/// Class indices of text labels (`label(row)`, `None` for a null).
fn text_codes<'a>(
    rows: usize,
    label: impl Fn(usize) -> Option<&'a str>,
    labels: &mut Vec<String>,
) -> Vec<Option<usize>> {
    let mut codes = Vec::with_capacity(rows);
    // Few classes: the last one found is usually the next one too.
    let mut last: Option<(&str, usize)> = None;
    for row in 0..rows {
        let Some(value) = label(row) else {
            codes.push(None);
            continue;
        };
        let k = match last {
            Some((previous, k)) if previous == value => k,
            _ => index_of(labels, value),
        };
        last = Some((value, k));
        codes.push(Some(k));
    }
    codes
}

/// Class indices of a numeric or boolean target: the text of each
/// distinct value made once.
fn value_codes(y: &Column, labels: &mut Vec<String>) -> Vec<Option<usize>> {
    let mut seen: Vec<(u64, usize)> = Vec::new();
    (0..y.len())
        .map(|row| {
            let bits = match &y.values {
                ColumnValues::F64(v) => v[row].to_bits(),
                ColumnValues::S64(v) => v[row] as u64,
                ColumnValues::Bool(v) => u64::from(v[row]),
                ColumnValues::String(_) => unreachable!("text targets go to text_codes"),
            };
            if y.is_null(row) {
                return None;
            }
            Some(match seen.iter().find(|(b, _)| *b == bits) {
                Some(&(_, k)) => k,
                None => {
                    let k = index_of(labels, &y.label(row).unwrap_or_default());
                    seen.push((bits, k));
                    k
                }
            })
        })
        .collect()
}

impl SgdClassifier {
    /// One pass over `x`, row by row.
    fn learn(&mut self, x: &Frame, y: Option<Target>) -> Result<(), KernelError> {
        let y = y.ok_or_else(needs_target)?;
        let matrix = match &self.model {
            Some(m) => x.select_matrix(&m.features)?,
            None => x.to_matrix()?,
        };
        self.learn_rows(&matrix, y)
    }

    /// One pass over the rows of `matrix` (the model's features, in its
    /// order, once it has them).
    fn learn_rows(&mut self, matrix: &Matrix, y: Target) -> Result<(), KernelError> {
        let model = self.model.get_or_insert_with(|| Model {
            features: matrix.names.clone(),
            classes: Vec::new(),
            weights: Vec::new(),
            t: 0,
            label_type: y.label_type(),
            target: y.name().to_string(),
        });
        let d = model.features.len();
        let (alpha, eta0) = (self.params.alpha, self.params.eta0);
        let (codes, labels) = y.codes(&model.classes);
        let mut p = Vec::new();
        for (row, values) in matrix.rows().enumerate() {
            let Some(class) = codes.get(row).copied().flatten() else {
                return Err(KernelError::invalid_input(format!(
                    "target `{}` is missing in row {row}",
                    y.name()
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
        .by_reference(&["fit", "partial-fit"])
    }

    fn new(params: SgdParams) -> Self {
        SgdClassifier {
            params,
            model: None,
        }
    }

    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        self.model = None;
        let y = y.ok_or_else(needs_target)?;
        // One matrix for every epoch: each would read the same columns in
        // the same order.
        let matrix = x.to_matrix()?;
        for _ in 0..self.params.epochs {
            self.learn_rows(&matrix, Target::Column(y))?;
        }
        Ok(())
    }

    fn partial_fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        self.learn(x, y.map(Target::Column))
    }

    fn fit_ref(&mut self, x: FrameRef, y: Option<&HostColumn>) -> Result<(), KernelError> {
        self.model = None;
        let y = y
            .map(TargetRead::of)
            .transpose()?
            .ok_or_else(needs_target)?;
        // The matrix read a block of rows at a time (never the frame
        // beside it), and the handles dropped before the epochs start.
        let matrix = x.to_matrix()?;
        drop(x);
        for _ in 0..self.params.epochs {
            self.learn_rows(&matrix, y.target())?;
        }
        Ok(())
    }

    fn partial_fit_ref(&mut self, x: &FrameRef, y: Option<&HostColumn>) -> Result<(), KernelError> {
        let y = y
            .map(TargetRead::of)
            .transpose()?
            .ok_or_else(needs_target)?;
        // The matrix read a block of rows at a time, never the frame
        // beside it.
        let matrix = match &self.model {
            Some(m) => x.select_matrix(&m.features)?,
            None => x.to_matrix()?,
        };
        self.learn_rows(&matrix, y.target())
    }

    /// Row by row from blocks of the features (the frame and one block
    /// held, never the whole matrix beside the frame).
    fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        let model = self.fitted()?;
        let mut p = Vec::new();
        let mut best: Vec<&str> = Vec::with_capacity(x.len());
        x.select_row_blocks(&model.features, ROW_BLOCK, |m| {
            for row in m.rows() {
                model.scores_into(row, &mut p);
                let k = (0..p.len()).fold(0, |b, k| if p[k] > p[b] { k } else { b });
                best.push(&model.classes[k]);
            }
            Ok(())
        })?;
        Ok(model.label_type.column(model.target.clone(), &best))
    }

    /// As `predict`, each class's probabilities written straight into its
    /// column (in sorted class order).
    fn predict_proba(&self, x: &Frame) -> Result<Frame, KernelError> {
        let model = self.fitted()?;
        let order = model.sorted();
        let mut columns: Vec<Vec<f64>> =
            order.iter().map(|_| Vec::with_capacity(x.len())).collect();
        let mut p = Vec::new();
        x.select_row_blocks(&model.features, ROW_BLOCK, |m| {
            for row in m.rows() {
                model.scores_into(row, &mut p);
                for (column, &k) in columns.iter_mut().zip(&order) {
                    column.push(p[k]);
                }
            }
            Ok(())
        })?;
        Frame::new(
            order
                .into_iter()
                .zip(columns)
                .map(|(k, values)| Column::f64(model.classes[k].clone(), values))
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

    /// The scores as one class after another, each sum by
    /// `Iterator::sum`, the maximum by `f64::max`: what the side-by-side
    /// sums and the inline maximum must give bit for bit.
    fn scores_one_by_one(model: &Model, row: &[f64]) -> Vec<f64> {
        let d = model.features.len();
        let mut z: Vec<f64> = model
            .weights
            .iter()
            .map(|w| w[d] + w[..d].iter().zip(row).map(|(a, b)| a * b).sum::<f64>())
            .collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for v in z.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        z.iter_mut().for_each(|v| *v /= sum);
        z
    }

    #[test]
    fn side_by_side_scores_are_the_scores_one_class_at_a_time() {
        // A small deterministic generator: wide magnitudes, signed zeros.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            match seed % 11 {
                0 => 0.0,
                1 => -0.0,
                _ => {
                    ((seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
                        * 10f64.powi((seed % 7) as i32 - 3)
                }
            }
        };
        let mut p = Vec::new();
        for classes in 1..=9 {
            for d in [0, 1, 2, 7, 17, 33] {
                let model = Model {
                    features: (0..d).map(|j| format!("x{j}")).collect(),
                    classes: (0..classes).map(|k| k.to_string()).collect(),
                    weights: (0..classes)
                        .map(|_| (0..=d).map(|_| next()).collect())
                        .collect(),
                    t: 0,
                    label_type: LabelType::Text,
                    target: "y".into(),
                };
                for _ in 0..50 {
                    let row: Vec<f64> = (0..d).map(|_| next()).collect();
                    model.scores_into(&row, &mut p);
                    let expected = scores_one_by_one(&model, &row);
                    assert_eq!(
                        p.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        "{classes} classes, {d} features"
                    );
                }
            }
        }
    }

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

    /// By reference (the target read as bulk text or as values) and by copy
    /// learn the same bits, for every target type, in `fit` and in
    /// `partial_fit`.
    #[test]
    fn by_reference_matches_the_plain_path() {
        let (x, y) = data();
        let labels: Vec<String> = (0..y.len()).map(|r| y.label(r).unwrap()).collect();
        let code = |l: &String| ["hi", "lo", "mid"].iter().position(|c| c == l).unwrap();
        let targets = [
            y.clone(),
            Column::s64("y", labels.iter().map(|l| code(l) as i64 * 7 - 3).collect()),
            Column::f64("y", labels.iter().map(|l| code(l) as f64 / 4.0).collect()),
            Column::bool("y", labels.iter().map(|l| l == "hi").collect()),
        ];
        for y in &targets {
            kernel_sdk::testing::assert_by_reference_matches::<SgdClassifier>(
                &[("epochs", 3i64.into())],
                &x,
                Some(y),
            );
        }
    }

    /// A missing label (for every target type), no target and a text
    /// feature are refused by reference with the plain path's error, in
    /// `fit` and `partial_fit`.
    #[test]
    fn by_reference_refuses_what_the_plain_path_refuses() {
        let (x, y) = data();
        let hole = |c: Column| c.with_nulls((0..200).map(|r| u8::from(r == 17)).collect());
        let labels: Vec<String> = (0..y.len()).map(|r| y.label(r).unwrap()).collect();
        let mut with_text = x.clone();
        with_text.columns.push(Column::string("t", labels.clone()));
        let cases = [
            (x.clone(), Some(hole(y.clone()))),
            (x.clone(), Some(hole(Column::s64("y", vec![1; 200])))),
            (x.clone(), Some(hole(Column::f64("y", vec![0.5; 200])))),
            (x.clone(), Some(hole(Column::bool("y", vec![true; 200])))),
            (x.clone(), None),
            (with_text, Some(y.clone())),
        ];
        for (x, y) in &cases {
            let refused = |r: Result<(), KernelError>| format!("{:?}", r.unwrap_err());
            let (mut a, mut b) = (Local::<SgdClassifier>::new(), Local::<SgdClassifier>::new());
            let plain = refused(a.fit(x, y.as_ref()));
            assert_eq!(plain, refused(b.fit_ref(x, y.as_ref())));
            let plain = refused(a.partial_fit(x, y.as_ref()));
            assert_eq!(plain, refused(b.partial_fit_ref(x, y.as_ref())));
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

//! Quality metrics computed by the host from predictions and the truth.

use kernel_host_types::bindings::{Column, KernelKind};
use kernel_host_types::frame::cell_str;

/// Running quality metrics over predictions that arrive in chunks: every
/// job scores through this, whole input or chunked, so both report the same
/// numbers. Rows whose truth is missing are skipped; labels compare as text,
/// so an s64 prediction matches an s64 truth and a string matches a string.
/// Regression sums use Welford's update, so the result does not depend on
/// how the rows were chunked beyond rounding.
#[derive(Clone, Debug, Default)]
pub struct Score {
    /// Rows with a known truth (classification) or known truth and
    /// prediction (regression).
    known: u64,
    right: u64,
    mean: f64,
    /// Sum of squared deviations of the truth from its running mean.
    total_sq: f64,
    residual_sq: f64,
}

impl Score {
    /// Adds a chunk of predictions for a final step of `kind`.
    pub fn add(&mut self, kind: KernelKind, predicted: &Column, truth: &Column) {
        let rows = crate::column_len(truth).min(crate::column_len(predicted));
        // Cells as text without an allocation per row: strings borrowed,
        // numbers written into these.
        let (mut t_text, mut p_text) = (String::new(), String::new());
        for row in 0..rows {
            let Some(t) = cell_str(truth, row, &mut t_text) else {
                continue;
            };
            let p = cell_str(predicted, row, &mut p_text);
            match kind {
                KernelKind::Classifier => {
                    self.known += 1;
                    self.right += u64::from(p == Some(t));
                }
                KernelKind::Regressor => {
                    if let (Ok(t), Some(Ok(p))) = (t.parse::<f64>(), p.map(|p| p.parse::<f64>())) {
                        self.known += 1;
                        let delta = t - self.mean;
                        self.mean += delta / self.known as f64;
                        self.total_sq += delta * (t - self.mean);
                        self.residual_sq += (t - p) * (t - p);
                    }
                }
                KernelKind::Transformer | KernelKind::Clusterer => {}
            }
        }
    }

    /// `("accuracy", a)` for a classifier, `("r2", r)` for a regressor, once
    /// enough rows are known.
    pub fn metric(&self, kind: KernelKind) -> Option<(&'static str, f64)> {
        match kind {
            KernelKind::Classifier if self.known > 0 => {
                Some(("accuracy", self.right as f64 / self.known as f64))
            }
            KernelKind::Regressor if self.known > 1 && self.total_sq > 0.0 => {
                Some(("r2", 1.0 - self.residual_sq / self.total_sq))
            }
            _ => None,
        }
    }
}

/// Share of rows whose predicted label equals the true label, over rows
/// where the truth is known.
pub fn accuracy(predicted: &Column, truth: &Column) -> Option<f64> {
    let mut score = Score::default();
    score.add(KernelKind::Classifier, predicted, truth);
    score.metric(KernelKind::Classifier).map(|(_, a)| a)
}

/// Coefficient of determination, over rows where both values are known.
pub fn r2(predicted: &Column, truth: &Column) -> Option<f64> {
    let mut score = Score::default();
    score.add(KernelKind::Regressor, predicted, truth);
    score.metric(KernelKind::Regressor).map(|(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_host_types::bindings::ColumnValues;

    fn col(values: ColumnValues) -> Column {
        Column {
            name: "c".into(),
            values,
            nulls: None,
        }
    }

    #[test]
    fn accuracy_and_r2() {
        let t = col(ColumnValues::String(kernel_host_types::Texts::from([
            "a", "b", "a", "b",
        ])));
        let p = col(ColumnValues::String(kernel_host_types::Texts::from([
            "a", "b", "b", "b",
        ])));
        assert_eq!(accuracy(&p, &t), Some(0.75));
        let t = col(ColumnValues::F64(vec![1.0, 2.0, 3.0]));
        assert_eq!(r2(&t, &t), Some(1.0));
        let mut chunked = Score::default();
        chunked.add(
            KernelKind::Regressor,
            &col(ColumnValues::F64(vec![2.0])),
            &col(ColumnValues::F64(vec![1.0])),
        );
        chunked.add(
            KernelKind::Regressor,
            &col(ColumnValues::F64(vec![2.0, 2.0])),
            &col(ColumnValues::F64(vec![2.0, 3.0])),
        );
        assert_eq!(chunked.metric(KernelKind::Regressor), Some(("r2", 0.0)));
        let p = col(ColumnValues::F64(vec![2.0, 2.0, 2.0]));
        assert_eq!(r2(&p, &t), Some(0.0));
    }
}

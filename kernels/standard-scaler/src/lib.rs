//! Standard scaler: centres each numeric column on its mean and divides by
//! its population standard deviation, like scikit-learn's `StandardScaler`.
//!
//! - Nulls (and NaN) are ignored when fitting and stay null in the output.
//! - A constant column gets scale 1, so it maps to 0 rather than NaN.
//! - String and bool columns pass through untouched.
//! - `partial_fit` merges chunk statistics exactly (Chan et al.), so fitting
//!   in chunks gives the same means and scales as one pass, up to rounding.
//! - Frames by reference: fit, partial-fit and transform also run on host
//!   columns (the statistics and the scaling are host operations, the same
//!   arithmetic as the loops below), so the frame never enters the sandbox.

use kernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};

kernel_sdk::params! {
    /// Parameters of [`StandardScaler`].
    pub struct ScalerParams {
        /// Subtract the mean.
        with_mean: bool = true;
        /// Divide by the standard deviation.
        with_std: bool = true;
    }
}

/// Running statistics of one column.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ColumnStats {
    pub name: String,
    /// Non-null values seen.
    pub count: f64,
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl ColumnStats {
    /// Population standard deviation; 1 for a constant or empty column.
    pub fn scale(&self) -> f64 {
        let std = if self.count > 0.0 {
            (self.m2 / self.count).sqrt()
        } else {
            0.0
        };
        if std > 0.0 && std.is_finite() {
            std
        } else {
            1.0
        }
    }

    /// Merges a chunk's count, mean and m2 into the running statistics.
    fn merge(&mut self, count: f64, mean: f64, m2: f64) {
        if count == 0.0 {
            return;
        }
        let total = self.count + count;
        let delta = mean - self.mean;
        self.mean += delta * count / total;
        self.m2 += m2 + delta * delta * self.count * count / total;
        self.count = total;
    }
}

#[derive(Serialize, Deserialize)]
pub struct StandardScaler {
    params: ScalerParams,
    stats: Vec<ColumnStats>,
}

impl StandardScaler {
    /// The learned statistics, one per numeric column, in input order.
    pub fn stats(&self) -> &[ColumnStats] {
        &self.stats
    }

    fn center_and_scale(&self, stats: &ColumnStats) -> (f64, f64) {
        let mean = if self.params.with_mean {
            stats.mean
        } else {
            0.0
        };
        let scale = if self.params.with_std {
            stats.scale()
        } else {
            1.0
        };
        (mean, scale)
    }
}

impl Kernel for StandardScaler {
    type Params = ScalerParams;

    fn meta() -> Meta {
        Meta::new(
            "standard-scaler",
            env!("CARGO_PKG_VERSION"),
            KernelKind::Transformer,
        )
        .description("standardizes numeric columns to zero mean and unit variance")
        .capabilities(Capabilities::PARTIAL_FIT)
        .by_reference(&["fit", "partial-fit", "transform"])
    }

    fn new(params: ScalerParams) -> Self {
        StandardScaler {
            params,
            stats: Vec::new(),
        }
    }

    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        self.stats.clear();
        self.partial_fit(x, y)
    }

    fn partial_fit(&mut self, x: &Frame, _y: Option<&Column>) -> Result<(), KernelError> {
        for column in &x.columns {
            let Some(values) = column.numeric() else {
                continue;
            };
            // Two-pass statistics for the chunk, merged into the running ones.
            let (mut count, mut sum) = (0.0, 0.0);
            for v in values.present() {
                count += 1.0;
                sum += v;
            }
            let mean = if count > 0.0 { sum / count } else { 0.0 };
            let m2: f64 = values.present().map(|v| (v - mean) * (v - mean)).sum();
            match self.stats.iter_mut().find(|s| s.name == column.name) {
                Some(stats) => stats.merge(count, mean, m2),
                None => self.stats.push(ColumnStats {
                    name: column.name.clone(),
                    count,
                    mean,
                    m2,
                }),
            }
        }
        Ok(())
    }

    fn transform(&self, mut x: Frame) -> Result<Frame, KernelError> {
        for stats in &self.stats {
            if x.column(&stats.name).is_none() {
                return Err(KernelError::invalid_input(format!(
                    "column `{}` was seen in fit but is missing",
                    stats.name
                )));
            }
        }
        for column in &mut x.columns {
            let Some(stats) = self.stats.iter().find(|s| s.name == column.name) else {
                continue;
            };
            let (mean, scale) = self.center_and_scale(stats);
            // Rewrite f64 columns in place: the input buffer becomes the output.
            let scaled = match std::mem::replace(&mut column.values, ColumnValues::F64(Vec::new()))
            {
                ColumnValues::F64(mut values) => {
                    for v in &mut values {
                        *v = (*v - mean) / scale;
                    }
                    values
                }
                ColumnValues::S64(values) => {
                    values.iter().map(|v| (*v as f64 - mean) / scale).collect()
                }
                ColumnValues::Bool(values) => values
                    .iter()
                    .map(|v| (f64::from(u8::from(*v)) - mean) / scale)
                    .collect(),
                ColumnValues::String(_) => {
                    return Err(KernelError::invalid_input(format!(
                        "column `{}` was numeric in fit but is a string column now",
                        column.name
                    )));
                }
            };
            column.values = ColumnValues::F64(scaled);
        }
        Ok(x)
    }

    fn fit_ref(&mut self, x: FrameRef, y: Option<&HostColumn>) -> Result<(), KernelError> {
        self.stats.clear();
        self.partial_fit_ref(&x, y)
    }

    fn partial_fit_ref(
        &mut self,
        x: &FrameRef,
        _y: Option<&HostColumn>,
    ) -> Result<(), KernelError> {
        for column in &x.columns {
            if !column.kind().is_numeric() {
                continue;
            }
            let m = column.moments()?;
            let (count, mean, m2) = (m.count as f64, m.mean, m.m2);
            let name = column.name();
            match self.stats.iter_mut().find(|s| s.name == name) {
                Some(stats) => stats.merge(count, mean, m2),
                None => self.stats.push(ColumnStats {
                    name,
                    count,
                    mean,
                    m2,
                }),
            }
        }
        Ok(())
    }

    fn transform_ref(&self, x: FrameRef) -> Result<FrameRef, KernelError> {
        for stats in &self.stats {
            if x.column(&stats.name).is_none() {
                return Err(KernelError::invalid_input(format!(
                    "column `{}` was seen in fit but is missing",
                    stats.name
                )));
            }
        }
        // Each column handed back: unchanged, or rewritten (in place when
        // the host moved the frame in).
        let columns = x
            .columns
            .into_iter()
            .map(|column| {
                let name = column.name();
                match self.stats.iter().find(|s| s.name == name) {
                    None => Ok(column),
                    Some(_) if !column.kind().is_numeric() => Err(KernelError::invalid_input(
                        format!("column `{name}` was numeric in fit but is a string column now"),
                    )),
                    Some(stats) => {
                        let (mean, scale) = self.center_and_scale(stats);
                        column.affine_into(mean, scale)
                    }
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FrameRef {
            rows: x.rows,
            columns,
        })
    }

    fn explain(&self) -> Result<Explanation, KernelError> {
        let names = self.stats.iter().map(|s| s.name.clone()).collect();
        let means = self.stats.iter().map(|s| s.mean).collect();
        let scales = self.stats.iter().map(ColumnStats::scale).collect();
        Ok(Explanation {
            summary: format!("standardizes {} numeric columns", self.stats.len()),
            entries: vec![
                ExplainEntry {
                    name: "columns".into(),
                    value: ExplainValue::Labels(names),
                },
                ExplainEntry {
                    name: "mean".into(),
                    value: ExplainValue::Vector(means),
                },
                ExplainEntry {
                    name: "scale".into(),
                    value: ExplainValue::Vector(scales),
                },
            ],
        })
    }
}

kernel_sdk::export_kernel!(StandardScaler);

#[cfg(test)]
mod tests {
    /// The contract's properties, natively: the same checks as
    /// `kernel-host test` runs on the component.
    #[test]
    fn keeps_the_contract() {
        kernel_sdk::testing::conformance::<super::StandardScaler>();
    }

    /// By reference (host operations) and by copy give the same bits:
    /// f64 with NaN and nulls, s64, bool, a constant column, a string
    /// column passed through, with and without centring.
    #[test]
    fn by_reference_matches_the_plain_path() {
        use kernel_sdk::prelude::*;
        let x = Frame::new(vec![
            Column::f64("a", vec![1.5, f64::NAN, 3.25, -7.0, 1e9]),
            Column {
                nulls: Some(vec![0, 1, 0, 0, 0]),
                ..Column::f64("b", vec![0.1, 99.0, 0.3, 0.7, 0.2])
            },
            Column::s64("c", vec![1, 2, 3, 4, 5]),
            Column::bool("d", vec![true, false, true, true, false]),
            Column::f64("e", vec![2.0; 5]),
            Column::string(
                "s",
                vec!["x".into(), "y".into(), "x".into(), "z".into(), "y".into()],
            ),
        ])
        .unwrap();
        for params in [
            vec![],
            vec![("with_mean", ParamValue::Bool(false))],
            vec![("with_std", ParamValue::Bool(false))],
        ] {
            kernel_sdk::testing::assert_by_reference_matches::<super::StandardScaler>(
                &params, &x, None,
            );
        }
    }

    use super::*;
    use kernel_sdk::testing::Local;

    fn frame() -> Frame {
        Frame::new(vec![
            Column::f64("a", vec![1.0, 2.0, 3.0, 4.0]),
            Column::s64("b", vec![10, 10, 10, 10]),
            Column::string("c", vec!["x".into(), "y".into(), "x".into(), "y".into()]),
        ])
        .unwrap()
    }

    #[test]
    fn population_std_and_constant_column() {
        let mut k = Local::<StandardScaler>::new();
        k.fit(&frame(), None).unwrap();
        let out = k.transform(frame()).unwrap();
        // mean 2.5, population std sqrt(1.25)
        let s = 1.25f64.sqrt();
        assert_eq!(
            out.columns[0].values,
            ColumnValues::F64(vec![-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s])
        );
        assert_eq!(out.columns[1].values, ColumnValues::F64(vec![0.0; 4]));
        assert_eq!(out.columns[2], frame().columns[2]);
    }

    #[test]
    fn chunked_fit_matches_whole_fit() {
        let data: Vec<f64> = (0..100).map(|i| ((i * 37) % 101) as f64 * 0.5).collect();
        let mut whole = Local::<StandardScaler>::new();
        whole
            .fit(
                &Frame::new(vec![Column::f64("a", data.clone())]).unwrap(),
                None,
            )
            .unwrap();
        let mut chunked = Local::<StandardScaler>::new();
        for chunk in data.chunks(7) {
            let f = Frame::new(vec![Column::f64("a", chunk.to_vec())]).unwrap();
            chunked.partial_fit(&f, None).unwrap();
        }
        let (w, c) = (&whole.kernel().stats()[0], &chunked.kernel().stats()[0]);
        assert!((w.mean - c.mean).abs() < 1e-12);
        assert!((w.scale() - c.scale()).abs() < 1e-12);
    }

    #[test]
    fn state_round_trip() {
        let mut k = Local::<StandardScaler>::new();
        k.fit(&frame(), None).unwrap();
        let mut other = Local::<StandardScaler>::new();
        other.load_state(&k.save_state().unwrap()).unwrap();
        assert_eq!(
            other.transform(frame()).unwrap(),
            k.transform(frame()).unwrap()
        );
    }
}

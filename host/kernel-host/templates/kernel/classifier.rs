//! __NAME__: a classifier kernel for kernel-host.
//!
//! This skeleton is a working nearest-centroid classifier: `fit` learns the
//! mean of every class, `predict` picks the nearest one and
//! `predict_proba` turns distances into probabilities. Replace the maths
//! with yours; keep the shape:
//!
//! - the struct holds the parameters and everything learned, and is
//!   serialized whole by `save-state` (keep it plain data);
//! - refuse what you cannot use with `KernelError::invalid_input` (missing
//!   values, strings, a single class...), never panic;
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
        /// Softmax temperature: higher gives softer probabilities.
        temperature: f64 = 1.0, range(1e-6, 1e6);
    }
}

/// What `fit` learned.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct __TYPE__Model {
    /// The feature columns, in order (new data is read by these names).
    features: Vec<String>,
    /// The classes, sorted (probability columns come in this order).
    classes: Vec<String>,
    /// One centroid per class.
    centroids: Vec<Vec<f64>>,
    /// Keeps numeric targets numeric in the predictions.
    label_type: LabelType,
    target: String,
}

#[derive(Serialize, Deserialize)]
pub struct __TYPE__ {
    params: __TYPE__Params,
    model: Option<__TYPE__Model>,
}

impl __TYPE__ {
    fn model(&self) -> Result<&__TYPE__Model, KernelError> {
        self.model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("call fit first"))
    }

    /// Squared distance from every row of `x` to every centroid.
    fn distances(&self, x: &Frame) -> Result<Vec<Vec<f64>>, KernelError> {
        let model = self.model()?;
        let m = x.select_matrix(&model.features)?;
        Ok(m.rows()
            .map(|row| {
                model
                    .centroids
                    .iter()
                    .map(|c| c.iter().zip(row).map(|(a, b)| (a - b) * (a - b)).sum())
                    .collect()
            })
            .collect())
    }

    /// Softmax of minus the distances, one row per input row.
    fn probabilities(&self, x: &Frame) -> Result<Vec<Vec<f64>>, KernelError> {
        let t = self.params.temperature;
        Ok(self
            .distances(x)?
            .into_iter()
            .map(|d| {
                let nearest = d.iter().copied().fold(f64::INFINITY, f64::min);
                let e: Vec<f64> = d.iter().map(|v| (-(v - nearest) / t).exp()).collect();
                let sum: f64 = e.iter().sum();
                e.into_iter().map(|v| v / sum).collect()
            })
            .collect())
    }
}

impl Kernel for __TYPE__ {
    type Params = __TYPE__Params;

    fn meta() -> Meta {
        Meta::new("__NAME__", env!("CARGO_PKG_VERSION"), KernelKind::Classifier)
            .description("nearest-centroid classifier")
            .capabilities(Capabilities::PREDICT_PROBA)
    }

    fn new(params: __TYPE__Params) -> Self {
        __TYPE__ {
            params,
            model: None,
        }
    }

    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        let y = y.ok_or_else(|| KernelError::invalid_input("a classifier needs a target"))?;
        // Refuses fewer than two classes and missing labels.
        let (classes, label_type, targets) = LabelType::encode(y)?;
        // Refuses strings and missing values, naming the column.
        let m = x.to_matrix()?;
        m.require_finite()?;
        let mut sums = vec![vec![0.0; m.cols]; classes.len()];
        let mut counts = vec![0usize; classes.len()];
        for (row, &k) in m.rows().zip(&targets) {
            sums[k].iter_mut().zip(row).for_each(|(s, v)| *s += v);
            counts[k] += 1;
        }
        let centroids = sums
            .into_iter()
            .zip(&counts)
            .map(|(s, &n)| s.into_iter().map(|v| v / n as f64).collect())
            .collect();
        self.model = Some(__TYPE__Model {
            features: m.names,
            classes,
            centroids,
            label_type,
            target: y.name.clone(),
        });
        Ok(())
    }

    fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        let model = self.model()?;
        let labels: Vec<&str> = self
            .probabilities(x)?
            .iter()
            .map(|p| {
                // The arg-max of predict_proba (the first on ties).
                let k = (0..p.len()).fold(0, |best, k| if p[k] > p[best] { k } else { best });
                model.classes[k].as_str()
            })
            .collect();
        Ok(model.label_type.column(model.target.clone(), &labels))
    }

    fn predict_proba(&self, x: &Frame) -> Result<Frame, KernelError> {
        let model = self.model()?;
        let p = self.probabilities(x)?;
        // One f64 column per class, named by the class.
        let mut out = Frame::new(
            model
                .classes
                .iter()
                .enumerate()
                .map(|(k, c)| Column::f64(c.clone(), p.iter().map(|r| r[k]).collect()))
                .collect(),
        )?;
        out.rows = x.rows;
        Ok(out)
    }

    fn explain(&self) -> Result<Explanation, KernelError> {
        let model = self.model()?;
        Ok(Explanation {
            summary: format!("{} class centroids", model.classes.len()),
            entries: model
                .classes
                .iter()
                .zip(&model.centroids)
                .map(|(c, v)| ExplainEntry {
                    name: format!("centroid {c}"),
                    value: ExplainValue::Vector(v.clone()),
                })
                .collect(),
        })
    }
}

kernel_sdk::export_kernel!(__TYPE__);

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_sdk::testing::Local;

    fn data() -> (Frame, Column) {
        let x = Frame::new(vec![
            Column::f64("a", vec![0.0, 0.2, 5.0, 5.2]),
            Column::f64("b", vec![1.0, 1.2, 0.0, 0.1]),
        ])
        .unwrap();
        let y = Column::string("kind", ["low", "low", "high", "high"].map(String::from).to_vec());
        (x, y)
    }

    #[test]
    fn predicts_the_nearest_class() {
        let (x, y) = data();
        let mut kernel = Local::<__TYPE__>::new();
        kernel.fit(&x, Some(&y)).unwrap();
        let predicted = kernel.predict(&x).unwrap();
        assert_eq!(predicted.values, y.values);
    }

    /// The contract's properties, natively (`kernel-host test` runs the
    /// same ones on the built component, with fuel and memory measured).
    #[test]
    fn keeps_the_contract() {
        kernel_sdk::testing::conformance::<__TYPE__>();
    }
}

//! __NAME__: a clusterer kernel for kernel-host.
//!
//! This skeleton is a working k-means (Lloyd's algorithm): `fit` starts
//! from `k` rows spread through the input and moves the centres until they
//! settle, `predict` returns each row's nearest centre. Replace the maths
//! with yours; keep the shape:
//!
//! - the struct holds the parameters and everything learned, and is
//!   serialized whole by `save-state` (keep it plain data);
//! - refuse what you cannot use with `KernelError::invalid_input` (missing
//!   values, strings, fewer rows than clusters...), never panic;
//! - outputs depend only on parameters, what was learned and the input:
//!   no randomness the parameters do not seed.
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
        /// Number of clusters.
        k: u32 = 3, range(1, 1000);
        /// Most refinement passes over the data.
        max_iter: u32 = 100, range(1, 10000);
    }
}

/// What `fit` learned.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct __TYPE__Model {
    features: Vec<String>,
    centres: Vec<Vec<f64>>,
}

#[derive(Serialize, Deserialize)]
pub struct __TYPE__ {
    params: __TYPE__Params,
    model: Option<__TYPE__Model>,
}

/// The index of the centre nearest to `row`.
fn nearest(row: &[f64], centres: &[Vec<f64>]) -> usize {
    let distance = |c: &Vec<f64>| -> f64 { c.iter().zip(row).map(|(a, b)| (a - b) * (a - b)).sum() };
    (0..centres.len()).fold(0, |best, j| {
        if distance(&centres[j]) < distance(&centres[best]) { j } else { best }
    })
}

impl Kernel for __TYPE__ {
    type Params = __TYPE__Params;

    fn meta() -> Meta {
        Meta::new("__NAME__", env!("CARGO_PKG_VERSION"), KernelKind::Clusterer)
            .description("k-means clustering (Lloyd's algorithm)")
    }

    fn new(params: __TYPE__Params) -> Self {
        __TYPE__ {
            params,
            model: None,
        }
    }

    fn fit(&mut self, x: &Frame, _y: Option<&Column>) -> Result<(), KernelError> {
        let m = x.to_matrix()?;
        m.require_finite()?;
        let k = self.params.k as usize;
        if m.rows < k {
            return Err(KernelError::invalid_input(format!(
                "{} rows cannot make {k} clusters",
                m.rows
            )));
        }
        // Deterministic start: rows spread evenly through the input.
        let mut centres: Vec<Vec<f64>> = (0..k).map(|j| m.row(j * m.rows / k).to_vec()).collect();
        for _ in 0..self.params.max_iter {
            let mut sums = vec![vec![0.0; m.cols]; k];
            let mut counts = vec![0usize; k];
            for row in m.rows() {
                let j = nearest(row, &centres);
                sums[j].iter_mut().zip(row).for_each(|(s, v)| *s += v);
                counts[j] += 1;
            }
            let moved: Vec<Vec<f64>> = sums
                .into_iter()
                .zip(&counts)
                .zip(&centres)
                // An empty cluster keeps its centre.
                .map(|((s, &n), old)| {
                    if n == 0 { old.clone() } else { s.into_iter().map(|v| v / n as f64).collect() }
                })
                .collect();
            let settled = moved == centres;
            centres = moved;
            if settled {
                break;
            }
        }
        self.model = Some(__TYPE__Model {
            features: m.names,
            centres,
        });
        Ok(())
    }

    fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        let model = self
            .model
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("call fit first"))?;
        let m = x.select_matrix(&model.features)?;
        Ok(Column::s64(
            "cluster",
            m.rows().map(|r| nearest(r, &model.centres) as i64).collect(),
        ))
    }
}

kernel_sdk::export_kernel!(__TYPE__);

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_sdk::testing::Local;

    #[test]
    fn separates_two_groups() {
        let x = Frame::new(vec![Column::f64("a", vec![0.0, 0.1, 10.0, 10.1])]).unwrap();
        let mut kernel = Local::<__TYPE__>::with_params(&[("k", 2i64.into())]).unwrap();
        kernel.fit(&x, None).unwrap();
        let ColumnValues::S64(c) = kernel.predict(&x).unwrap().values else {
            unreachable!("clusters are s64")
        };
        assert_eq!(c[0], c[1]);
        assert_eq!(c[2], c[3]);
        assert_ne!(c[0], c[2]);
    }

    /// The contract's properties, natively (`kernel-host test` runs the
    /// same ones on the built component, with fuel and memory measured).
    #[test]
    fn keeps_the_contract() {
        kernel_sdk::testing::conformance::<__TYPE__>();
    }
}

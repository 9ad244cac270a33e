//! Principal component analysis on host tensors.
//!
//! `fit` centres the data, forms the covariance matrix `XᵀX / (n - 1)` with
//! one host matrix product, then finds the leading eigenvectors by power
//! iteration with deflation, all on host tensors (the GPU when there is
//! one). `transform` projects centred rows onto the components: columns
//! `pc1`, `pc2`, ... Components are signed so their largest entry is
//! positive, for reproducible output.

use kernel_sdk::prelude::*;
use kernel_sdk::tensor::Tensor;
use serde::{Deserialize, Serialize};

kernel_sdk::params! {
    /// Parameters of [`Pca`].
    pub struct PcaParams {
        /// Components to keep.
        n_components: u32 = 2, range(1, 100000);
        /// Power iterations per component.
        iterations: u32 = 200, range(1, 1000000);
        /// Seeds the starting vectors.
        seed: u64 = 0;
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Fitted {
    pub features: Vec<String>,
    pub mean: Vec<f32>,
    /// `d x k`, row-major: column `j` is component `j`.
    pub components: Vec<f32>,
    pub explained_variance: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
pub struct Pca {
    params: PcaParams,
    fitted: Option<Fitted>,
}

/// A scalar out of a 1x1 tensor.
fn scalar(t: &Tensor) -> Result<f32, KernelError> {
    Ok(t.to_vec()?.first().copied().unwrap_or(0.0))
}

impl Kernel for Pca {
    type Params = PcaParams;

    fn meta() -> Meta {
        Meta::new("pca", env!("CARGO_PKG_VERSION"), KernelKind::Transformer)
            .description("principal components by power iteration on host tensors")
    }

    fn new(params: PcaParams) -> Self {
        Pca {
            params,
            fitted: None,
        }
    }

    fn fit(&mut self, x: &Frame, _y: Option<&Column>) -> Result<(), KernelError> {
        let matrix = x.to_matrix()?;
        let (n, d) = (matrix.rows, matrix.cols);
        let k = (self.params.n_components as usize).min(d);
        if n < 2 || k == 0 {
            return Err(KernelError::invalid_input(format!(
                "PCA needs at least 2 rows and 1 numeric column, not {n}x{d}"
            )));
        }
        let x = Tensor::from_matrix(&matrix)?;
        let mean = x.mean(0)?;
        let centred = x.sub(&mean)?;
        let mut cov = centred
            .matmul_t(&centred, true, false)?
            .mul_scalar(1.0 / (n as f32 - 1.0))?;
        let mut components = Vec::with_capacity(k);
        let mut variances = Vec::with_capacity(k);
        for c in 0..k {
            let mut v = Tensor::uniform(d, 1, 0.5, 1.5, self.params.seed.wrapping_add(c as u64))?;
            for _ in 0..self.params.iterations {
                let w = cov.matmul(&v)?;
                let norm = w.square()?.sum(0)?.sqrt()?;
                if scalar(&norm)? == 0.0 {
                    break;
                }
                v = w.div(&norm)?;
            }
            let lambda = v.matmul_t(&cov.matmul(&v)?, true, false)?;
            // Deflate: remove this component's variance.
            cov = cov.sub(
                &v.matmul_t(&v, false, true)?
                    .binary(kernel_sdk::tensor::BinaryOp::Mul, &lambda)?,
            )?;
            let mut values = v.to_vec()?;
            let largest = values
                .iter()
                .copied()
                .fold(0f32, |a, b| if b.abs() > a.abs() { b } else { a });
            if largest < 0.0 {
                values.iter_mut().for_each(|x| *x = -*x);
            }
            variances.push(scalar(&lambda)?);
            components.push(values);
        }
        let mut flat = vec![0f32; d * k];
        for (j, comp) in components.iter().enumerate() {
            for (i, value) in comp.iter().enumerate() {
                flat[i * k + j] = *value;
            }
        }
        self.fitted = Some(Fitted {
            features: matrix.names.clone(),
            mean: mean.to_vec()?,
            components: flat,
            explained_variance: variances,
        });
        Ok(())
    }

    fn transform(&self, x: Frame) -> Result<Frame, KernelError> {
        let f = self
            .fitted
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        let (d, k) = (f.features.len(), f.explained_variance.len());
        let mean = Tensor::from_rows(1, d, &f.mean)?;
        let components = Tensor::from_rows(d, k, &f.components)?;
        let mut columns = F64Columns::with_capacity(k, x.len());
        x.select_row_blocks(&f.features, kernel_sdk::HOST_BLOCK_ROWS, |block| {
            let projected = Tensor::from_matrix(block)?
                .sub(&mean)?
                .matmul(&components)?
                .to_vec()?;
            columns.push_rows(&projected, f64::from);
            Ok(())
        })?;
        columns.into_frame((1..=k).map(|j| format!("pc{j}")))
    }

    fn explain(&self) -> Result<Explanation, KernelError> {
        let f = self
            .fitted
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        Ok(Explanation {
            summary: format!(
                "{} components of {} features",
                f.explained_variance.len(),
                f.features.len()
            ),
            entries: vec![ExplainEntry {
                name: "explained-variance".into(),
                value: ExplainValue::Vector(
                    f.explained_variance.iter().map(|&v| f64::from(v)).collect(),
                ),
            }],
        })
    }
}

kernel_sdk::export_kernel!(Pca);

//! A multi-layer perceptron classifier trained on host tensors.
//!
//! One hidden layer of ReLU units, a softmax output, cross-entropy loss with
//! an L2 penalty, trained by minibatch Adam; all of it seeded, so a fit is
//! reproducible. The math runs in the host through the tensor API
//! ([`kernel_sdk::tensor`]): on the GPU when kernel-host has one, otherwise
//! natively on the CPU. The kernel only shuffles indices and keeps the
//! learned weights, which it copies out once at the end of `fit` so that
//! `save-state` captures them.

use kernel_sdk::prelude::*;
use kernel_sdk::tensor::Tensor;
use serde::{Deserialize, Serialize};

kernel_sdk::params! {
    /// Parameters of [`MlpClassifier`].
    pub struct MlpParams {
        /// Units in the hidden layer.
        hidden: u32 = 32, range(1, 65536);
        /// Passes over the training data.
        epochs: u32 = 200, range(1, 1000000);
        /// Rows per Adam step.
        batch_size: u32 = 32, range(1, 1000000);
        /// Adam's step size.
        learning_rate: f64 = 0.01, range(1e-9, 10.0);
        /// L2 penalty on the weights (scikit-learn's `alpha`).
        alpha: f64 = 0.0001, range(0.0, 1000.0);
        /// Seeds the initial weights and the shuffling.
        seed: u64 = 0;
    }
}

/// The learned network: weights row-major, as f32.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Network {
    pub features: Vec<String>,
    pub classes: Vec<String>,
    label_type: LabelType,
    target: String,
    hidden: usize,
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    /// Mean cross-entropy of the last epoch.
    pub loss: f32,
}

#[derive(Serialize, Deserialize)]
pub struct MlpClassifier {
    params: MlpParams,
    network: Option<Network>,
}

/// The network's parameters as host tensors.
struct Weights {
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
}

impl Weights {
    /// Class probabilities of `x` (n x d).
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor), KernelError> {
        let z1 = x.matmul(&self.w1)?.add(&self.b1)?;
        let a1 = z1.relu()?;
        let p = a1.matmul(&self.w2)?.add(&self.b2)?.softmax(1)?;
        Ok((z1, a1, p))
    }
}

/// Adam's running moments of one parameter.
struct Moments {
    m: Tensor,
    v: Tensor,
}

impl Moments {
    fn new(rows: usize, cols: usize) -> Result<Moments, KernelError> {
        Ok(Moments {
            m: Tensor::zeros(rows, cols)?,
            v: Tensor::zeros(rows, cols)?,
        })
    }
}

struct Adam {
    rate: f32,
    step: i32,
}

impl Adam {
    const B1: f32 = 0.9;
    const B2: f32 = 0.999;
    const EPS: f32 = 1e-8;

    /// `param - rate · m̂ / (√v̂ + ε)`, updating the moments.
    fn update(
        &self,
        param: &Tensor,
        grad: &Tensor,
        s: &mut Moments,
    ) -> Result<Tensor, KernelError> {
        s.m =
            s.m.mul_scalar(Self::B1)?
                .add(&grad.mul_scalar(1.0 - Self::B1)?)?;
        s.v =
            s.v.mul_scalar(Self::B2)?
                .add(&grad.square()?.mul_scalar(1.0 - Self::B2)?)?;
        let m_hat = 1.0 / (1.0 - Self::B1.powi(self.step));
        let v_hat = 1.0 / (1.0 - Self::B2.powi(self.step));
        let denominator = s.v.mul_scalar(v_hat)?.sqrt()?.add_scalar(Self::EPS)?;
        let delta = s.m.mul_scalar(m_hat * self.rate)?.div(&denominator)?;
        Ok(param.sub(&delta)?)
    }
}

/// A seeded permutation of `0..n` (SplitMix64 + Fisher-Yates).
fn shuffled(n: usize, state: &mut u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        order.swap(i, (z % (i as u64 + 1)) as usize);
    }
    order
}

impl Network {
    fn weights(&self) -> Result<Weights, KernelError> {
        let (d, h, k) = (self.features.len(), self.hidden, self.classes.len());
        Ok(Weights {
            w1: Tensor::from_rows(d, h, &self.w1)?,
            b1: Tensor::from_rows(1, h, &self.b1)?,
            w2: Tensor::from_rows(h, k, &self.w2)?,
            b2: Tensor::from_rows(1, k, &self.b2)?,
        })
    }

    /// Class probabilities of the rows of `x`, row-major (`rows × classes`)
    /// a block of rows at a time, in order.
    fn probability_blocks(
        &self,
        x: &Frame,
        mut f: impl FnMut(&[f32]) -> Result<(), KernelError>,
    ) -> Result<(), KernelError> {
        let weights = self.weights()?;
        x.select_row_blocks(&self.features, kernel_sdk::HOST_BLOCK_ROWS, |block| {
            let (_, _, p) = weights.forward(&Tensor::from_matrix(block)?)?;
            f(&p.to_vec()?)
        })
    }
}

impl Kernel for MlpClassifier {
    type Params = MlpParams;

    fn meta() -> Meta {
        Meta::new(
            "mlp-classifier",
            env!("CARGO_PKG_VERSION"),
            KernelKind::Classifier,
        )
        .description(
            "one-hidden-layer ReLU network, softmax output, minibatch Adam, on host tensors",
        )
        .capabilities(Capabilities::PREDICT_PROBA)
    }

    fn new(params: MlpParams) -> Self {
        MlpClassifier {
            params,
            network: None,
        }
    }

    fn fit(&mut self, x: &Frame, y: Option<&Column>) -> Result<(), KernelError> {
        let y =
            y.ok_or_else(|| KernelError::invalid_input("an MLP classifier needs a target column"))?;
        let (classes, label_type, targets) = LabelType::encode(y)?;
        let matrix = x.to_matrix()?;
        matrix.require_finite()?;
        let (n, d, k) = (matrix.rows, matrix.cols, classes.len());
        let h = self.params.hidden as usize;
        let mut one_hot = vec![0f32; n * k];
        for (row, &class) in targets.iter().enumerate() {
            one_hot[row * k + class] = 1.0;
        }
        let x_all = Tensor::from_matrix(&matrix)?;
        let y_all = Tensor::from_rows(n, k, &one_hot)?;

        let seed = self.params.seed;
        let mut w = Weights {
            w1: Tensor::normal(d, h, 0.0, (2.0 / d.max(1) as f32).sqrt(), seed)?,
            b1: Tensor::zeros(1, h)?,
            w2: Tensor::normal(h, k, 0.0, (2.0 / h as f32).sqrt(), seed.wrapping_add(1))?,
            b2: Tensor::zeros(1, k)?,
        };
        let mut moments = [
            Moments::new(d, h)?,
            Moments::new(1, h)?,
            Moments::new(h, k)?,
            Moments::new(1, k)?,
        ];
        let mut adam = Adam {
            rate: self.params.learning_rate as f32,
            step: 0,
        };
        let alpha = self.params.alpha as f32;
        let batch = (self.params.batch_size as usize).min(n).max(1);
        let mut state = seed ^ 0x5EED;
        let mut loss = 0.0;
        for _ in 0..self.params.epochs {
            let order = shuffled(n, &mut state);
            let mut epoch_loss = 0.0f64;
            for idx in order.chunks(batch) {
                let xb = x_all.gather_rows(idx)?;
                let yb = y_all.gather_rows(idx)?;
                let m = idx.len() as f32;
                let (z1, a1, p) = w.forward(&xb)?;
                // Cross-entropy, summed over the batch (for reporting).
                let log_p = p.add_scalar(1e-12)?.ln()?.mul(&yb)?.sum(0)?.sum(1)?;
                epoch_loss -= f64::from(log_p.to_vec()?.first().copied().unwrap_or(0.0));
                // Backward pass: softmax + cross-entropy gives p - y.
                let dz2 = p.sub(&yb)?.mul_scalar(1.0 / m)?;
                let dw2 = a1
                    .matmul_t(&dz2, true, false)?
                    .add(&w.w2.mul_scalar(alpha / m)?)?;
                let db2 = dz2.sum(0)?;
                let da1 = dz2.matmul_t(&w.w2, false, true)?;
                let dz1 = da1.mul(&z1.step()?)?;
                let dw1 = xb
                    .matmul_t(&dz1, true, false)?
                    .add(&w.w1.mul_scalar(alpha / m)?)?;
                let db1 = dz1.sum(0)?;
                adam.step += 1;
                let [s1, s2, s3, s4] = &mut moments;
                w = Weights {
                    w1: adam.update(&w.w1, &dw1, s1)?,
                    b1: adam.update(&w.b1, &db1, s2)?,
                    w2: adam.update(&w.w2, &dw2, s3)?,
                    b2: adam.update(&w.b2, &db2, s4)?,
                };
            }
            loss = (epoch_loss / n as f64) as f32;
            if !loss.is_finite() {
                return Err(KernelError::failed(
                    "training diverged (the loss is not finite); lower learning_rate or scale the inputs",
                ));
            }
        }
        self.network = Some(Network {
            features: matrix.names.clone(),
            classes,
            label_type,
            target: y.name.clone(),
            hidden: h,
            w1: w.w1.to_vec()?,
            b1: w.b1.to_vec()?,
            w2: w.w2.to_vec()?,
            b2: w.b2.to_vec()?,
            loss,
        });
        Ok(())
    }

    fn predict(&self, x: &Frame) -> Result<Column, KernelError> {
        let net = self
            .network
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        let k = net.classes.len();
        let mut best: Vec<&str> = Vec::with_capacity(x.len());
        net.probability_blocks(x, |p| {
            for row in p.chunks(k) {
                let at = (0..k).fold(0, |b, i| if row[i] > row[b] { i } else { b });
                best.push(net.classes[at].as_str());
            }
            Ok(())
        })?;
        Ok(net.label_type.column(net.target.clone(), &best))
    }

    fn predict_proba(&self, x: &Frame) -> Result<Frame, KernelError> {
        let net = self
            .network
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        let mut columns = F64Columns::with_capacity(net.classes.len(), x.len());
        net.probability_blocks(x, |p| {
            columns.push_rows(p, f64::from);
            Ok(())
        })?;
        columns.into_frame(net.classes.iter().cloned())
    }

    fn explain(&self) -> Result<Explanation, KernelError> {
        let net = self
            .network
            .as_ref()
            .ok_or_else(|| KernelError::not_fitted("fit first"))?;
        Ok(Explanation {
            summary: format!(
                "{} features -> {} ReLU units -> {} classes; final training loss {:.4}",
                net.features.len(),
                net.hidden,
                net.classes.len(),
                net.loss
            ),
            entries: vec![
                ExplainEntry {
                    name: "classes".into(),
                    value: ExplainValue::Labels(net.classes.clone()),
                },
                ExplainEntry {
                    name: "hidden-units".into(),
                    value: ExplainValue::Scalar(net.hidden as f64),
                },
                ExplainEntry {
                    name: "final-loss".into(),
                    value: ExplainValue::Scalar(f64::from(net.loss)),
                },
            ],
        })
    }
}

kernel_sdk::export_kernel!(MlpClassifier);

//! A kernel that exercises the host tensor API for the tests and the
//! benchmark. `configure` takes `behaviour` and `target`:
//!
//! - `hoard`: `fit` allocates 1 MiB tensors, keeping them all, until the
//!   host refuses; the refusal comes back as the kernel's error;
//! - `flood`: `fit` publishes 1 MiB tensors under new names until refused;
//! - `outer`: `fit` asks for a 4 GiB outer product of two small tensors;
//! - `publish`: `fit` publishes its first column as a tensor named `target`;
//! - `take`: `transform` takes the tensor named `target` and returns it as a
//!   column `taken` (without it ever crossing the publisher's sandbox);
//! - `forge`: `transform` uses the raw handle number `target`, as if stolen
//!   from another kernel;
//! - `matmul`: `fit` makes two random `target x target` tensors and keeps
//!   them; each `transform` multiplies them once and reads back one row
//!   (for the benchmark);
//! - `matmul-loop`: `fit` multiplies two `target x target` tensors again and
//!   again, forever (host work that must count against the time limit);
//! - `long-names`: `fit` publishes tensors under 32 MiB names.

#![allow(clippy::panic)]
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use kernel_sdk::__bindings::exports::kernel_host::kernel::kernel::Guest;
use kernel_sdk::__bindings::kernel_host::kernel::tensor as wit;
use kernel_sdk::tensor::Tensor;
use kernel_sdk::{
    Capabilities, Column, ColumnValues, Explanation, Frame, KernelError, KernelInfo, KernelKind,
    Param, ParamValue,
};
use std::cell::RefCell;

#[derive(Default)]
struct State {
    behaviour: String,
    target: String,
    kept: Vec<Tensor>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn first_column(x: &Frame) -> Vec<f64> {
    match x.columns.first().map(|c| &c.values) {
        Some(ColumnValues::F64(v)) => v.clone(),
        _ => Vec::new(),
    }
}

struct Probe;

impl Guest for Probe {
    fn describe() -> KernelInfo {
        KernelInfo {
            name: "tensor-probe".into(),
            version: "0.1.0".into(),
            kind: KernelKind::Transformer,
            description: "exercises the host tensor API".into(),
            params: Vec::new(),
            capabilities: Capabilities::empty(),
        }
    }

    fn configure(params: Vec<Param>) -> Result<(), KernelError> {
        let text = |name: &str| {
            params
                .iter()
                .find(|p| p.name == name)
                .map(|p| match &p.value {
                    ParamValue::String(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default()
        };
        STATE.with_borrow_mut(|s| {
            s.behaviour = text("behaviour");
            s.target = text("target");
        });
        Ok(())
    }

    fn fit(x: Frame, _y: Option<Column>) -> Result<(), KernelError> {
        STATE.with_borrow_mut(|s| match s.behaviour.as_str() {
            "hoard" => loop {
                let t = Tensor::zeros(256, 1024)?;
                s.kept.push(t);
            },
            "flood" => {
                // Publishes 1 MiB tensors under new names, dropping each
                // handle, so its own cap never binds.
                for i in 0.. {
                    let t = Tensor::zeros(256, 1024)?;
                    t.publish(&format!("flood-{i}"))?;
                }
                Ok(())
            }
            "outer" => {
                // A 32768 x 32768 product: 4 GiB, from two 128 KiB operands.
                let column = Tensor::zeros(32768, 1)?;
                let row = Tensor::zeros(1, 32768)?;
                column.matmul(&row)?;
                Ok(())
            }
            "publish" => {
                let column = first_column(&x);
                let values: Vec<f32> = column.iter().map(|&v| v as f32).collect();
                let t = Tensor::from_rows(values.len(), 1, &values)?;
                t.publish(&s.target)?;
                Ok(())
            }
            "matmul-loop" => {
                let n: usize = s.target.parse().unwrap_or(512);
                let a = Tensor::uniform(n, n, -1.0, 1.0, 1)?;
                let b = Tensor::uniform(n, n, -1.0, 1.0, 2)?;
                loop {
                    std::hint::black_box(a.matmul(&b)?);
                }
            }
            "long-names" => {
                let name = "n".repeat(32 << 20);
                for i in 0..256 {
                    let t = Tensor::zeros(1, 1)?;
                    t.publish(&format!("{name}{i}"))?;
                }
                Ok(())
            }
            "matmul" => {
                let n: usize = s.target.parse().unwrap_or(64);
                s.kept = vec![
                    Tensor::uniform(n, n, -1.0, 1.0, 1)?,
                    Tensor::uniform(n, n, -1.0, 1.0, 2)?,
                ];
                Ok(())
            }
            _ => Ok(()),
        })
    }

    fn partial_fit(x: Frame, y: Option<Column>) -> Result<(), KernelError> {
        Self::fit(x, y)
    }

    fn transform(x: Frame) -> Result<Frame, KernelError> {
        STATE.with_borrow(|s| match s.behaviour.as_str() {
            "take" => {
                let t = Tensor::take(&s.target)?;
                let values = t.to_vec()?;
                Ok(Frame {
                    rows: values.len() as u32,
                    columns: vec![Column::f64(
                        "taken",
                        values.iter().map(|&v| f64::from(v)).collect(),
                    )],
                })
            }
            "forge" => {
                let handle: u32 = s.target.parse().unwrap_or(1);
                // SAFETY (of the guest's own memory): this only wraps a
                // number; the host decides whether it names a tensor.
                let stolen = unsafe { wit::Tensor::from_handle(handle) };
                let shape = stolen.shape();
                Err(KernelError::Failed(format!(
                    "used a forged handle: {shape:?}"
                )))
            }
            "matmul" => {
                let product = s.kept[0].matmul(&s.kept[1])?;
                // Reading a row waits for the device (a GPU runs async).
                product.slice_rows(0, 1)?.to_vec()?;
                Ok(x)
            }
            _ => Ok(x),
        })
    }

    fn predict(_x: Frame) -> Result<Column, KernelError> {
        Err(KernelError::Unsupported("no predictions".into()))
    }

    fn predict_proba(_x: Frame) -> Result<Frame, KernelError> {
        Err(KernelError::Unsupported("no predictions".into()))
    }

    fn save_state() -> Result<Vec<u8>, KernelError> {
        Ok(Vec::new())
    }

    fn load_state(_state: Vec<u8>) -> Result<(), KernelError> {
        Ok(())
    }

    fn explain() -> Result<Explanation, KernelError> {
        Err(KernelError::Unsupported("nothing to explain".into()))
    }
}

kernel_sdk::__plain_kernel_ref!(Probe);
#[cfg(target_arch = "wasm32")]
kernel_sdk::__bindings::__export_ml_kernel!(Probe);

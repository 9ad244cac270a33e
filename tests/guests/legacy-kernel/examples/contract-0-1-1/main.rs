//! A kernel built against contract `kernel-host:kernel@0.1.1` (a frozen
//! copy of that WIT sits beside this file): the host, now at a later 0.1.x
//! (frames by reference, host matrices), must keep loading and running it,
//! host tensors (new in 0.1.1) included.
//!
//! It shifts every f64 column by the mean of all its values, computed by
//! the host's tensor API.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "examples/contract-0-1-1", world: "ml-kernel" });

    use exports::kernel_host::kernel::kernel::Guest;
    use kernel_host::kernel::tensor::{ReduceOp, Tensor};
    use kernel_host::kernel::types::*;
    use std::cell::Cell;

    thread_local! {
        static SHIFT: Cell<f64> = const { Cell::new(0.0) };
    }

    struct Contract011;

    fn unsupported(what: &str) -> KernelError {
        KernelError::Unsupported(what.into())
    }

    impl Guest for Contract011 {
        fn describe() -> KernelInfo {
            KernelInfo {
                name: "contract-0-1-1".into(),
                version: "0.1.1".into(),
                kind: KernelKind::Transformer,
                description: "built against kernel-host:kernel@0.1.1".into(),
                params: Vec::new(),
                capabilities: Capabilities::empty(),
            }
        }
        fn configure(_params: Vec<Param>) -> Result<(), KernelError> {
            Ok(())
        }
        fn fit(x: Frame, _y: Option<Column>) -> Result<(), KernelError> {
            let values: Vec<f64> = x
                .columns
                .iter()
                .flat_map(|c| match &c.values {
                    ColumnValues::F64(v) => v.clone(),
                    _ => Vec::new(),
                })
                .collect();
            let failed = |e| KernelError::Failed(format!("tensor: {e:?}"));
            let n = values.len().max(1) as u32;
            let t = Tensor::from_f64(&[1, n], &values).map_err(failed)?;
            let mean = t
                .reduce(ReduceOp::Mean, 1)
                .map_err(failed)?
                .to_list()
                .map_err(failed)?;
            SHIFT.set(f64::from(mean.first().copied().unwrap_or(0.0)));
            Ok(())
        }
        fn partial_fit(x: Frame, y: Option<Column>) -> Result<(), KernelError> {
            Self::fit(x, y)
        }
        fn transform(x: Frame) -> Result<Frame, KernelError> {
            let shift = SHIFT.get();
            let columns = x
                .columns
                .into_iter()
                .map(|c| match c.values {
                    ColumnValues::F64(v) => Column {
                        name: c.name,
                        values: ColumnValues::F64(v.into_iter().map(|x| x - shift).collect()),
                        nulls: c.nulls,
                    },
                    _ => c,
                })
                .collect();
            Ok(Frame {
                rows: x.rows,
                columns,
            })
        }
        fn predict(_x: Frame) -> Result<Column, KernelError> {
            Err(unsupported("a transformer"))
        }
        fn predict_proba(_x: Frame) -> Result<Frame, KernelError> {
            Err(unsupported("a transformer"))
        }
        fn save_state() -> Result<Vec<u8>, KernelError> {
            Ok(SHIFT.get().to_le_bytes().to_vec())
        }
        fn load_state(state: Vec<u8>) -> Result<(), KernelError> {
            let bytes: [u8; 8] = state
                .try_into()
                .map_err(|_| KernelError::InvalidState("expected 8 bytes".into()))?;
            SHIFT.set(f64::from_le_bytes(bytes));
            Ok(())
        }
        fn explain() -> Result<Explanation, KernelError> {
            Err(unsupported("nothing to explain"))
        }
    }

    export!(Contract011);
}

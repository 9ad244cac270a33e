//! A kernel built against the previous contract, `kernel-host:kernel@0.1.0`
//! (its WIT is a frozen copy in `wit/`): the host, now at 0.1.1 with the
//! tensor interface added, must keep loading and running it.
//!
//! It shifts every f64 column by the mean it learned, and logs through the
//! 0.1.0 `log` import.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "wit", world: "ml-kernel" });

    use exports::kernel_host::kernel::kernel::Guest;
    use kernel_host::kernel::log;
    use kernel_host::kernel::types::*;
    use std::cell::Cell;

    thread_local! {
        static SHIFT: Cell<f64> = const { Cell::new(0.0) };
    }

    struct Legacy;

    fn numbers(x: &Frame) -> Vec<f64> {
        x.columns
            .iter()
            .flat_map(|c| match &c.values {
                ColumnValues::F64(v) => v.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    impl Guest for Legacy {
        fn describe() -> KernelInfo {
            KernelInfo {
                name: "legacy".into(),
                version: "0.1.0".into(),
                kind: KernelKind::Transformer,
                description: "built against kernel-host:kernel@0.1.0".into(),
                params: Vec::new(),
                capabilities: Capabilities::empty(),
            }
        }
        fn configure(_params: Vec<Param>) -> Result<(), KernelError> {
            Ok(())
        }
        fn fit(x: Frame, _y: Option<Column>) -> Result<(), KernelError> {
            let v = numbers(&x);
            let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
            SHIFT.set(mean);
            log::log(log::Level::Info, &format!("legacy kernel learned {mean}"));
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
            Err(KernelError::Unsupported("a transformer".into()))
        }
        fn predict_proba(_x: Frame) -> Result<Frame, KernelError> {
            Err(KernelError::Unsupported("a transformer".into()))
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
            Err(KernelError::Unsupported("nothing to explain".into()))
        }
    }

    export!(Legacy);
}

//! A kernel built against contract `kernel-host:kernel@0.1.2` (a frozen
//! copy of that WIT sits beside this file) that takes frames by reference:
//! the host, now at 0.1.3 with text and host matrices added, must keep
//! loading it and calling its `kernel-ref` export.
//!
//! It shifts every f64 column by that column's mean: `fit` by reference
//! asks the host for each column's moments, `transform` by reference hands
//! each column back through the host's `affine`; the plain functions do the
//! same in the guest.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "examples/contract-0-1-2", world: "ml-kernel-ref" });

    use exports::kernel_host::kernel::kernel::Guest;
    use exports::kernel_host::kernel::kernel_ref::Guest as GuestRef;
    use kernel_host::kernel::columns::{ColumnType, HostColumn};
    use kernel_host::kernel::types::*;
    use std::cell::RefCell;

    thread_local! {
        static MEANS: RefCell<Vec<(String, f64)>> = const { RefCell::new(Vec::new()) };
    }

    struct Contract012;

    fn unsupported(what: &str) -> KernelError {
        KernelError::Unsupported(what.into())
    }

    fn mean_of(name: &str) -> Option<f64> {
        MEANS.with(|m| m.borrow().iter().find(|(n, _)| n == name).map(|(_, v)| *v))
    }

    impl GuestRef for Contract012 {
        fn by_reference() -> Vec<String> {
            vec!["fit".into(), "transform".into()]
        }
        fn fit_ref(
            x: Vec<HostColumn>,
            _rows: u32,
            _y: Option<HostColumn>,
        ) -> Result<(), KernelError> {
            let mut means = Vec::new();
            for c in &x {
                if c.kind() == ColumnType::F64 {
                    let m = c
                        .moments()
                        .map_err(|e| KernelError::Failed(format!("moments: {e:?}")))?;
                    means.push((c.name(), m.mean));
                }
            }
            MEANS.with(|m| *m.borrow_mut() = means);
            Ok(())
        }
        fn partial_fit_ref(
            x: Vec<HostColumn>,
            rows: u32,
            y: Option<HostColumn>,
        ) -> Result<(), KernelError> {
            Self::fit_ref(x, rows, y)
        }
        fn transform_ref(x: Vec<HostColumn>, _rows: u32) -> Result<Vec<HostColumn>, KernelError> {
            x.into_iter()
                .map(|c| match mean_of(&c.name()) {
                    Some(mean) => c
                        .affine(mean, 1.0)
                        .map_err(|e| KernelError::Failed(format!("affine: {e:?}"))),
                    None => Ok(c),
                })
                .collect()
        }
    }

    impl Guest for Contract012 {
        fn describe() -> KernelInfo {
            KernelInfo {
                name: "contract-0-1-2".into(),
                version: "0.1.2".into(),
                kind: KernelKind::Transformer,
                description: "built against kernel-host:kernel@0.1.2, by reference".into(),
                params: Vec::new(),
                capabilities: Capabilities::empty(),
            }
        }
        fn configure(_params: Vec<Param>) -> Result<(), KernelError> {
            Ok(())
        }
        fn fit(x: Frame, _y: Option<Column>) -> Result<(), KernelError> {
            let means = x
                .columns
                .iter()
                .filter_map(|c| match &c.values {
                    ColumnValues::F64(v) => {
                        let sum: f64 = v.iter().sum();
                        Some((c.name.clone(), sum / v.len().max(1) as f64))
                    }
                    _ => None,
                })
                .collect();
            MEANS.with(|m| *m.borrow_mut() = means);
            Ok(())
        }
        fn partial_fit(x: Frame, y: Option<Column>) -> Result<(), KernelError> {
            Self::fit(x, y)
        }
        fn transform(x: Frame) -> Result<Frame, KernelError> {
            let columns = x
                .columns
                .into_iter()
                .map(|c| match (c.values, mean_of(&c.name)) {
                    (ColumnValues::F64(v), Some(mean)) => Column {
                        values: ColumnValues::F64(v.into_iter().map(|x| x - mean).collect()),
                        name: c.name,
                        nulls: c.nulls,
                    },
                    (values, _) => Column { values, ..c },
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
            Ok(MEANS.with(|m| {
                m.borrow()
                    .iter()
                    .flat_map(|(n, v)| format!("{n}={v}\n").into_bytes())
                    .collect()
            }))
        }
        fn load_state(state: Vec<u8>) -> Result<(), KernelError> {
            let text = String::from_utf8(state)
                .map_err(|_| KernelError::InvalidState("not UTF-8".into()))?;
            let means = text
                .lines()
                .map(|l| {
                    let (n, v) = l
                        .rsplit_once('=')
                        .ok_or_else(|| KernelError::InvalidState(format!("bad line {l}")))?;
                    let v = v
                        .parse()
                        .map_err(|_| KernelError::InvalidState(format!("bad mean {v}")))?;
                    Ok((n.to_string(), v))
                })
                .collect::<Result<Vec<_>, KernelError>>()?;
            MEANS.with(|m| *m.borrow_mut() = means);
            Ok(())
        }
        fn explain() -> Result<Explanation, KernelError> {
            Err(unsupported("nothing to explain"))
        }
    }

    export!(Contract012);
}

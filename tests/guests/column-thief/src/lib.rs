//! A hostile kernel for frames by reference. It takes `fit` and `transform`
//! by reference and, depending on `attack`:
//!
//! - `none`: returns its input columns unchanged (shared, no copy);
//! - `forge`: uses a column handle it was never given (a made-up handle
//!   number: what another kernel's handle is here);
//! - `keep`: keeps a column lent to one `transform` and reads it in the
//!   next, after the loan ended;
//! - `hoard`: copies its first column into new host columns, without
//!   dropping them, until the host refuses (its host-memory cap);
//! - `short`: returns a column with fewer rows than the frame;
//! - `bloat-fill`: fills its first column's nulls with a 1 MiB string;
//! - `bloat-one-hot`: one-hot encodes its first column into 100 000
//!   categories.
//!
//! The last two ask the host for far more than the kernel's host-memory
//! cap in one call: the host must refuse before building it.

use kernel_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

kernel_sdk::params! {
    /// Parameters of [`Thief`].
    pub struct ThiefParams {
        /// What to try.
        attack: String = "none", one_of["none", "forge", "keep", "hoard", "short", "bloat-fill", "bloat-one-hot"];
    }
}

thread_local! {
    static KEPT: RefCell<Vec<HostColumn>> = const { RefCell::new(Vec::new()) };
}

#[derive(Serialize, Deserialize)]
pub struct Thief {
    params: ThiefParams,
}

impl Kernel for Thief {
    type Params = ThiefParams;

    fn meta() -> Meta {
        Meta::new("column-thief", "0.1.0", KernelKind::Transformer)
            .description("abuses column handles")
            .by_reference(&["fit", "transform"])
    }

    fn new(params: ThiefParams) -> Self {
        Thief { params }
    }

    fn fit(&mut self, _x: &Frame, _y: Option<&Column>) -> Result<(), KernelError> {
        Ok(())
    }

    fn transform(&self, x: Frame) -> Result<Frame, KernelError> {
        Ok(x)
    }

    fn fit_ref(&mut self, _x: FrameRef, _y: Option<&HostColumn>) -> Result<(), KernelError> {
        Ok(())
    }

    fn transform_ref(&self, x: FrameRef) -> Result<FrameRef, KernelError> {
        match self.params.attack.as_str() {
            "forge" => forge(),
            "keep" => {
                let mut x = x;
                let read = KEPT.with_borrow(|k| k.first().map(HostColumn::read));
                match read {
                    // The second call: read the handle kept from the first.
                    Some(column) => Ok(FrameRef {
                        rows: x.rows,
                        columns: vec![HostColumn::from_column(column?)?],
                    }),
                    // The first: keep the lent handle itself.
                    None if !x.columns.is_empty() => {
                        let kept = x.columns.remove(0);
                        KEPT.with_borrow_mut(|k| k.push(kept));
                        Ok(x)
                    }
                    None => Err(KernelError::invalid_input("no column to keep")),
                }
            }
            "hoard" => {
                let first = x
                    .columns
                    .first()
                    .ok_or_else(|| KernelError::invalid_input("no column"))?;
                let column = first.read()?;
                let mut hoard = Vec::new();
                loop {
                    hoard.push(HostColumn::from_column(column.clone())?);
                }
            }
            "short" => {
                let first = x
                    .columns
                    .first()
                    .ok_or_else(|| KernelError::invalid_input("no column"))?;
                let short = first.read_rows(0, first.len().saturating_sub(1))?;
                Ok(FrameRef {
                    rows: x.rows,
                    columns: vec![HostColumn::from_column(short)?],
                })
            }
            "bloat-fill" => {
                let first = x
                    .columns
                    .first()
                    .ok_or_else(|| KernelError::invalid_input("no column"))?;
                let filled = first.fill_nulls_text(&"x".repeat(1 << 20))?;
                Ok(FrameRef {
                    rows: x.rows,
                    columns: vec![filled],
                })
            }
            "bloat-one-hot" => {
                let first = x
                    .columns
                    .first()
                    .ok_or_else(|| KernelError::invalid_input("no column"))?;
                let categories: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
                let (columns, _) = first.one_hot(&categories)?;
                Ok(FrameRef {
                    rows: x.rows,
                    columns,
                })
            }
            _ => Ok(x),
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn forge() -> Result<FrameRef, KernelError> {
    use kernel_sdk::__bindings::kernel_host::kernel::columns::HostColumn as Raw;
    // SAFETY: deliberately wrong: a handle number this instance was never
    // given. The component runtime must refuse it (a trap), not resolve it.
    let forged = unsafe { Raw::from_handle(4242) };
    let len = forged.len();
    Err(KernelError::failed(format!(
        "a forged handle answered: {len} rows"
    )))
}

#[cfg(not(target_arch = "wasm32"))]
fn forge() -> Result<FrameRef, KernelError> {
    Err(KernelError::failed("no host to forge handles for"))
}

kernel_sdk::export_kernel!(Thief);

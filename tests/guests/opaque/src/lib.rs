//! A stateful kernel that cannot export its state, for the snapshot tests.
//!
//! It stands for a kernel written without the SDK (or in another language):
//! `save-state` and `load-state` are unsupported, so only the host's
//! linear-memory snapshots can roll it back. Its state is
//!
//! - `offsets`: one per column; every `fit` *adds* the column means, so a
//!   fit that was half applied, or applied twice, shows in the output;
//! - `ballast`: `state-mib` MiB of bytes rewritten by every `fit` from the
//!   data (the size of the state, for the snapshot benchmark); with
//!   `dirty-pages` set, only that many 4 KiB pages at places drawn from the
//!   data hold bytes, the rest is zero (sparse state, for the sparse
//!   snapshot tests);
//! - `fits`: how many fits succeeded.
//!
//! `transform` returns `x + offsets` plus a column `ballast<n>` holding a
//! checksum of the ballast and the fit count. With `fail` set, `fit` first
//! corrupts all of that, then fails: `trap` panics, `loop` spins until the
//! fuel or the wall clock runs out, `refuse` returns an error, `grow`
//! allocates until the memory limit stops it. `fail-from` makes only the
//! fits from that count on fail (so a pipeline can fit once, then fail).

#![allow(clippy::panic)]
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use kernel_sdk::__bindings::exports::kernel_host::kernel::kernel::Guest;
use kernel_sdk::{
    Capabilities, Column, ColumnValues, Explanation, Frame, KernelError, KernelInfo, KernelKind,
    Param, ParamSpec, ParamType, ParamValue,
};
use std::cell::RefCell;
use std::hint::black_box;

#[derive(Default)]
struct State {
    fail: String,
    fail_from: u64,
    state_mib: usize,
    dirty_pages: usize,
    offsets: Vec<f64>,
    ballast: Vec<u8>,
    fits: u64,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn param(params: &[Param], name: &str) -> Option<ParamValue> {
    params
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.value.clone())
}

fn values(column: &Column) -> Result<Vec<f64>, KernelError> {
    match &column.values {
        ColumnValues::F64(v) => Ok(v.clone()),
        _ => Err(KernelError::InvalidInput(format!(
            "column `{}` is not f64",
            column.name
        ))),
    }
}

fn checksum(bytes: &[u8]) -> f64 {
    let mut sum: u64 = 0;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        sum = sum.wrapping_mul(31).wrapping_add(u64::from_le_bytes(word));
    }
    (sum % (1 << 40)) as f64
}

struct Opaque;

impl Guest for Opaque {
    fn describe() -> KernelInfo {
        KernelInfo {
            name: "opaque".into(),
            version: "0.1.0".into(),
            kind: KernelKind::Transformer,
            description: "keeps state it cannot export, for snapshot tests".into(),
            params: vec![
                ParamSpec {
                    name: "fail".into(),
                    description: "how fit fails after corrupting the state".into(),
                    kind: ParamType::Choice(
                        ["none", "trap", "loop", "refuse", "grow"]
                            .map(String::from)
                            .to_vec(),
                    ),
                    default: ParamValue::String("none".into()),
                },
                ParamSpec {
                    name: "fail-from".into(),
                    description: "the first fit (counting from 1) that fails".into(),
                    kind: ParamType::S64((Some(1), None)),
                    default: ParamValue::S64(1),
                },
                ParamSpec {
                    name: "dirty-pages".into(),
                    description: "pages of the ballast each fit writes (0: all of it)".into(),
                    kind: ParamType::S64((Some(0), None)),
                    default: ParamValue::S64(0),
                },
                ParamSpec {
                    name: "state-mib".into(),
                    description: "MiB of ballast state".into(),
                    kind: ParamType::S64((Some(0), Some(1024))),
                    default: ParamValue::S64(0),
                },
            ],
            capabilities: Capabilities::empty(),
        }
    }

    fn configure(params: Vec<Param>) -> Result<(), KernelError> {
        STATE.with_borrow_mut(|s| {
            if let Some(ParamValue::String(f)) = param(&params, "fail") {
                s.fail = f;
            }
            if let Some(ParamValue::S64(n)) = param(&params, "fail-from") {
                s.fail_from = n.max(1) as u64;
            }
            if let Some(ParamValue::S64(n)) = param(&params, "state-mib") {
                s.state_mib = n.max(0) as usize;
            }
            if let Some(ParamValue::S64(n)) = param(&params, "dirty-pages") {
                s.dirty_pages = n.max(0) as usize;
            }
        });
        Ok(())
    }

    fn fit(x: Frame, _y: Option<Column>) -> Result<(), KernelError> {
        let means = x
            .columns
            .iter()
            .map(|c| {
                let v = values(c)?;
                Ok(v.iter().sum::<f64>() / v.len().max(1) as f64)
            })
            .collect::<Result<Vec<f64>, KernelError>>()?;
        STATE.with_borrow_mut(|s| {
            s.offsets.resize(means.len(), 0.0);
            for (o, m) in s.offsets.iter_mut().zip(&means) {
                *o += m;
            }
            let seed = means.iter().fold(s.fits + 1, |a, m| a ^ m.to_bits());
            s.ballast.resize(s.state_mib << 20, 0);
            let mut x = seed;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let pages = s.ballast.len() / 4096;
            if s.dirty_pages == 0 || pages == 0 {
                for b in s.ballast.iter_mut() {
                    *b = next() as u8;
                }
            } else {
                s.ballast.fill(0);
                for _ in 0..s.dirty_pages {
                    let page = (next() % pages as u64) as usize;
                    for b in &mut s.ballast[page * 4096..(page + 1) * 4096] {
                        *b = next() as u8;
                    }
                }
            }
            s.fits += 1;
            if s.fits < s.fail_from {
                return Ok(());
            }
            match s.fail.as_str() {
                "trap" => panic!("fit failed after changing its state"),
                "loop" => loop {
                    x = black_box(x.wrapping_mul(31).wrapping_add(1));
                    s.offsets[0] = x as f64;
                },
                "refuse" => Err(KernelError::Failed(
                    "fit failed after changing its state".into(),
                )),
                "grow" => {
                    let mut hoard = Vec::new();
                    loop {
                        hoard.push(vec![1u8; 1 << 20]);
                        black_box(&hoard);
                    }
                }
                _ => Ok(()),
            }
        })
    }

    fn partial_fit(x: Frame, y: Option<Column>) -> Result<(), KernelError> {
        Self::fit(x, y)
    }

    fn transform(x: Frame) -> Result<Frame, KernelError> {
        STATE.with_borrow(|s| {
            let mut columns = Vec::new();
            for (i, c) in x.columns.iter().enumerate() {
                let offset = s.offsets.get(i).copied().unwrap_or(0.0);
                let v = values(c)?.into_iter().map(|v| v + offset).collect();
                columns.push(Column::f64(&c.name, v));
            }
            let tag = checksum(&s.ballast) + s.fits as f64 * (1u64 << 41) as f64;
            // Named after the input width, so chained copies do not clash.
            let name = format!("ballast{}", x.columns.len());
            columns.push(Column::f64(name, vec![tag; x.rows as usize]));
            Ok(Frame {
                rows: x.rows,
                columns,
            })
        })
    }

    fn predict(_x: Frame) -> Result<Column, KernelError> {
        Err(KernelError::Unsupported("no predictions".into()))
    }

    fn predict_proba(_x: Frame) -> Result<Frame, KernelError> {
        Err(KernelError::Unsupported("no predictions".into()))
    }

    fn save_state() -> Result<Vec<u8>, KernelError> {
        Err(KernelError::Unsupported(
            "this kernel cannot export its state".into(),
        ))
    }

    fn load_state(_state: Vec<u8>) -> Result<(), KernelError> {
        Err(KernelError::Unsupported(
            "this kernel cannot import state".into(),
        ))
    }

    fn explain() -> Result<Explanation, KernelError> {
        Err(KernelError::Unsupported("nothing to explain".into()))
    }
}

kernel_sdk::__plain_kernel_ref!(Opaque);
#[cfg(target_arch = "wasm32")]
kernel_sdk::__bindings::__export_ml_kernel!(Opaque);

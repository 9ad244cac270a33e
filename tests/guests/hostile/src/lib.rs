//! A deliberately hostile kernel for the sandbox tests.
//!
//! It implements the raw generated bindings rather than the SDK's `Kernel`
//! trait, so that it can break the rules the SDK would enforce (wrong row
//! counts, for one) and the tests exercise the host's own checks.
//!
//! `configure` takes `behaviour` (what to do in `fit` and `transform`) and
//! optionally `target` (a path or address). Each escape attempt either
//! succeeds, in which case the loot is returned as output so the test sees
//! the breach, or fails, in which case the kernel panics with the error, as
//! careless code would.

#![allow(clippy::panic)]
// Only exported on wasm32; natively the crate is just type-checked.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use kernel_sdk::__bindings::exports::kernel_host::kernel::kernel::Guest;
use kernel_sdk::{
    Capabilities, Column, Explanation, Frame, KernelError, KernelInfo, KernelKind, Param,
    ParamSpec, ParamType, ParamValue,
};
use std::cell::RefCell;
use std::hint::black_box;

thread_local! {
    static BEHAVIOUR: RefCell<(String, String)> = RefCell::new(("none".into(), String::new()));
}

const BEHAVIOURS: &[&str] = &[
    "none",
    "loop",
    "memory-bomb",
    "recursion",
    "panic",
    "read-file",
    "write-file",
    "socket",
    "env",
    "clock",
    "wrong-rows",
    "bad-column",
    "refuse",
    "burn",
    "configure-loop",
    "wide",
    "explain-lie",
    "drift",
    "escape",
    "random",
    "save-state-loop",
    "empty",
];

thread_local! {
    static CALLS: RefCell<u32> = const { RefCell::new(0) };
}

/// What std's hash maps draw from `wasi:random` for their keys, as a number.
fn random_draw() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(42);
    (hasher.finish() >> 11) as f64
}

/// Never returns: the point is to exhaust the stack.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    black_box(recurse(black_box(depth + 1))) + 1
}

/// Performs the configured behaviour; `Some(text)` is loot to hand back.
/// A behaviour written `transform-<b>` is done only in `transform`.
fn act(in_transform: bool) -> Result<Option<String>, KernelError> {
    let (behaviour, target) = BEHAVIOUR.with_borrow(|b| b.clone());
    let behaviour = match behaviour.strip_prefix("transform-") {
        Some(b) if in_transform => b.to_string(),
        Some(_) => return Ok(None),
        None => behaviour,
    };
    Ok(match behaviour.as_str() {
        "loop" => {
            let mut i: u64 = 0;
            loop {
                i = black_box(i.wrapping_add(1));
            }
        }
        "memory-bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                black_box(&hoard);
            }
        }
        "recursion" => Some(recurse(0).to_string()),
        "panic" => panic!("hostile kernel panicked on purpose"),
        "read-file" => match std::fs::read_to_string(&target) {
            Ok(content) => Some(content),
            Err(e) => panic!("could not read {target}: {e}"),
        },
        "write-file" => match std::fs::write(&target, b"pwned") {
            Ok(()) => Some(format!("wrote {target}")),
            Err(e) => panic!("could not write {target}: {e}"),
        },
        "socket" => match std::net::TcpStream::connect(&target) {
            Ok(_) => Some(format!("connected to {target}")),
            Err(e) => panic!("could not connect to {target}: {e}"),
        },
        "env" => {
            let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
            if vars.is_empty() {
                panic!("no environment variables are visible");
            }
            Some(vars.join("\n"))
        }
        "clock" => {
            let since_epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            Some(since_epoch.to_string())
        }
        "refuse" => return Err(KernelError::InvalidInput("refused on purpose".into())),
        // Terminal escape sequences and a forged line in a refusal.
        "escape" => {
            return Err(KernelError::InvalidInput(
                "\x1b[2J\x1b[Hall clear\nerror: forged line".into(),
            ));
        }
        // A known amount of work (`target` iterations), then normal output.
        "burn" => {
            let n: u64 = target.parse().unwrap_or(0);
            let mut x: u64 = 0;
            for i in 0..n {
                x = black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            black_box(x);
            None
        }
        _ => None,
    })
}

struct Hostile;

impl Guest for Hostile {
    fn describe() -> KernelInfo {
        KernelInfo {
            name: "hostile".into(),
            version: "0.1.0".into(),
            kind: KernelKind::Transformer,
            // An escape sequence that would clear a terminal, a bell, and a
            // bidirectional override: the host must print them escaped.
            description: "misbehaves on request, for sandbox tests\x1b[2J\x07\u{202e}".into(),
            params: vec![ParamSpec {
                name: "behaviour".into(),
                description: "what to do in fit and transform".into(),
                kind: ParamType::Choice(BEHAVIOURS.iter().map(|b| b.to_string()).collect()),
                default: ParamValue::String("none".into()),
            }],
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
        };
        let behaviour = text("behaviour").unwrap_or_else(|| "none".into());
        if behaviour == "configure-loop" {
            let mut i: u64 = 0;
            loop {
                i = black_box(i.wrapping_add(1));
            }
        }
        if !BEHAVIOURS.contains(&behaviour.trim_start_matches("transform-")) {
            return Err(KernelError::InvalidParams(format!(
                "unknown behaviour `{behaviour}`"
            )));
        }
        BEHAVIOUR.with_borrow_mut(|b| *b = (behaviour, text("target").unwrap_or_default()));
        Ok(())
    }

    fn fit(_x: Frame, _y: Option<Column>) -> Result<(), KernelError> {
        act(false).map(|_| ())
    }

    fn partial_fit(x: Frame, y: Option<Column>) -> Result<(), KernelError> {
        Self::fit(x, y)
    }

    fn transform(x: Frame) -> Result<Frame, KernelError> {
        let loot = act(true)?;
        let behaviour = BEHAVIOUR.with_borrow(|b| b.0.trim_start_matches("transform-").to_string());
        let rows = x.rows as usize;
        let calls = CALLS.with_borrow_mut(|c| {
            *c += 1;
            *c
        });
        Ok(match behaviour.as_str() {
            // 100 000 columns, the last named like the first.
            "wide" => Frame {
                rows: x.rows,
                columns: (0..100_000)
                    .map(|i| Column::f64(format!("c{}", i % 99_999), vec![0.0; rows]))
                    .collect(),
            },
            // The first output is numeric, every later one text.
            "drift" if calls == 1 => Frame {
                rows: x.rows,
                columns: vec![Column::f64("y", vec![1.0; rows])],
            },
            "drift" => Frame {
                rows: x.rows,
                columns: vec![Column::string("y", vec!["one".into(); rows])],
            },
            "random" => Frame {
                rows: x.rows,
                columns: vec![Column::f64("r", vec![random_draw(); rows])],
            },
            // Every row, no column.
            "empty" => Frame {
                rows: x.rows,
                columns: Vec::new(),
            },
            "wrong-rows" => Frame {
                rows: x.rows + 1,
                columns: vec![Column::f64("x", vec![0.0; rows + 1])],
            },
            "bad-column" => Frame {
                rows: x.rows,
                columns: vec![Column::f64("x", vec![0.0; rows + 3])],
            },
            _ => match loot {
                Some(text) => Frame {
                    rows: x.rows,
                    columns: vec![Column::string("loot", vec![text; rows])],
                },
                None => x,
            },
        })
    }

    fn predict(_x: Frame) -> Result<Column, KernelError> {
        Err(KernelError::Unsupported("no predictions".into()))
    }

    fn predict_proba(_x: Frame) -> Result<Frame, KernelError> {
        Err(KernelError::Unsupported("no predictions".into()))
    }

    fn save_state() -> Result<Vec<u8>, KernelError> {
        if BEHAVIOUR.with_borrow(|b| b.0 == "save-state-loop") {
            let mut i: u64 = 0;
            loop {
                i = black_box(i.wrapping_add(1));
            }
        }
        Ok(Vec::new())
    }

    fn load_state(_state: Vec<u8>) -> Result<(), KernelError> {
        Ok(())
    }

    fn explain() -> Result<Explanation, KernelError> {
        if BEHAVIOUR.with_borrow(|b| b.0 == "explain-lie") {
            // A table that claims 2^32 - 1 rows and holds none.
            return Ok(Explanation {
                summary: "lies about its table".into(),
                entries: vec![kernel_sdk::ExplainEntry {
                    name: "table".into(),
                    value: kernel_sdk::ExplainValue::Table(Frame {
                        rows: u32::MAX,
                        columns: vec![],
                    }),
                }],
            });
        }
        Err(KernelError::Unsupported("nothing to explain".into()))
    }
}

kernel_sdk::__plain_kernel_ref!(Hostile);
#[cfg(target_arch = "wasm32")]
kernel_sdk::__bindings::__export_ml_kernel!(Hostile);

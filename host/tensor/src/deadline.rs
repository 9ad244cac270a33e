//! The deadline of the kernel call a tensor operation runs for. The host
//! sets it before each operation ([`set`]); long CPU operations check it
//! between blocks of work ([`passed`]) and stop with an error, so a single
//! operation cannot run far past its call's time limit. Per thread: an
//! operation runs on the thread that set it.

use std::cell::Cell;
use std::time::Instant;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Sets the deadline for the operations this thread runs next (`None`:
/// none).
pub fn set(deadline: Option<Instant>) {
    DEADLINE.with(|d| d.set(deadline));
}

/// The time left before this thread's deadline (`None`: no deadline).
pub fn remaining() -> Option<std::time::Duration> {
    DEADLINE.with(|d| {
        d.get()
            .map(|at| at.saturating_duration_since(Instant::now()))
    })
}

/// Whether this thread's deadline has passed.
pub fn passed() -> bool {
    DEADLINE.with(|d| d.get().is_some_and(|at| Instant::now() >= at))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::{Backend, Cpu};

    #[test]
    fn a_large_product_stops_at_the_deadline() {
        // 2 * 4096^3 flops: at least four blocks of rows (matrixmultiply
        // runs at most 4 threads).
        let n = 4096;
        let cpu = Cpu;
        let a = cpu.fill(n, n, 1.0).unwrap();
        set(Some(Instant::now()));
        let Err(err) = cpu.matmul(&a, &a, false, false) else {
            panic!("a product past its deadline ran to the end");
        };
        assert!(err.to_string().contains("time limit"), "{err}");
        set(None);
        let small = cpu.fill(3, 5, 2.0).unwrap();
        let product = cpu.matmul(&small, &small, false, true).unwrap();
        assert_eq!((product.rows, product.cols), (3, 3));
    }
}

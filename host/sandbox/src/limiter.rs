//! The memory limiter of each kernel's store: linear memory, tables and
//! instance counts, with every refusal logged and recorded so a fault can be
//! classified as a memory limit rather than a plain trap.

use wasmtime::ResourceLimiter;

const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Caps a store's memories and tables, and remembers what it refused so a
/// failed call can be classified as a memory-limit fault rather than a
/// generic trap.
#[derive(Debug)]
pub struct MemoryLimiter {
    kernel: String,
    limit: usize,
    /// Bytes of linear memory across the store's memories.
    total: usize,
    peak: usize,
    /// The size asked for in the last refused growth, if any since the last
    /// [`MemoryLimiter::take_refusal`].
    refused: Option<usize>,
}

impl MemoryLimiter {
    pub fn new(kernel: &str, limit_bytes: u64) -> Self {
        MemoryLimiter {
            kernel: kernel.to_string(),
            limit: usize::try_from(limit_bytes).unwrap_or(usize::MAX),
            total: 0,
            peak: 0,
            refused: None,
        }
    }

    /// Largest total linear memory the store has had, bytes.
    pub fn peak(&self) -> u64 {
        self.peak as u64
    }

    /// Total linear memory the store has now, bytes.
    pub fn current(&self) -> u64 {
        self.total as u64
    }

    /// The refused size since the last call, clearing it.
    pub fn take_refusal(&mut self) -> Option<usize> {
        self.refused.take()
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total.saturating_sub(current).saturating_add(desired);
        if total > self.limit {
            tracing::warn!(
                kernel = %self.kernel,
                requested_mib = total >> 20,
                limit_mib = self.limit >> 20,
                "refused linear memory growth"
            );
            self.refused = Some(total);
            return Ok(false);
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            tracing::warn!(kernel = %self.kernel, desired, "refused table growth");
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_all_memories_and_remembers_refusals() {
        let mut l = MemoryLimiter::new("k", 10 << 20);
        assert!(l.memory_growing(0, 6 << 20, None).unwrap());
        assert!(!l.memory_growing(0, 6 << 20, None).unwrap());
        assert_eq!(l.take_refusal(), Some(12 << 20));
        assert_eq!(l.take_refusal(), None);
        assert!(l.memory_growing(6 << 20, 9 << 20, None).unwrap());
        assert_eq!(l.peak(), 9 << 20);
    }
}

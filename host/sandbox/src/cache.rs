//! A bounded, in-memory cache of `transform` / `predict` results.
//!
//! Results are keyed by what determines them: the component's sha256, the
//! sha256 of the kernel's saved state (`save-state`), the operation, and a
//! digest of the input frame. Any state change (configure, fit,
//! partial-fit, load-state, or a fault that replaced the instance) changes
//! the state hash, so stale results are never served. The cache trusts
//! `save-state` to capture everything that affects outputs, as the SDK's
//! automatic state does; do not enable it for a kernel with hidden state.
//!
//! Entries are evicted least recently used first when the total size of the
//! cached results would pass the byte budget.

use kernel_host_types::bindings::{Column, ColumnValues, Frame};
use lru::LruCache;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

pub type Key = [u8; 32];

/// A cached result.
#[derive(Clone, Debug, PartialEq)]
pub enum Cached {
    Frame(Frame),
    Column(Column),
}

/// A shared, byte-bounded LRU cache. Cheap to clone.
#[derive(Clone)]
pub struct ResultCache {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    entries: LruCache<Key, (Cached, usize)>,
    bytes: usize,
    max_bytes: usize,
}

impl ResultCache {
    pub fn new(max_bytes: usize) -> Self {
        ResultCache {
            inner: Arc::new(Mutex::new(Inner {
                entries: LruCache::unbounded(),
                bytes: 0,
                max_bytes,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &Key) -> Option<Cached> {
        self.lock().entries.get(key).map(|(value, _)| value.clone())
    }

    pub fn insert(&self, key: Key, value: Cached) {
        let size = match &value {
            Cached::Frame(f) => frame_bytes(f),
            Cached::Column(c) => kernel_host_types::frame::column_bytes(c),
        };
        let mut inner = self.lock();
        if size > inner.max_bytes {
            return;
        }
        if let Some((_, old)) = inner.entries.pop(&key) {
            inner.bytes -= old;
        }
        while inner.bytes + size > inner.max_bytes {
            match inner.entries.pop_lru() {
                Some((_, (_, evicted))) => inner.bytes -= evicted,
                None => break,
            }
        }
        inner.bytes += size;
        inner.entries.put(key, (value, size));
    }

    /// Bytes held by cached results.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Approximate bytes a frame holds.
pub fn frame_bytes(f: &Frame) -> usize {
    f.columns
        .iter()
        .map(kernel_host_types::frame::column_bytes)
        .sum()
}

/// A digest of a frame's names, types, values and nulls.
pub fn frame_digest(frame: &Frame) -> Key {
    let mut h = Sha256::new();
    h.update(frame.rows.to_le_bytes());
    for c in &frame.columns {
        h.update((c.name.len() as u64).to_le_bytes());
        h.update(c.name.as_bytes());
        match &c.values {
            ColumnValues::F64(v) => {
                h.update([0]);
                v.iter().for_each(|x| h.update(x.to_bits().to_le_bytes()));
            }
            ColumnValues::S64(v) => {
                h.update([1]);
                v.iter().for_each(|x| h.update(x.to_le_bytes()));
            }
            ColumnValues::Bool(v) => {
                h.update([2]);
                v.iter().for_each(|x| h.update([u8::from(*x)]));
            }
            ColumnValues::String(v) => {
                h.update([3]);
                for s in v {
                    h.update((s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
            }
        }
        match &c.nulls {
            Some(n) => {
                h.update([1]);
                h.update(n);
            }
            None => h.update([0]),
        }
    }
    h.finalize().into()
}

/// The key of one cacheable call.
pub fn key(component_sha256: &str, state: &Key, operation: &str, input: &Key) -> Key {
    let mut h = Sha256::new();
    for part in [
        component_sha256.as_bytes(),
        state,
        operation.as_bytes(),
        input,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(n: usize) -> Column {
        Column {
            name: "c".into(),
            values: ColumnValues::F64(vec![1.0; n]),
            nulls: None,
        }
    }

    #[test]
    fn evicts_least_recently_used_within_the_byte_budget() {
        let cache = ResultCache::new(250);
        cache.insert([1; 32], Cached::Column(column(10)));
        cache.insert([2; 32], Cached::Column(column(10)));
        cache.insert([3; 32], Cached::Column(column(10)));
        assert!(cache.get(&[1; 32]).is_some());
        cache.insert([4; 32], Cached::Column(column(10)));
        assert!(cache.get(&[2; 32]).is_none(), "2 was least recently used");
        assert!(cache.get(&[1; 32]).is_some());
        assert!(cache.bytes() <= 250);
        cache.insert([5; 32], Cached::Column(column(1000)));
        assert!(
            cache.get(&[5; 32]).is_none(),
            "larger than the whole budget"
        );
    }

    #[test]
    fn digests_tell_frames_apart() {
        let a = Frame {
            rows: 1,
            columns: vec![column(1)],
        };
        let mut b = a.clone();
        b.columns[0].nulls = Some(vec![1]);
        assert_ne!(frame_digest(&a), frame_digest(&b));
        assert_eq!(frame_digest(&a), frame_digest(&a.clone()));
    }
}

//! The bundle file format, without the engine: a fitted pipeline's plan,
//! its parts (kernel components, fitted states) and the hashes that bind
//! them. `kernel_host::bundle` loads what this module has verified.
//!
//! Layout: the magic `KHBUNDL1`, the index length (u64, little endian), the
//! index (JSON: plan, metadata, and for each part its name, offset, length
//! and sha256), the parts, then a trailer: the sha256 of everything before
//! it.
//!
//! A bundle is data that may come from anywhere, so [`decode`] checks
//! every number the file claims before using it: the index length against
//! the file's size, each part's range (with checked arithmetic) against the
//! parts, then each part's hash and the trailer over the whole file. It
//! never panics and never allocates more than the file it was given.

use crate::Plan;
use kernel_host_types::ColumnType;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"KHBUNDL1";
/// 2: the index is a serialized plan (format 1 listed steps field by field).
pub const FORMAT: u32 = 2;
/// The largest bundle read: components and fitted states of a pipeline
/// are megabytes; a file this size is not a bundle of ours.
pub const MAX_BUNDLE_BYTES: u64 = 4 << 30;

const TRAILER: usize = 32;

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a kernel-host bundle (wrong magic bytes)", path.display())]
    NotABundle { path: PathBuf },
    #[error("{}: truncated: {detail}", path.display())]
    Truncated { path: PathBuf, detail: String },
    #[error("{}: part `{part}` is corrupted (sha256 {actual}, expected {expected})", path.display())]
    CorruptPart {
        path: PathBuf,
        part: String,
        expected: String,
        actual: String,
    },
    #[error("{}: the index is corrupted or was modified: {detail}", path.display())]
    CorruptIndex { path: PathBuf, detail: String },
    #[error("{}: written by bundle format {found}; this kernel-host reads format {FORMAT}: fit the manifest again with this kernel-host (`kernel-host fit MANIFEST --save ...`)", path.display())]
    Format { path: PathBuf, found: u32 },
}

/// Where one part lies among the parts, and its hash.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PartRecord {
    pub name: String,
    pub offset: u64,
    pub len: u64,
    pub sha256: String,
}

/// The bundle's index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Index {
    pub format: u32,
    pub created: String,
    pub kernel_host: String,
    pub wit: String,
    /// The plan the pipeline was fitted from, as it ran (its `path` is the
    /// manifest; every step pinned to the sha256 of its component part).
    pub plan: Plan,
    /// `name@version` of each step's kernel, as it described itself.
    pub kernels: Vec<String>,
    /// Feature columns and types the pipeline was fitted on.
    pub schema: Vec<(String, ColumnType)>,
    pub train_rows: u64,
    pub parts: Vec<PartRecord>,
}

/// A bundle read and verified: its index and the bytes of its parts.
#[derive(Debug)]
pub struct Container {
    pub index: Index,
    bytes: Vec<u8>,
    /// Where the parts start in `bytes`.
    base: usize,
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether the file at `path` starts like a bundle.
pub fn is_bundle(path: &Path) -> bool {
    use std::io::Read as _;
    let mut magic = [0u8; 8];
    kernel_host_types::fsutil::open_input(path, false)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == MAGIC
}

/// Writes a bundle: `index` (its `parts` filled in here) and the parts.
pub fn encode(mut index: Index, parts: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    index.parts.clear();
    let mut offset = 0u64;
    for (name, bytes) in parts {
        index.parts.push(PartRecord {
            name: name.clone(),
            offset,
            len: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        });
        offset += bytes.len() as u64;
    }
    let index_json =
        serde_json::to_vec(&index).map_err(|e| format!("serializing the bundle index: {e}"))?;
    let mut out = Vec::with_capacity(index_json.len() + offset as usize + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(index_json.len() as u64).to_le_bytes());
    out.extend_from_slice(&index_json);
    for (_, bytes) in parts {
        out.extend_from_slice(bytes);
    }
    let trailer = sha2::Sha256::digest(&out);
    out.extend_from_slice(&trailer);
    Ok(out)
}

/// Reads the bundle at `path` (a regular file of at most
/// [`MAX_BUNDLE_BYTES`]) and verifies it with [`decode`].
pub fn read(path: &Path) -> Result<Container, BundleError> {
    let bytes =
        kernel_host_types::fsutil::read_limited(path, MAX_BUNDLE_BYTES).map_err(|source| {
            BundleError::Read {
                path: path.to_path_buf(),
                source,
            }
        })?;
    decode(path, bytes)
}

/// Verifies `bytes` as a bundle (`path` names it in errors): structure
/// first, then the trailer, the index and every part.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<Container, BundleError> {
    let p = || path.to_path_buf();
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(BundleError::NotABundle { path: p() });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[8..16]);
    let index_len = u64::from_le_bytes(len);
    // The index and the trailer must fit in the file before any slicing.
    let room = (bytes.len() - 16).saturating_sub(TRAILER) as u64;
    if bytes.len() < 16 + TRAILER || index_len > room {
        return Err(BundleError::Truncated {
            path: p(),
            detail: format!(
                "the index claims {index_len} bytes, the file has {} in all",
                bytes.len()
            ),
        });
    }
    let base = 16 + index_len as usize;
    let parts_end = bytes.len() - TRAILER;
    // The format first, so an older bundle is named as such rather than
    // reported as corrupted.
    #[derive(Deserialize)]
    struct Header {
        format: u32,
    }
    let unreadable = |e: serde_json::Error| BundleError::CorruptIndex {
        path: p(),
        detail: format!("unreadable ({e})"),
    };
    let header: Header = serde_json::from_slice(&bytes[16..base]).map_err(unreadable)?;
    if header.format != FORMAT {
        return Err(BundleError::Format {
            path: p(),
            found: header.format,
        });
    }
    let mut index: Index = serde_json::from_slice(&bytes[16..base]).map_err(unreadable)?;
    index.plan.path = p();
    let available = (parts_end - base) as u64;
    for part in &index.parts {
        let Some(end) = part
            .offset
            .checked_add(part.len)
            .filter(|&e| e <= available)
        else {
            return Err(BundleError::Truncated {
                path: p(),
                detail: format!(
                    "part `{}` claims {} bytes at offset {}; the file holds {available} bytes of parts",
                    part.name, part.len, part.offset
                ),
            });
        };
        let range = base + part.offset as usize..base + end as usize;
        let actual = sha256_hex(&bytes[range]);
        if actual != part.sha256 {
            return Err(BundleError::CorruptPart {
                path: p(),
                part: part.name.clone(),
                expected: part.sha256.clone(),
                actual,
            });
        }
    }
    // The trailer covers everything: a modified index (hashes recomputed
    // or not) is caught here.
    let trailer = sha2::Sha256::digest(&bytes[..parts_end]);
    if trailer.as_slice() != &bytes[parts_end..] {
        return Err(BundleError::CorruptIndex {
            path: p(),
            detail: "the trailer hash does not match: the file was truncated or modified".into(),
        });
    }
    Ok(Container { index, bytes, base })
}

impl Container {
    /// The bytes of the part called `name` (verified by [`decode`]).
    pub fn part(&self, name: &str) -> Option<&[u8]> {
        let part = self.index.parts.iter().find(|x| x.name == name)?;
        let start = self.base.checked_add(usize::try_from(part.offset).ok()?)?;
        let end = start.checked_add(usize::try_from(part.len).ok()?)?;
        self.bytes.get(start..end)
    }

    /// The size of the whole file.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        use crate::builder::{KernelDef, StepDef};
        let dir = std::env::temp_dir().join(format!("kh-bundle-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("k.wasm"), b"").unwrap();
        std::fs::write(dir.join("t.csv"), b"a\n1\n").unwrap();
        let plan = crate::Plan::builder(&dir)
            .name("p")
            .kernel("k", KernelDef::new("k.wasm"))
            .step(StepDef::new("k"))
            .train("t.csv")
            .build()
            .expect("a plan");
        let index = Index {
            format: FORMAT,
            created: "now".into(),
            kernel_host: "0".into(),
            wit: "0".into(),
            plan,
            kernels: vec![],
            schema: vec![],
            train_rows: 0,
            parts: vec![],
        };
        encode(index, &[("a".into(), b"hello".to_vec())]).unwrap()
    }

    /// Recomputes the trailer, as an attacker editing the file would.
    fn reseal(bytes: &mut Vec<u8>) {
        bytes.truncate(bytes.len() - TRAILER);
        let trailer = sha2::Sha256::digest(&bytes[..]);
        bytes.extend_from_slice(&trailer);
    }

    #[test]
    fn round_trip() {
        let c = decode(Path::new("b.khb"), sample()).unwrap();
        assert_eq!(c.part("a"), Some(&b"hello"[..]));
        assert_eq!(c.part("b"), None);
    }

    #[test]
    fn forged_lengths_are_refused_without_panicking() {
        // An index length near 2^64.
        let mut bytes = sample();
        bytes[8..16].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
        reseal(&mut bytes);
        assert!(matches!(
            decode(Path::new("b"), bytes),
            Err(BundleError::Truncated { .. })
        ));
        // A part offset near 2^64, the index rewritten and resealed.
        let bytes = sample();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let forged = text.replace("\"offset\":0", &format!("\"offset\":{}", u64::MAX - 2));
        let index_len = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        let extra = forged.len() - text.len();
        let mut bytes = forged.into_bytes();
        bytes[8..16].copy_from_slice(&(index_len + extra as u64).to_le_bytes());
        reseal(&mut bytes);
        let err = decode(Path::new("b"), bytes).unwrap_err();
        assert!(err.to_string().contains("claims"), "{err}");
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(
                decode(Path::new("b"), bytes[..len].to_vec()).is_err(),
                "{len}"
            );
        }
    }
}

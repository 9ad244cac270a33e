//! File reads that refuse special files and bound their size, and file
//! writes that never leave a half-written file behind, never replace a
//! device, and clean up what a killed writer left.

use anyhow::Context as _;
use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same directory,
/// fsynced and renamed into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes).map_err(Into::into))
}

/// Where to write `path`'s content before renaming it into place:
/// `.NAME.PID.N.SUFFIX` in the same directory (created if missing), unique
/// per process and call since tasks may write one path at once. Refuses a
/// `path` that names a device (see [`check_output`]) and removes what
/// killed writers left beside it.
pub fn temporary_beside(path: &Path, suffix: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    check_output(path, &[]).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    remove_stale_temporaries(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(dir.join(format!(".{name}.{}.{n}.{suffix}", std::process::id())))
}

/// Like [`write_atomic`], with the content produced by `fill`.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let tmp = temporary_beside(path, "tmp")?;
    let result = (|| {
        let mut file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        fill(&mut file)?;
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What a path names, in words, when it is not a regular file.
pub fn special_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt as _;
    let ty = meta.file_type();
    if ty.is_file() {
        None
    } else if ty.is_dir() {
        Some("a directory")
    } else if ty.is_char_device() {
        Some("a character device")
    } else if ty.is_block_device() {
        Some("a block device")
    } else if ty.is_socket() {
        Some("a socket")
    } else if ty.is_fifo() {
        Some("a pipe (FIFO)")
    } else {
        Some("not a regular file")
    }
}

/// Opens `path` for reading, refusing anything but a regular file (and,
/// with `allow_pipe`, a FIFO such as a shell's `<(...)`): a device such as
/// `/dev/zero` never ends and a directory has no bytes. The error says
/// what the path is.
pub fn open_input(path: &Path, allow_pipe: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::FileTypeExt as _;
    let refuse = |meta: &std::fs::Metadata| match special_kind(meta) {
        None => Ok(()),
        Some(_) if allow_pipe && meta.file_type().is_fifo() => Ok(()),
        Some(kind) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is {kind}, not a regular file", path.display()),
        )),
    };
    // Before opening (opening a pipe waits for its writer), and again on
    // what was opened (the path may have changed in between).
    refuse(&std::fs::metadata(path)?)?;
    let file = std::fs::File::open(path)?;
    refuse(&file.metadata()?)?;
    Ok(file)
}

/// Reads a whole regular file of at most `max` bytes. Larger files (or a
/// file that grows past `max` while read) are refused with the limit.
pub fn read_limited(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = open_input(path, false)?;
    let size = file.metadata()?.len();
    let too_big = |size: u64| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is {size} bytes, over the {max}-byte limit for this kind of file",
                path.display()
            ),
        )
    };
    if size > max {
        return Err(too_big(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Like [`read_limited`], as UTF-8 text.
pub fn read_limited_string(path: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_limited(path, max)?).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is not UTF-8 text (invalid byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Refuses an output path that would replace something other than a
/// regular file (`-o /dev/null` must not replace the system's device), or
/// that names the same file as one of `inputs` (writing predictions over
/// the training data).
pub fn check_output(path: &Path, inputs: &[&Path]) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if let Some(kind) = special_kind(&meta) {
        return Err(format!(
            "{} is {kind}; outputs are written as regular files (write to a file path, or use `kernel-host stream` to write to a pipe)",
            path.display()
        ));
    }
    for input in inputs {
        if let Ok(other) = std::fs::metadata(input)
            && other.dev() == meta.dev()
            && other.ino() == meta.ino()
        {
            return Err(format!(
                "{} is also an input of this job ({}); writing there would destroy it: choose another output path",
                path.display(),
                input.display()
            ));
        }
    }
    Ok(())
}

/// Removes temporary files (`.NAME.PID.*`) that a killed kernel-host left
/// beside `path`; a temporary file of a process still alive is kept.
pub fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        if !(rest.ends_with(".tmp") || rest.ends_with(".partial")) {
            continue;
        }
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A file's identity: its path and what any change to it changes (size,
/// modification and status-change times, inode). The change time cannot
/// be set back by a user, so a file rewritten with the same size and
/// modification time is still a new file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileKey {
    pub path: std::path::PathBuf,
    pub len: u64,
    pub modified: Option<std::time::SystemTime>,
    changed: (i64, i64),
    inode: (u64, u64),
}

impl FileKey {
    /// The file at `path` as it is now; `None` when it cannot be stat'ed
    /// or is not a regular file.
    pub fn of(path: &Path) -> Option<FileKey> {
        Self::of_metadata(path, &std::fs::metadata(path).ok()?)
    }

    /// The file at `path` as `meta` (its metadata, e.g. of the open file)
    /// describes it; `None` when it is not a regular file.
    pub fn of_metadata(path: &Path, meta: &std::fs::Metadata) -> Option<FileKey> {
        if !meta.is_file() {
            return None;
        }
        #[cfg(unix)]
        let (changed, inode) = {
            use std::os::unix::fs::MetadataExt;
            ((meta.ctime(), meta.ctime_nsec()), (meta.dev(), meta.ino()))
        };
        #[cfg(not(unix))]
        let (changed, inode) = ((0, 0), (0, 0));
        Some(FileKey {
            path: path.to_path_buf(),
            len: meta.len(),
            modified: meta.modified().ok(),
            changed,
            inode,
        })
    }
}

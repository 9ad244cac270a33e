//! Opening input data files: a regular file or a pipe, never a device or a
//! directory, with an error that says what the path is (only a missing file
//! is ever called "not found"); and [`RecordBound`], which stops a CSV
//! parser from growing one record without end. Nothing here parses data.

use kernel_host_types::DataError;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Opens the data file `path` for reading; `allow_pipe` admits a FIFO
/// (a shell's `<(...)`) for formats read front to back.
pub(crate) fn open(path: &Path, allow_pipe: bool) -> Result<std::fs::File, DataError> {
    kernel_host_types::fsutil::open_input(path, allow_pipe)
        .map_err(|e| DataError::new(path, format!("cannot open: {}", reason(path, &e))))
}

/// Why `e` happened to `path`, in words, without repeating the path that
/// the error's own location already names.
pub(crate) fn reason(path: &Path, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not found".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let message = e.to_string();
            let shown = path.display().to_string();
            match message.strip_prefix(&shown) {
                Some(rest) => rest.trim_start().to_string(),
                None => message,
            }
        }
    }
}

/// A reader that fails once the record being parsed has grown past a
/// bound. The CSV parser keeps a record growing until its line ends, and
/// across line ends inside a quote, so a file without newlines (`/dev/zero`
/// through a pipe) or with a quote left open would otherwise be held whole.
/// The parser reports where each record ends through [`RecordStart`]; every
/// byte handed out since then belongs to the record in progress or to the
/// parser's read-ahead, of at most `read_ahead` bytes.
pub(crate) struct RecordBound<R> {
    inner: R,
    delivered: u64,
    start: RecordStart,
    max: u64,
    read_ahead: u64,
}

/// Where the record in progress starts, as a byte offset of the input.
#[derive(Clone, Default)]
pub(crate) struct RecordStart(Arc<AtomicU64>);

impl RecordStart {
    /// The parser has consumed everything before `byte`: a record starts
    /// there.
    pub(crate) fn mark(&self, byte: u64) {
        self.0.store(byte, Ordering::Relaxed);
    }
}

impl<R: Read> RecordBound<R> {
    /// Bounds records of `inner` to `max` bytes, for a parser that reads
    /// ahead at most `read_ahead` bytes.
    pub(crate) fn new(inner: R, max: u64, read_ahead: u64) -> (Self, RecordStart) {
        let start = RecordStart::default();
        let bound = RecordBound {
            inner,
            delivered: 0,
            start: start.clone(),
            max,
            read_ahead,
        };
        (bound, start)
    }
}

impl<R: Read> Read for RecordBound<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let held = self
            .delivered
            .saturating_sub(self.start.0.load(Ordering::Relaxed));
        // Beyond the read-ahead, every byte handed out is in the record.
        if held > self.max.saturating_add(self.read_ahead) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "a record longer than {}: not a CSV file, or a quote left open",
                    bytes(self.max)
                ),
            ));
        }
        let n = self.inner.read(buf)?;
        self.delivered += n as u64;
        Ok(n)
    }
}

/// `n` bytes, in MiB when it is a whole number of them.
fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_refused_for_what_it_is_and_only_enoent_is_not_found() {
        let e = open(Path::new("/dev/zero"), true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: cannot open: is a character device, not a regular file"
        );
        let e = open(Path::new("/"), true).unwrap_err();
        assert!(
            e.message.ends_with("is a directory, not a regular file"),
            "{e}"
        );
        assert!(!e.message.contains("not found"), "{e}");
        let e = open(Path::new("/nonexistent/x.csv"), true).unwrap_err();
        assert_eq!(e.message, "cannot open: not found");
    }

    #[test]
    fn a_record_is_bounded_from_where_the_parser_marked_it() {
        let (mut bound, start) = RecordBound::new(std::io::repeat(b'x'), 100, 10);
        let mut buf = [0u8; 60];
        assert_eq!(bound.read(&mut buf).unwrap(), 60);
        assert_eq!(bound.read(&mut buf).unwrap(), 60);
        let e = bound.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(
            e.to_string().starts_with("a record longer than 100 bytes"),
            "{e}"
        );
        start.mark(100);
        assert_eq!(bound.read(&mut buf).unwrap(), 60);
        assert_eq!(bytes(64 << 20), "64 MiB");
    }
}

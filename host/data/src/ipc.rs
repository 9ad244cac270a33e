//! Arrow IPC input that trusts none of the lengths it reads. An IPC file
//! or stream says how long its footer, its messages, their bodies and the
//! buffers inside are; arrow-ipc allocates what a file's footer claims
//! before reading it and slices buffers where a message says they are
//! (panicking when that is past the body). So every message is framed and
//! checked here first, against the bytes there are (the file's size) or
//! could be (a pipe's bodies grow only as their bytes arrive), and
//! arrow-ipc's stream reader decodes a stream made only of checked
//! messages: a file format's blocks are served to it in footer order. This
//! module decodes no data itself and knows nothing of frames.

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::{Block, MessageHeader};
use arrow_schema::{ArrowError, SchemaRef};
use std::collections::VecDeque;
use std::io::{BufReader, Chain, Cursor, Read, Seek, SeekFrom};

/// The longest message header (flatbuffer metadata) or file footer read.
/// A schema takes about 100 bytes a column and a batch's header 32 bytes a
/// column, a footer 24 bytes a batch: 64 MiB is hundreds of thousands of
/// columns or millions of batches, and bounds what a pipe can make us hold
/// before a header is even parsed.
pub const MAX_METADATA_BYTES: u64 = 64 << 20;

const CONTINUATION: [u8; 4] = [0xff; 4];
const MAGIC: &[u8; 6] = b"ARROW1";
/// The end-of-stream marker: a continuation and a zero length.
const EOS: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];

fn invalid(message: String) -> ArrowError {
    ArrowError::IpcError(message)
}

/// Record batches of an Arrow IPC file (its blocks located by its footer)
/// or stream (read front to back: a pipe, or a regular file without the
/// file format's `ARROW1` magic).
pub struct BatchReader<R: Read = std::fs::File> {
    reader: StreamReader<Checked<R>>,
    /// arrow panicked on a malformed message: nothing more is read.
    broken: bool,
}

thread_local! {
    /// Set while arrow decodes a message: a panic then is the file's fault
    /// and becomes an error, so the panic hook stays quiet about it.
    static DECODING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs arrow's decoding in `f`, turning a panic (arrow-rs asserts on some
/// malformed buffers, e.g. a misaligned offsets buffer) into an error.
pub(crate) fn contained<T>(f: impl FnOnce() -> T) -> Result<T, ArrowError> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !DECODING.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    DECODING.with(|d| d.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    DECODING.with(|d| d.set(false));
    result.map_err(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        invalid(format!("a malformed record batch ({why})"))
    })
}

impl BatchReader<std::fs::File> {
    /// Reads `file`: the file format when it starts with `ARROW1`, the
    /// stream format otherwise. A pipe can carry only the stream format.
    pub fn open(mut file: std::fs::File) -> Result<Self, ArrowError> {
        let meta = file.metadata()?;
        let mut magic = [0u8; 6];
        let n = read_full(&mut file, &mut magic)?;
        let starts_with_magic = n == magic.len() && &magic == MAGIC;
        let source = match (meta.is_file(), starts_with_magic) {
            (false, true) => {
                return Err(invalid(
                    "the Arrow IPC file format is read from its end, which a pipe does not have; \
                     send the stream format (`.arrows`) through a pipe"
                        .into(),
                ));
            }
            (true, true) => Source::file(file, meta.len())?,
            (is_file, false) => Source::Stream {
                input: Cursor::new(magic[..n].to_vec()).chain(BufReader::new(file)),
                remaining: is_file.then_some(meta.len()),
            },
        };
        Self::new(source)
    }
}

impl<R: Read> BatchReader<R> {
    /// Reads the stream format from `input` (a pipe, standard input), whose
    /// size is not known: a body grows only as its bytes arrive.
    pub fn stream(input: R) -> Result<Self, ArrowError> {
        Self::new(Source::Stream {
            input: Cursor::new(Vec::new()).chain(BufReader::new(input)),
            remaining: None,
        })
    }

    fn new(source: Source<R>) -> Result<Self, ArrowError> {
        let checked = Checked {
            source,
            header: Cursor::new(Vec::new()),
            body: 0,
            ended: false,
        };
        Ok(BatchReader {
            reader: contained(|| StreamReader::try_new(checked, None))??,
            broken: false,
        })
    }

    pub fn schema(&self) -> SchemaRef {
        self.reader.schema()
    }

    /// The next batch; `None` at the end.
    pub fn next_batch(&mut self) -> Option<Result<RecordBatch, ArrowError>> {
        if self.broken {
            return None;
        }
        match contained(|| self.reader.next()) {
            Ok(next) => next,
            Err(e) => {
                self.broken = true;
                Some(Err(e))
            }
        }
    }
}

/// Fills `buf` from `input` as far as it goes (fewer bytes only at the
/// end of the input); the bytes read.
pub fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn broken(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Where checked messages come from.
enum Source<R: Read> {
    /// Messages one after the other; `remaining` counts the bytes a regular
    /// file has left (`None` for a pipe).
    Stream {
        input: Chain<Cursor<Vec<u8>>, BufReader<R>>,
        remaining: Option<u64>,
    },
    /// The file format: the footer's schema, then the blocks the footer
    /// lists (dictionaries first), each within `data_end`.
    File {
        /// The schema message, until served.
        schema: Option<Vec<u8>>,
        input: BufReader<std::fs::File>,
        blocks: VecDeque<Block>,
        data_end: u64,
    },
}

impl<R: Read> Source<R> {
    /// Reads the trailer and footer of an IPC file of `size` bytes and
    /// checks that every block the footer lists lies within the file.
    fn file(mut file: std::fs::File, size: u64) -> Result<Self, ArrowError> {
        // ARROW1, 2 bytes of padding, the stream, footer, its length, ARROW1.
        if size < 8 + 10 {
            return Err(invalid(format!(
                "{size} bytes are too few for an Arrow IPC file"
            )));
        }
        let mut trailer = [0u8; 10];
        file.seek(SeekFrom::Start(size - 10))?;
        file.read_exact(&mut trailer)?;
        if &trailer[4..] != MAGIC {
            return Err(invalid(
                "the file starts like an Arrow IPC file but does not end like one (truncated?)"
                    .into(),
            ));
        }
        let claimed = i32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let data_end = size - 10;
        let footer_len = u64::try_from(claimed)
            .ok()
            .filter(|n| *n <= data_end - 8 && *n <= MAX_METADATA_BYTES)
            .ok_or_else(|| {
                invalid(format!(
                    "the footer claims {claimed} bytes; the file has {} before its trailer, \
                     and footers are read up to {MAX_METADATA_BYTES} bytes",
                    data_end - 8
                ))
            })?;
        let footer_start = data_end - footer_len;
        let mut footer = vec![0u8; usize::try_from(footer_len).unwrap_or(0)];
        file.seek(SeekFrom::Start(footer_start))?;
        file.read_exact(&mut footer)?;
        let footer = arrow_ipc::root_as_footer(&footer)
            .map_err(|e| invalid(format!("unreadable footer: {e}")))?;
        let ipc_schema = footer
            .schema()
            .ok_or_else(|| invalid("the footer holds no schema".into()))?;
        if !ipc_schema.endianness().equals_to_target_endianness() {
            return Err(invalid(
                "the file was written big-endian; this machine reads little-endian".into(),
            ));
        }
        // The footer's schema is the file's (where the stream's own schema
        // message starts depends on the writer's padding): encoded afresh as
        // the stream's first message.
        let schema = arrow_ipc::convert::try_fb_to_schema(ipc_schema)?;
        let schema = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema)?
            .get_ref()
            .clone();
        let check = |what: &str, i: usize, block: &Block| {
            let (offset, meta, body) = (
                i128::from(block.offset()),
                i128::from(block.metaDataLength()),
                i128::from(block.bodyLength()),
            );
            if offset < 8 || meta < 8 || body < 0 || offset + meta + body > i128::from(footer_start)
            {
                return Err(invalid(format!(
                    "the footer places {what} {i} at bytes {offset}..{}, outside the file's {footer_start} bytes of data",
                    offset + meta + body
                )));
            }
            Ok(*block)
        };
        let mut blocks = VecDeque::new();
        for (what, list) in [
            ("dictionary", footer.dictionaries()),
            ("record batch", footer.recordBatches()),
        ] {
            for (i, block) in list.iter().flatten().enumerate() {
                blocks.push_back(check(what, i, block)?);
            }
        }
        Ok(Source::File {
            schema: Some(schema),
            input: BufReader::new(file),
            blocks,
            data_end: footer_start,
        })
    }

    /// The next message's header (continuation, length, flatbuffer) and the
    /// length of the body that follows it in the input; `None` at the end.
    fn next_header(&mut self) -> std::io::Result<Option<(Vec<u8>, u64)>> {
        match self {
            Source::Stream { input, remaining } => read_header(input, remaining),
            Source::File {
                schema,
                input,
                blocks,
                data_end,
            } => {
                if let Some(schema) = schema.take() {
                    return Ok(Some((schema, 0)));
                }
                let Some(block) = blocks.pop_front() else {
                    return Ok(None);
                };
                let offset = u64::try_from(block.offset()).unwrap_or(0);
                input.seek(SeekFrom::Start(offset))?;
                let mut remaining = Some(data_end.saturating_sub(offset));
                let header = read_header(input, &mut remaining)?;
                if header.is_none() {
                    return Err(broken(format!(
                        "the footer places a message at byte {offset}, where the stream ends"
                    )));
                }
                Ok(header)
            }
        }
    }

    /// Reads body bytes of the message just framed.
    fn read_body(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::Stream { input, remaining } => {
                let n = input.read(buf)?;
                if let Some(left) = remaining.as_mut() {
                    *left = left.saturating_sub(n as u64);
                }
                Ok(n)
            }
            Source::File { input, .. } => input.read(buf),
        }
    }
}

/// Frames one message of `input`, of which `remaining` bytes are left
/// when known, and checks what it claims.
fn read_header(
    input: &mut impl Read,
    remaining: &mut Option<u64>,
) -> std::io::Result<Option<(Vec<u8>, u64)>> {
    let mut word = [0u8; 4];
    match read_full(input, &mut word)? {
        0 => return Ok(None),
        4 => {}
        n => return Err(broken(format!("the input ends {n} bytes into a message"))),
    }
    if let Some(left) = remaining.as_mut() {
        *left = left.saturating_sub(4);
    }
    if word == CONTINUATION {
        let mut len = Vec::with_capacity(4);
        take(input, remaining, &mut len, 4)?;
        word.copy_from_slice(&len);
    }
    let claimed = i32::from_le_bytes(word);
    if claimed == 0 {
        return Ok(None);
    }
    let header_len = u64::try_from(claimed)
        .map_err(|_| broken(format!("a message claims a header of {claimed} bytes")))?;
    let past_end = |n: u64, left: Option<u64>| left.is_some_and(|left| n > left);
    if header_len > MAX_METADATA_BYTES || past_end(header_len, *remaining) {
        return Err(broken(format!(
            "a message claims a {header_len}-byte header; {}",
            match remaining {
                Some(left) if header_len > *left => format!("only {left} bytes of the file remain"),
                _ => format!("headers are read up to {MAX_METADATA_BYTES} bytes"),
            }
        )));
    }
    let mut header = Vec::with_capacity(8 + header_len as usize);
    header.extend_from_slice(&CONTINUATION);
    header.extend_from_slice(&word);
    take(input, remaining, &mut header, header_len)?;
    let message = arrow_ipc::root_as_message(&header[8..])
        .map_err(|e| broken(format!("unreadable message header: {e}")))?;
    let body = u64::try_from(message.bodyLength()).map_err(|_| {
        broken(format!(
            "a message claims a body of {} bytes",
            message.bodyLength()
        ))
    })?;
    if past_end(body, *remaining) {
        return Err(broken(format!(
            "a message claims a {body}-byte body; only {} bytes of the file remain",
            remaining.unwrap_or(0)
        )));
    }
    check_message(&message, body).map_err(broken)?;
    Ok(Some((header, body)))
}

/// Appends exactly `n` bytes of `input` to `out`, growing it as they
/// arrive, and counts them off `remaining`.
fn take(
    input: &mut impl Read,
    remaining: &mut Option<u64>,
    out: &mut Vec<u8>,
    n: u64,
) -> std::io::Result<()> {
    let got = input.take(n).read_to_end(out)? as u64;
    if let Some(left) = remaining.as_mut() {
        *left = left.saturating_sub(got);
    }
    if got < n {
        return Err(broken(format!(
            "the input ends {got} bytes into a {n}-byte part of a message (truncated?)"
        )));
    }
    Ok(())
}

/// The input as a stream of checked messages ending in an end-of-stream
/// marker, for arrow-ipc's stream reader. A body is passed through as it
/// is read, never held here.
struct Checked<R: Read> {
    source: Source<R>,
    /// The rest of the current message's header.
    header: Cursor<Vec<u8>>,
    /// Body bytes of the current message still to pass through.
    body: u64,
    ended: bool,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.header.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if self.body > 0 {
                let max = buf
                    .len()
                    .min(usize::try_from(self.body).unwrap_or(usize::MAX));
                let n = self.source.read_body(&mut buf[..max])?;
                if n == 0 {
                    return Err(broken(format!(
                        "the input ends {} bytes before the end of a message body (truncated?)",
                        self.body
                    )));
                }
                self.body -= n as u64;
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            match self.source.next_header()? {
                Some((header, body)) => {
                    self.header = Cursor::new(header);
                    self.body = body;
                }
                None => {
                    self.header = Cursor::new(EOS.to_vec());
                    self.ended = true;
                }
            }
        }
    }
}

/// Checks what a record batch (or dictionary batch) message claims about
/// its `body` bytes before arrow-ipc slices them: every buffer inside the
/// body, every column's row and null counts possible. Every column type a
/// frame holds needs at least one bit of body per row; types that do not
/// (Null, run-end encoded) are refused from the schema before any batch.
fn check_message(message: &arrow_ipc::Message, body: u64) -> Result<(), String> {
    let batch = match message.header_type() {
        MessageHeader::RecordBatch => message.header_as_record_batch(),
        MessageHeader::DictionaryBatch => {
            message.header_as_dictionary_batch().and_then(|d| d.data())
        }
        _ => None,
    };
    let Some(batch) = batch else {
        return Ok(());
    };
    if batch.compression().is_some() {
        return Err(
            "compressed Arrow IPC (LZ4, ZSTD) is not supported; write the file uncompressed".into(),
        );
    }
    let body = i128::from(body);
    // A batch without columns holds its row count alone.
    let columns = batch.nodes().map_or(0, |n| n.len());
    if batch.length() < 0 || (columns > 0 && i128::from(batch.length()) > body * 8) {
        return Err(format!(
            "a batch claims {} rows, more than its {body}-byte body can hold",
            batch.length()
        ));
    }
    for (i, buffer) in batch.buffers().iter().flatten().enumerate() {
        let (offset, length) = (i128::from(buffer.offset()), i128::from(buffer.length()));
        if offset < 0 || length < 0 || offset + length > body {
            return Err(format!(
                "buffer {i} of a batch claims bytes {offset}..{} of its {body}-byte body",
                offset + length
            ));
        }
    }
    for node in batch.nodes().iter().flatten() {
        let (rows, nulls) = (node.length(), node.null_count());
        if rows < 0 || nulls < 0 || nulls > rows || i128::from(rows) > body * 8 {
            return Err(format!(
                "a column claims {rows} rows ({nulls} null), impossible in a {body}-byte body"
            ));
        }
    }
    Ok(())
}

//! The fuzz harnesses, one function per target, shared by the libFuzzer
//! binaries in `fuzz_targets/` and by the replay of `regressions/` and
//! `corpus/` in `tests/replay.rs`.
//!
//! Each harness feeds one input to a host entry point exactly as the host
//! would (file-based readers get a scratch file in /dev/shm), returns on any
//! error, and asserts only what the host relies on afterwards: a frame a
//! reader returns passes `check_frame`, chunked and whole reads agree, a
//! resolved plan survives the JSON a bundle stores it as. It must never
//! panic for any other reason.

use kernel_host_data::arrow::{batch_to_frame, frame_to_batch, read_arrow};
use kernel_host_data::{Chunks, CsvChunks, CsvOptions, read_csv, write_csv};
use kernel_host_manifest::Plan;
use kernel_host_types::bindings::{Column, ColumnValues, Frame};
use kernel_host_types::{ColumnType, cell_text, check_frame, column_len, type_of};
use std::path::{Path, PathBuf};

/// A per-process scratch file named `name`, under
/// `$KERNEL_HOST_FUZZ_SCRATCH` (scripts/fuzz sets it to a directory it
/// removes afterwards), else /dev/shm when there is one, else the temporary
/// directory. One process runs one input at a time, so reusing the name is
/// safe.
pub fn scratch(name: &str) -> PathBuf {
    let base = match std::env::var_os("KERNEL_HOST_FUZZ_SCRATCH") {
        Some(dir) => PathBuf::from(dir),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    };
    let dir = base.join(format!("kernel-host-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir.join(name)
}

fn scratch_with(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, data).expect("write the scratch file");
    path
}

/// Whether two frames hold the same table, comparing floats by bits (NaN
/// included) so a frame equals itself.
pub fn same_frame(a: &Frame, b: &Frame) -> bool {
    a.rows == b.rows
        && a.columns.len() == b.columns.len()
        && a.columns.iter().zip(&b.columns).all(|(x, y)| {
            x.name == y.name
                && x.nulls == y.nulls
                && match (&x.values, &y.values) {
                    (ColumnValues::F64(p), ColumnValues::F64(q)) => {
                        p.len() == q.len()
                            && p.iter().zip(q).all(|(u, v)| u.to_bits() == v.to_bits())
                    }
                    (p, q) => p == q,
                }
        })
}

/// What the host assumes of a frame `check_frame` accepted.
fn assert_consistent(frame: &Frame) {
    let rows = frame.rows as usize;
    for (i, c) in frame.columns.iter().enumerate() {
        assert_eq!(column_len(c), rows, "column `{}` length", c.name);
        if let Some(n) = &c.nulls {
            assert_eq!(n.len(), rows, "column `{}` null mask", c.name);
        }
        assert!(
            frame.columns[..i].iter().all(|d| d.name != c.name),
            "column `{}` twice",
            c.name
        );
    }
}

// ---------------------------------------------------------------- manifest

/// Where the manifest text claims to come from: a scratch directory holding
/// the files the seed manifests name (`k.wasm`, `train.csv`, `test.csv`,
/// `input.csv`, the directory `data/`), so resolution gets past its
/// existence checks. There is no `kernel-host.lock` in it.
pub fn manifest_path() -> &'static Path {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let dir = scratch("manifest");
        std::fs::create_dir_all(dir.join("data")).expect("create the manifest fixture");
        for file in ["k.wasm", "train.csv", "test.csv", "input.csv"] {
            std::fs::write(dir.join(file), b"").expect("write the manifest fixture");
        }
        dir.join("pipeline.toml")
    })
}

/// `Plan::parse_all` and `Plan::parse` on the text; an accepted plan must
/// survive the JSON round trip a bundle's index makes.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = manifest_path();
    let all = Plan::parse_all(path, text);
    let first = Plan::parse(path, text);
    match (&all, &first) {
        (Ok(_), Ok(_)) => {}
        (Err(errors), Err(e)) => {
            assert!(!errors.is_empty(), "parse_all failed with no error");
            assert_eq!(
                &errors[0], e,
                "parse and parse_all disagree on the first error"
            );
            return;
        }
        _ => panic!("parse and parse_all disagree: {all:?} / {first:?}"),
    }
    let Ok(plan) = all else { return };
    // A bundle stores the plan as JSON (kernel-host/src/bundle.rs) and
    // reads it back: what was accepted must come back the same.
    let json = serde_json::to_vec(&plan).expect("a resolved plan serializes to JSON");
    let back: Plan = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "a resolved plan does not read back from its JSON: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    let again = serde_json::to_vec(&back).expect("serializes again");
    assert_eq!(
        String::from_utf8_lossy(&json),
        String::from_utf8_lossy(&again),
        "the plan changed through JSON"
    );
}

// --------------------------------------------------------------------- csv

/// Options and chunk sizes from the first byte; the rest is the file.
///
/// bits 0-2: rows per chunk - 1; bits 3-4: rows sampled for inference - 1;
/// bits 5-7: 0 = infer every column, else declare the first header field as
/// f64/s64/bool/string (1-4), or use no null tokens at all (5-7).
pub fn csv(data: &[u8]) {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    let chunk_rows = usize::from(control & 7) + 1;
    let sample_rows = usize::from((control >> 3) & 3) + 1;
    let mut options = CsvOptions::default();
    match control >> 5 {
        0 => {}
        k @ 1..=4 => {
            let first = body
                .split(|b| *b == b',' || *b == b'\n' || *b == b'\r')
                .next()
                .and_then(|f| std::str::from_utf8(f).ok())
                .map(|f| f.trim().to_string());
            if let Some(name) = first {
                let ty = [
                    ColumnType::F64,
                    ColumnType::S64,
                    ColumnType::Bool,
                    ColumnType::String,
                ][usize::from(k - 1)];
                options.schema.insert(name, ty);
            }
        }
        _ => options.null_values.clear(),
    }
    let path = scratch_with("input.csv", body);

    let whole = read_csv(&path, &options);
    if let Ok(frame) = &whole {
        check_frame(frame, None).expect("read_csv returned an inconsistent frame");
    }

    let chunked = (|| {
        let mut chunks = CsvChunks::open(&path, &options, sample_rows)?;
        let mut parts = Vec::new();
        while let Some(frame) = chunks.next_chunk(chunk_rows)? {
            check_frame(&frame, None).expect("CsvChunks returned an inconsistent frame");
            assert!(frame.rows as usize <= chunk_rows, "chunk larger than asked");
            let _ = chunks.bytes_read();
            parts.push(frame);
        }
        Ok::<_, kernel_host_types::DataError>(parts)
    })();
    // Types inferred from a sample are never looser than from the whole
    // file, and both reads refuse the same odd columns (csv.rs `Tally`): a
    // chunked read that succeeds must give the whole read's table.
    if let Ok(parts) = chunked {
        let whole = whole.expect("chunked read succeeded where the whole read failed");
        if parts.is_empty() {
            assert_eq!(whole.rows, 0, "chunked read found no rows");
        } else {
            let joined = Frame::concat_rows(parts).expect("chunks of one file concatenate");
            assert!(
                same_frame(&joined, &whole),
                "chunked and whole reads differ:\n{joined:?}\n{whole:?}"
            );
        }
    }
}

// ------------------------------------------------------------------- arrow

/// When both reads succeed, the chunks concatenate to the whole read.
fn chunks_match<E>(
    whole: Result<Frame, E>,
    chunked: Result<Vec<Frame>, kernel_host_types::DataError>,
) {
    if let (Ok(whole), Ok(parts)) = (whole, chunked)
        && !parts.is_empty()
    {
        let joined = Frame::concat_rows(parts).expect("chunks concatenate");
        assert!(
            same_frame(&joined, &whole),
            "chunked and whole reads differ:\n{joined:?}\n{whole:?}"
        );
    }
}

/// The chunks `Chunks` reads from `path`, `chunk_rows` at a time, each
/// checked.
fn chunked_read(
    path: &Path,
    chunk_rows: usize,
) -> Result<Vec<Frame>, kernel_host_types::DataError> {
    let mut chunks = Chunks::open(path, &CsvOptions::default())?;
    let mut parts = Vec::new();
    while let Some(frame) = chunks.next_chunk(chunk_rows)? {
        check_frame(&frame, None).expect("Chunks returned an inconsistent frame");
        assert!(frame.rows as usize <= chunk_rows, "chunk larger than asked");
        let _ = chunks.bytes_read();
        parts.push(frame);
    }
    Ok(parts)
}

/// `read_arrow` on the bytes as a file, and the chunked reader
/// (`Chunks`) with a chunk size from the input's length.
pub fn arrow(data: &[u8]) {
    let path = scratch_with("input.arrow", data);
    let whole = read_arrow(&path);
    if let Ok(frame) = &whole {
        check_frame(frame, None).expect("read_arrow returned an inconsistent frame");
    }
    let chunked = chunked_read(&path, data.len() % 7 + 1);
    // As `kernel-host stream` reads standard input: the stream format, size
    // unknown (a body is believed only as its bytes arrive).
    let streamed = (|| {
        let mut reader = kernel_host_data::arrow::BatchReader::stream(std::io::Cursor::new(data))
            .map_err(|e| e.to_string())?;
        let mut rows = 0u64;
        let mut parts = Vec::new();
        while let Some(batch) = reader.next_batch() {
            let batch = batch.map_err(|e| e.to_string())?;
            let frame =
                batch_to_frame(&batch, Path::new("<stdin>"), rows).map_err(|e| e.to_string())?;
            check_frame(&frame, None).expect("a streamed batch is an inconsistent frame");
            rows += u64::from(frame.rows);
            parts.push(frame);
        }
        Ok::<_, String>(parts)
    })();
    if let (Ok(whole), Ok(parts)) = (&whole, &streamed)
        && !parts.is_empty()
        && !data.starts_with(b"ARROW1")
    {
        let joined = Frame::concat_rows(parts.clone()).expect("streamed batches concatenate");
        assert!(
            same_frame(&joined, whole),
            "streamed and whole reads differ:\n{joined:?}\n{whole:?}"
        );
    }
    // Whole reads also check that batches agree on their columns, chunked
    // reads do not; compare when both succeed.
    chunks_match(whole, chunked);
}

// ----------------------------------------------------------------- parquet

/// `read_parquet` on the bytes as a file, and the chunked reader
/// (`Chunks`) with a batch size from the input's length; both must agree
/// when both succeed.
pub fn parquet(data: &[u8]) {
    let path = scratch_with("input.parquet", data);
    let whole = kernel_host_data::parquet::read_parquet(&path);
    if let Ok(frame) = &whole {
        check_frame(frame, None).expect("read_parquet returned an inconsistent frame");
    }
    let chunked = chunked_read(&path, data.len() % 7 + 1);
    chunks_match(whole, chunked);
}

// ------------------------------------------------------------------- frame

// The `Arbitrary` impls are written out rather than derived: the derive
// feature of `arbitrary` (a dependency of cranelift) would change its
// features in the main workspace, where the test suite replays these
// harnesses, and rebuild wasmtime whenever one switches between a test
// build and a plain one.

/// A frame as a hostile kernel might return it, plus what the host then
/// does with it.
#[derive(Debug)]
pub struct FrameInput {
    /// `None`: the first column's length, so most frames are well formed.
    rows: Option<u32>,
    expected_rows: Option<u32>,
    columns: Vec<ColumnInput>,
    take: Vec<usize>,
    slice: (usize, usize),
    split: u8,
}

#[derive(Debug)]
pub struct ColumnInput {
    name: String,
    values: ValuesInput,
    /// `Some(None)`: a mask of the right length from the seed bits.
    nulls: Option<Option<Vec<u8>>>,
    seed: u64,
}

#[derive(Debug)]
pub enum ValuesInput {
    F64(Vec<f64>),
    S64(Vec<i64>),
    Bool(Vec<bool>),
    String(Vec<String>),
}

impl<'a> arbitrary::Arbitrary<'a> for FrameInput {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(FrameInput {
            rows: u.arbitrary()?,
            expected_rows: u.arbitrary()?,
            columns: u.arbitrary()?,
            take: u.arbitrary()?,
            slice: u.arbitrary()?,
            split: u.arbitrary()?,
        })
    }
}

impl<'a> arbitrary::Arbitrary<'a> for ColumnInput {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(ColumnInput {
            name: u.arbitrary()?,
            values: u.arbitrary()?,
            nulls: u.arbitrary()?,
            seed: u.arbitrary()?,
        })
    }
}

impl<'a> arbitrary::Arbitrary<'a> for ValuesInput {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.choose_index(4)? {
            0 => ValuesInput::F64(u.arbitrary()?),
            1 => ValuesInput::S64(u.arbitrary()?),
            2 => ValuesInput::Bool(u.arbitrary()?),
            _ => ValuesInput::String(u.arbitrary()?),
        })
    }
}

impl FrameInput {
    pub fn frame(&self) -> Frame {
        let columns: Vec<Column> = self
            .columns
            .iter()
            .map(|c| {
                let values = match &c.values {
                    ValuesInput::F64(v) => ColumnValues::F64(v.clone()),
                    ValuesInput::S64(v) => ColumnValues::S64(v.clone()),
                    ValuesInput::Bool(v) => ColumnValues::Bool(v.clone()),
                    ValuesInput::String(v) => ColumnValues::String(v.iter().collect()),
                };
                let len = match &values {
                    ColumnValues::F64(v) => v.len(),
                    ColumnValues::S64(v) => v.len(),
                    ColumnValues::Bool(v) => v.len(),
                    ColumnValues::String(v) => v.len(),
                };
                let nulls = c.nulls.as_ref().map(|n| match n {
                    Some(n) => n.clone(),
                    None => (0..len).map(|i| ((c.seed >> (i % 64)) & 1) as u8).collect(),
                });
                Column {
                    name: c.name.clone(),
                    values,
                    nulls,
                }
            })
            .collect();
        let rows = self
            .rows
            .unwrap_or_else(|| columns.first().map_or(0, |c| column_len(c) as u32));
        Frame { rows, columns }
    }
}

/// `printable` and `printable_lines` leave nothing that acts on a terminal.
fn assert_printable(text: &str) {
    let acts =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let shown = kernel_host_types::printable(text);
    assert!(!shown.chars().any(acts), "printable left {shown:?}");
    let lines = kernel_host_types::printable_lines(text);
    assert!(
        !lines.chars().any(|c| c != '\n' && acts(c)),
        "printable_lines left {lines:?}"
    );
    let mut owned = text.to_string();
    kernel_host_types::make_printable(&mut owned);
    assert_eq!(owned, shown);
}

/// Builds a frame from the bytes; when `check_frame` accepts it, it must be
/// consistent and every host helper used on kernel output must work on it.
pub fn frame(data: &[u8]) {
    let Ok(input) = arbitrary::Unstructured::new(data).arbitrary::<FrameInput>() else {
        return;
    };
    frame_input(&input);
}

pub fn frame_input(input: &FrameInput) {
    let frame = input.frame();
    for c in &frame.columns {
        let _ = kernel_host_types::check_column(c, frame.rows);
        // What a kernel names reaches terminals only through `printable`.
        assert_printable(&c.name);
        if let ColumnValues::String(cells) = &c.values {
            cells.iter().take(64).for_each(assert_printable);
        }
    }
    if check_frame(&frame, input.expected_rows).is_err() {
        return;
    }
    assert_consistent(&frame);
    if let Some(expected) = input.expected_rows {
        assert_eq!(frame.rows, expected);
    }
    let rows = frame.rows as usize;

    let mut texts = Vec::with_capacity(frame.columns.len());
    for c in &frame.columns {
        let column: Vec<Option<String>> = (0..rows).map(|r| cell_text(c, r)).collect();
        texts.push(column);
        let _ = type_of(c);
    }

    // take_rows with indices in range
    if rows > 0 {
        let indices: Vec<usize> = input.take.iter().map(|i| i % rows).collect();
        let taken = frame.take_rows(&indices);
        check_frame(&taken, Some(indices.len() as u32)).expect("take_rows is consistent");
        for (c, t) in frame.columns.iter().zip(&taken.columns) {
            for (k, &i) in indices.iter().enumerate() {
                assert_eq!(cell_text(c, i), cell_text(t, k), "take_rows moved a cell");
            }
        }
    } else {
        let taken = frame.take_rows(&[]);
        check_frame(&taken, Some(0)).expect("take_rows of nothing is consistent");
    }

    // slice_rows with start <= end <= rows
    let (a, b) = (input.slice.0 % (rows + 1), input.slice.1 % (rows + 1));
    let (start, end) = (a.min(b), a.max(b));
    let slice = frame.slice_rows(start, end);
    check_frame(&slice, Some((end - start) as u32)).expect("slice_rows is consistent");

    // split and join back
    let parts = frame.split_rows(usize::from(input.split));
    let joined = Frame::concat_rows(parts).expect("split parts concatenate");
    assert!(
        same_frame(&joined, &frame),
        "split_rows + concat_rows changed the frame"
    );

    // to Arrow and back: same cells, nulls included. A frame without
    // columns has no cells to carry (and a batch claiming rows without
    // columns is refused on reading).
    if frame.columns.is_empty() {
        return;
    }
    let batch = frame_to_batch(&frame).expect("an accepted frame converts to a record batch");
    assert_eq!(batch.num_rows(), rows);
    // A kernel may output an infinity; a table read as input may not hold
    // one (as in a CSV), so such a batch is refused on reading, by name.
    let infinite = frame.columns.iter().any(|c| match &c.values {
        ColumnValues::F64(v) => v
            .iter()
            .enumerate()
            .any(|(r, x)| x.is_infinite() && c.nulls.as_ref().is_none_or(|m| m.get(r) == Some(&0))),
        _ => false,
    });
    let read = batch_to_frame(&batch, Path::new("kernel-output"), 0);
    if infinite {
        let e = read.expect_err("an infinity is refused when read as input");
        assert!(e.to_string().contains("infinity"), "{e}");
        return;
    }
    let back = read.expect("a batch made from a frame converts back");
    check_frame(&back, Some(frame.rows)).expect("the frame from the batch is consistent");
    for ((c, b), text) in frame.columns.iter().zip(&back.columns).zip(&texts) {
        assert_eq!(c.name, b.name);
        assert_eq!(type_of(c), type_of(b));
        for (r, t) in text.iter().enumerate() {
            assert_eq!(
                *t,
                cell_text(b, r),
                "cell {r} of `{}` through Arrow",
                c.name
            );
        }
    }

    // CSV output of predictions. The host writes only frames whose height
    // was checked against the input's (`check_frame(out, Some(rows))`), so
    // skip the frames no input could match: no columns, yet millions of
    // rows (see regressions/README.md, "column-less frames").
    if !frame.columns.is_empty() || rows <= 1 << 16 {
        let _ = write_csv(&scratch("output.csv"), &frame);
    }
}

// ------------------------------------------------------------------ bundle

/// The bundle container reader, `bundle_file::decode`, three ways by the
/// first byte (mod 3):
///
/// 0. the rest as a file, as read;
/// 1. the rest with its trailer recomputed, as anyone editing a bundle can:
///    the index JSON and the parts then get past the trailer check;
/// 2. the rest as manifest text: its plan, when it resolves, is encoded
///    into a bundle with `encode` and must decode back the same (with
///    `KERNEL_HOST_FUZZ_DUMP_BUNDLE=DIR` set, the bundle is also written to
///    DIR: how `corpus/bundle/` was made).
///
/// A decoded bundle must give back every part it lists, hashes verified.
pub fn bundle(data: &[u8]) {
    use kernel_host_manifest::bundle_file::{self, FORMAT, Index};
    use sha2::Digest as _;
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let path = Path::new("fuzz.khb");
    let bytes = match mode % 3 {
        0 => body.to_vec(),
        1 => {
            let mut bytes = body.to_vec();
            if bytes.len() >= 32 {
                let end = bytes.len() - 32;
                let trailer = sha2::Sha256::digest(&bytes[..end]);
                bytes[end..].copy_from_slice(&trailer);
            }
            bytes
        }
        _ => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            let Ok(plan) = Plan::parse_all(manifest_path(), text) else {
                return;
            };
            let parts: Vec<(String, Vec<u8>)> = plan
                .steps
                .iter()
                .map(|s| (format!("kernels/{}", s.id), s.id.as_bytes().to_vec()))
                .collect();
            let index = Index {
                format: FORMAT,
                created: "fuzz".into(),
                kernel_host: "0".into(),
                wit: "0".into(),
                plan,
                kernels: Vec::new(),
                schema: vec![("x".into(), ColumnType::F64)],
                train_rows: 1,
                parts: Vec::new(),
            };
            let Ok(bytes) = bundle_file::encode(index.clone(), &parts) else {
                return;
            };
            if let Some(dir) = std::env::var_os("KERNEL_HOST_FUZZ_DUMP_BUNDLE") {
                let name = format!("{:016x}.khb", fxhash(&bytes));
                let mut out = vec![0u8];
                out.extend_from_slice(&bytes);
                std::fs::write(Path::new(&dir).join(name), out).expect("dump the bundle");
            }
            let back = bundle_file::decode(path, bytes).unwrap_or_else(|e| {
                panic!("a bundle encoded from a resolved plan does not decode: {e}")
            });
            // A decoded plan's path is the bundle's (it locates errors).
            let mut index = index;
            index.plan.path = path.to_path_buf();
            let json = |i: &Index| serde_json::to_string(&i.plan).expect("plan to JSON");
            assert_eq!(
                json(&back.index),
                json(&index),
                "the plan changed through a bundle"
            );
            for (name, bytes) in &parts {
                assert_eq!(back.part(name), Some(&bytes[..]), "part `{name}`");
            }
            return;
        }
    };
    let Ok(container) = bundle_file::decode(path, bytes) else {
        return;
    };
    let _ = (container.len(), container.is_empty());
    for part in &container.index.parts {
        let bytes = container
            .part(&part.name)
            .unwrap_or_else(|| panic!("decoded bundle lacks its part `{}`", part.name));
        let hex: String = sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // `part` finds the first part of that name; a later one of the same
        // name may differ, so compare only the first.
        if container.index.parts.iter().find(|p| p.name == part.name) == Some(part) {
            assert_eq!(hex, part.sha256, "part `{}` served unverified", part.name);
        }
    }
    let _ = serde_json::to_vec(&container.index.plan).expect("a decoded plan serializes again");
}

fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

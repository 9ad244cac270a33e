//! Hostile and broken input files: each is refused with an error naming the
//! file (and the row and column where there is one), never read without
//! end, never a panic, and the same whether read whole or in chunks.

use crate::arrow::{batch_to_frame, read_arrow, write_arrow};
use crate::csv::read_csv_bounded;
use crate::{Chunks, CsvChunks, CsvOptions, read_csv};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use kernel_host_types::bindings::{Column, ColumnValues, Frame};
use kernel_host_types::{ColumnType, DataError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A fresh directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kh-hostile-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads `path` whole and in chunks of 3 rows (types inferred from the
/// first `sample` rows); both must fail, with the same error.
fn refused_both_ways(path: &Path, options: &CsvOptions, sample: usize) -> DataError {
    let whole = read_csv(path, options).unwrap_err();
    let chunked = (|| {
        let mut chunks = CsvChunks::open(path, options, sample)?;
        while chunks.next_chunk(3)?.is_some() {}
        Ok::<_, DataError>(())
    })()
    .unwrap_err();
    assert_eq!(whole, chunked, "whole: {whole}\nchunked: {chunked}");
    whole
}

fn arrow_refused_both_ways(path: &Path) -> DataError {
    let whole = read_arrow(path).unwrap_err();
    let chunked = (|| {
        let mut chunks = Chunks::open(path, &CsvOptions::default())?;
        while chunks.next_chunk(2)?.is_some() {}
        Ok::<_, DataError>(())
    })()
    .unwrap_err();
    assert_eq!(
        whole.message, chunked.message,
        "whole: {whole}\nchunked: {chunked}"
    );
    whole
}

#[test]
fn devices_are_refused_for_what_they_are() {
    let dir = Scratch::new();
    for name in ["zero.csv", "zero.arrow"] {
        let link = dir.0.join(name);
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let e = crate::read_table(&link, &CsvOptions::default()).unwrap_err();
        assert!(
            e.message
                .ends_with("is a character device, not a regular file"),
            "{e}"
        );
        let e = Chunks::open(&link, &CsvOptions::default()).err().unwrap();
        assert!(e.message.contains("character device"), "{e}");
    }
    let e = read_csv(&dir.0.join("missing.csv"), &CsvOptions::default()).unwrap_err();
    assert_eq!(e.message, "cannot open: not found");
}

#[test]
fn a_record_without_end_is_refused_at_the_bound() {
    let dir = Scratch::new();
    let options = CsvOptions::default();
    // No line end at all.
    let endless = dir.file("endless.csv", format!("a,b\n1,{}", "x".repeat(300_000)));
    // A quote left open, then many short lines.
    let open_quote = dir.file(
        "quote.csv",
        format!("a,b\n1,2\n3,\"open\n{}", "x,y\n".repeat(100_000)),
    );
    for (path, row) in [(&endless, 1), (&open_quote, 2)] {
        let e = read_csv_bounded(path, &options, 1024).unwrap_err();
        assert_eq!(
            (e.file.as_path(), e.row),
            (path.as_path(), Some(row)),
            "{e}"
        );
        assert!(
            e.message.starts_with(
                "a record longer than 1024 bytes: not a CSV file, or a quote left open"
            ),
            "{e}"
        );
        let chunked = (|| {
            let mut chunks = CsvChunks::open_bounded(path, &options, 1, 1024)?;
            while chunks.next_chunk(1)?.is_some() {}
            Ok::<_, DataError>(())
        })()
        .unwrap_err();
        assert_eq!(chunked, e);
    }
    // Records just under the bound are read.
    let long = "y".repeat(1000);
    let fine = dir.file(
        "fine.csv",
        format!("a,b\n{}", format!("1,{long}\n").repeat(300)),
    );
    assert_eq!(read_csv_bounded(&fine, &options, 1024).unwrap().rows, 300);
}

/// Makes a FIFO at `path` and a thread that opens it for writing and hands
/// it to `feed`; `None` (test skipped) where `mkfifo` is missing.
fn fifo_fed_by(
    path: &Path,
    feed: impl FnOnce(std::fs::File) + Send + 'static,
) -> Option<std::thread::JoinHandle<()>> {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: no mkfifo");
        return None;
    }
    let path = path.to_path_buf();
    Some(std::thread::spawn(move || {
        feed(std::fs::OpenOptions::new().write(true).open(path).unwrap());
    }))
}

#[test]
fn zeros_through_a_pipe_are_refused_at_the_bound() {
    let dir = Scratch::new();
    let fifo = dir.0.join("zeros.csv");
    let Some(writer) = fifo_fed_by(&fifo, |mut pipe| {
        let zeros = vec![0u8; 1 << 16];
        // Ends when the reader gives up (a broken pipe).
        while pipe.write_all(&zeros).is_ok() {}
    }) else {
        return;
    };
    let e = read_csv_bounded(&fifo, &CsvOptions::default(), 1 << 20).unwrap_err();
    writer.join().unwrap();
    assert_eq!(e.row, Some(0), "{e}");
    assert!(e.message.contains("a record longer than 1 MiB"), "{e}");
}

#[test]
fn infinities_are_refused_where_they_are() {
    let dir = Scratch::new();
    for cell in ["inf", "-inf", "+inf", "-Infinity", "INF", "1e999"] {
        let path = dir.file("inf.csv", format!("x,y\n1,a\n2.5,b\n{cell},c\n4,d\n"));
        let e = refused_both_ways(&path, &CsvOptions::default(), 2);
        assert_eq!((e.row, e.column.as_deref()), (Some(3), Some("x")), "{e}");
        assert_eq!(
            e.message,
            format!(
                "`{cell}` is infinite, and infinity is not a number kernels accept; replace it, or leave the cell empty for a missing value"
            )
        );
        assert!(!e.message.contains("missing value in"), "{e}");
        let mut declared = CsvOptions::default();
        declared.schema.insert("x".into(), ColumnType::F64);
        assert_eq!(refused_both_ways(&path, &declared, 2), e);
    }
}

#[test]
fn any_spelling_of_nan_is_a_missing_value() {
    let dir = Scratch::new();
    let path = dir.file("nan.csv", "x\n1.5\nNAN\n-nan\nNaN\n+NaN\n2\n");
    let frame = read_csv(&path, &CsvOptions::default()).unwrap();
    assert_eq!(frame.columns[0].nulls, Some(vec![0, 1, 1, 1, 1, 0]));
    let ColumnValues::F64(v) = &frame.columns[0].values else {
        panic!("{:?}", frame.columns[0].values);
    };
    assert_eq!((v[0], v[5]), (1.5, 2.0));
    // Without null tokens, too.
    let options = CsvOptions {
        null_values: Vec::new(),
        ..CsvOptions::default()
    };
    let path = dir.file("nan2.csv", "x\n1.5\nnan\n");
    let frame = read_csv(&path, &options).unwrap();
    assert_eq!(frame.columns[0].nulls, Some(vec![0, 1]));
}

#[test]
fn a_typo_in_a_number_column_is_refused_unless_declared() {
    let dir = Scratch::new();
    // 20 rows of numbers but `46.1.` in row `typo`.
    let bills = |typo: usize| {
        let mut text = String::from("bill_length_mm,island\n");
        for i in 1..=20 {
            let cell = if i == typo {
                "46.1.".to_string()
            } else {
                format!("{}.{i}", 30 + i)
            };
            text.push_str(&format!("{cell},Biscoe\n"));
        }
        text
    };
    let path = dir.file("typo.csv", bills(12));
    let e = refused_both_ways(&path, &CsvOptions::default(), 100);
    assert_eq!(
        (e.row, e.column.as_deref()),
        (Some(12), Some("bill_length_mm"))
    );
    assert!(
        e.to_string().contains(
            "row 12, column `bill_length_mm`: the column looks numeric (19 of 20 non-empty cells are numbers) but this cell holds `46.1.`; fix the cell"
        ),
        "{e}"
    );
    // A typo in the first row: the chunked read's sample (1 row) sees
    // strings, so only the end of the file shows the column is numbers.
    let first = dir.file("first.csv", bills(1));
    let e = refused_both_ways(&first, &CsvOptions::default(), 1);
    assert_eq!(e.row, Some(1));
    assert!(
        e.message.contains("(19 of 20 non-empty cells are numbers)"),
        "{e}"
    );

    let mut declared = CsvOptions::default();
    declared
        .schema
        .insert("bill_length_mm".into(), ColumnType::String);
    let frame = read_csv(&path, &declared).unwrap();
    assert!(matches!(&frame.columns[0].values, ColumnValues::String(v) if &v[11] == "46.1."));

    // Real string columns stay strings: IDs, names, a few numbers among words.
    let path = dir.file(
        "ids.csv",
        "id,island,code\nA12,Biscoe,1\nB7,Dream,2\nC3,Torgersen,x\n12,Biscoe,y\n",
    );
    let frame = read_csv(&path, &CsvOptions::default()).unwrap();
    assert!(
        frame
            .columns
            .iter()
            .all(|c| matches!(c.values, ColumnValues::String(_)))
    );

    // Booleans with a typo, too.
    let mut text = String::from("flag\n");
    for i in 0..10 {
        text.push_str(if i == 4 { "ture\n" } else { "true\n" });
    }
    let path = dir.file("bool.csv", &text);
    let e = refused_both_ways(&path, &CsvOptions::default(), 100);
    assert_eq!(e.row, Some(5));
    assert!(e.message.contains("looks boolean (9 of 10"), "{e}");
}

/// The bytes of an Arrow IPC file (or, `.arrows`, stream) holding `frame`.
fn arrow_bytes(dir: &Scratch, name: &str, frame: &Frame) -> Vec<u8> {
    let path = dir.0.join(name);
    write_arrow(&path, frame).unwrap();
    std::fs::read(path).unwrap()
}

fn two_columns(rows: usize) -> Frame {
    Frame {
        rows: rows as u32,
        columns: vec![
            Column {
                name: "a".into(),
                values: ColumnValues::F64((0..rows).map(|i| i as f64).collect()),
                nulls: None,
            },
            Column {
                name: "b".into(),
                values: ColumnValues::S64((0..rows as i64).collect()),
                nulls: None,
            },
        ],
    }
}

/// Offset of `inner` in `outer` (both borrowed from one buffer).
fn offset_in<T>(outer: &[u8], inner: &T) -> usize {
    inner as *const T as usize - outer.as_ptr() as usize
}

/// The messages of a stream: (start, header length incl. the 8-byte prefix,
/// body length).
fn stream_messages(bytes: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let len = i32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if len == 0 {
            return out;
        }
        let message = arrow_ipc::root_as_message(&bytes[at + 8..at + 8 + len]).unwrap();
        let body = message.bodyLength() as usize;
        out.push((at, 8 + len, body));
        at += 8 + len + body;
    }
}

#[test]
fn arrow_lengths_past_the_file_are_refused_before_allocating() {
    let dir = Scratch::new();
    let good = arrow_bytes(&dir, "good.arrow", &two_columns(4));
    let n = good.len();

    // The footer's length, in the trailer.
    let mut forged = good.clone();
    forged[n - 10..n - 6].copy_from_slice(&i32::MAX.to_le_bytes());
    let e = arrow_refused_both_ways(&dir.file("footer.arrow", &forged));
    assert!(
        e.message.contains("the footer claims 2147483647 bytes"),
        "{e}"
    );

    // A record batch block's body length, in the footer.
    let footer_len = i32::from_le_bytes(good[n - 10..n - 6].try_into().unwrap()) as usize;
    let footer_bytes = &good[n - 10 - footer_len..n - 10];
    let footer = arrow_ipc::root_as_footer(footer_bytes).unwrap();
    let block = footer.recordBatches().unwrap().get(0);
    let at = n - 10 - footer_len + offset_in(footer_bytes, block) + 16;
    let mut forged = good.clone();
    forged[at..at + 8].copy_from_slice(&(1i64 << 40).to_le_bytes());
    let e = arrow_refused_both_ways(&dir.file("block.arrow", &forged));
    assert!(
        e.message
            .contains("the footer places record batch 0 at bytes"),
        "{e}"
    );

    // A stream message's header length, and its body length.
    let good = arrow_bytes(&dir, "good.arrows", &two_columns(4));
    let messages = stream_messages(&good);
    let (batch_at, header, body) = messages[1];
    let mut forged = good.clone();
    forged[batch_at + 4..batch_at + 8].copy_from_slice(&i32::MAX.to_le_bytes());
    let e = arrow_refused_both_ways(&dir.file("header.arrows", &forged));
    assert!(e.message.contains("claims a 2147483647-byte header"), "{e}");

    let meta = &good[batch_at + 8..batch_at + header];
    let body_at = (0..meta.len() - 8)
        .step_by(4)
        .find(|i| meta[*i..*i + 8] == (body as i64).to_le_bytes())
        .unwrap();
    let mut forged = good.clone();
    let at = batch_at + 8 + body_at;
    forged[at..at + 8].copy_from_slice(&(1i64 << 40).to_le_bytes());
    let message = arrow_ipc::root_as_message(&forged[batch_at + 8..batch_at + header]).unwrap();
    assert_eq!(message.bodyLength(), 1 << 40, "patched the body length");
    let e = arrow_refused_both_ways(&dir.file("body.arrows", &forged));
    assert!(
        e.message.contains("claims a 1099511627776-byte body"),
        "{e}"
    );

    // The second batch of a stream claims one byte more than the file has
    // left after it (the first batch's body counted).
    let batch = crate::arrow::frame_to_batch(&two_columns(4)).unwrap();
    let mut two = Vec::new();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut two, &batch.schema()).unwrap();
    w.write(&batch).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    drop(w);
    let (second_at, header, _) = stream_messages(&two)[2];
    let at = second_at + 8 + body_at;
    let claim = (two.len() - second_at - header + 1) as i64;
    two[at..at + 8].copy_from_slice(&claim.to_le_bytes());
    let e = arrow_refused_both_ways(&dir.file("second.arrows", &two));
    assert!(
        e.message
            .contains(&format!("claims a {claim}-byte body; only")),
        "{e}"
    );
}

#[test]
fn arrow_buffers_outside_their_body_are_refused_not_a_panic() {
    let dir = Scratch::new();
    for name in ["buffers.arrow", "buffers.arrows"] {
        let good = arrow_bytes(&dir, name, &two_columns(4));
        // The first record batch's header: (start, end) in the bytes.
        let (meta_at, meta_end) = if name.ends_with(".arrow") {
            let n = good.len();
            let footer_len = i32::from_le_bytes(good[n - 10..n - 6].try_into().unwrap()) as usize;
            let footer = arrow_ipc::root_as_footer(&good[n - 10 - footer_len..n - 10]).unwrap();
            let block = footer.recordBatches().unwrap().get(0);
            let at = block.offset() as usize;
            (at + 8, at + block.metaDataLength() as usize)
        } else {
            let (at, header, _) = stream_messages(&good)[1];
            (at + 8, at + header)
        };
        let meta = &good[meta_at..meta_end];
        let message = arrow_ipc::root_as_message(meta).unwrap();
        let buffers = message.header_as_record_batch().unwrap().buffers().unwrap();
        let at = meta_at + offset_in(meta, buffers.get(1));
        let mut forged = good.clone();
        forged[at..at + 8].copy_from_slice(&(1i64 << 40).to_le_bytes());
        let e = arrow_refused_both_ways(&dir.file(name, &forged));
        assert!(
            e.message.contains("buffer 1 of a batch claims bytes"),
            "{e}"
        );
    }
}

#[test]
fn arrow_streams_read_through_a_pipe() {
    let dir = Scratch::new();
    let frame = two_columns(5);
    for (name, ok) in [("p.arrows", true), ("p.arrow", false)] {
        let bytes = arrow_bytes(&dir, &format!("src-{name}"), &frame);
        let fifo = dir.0.join(name);
        let Some(writer) = fifo_fed_by(&fifo, move |mut pipe| {
            let _ = pipe.write_all(&bytes);
        }) else {
            return;
        };
        let read = read_arrow(&fifo);
        writer.join().unwrap();
        match read {
            Ok(back) => assert!(ok && back == frame),
            Err(e) => assert!(
                !ok && e.message.contains("send the stream format (`.arrows`)"),
                "{e}"
            ),
        }
    }
}

#[test]
fn arrow_columns_named_twice_are_refused() {
    let dir = Scratch::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float64, true),
        Field::new("x", DataType::Int64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Float64Array::from(vec![1.0, 2.0])),
        Arc::new(Int64Array::from(vec![1, 2])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    for name in ["twice.arrow", "twice.arrows"] {
        let path = dir.0.join(name);
        let file = std::fs::File::create(&path).unwrap();
        if name.ends_with(".arrow") {
            let mut w = arrow_ipc::writer::FileWriter::try_new(file, &schema).unwrap();
            w.write(&batch).unwrap();
            w.finish().unwrap();
        } else {
            let mut w = arrow_ipc::writer::StreamWriter::try_new(file, &schema).unwrap();
            w.write(&batch).unwrap();
            w.finish().unwrap();
        }
        let e = arrow_refused_both_ways(&path);
        assert_eq!(
            (e.file.as_path(), e.column.as_deref(), e.message.as_str()),
            (
                path.as_path(),
                Some("x"),
                "column name appears twice in the schema"
            )
        );
    }
    // A batch from a stream (`kernel-host stream`), too.
    let e = batch_to_frame(&batch, Path::new("<stdin>"), 0).unwrap_err();
    assert_eq!(e.column.as_deref(), Some("x"));
}

#[test]
fn arrow_infinities_are_refused_like_csv_ones() {
    let dir = Scratch::new();
    let path = dir.0.join("inf.arrow");
    let frame = Frame {
        rows: 3,
        columns: vec![Column {
            name: "x".into(),
            values: ColumnValues::F64(vec![1.0, f64::NEG_INFINITY, 2.0]),
            nulls: None,
        }],
    };
    write_arrow(&path, &frame).unwrap();
    let err = arrow_refused_both_ways(&path);
    assert_eq!(
        (err.row, err.column.as_deref()),
        (Some(2), Some("x")),
        "{err}"
    );
    assert!(err.message.contains("-inf is an infinity"), "{err}");
}

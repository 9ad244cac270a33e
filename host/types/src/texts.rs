//! A column of strings as the host holds it: one UTF-8 buffer and the end
//! offset of each cell (as Arrow's `Utf8` arrays do), instead of one heap
//! allocation per cell.
//!
//! The parser appends cells to the buffer, Arrow inputs and the spill are
//! read into it buffer for buffer, by-reference kernels read slices of it,
//! and dropping a column frees two buffers. Only a kernel that takes the
//! column by copy sees a `list<string>`: [`Texts`] lowers as one (the
//! canonical ABI copies each string into the guest either way), and a
//! `list<string>` a kernel returns is read from its memory straight into
//! one buffer.

use std::fmt;
use std::mem::MaybeUninit;
use std::ops::Index;
use wasmtime::component::__internal::wasmtime_environ::component::StringEncoding;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext, LowerContext,
};
use wasmtime::component::{ComponentType, Lift, Lower};

/// Strings in one buffer: cell `i` is `bytes[ends[i - 1]..ends[i]]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Texts {
    bytes: String,
    ends: Vec<usize>,
}

impl Texts {
    pub fn new() -> Texts {
        Texts::default()
    }

    /// Room for `cells` cells of `bytes` bytes in all.
    pub fn with_capacity(cells: usize, bytes: usize) -> Texts {
        Texts {
            bytes: String::with_capacity(bytes),
            ends: Vec::with_capacity(cells),
        }
    }

    /// The cells of `bytes` ending at each of `ends`. Refused unless the
    /// ends rise, fall on character boundaries and the last is the end of
    /// `bytes` (every byte belongs to a cell).
    pub fn from_parts(bytes: String, ends: Vec<usize>) -> Result<Texts, String> {
        if ends.last().copied().unwrap_or(0) != bytes.len() {
            return Err(format!(
                "string offsets end at {} of {} bytes",
                ends.last().copied().unwrap_or(0),
                bytes.len()
            ));
        }
        let mut start = 0;
        for &end in &ends {
            if end < start || end > bytes.len() || !bytes.is_char_boundary(end) {
                return Err(format!(
                    "string offsets are not rising character boundaries within {} bytes",
                    bytes.len()
                ));
            }
            start = end;
        }
        Ok(Texts { bytes, ends })
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of text in all cells.
    pub fn text_len(&self) -> usize {
        self.bytes.len()
    }

    /// All cells' text, one after the other.
    pub fn as_str(&self) -> &str {
        &self.bytes
    }

    /// Where each cell ends in [`as_str`](Self::as_str).
    pub fn ends(&self) -> &[usize] {
        &self.ends
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] }
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        Some(&self.bytes[self.start(i)..end])
    }

    pub fn push(&mut self, cell: &str) {
        self.bytes.push_str(cell);
        self.ends.push(self.bytes.len());
    }

    /// Every cell of `other` after these.
    pub fn append(&mut self, other: &Texts) {
        let base = self.bytes.len();
        self.bytes.push_str(&other.bytes);
        self.ends.extend(other.ends.iter().map(|end| base + end));
    }

    /// Where cells `start..end` lie in [`as_str`](Self::as_str) (panics
    /// outside `0..=len`, as slicing does).
    pub fn byte_range(&self, start: usize, end: usize) -> std::ops::Range<usize> {
        let from = self.start(start);
        from..self.ends[start..end].last().copied().unwrap_or(from)
    }

    /// Cells `start..end` (panics outside `0..=len`, as slicing does).
    pub fn slice(&self, start: usize, end: usize) -> Texts {
        let bytes = self.byte_range(start, end);
        Texts {
            ends: self.ends[start..end]
                .iter()
                .map(|e| e - bytes.start)
                .collect(),
            bytes: self.bytes[bytes].to_string(),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter {
            bytes: &self.bytes,
            ends: &self.ends,
            start: 0,
        }
    }

    /// Each cell replaced by `f`'s answer for it (given its row and
    /// text); cells it answers `None` for stay as they are, and nothing is
    /// copied when it answers `None` for all.
    pub fn rewrite(&mut self, mut f: impl FnMut(usize, &str) -> Option<String>) {
        let changed: Vec<(usize, String)> = self
            .iter()
            .enumerate()
            .filter_map(|(i, s)| f(i, s).map(|new| (i, new)))
            .collect();
        if changed.is_empty() {
            return;
        }
        let mut out = Texts::with_capacity(self.len(), self.bytes.len());
        let mut changed = changed.into_iter().peekable();
        for (i, cell) in self.iter().enumerate() {
            match changed.next_if(|(at, _)| *at == i) {
                Some((_, new)) => out.push(&new),
                None => out.push(cell),
            }
        }
        *self = out;
    }

    /// The cells as owned strings (one allocation each).
    pub fn to_strings(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl Index<usize> for Texts {
    type Output = str;

    fn index(&self, i: usize) -> &str {
        let end = self.ends[i];
        &self.bytes[self.start(i)..end]
    }
}

impl fmt::Debug for Texts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The cells of [`Texts`], in order.
#[derive(Clone)]
pub struct Iter<'a> {
    bytes: &'a str,
    /// Where each cell not yet visited ends.
    ends: &'a [usize],
    /// Where the next cell from the front starts.
    start: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (&end, rest) = self.ends.split_first()?;
        let cell = &self.bytes[self.start..end];
        self.ends = rest;
        self.start = end;
        Some(cell)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.ends.len(), Some(self.ends.len()))
    }

    /// Constant time (`skip` is how a row range starts).
    fn nth(&mut self, n: usize) -> Option<&'a str> {
        if n >= self.ends.len() {
            self.start = self.ends.last().copied().unwrap_or(self.start);
            self.ends = &[];
            return None;
        }
        if n > 0 {
            self.start = self.ends[n - 1];
            self.ends = &self.ends[n..];
        }
        self.next()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let (&end, rest) = self.ends.split_last()?;
        let from = rest.last().copied().unwrap_or(self.start);
        self.ends = rest;
        Some(&self.bytes[from..end])
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Texts {
    type Item = &'a str;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Texts {
    fn from_iter<I: IntoIterator<Item = S>>(cells: I) -> Texts {
        let mut texts = Texts::new();
        texts.extend(cells);
        texts
    }
}

impl<S: AsRef<str>> Extend<S> for Texts {
    fn extend<I: IntoIterator<Item = S>>(&mut self, cells: I) {
        let cells = cells.into_iter();
        self.ends.reserve(cells.size_hint().0);
        for cell in cells {
            self.push(cell.as_ref());
        }
    }
}

impl From<Vec<String>> for Texts {
    fn from(cells: Vec<String>) -> Texts {
        let bytes = cells.iter().map(String::len).sum();
        let mut texts = Texts::with_capacity(cells.len(), bytes);
        texts.extend(&cells);
        texts
    }
}

impl<const N: usize> From<[&str; N]> for Texts {
    fn from(cells: [&str; N]) -> Texts {
        cells.into_iter().collect()
    }
}

impl PartialEq<[&str]> for Texts {
    fn eq(&self, other: &[&str]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == *b)
    }
}

impl<const N: usize> PartialEq<[&str; N]> for Texts {
    fn eq(&self, other: &[&str; N]) -> bool {
        *self == other[..]
    }
}

// The component model sees a `list<string>`: the type information and the
// lowering are the ones wasmtime has for `[&str]`, given a view of the cells
// (one vector of 16-byte slices, not a copy of the text); a list the kernel
// returns is read straight from its memory into one buffer.

// SAFETY: every item forwards to wasmtime's own implementation for a list of
// strings, whose lowered form and ABI these are.
unsafe impl ComponentType for Texts {
    type Lower = <[String] as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <[String] as ComponentType>::ABI;
    const MAY_REQUIRE_REALLOC: bool = <[String] as ComponentType>::MAY_REQUIRE_REALLOC;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[String] as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: lowers exactly what `[&str]` lowers for the same cells.
unsafe impl Lower for Texts {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        let cells: Vec<&str> = self.iter().collect();
        <[&str] as Lower>::linear_lower_to_flat(&cells, cx, ty, dst)
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        let cells: Vec<&str> = self.iter().collect();
        <[&str] as Lower>::linear_lower_to_memory(&cells, cx, ty, offset)
    }
}

// SAFETY: lifts what wasmtime lifts for a `list<string>` — with the same
// bounds, alignment, UTF-8 and copy-fuel checks — into one buffer instead
// of a `String` per cell; another string encoding than UTF-8 (which no
// kernel built by our SDK uses) takes wasmtime's own path and is packed.
unsafe impl Lift for Texts {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        if cx.options().string_encoding != StringEncoding::Utf8 {
            return Ok(Vec::<String>::linear_lift_from_flat(cx, ty, src)?.into());
        }
        let (list, len) = (src[0].get_u32(), src[1].get_u32());
        lift_utf8(cx, list, len)
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        if cx.options().string_encoding != StringEncoding::Utf8 {
            return Ok(Vec::<String>::linear_lift_from_memory(cx, ty, bytes)?.into());
        }
        match (word(bytes, 0), word(bytes, 4)) {
            (Some(list), Some(len)) => lift_utf8(cx, list, len),
            _ => wasmtime::bail!("a list's pointer and length are cut short"),
        }
    }
}

/// The little-endian `u32` at `at` in `bytes`.
fn word(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(word.try_into().ok()?))
}

fn lift_utf8(cx: &mut LiftContext<'_>, list: u32, len: u32) -> wasmtime::Result<Texts> {
    let memory = cx.memory();
    cells_in_memory(memory, list, len, |bytes| cx.consume_fuel(bytes))
}

/// The `len` strings whose (pointer, length) pairs start at `list` in a
/// guest's `memory`, into one buffer. Checked as wasmtime checks a
/// `list<string>`: the list and every string within memory, the list
/// aligned to 4, every string UTF-8; `fuel` is charged what wasmtime
/// charges (the host-side size of the list, then each string's bytes).
fn cells_in_memory(
    memory: &[u8],
    list: u32,
    len: u32,
    mut fuel: impl FnMut(usize) -> wasmtime::Result<()>,
) -> wasmtime::Result<Texts> {
    let (list, len) = (list as usize, len as usize);
    let pairs = len
        .checked_mul(8)
        .and_then(|bytes| Some(list..list.checked_add(bytes)?))
        .and_then(|range| memory.get(range))
        .ok_or_else(|| wasmtime::format_err!("list pointer/length out of bounds of memory"))?;
    if list % 4 != 0 {
        wasmtime::bail!("list pointer is not aligned");
    }
    fuel(len.saturating_mul(std::mem::size_of::<String>()))?;
    let mut text = Vec::new();
    let mut ends = Vec::with_capacity(len);
    for pair in pairs.chunks_exact(8) {
        let (at, bytes) = (word(pair, 0), word(pair, 4));
        let cell = at
            .zip(bytes)
            .and_then(|(at, bytes)| {
                let at = at as usize;
                memory.get(at..at.checked_add(bytes as usize)?)
            })
            .ok_or_else(|| {
                wasmtime::format_err!("string pointer/length out of bounds of memory")
            })?;
        fuel(cell.len())?;
        text.extend_from_slice(cell);
        ends.push(text.len());
    }
    // One check of the whole buffer, then each cell's ends on character
    // boundaries: together, every cell is UTF-8 on its own.
    let text =
        String::from_utf8(text).map_err(|e| wasmtime::format_err!("a string is not UTF-8: {e}"))?;
    Texts::from_parts(text, ends).map_err(|_| wasmtime::format_err!("a string is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    /// A guest memory with the (pointer, length) pairs of `cells` at 0 and
    /// their bytes after the pairs.
    fn memory_with(cells: &[&[u8]]) -> (Vec<u8>, u32) {
        let mut memory = vec![0; cells.len() * 8];
        for (i, cell) in cells.iter().enumerate() {
            let at = memory.len() as u32;
            memory[i * 8..i * 8 + 4].copy_from_slice(&at.to_le_bytes());
            memory[i * 8 + 4..i * 8 + 8].copy_from_slice(&(cell.len() as u32).to_le_bytes());
            memory.extend_from_slice(cell);
        }
        (memory, cells.len() as u32)
    }

    /// A kernel's `list<string>` is lifted into one buffer with the checks
    /// wasmtime makes: bounds, alignment, UTF-8 (a character split across
    /// two cells too), and the copy fuel it charges.
    #[test]
    fn cells_are_lifted_from_guest_memory_with_wasmtimes_checks() {
        let free = |_: usize| Ok(());
        let (memory, n) = memory_with(&[b"", "é".as_bytes(), b"abc"]);
        assert_eq!(
            cells_in_memory(&memory, 0, n, free).unwrap(),
            ["", "é", "abc"]
        );
        assert_eq!(cells_in_memory(&memory, 0, 0, free).unwrap(), Texts::new());
        let mut charged = Vec::new();
        cells_in_memory(&memory, 0, n, |bytes| {
            charged.push(bytes);
            Ok(())
        })
        .unwrap();
        assert_eq!(charged, [3 * std::mem::size_of::<String>(), 0, 2, 3]);
        assert!(cells_in_memory(&memory, 0, n, |_| wasmtime::bail!("no fuel")).is_err());

        let refused = |memory: &[u8], list: u32, len: u32| {
            cells_in_memory(memory, list, len, free)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(&memory, 0, u32::MAX).contains("out of bounds"));
        assert!(refused(&memory, memory.len() as u32 - 7, 1).contains("out of bounds"));
        assert!(refused(&memory, 2, 1).contains("not aligned"));
        let mut long = memory.clone();
        long[12..16].copy_from_slice(&1000u32.to_le_bytes());
        assert!(refused(&long, 0, n).contains("string pointer/length out of bounds"));
        let mut far = memory.clone();
        far[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(refused(&far, 0, n).contains("out of bounds"));
        let (bad, n) = memory_with(&[b"ok", &[0xff]]);
        assert!(refused(&bad, 0, n).contains("UTF-8"));
        let e = "é".as_bytes();
        let (split, n) = memory_with(&[&e[..1], &e[1..]]);
        assert!(refused(&split, 0, n).contains("UTF-8"));
    }

    fn cells() -> Vec<String> {
        ["", "a", "", "héllo", "日本", "", "z"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Every way in and out keeps each cell, empty ones and multi-byte
    /// characters included.
    #[test]
    fn cells_survive_every_way_in_and_out() {
        let texts = Texts::from(cells());
        assert_eq!(texts.len(), 7);
        assert_eq!(texts.to_strings(), cells());
        assert_eq!(texts.iter().rev().collect::<Vec<_>>().len(), 7);
        assert_eq!(
            texts.iter().rev().map(str::to_string).collect::<Vec<_>>(),
            cells().into_iter().rev().collect::<Vec<_>>()
        );
        assert_eq!(&texts[3], "héllo");
        assert_eq!(texts.get(7), None);
        assert_eq!(texts.iter().nth(3), Some("héllo"));
        assert_eq!(texts.iter().skip(5).collect::<Vec<_>>(), ["", "z"]);
        assert_eq!(texts.iter().nth(9), None);
        let mut both = texts.iter();
        assert_eq!((both.next(), both.next_back()), (Some(""), Some("z")));
        assert_eq!(both.nth(1), Some(""));
        assert_eq!(both.len(), 3);
        assert_eq!(both.rev().collect::<Vec<_>>(), ["", "日本", "héllo"]);
        assert_eq!(texts.iter().collect::<Texts>(), texts);
        for start in 0..=7 {
            for end in start..=7 {
                assert_eq!(texts.slice(start, end).to_strings(), cells()[start..end]);
            }
        }
        let mut twice = texts.slice(0, 4);
        twice.append(&texts.slice(4, 7));
        assert_eq!(twice, texts);
        let rebuilt = Texts::from_parts(texts.as_str().to_string(), texts.ends().to_vec()).unwrap();
        assert_eq!(rebuilt, texts);
        assert!(Texts::from_parts("héllo".into(), vec![2]).is_err());
        assert!(Texts::from_parts("ab".into(), vec![2, 1]).is_err());
        assert!(Texts::from_parts("ab".into(), vec![3]).is_err());
        assert!(Texts::from_parts("abX".into(), vec![2]).is_err());
        assert!(Texts::from_parts("a".into(), vec![]).is_err());
        assert_eq!(
            Texts::from_parts(String::new(), vec![]).unwrap(),
            Texts::new()
        );
        assert_eq!(format!("{:?}", Texts::from(["a", "b"])), r#"["a", "b"]"#);
    }

    #[test]
    fn rewrite_replaces_only_the_cells_it_answers_for() {
        let mut texts = Texts::from(cells());
        texts.rewrite(|_, s| (s == "a" || s == "z").then(|| s.repeat(3)));
        assert_eq!(texts, ["", "aaa", "", "héllo", "日本", "", "zzz"]);
        let before = texts.clone();
        texts.rewrite(|_, _| None);
        assert_eq!(texts, before);
    }
}

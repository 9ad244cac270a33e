//! Strings a kernel wrote, made safe for a terminal or a log line.
//!
//! Kernels are untrusted, and what they declare (`describe`) or return
//! (error messages, panics, log lines, explanations) reaches terminals.
//! Control characters would let a kernel clear the screen, move the cursor
//! or forge lines; bidirectional overrides would reorder what is shown.
//! Everything a kernel says passes through [`printable`] where it enters
//! the host.

use std::borrow::Cow;

/// Whether `c` would act on a terminal instead of showing as itself.
fn acts(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character (newlines included) and every
/// bidirectional override escaped as `\u{..}` (`\n`, `\t`, `\r` as such).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if acts(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Like [`printable`], keeping line breaks (for multi-line text the host
/// itself lays out, such as its own error messages).
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && acts(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.split('\n')
            .map(printable)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// [`printable`], in place.
pub fn make_printable(text: &mut String) {
    if let Cow::Owned(clean) = printable(text) {
        *text = clean;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_acts_on_a_terminal() {
        assert_eq!(printable("plain ü"), "plain ü");
        assert_eq!(printable("\x1b[2J\x1b[Hok"), "\\u{1b}[2J\\u{1b}[Hok");
        assert_eq!(printable("a\nerror: forged"), "a\\nerror: forged");
        assert_eq!(printable("\u{202e}txt.exe"), "\\u{202e}txt.exe");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(printable_lines("one\ntwo\x07"), "one\ntwo\\u{7}");
        let mut s = String::from("x\ry");
        make_printable(&mut s);
        assert_eq!(s, "x\\ry");
    }
}

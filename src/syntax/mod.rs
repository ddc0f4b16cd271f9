//! Text -> `kdl::KdlDocument`. Guarantees: never panics and never overflows the stack on any input.
//! Bytes that are not UTF-8, files over [`MAX_BYTES`], and `{` nesting deeper than [`MAX_DEPTH`]
//! (found by a pre-scan that skips strings and comments, before the recursive KDL parser runs)
//! become diagnostics; KDL parse errors are lifted into diagnostics with their spans.

mod fast;

use kdl::KdlDocument;

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::source::{SourceFile, Span};

/// Largest pipeline file accepted (bytes).
pub const MAX_BYTES: usize = 4 << 20;
/// Deepest `{` nesting accepted. Pipelines use two levels; the kdl parser overflows near 2,000.
pub const MAX_DEPTH: usize = 64;

/// Decode bytes into a [`SourceFile`]. Invalid UTF-8 gives a lossy text (for rendering) and a diagnostic.
pub fn decode(
    path: impl Into<std::path::PathBuf>,
    bytes: &[u8],
    diags: &mut Diagnostics,
) -> SourceFile {
    let path = path.into();
    match std::str::from_utf8(bytes) {
        Ok(s) => SourceFile::new(path, s),
        Err(e) => {
            let at = e.valid_up_to();
            let text = String::from_utf8_lossy(bytes).into_owned();
            diags.push(
                Diagnostic::error(
                    Code::InvalidUtf8,
                    format!("the file is not valid UTF-8 (first bad byte at offset {at})"),
                )
                .label(Span::new(at, 3), "invalid UTF-8 here (shown as �)")
                .help("pipeline files are UTF-8 KDL text; is this the right file?"),
            );
            SourceFile::new(path, text)
        }
    }
}

/// Parse a decoded file. Returns `None` (with diagnostics) when it cannot be parsed.
pub fn parse(file: &SourceFile, diags: &mut Diagnostics) -> Option<KdlDocument> {
    let text = &*file.text;
    if text.len() > MAX_BYTES {
        diags.push(
            Diagnostic::error(
                Code::TooLarge,
                format!(
                    "the file has {} bytes; the limit is {MAX_BYTES}",
                    text.len()
                ),
            )
            .label(Span::new(0, 0), "file starts here")
            .help("a pipeline describes stages; use `sweep` instead of writing out every job"),
        );
        return None;
    }
    if let Some(at) = too_deep(text) {
        diags.push(
            Diagnostic::error(
                Code::TooDeep,
                format!("children blocks nest deeper than {MAX_DEPTH} levels"),
            )
            .label(
                Span::new(at, 1),
                format!("level {} starts here", MAX_DEPTH + 1),
            )
            .help("stages are top-level nodes with one level of options"),
        );
        return None;
    }
    // The common subset goes through the fast parser; anything else (and every error) through
    // `kdl`'s, which stays the authority on the grammar and writes the diagnostics.
    if let Some(doc) = fast::parse(text) {
        return Some(doc);
    }
    // The parser is third-party: a panic in it must not take the checker down.
    let parsed = std::panic::catch_unwind(|| KdlDocument::parse_v2(text));
    match parsed {
        Err(_) => {
            diags.push(
                Diagnostic::error(Code::Kdl, "the KDL parser failed on this file")
                    .label(Span::new(0, 0), "file starts here")
                    .help("this is a bug in the parser; simplify the file around recent edits"),
            );
            None
        }
        Ok(Ok(doc)) => Some(doc),
        Ok(Err(err)) => {
            for d in err.diagnostics {
                let msg = d.message.unwrap_or_else(|| "invalid KDL".to_string());
                let label = d.label.unwrap_or_else(|| "here".to_string());
                let mut diag = Diagnostic::error(Code::Kdl, msg)
                    .label(error_point(file, d.span.into()), label);
                if let Some(h) = d.help {
                    diag = diag.help(h);
                }
                diags.push(diag);
            }
            None
        }
    }
}

/// The parser labels some errors with the span of the whole node; point at its last token instead
/// when it covers several lines.
fn error_point(file: &SourceFile, span: Span) -> Span {
    let s = file.snap(span);
    let text = &file.text[s.start..s.end()];
    if !text.contains('\n') {
        return s;
    }
    let trimmed = text.trim_end();
    let last = trimmed.char_indices().last().map_or(0, |(i, _)| i);
    file.snap(Span::new(s.start + last, 1))
}

/// Byte offset of the first `{` that opens level `MAX_DEPTH + 1`, skipping strings and comments.
fn too_deep(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut level = 1;
                i += 2;
                while i < b.len() && level > 0 {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        level += 1;
                        i += 1;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        level -= 1;
                        i += 1;
                    }
                    i += 1;
                }
                continue;
            }
            b'#' if matches!(b.get(i + 1), Some(b'#') | Some(b'"')) => {
                // raw string: #..#"..."#..#
                let hashes = b[i..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + hashes) == Some(&b'"') {
                    let close: Vec<u8> = std::iter::once(b'"')
                        .chain(std::iter::repeat_n(b'#', hashes))
                        .collect();
                    i += hashes + 1;
                    while i < b.len() && !b[i..].starts_with(&close) {
                        i += 1;
                    }
                    i += close.len();
                    continue;
                }
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> (Option<KdlDocument>, Diagnostics) {
        let mut d = Diagnostics::new();
        let f = decode("t.kdl", s.as_bytes(), &mut d);
        (parse(&f, &mut d), d)
    }

    #[test]
    fn depth_scan_ignores_braces_in_strings_and_comments() {
        let s = format!(
            "a \"{}\" // {}\n/* {} */ b #\"{}\"#",
            "{".repeat(100),
            "{".repeat(100),
            "{".repeat(100),
            "{".repeat(100)
        );
        assert_eq!(too_deep(&s), None);
        let deep = format!("{}{}", "a {".repeat(65), "}".repeat(65));
        assert_eq!(too_deep(&deep), Some(2 + 3 * 64));
    }

    #[test]
    fn ten_thousand_nested_blocks_are_a_diagnostic_not_a_crash() {
        let s = format!("{}{}", "a {".repeat(10_000), "}".repeat(10_000));
        let (doc, d) = parse_str(&s);
        assert!(doc.is_none());
        assert_eq!(d.items()[0].code, Code::TooDeep);
    }

    #[test]
    fn invalid_utf8_and_kdl_errors_have_spans() {
        let mut d = Diagnostics::new();
        let f = decode("t.kdl", b"model \"a\xff\"", &mut d);
        assert_eq!(d.items()[0].code, Code::InvalidUtf8);
        assert_eq!(d.items()[0].span().unwrap().start, 8);
        assert!(f.text.contains('\u{FFFD}'));
        let (doc, d) = parse_str("model \"a\" { rank 8 ");
        assert!(doc.is_none());
        assert!(
            d.items()
                .iter()
                .all(|x| x.code == Code::Kdl && x.span().unwrap().end() <= 19)
        );
    }

    #[test]
    fn a_large_file_is_refused_quickly() {
        let s = "x 1\n".repeat((MAX_BYTES / 4) + 1);
        let (doc, d) = parse_str(&s);
        assert!(doc.is_none());
        assert_eq!(d.items()[0].code, Code::TooLarge);
    }
}

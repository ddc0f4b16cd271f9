//! A fast parser for the subset of KDL 2 that pipelines are written in.
//!
//! `kdl`'s own v2 parser reads about 0.3 MB/s (most of its time goes to building error contexts
//! for alternatives that fail), which made `rora check` of a 1,000-stage file take ~150 ms. This
//! parser handles the common subset in one forward pass and builds the same `KdlDocument` (values,
//! names, type annotations and every span the checker reads). It never reports errors: on anything
//! outside the subset, or anything malformed, it returns `None` and the caller falls back to
//! `kdl`'s parser, which then produces its usual diagnostics. So `kdl` stays the authority on
//! the grammar, and this is only a shortcut for files it would accept anyway.
//!
//! The subset: ASCII outside strings; spaces, tabs, `\n`/`\r\n`/`\r`, `//` comments and `;` as
//! separators; bare identifiers, `"quoted"` strings with the simple escapes (`\" \\ \b \f \n \r
//! \t \s`) and any non-control Unicode; decimal integers and floats (with `_` and exponents);
//! `#true`, `#false`, `#null`; `(type)` annotations on nodes and values; properties `key=value`;
//! children blocks. Outside it (fallback): raw and multi-line strings, `\u{..}` and whitespace
//! escapes, `/-` slashdash, `/* */` comments, line continuations, hex/octal/binary numbers,
//! `#inf`/`#nan`, a BOM, non-ASCII identifiers or whitespace.
//!
//! `tests::agrees_with_kdl_*` compare the two parsers on every pipeline in the repository and on
//! thousands of mutations of them: whenever this returns a document, `kdl` returns the same one.

use kdl::{KdlDocument, KdlEntry, KdlIdentifier, KdlNode, KdlValue};
use miette::SourceSpan;

/// Parse `text`, or `None` when it is outside the subset or not valid KDL.
pub(crate) fn parse(text: &str) -> Option<KdlDocument> {
    let mut p = Parser {
        src: text,
        b: text.as_bytes(),
        i: 0,
    };
    let doc = p.nodes(false)?;
    (p.i == p.b.len()).then_some(doc)
}

struct Parser<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
}

/// A scalar as read: a string (which may be a property key or node name) or another value.
enum Scalar {
    Str(String),
    Other(KdlValue),
}

fn span(start: usize, end: usize) -> SourceSpan {
    SourceSpan::new(start.into(), end - start)
}

/// Bytes that may appear in a bare identifier (ASCII only; non-ASCII is outside the subset).
fn ident_byte(c: u8) -> bool {
    c.is_ascii_graphic() && !b"\\/(){}[];\"#=".contains(&c)
}

/// Code points that are newlines or disallowed literals in KDL 2 (outside the ASCII range).
fn special_non_ascii(c: char) -> bool {
    matches!(c,
        '\u{0085}' | '\u{2028}' | '\u{2029}' | '\u{200E}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    )
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn at(&self, k: usize) -> Option<u8> {
        self.b.get(self.i + k).copied()
    }

    fn comment_next(&self) -> bool {
        self.peek() == Some(b'/') && self.at(1) == Some(b'/')
    }

    fn spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Spaces, newlines and `//` comments.
    fn line_spaces(&mut self) -> Option<()> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.i += 1,
                Some(b'/') if self.at(1) == Some(b'/') => self.comment()?,
                _ => return Some(()),
            }
        }
    }

    /// A `//` comment up to (not including) its newline.
    fn comment(&mut self) -> Option<()> {
        self.i += 2;
        while let Some(c) = self.peek() {
            match c {
                b'\n' | b'\r' => break,
                0x0B | 0x0C => return None,
                0x80.. => {
                    let ch = self.src[self.i..].chars().next()?;
                    if special_non_ascii(ch) {
                        return None;
                    }
                    self.i += ch.len_utf8();
                }
                _ => self.i += 1,
            }
        }
        Some(())
    }

    /// `nodes`: a document or the inside of a children block.
    fn nodes(&mut self, in_children: bool) -> Option<KdlDocument> {
        self.line_spaces()?;
        let start = self.i;
        let mut end = start;
        let mut doc = KdlDocument::new();
        loop {
            match self.peek() {
                None => break,
                Some(b'}') if in_children => break,
                _ => {}
            }
            let node = self.node()?;
            end = self.i;
            doc.nodes_mut().push(node);
            match self.peek() {
                None => break,
                Some(b';' | b'\n') => self.i += 1,
                Some(b'\r') => {
                    self.i += 1;
                    if self.peek() == Some(b'\n') {
                        self.i += 1;
                    }
                }
                Some(b'/') if self.at(1) == Some(b'/') => self.comment()?,
                Some(b'}') if in_children => break,
                _ => return None,
            }
            self.line_spaces()?;
        }
        doc.set_span(span(start, end));
        Some(doc)
    }

    fn node(&mut self) -> Option<KdlNode> {
        let start = self.i;
        let ty = if self.peek() == Some(b'(') {
            let t = self.ty()?;
            self.spaces();
            Some(t)
        } else {
            None
        };
        let name = self.ident()?;
        let mut node = KdlNode::new(name);
        if let Some(t) = ty {
            node.set_ty(t);
        }
        loop {
            let before = self.i;
            self.spaces();
            match self.peek() {
                None | Some(b'\n' | b'\r' | b';' | b'}') => break,
                _ if self.comment_next() => break,
                Some(b'{') => {
                    self.i += 1;
                    let children = self.nodes(true)?;
                    if self.peek() != Some(b'}') {
                        return None;
                    }
                    self.i += 1;
                    node.set_children(children);
                    self.spaces();
                    break;
                }
                _ if self.i == before => return None,
                _ => {
                    let e = self.entry()?;
                    node.push(e);
                }
            }
        }
        node.set_span(span(start, self.i));
        Some(node)
    }

    /// An argument or a property.
    fn entry(&mut self) -> Option<KdlEntry> {
        let start = self.i;
        let mut entry = if self.peek() == Some(b'(') {
            self.typed_value()?
        } else {
            let s = self.i;
            match self.scalar()? {
                Scalar::Str(key) => {
                    let key_end = self.i;
                    self.spaces();
                    if self.peek() == Some(b'=') {
                        self.i += 1;
                        self.spaces();
                        let value = self.typed_value()?;
                        let mut key = KdlIdentifier::from(key);
                        key.set_span(span(s, key_end));
                        let mut e = KdlEntry::new_prop(key, value.value().clone());
                        if let Some(t) = value.ty() {
                            e.set_ty(t.clone());
                        }
                        e
                    } else {
                        self.i = key_end;
                        KdlEntry::new(KdlValue::String(key))
                    }
                }
                Scalar::Other(v) => {
                    if self.peek() == Some(b'=') {
                        return None;
                    }
                    KdlEntry::new(v)
                }
            }
        };
        entry.set_span(span(start, self.i));
        Some(entry)
    }

    /// `(type)? value`, where the value cannot be followed by `=`.
    fn typed_value(&mut self) -> Option<KdlEntry> {
        let ty = if self.peek() == Some(b'(') {
            let t = self.ty()?;
            self.spaces();
            Some(t)
        } else {
            None
        };
        let v = match self.scalar()? {
            Scalar::Str(s) => KdlValue::String(s),
            Scalar::Other(v) => v,
        };
        if self.peek() == Some(b'=') {
            return None;
        }
        let mut e = KdlEntry::new(v);
        if let Some(t) = ty {
            e.set_ty(t);
        }
        Some(e)
    }

    /// `(name)` with no spaces inside.
    fn ty(&mut self) -> Option<KdlIdentifier> {
        self.i += 1;
        let t = self.ident()?;
        if self.peek() != Some(b')') {
            return None;
        }
        self.i += 1;
        Some(t)
    }

    /// A string usable as a name: bare identifier or quoted string, with its span.
    fn ident(&mut self) -> Option<KdlIdentifier> {
        let start = self.i;
        match self.scalar()? {
            Scalar::Str(s) => {
                let mut id = KdlIdentifier::from(s);
                id.set_span(span(start, self.i));
                Some(id)
            }
            Scalar::Other(_) => None,
        }
    }

    /// A value, followed by a value terminator.
    fn scalar(&mut self) -> Option<Scalar> {
        let v = match self.peek()? {
            b'"' => Scalar::Str(self.quoted()?),
            b'#' => {
                let rest = &self.b[self.i + 1..];
                let (v, n) = if rest.starts_with(b"true") {
                    (KdlValue::Bool(true), 4)
                } else if rest.starts_with(b"false") {
                    (KdlValue::Bool(false), 5)
                } else if rest.starts_with(b"null") {
                    (KdlValue::Null, 4)
                } else {
                    return None;
                };
                self.i += 1 + n;
                Scalar::Other(v)
            }
            _ => self.bare()?,
        };
        self.terminator_next().then_some(v)
    }

    /// What may follow a value: the end, a space, a newline, `;`, `=`, `)`, `{`, `}` or `//`.
    fn terminator_next(&self) -> bool {
        match self.peek() {
            None => true,
            Some(b' ' | b'\t' | b'\n' | b'\r' | b';' | b'=' | b')' | b'{' | b'}') => true,
            Some(b'/') => self.at(1) == Some(b'/'),
            _ => false,
        }
    }

    /// A bare identifier or a decimal number.
    fn bare(&mut self) -> Option<Scalar> {
        let start = self.i;
        let run = self.b[start..]
            .iter()
            .take_while(|c| ident_byte(**c))
            .count();
        if run == 0 {
            return None;
        }
        let w = &self.b[start..start + run];
        self.i += run;
        let digit = |k: usize| w.get(k).is_some_and(u8::is_ascii_digit);
        let signed = matches!(w[0], b'+' | b'-');
        if digit(0) || (signed && digit(1)) {
            return number(&self.src[start..start + run]).map(Scalar::Other);
        }
        if (w[0] == b'.' && digit(1)) || (signed && w.get(1) == Some(&b'.') && digit(2)) {
            return None;
        }
        let s = &self.src[start..start + run];
        if matches!(s, "true" | "false" | "null" | "inf" | "-inf" | "nan") {
            return None;
        }
        Some(Scalar::Str(s.to_string()))
    }

    /// A single-line `"..."` string with the simple escapes.
    fn quoted(&mut self) -> Option<String> {
        if self.at(1) == Some(b'"') && self.at(2) == Some(b'"') {
            return None;
        }
        self.i += 1;
        let mut out = String::new();
        let mut run = self.i;
        loop {
            let c = self.peek()?;
            match c {
                b'"' => {
                    out.push_str(&self.src[run..self.i]);
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    out.push_str(&self.src[run..self.i]);
                    let e = match self.at(1)? {
                        b'\\' => '\\',
                        b'"' => '"',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b's' => ' ',
                        _ => return None,
                    };
                    out.push(e);
                    self.i += 2;
                    run = self.i;
                }
                b'\t' => self.i += 1,
                0..0x20 | 0x7F => return None,
                0x80.. => {
                    let ch = self.src[self.i..].chars().next()?;
                    if special_non_ascii(ch) {
                        return None;
                    }
                    self.i += ch.len_utf8();
                }
                _ => self.i += 1,
            }
        }
    }
}

/// `sign? digits ('.' digits)? ([eE] sign? digits)?` with `_` after the first digit of each part.
fn number(s: &str) -> Option<KdlValue> {
    let b = s.as_bytes();
    let mut k = usize::from(matches!(b[0], b'+' | b'-'));
    let digits = |k: &mut usize| -> Option<()> {
        if !b.get(*k)?.is_ascii_digit() {
            return None;
        }
        while b.get(*k).is_some_and(|c| c.is_ascii_digit() || *c == b'_') {
            *k += 1;
        }
        Some(())
    };
    digits(&mut k)?;
    let mut float = false;
    if b.get(k) == Some(&b'.') {
        k += 1;
        digits(&mut k)?;
        float = true;
    }
    if matches!(b.get(k), Some(b'e' | b'E')) {
        k += 1;
        if matches!(b.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        digits(&mut k)?;
        float = true;
    }
    if k != b.len() {
        return None;
    }
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    if float {
        clean.parse::<f64>().ok().map(KdlValue::Float)
    } else {
        let (neg, mag) = match clean.as_bytes()[0] {
            b'-' => (true, &clean[1..]),
            b'+' => (false, &clean[1..]),
            _ => (false, &clean[..]),
        };
        let m = i128::from_str_radix(mag, 10).ok()?;
        Some(KdlValue::Integer(if neg { m.checked_neg()? } else { m }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::fmt::Write;
    use std::path::{Path, PathBuf};

    /// Everything the checker reads from a document, spans included.
    fn dump(doc: &KdlDocument, out: &mut String) {
        let _ = write!(out, "doc{:?}[", doc.span());
        for n in doc.nodes() {
            let _ = write!(out, "node{:?} ", n.span());
            if let Some(t) = n.ty() {
                let _ = write!(out, "ty({:?}{:?}) ", t.value(), t.span());
            }
            let _ = write!(out, "name({:?}{:?}) ", n.name().value(), n.name().span());
            for e in n.entries() {
                let _ = write!(out, "entry{:?} ", e.span());
                if let Some(k) = e.name() {
                    let _ = write!(out, "key({:?}{:?}) ", k.value(), k.span());
                }
                if let Some(t) = e.ty() {
                    let _ = write!(out, "ty({:?}{:?}) ", t.value(), t.span());
                }
                let _ = write!(out, "value({:?}) ", e.value());
            }
            if let Some(c) = n.children() {
                dump(c, out);
            }
        }
        out.push(']');
    }

    fn dumped(doc: &KdlDocument) -> String {
        let mut s = String::new();
        dump(doc, &mut s);
        s
    }

    /// Returns whether the fast path took the text. Panics when it disagrees with `kdl`.
    fn agree(text: &str, what: &str) -> bool {
        let Some(fast) = parse(text) else {
            return false;
        };
        let slow = KdlDocument::parse_v2(text).unwrap_or_else(|e| {
            panic!("fast parser accepted what kdl rejects ({what}): {e:?}\n---\n{text}\n---")
        });
        assert_eq!(
            dumped(&fast),
            dumped(&slow),
            "documents differ ({what})\n---\n{text}\n---"
        );
        true
    }

    fn kdl_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                kdl_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "kdl") {
                out.push(p);
            }
        }
    }

    fn corpus() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for d in ["pipelines", "tests", "examples"] {
            kdl_files(&root.join(d), &mut files);
        }
        files.sort();
        let mut out: Vec<(String, String)> = files
            .iter()
            .filter_map(|p| {
                let t = std::fs::read_to_string(p).ok()?;
                Some((p.display().to_string(), t))
            })
            .collect();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
        for (i, block) in readme.split("```kdl\n").skip(1).enumerate() {
            let body = block.split("```").next().unwrap_or_default();
            out.push((format!("README kdl block {i}"), body.to_string()));
        }
        out.push(("hand-written edge cases".into(), EDGES.to_string()));
        out
    }

    const EDGES: &str = "(t)n \"a b\" k=v k2 = (u)1_000 -5 +3 1.5e-3 2E+2 0.0 #true #false #null x;y\n\
        \"q\\\"\\\\\\n\\t\\s\" k3=\"ü€\" .a -b + - . // c\r\nz{a;b{c}}\r w { }\n\tv 1{\n}\n";

    #[test]
    fn agrees_with_kdl_on_every_pipeline_in_the_repository() {
        let corpus = corpus();
        assert!(corpus.len() > 20, "corpus: {} files", corpus.len());
        let mut taken = 0;
        for (name, text) in &corpus {
            let ok = agree(text, name);
            taken += usize::from(ok);
            if name.contains("pipelines") || name.contains("README") || name.starts_with("hand") {
                assert!(ok, "the fast path must take the shipped file {name}");
            }
        }
        assert!(
            taken * 2 > corpus.len(),
            "fast path took {taken} of {}",
            corpus.len()
        );
    }

    #[test]
    fn agrees_with_kdl_on_mutations() {
        const TOKENS: &[&str] = &[
            " ", "\n", "\r", "\t", "\"", "#", "=", "(", ")", "{", "}", ";", "/", "//", "/-", "/*",
            "*/", "\\", "1", "-", "+", ".", "e", "E", "_", "x", "é", "#true", "#inf", "0x1",
            "\u{2028}", "\u{FEFF}", "\u{85}", "\"\"\"", "*", "true", "\\u{41}", "1.", ".5", "=1",
            "\u{0B}", "\u{7F}", "\u{0}", "#\"r\"#", "[", "]", "a=", "\"k\"=",
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let corpus = corpus();
        let (mut tried, mut taken) = (0, 0);
        for (name, text) in &corpus {
            for m in 0..120 {
                let mut t = text.clone();
                for _ in 0..rng.random_range(1..=3) {
                    let bounds: Vec<usize> =
                        (0..=t.len()).filter(|i| t.is_char_boundary(*i)).collect();
                    let at = bounds[rng.random_range(0..bounds.len())];
                    match rng.random_range(0..3) {
                        0 => {
                            let k = TOKENS[rng.random_range(0..TOKENS.len())];
                            t.insert_str(at, k);
                        }
                        1 => {
                            let end = bounds
                                .iter()
                                .copied()
                                .filter(|b| *b > at)
                                .nth(rng.random_range(0..4));
                            if let Some(end) = end {
                                t.replace_range(at..end, "");
                            }
                        }
                        _ => {
                            let k = TOKENS[rng.random_range(0..TOKENS.len())];
                            let end = bounds.iter().copied().find(|b| *b > at).unwrap_or(at);
                            t.replace_range(at..end, k);
                        }
                    }
                }
                tried += 1;
                taken += usize::from(agree(&t, &format!("{name}, mutation {m}")));
            }
        }
        // Most single edits keep a file valid; the fast path must still be exercised.
        assert!(
            taken * 5 > tried,
            "fast path took {taken} of {tried} mutations"
        );
    }

    #[test]
    fn values_match_kdl() {
        for v in [
            "0",
            "-0",
            "+7",
            "1_000",
            "170141183460469231731687303715884105727",
            "1e3",
            "1.0E-2",
            "-2.5",
            "3_0.1_5e1_0",
            "1__",
        ] {
            assert!(agree(&format!("n {v}\n"), v), "{v}");
        }
        for v in [
            "0x10",
            "1.",
            ".5",
            "1e",
            "1a",
            "170141183460469231731687303715884105728",
        ] {
            assert!(parse(&format!("n {v}\n")).is_none(), "{v}");
        }
    }
}

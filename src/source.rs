//! Source files and byte spans. Every diagnostic points into a [`SourceFile`] through a [`Span`];
//! a span is always inside its file (`start + len <= text.len()`), which renderers rely on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A half-open byte range `[start, start + len)` in the pipeline file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Span {
    pub start: usize,
    pub len: usize,
}

impl Span {
    pub fn new(start: usize, len: usize) -> Self {
        Span { start, len }
    }

    pub fn end(&self) -> usize {
        self.start + self.len
    }

    /// Clamp into a text of `text_len` bytes (defensive: parser spans are trusted but checked).
    pub fn clamp(self, text_len: usize) -> Span {
        let start = self.start.min(text_len);
        let len = self.len.min(text_len - start);
        Span { start, len }
    }
}

impl From<miette::SourceSpan> for Span {
    fn from(s: miette::SourceSpan) -> Self {
        Span::new(s.offset(), s.len())
    }
}

impl From<Span> for miette::SourceSpan {
    fn from(s: Span) -> Self {
        miette::SourceSpan::new(s.start.into(), s.len)
    }
}

/// One pipeline file: its path (as given and as a display name) and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path the file was read from; relative paths in the pipeline resolve against its parent.
    pub path: PathBuf,
    /// Text, or the lossy decoding of the bytes when they were not UTF-8 (for rendering only).
    pub text: Arc<str>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// The directory that relative paths resolve against (`.` for a bare file name).
    pub fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// `rel` resolved against the file's directory (absolute paths stay as they are).
    pub fn resolve(&self, rel: &str) -> PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir().join(p)
        }
    }

    /// `span` clamped into the text and widened to UTF-8 character boundaries.
    pub fn snap(&self, span: Span) -> Span {
        let t = &*self.text;
        let s = span.clamp(t.len());
        let mut start = s.start;
        while !t.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = s.end();
        while !t.is_char_boundary(end) {
            end += 1;
        }
        Span::new(start, end - start)
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text.as_bytes()[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let col = offset
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        (line, col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_to_the_file_and_counts_lines() {
        let f = SourceFile::new("pipelines/x.kdl", "a\nbc\n");
        assert_eq!(f.resolve("../d/e"), PathBuf::from("pipelines/../d/e"));
        assert_eq!(f.resolve("/abs"), PathBuf::from("/abs"));
        assert_eq!(f.line_col(3), (2, 2));
        assert_eq!(SourceFile::new("x.kdl", "").dir(), PathBuf::from("."));
        assert_eq!(Span::new(3, 10).clamp(5), Span::new(3, 2));
    }
}

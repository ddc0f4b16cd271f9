//! Diagnostics: what every pass reports. A [`Diagnostic`] has a stable [`Code`] (`rora::<pass>::<name>`,
//! documented in [`codes`] and printable with `rora explain <code>`), a severity, a message, labelled
//! spans into the pipeline file and a help line. Passes push into a [`Diagnostics`] sink and keep going,
//! so the user sees every problem at once; [`render`] turns them into fancy, plain or JSON text.

pub mod codes;
pub mod render;

pub use codes::{Code, CodeDoc};
pub use render::{Format, render};

use crate::source::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A labelled span; the first label of a diagnostic is its primary location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One problem found in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            labels: vec![],
            help: None,
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The primary span (the first label), if any.
    pub fn span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }
}

/// The sink passes report into. Order is the order of discovery.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.items.len() - self.error_count()
    }

    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Did-you-mean: the closest candidate with Levenshtein distance < 3 (and shorter than the word).
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(d, c)| *d < 3 && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean `x`?" or a list of what is allowed.
pub fn suggest_help(word: &str, candidates: &[&str], what: &str) -> String {
    match suggest(word, candidates.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None if candidates.len() <= 12 => format!("{what}: {}", candidates.join(", ")),
        None => format!("see `rora schema` for the {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(suggest("rnak", ["rank", "alpha"]), Some("rank"));
        assert_eq!(suggest("zzzzzz", ["rank", "alpha"]), None);
        assert_eq!(
            suggest_help("lrr", &["lr", "seed"], "allowed"),
            "did you mean `lr`?"
        );
        assert_eq!(
            suggest_help("qqq", &["lr", "seed"], "allowed"),
            "allowed: lr, seed"
        );
    }

    #[test]
    fn sink_counts_errors_and_warnings() {
        let mut d = Diagnostics::new();
        d.push(Diagnostic::warning(Code::UnusedSweep, "w"));
        assert!(!d.has_errors());
        d.push(Diagnostic::error(Code::Cycle, "e"));
        assert_eq!((d.error_count(), d.warning_count()), (1, 1));
    }
}

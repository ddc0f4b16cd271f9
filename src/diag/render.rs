//! Rendering diagnostics for people and programs: `fancy` (miette, colour, for a terminal), `plain`
//! (the same layout without colour, fixed width 100: what the snapshot tests pin), and `json`
//! (exact byte offsets plus 1-based line/column, one object for the whole file).

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource, Report,
};
use serde::Serialize;

use super::{Diagnostic, Severity};
use crate::source::SourceFile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Colour and unicode, for a terminal.
    Fancy,
    /// No colour, fixed width (logs, tests).
    Plain,
    /// One JSON object.
    Json,
}

/// Render every diagnostic of `file` in `format`, followed (for text formats) by a summary line.
pub fn render(file: &SourceFile, diags: &[Diagnostic], format: Format) -> String {
    match format {
        Format::Json => render_json(file, diags),
        Format::Fancy => render_text(file, diags, GraphicalTheme::unicode()),
        Format::Plain => render_text(file, diags, GraphicalTheme::unicode_nocolor()),
    }
}

fn to_miette(file: &SourceFile, d: &Diagnostic) -> MietteDiagnostic {
    let labels = d.labels.iter().enumerate().map(|(i, l)| {
        let msg = (!l.message.is_empty()).then(|| l.message.clone());
        let span = file.snap(l.span);
        if i == 0 {
            LabeledSpan::new_primary_with_span(msg, span)
        } else {
            LabeledSpan::new_with_span(msg, span)
        }
    });
    let mut md = MietteDiagnostic::new(d.message.clone())
        .with_code(d.code.name())
        .with_severity(match d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
        .with_labels(labels);
    if let Some(h) = &d.help {
        md = md.with_help(h.clone());
    }
    md
}

fn render_text(file: &SourceFile, diags: &[Diagnostic], theme: GraphicalTheme) -> String {
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    let mut out = String::new();
    for d in diags {
        let report = Report::new(to_miette(file, d))
            .with_source_code(NamedSource::new(file.name(), file.text.to_string()));
        let diag: &dyn miette::Diagnostic = &*report;
        if handler.render_report(&mut out, diag).is_err() {
            // A formatter error cannot happen when writing to a String; fall back to the message.
            out.push_str(&format!("{}: {}\n", d.code.name(), d.message));
        }
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    out.push_str(&format!(
        "{}: {errors} error(s), {warnings} warning(s)\n",
        file.name()
    ));
    out
}

#[derive(Serialize)]
struct JsonLabel {
    start: usize,
    len: usize,
    line: usize,
    column: usize,
    message: String,
}

#[derive(Serialize)]
struct JsonDiag<'a> {
    code: &'static str,
    severity: Severity,
    message: &'a str,
    help: Option<&'a str>,
    labels: Vec<JsonLabel>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    file: String,
    errors: usize,
    warnings: usize,
    diagnostics: Vec<JsonDiag<'a>>,
}

fn render_json(file: &SourceFile, diags: &[Diagnostic]) -> String {
    let diagnostics: Vec<_> = diags
        .iter()
        .map(|d| JsonDiag {
            code: d.code.name(),
            severity: d.severity,
            message: &d.message,
            help: d.help.as_deref(),
            labels: d
                .labels
                .iter()
                .map(|l| {
                    let s = file.snap(l.span);
                    let (line, column) = file.line_col(s.start);
                    JsonLabel {
                        start: s.start,
                        len: s.len,
                        line,
                        column,
                        message: l.message.clone(),
                    }
                })
                .collect(),
        })
        .collect();
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let report = JsonReport {
        file: file.name(),
        errors,
        warnings: diags.len() - errors,
        diagnostics,
    };
    // invariant: the report holds only strings, integers and enums, which always serialize.
    serde_json::to_string_pretty(&report).expect("diagnostic JSON serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Code;
    use crate::source::Span;

    #[test]
    fn plain_and_json_show_code_span_and_help() {
        let f = SourceFile::new("x.kdl", "adapter \"a\" { rnak 8 }\n");
        let d = Diagnostic::error(Code::UnknownChild, "unknown option `rnak` of adapter")
            .label(Span::new(14, 4), "not an adapter option")
            .help("did you mean `rank`?");
        let plain = render(&f, std::slice::from_ref(&d), Format::Plain);
        assert!(plain.contains("rora::shape::unknown-child"), "{plain}");
        assert!(plain.contains("did you mean `rank`?"));
        assert!(plain.contains("1 error(s), 0 warning(s)"));
        let json: serde_json::Value =
            serde_json::from_str(&render(&f, &[d], Format::Json)).unwrap();
        assert_eq!(json["diagnostics"][0]["labels"][0]["start"], 14);
        assert_eq!(json["diagnostics"][0]["labels"][0]["column"], 15);
    }
}

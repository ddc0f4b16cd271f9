//! Checking a task file (`task "<name>" { .. }`, the schema in `crate::task::spec`): syntax and
//! shape as for pipelines (same codes, spans), then the task's own rules: paths of `data` exist,
//! `choice-columns` and `choices-column` are not both written, `min-choices <= max-choices`, every
//! template parses, and `extract` is a regex. The result holds the typed [`TaskDef`] when there
//! are no errors.

use std::collections::BTreeMap;
use std::path::Path;

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::ir::StageDecl;
use crate::ir::bind::{Point, bind};
use crate::source::SourceFile;
use crate::task::def::{ChoiceSource, Columns, FewShot, TEMPLATES, TaskDef};
use crate::task::spec::{Metric, PromptStyle, SPEC};
use crate::task::template::{environment, error_text};

/// What checking a task file found.
#[derive(Debug)]
pub struct TaskCheck {
    pub file: SourceFile,
    pub diagnostics: Vec<Diagnostic>,
    pub def: Option<TaskDef>,
}

impl TaskCheck {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Whether `text` looks like a task file (its first node is `task`), for `rora check`.
pub fn is_task_source(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("//"))
        .is_some_and(|l| l.starts_with("task ") || l.starts_with("task\t"))
}

/// Check a task file read from disk.
pub fn check_task_file(path: &Path) -> std::io::Result<TaskCheck> {
    let bytes = std::fs::read(path)?;
    Ok(check_task_bytes(path, &bytes, true))
}

/// Check a task file given as bytes; `path` names it and anchors `data` paths. With
/// `on_disk` false (a built-in task) no `home` directory is recorded.
pub fn check_task_bytes(path: &Path, bytes: &[u8], on_disk: bool) -> TaskCheck {
    let mut diags = Diagnostics::new();
    let file = crate::syntax::decode(path, bytes, &mut diags);
    let def = if diags.has_errors() {
        None
    } else {
        passes(&file, on_disk, &mut diags)
    };
    TaskCheck {
        file,
        diagnostics: diags.into_vec(),
        def,
    }
}

fn passes(file: &SourceFile, on_disk: bool, diags: &mut Diagnostics) -> Option<TaskDef> {
    let doc = crate::syntax::parse(file, diags)?;
    let decl = crate::check::shape::shape_single(file, &doc, &SPEC, diags)?;
    if let Some((_, _, span)) = decl.vars().next() {
        diags.push(
            Diagnostic::error(Code::VarNotAllowed, "a task file takes no variables")
                .label(span, "here")
                .help("write the value; sweep over tasks in the pipeline instead"),
        );
        return None;
    }
    // invariant: no variables (checked above), so binding cannot fail.
    let b = bind(&decl, &SPEC, &Point::new(), &[]).ok()?;
    let dir = file.dir();
    let arg_span = |field: &str| {
        decl.field(field)
            .and_then(|f| f.args.first())
            .map_or(decl.name_span, |a| a.span())
    };
    let mut data = BTreeMap::new();
    if let Some(f) = decl.field("data") {
        for (split, arg) in &f.props {
            let Some(rel) = arg.lit().and_then(|v| v.as_str()) else {
                continue;
            };
            let p = dir.join(rel);
            if on_disk && !p.is_file() {
                diags.push(
                    Diagnostic::error(Code::MissingFile, format!("no file `{rel}`"))
                        .label(arg.span(), format!("looked for {}", p.display()))
                        .help("paths in a task file are relative to the task file"),
                );
            }
            data.insert(split.clone(), p);
        }
    }
    if decl.field("choice-columns").is_some() && decl.field("choices-column").is_some() {
        diags.push(
            Diagnostic::error(
                Code::ConflictingOptions,
                "`choice-columns` and `choices-column` both say where the choices are",
            )
            .label(span_of(&decl, "choice-columns"), "here")
            .label(span_of(&decl, "choices-column"), "and here")
            .help("keep one: a list field (`choices-column`) or one field per choice"),
        );
    }
    let int = |n: &str| b.int(n).unwrap_or_default().max(0) as usize;
    let (min, max) = (int("min-choices"), int("max-choices"));
    if min > max {
        diags.push(
            Diagnostic::error(
                Code::OutOfRange,
                format!("min-choices {min} is more than max-choices {max}"),
            )
            .label(arg_span("min-choices"), "here")
            .help("min-choices must be at most max-choices"),
        );
    }
    let choices = match decl.field("choice-columns") {
        Some(_) => ChoiceSource::Columns(b.strs("choice-columns")),
        None => ChoiceSource::Column(b.str("choices-column").unwrap_or_default().into()),
    };
    if let ChoiceSource::Columns(cs) = &choices
        && (cs.len() < min || cs.len() > max)
    {
        diags.push(
            Diagnostic::error(
                Code::OutOfRange,
                format!(
                    "{} choice columns, but rows must have {min}..={max} choices",
                    cs.len()
                ),
            )
            .label(span_of(&decl, "choice-columns"), "here")
            .help("name as many columns as the task has choices"),
        );
    }
    let s = |n: &str| b.str(n).unwrap_or_default().to_string();
    let env = environment();
    for name in TEMPLATES {
        let src = s(name);
        if let Err(e) = env.template_from_str(&src) {
            diags.push(
                Diagnostic::error(
                    Code::BadTemplate,
                    format!("template `{name}` does not parse: {}", error_text(&e)),
                )
                .label(arg_span(name), "this template")
                .help("minijinja syntax: `{{ question }}`, `{% for c in choices %}..{% endfor %}`"),
            );
        }
    }
    if let Some(p) = b.str("extract")
        && let Err(e) = regex::Regex::new(p)
    {
        diags.push(
            Diagnostic::error(
                Code::BadTemplate,
                format!(
                    "`extract` is not a regex: {}",
                    crate::check::context::first_line(&e.to_string())
                ),
            )
            .label(arg_span("extract"), "this pattern")
            .help("Rust regex syntax; escape `.`, `(`, `[` to match them literally"),
        );
    }
    if diags.has_errors() {
        return None;
    }
    let fewshot = b.first("fewshot").map(|f| FewShot {
        n: f.args.first().and_then(|v| v.as_i64()).unwrap_or(0).max(0) as usize,
        split: prop_str(f, "split"),
        seed: f.props.get("seed").and_then(|v| v.as_i64()).unwrap_or(0) as u64,
        delimiter: prop_str(f, "delimiter"),
    });
    Some(TaskDef {
        name: decl.name.clone(),
        doc: b.str("doc").map(str::to_string),
        lm_eval_name: b.str("lm-eval-name").map(str::to_string),
        data,
        home: on_disk.then_some(dir),
        columns: Columns {
            id: s("id-column"),
            question: s("question-column"),
            choices,
            label: s("label-column"),
        },
        label_base: int("label-base"),
        min_choices: min,
        max_choices: max,
        choice_set: decl.field("choice-set").map(|_| b.strs("choice-set")),
        context: s("context"),
        continuation: s("continuation"),
        delimiter: s("delimiter"),
        instruction: s("instruction"),
        prompt: PromptStyle::from_name(&s("prompt"))?,
        answer: s("answer"),
        extract: b.str("extract").map(str::to_string),
        metric: Metric::from_name(&s("metric"))?,
        fewshot: fewshot.filter(|f| f.n > 0),
    })
}

fn prop_str(f: &crate::ir::bound::BoundField, name: &str) -> String {
    f.props
        .get(name)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn span_of(decl: &StageDecl, field: &str) -> crate::source::Span {
    decl.field(field).map_or(decl.name_span, |f| f.name_span)
}

//! What an eval stage's `tasks` name: a built-in task (`piqa`), a task file (`quiz.kdl`, relative
//! to the pipeline), or any other name, whose rows `<name>.<split>.jsonl[.gz]` in `dir` are read
//! with the built-in `mc` definition. One resolver serves the checker (diagnostics at the name's
//! span, before any compute) and the runner.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::check::task::{TaskCheck, check_task_file};
use crate::eval::task::{Task, TaskKind, commonsense_kind, def_split_file, split_file};
use crate::task::builtin;

/// One entry of `tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskName {
    Builtin(TaskKind),
    /// A task file (absolute path).
    File(PathBuf),
    /// Rows in `dir` under this name, read as `mc`.
    Rows(String),
}

impl TaskName {
    /// Classify a `tasks` entry; `file_dir` anchors task file paths.
    pub fn parse(s: &str, file_dir: &Path) -> TaskName {
        if let Some(k) = commonsense_kind(s) {
            TaskName::Builtin(k)
        } else if s.ends_with(".kdl") {
            TaskName::File(normalize(&file_dir.join(s)))
        } else {
            TaskName::Rows(s.to_string())
        }
    }
}

/// `a/b/../c` -> `a/c`, without touching the file system (for messages and keys alike).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Why a task cannot be resolved.
#[derive(Debug)]
pub enum Unresolved {
    /// A name that is neither built in nor has rows in `dir`.
    Unknown { name: String, tried: String },
    /// A task file that cannot be read.
    Unreadable { path: PathBuf, message: String },
    /// A task file with errors.
    Invalid(Box<TaskCheck>),
    /// A task whose rows are missing.
    NoRows { task: String, message: String },
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unresolved::Unknown { name, tried } => write!(
                f,
                "`{name}` is not a built-in task, a task file (.kdl) or a row file (looked for {tried})"
            ),
            Unresolved::Unreadable { path, message } => {
                write!(f, "cannot read task file {}: {message}", path.display())
            }
            Unresolved::Invalid(c) => write!(
                f,
                "task file {} has errors:\n{}",
                c.file.path.display(),
                task_diagnostics(c)
            ),
            Unresolved::NoRows { task, message } => write!(f, "task `{task}`: {message}"),
        }
    }
}

/// A task file's diagnostics, one line each: `path:line:col: message [code]`.
pub fn task_diagnostics(c: &TaskCheck) -> String {
    c.diagnostics
        .iter()
        .map(|d| {
            let at = d.span().map_or(String::new(), |s| {
                let (l, col) = c.file.line_col(s.start);
                format!(":{l}:{col}")
            });
            let help = d
                .help
                .as_deref()
                .map_or(String::new(), |h| format!(" ({h})"));
            format!(
                "- {}{at}: {}{help} [{}]",
                c.file.path.display(),
                d.message,
                d.code.name()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The task `name` evaluates: its definition and the rows of `split`.
pub fn resolve(name: &TaskName, split: &str, dir: &Path) -> Result<Task, Unresolved> {
    let no_rows = |task: &str| {
        let task = task.to_string();
        move |e: crate::eval::EvalError| Unresolved::NoRows {
            task,
            message: e.to_string(),
        }
    };
    match name {
        TaskName::Builtin(k) => {
            Task::from_def(builtin::def(*k).clone(), *k, split, dir).map_err(no_rows(k.name()))
        }
        TaskName::File(path) => {
            let checked = check_task_file(path).map_err(|e| Unresolved::Unreadable {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let Some(def) = checked.def.clone() else {
                return Err(Unresolved::Invalid(Box::new(checked)));
            };
            let task = def.name.clone();
            Task::from_def(def, TaskKind::Mc, split, dir).map_err(no_rows(&task))
        }
        TaskName::Rows(n) => match split_file(dir, n, split) {
            Ok(path) => {
                let mut task = Task::from_file(&path);
                task.name = n.clone();
                task.def.name = n.clone();
                Ok(task)
            }
            Err(e) => Err(Unresolved::Unknown {
                name: n.clone(),
                tried: match e {
                    crate::eval::EvalError::MissingTaskFile { tried, .. } => tried,
                    other => other.to_string(),
                },
            }),
        },
    }
}

/// The files a task reads, for the stage key: the task file and its rows (eval and few-shot
/// splits). Built-in tasks and row names are covered by the digest of `dir`.
pub fn key_files(name: &TaskName, split: &str, dir: &Path) -> Vec<PathBuf> {
    let TaskName::File(path) = name else {
        return vec![];
    };
    let mut files = vec![path.clone()];
    if let Ok(c) = check_task_file(path)
        && let Some(def) = c.def
    {
        let mut splits = vec![split.to_string()];
        splits.extend(def.fewshot.iter().map(|f| f.split.clone()));
        for s in splits {
            if let Ok(p) = def_split_file(&def, &s, dir) {
                files.push(p);
            }
        }
    }
    files
}

//! Tasks to evaluate: a definition ([`TaskDef`]: a built-in file from `tasks/` or a user's task
//! file) and the row file of the split being evaluated.
//!
//! A row file holds one JSON object a line, plain (`.jsonl`) or gzip (`.jsonl.gz`), read through
//! the definition's columns (`crate::task::rows`): a bad row is an error naming the file, the line
//! and the field. A row file given without a definition takes the built-in task of its name
//! (`boolq.eval.jsonl.gz` -> boolq), or else `mc` (any multiple-choice rows).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{EvalError, Result};
pub use crate::task::McItem;
use crate::task::{RowError, TaskDef, builtin};

/// The built-in task names (`train::data::task::Task`): names, choice counts and answer labels
/// are shared by the data and eval stages. `Mc` is any other multiple-choice file.
pub use crate::train::data::task::Task as TaskKind;

/// A built-in commonsense task by its exact name (`boolq`, `arc-e`, ...); `mc` and aliases are
/// not names a file or a stage can claim for a built-in task.
pub fn commonsense_kind(name: &str) -> Option<TaskKind> {
    TaskKind::COMMONSENSE.into_iter().find(|k| k.name() == name)
}

/// A task to evaluate: its name (column in reports), what it is, and its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub name: String,
    /// The built-in task it is, or `Mc` for a user's file.
    pub kind: TaskKind,
    pub def: TaskDef,
    /// The rows evaluated.
    pub path: PathBuf,
    /// The rows few-shot examples come from (when the definition asks for some).
    #[serde(default)]
    pub fewshot_path: Option<PathBuf>,
}

/// `<dir>/<name>.<split>.jsonl`, else `.jsonl.gz`; the error lists both.
pub fn split_file(dir: &Path, name: &str, split: &str) -> Result<PathBuf> {
    let tried = [
        dir.join(format!("{name}.{split}.jsonl")),
        dir.join(format!("{name}.{split}.jsonl.gz")),
    ];
    match tried.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => Err(EvalError::MissingTaskFile {
            task: name.to_string(),
            tried: tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Where a definition's rows of `split` are: named in its `data`, else `<name>.<split>.jsonl[.gz]`
/// in its home directory (a task file's) or in `dir` (a built-in task).
pub fn def_split_file(def: &TaskDef, split: &str, dir: &Path) -> Result<PathBuf> {
    match def.data.get(split) {
        Some(p) => Ok(p.clone()),
        None => split_file(def.home.as_deref().unwrap_or(dir), &def.name, split),
    }
}

impl Task {
    /// A task from a definition: rows of `split`; built-in definitions find them in `dir`.
    pub fn from_def(def: TaskDef, kind: TaskKind, split: &str, dir: &Path) -> Result<Task> {
        let path = def_split_file(&def, split, dir)?;
        let fewshot_path = match &def.fewshot {
            Some(f) => Some(def_split_file(&def, &f.split, dir)?),
            None => None,
        };
        Ok(Task {
            name: def.name.clone(),
            kind,
            def,
            path,
            fewshot_path,
        })
    }

    /// A built-in task from a directory holding `<name>.eval.jsonl` or `<name>.eval.jsonl.gz`.
    pub fn builtin(kind: TaskKind, dir: &Path) -> Result<Task> {
        Task::from_def(builtin::def(kind).clone(), kind, "eval", dir)
    }

    /// A task from a row file; the built-in task of the file name's first dot-separated part
    /// (`piqa.eval.jsonl` is piqa), else a custom multiple-choice task (`my-quiz.jsonl` is
    /// `my-quiz` with the `mc` definition).
    pub fn from_file(path: &Path) -> Task {
        let file_name = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = file_name.split('.').next().unwrap_or_default().to_string();
        let kind = commonsense_kind(&name).unwrap_or(TaskKind::Mc);
        let mut def = builtin::def(kind).clone();
        def.name = name.clone();
        Task {
            name,
            kind,
            def,
            path: path.to_path_buf(),
            fewshot_path: None,
        }
    }

    /// Read and validate every row.
    pub fn load(&self) -> Result<Vec<McItem>> {
        load_rows(&self.def, &self.path)
    }
}

/// Read a row file through a definition.
pub fn load_rows(def: &TaskDef, path: &Path) -> Result<Vec<McItem>> {
    crate::task::read_rows(def, path).map_err(|e| match e {
        RowError::Io { path, source } => EvalError::Io { path, source },
        RowError::BadRow {
            path,
            line,
            message,
        } => EvalError::BadRow {
            path,
            line,
            message,
        },
        RowError::Empty { path } => EvalError::EmptyTask { path },
    })
}

/// Read a multiple-choice JSONL(.gz) file with the built-in definition of `kind`.
pub fn load_items(path: &Path, kind: TaskKind) -> Result<Vec<McItem>> {
    load_rows(builtin::def(kind), path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn loads_plain_and_gz_and_keeps_id_types() {
        let dir = tempfile::tempdir().unwrap();
        let body = "{\"id\": 3, \"question\": \"q\", \"choices\": [\"a\", \"b\"], \"label\": 1}\n\n\
                    {\"id\": \"x-1\", \"question\": \"r\", \"choices\": [\"c\", \"d\"], \"label\": 0}\n";
        let plain = write(dir.path(), "piqa.eval.jsonl", body);
        let gz = dir.path().join("piqa.eval.jsonl.gz");
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(body.as_bytes()).unwrap();
        enc.finish().unwrap();
        let a = load_items(&plain, TaskKind::Piqa).unwrap();
        let b = load_items(&gz, TaskKind::Piqa).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].id, serde_json::json!(3));
        assert_eq!(a[1].id_text(), "x-1");
        assert_eq!((a[0].line, a[1].line), (1, 3));
    }

    #[test]
    fn bad_rows_name_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "siqa.eval.jsonl",
            "{\"id\": 0, \"question\": \"q\", \"choices\": [\"a\", \"b\", \"c\"], \"label\": 0}\n\
             {\"id\": 1, \"question\": \"q\", \"choices\": [\"a\", \"b\", \"c\"], \"label\": 3}\n",
        );
        let err = load_items(&p, TaskKind::Siqa).unwrap_err().to_string();
        assert!(
            err.contains("siqa.eval.jsonl:2") && err.contains("`label`"),
            "{err}"
        );
        let p = write(dir.path(), "j.jsonl", "{\"id\": 0, \"question\": \"q\"}\n");
        let err = load_items(&p, TaskKind::Mc).unwrap_err().to_string();
        assert!(
            err.contains("j.jsonl:1") && err.contains("choices"),
            "{err}"
        );
        let p = write(
            dir.path(),
            "b.jsonl",
            "{\"id\": 0, \"question\": \"q\", \"choices\": [\"yes\", \"no\"], \"label\": 0}\n",
        );
        let err = load_items(&p, TaskKind::Boolq).unwrap_err().to_string();
        assert!(err.contains("b.jsonl:1") && err.contains("true"), "{err}");
        let p = write(
            dir.path(),
            "q.jsonl",
            "{\"id\": 0, \"qestion\": \"q\", \"choices\": [\"a\", \"b\"], \"label\": 0}\n",
        );
        let err = load_items(&p, TaskKind::Mc).unwrap_err().to_string();
        assert!(err.contains("did you mean `qestion`"), "{err}");
    }

    #[test]
    fn labels_as_letters_text_and_one_based_digits() {
        let dir = tempfile::tempdir().unwrap();
        let mut def = builtin::def(TaskKind::Mc).clone();
        let p = write(
            dir.path(),
            "l.jsonl",
            "{\"question\": \"q\", \"choices\": [\"a\", \"b\", \"c\"], \"label\": \"C\"}\n\
             {\"question\": \"q\", \"choices\": [\"a\", \"b\", \"c\"], \"label\": \"b\"}\n\
             {\"question\": \"q\", \"choices\": [\"a\", \"b\", \"c\"], \"label\": \"1\"}\n",
        );
        let items = load_rows(&def, &p).unwrap();
        let labels: Vec<usize> = items.iter().map(|i| i.label).collect();
        assert_eq!(labels, [2, 1, 1]);
        assert_eq!(
            items[0].id,
            serde_json::json!(1),
            "line number stands in for the id"
        );
        def.label_base = 1;
        let labels: Vec<usize> = load_rows(&def, &p)
            .unwrap()
            .iter()
            .map(|i| i.label)
            .collect();
        assert_eq!(labels, [2, 1, 0]);
    }

    #[test]
    fn task_kind_from_file_name() {
        assert_eq!(
            Task::from_file(Path::new("/x/boolq.eval.jsonl.gz")).kind,
            TaskKind::Boolq
        );
        assert_eq!(
            Task::from_file(Path::new("arc-c.eval.jsonl")).kind,
            TaskKind::ArcC
        );
        let t = Task::from_file(Path::new("my-quiz.jsonl"));
        assert_eq!((t.name.as_str(), t.kind), ("my-quiz", TaskKind::Mc));
        let dir = tempfile::tempdir().unwrap();
        let err = Task::builtin(TaskKind::Obqa, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("obqa.eval.jsonl.gz"), "{err}");
    }
}

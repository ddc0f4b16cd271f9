//! Multiple-choice tasks: the eight commonsense benchmarks and any user file in the same format.
//!
//! A task file holds one JSON object a line, `{"id", "question", "choices": [..], "label": <0-based>}`,
//! plain (`.jsonl`) or gzip (`.jsonl.gz`). Loading guarantees every returned item has at least two
//! choices and a label inside them; a bad row is an error naming the file and the line.
//! The task of a file comes from its name (`boolq.eval.jsonl.gz` -> boolq); any other name is a
//! custom task ([`TaskKind::Mc`]) whose label set follows its number of choices.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{EvalError, Result};

/// What kind of task a file is; decides prompts, label words and the extraction pattern.
/// The one list of tasks is training's (`train::data::task::Task`): names, choice counts and
/// answer labels are shared by the data and eval stages. `Mc` is a user file ("custom" task):
/// "answer1..answerN" labels, "Question: ..\nAnswer:" loglik prompt.
pub use crate::train::data::task::Task as TaskKind;

/// A built-in commonsense task by its exact name (`boolq`, `arc-e`, ...); `mc` and aliases are
/// not names a file or a stage can claim for a built-in task.
pub fn commonsense_kind(name: &str) -> Option<TaskKind> {
    TaskKind::COMMONSENSE.into_iter().find(|k| k.name() == name)
}

/// One multiple-choice item. `id` keeps its JSON type (the files mix numbers and strings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McItem {
    pub id: serde_json::Value,
    pub question: String,
    pub choices: Vec<String>,
    pub label: usize,
}

impl McItem {
    /// The id as text, for messages.
    pub fn id_text(&self) -> String {
        match &self.id {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// A task to evaluate: its name (column in reports), kind and eval file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub name: String,
    pub kind: TaskKind,
    pub path: PathBuf,
}

impl Task {
    /// A built-in task from a directory holding `<name>.eval.jsonl` or `<name>.eval.jsonl.gz`.
    pub fn builtin(kind: TaskKind, dir: &Path) -> Result<Task> {
        let names = [
            format!("{}.eval.jsonl", kind.name()),
            format!("{}.eval.jsonl.gz", kind.name()),
        ];
        let tried: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
        match tried.iter().find(|p| p.is_file()) {
            Some(path) => Ok(Task {
                name: kind.name().to_string(),
                kind,
                path: path.clone(),
            }),
            None => Err(EvalError::MissingTaskFile {
                task: kind.name().to_string(),
                tried: tried
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// A task from any file; the kind comes from the file name's first dot-separated part
    /// (`piqa.eval.jsonl` is piqa, `my-quiz.jsonl` is a custom task named `my-quiz`).
    pub fn from_file(path: &Path) -> Task {
        let file_name = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = file_name.split('.').next().unwrap_or_default().to_string();
        let kind = commonsense_kind(&name).unwrap_or(TaskKind::Mc);
        Task {
            name,
            kind,
            path: path.to_path_buf(),
        }
    }

    /// Read and validate every row.
    pub fn load(&self) -> Result<Vec<McItem>> {
        load_items(&self.path, self.kind)
    }
}

/// Read a multiple-choice JSONL(.gz) file, validating each row for `kind`.
pub fn load_items(path: &Path, kind: TaskKind) -> Result<Vec<McItem>> {
    let file = File::open(path).map_err(|e| EvalError::io(path, e))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut items = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| EvalError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| EvalError::BadRow {
            path: path.to_path_buf(),
            line: line_no,
            message,
        };
        let item: McItem = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        validate(&item, kind).map_err(bad)?;
        items.push(item);
    }
    if items.is_empty() {
        return Err(EvalError::EmptyTask {
            path: path.to_path_buf(),
        });
    }
    Ok(items)
}

fn validate(item: &McItem, kind: TaskKind) -> std::result::Result<(), String> {
    let n = item.choices.len();
    if n < 2 {
        return Err(format!("field `choices`: {n} choice(s), need at least 2"));
    }
    let counts = kind.choice_counts();
    if !counts.contains(&n) {
        return Err(format!(
            "field `choices`: {} expects {}..={} choices, got {n}",
            kind.name(),
            counts.start(),
            counts.end()
        ));
    }
    if item.label >= n {
        return Err(format!(
            "field `label`: {} is out of range for {n} choices",
            item.label
        ));
    }
    if kind == TaskKind::Boolq {
        let lower: Vec<String> = item
            .choices
            .iter()
            .map(|c| c.trim().to_lowercase())
            .collect();
        if lower != ["true", "false"] {
            return Err(format!(
                "field `choices`: boolq expects [\"true\", \"false\"], got {:?}",
                item.choices
            ));
        }
    }
    if kind == TaskKind::Winogrande && !item.question.contains('_') {
        return Err("field `question`: winogrande sentence has no `_` blank".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let p = write(
            dir.path(),
            "w.jsonl",
            "{\"id\": 0, \"question\": \"no blank\", \"choices\": [\"a\", \"b\"], \"label\": 0}\n",
        );
        let err = load_items(&p, TaskKind::Winogrande)
            .unwrap_err()
            .to_string();
        assert!(err.contains("w.jsonl:1") && err.contains("`_`"), "{err}");
        let p = write(dir.path(), "j.jsonl", "{\"id\": 0, \"question\": \"q\"}\n");
        let err = load_items(&p, TaskKind::Mc).unwrap_err().to_string();
        assert!(
            err.contains("j.jsonl:1") && err.contains("choices"),
            "{err}"
        );
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

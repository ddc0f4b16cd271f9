//! Multiple-choice files read whole, for evaluation: every row of a file (JSONL, JSON, Parquet,
//! `.gz`) as a validated [`McRow`], with the file's task (given, or from its name).

use std::path::Path;

use super::error::DataError;
use super::read::for_each_record;
use super::schema::{McRow, Row, RowSchema, parse_row};
use super::task::Task;

/// The task and rows of a multiple-choice file; `task` overrides the one its name gives.
pub fn read_mc_file(path: &Path, task: Option<Task>) -> Result<(Task, Vec<McRow>), DataError> {
    let task =
        task.or_else(|| Task::from_file_name(path))
            .ok_or_else(|| DataError::UnknownTask {
                path: path.to_path_buf(),
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                known: Task::known_names(),
            })?;
    let mut rows = Vec::new();
    for_each_record(path, None, &mut |loc, value| {
        if let Row::MultipleChoice(r) =
            parse_row(value, RowSchema::MultipleChoice, Some(task), path, loc)?
        {
            rows.push(r);
        }
        Ok(())
    })?;
    Ok((task, rows))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn reads_a_shipped_eval_file_with_its_task() {
        let p =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/commonsense/arc-c.eval.jsonl");
        let (task, rows) = read_mc_file(&p, None).unwrap();
        assert_eq!(task, Task::ArcC);
        assert_eq!(rows.len(), 100);
        assert!(
            rows.iter()
                .all(|r| (3..=5).contains(&r.choices.len()) && r.label < r.choices.len())
        );
        let (task, _) = read_mc_file(&p, Some(Task::Mc)).unwrap();
        assert_eq!(task, Task::Mc);
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("quiz.jsonl");
        std::fs::write(
            &q,
            "{\"id\": 1, \"question\": \"q\", \"choices\": [\"a\", \"b\"], \"label\": 1}\n",
        )
        .unwrap();
        let e = read_mc_file(&q, None).unwrap_err().to_string();
        assert!(
            e.contains("quiz.jsonl: cannot tell the task from the file name"),
            "{e}"
        );
        std::fs::write(
            &q,
            "{\"id\": 1, \"question\": \"q\", \"choices\": [\"a\", \"b\"]}\n",
        )
        .unwrap();
        let e = read_mc_file(&q, Some(Task::Mc)).unwrap_err().to_string();
        assert!(
            e.ends_with("quiz.jsonl: line 1: field `label`: missing"),
            "{e}"
        );
    }
}

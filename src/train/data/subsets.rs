//! How the shipped subsets in `datasets/commonsense/` were drawn: for each task and split, `k`
//! line numbers of the source JSONL(.gz) chosen with [`sample_sorted`] (seed 42, one ChaCha stream
//! per task and split), the chosen lines copied verbatim in source order.
//!
//! The test `shipped_subsets_match_their_recipe` re-draws them from the shared assets when those
//! are present (skips with a message otherwise); `RORA_REGEN_DATASETS=1` rewrites them.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use super::error::DataError;
use super::shuffle::sample_sorted;
use super::task::Task;

pub const SEED: u64 = 42;
pub const TRAIN_ROWS: usize = 200;
pub const EVAL_ROWS: usize = 100;

/// The ChaCha stream of a task's split (`eval` = false for train).
pub fn stream(task: Task, eval: bool) -> u64 {
    let t = Task::COMMONSENSE
        .iter()
        .position(|&x| x == task)
        .unwrap_or(Task::COMMONSENSE.len());
    1000 + 2 * t as u64 + u64::from(eval)
}

/// Non-empty lines of a JSONL(.gz) file, verbatim (without the newline).
pub fn read_lines(path: &Path) -> Result<Vec<String>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line.map_err(|e| DataError::io(path, e))?;
        if !line.trim().is_empty() {
            out.push(line);
        }
    }
    Ok(out)
}

/// The subset of `src`'s lines for `task`'s split, as the text of the shipped file.
pub fn draw(src: &Path, task: Task, eval: bool, k: usize) -> Result<String, DataError> {
    let lines = read_lines(src)?;
    let keep = sample_sorted(lines.len(), k, SEED, stream(task, eval));
    let mut out = String::new();
    for i in keep {
        out.push_str(&lines[i]);
        out.push('\n');
    }
    Ok(out)
}

/// Writes every task's train and eval subsets from `assets` (holding `<task>.{train,eval}.jsonl.gz`)
/// into `out_dir` as `<task>.{train,eval}.jsonl`.
pub fn write_all(assets: &Path, out_dir: &Path) -> Result<(), DataError> {
    std::fs::create_dir_all(out_dir).map_err(|e| DataError::io(out_dir, e))?;
    for task in Task::COMMONSENSE {
        for (split, eval, k) in [("train", false, TRAIN_ROWS), ("eval", true, EVAL_ROWS)] {
            let text = draw(
                &assets.join(format!("{task}.{split}.jsonl.gz")),
                task,
                eval,
                k,
            )?;
            let dst = out_dir.join(format!("{task}.{split}.jsonl"));
            let mut f = std::fs::File::create(&dst).map_err(|e| DataError::io(&dst, e))?;
            f.write_all(text.as_bytes())
                .map_err(|e| DataError::io(&dst, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::read::read_records;
    use super::super::schema::{Row, RowSchema, parse_row};
    use super::*;

    fn manifest_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn shared_dir() -> PathBuf {
        std::env::var_os("RORA_SHARED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest_dir().join("../shared"))
    }

    #[test]
    fn shipped_subsets_match_their_recipe() {
        let assets = shared_dir().join("assets/commonsense");
        let shipped = manifest_dir().join("datasets/commonsense");
        if !assets.join("boolq.train.jsonl.gz").exists() {
            eprintln!(
                "SKIP shipped_subsets_match_their_recipe: {} not found (set RORA_SHARED_DIR)",
                assets.display()
            );
            return;
        }
        if std::env::var_os("RORA_REGEN_DATASETS").is_some() {
            write_all(&assets, &shipped).unwrap();
        }
        let tmp = tempfile::tempdir().unwrap();
        write_all(&assets, tmp.path()).unwrap();
        for task in Task::COMMONSENSE {
            for split in ["train", "eval"] {
                let name = format!("{task}.{split}.jsonl");
                let want = std::fs::read_to_string(tmp.path().join(&name)).unwrap();
                let have = std::fs::read_to_string(shipped.join(&name)).unwrap_or_default();
                assert!(
                    want == have,
                    "datasets/commonsense/{name} differs from its recipe (RORA_REGEN_DATASETS=1 rewrites)"
                );
            }
        }
    }

    #[test]
    fn shipped_subsets_parse_with_their_task() {
        let dir = manifest_dir().join("datasets/commonsense");
        for task in Task::COMMONSENSE {
            for (split, k) in [("train", TRAIN_ROWS), ("eval", EVAL_ROWS)] {
                let path = dir.join(format!("{task}.{split}.jsonl"));
                let records = read_records(&path).unwrap();
                assert_eq!(records.len(), k, "{}", path.display());
                for (loc, v) in records {
                    let row = parse_row(
                        v,
                        RowSchema::MultipleChoice,
                        Task::from_file_name(&path),
                        &path,
                        loc,
                    )
                    .unwrap();
                    assert!(matches!(row, Row::MultipleChoice(_)));
                }
            }
        }
    }
}

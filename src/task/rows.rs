//! A task's rows: JSON lines (plain or gzip) read through the task's column mapping into
//! [`McItem`]s. Guarantees: every item has a question string, between `min-choices` and
//! `max-choices` choice strings (exactly the `choice-set`, if the task names one) and a label
//! inside them; a bad row is an error naming the file, the line and the field.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::def::{ChoiceSource, TaskDef};

/// One multiple-choice item. `id` keeps its JSON type (the files mix numbers and strings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McItem {
    pub id: serde_json::Value,
    pub question: String,
    pub choices: Vec<String>,
    /// 0-based index of the gold choice.
    pub label: usize,
    /// The whole JSON row (templates see it as `row`); not stored.
    #[serde(skip)]
    pub row: Value,
    /// 1-based line in its file (0 when the item was not read from a file).
    #[serde(skip)]
    pub line: usize,
}

impl McItem {
    /// An item not read from a file (tests, built-in prompts for training rows).
    pub fn new(id: Value, question: &str, choices: &[String], label: usize) -> McItem {
        McItem {
            id,
            question: question.to_string(),
            choices: choices.to_vec(),
            label,
            row: Value::Null,
            line: 0,
        }
    }

    /// The id as text, for messages.
    pub fn id_text(&self) -> String {
        match &self.id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// Why rows could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    BadRow {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{} has no rows", path.display())]
    Empty { path: PathBuf },
}

/// Read every row of `path` through `def`'s columns.
pub fn read_rows(def: &TaskDef, path: &Path) -> Result<Vec<McItem>, RowError> {
    let io = |e| RowError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(io)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut items = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let item = parse_row(def, &line, line_no).map_err(|message| RowError::BadRow {
            path: path.to_path_buf(),
            line: line_no,
            message,
        })?;
        items.push(item);
    }
    if items.is_empty() {
        return Err(RowError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(items)
}

fn string_field(row: &serde_json::Map<String, Value>, col: &str) -> Result<String, String> {
    match row.get(col) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "field `{col}`: expected a string, found {}",
            json_type(other)
        )),
        None => Err(missing(row, col)),
    }
}

fn missing(row: &serde_json::Map<String, Value>, col: &str) -> String {
    let names: Vec<&str> = row.keys().map(String::as_str).collect();
    let hint = match crate::diag::suggest(col, names.iter().copied()) {
        Some(s) => format!("; did you mean `{s}`?"),
        None => format!("; the row has {}", names.join(", ")),
    };
    format!("no field `{col}`{hint}")
}

/// What kind of JSON value `v` is, for messages ("a string", "an array", ...); the data stage's
/// row parser uses it too.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One row; the error names the field.
pub fn parse_row(def: &TaskDef, line: &str, line_no: usize) -> Result<McItem, String> {
    let row: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(obj) = &row else {
        return Err(format!("expected a JSON object, found {}", json_type(&row)));
    };
    let c = &def.columns;
    let question = string_field(obj, &c.question)?;
    let choices: Vec<String> = match &c.choices {
        ChoiceSource::Column(col) => match obj.get(col) {
            Some(Value::Array(xs)) => xs
                .iter()
                .enumerate()
                .map(|(i, x)| match x {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(format!(
                        "field `{col}`: choice {i} is {}, not a string",
                        json_type(other)
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(format!(
                    "field `{col}`: expected a list of choices, found {}",
                    json_type(other)
                ));
            }
            None => return Err(missing(obj, col)),
        },
        ChoiceSource::Columns(cols) => cols
            .iter()
            .map(|col| string_field(obj, col))
            .collect::<Result<_, _>>()?,
    };
    let n = choices.len();
    if n < def.min_choices || n > def.max_choices {
        let want = if def.min_choices == def.max_choices {
            format!("{}", def.min_choices)
        } else {
            format!("{}..={}", def.min_choices, def.max_choices)
        };
        return Err(format!(
            "field `{}`: {} expects {want} choices, found {n}",
            c.choices.describe(),
            def.name
        ));
    }
    if let Some(set) = &def.choice_set {
        let norm = |s: &str| s.trim().to_lowercase();
        if choices
            .iter()
            .map(|s| norm(s))
            .ne(set.iter().map(|s| norm(s)))
        {
            return Err(format!(
                "field `{}`: {} expects {set:?}, found {choices:?}",
                c.choices.describe(),
                def.name
            ));
        }
    }
    let label = parse_label(obj.get(&c.label), &choices, def.label_base)
        .map_err(|m| format!("field `{}`: {m}", c.label))?;
    let id = obj
        .get(&c.id)
        .cloned()
        .unwrap_or_else(|| Value::from(line_no));
    Ok(McItem {
        id,
        question,
        choices,
        label,
        line: line_no,
        row,
    })
}

/// A label as an index: an integer counted from `base`, a string of digits likewise, a letter
/// A-Z, or the exact text of a choice.
fn parse_label(v: Option<&Value>, choices: &[String], base: usize) -> Result<usize, String> {
    let n = choices.len();
    let from_int = |i: i64| -> Result<usize, String> {
        let idx = i - base as i64;
        if idx < 0 || idx as usize >= n {
            Err(format!(
                "{i} is out of range for {n} choices (labels count from {base})"
            ))
        } else {
            Ok(idx as usize)
        }
    };
    match v {
        None => Err("missing".into()),
        Some(Value::Number(x)) => match x.as_i64() {
            Some(i) => from_int(i),
            None => Err(format!("{x} is not an integer")),
        },
        Some(Value::String(s)) => {
            if let Ok(i) = s.trim().parse::<i64>() {
                return from_int(i);
            }
            if let Some(i) = choices.iter().position(|c| c == s) {
                return Ok(i);
            }
            let b = s.trim().as_bytes();
            if b.len() == 1 && b[0].is_ascii_uppercase() {
                let i = (b[0] - b'A') as usize;
                return if i < n {
                    Ok(i)
                } else {
                    Err(format!("letter {s} is out of range for {n} choices"))
                };
            }
            Err(format!(
                "{s:?} is not an index, a letter A-Z or the text of a choice"
            ))
        }
        Some(other) => Err(format!(
            "expected an index, a letter or a choice, found {}",
            json_type(other)
        )),
    }
}

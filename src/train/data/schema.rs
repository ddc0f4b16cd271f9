//! Row schemas: a JSON object (from any reader) becomes a typed row, or an error naming the
//! file, the line/row and the field.
//!
//! - multiple choice: `id` (string or number), `question`, `choices` (list of strings), `label`
//!   (0-based index), as in the shipped commonsense files;
//! - instruction: `instruction`, `input` (optional, default empty), `output`, `answer` (optional),
//!   as LLM-Adapters' `commonsense_170k.json`;
//! - text: `text`, for the `raw` template.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{DataError, Location};
use super::task::Task;
use crate::task::rows::json_type;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McRow {
    pub id: String,
    pub question: String,
    pub choices: Vec<String>,
    /// 0-based index into `choices`.
    pub label: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstructionRow {
    pub instruction: String,
    pub input: String,
    pub output: String,
    pub answer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    MultipleChoice(McRow),
    Instruction(InstructionRow),
    Text(String),
}

/// Which schema rows must follow; `Auto` decides per row from its fields (`choices` ->
/// multiple choice, `instruction` -> instruction, `text` -> text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowSchema {
    #[default]
    Auto,
    MultipleChoice,
    Instruction,
    Text,
}

/// Parses one record. `task` (for multiple-choice rows) checks the number of choices and the label.
pub fn parse_row(
    value: Value,
    schema: RowSchema,
    task: Option<Task>,
    path: &Path,
    location: Location,
) -> Result<Row, DataError> {
    let err = |field: &str, message: String| DataError::Field {
        path: path.to_path_buf(),
        location,
        field: field.to_string(),
        message,
    };
    let Value::Object(obj) = value else {
        return Err(err(
            "<row>",
            format!("expected a JSON object, found {}", json_type(&value)),
        ));
    };
    let schema = match schema {
        RowSchema::Auto if obj.contains_key("choices") => RowSchema::MultipleChoice,
        RowSchema::Auto if obj.contains_key("instruction") => RowSchema::Instruction,
        RowSchema::Auto if obj.contains_key("text") => RowSchema::Text,
        RowSchema::Auto => {
            return Err(err(
                "<row>",
                "no `choices` (multiple choice), `instruction` (instruction) or `text` field"
                    .into(),
            ));
        }
        s => s,
    };
    match schema {
        RowSchema::MultipleChoice => {
            let row = McRow {
                id: id_field(&obj).map_err(|m| err("id", m))?,
                question: string_field(&obj, "question").map_err(|m| err("question", m))?,
                choices: choices_field(&obj).map_err(|m| err("choices", m))?,
                label: label_field(&obj).map_err(|m| err("label", m))?,
            };
            if row.label >= row.choices.len() {
                return Err(err(
                    "label",
                    format!(
                        "{} is out of range for {} choices",
                        row.label,
                        row.choices.len()
                    ),
                ));
            }
            if let Some(task) = task {
                let counts = super::task::choice_counts(task);
                if !counts.contains(&row.choices.len()) {
                    return Err(err(
                        "choices",
                        format!(
                            "task {task} expects {}..={} choices, found {}",
                            counts.start(),
                            counts.end(),
                            row.choices.len()
                        ),
                    ));
                }
            }
            Ok(Row::MultipleChoice(row))
        }
        RowSchema::Instruction => Ok(Row::Instruction(InstructionRow {
            instruction: string_field(&obj, "instruction").map_err(|m| err("instruction", m))?,
            input: optional_string(&obj, "input")
                .map_err(|m| err("input", m))?
                .unwrap_or_default(),
            output: string_field(&obj, "output").map_err(|m| err("output", m))?,
            answer: optional_string(&obj, "answer").map_err(|m| err("answer", m))?,
        })),
        RowSchema::Text | RowSchema::Auto => Ok(Row::Text(
            string_field(&obj, "text").map_err(|m| err("text", m))?,
        )),
    }
}

fn string_field(obj: &Map<String, Value>, name: &str) -> Result<String, String> {
    optional_string(obj, name)?.ok_or_else(|| "missing".to_string())
}

fn optional_string(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("expected a string, found {}", json_type(v))),
    }
}

fn id_field(obj: &Map<String, Value>) -> Result<String, String> {
    match obj.get("id") {
        None | Some(Value::Null) => Err("missing".into()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(v) => Err(format!(
            "expected a string or a number, found {}",
            json_type(v)
        )),
    }
}

fn choices_field(obj: &Map<String, Value>) -> Result<Vec<String>, String> {
    let Some(v) = obj.get("choices") else {
        return Err("missing".into());
    };
    let Value::Array(items) = v else {
        return Err(format!(
            "expected a list of strings, found {}",
            json_type(v)
        ));
    };
    if items.len() < 2 {
        return Err(format!(
            "expected at least 2 choices, found {}",
            items.len()
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, c)| match c {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!(
                "element {i}: expected a string, found {}",
                json_type(other)
            )),
        })
        .collect()
}

fn label_field(obj: &Map<String, Value>) -> Result<usize, String> {
    match obj.get("label") {
        None | Some(Value::Null) => Err("missing".into()),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|u| u as usize)
            .ok_or_else(|| format!("expected a non-negative integer, found {n}")),
        // Some exports write the label as a digit string ("1").
        Some(Value::String(s)) => s
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("expected an integer, found {s:?}")),
        Some(v) => Err(format!("expected an integer, found {}", json_type(v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value, task: Option<Task>) -> Result<Row, DataError> {
        parse_row(
            v,
            RowSchema::Auto,
            task,
            Path::new("f.jsonl"),
            Location::Line(7),
        )
    }

    #[test]
    fn parses_both_schemas() {
        let r = parse(
            json!({"id": 3, "question": "q", "choices": ["a", "b"], "label": 1}),
            None,
        )
        .unwrap();
        assert_eq!(
            r,
            Row::MultipleChoice(McRow {
                id: "3".into(),
                question: "q".into(),
                choices: vec!["a".into(), "b".into()],
                label: 1
            })
        );
        let r = parse(
            json!({"instruction": "i", "output": "o", "answer": "true"}),
            None,
        )
        .unwrap();
        assert_eq!(
            r,
            Row::Instruction(InstructionRow {
                instruction: "i".into(),
                input: String::new(),
                output: "o".into(),
                answer: Some("true".into())
            })
        );
    }

    #[test]
    fn bad_rows_name_file_line_and_field() {
        let e = parse(
            json!({"id": 1, "question": "q", "choices": ["a", "b"], "label": "x"}),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.jsonl: line 7: field `label`: expected an integer, found \"x\""
        );
        let e = parse(
            json!({"id": 1, "question": 5, "choices": ["a", "b"], "label": 0}),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.jsonl: line 7: field `question`: expected a string, found a number"
        );
        let e = parse(
            json!({"id": 1, "question": "q", "choices": ["a", "b"], "label": 2}),
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("field `label`: 2 is out of range for 2 choices"),
            "{e}"
        );
        let e = parse(
            json!({"id": 1, "question": "q", "choices": ["a", "b"], "label": 0}),
            Some(Task::Siqa),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("field `choices`: task siqa expects 3..=3 choices, found 2"),
            "{e}"
        );
        let e = parse(json!({"instruction": "i"}), None).unwrap_err();
        assert!(e.to_string().contains("field `output`: missing"), "{e}");
        let e = parse(json!([1, 2]), None).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected a JSON object, found an array"),
            "{e}"
        );
    }
}

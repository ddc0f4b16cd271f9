//! Row schemas: a JSON object (from any reader) becomes a typed row, or an error naming the
//! file, the line/row and the field.
//!
//! - multiple choice: `id` (string or number), `question`, `choices` (list of strings), `label`
//!   (0-based index), as in the shipped commonsense files;
//! - instruction: `instruction`, `input` (optional, default empty), `output`, `answer` (optional),
//!   as LLM-Adapters' `commonsense_170k.json`;
//! - text: `text`, for the `raw` template;
//! - chat: `messages` (a list of `role` / `content` maps, as transformers' `apply_chat_template`
//!   takes them) or ShareGPT's `conversations` (`from` / `value`); roles `human`/`user` -> `user`,
//!   `gpt`/`assistant` -> `assistant`, `system`, `tool` (the mapping of axolotl, torchtune and
//!   Unsloth; any other role is an error). A row-level `system` string becomes a first system turn
//!   when the conversation has none. Contents stay byte for byte; a message's other keys
//!   (`tool_calls`, `reasoning_content`, ...) are passed on to the template.

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

/// One message of a conversation: its role (`system`, `user`, `assistant` or `tool`), its
/// content, and any other keys it had (without ShareGPT's `from` / `value`), in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    MultipleChoice(McRow),
    Instruction(InstructionRow),
    Text(String),
    Chat(Vec<Message>),
}

/// Which schema rows must follow; `Auto` decides per row from its fields (`choices` ->
/// multiple choice, `instruction` -> instruction, `text` -> text, `messages` or `conversations`
/// -> chat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowSchema {
    #[default]
    Auto,
    MultipleChoice,
    Instruction,
    Text,
    Chat,
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
        RowSchema::Auto if obj.contains_key("messages") || obj.contains_key("conversations") => {
            RowSchema::Chat
        }
        RowSchema::Auto => {
            return Err(err(
                "<row>",
                "no `choices` (multiple choice), `instruction` (instruction), `text` (text) or `messages` / `conversations` (chat) field"
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
        RowSchema::Chat => chat_row(&obj).map(Row::Chat).map_err(|(f, m)| err(&f, m)),
        RowSchema::Text | RowSchema::Auto => Ok(Row::Text(
            string_field(&obj, "text").map_err(|m| err("text", m))?,
        )),
    }
}

/// The conversation of a chat row; errors name the field (`messages[2].role`).
fn chat_row(obj: &Map<String, Value>) -> Result<Vec<Message>, (String, String)> {
    let (field, list) = match (obj.get("messages"), obj.get("conversations")) {
        (Some(_), Some(_)) => {
            return Err((
                "messages".into(),
                "a row has either `messages` or `conversations`, not both".into(),
            ));
        }
        (Some(v), None) => ("messages", v),
        (None, Some(v)) => ("conversations", v),
        (None, None) => return Err(("messages".into(), "missing".into())),
    };
    let Value::Array(items) = list else {
        return Err((
            field.into(),
            format!("expected a list of messages, found {}", json_type(list)),
        ));
    };
    if items.is_empty() {
        return Err((field.into(), "the conversation is empty".into()));
    }
    let mut out = Vec::with_capacity(items.len() + 1);
    if let Some(system) = optional_string(obj, "system").map_err(|m| ("system".to_string(), m))?
        && !items.first().is_some_and(|m| {
            ["role", "from"]
                .iter()
                .any(|k| m.get(k).and_then(Value::as_str) == Some("system"))
        })
    {
        out.push(Message {
            role: "system".into(),
            content: system,
            extra: Map::new(),
        });
    }
    for (i, item) in items.iter().enumerate() {
        let at = |key: &str| format!("{field}[{i}].{key}");
        let Value::Object(m) = item else {
            return Err((
                format!("{field}[{i}]"),
                format!("expected a message map, found {}", json_type(item)),
            ));
        };
        let role_key = if m.contains_key("role") {
            "role"
        } else {
            "from"
        };
        let content_key = if m.contains_key("content") {
            "content"
        } else {
            "value"
        };
        let role = string_field(m, role_key).map_err(|e| (at(role_key), e))?;
        let role = match role.as_str() {
            "user" | "human" => "user",
            "assistant" | "gpt" => "assistant",
            "system" => "system",
            "tool" => "tool",
            other => {
                return Err((
                    at(role_key),
                    format!(
                        "unknown role {other:?} (user or human, assistant or gpt, system, tool)"
                    ),
                ));
            }
        };
        let content = match m.get(content_key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(_)) => {
                return Err((
                    at(content_key),
                    "list (multimodal) content is not supported: expected a string".into(),
                ));
            }
            _ => string_field(m, content_key).map_err(|e| (at(content_key), e))?,
        };
        let extra = m
            .iter()
            .filter(|(k, _)| !["role", "from", "content", "value"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.push(Message {
            role: role.into(),
            content,
            extra,
        });
    }
    Ok(out)
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

    #[test]
    fn chat_rows_and_their_errors() {
        let r = parse(
            json!({"system": "S", "conversations": [
                {"from": "human", "value": " a "}, {"from": "gpt", "value": "b", "weight": 0}]}),
            None,
        )
        .unwrap();
        let Row::Chat(m) = r else { panic!("{r:?}") };
        let roles: Vec<&str> = m.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant"]);
        assert_eq!(m[1].content, " a ");
        assert_eq!(m[2].extra.get("weight"), Some(&json!(0)));
        // a row-level system field does not double a system turn
        let r = parse(
            json!({"system": "S", "messages": [
                {"role": "system", "content": "T"}, {"role": "user", "content": "u"}]}),
            None,
        )
        .unwrap();
        let Row::Chat(m) = r else { panic!("{r:?}") };
        assert_eq!((m.len(), m[0].content.as_str()), (2, "T"));
        for (row, want) in [
            (
                json!({"messages": [{"role": "bot", "content": "x"}]}),
                "field `messages[0].role`: unknown role \"bot\"",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]}),
                "field `messages[0].content`: list (multimodal) content",
            ),
            (
                json!({"conversations": [{"from": "human"}]}),
                "field `conversations[0].value`: missing",
            ),
            (json!({"messages": []}), "the conversation is empty"),
            (
                json!({"messages": [], "conversations": []}),
                "either `messages` or `conversations`",
            ),
            (json!({"messages": "hi"}), "expected a list of messages"),
            (
                json!({"messages": [3]}),
                "field `messages[0]`: expected a message map",
            ),
        ] {
            let e = parse(row, None).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(e.starts_with("f.jsonl: line 7: "), "{e}");
        }
    }
}

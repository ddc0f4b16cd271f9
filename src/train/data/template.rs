//! Templates turn a row into a prompt and a completion; the training text is `prompt +
//! completion`, and with `train_on_inputs` off the prompt's tokens carry no loss.
//!
//! - `llm-adapters`: LLM-Adapters' train prompt byte for byte ([`super::prompts`]); multiple-choice
//!   rows become instruction rows with the per-task instruction and `the correct answer is {label}`.
//! - `alpaca`: the Stanford Alpaca prompts (with / without input); as in Stanford's `train.py`, the
//!   completion follows `### Response:` directly, with no separator.
//! - `chatml`: `<|im_start|>user\n{instruction}[\n\n{input}]<|im_end|>\n<|im_start|>assistant\n`
//!   then `{output}<|im_end|>`, with an optional system turn first. Model chat templates (Jinja)
//!   are not interpreted: ChatML is used and [`is_chatml`] tells whether a model's template is
//!   ChatML-shaped.
//! - `raw`: text rows train on their whole `text`; instruction rows on `instruction`, `input`
//!   (each followed by a newline when non-empty) as prompt and `output` as completion.

use serde::{Deserialize, Serialize};

use super::prompts::{
    llm_adapters_instruction, llm_adapters_row_output, llm_adapters_train_prompt,
};
use super::schema::{InstructionRow, Row};
use super::task::{Task, answer_label};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Template {
    LlmAdapters,
    Alpaca,
    Chatml { system: Option<String> },
    Raw,
}

impl Template {
    pub fn name(&self) -> &'static str {
        match self {
            Template::LlmAdapters => "llm-adapters",
            Template::Alpaca => "alpaca",
            Template::Chatml { .. } => "chatml",
            Template::Raw => "raw",
        }
    }

    /// `llm-adapters`, `alpaca`, `chatml` (no system turn), `raw`.
    pub fn parse(name: &str) -> Option<Template> {
        Some(match name {
            "llm-adapters" => Template::LlmAdapters,
            "alpaca" => Template::Alpaca,
            "chatml" => Template::Chatml { system: None },
            "raw" => Template::Raw,
            _ => return None,
        })
    }

    pub const NAMES: [&'static str; 4] = ["llm-adapters", "alpaca", "chatml", "raw"];
}

/// A rendered row: the model is trained on `prompt + completion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub prompt: String,
    pub completion: String,
}

impl Rendered {
    pub fn full(&self) -> String {
        format!("{}{}", self.prompt, self.completion)
    }
}

/// The instruction row LLM-Adapters' commonsense_170k holds for a multiple-choice row.
pub fn mc_to_instruction(task: Task, row: &super::schema::McRow) -> Result<InstructionRow, String> {
    let output = llm_adapters_row_output(task, row)
        .ok_or_else(|| format!("label {} has no answer label for task {task}", row.label))?;
    Ok(InstructionRow {
        instruction: llm_adapters_instruction(task, row),
        input: String::new(),
        output,
        answer: answer_label(task, row.label),
    })
}

/// Renders `row`; multiple-choice rows need their `task`. Errors are messages for the caller to
/// wrap with the file and line.
pub fn render(template: &Template, row: &Row, task: Option<Task>) -> Result<Rendered, String> {
    let inst = match row {
        Row::MultipleChoice(mc) => {
            let task = task.ok_or("a multiple-choice row needs a task")?;
            mc_to_instruction(task, mc)?
        }
        Row::Instruction(i) => i.clone(),
        Row::Text(text) => {
            return match template {
                Template::Raw => Ok(Rendered {
                    prompt: String::new(),
                    completion: text.clone(),
                }),
                t => Err(format!(
                    "a `text` row needs the `raw` template, not `{}`",
                    t.name()
                )),
            };
        }
    };
    Ok(render_instruction(template, &inst))
}

pub fn render_instruction(template: &Template, r: &InstructionRow) -> Rendered {
    let (prompt, completion) = match template {
        Template::LlmAdapters => (
            llm_adapters_train_prompt(&r.instruction, &r.input, ""),
            r.output.clone(),
        ),
        Template::Alpaca => {
            let prompt = if r.input.is_empty() {
                format!(
                    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{}\n\n### Response:",
                    r.instruction
                )
            } else {
                format!(
                    "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n{}\n\n### Input:\n{}\n\n### Response:",
                    r.instruction, r.input
                )
            };
            (prompt, r.output.clone())
        }
        Template::Chatml { system } => {
            let mut prompt = String::new();
            if let Some(s) = system {
                prompt.push_str(&format!("<|im_start|>system\n{s}<|im_end|>\n"));
            }
            let user = if r.input.is_empty() {
                r.instruction.clone()
            } else {
                format!("{}\n\n{}", r.instruction, r.input)
            };
            prompt.push_str(&format!(
                "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
            ));
            (prompt, format!("{}<|im_end|>", r.output))
        }
        Template::Raw => {
            let mut prompt = String::new();
            for part in [&r.instruction, &r.input] {
                if !part.is_empty() {
                    prompt.push_str(part);
                    prompt.push('\n');
                }
            }
            (prompt, r.output.clone())
        }
    };
    Rendered { prompt, completion }
}

/// Whether a model's chat template (a Jinja string from tokenizer_config.json or GGUF metadata)
/// is ChatML-shaped, so the `chatml` template matches what the model was tuned on.
pub fn is_chatml(chat_template: &str) -> bool {
    chat_template.contains("<|im_start|>") && chat_template.contains("<|im_end|>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(input: &str) -> InstructionRow {
        InstructionRow {
            instruction: "Do X".into(),
            input: input.into(),
            output: "Done".into(),
            answer: None,
        }
    }

    // Alpaca reference: PROMPT_DICT in tatsu-lab/stanford_alpaca train.py.
    #[test]
    fn alpaca_and_chatml_and_raw() {
        let r = render_instruction(&Template::Alpaca, &inst(""));
        assert_eq!(
            r.full(),
            "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nDo X\n\n### Response:Done"
        );
        let r = render_instruction(&Template::Alpaca, &inst("ctx"));
        assert!(
            r.prompt
                .ends_with("### Instruction:\nDo X\n\n### Input:\nctx\n\n### Response:")
        );
        let r = render_instruction(
            &Template::Chatml {
                system: Some("S".into()),
            },
            &inst("ctx"),
        );
        assert_eq!(
            r.full(),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nDo X\n\nctx<|im_end|>\n<|im_start|>assistant\nDone<|im_end|>"
        );
        let r = render_instruction(&Template::Raw, &inst("ctx"));
        assert_eq!(
            (r.prompt.as_str(), r.completion.as_str()),
            ("Do X\nctx\n", "Done")
        );
        assert!(render(&Template::Alpaca, &Row::Text("t".into()), None).is_err());
        assert!(is_chatml(
            "{% for m in messages %}<|im_start|>{{m.role}}\n{{m.content}}<|im_end|>{% endfor %}"
        ));
        assert!(!is_chatml("<|start_header_id|>"));
    }

    #[test]
    fn llm_adapters_prompt_plus_completion_is_the_full_train_prompt() {
        let r = render_instruction(&Template::LlmAdapters, &inst(""));
        assert_eq!(r.full(), llm_adapters_train_prompt("Do X", "", "Done"));
        let r = render_instruction(&Template::LlmAdapters, &inst("ctx"));
        assert_eq!(r.full(), llm_adapters_train_prompt("Do X", "ctx", "Done"));
    }
}

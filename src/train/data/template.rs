//! Templates turn a row into text to train on: a prompt and a completion (the training text is
//! `prompt + completion`, and with `train_on_inputs` off the prompt's tokens carry no loss), or a
//! whole conversation with the byte ranges that carry the loss.
//!
//! - `llm-adapters`: LLM-Adapters' train prompt byte for byte ([`super::prompts`]); multiple-choice
//!   rows become instruction rows with the per-task instruction and `the correct answer is {label}`.
//! - `alpaca`: the Stanford Alpaca prompts (with / without input); as in Stanford's `train.py`, the
//!   completion follows `### Response:` directly, with no separator.
//! - `chatml`: `<|im_start|>user\n{instruction}[\n\n{input}]<|im_end|>\n<|im_start|>assistant\n`
//!   then `{output}<|im_end|>`, with an optional system turn first.
//! - `model`: the model's own chat template, rendered as transformers' `apply_chat_template`
//!   renders it ([`crate::model::chat::ChatTemplate`]). Chat rows are rendered as they are;
//!   an instruction row is a user turn (`{instruction}[\n\n{input}]`) and an assistant turn
//!   (`{output}`); a multiple-choice row first becomes LLM-Adapters' instruction row. The loss is
//!   on the assistant turns (`train-on="assistant"`, located as
//!   [`ChatTemplate::render_conversation`] says) or on every token (`"all"`). The text is
//!   tokenized without adding special tokens: the template writes BOS and end-of-turn tokens
//!   itself, as `apply_chat_template(tokenize=True)` does.
//! - `raw`: text rows train on their whole `text`; instruction rows on `instruction`, `input`
//!   (each followed by a newline when non-empty) as prompt and `output` as completion.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::model::chat::ChatTemplate;

use super::prompts::{
    llm_adapters_instruction, llm_adapters_row_output, llm_adapters_train_prompt,
};
use super::schema::{InstructionRow, Message, Row};
use super::task::{Task, answer_label};

crate::choice_enum! {
    /// A data stage's `template`.
    pub enum TemplateChoice {
        LlmAdapters = "llm-adapters",
        Alpaca = "alpaca",
        Chatml = "chatml",
        Raw = "raw",
        Model = "model",
    }
}

crate::choice_enum! {
    /// Which tokens of a conversation carry the loss (`template "model" train-on=`).
    pub enum TrainOn {
        /// The assistant's turns (TRL's `assistant_only_loss`, axolotl's `roles_to_train`).
        Assistant = "assistant",
        All = "all",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Template {
    LlmAdapters,
    Alpaca,
    Chatml {
        system: Option<String>,
    },
    Raw,
    /// The model's own chat template.
    Model {
        train_on: TrainOn,
    },
}

impl Template {
    pub fn name(&self) -> &'static str {
        self.choice().name()
    }

    pub fn choice(&self) -> TemplateChoice {
        match self {
            Template::LlmAdapters => TemplateChoice::LlmAdapters,
            Template::Alpaca => TemplateChoice::Alpaca,
            Template::Chatml { .. } => TemplateChoice::Chatml,
            Template::Raw => TemplateChoice::Raw,
            Template::Model { .. } => TemplateChoice::Model,
        }
    }

    /// The template a data stage names (`chatml` without a system turn); `train_on` is for `model`.
    pub fn new(choice: TemplateChoice, train_on: TrainOn) -> Template {
        match choice {
            TemplateChoice::LlmAdapters => Template::LlmAdapters,
            TemplateChoice::Alpaca => Template::Alpaca,
            TemplateChoice::Chatml => Template::Chatml { system: None },
            TemplateChoice::Raw => Template::Raw,
            TemplateChoice::Model => Template::Model { train_on },
        }
    }

    /// Whether this template renders `row` (checked when the rows are read, before any
    /// tokenizer is at hand); the message says what to use instead.
    pub fn accepts(&self, row: &Row) -> Result<(), String> {
        match (self, row) {
            (Template::Raw, Row::Text(_)) | (Template::Model { .. }, Row::Chat(_)) => Ok(()),
            (t, Row::Text(_)) => Err(format!(
                "a `text` row needs the `raw` template, not `{}`",
                t.name()
            )),
            (Template::Model { .. }, _) | (_, Row::MultipleChoice(_) | Row::Instruction(_)) => {
                Ok(())
            }
            (t, Row::Chat(_)) => Err(format!(
                "a chat row (`messages` / `conversations`) needs `template \"model\"`, which renders it with the model's chat template, not `{}`",
                t.name()
            )),
        }
    }
}

/// A prompt and its completion: the model is trained on `prompt + completion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub prompt: String,
    pub completion: String,
}

impl Pair {
    pub fn full(&self) -> String {
        format!("{}{}", self.prompt, self.completion)
    }
}

/// A rendered row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Pair(Pair),
    /// A conversation rendered by a chat template; the loss is on the tokens that overlap the
    /// `loss` byte ranges, or on every token when `None`.
    Chat {
        text: String,
        loss: Option<Vec<Range<usize>>>,
    },
}

impl Rendered {
    pub fn pair(prompt: impl Into<String>, completion: impl Into<String>) -> Rendered {
        Rendered::Pair(Pair {
            prompt: prompt.into(),
            completion: completion.into(),
        })
    }
}

/// A model's chat template and the named special tokens it is rendered with (`template "model"`).
pub struct ModelChat {
    template: ChatTemplate,
    vars: Vec<(String, minijinja::Value)>,
}

impl ModelChat {
    pub fn new(source: &str, tokens: &[(String, String)]) -> Result<Self, String> {
        Ok(Self {
            template: ChatTemplate::new(source).map_err(|e| e.to_string())?,
            vars: tokens
                .iter()
                .map(|(k, v)| (k.clone(), minijinja::Value::from(v.as_str())))
                .collect(),
        })
    }

    fn render(&self, messages: &[Message], train_on: TrainOn) -> Result<Rendered, String> {
        let values: Vec<minijinja::Value> = messages.iter().map(message_value).collect();
        let err = |e: crate::model::error::ModelError| e.to_string();
        match train_on {
            TrainOn::All => Ok(Rendered::Chat {
                text: self
                    .template
                    .render_with(&crate::model::chat::RenderInput {
                        messages: minijinja::Value::from(values),
                        add_generation_prompt: false,
                        continue_final_message: false,
                        vars: self.vars.clone(),
                    })
                    .map_err(err)?,
                loss: None,
            }),
            TrainOn::Assistant => {
                let r = self
                    .template
                    .render_conversation(&values, &self.vars)
                    .map_err(err)?;
                Ok(Rendered::Chat {
                    text: r.text,
                    loss: Some(r.assistant),
                })
            }
        }
    }
}

/// A message as the template sees it: `role`, `content`, then its other keys.
fn message_value(m: &Message) -> minijinja::Value {
    let head = [
        ("role".to_string(), minijinja::Value::from(m.role.as_str())),
        (
            "content".to_string(),
            minijinja::Value::from(m.content.as_str()),
        ),
    ];
    minijinja::Value::from_iter(
        head.into_iter().chain(
            m.extra
                .iter()
                .map(|(k, v)| (k.clone(), minijinja::Value::from_serialize(v))),
        ),
    )
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

/// Renders `row`; multiple-choice rows need their `task`, the `model` template the model's
/// `chat`. Errors are messages for the caller to wrap with the file and line.
pub fn render(
    template: &Template,
    row: &Row,
    task: Option<Task>,
    chat: Option<&ModelChat>,
) -> Result<Rendered, String> {
    template.accepts(row)?;
    let inst = match row {
        Row::MultipleChoice(mc) => {
            let task = task.ok_or("a multiple-choice row needs a task")?;
            mc_to_instruction(task, mc)?
        }
        Row::Instruction(i) => i.clone(),
        Row::Text(text) => return Ok(Rendered::pair("", text.clone())),
        Row::Chat(messages) => return render_chat(template, messages, chat),
    };
    if let Template::Model { .. } = template {
        let messages = [
            Message {
                role: "user".into(),
                content: user_turn(&inst),
                extra: Default::default(),
            },
            Message {
                role: "assistant".into(),
                content: inst.output.clone(),
                extra: Default::default(),
            },
        ];
        return render_chat(template, &messages, chat);
    }
    Ok(Rendered::Pair(render_instruction(template, &inst)))
}

fn render_chat(
    template: &Template,
    messages: &[Message],
    chat: Option<&ModelChat>,
) -> Result<Rendered, String> {
    let Template::Model { train_on } = template else {
        return Err(format!(
            "template `{}` does not render conversations",
            template.name()
        ));
    };
    let chat = chat.ok_or("the model has no chat template (tokenizer_config.json `chat_template`, GGUF `tokenizer.chat_template`)")?;
    chat.render(messages, *train_on)
}

/// The user turn of an instruction row: `{instruction}`, then `\n\n{input}` when there is one.
fn user_turn(r: &InstructionRow) -> String {
    if r.input.is_empty() {
        r.instruction.clone()
    } else {
        format!("{}\n\n{}", r.instruction, r.input)
    }
}

/// A prompt / completion template's rendering of an instruction row (`model` renders a
/// conversation instead: [`render`]).
fn render_instruction(template: &Template, r: &InstructionRow) -> Pair {
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
            let user = user_turn(r);
            prompt.push_str(&format!(
                "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
            ));
            (prompt, format!("{}<|im_end|>", r.output))
        }
        Template::Raw | Template::Model { .. } => {
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
    Pair { prompt, completion }
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
        assert!(render(&Template::Alpaca, &Row::Text("t".into()), None, None).is_err());
    }

    #[test]
    fn llm_adapters_prompt_plus_completion_is_the_full_train_prompt() {
        let r = render_instruction(&Template::LlmAdapters, &inst(""));
        assert_eq!(r.full(), llm_adapters_train_prompt("Do X", "", "Done"));
        let r = render_instruction(&Template::LlmAdapters, &inst("ctx"));
        assert_eq!(r.full(), llm_adapters_train_prompt("Do X", "ctx", "Done"));
    }
}

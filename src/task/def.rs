//! A task definition ([`TaskDef`], the typed form of a task file) and its compiled form
//! ([`Compiled`]: templates parsed, the extraction regex built) that turns an item into the
//! requests of each protocol.

use std::collections::BTreeMap;
use std::path::PathBuf;

use minijinja::{Environment, Value as J, context};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::rows::McItem;
use super::spec::{Metric, PromptStyle};

use super::template::{environment, error_text};

/// Where a row's choices are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChoiceSource {
    /// One field holding a list.
    Column(String),
    /// One field per choice, in order.
    Columns(Vec<String>),
}

impl ChoiceSource {
    /// The field name(s), for messages.
    pub fn describe(&self) -> String {
        match self {
            ChoiceSource::Column(c) => c.clone(),
            ChoiceSource::Columns(cs) => cs.join("`, `"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Columns {
    pub id: String,
    pub question: String,
    pub choices: ChoiceSource,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FewShot {
    pub n: usize,
    pub split: String,
    pub seed: u64,
    pub delimiter: String,
}

/// A task file, typed. Paths are absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDef {
    pub name: String,
    pub doc: Option<String>,
    pub lm_eval_name: Option<String>,
    /// Splits the file names explicitly.
    pub data: BTreeMap<String, PathBuf>,
    /// The directory other splits are looked for in (`<name>.<split>.jsonl[.gz]`): the task
    /// file's; `None` for a built-in task (the eval stage's `dir`).
    pub home: Option<PathBuf>,
    pub columns: Columns,
    pub label_base: usize,
    pub min_choices: usize,
    pub max_choices: usize,
    pub choice_set: Option<Vec<String>>,
    pub context: String,
    pub continuation: String,
    pub delimiter: String,
    pub instruction: String,
    pub prompt: PromptStyle,
    pub answer: String,
    pub extract: Option<String>,
    pub metric: Metric,
    pub fewshot: Option<FewShot>,
}

/// One continuation to score (loglik protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceRequest {
    pub context: String,
    /// The delimiter followed by the rendered continuation.
    pub continuation: String,
    /// Characters acc_norm divides by: the rendered continuation without the delimiter.
    pub norm_chars: usize,
}

/// Names of the templates inside a [`Compiled`] environment.
pub const TEMPLATES: [&str; 4] = ["context", "continuation", "instruction", "answer"];

impl TaskDef {
    /// The source of template `name` (one of [`TEMPLATES`]).
    pub fn template(&self, name: &str) -> &str {
        match name {
            "context" => &self.context,
            "continuation" => &self.continuation,
            "instruction" => &self.instruction,
            _ => &self.answer,
        }
    }

    /// The name lm-eval gives the task (its own name when there is none).
    pub fn lm_eval_name(&self) -> &str {
        self.lm_eval_name.as_deref().unwrap_or(&self.name)
    }

    /// Parse the templates and the regex; the error names what failed.
    pub fn compile(&self) -> Result<Compiled, String> {
        let mut env = environment();
        for name in TEMPLATES {
            env.add_template_owned(name.to_string(), self.template(name).to_string())
                .map_err(|e| format!("template `{name}`: {}", error_text(&e)))?;
        }
        let extract = match &self.extract {
            Some(p) => Some(Regex::new(p).map_err(|e| {
                format!(
                    "`extract`: {}",
                    crate::check::context::first_line(&e.to_string())
                )
            })?),
            None => None,
        };
        Ok(Compiled {
            def: self.clone(),
            env,
            extract,
        })
    }
}

/// A task ready to render items.
#[derive(Debug)]
pub struct Compiled {
    pub def: TaskDef,
    env: Environment<'static>,
    extract: Option<Regex>,
}

impl Compiled {
    fn render(&self, name: &str, ctx: J) -> Result<String, String> {
        // invariant: every name in TEMPLATES was added by `compile`.
        let t = self
            .env
            .get_template(name)
            .map_err(|e| format!("template `{name}`: {}", error_text(&e)))?;
        t.render(ctx)
            .map_err(|e| format!("template `{name}`: {}", error_text(&e)))
    }

    fn choice_ctx(item: &McItem, i: usize) -> J {
        context! {
            question => &item.question,
            choices => &item.choices,
            label => item.label,
            row => J::from_serialize(&item.row),
            choice => &item.choices[i],
            index => i,
            number => i + 1,
        }
    }

    /// loglik: one request per choice, in choice order.
    pub fn requests(&self, item: &McItem) -> Result<Vec<ChoiceRequest>, String> {
        (0..item.choices.len())
            .map(|i| {
                let ctx = Self::choice_ctx(item, i);
                let context = self.render("context", ctx.clone())?;
                let cont = self.render("continuation", ctx)?;
                Ok(ChoiceRequest {
                    context,
                    norm_chars: cont.chars().count(),
                    continuation: format!("{}{cont}", self.def.delimiter),
                })
            })
            .collect()
    }

    /// llm-adapters: the answer word of choice `i`.
    pub fn answer(&self, item: &McItem, i: usize) -> Result<String, String> {
        if i >= item.choices.len() {
            return Err(format!(
                "choice {i} is out of range for {} choices",
                item.choices.len()
            ));
        }
        self.render("answer", Self::choice_ctx(item, i))
    }

    /// llm-adapters: the answer word of every choice.
    pub fn answers(&self, item: &McItem) -> Result<Vec<String>, String> {
        (0..item.choices.len())
            .map(|i| self.answer(item, i))
            .collect()
    }

    /// llm-adapters: the instruction for an item whose answer words are `answers`.
    pub fn instruction(&self, item: &McItem, answers: &[String]) -> Result<String, String> {
        self.render(
            "instruction",
            context! {
                question => &item.question,
                choices => &item.choices,
                label => item.label,
                row => J::from_serialize(&item.row),
                answers => answers,
            },
        )
    }

    /// llm-adapters: the model's answer in a response: the first match of `extract` (group 1
    /// when the pattern has groups), else the first of `answers` (longest first at a position).
    pub fn extract(&self, response: &str, answers: &[String]) -> Option<String> {
        let response = response.trim();
        match &self.extract {
            Some(re) => re.captures(response).map(|c| {
                c.get(1)
                    .or_else(|| c.get(0))
                    .map_or(String::new(), |m| m.as_str().to_string())
            }),
            None => {
                let mut words: Vec<&String> = answers.iter().collect();
                words.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
                let pattern = words
                    .iter()
                    .map(|w| regex::escape(w))
                    .collect::<Vec<_>>()
                    .join("|");
                // invariant: an alternation of escaped literals is a valid regex.
                let re = Regex::new(&pattern).expect("escaped alternation");
                re.find(response).map(|m| m.as_str().to_string())
            }
        }
    }

    /// Whether an extracted answer is the gold answer word.
    pub fn matches(&self, extracted: &str, gold: &str) -> bool {
        match self.def.metric {
            Metric::ExactMatch => extracted == gold,
            Metric::ExactMatchIgnoreCase => extracted.to_lowercase() == gold.to_lowercase(),
        }
    }
}

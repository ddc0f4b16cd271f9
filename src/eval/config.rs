//! What to evaluate and how: tasks, protocol, subsampling, batching, decoding.

use serde::{Deserialize, Serialize};

use super::generate::GenerationConfig;
use super::results::Protocol;
use super::subsample::Subset;
use super::task::Task;

fn random_subset() -> Subset {
    Subset::Random
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    pub tasks: Vec<Task>,
    pub protocol: Protocol,
    /// Evaluate at most this many items per task, chosen by `subset` (see `subsample`).
    pub limit: Option<usize>,
    /// Which rows `limit` keeps.
    #[serde(default = "random_subset")]
    pub subset: Subset,
    pub seed: u64,
    /// Prompts per generation batch, or sequences (item x choice) per scoring forward.
    pub batch_size: usize,
    /// llm-adapters: decoding.
    pub generation: GenerationConfig,
    /// llm-adapters: encode prompts with the tokenizer's special tokens (HF `tokenizer(prompt)`
    /// adds e.g. LLaMA's BOS).
    pub add_special_tokens: bool,
    /// loglik: longest scored sequence; longer ones lose tokens on the left (as lm-eval).
    pub max_len: usize,
}

impl EvalConfig {
    pub fn new(tasks: Vec<Task>, protocol: Protocol) -> Self {
        Self {
            tasks,
            protocol,
            limit: None,
            subset: Subset::Random,
            seed: 42,
            batch_size: 8,
            generation: GenerationConfig::default(),
            add_special_tokens: true,
            max_len: 2048,
        }
    }
}

/// Progress of an evaluation, for bars and logs.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    TaskStarted {
        task: &'a str,
        items: usize,
    },
    Advanced {
        task: &'a str,
        done: usize,
        total: usize,
    },
    TaskFinished {
        task: &'a str,
        accuracy: f64,
    },
}

/// A progress callback that ignores everything.
pub fn no_progress(_: Progress<'_>) {}

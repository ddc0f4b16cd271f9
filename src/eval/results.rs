//! Evaluation results: per-task metrics, the macro average, per-example predictions, and their
//! files in an output directory (the eval stage's cache entry):
//!
//! ```text
//! out/results.json                 EvalSummary (protocol-labelled)
//! out/predictions/<task>.jsonl     one Prediction a line, in file order of the evaluated items
//! ```

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{EvalError, Result};
use super::generate::GenerationConfig;
use super::task::TaskKind;

crate::choice_enum! {
    /// Which protocol produced a number; every result carries it (the `eval` stage's choices).
    #[derive(PartialOrd, Ord)]
    pub enum Protocol {
        /// Instruction prompt, generation, first regex match of the label, exact match.
        LlmAdapters = "llm-adapters",
        /// lm-eval-style log-likelihood of each choice (acc, acc_norm).
        Loglik = "loglik",
    }
}

/// Metrics of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub task: String,
    pub kind: TaskKind,
    pub protocol: Protocol,
    /// Items evaluated (after `limit`).
    pub n: usize,
    pub correct: usize,
    /// The primary metric in [0, 1]: exact match (llm-adapters) or acc (loglik).
    pub accuracy: f64,
    /// loglik only: accuracy of argmax(loglik / characters of the choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc_norm: Option<f64>,
    /// llm-adapters only: responses without any label word (counted wrong).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unparseable: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unparseable_rate: Option<f64>,
    /// llm-adapters only: new tokens generated (EOS excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_tokens: Option<usize>,
    pub seconds: f64,
}

/// The results file: per-task metrics, their macro average, and how they were obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    pub protocol: Protocol,
    pub tasks: Vec<TaskResult>,
    /// Unweighted mean of the tasks' `accuracy`.
    pub average: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_acc_norm: Option<f64>,
    pub limit: Option<usize>,
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationConfig>,
}

/// One evaluated item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prediction {
    Generation(GenerationPrediction),
    Loglik(LoglikPrediction),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationPrediction {
    pub id: serde_json::Value,
    pub prompt: String,
    /// The decoded response (special tokens skipped, cut at a repeated "### Response:", stripped).
    pub output: String,
    /// The extracted label word; `None` = unparseable.
    pub prediction: Option<String>,
    pub label: String,
    pub correct: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoglikPrediction {
    pub id: serde_json::Value,
    /// Context per choice (all equal except for winogrande's partial scoring).
    pub contexts: Vec<String>,
    pub continuations: Vec<String>,
    /// Summed log-probability of each continuation.
    pub scores: Vec<f64>,
    /// `scores[i] / characters(choice i)`.
    pub scores_norm: Vec<f64>,
    pub prediction: usize,
    pub prediction_norm: usize,
    pub label: usize,
    pub correct: bool,
    pub correct_norm: bool,
}

/// What `evaluate` returns: the summary and every prediction, by task name.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResults {
    pub summary: EvalSummary,
    pub predictions: BTreeMap<String, Vec<Prediction>>,
}

impl EvalSummary {
    pub fn new(
        protocol: Protocol,
        tasks: Vec<TaskResult>,
        limit: Option<usize>,
        seed: u64,
        generation: Option<GenerationConfig>,
    ) -> Self {
        let mean = |xs: Vec<f64>| {
            if xs.is_empty() {
                0.0
            } else {
                xs.iter().sum::<f64>() / xs.len() as f64
            }
        };
        let average = mean(tasks.iter().map(|t| t.accuracy).collect());
        let norms: Option<Vec<f64>> = tasks.iter().map(|t| t.acc_norm).collect();
        let average_acc_norm = norms.filter(|n| !n.is_empty()).map(mean);
        Self {
            protocol,
            tasks,
            average,
            average_acc_norm,
            limit,
            seed,
            generation,
        }
    }

    /// Read `results.json` from an eval output directory.
    pub fn read(dir: &Path) -> Result<EvalSummary> {
        let path = dir.join("results.json");
        let text = std::fs::read_to_string(&path).map_err(|e| EvalError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| EvalError::BadResults {
            path,
            message: e.to_string(),
        })
    }
}

impl EvalResults {
    /// Write `results.json` and `predictions/<task>.jsonl` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let pred_dir = dir.join("predictions");
        std::fs::create_dir_all(&pred_dir).map_err(|e| EvalError::io(&pred_dir, e))?;
        let path = dir.join("results.json");
        let json =
            serde_json::to_string_pretty(&self.summary).map_err(|e| EvalError::write(&path, e))?;
        std::fs::write(&path, json + "\n").map_err(|e| EvalError::io(&path, e))?;
        for (task, preds) in &self.predictions {
            let path = pred_dir.join(format!("{task}.jsonl"));
            let file = std::fs::File::create(&path).map_err(|e| EvalError::io(&path, e))?;
            let mut w = BufWriter::new(file);
            for p in preds {
                serde_json::to_writer(&mut w, p).map_err(|e| EvalError::write(&path, e))?;
                w.write_all(b"\n").map_err(|e| EvalError::io(&path, e))?;
            }
            w.flush().map_err(|e| EvalError::io(&path, e))?;
        }
        Ok(())
    }
}

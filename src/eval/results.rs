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
use super::subsample::Subset;
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
    /// Rows in the task's file (before `limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    pub correct: usize,
    /// The primary metric in [0, 1]: exact match (llm-adapters) or acc (loglik).
    pub accuracy: f64,
    /// Standard error of `accuracy` as lm-eval computes it (`stats::mean_stderr`); none for n < 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc_stderr: Option<f64>,
    /// loglik only: accuracy of argmax(loglik / characters of the choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc_norm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc_norm_stderr: Option<f64>,
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
    /// Which rows `limit` kept (absent in results written before it existed: random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<Subset>,
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationConfig>,
    /// Task name -> its name in lm-evaluation-harness (`arc-e` -> `arc_easy`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lm_eval_names: BTreeMap<String, String>,
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

impl Prediction {
    /// Whether the item was answered right (loglik: acc).
    pub fn correct(&self) -> bool {
        match self {
            Prediction::Generation(g) => g.correct,
            Prediction::Loglik(l) => l.correct,
        }
    }

    /// The item's id.
    pub fn id(&self) -> &serde_json::Value {
        match self {
            Prediction::Generation(g) => &g.id,
            Prediction::Loglik(l) => &l.id,
        }
    }
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
            subset: None,
            seed,
            generation,
            lm_eval_names: BTreeMap::new(),
        }
    }

    /// The keys lm-evaluation-harness writes (`results`, `n-samples`, `config`,
    /// `higher_is_better`), so tools that read lm-eval output read rora's `results.json`.
    /// Metric keys are `<metric>,none`; loglik gives `acc` and `acc_norm`, llm-adapters
    /// `exact_match`; a standard error that cannot be computed (one item) is `"N/A"`, as in lm-eval.
    pub fn lm_eval_json(&self) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let stderr = |s: Option<f64>| s.map_or(json!("N/A"), |x| json!(x));
        let (mut results, mut samples, mut better) = (Map::new(), Map::new(), Map::new());
        for t in &self.tasks {
            let name = self.lm_eval_names.get(&t.task).unwrap_or(&t.task).clone();
            let mut m = Map::new();
            m.insert("alias".into(), json!(name));
            let metric = match t.protocol {
                Protocol::Loglik => "acc",
                Protocol::LlmAdapters => "exact_match",
            };
            m.insert(format!("{metric},none"), json!(t.accuracy));
            m.insert(format!("{metric}_stderr,none"), stderr(t.acc_stderr));
            let mut hib = Map::new();
            hib.insert(metric.into(), json!(true));
            if let Some(a) = t.acc_norm {
                m.insert("acc_norm,none".into(), json!(a));
                m.insert("acc_norm_stderr,none".into(), stderr(t.acc_norm_stderr));
                hib.insert("acc_norm".into(), json!(true));
            }
            results.insert(name.clone(), Value::Object(m));
            samples.insert(
                name.clone(),
                json!({"original": t.rows.unwrap_or(t.n), "effective": t.n}),
            );
            better.insert(name, Value::Object(hib));
        }
        json!({
            "results": results,
            "n-samples": samples,
            "higher_is_better": better,
            "config": {
                "model": "rora",
                "protocol": self.protocol,
                "limit": self.limit,
                "subset": self.subset.unwrap_or(Subset::Random),
                "random_seed": self.seed,
                "bootstrap_iters": 0,
                "gen_kwargs": self.generation,
            },
        })
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
        let mut value =
            serde_json::to_value(&self.summary).map_err(|e| EvalError::write(&path, e))?;
        if let (Some(obj), serde_json::Value::Object(lm)) =
            (value.as_object_mut(), self.summary.lm_eval_json())
        {
            obj.extend(lm);
        }
        let json = serde_json::to_string_pretty(&value).map_err(|e| EvalError::write(&path, e))?;
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

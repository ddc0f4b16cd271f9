//! One fine-tuning run as a report sees it: how it was configured (method, rank, alpha, scaling
//! rule, effective scale, seed), what it scored (per-task accuracies under one protocol), and how
//! it trained (loss curve, validation loss).
//!
//! Runs come either fully formed (a `runs.json` array of [`RunRecord`], as the report stage writes
//! next to its output) or from a run directory holding `run.json` ([`RunMeta`]) that points to the
//! eval `results.json` and the trainer's `metrics.jsonl` (paths relative to the directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{ReportError, Result};
use super::metrics::{LossPoint, read_metrics};
use crate::adapter::scaling::ScalingRule;
use crate::eval::results::{EvalSummary, Prediction, Protocol};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub name: String,
    /// `lora`, `rora`, `dora`, ... (the adapter method).
    pub method: String,
    pub rank: u32,
    pub alpha: f64,
    /// The scaling rule's name (`lora` = alpha/r, `rora` = alpha/sqrt(r), `fixed`).
    pub scaling: String,
    pub effective_scale: f64,
    pub seed: u64,
    pub protocol: Protocol,
    /// Task name -> accuracy in [0, 1].
    pub accuracies: BTreeMap<String, f64>,
    #[serde(default)]
    pub train_loss: Vec<LossPoint>,
    #[serde(default)]
    pub val_loss: Option<f64>,
    /// Trainable parameters as a percentage of the model's (the paper's "# Params (%)").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_pct: Option<f64>,
    /// Wall-clock seconds of training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<f64>,
    /// Task name -> per-item outcomes, for paired comparisons between runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outcomes: BTreeMap<String, Outcomes>,
}

/// Which items of a task a run got right, by item id, in file order of the evaluated items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcomes {
    pub ids: Vec<String>,
    pub correct: Vec<bool>,
}

/// The outcomes of every task of an eval output directory (`predictions/<task>.jsonl`); tasks
/// without a predictions file are left out.
pub fn read_outcomes(eval_dir: &Path, summary: &EvalSummary) -> Result<BTreeMap<String, Outcomes>> {
    let mut out = BTreeMap::new();
    for t in &summary.tasks {
        let path = eval_dir
            .join("predictions")
            .join(format!("{}.jsonl", t.task));
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ReportError::read(&path, e))?;
        let mut o = Outcomes {
            ids: vec![],
            correct: vec![],
        };
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let p: Prediction = serde_json::from_str(line).map_err(|e| ReportError::BadFile {
                path: path.clone(),
                message: format!("line {}: {e}", i + 1),
            })?;
            o.ids.push(match p.id() {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            o.correct.push(p.correct());
        }
        out.insert(t.task.clone(), o);
    }
    Ok(out)
}

/// `run.json` in a run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunMeta {
    #[serde(default)]
    pub name: Option<String>,
    pub method: String,
    pub rank: u32,
    pub alpha: f64,
    /// `lora` | `rora` | `fixed` (then `effective_scale` is required).
    pub scaling: String,
    #[serde(default)]
    pub effective_scale: Option<f64>,
    pub seed: u64,
    /// The eval output directory or its `results.json` (default: the run directory).
    #[serde(default)]
    pub eval: Option<PathBuf>,
    /// The trainer's metrics JSONL (default: `metrics.jsonl` when present).
    #[serde(default)]
    pub metrics: Option<PathBuf>,
    /// Overrides the last validation loss found in the metrics.
    #[serde(default)]
    pub val_loss: Option<f64>,
    /// Trainable parameters in % of the model's.
    #[serde(default)]
    pub params_pct: Option<f64>,
    /// Training wall-clock seconds.
    #[serde(default)]
    pub train_seconds: Option<f64>,
}

impl RunMeta {
    /// The scale from the rule, or the given one (required for `fixed`).
    pub fn scale(&self) -> std::result::Result<f64, String> {
        if let Some(s) = self.effective_scale {
            return Ok(s);
        }
        let rule = match self.scaling.as_str() {
            "lora" => ScalingRule::Lora,
            "rora" | "rslora" => ScalingRule::Rora,
            "fixed" => {
                return Err("field `effective_scale` is required with scaling \"fixed\"".into());
            }
            other => {
                return Err(format!(
                    "field `scaling`: unknown rule {other:?} (lora, rora, fixed)"
                ));
            }
        };
        Ok(rule.scale(self.alpha, self.rank as usize))
    }
}

/// A run from its directory (see the module docs).
pub fn load_run_dir(dir: &Path) -> Result<RunRecord> {
    let meta_path = dir.join("run.json");
    let text = std::fs::read_to_string(&meta_path).map_err(|e| ReportError::read(&meta_path, e))?;
    let bad = |message: String| ReportError::BadFile {
        path: meta_path.clone(),
        message,
    };
    let meta: RunMeta = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let scale = meta.scale().map_err(bad)?;
    let eval = dir.join(meta.eval.clone().unwrap_or_default());
    let eval_dir = if eval.is_file() {
        eval.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        eval
    };
    let summary = EvalSummary::read(&eval_dir).map_err(|e| ReportError::BadFile {
        path: eval_dir.join("results.json"),
        message: e.to_string(),
    })?;
    let metrics_path = match &meta.metrics {
        Some(p) => Some(dir.join(p)),
        None => Some(dir.join("metrics.jsonl")).filter(|p| p.is_file()),
    };
    let curves = match metrics_path {
        Some(p) => read_metrics(&p)?,
        None => Default::default(),
    };
    let name = meta
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-r{}-s{}", meta.method, meta.rank, meta.seed));
    Ok(RunRecord {
        name,
        method: meta.method.clone(),
        rank: meta.rank,
        alpha: meta.alpha,
        scaling: meta.scaling.clone(),
        effective_scale: scale,
        seed: meta.seed,
        protocol: summary.protocol,
        accuracies: summary
            .tasks
            .iter()
            .map(|t| (t.task.clone(), t.accuracy))
            .collect(),
        val_loss: meta.val_loss.or(curves.final_val_loss()),
        train_loss: curves.train,
        params_pct: meta.params_pct,
        train_seconds: meta.train_seconds,
        outcomes: read_outcomes(&eval_dir, &summary)?,
    })
}

/// A `runs.json` array of records.
pub fn load_runs_file(path: &Path) -> Result<Vec<RunRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::read(path, e))?;
    serde_json::from_str(&text).map_err(|e| ReportError::BadFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dir_with_results_and_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("run.json"),
            r#"{"method": "rora", "rank": 16, "alpha": 32, "scaling": "rora", "seed": 7, "eval": "ev"}"#,
        )
        .unwrap();
        std::fs::create_dir(d.join("ev")).unwrap();
        let summary = EvalSummary::new(
            Protocol::Loglik,
            vec![crate::eval::results::TaskResult {
                task: "piqa".into(),
                kind: crate::eval::task::TaskKind::Piqa,
                protocol: Protocol::Loglik,
                n: 4,
                rows: None,
                correct: 3,
                accuracy: 0.75,
                acc_stderr: None,
                acc_norm: Some(0.5),
                acc_norm_stderr: None,
                unparseable: None,
                unparseable_rate: None,
                generated_tokens: None,
                seconds: 1.0,
            }],
            None,
            42,
            None,
        );
        std::fs::write(
            d.join("ev/results.json"),
            serde_json::to_string(&summary).unwrap(),
        )
        .unwrap();
        std::fs::write(
            d.join("metrics.jsonl"),
            "{\"step\":1,\"loss\":3}\n{\"kind\":\"eval\",\"step\":1,\"val_loss\":2.5}\n",
        )
        .unwrap();
        let r = load_run_dir(d).unwrap();
        assert_eq!(r.name, "rora-r16-s7");
        // alpha / sqrt(r) = 32 / 4
        assert_eq!(r.effective_scale, 8.0);
        assert_eq!(r.accuracies["piqa"], 0.75);
        assert_eq!((r.train_loss.len(), r.val_loss), (1, Some(2.5)));
        assert_eq!(r.protocol, Protocol::Loglik);
    }

    #[test]
    fn fixed_scale_needs_a_value() {
        let meta: RunMeta = serde_json::from_str(
            r#"{"method":"lora","rank":8,"alpha":16,"scaling":"fixed","seed":1}"#,
        )
        .unwrap();
        assert!(meta.scale().unwrap_err().contains("effective_scale"));
        let meta: RunMeta = serde_json::from_str(
            r#"{"method":"lora","rank":8,"alpha":16,"scaling":"lora","seed":1}"#,
        )
        .unwrap();
        assert_eq!(meta.scale().unwrap(), 2.0);
    }
}

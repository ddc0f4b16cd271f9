//! Per-step metrics, one JSON object per line in `<out>/metrics.jsonl`.
//! Training lines have `"kind": "train"`, validation lines `"kind": "eval"`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub kind: String,
    /// Optimizer steps completed (1-based: the first update is step 1).
    pub step: usize,
    pub total_steps: usize,
    /// Fractional epoch at the end of this step (HF style).
    pub epoch: f64,
    /// Mean loss over the step's loss tokens (all micro-batches).
    pub loss: f64,
    /// The learning rate this step's update used.
    pub lr: f64,
    /// Global L2 norm of the gradient before clipping.
    pub grad_norm: f64,
    /// Real tokens in the step's batches.
    pub tokens: usize,
    pub loss_tokens: usize,
    pub tokens_per_s: f64,
    /// Seconds of training so far, over every attempt of this run.
    pub elapsed_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalMetrics {
    pub kind: String,
    pub step: usize,
    pub val_loss: f64,
    pub val_tokens: usize,
    pub elapsed_s: f64,
}

/// One JSON line (with the newline).
pub fn line<T: Serialize>(record: &T) -> String {
    // invariant: these records hold only numbers and strings, which always serialize.
    let mut s = serde_json::to_string(record).unwrap_or_default();
    s.push('\n');
    s
}

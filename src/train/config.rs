//! `TrainConfig`: everything the loop needs besides the model, the data and the output directory.
//! [`TrainConfig::validate`] guarantees the loop sane values (positive sizes, `batch_size` a
//! multiple of `micro_batch_size`, a finite learning rate).

use serde::{Deserialize, Serialize};

use super::adamw::AdamWParams;
use super::error::{Result, TrainError};
use super::schedule::{Schedule, Warmup};

/// How long to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// Whole passes over the training data.
    Epochs(usize),
    /// A fixed number of optimizer steps (the data wraps around into further epochs).
    MaxSteps(usize),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub budget: Budget,
    /// Rows per optimizer step.
    pub batch_size: usize,
    /// Rows per forward/backward; `batch_size / micro_batch_size` micro-batches are accumulated.
    pub micro_batch_size: usize,
    pub lr: f64,
    pub warmup: Warmup,
    pub schedule: Schedule,
    /// AdamW betas, eps and (decoupled) weight decay.
    pub adamw: AdamWParams,
    /// Clip the global L2 norm of the gradient to this value (HF's `max_grad_norm`); `None`: no clipping.
    pub max_grad_norm: Option<f64>,
    pub seed: u64,
    /// Validation loss every N optimizer steps (and at the end), when the data has validation rows.
    pub eval_every: Option<usize>,
    /// A checkpoint every N optimizer steps.
    pub save_every: Option<usize>,
    /// How many checkpoints to keep (the newest); at least 1.
    pub keep_checkpoints: usize,
    /// Progress hooks see every step; the progress bar message is refreshed every N steps.
    pub log_every: usize,
    /// A/B switches that change results only by floating-point rounding (not part of any key).
    pub knobs: TrainKnobs,
}

/// Switches for A/B measurements of the training loop. Each computes the same loss and gradient
/// as the default up to floating-point rounding, so, like the device and the thread count, none
/// is part of a stage key; a train job records the ones that are not default in its manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainKnobs {
    /// Every micro-batch in one pass padded to its longest row (no length groups).
    pub whole_batches: bool,
    /// The output projection and cross-entropy at every position, not only at loss positions.
    pub full_logits: bool,
    /// Append every step's micro-batches (padded token ids, mask, labels) as JSON lines to this
    /// file, so a peer implementation can train on exactly the same batches.
    pub dump_batches: Option<std::path::PathBuf>,
}

impl TrainKnobs {
    pub fn is_default(&self) -> bool {
        *self == TrainKnobs::default()
    }
}

impl Default for TrainConfig {
    /// The LLM-Adapters / DoRA reference recipe (DESIGN.md): 3 epochs, batch 16, lr 2e-4,
    /// warmup 100, linear schedule, AdamW without weight decay.
    fn default() -> Self {
        Self {
            budget: Budget::Epochs(3),
            batch_size: 16,
            micro_batch_size: 4,
            lr: 2e-4,
            warmup: Warmup::Steps(100),
            schedule: Schedule::Linear,
            adamw: AdamWParams::default(),
            max_grad_norm: Some(1.0),
            seed: 42,
            eval_every: None,
            save_every: None,
            keep_checkpoints: 2,
            log_every: 10,
            knobs: TrainKnobs::default(),
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |field, message: &str| {
            Err(TrainError::Config {
                field,
                message: message.into(),
            })
        };
        if self.micro_batch_size == 0 || self.batch_size == 0 {
            return bad("batch", "batch sizes must be positive");
        }
        if !self.batch_size.is_multiple_of(self.micro_batch_size) {
            return bad("batch", "batch_size must be a multiple of micro_batch_size");
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad("lr", "the learning rate must be finite and >= 0");
        }
        if let Warmup::Ratio(r) = self.warmup
            && !(0.0..=1.0).contains(&r)
        {
            return bad("warmup", "a warmup ratio must lie in [0, 1]");
        }
        if matches!(self.max_grad_norm, Some(n) if n.is_nan() || n <= 0.0) {
            return bad("max_grad_norm", "must be positive");
        }
        if matches!(self.budget, Budget::Epochs(0) | Budget::MaxSteps(0)) {
            return bad("budget", "at least one epoch or step");
        }
        if self.eval_every == Some(0) || self.save_every == Some(0) || self.log_every == 0 {
            return bad("every", "intervals must be positive");
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints", "keep at least one checkpoint");
        }
        Ok(())
    }

    /// True when `other` trains the same way (bookkeeping such as how often to save, log or
    /// evaluate may differ): a checkpoint of one can be resumed by the other.
    pub fn same_trajectory(&self, other: &TrainConfig) -> bool {
        let strip = |c: &TrainConfig| TrainConfig {
            eval_every: None,
            save_every: None,
            keep_checkpoints: 1,
            log_every: 1,
            knobs: TrainKnobs::default(),
            ..c.clone()
        };
        strip(self) == strip(other)
    }

    /// Micro-batches accumulated into one optimizer step.
    pub fn accumulation(&self) -> usize {
        self.batch_size / self.micro_batch_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_batch_that_is_not_a_multiple_of_the_micro_batch() {
        let cfg = TrainConfig {
            batch_size: 10,
            micro_batch_size: 4,
            ..Default::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("multiple"));
        assert!(TrainConfig::default().validate().is_ok());
        assert_eq!(TrainConfig::default().accumulation(), 4);
    }
}

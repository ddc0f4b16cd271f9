//! Parameter counts, reported like PEFT's `print_trainable_parameters`:
//! `trainable params: 4,194,304 || all params: 6,742,609,920 || trainable%: 0.0622`.
//!
//! PEFT counts `all params` over the wrapped model, so the total is the base parameters plus the
//! adapter parameters (LoRA: `r (in + out)` per module; DoRA adds `out`). Tied embeddings count once.

use crate::model::config::{LlamaConfig, PROJECTIONS};

use super::attach::{AdaptableModel, trainable_vars};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCount {
    pub trainable: usize,
    pub total: usize,
}

impl ParamCount {
    /// Counts for a base of `base_params` parameters carrying `trainable` adapter parameters.
    pub fn new(base_params: usize, trainable: usize) -> Self {
        Self {
            trainable,
            total: base_params + trainable,
        }
    }

    /// Counts the adapter variables actually attached to `model`.
    pub fn of_model<M: AdaptableModel + ?Sized>(model: &M, base_params: usize) -> Self {
        let trainable = trainable_vars(model)
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum();
        Self::new(base_params, trainable)
    }

    /// Percentage of trainable parameters.
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.trainable as f64 / self.total as f64
        }
    }
}

impl std::fmt::Display for ParamCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trainable params: {} || all params: {} || trainable%: {:.4}",
            thousands(self.trainable),
            thousands(self.total),
            self.percent()
        )
    }
}

/// `1234567` -> `1,234,567` (Python's `{:,d}`).
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Parameters of a LLaMA-family model with this config: embeddings, per layer the seven
/// projections and two RMSNorm weights, the final norm, and `lm_head` unless tied.
pub fn llama_base_params(cfg: &LlamaConfig) -> usize {
    let h = cfg.hidden_size;
    let mut n = cfg.vocab_size * h + h;
    if !cfg.tie_word_embeddings {
        n += cfg.vocab_size * h;
    }
    for layer in 0..cfg.n_layers() {
        n += 2 * h;
        for p in PROJECTIONS {
            if let Some((o, i)) = cfg.proj_shape(layer, p) {
                n += o * i;
            }
        }
    }
    n
}

/// `(module path, (out, in))` of every projection of a LLaMA config, in model order.
pub fn llama_linear_shapes(cfg: &LlamaConfig) -> Vec<(String, (usize, usize))> {
    let mut out = Vec::new();
    for layer in 0..cfg.n_layers() {
        for p in PROJECTIONS {
            if let Some(shape) = cfg.proj_shape(layer, p) {
                out.push((crate::model::config::module_path(layer, p), shape));
            }
        }
    }
    out
}

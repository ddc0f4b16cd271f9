//! Adapter scaling rules: the one place that turns (rule, alpha, rank) into the scale `s` of
//! `y = W x + s * B A x`.
//!
//! - `lora`: `s = alpha / r` (Hu et al., PEFT default)
//! - `rora`: `s = alpha / sqrt(r)` (RoRA; identical to PEFT's `use_rslora=True`)
//! - `fixed`: `s` given directly, independent of rank and alpha
//! - `learned`: a trainable scalar starting at the given value (bottleneck adapters only,
//!   LLM-Adapters' `scaling="learned"`, which starts at 1.0)

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "rule", content = "value")]
pub enum ScalingRule {
    Lora,
    Rora,
    Fixed(f64),
    Learned(f64),
}

impl ScalingRule {
    /// The scale for a module with rank `r` and `alpha`.
    pub fn scale(self, alpha: f64, r: usize) -> f64 {
        match self {
            ScalingRule::Lora => alpha / r as f64,
            ScalingRule::Rora => alpha / (r as f64).sqrt(),
            ScalingRule::Fixed(s) | ScalingRule::Learned(s) => s,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ScalingRule::Lora => "lora",
            ScalingRule::Rora => "rora",
            ScalingRule::Fixed(_) => "fixed",
            ScalingRule::Learned(_) => "learned",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference: the RoRA paper (seed/rora-paper.md) and PEFT's LoraLayer.update_layer:
    // scaling = lora_alpha / sqrt(r) if use_rslora else lora_alpha / r.
    #[test]
    fn scales_follow_the_formulas_with_alpha_not_equal_r() {
        assert_eq!(ScalingRule::Lora.scale(16.0, 64), 0.25);
        assert_eq!(ScalingRule::Rora.scale(16.0, 64), 2.0);
        assert_eq!(ScalingRule::Fixed(0.5).scale(16.0, 64), 0.5);
        // alpha = 2r: lora is constant, rora grows like sqrt(r)
        assert_eq!(
            ScalingRule::Lora.scale(8.0, 4),
            ScalingRule::Lora.scale(256.0, 128)
        );
        assert_eq!(ScalingRule::Rora.scale(32.0, 16), 8.0);
    }
}

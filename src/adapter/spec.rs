//! The per-module description of an adapter: method, rank, alpha, scaling rule.
//!
//! One [`AdapterSpec`] is resolved per adapted module (global rank/alpha, overridden by the
//! config's rank/alpha patterns); its [`AdapterSpec::scale`] is the single source of the scale `s`.

use serde::{Deserialize, Serialize};

use super::scaling::ScalingRule;

/// Which low-rank update is learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// `W + s B A`.
    #[default]
    Lora,
    /// Weight-decomposed: `m * (W + s B A) / ||W + s B A||_row` (Liu et al. 2024; PEFT `use_dora`).
    Dora,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Lora => "lora",
            Method::Dora => "dora",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdapterSpec {
    pub method: Method,
    pub rank: usize,
    pub alpha: f64,
    pub rule: ScalingRule,
}

impl AdapterSpec {
    /// The scale `s` of `s * B A`.
    pub fn scale(&self) -> f64 {
        self.rule.scale(self.alpha, self.rank)
    }

    /// Trainable parameters for a module of shape `(out, in)`: `r (in + out)`, plus `out` for DoRA's
    /// magnitude (the count PEFT's `print_trainable_parameters` reports).
    pub fn trainable_params(&self, (out, inp): (usize, usize)) -> usize {
        let lora = self.rank * (inp + out);
        match self.method {
            Method::Lora => lora,
            Method::Dora => lora + out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_scale_follow_the_formulas() {
        let s = AdapterSpec {
            method: Method::Dora,
            rank: 8,
            alpha: 16.0,
            rule: ScalingRule::Rora,
        };
        // r (in + out) + out = 8 * (64 + 32) + 32
        assert_eq!(s.trainable_params((32, 64)), 800);
        assert!((s.scale() - 16.0 / 8f64.sqrt()).abs() < 1e-12);
        let l = AdapterSpec {
            method: Method::Lora,
            ..s
        };
        assert_eq!(l.trainable_params((32, 64)), 768);
    }
}

//! The per-module description of an adapter: method, rank, alpha, scaling rule.
//!
//! One [`AdapterSpec`] is resolved per adapted module (global rank/alpha, overridden by the
//! config's rank/alpha patterns); its [`AdapterSpec::scale`] is the single source of the scale `s`.
//! For the bottleneck methods (series, parallel) the rank is the bottleneck size (the adapter's
//! inner width, LLM-Adapters' `bottleneck_size`) and the rule is `fixed` or `learned`.

use serde::{Deserialize, Serialize};

use super::bottleneck::Placement;
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
    /// Series (Houlsby) bottleneck adapter, LLM-Adapters' `bottleneck`: `h + s up(act(down(h)))`
    /// on `down_proj`'s output, or `W (x + s up(act(down(x))))` before `gate_proj` / `up_proj`.
    Series,
    /// Parallel bottleneck adapter (LLM-Adapters' `use_parallel_adapter`): `W x + s up(act(down(x)))`.
    Parallel,
    /// Prefix tuning: learned keys and values before every layer's attention (PEFT
    /// `PREFIX_TUNING`); `rank` is the number of virtual tokens.
    Prefix,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Lora => "lora",
            Method::Dora => "dora",
            Method::Series => "series",
            Method::Parallel => "parallel",
            Method::Prefix => "prefix",
        }
    }

    /// A bottleneck adapter (series or parallel), not a low-rank update of the weight.
    pub fn is_bottleneck(self) -> bool {
        matches!(self, Method::Series | Method::Parallel)
    }

    /// Whether the adapter can be folded into the weight (a bottleneck's non-linearity and a
    /// prefix cannot).
    pub fn mergeable(self) -> bool {
        matches!(self, Method::Lora | Method::Dora)
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

    /// Trainable parameters for the module `proj` (its last path component, e.g. `down_proj`) of
    /// shape `(out, in)`, as PEFT's `print_trainable_parameters` counts them: `r (in + out)`, plus
    /// `out` for DoRA's magnitude; a bottleneck `b (d_in + d_out)` with its placement's widths,
    /// plus 1 for a learned scale. `None` where a series adapter has no place (see
    /// [`super::bottleneck::Placement::of`]).
    pub fn trainable_params(&self, proj: &str, (out, inp): (usize, usize)) -> Option<usize> {
        let lora = self.rank * (inp + out);
        Some(match self.method {
            Method::Lora => lora,
            Method::Dora => lora + out,
            Method::Series | Method::Parallel => {
                let (d_in, d_out) = Placement::of(self.method, proj)?.widths((out, inp));
                let learned = matches!(self.rule, ScalingRule::Learned(_));
                self.rank * (d_in + d_out) + usize::from(learned)
            }
            // no per-module parameters (`super::prefix::PrefixShape::params`)
            Method::Prefix => return None,
        })
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
        assert_eq!(s.trainable_params("q_proj", (32, 64)), Some(800));
        assert!((s.scale() - 16.0 / 8f64.sqrt()).abs() < 1e-12);
        let l = AdapterSpec {
            method: Method::Lora,
            ..s
        };
        assert_eq!(l.trainable_params("q_proj", (32, 64)), Some(768));
    }

    // Reference: LLM-Adapters bottleneck.py (adapter_down [b, d_in], adapter_up [d_out, b], no
    // biases; mh_adapter in->in, output_adapter out->out, parallel in->out; adapter_scaling [1]).
    #[test]
    fn bottleneck_params_follow_the_placement() {
        let s = AdapterSpec {
            method: Method::Series,
            rank: 4,
            alpha: 1.0,
            rule: ScalingRule::Fixed(1.0),
        };
        // down_proj [out 16, in 40]: after the module, 16 -> 4 -> 16
        assert_eq!(s.trainable_params("down_proj", (16, 40)), Some(2 * 4 * 16));
        // up_proj [40, 16]: before the module, 16 -> 4 -> 16
        assert_eq!(s.trainable_params("up_proj", (40, 16)), Some(2 * 4 * 16));
        assert_eq!(s.trainable_params("q_proj", (16, 16)), None);
        let p = AdapterSpec {
            method: Method::Parallel,
            rule: ScalingRule::Learned(1.0),
            ..s
        };
        assert_eq!(
            p.trainable_params("up_proj", (40, 16)),
            Some(4 * (16 + 40) + 1)
        );
    }
}

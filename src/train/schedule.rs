//! Learning-rate schedules with HF `transformers` semantics (`get_{linear,cosine,constant}_schedule_with_warmup`).
//!
//! The update of optimizer step `s` (0-based: the first update is `s = 0`) uses `lr * factor(s)`,
//! as HF's scheduler does: with warmup, the very first update has learning rate 0.

use serde::{Deserialize, Serialize};

crate::choice_enum! {
    /// The learning-rate schedule after warmup (the `train` stage's `schedule` choices).
    pub enum Schedule {
        Linear = "linear",
        Cosine = "cosine",
        Constant = "constant",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Warmup {
    Steps(usize),
    /// A fraction of the total optimizer steps, rounded up (HF `warmup_ratio`).
    Ratio(f64),
}

impl Warmup {
    pub fn steps(self, total: usize) -> usize {
        match self {
            Warmup::Steps(n) => n,
            Warmup::Ratio(r) => (r * total as f64).ceil() as usize,
        }
    }
}

/// The multiplier of the base learning rate for the update of step `step` of `total`.
pub fn lr_factor(schedule: Schedule, warmup: usize, total: usize, step: usize) -> f64 {
    if step < warmup {
        return step as f64 / warmup.max(1) as f64;
    }
    let after = (total.saturating_sub(warmup)).max(1) as f64;
    let progress = (step - warmup) as f64 / after;
    match schedule {
        Schedule::Constant => 1.0,
        Schedule::Linear => ((total as f64 - step as f64) / after).max(0.0),
        Schedule::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values: transformers.optimization's lr_lambda functions, evaluated by hand.
    #[test]
    fn linear_warms_up_then_decays_to_zero() {
        let f = |s| lr_factor(Schedule::Linear, 4, 12, s);
        assert_eq!(
            [f(0), f(1), f(2), f(4), f(8), f(12)],
            [0.0, 0.25, 0.5, 1.0, 0.5, 0.0]
        );
    }

    #[test]
    fn cosine_and_constant_follow_hf() {
        let c = |s| lr_factor(Schedule::Cosine, 2, 10, s);
        assert_eq!(c(1), 0.5);
        assert!((c(2) - 1.0).abs() < 1e-12);
        assert!((c(6) - 0.5).abs() < 1e-12); // half-way through the decay: 0.5 * (1 + cos(pi / 2))
        assert!(c(10).abs() < 1e-12);
        assert_eq!(lr_factor(Schedule::Constant, 2, 10, 1), 0.5);
        assert_eq!(lr_factor(Schedule::Constant, 2, 10, 9), 1.0);
        assert_eq!(lr_factor(Schedule::Linear, 0, 10, 0), 1.0);
    }

    #[test]
    fn warmup_ratio_rounds_up_like_hf() {
        assert_eq!(Warmup::Ratio(0.1).steps(95), 10);
        assert_eq!(Warmup::Steps(7).steps(95), 7);
    }
}

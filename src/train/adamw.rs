//! AdamW with PyTorch semantics (`torch.optim.AdamW`, single-tensor path, no amsgrad), run on
//! host `f32` buffers so its state can be exported bit for bit into checkpoints.
//!
//! Per parameter, at step `t` (1-based), with gradient `g`:
//! ```text
//! p <- p * (1 - lr * wd)                       (decoupled weight decay)
//! m <- m + (1 - beta1) * (g - m)               (lerp, as torch)
//! v <- beta2 * v + (1 - beta2) * g * g
//! p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWParams {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWParams {
    /// PyTorch's defaults except weight decay, which the LLM-Adapters recipe sets to 0.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// First and second moments of every parameter (in the order of the trainable variables) and the
/// number of steps taken.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWState {
    pub step: u64,
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
}

impl AdamWState {
    pub fn new(sizes: &[usize]) -> Self {
        Self {
            step: 0,
            m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }
}

pub struct AdamW {
    pub params: AdamWParams,
    pub state: AdamWState,
}

impl AdamW {
    pub fn new(params: AdamWParams, sizes: &[usize]) -> Self {
        Self {
            params,
            state: AdamWState::new(sizes),
        }
    }

    /// One update of every parameter buffer `p[i]` with gradient `g[i]` at learning rate `lr`.
    pub fn step(&mut self, lr: f64, params: &mut [Vec<f32>], grads: &[Vec<f32>]) {
        self.state.step += 1;
        let t = self.state.step as i32;
        let AdamWParams {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.params;
        let bias1 = 1.0 - beta1.powi(t);
        let bias2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        let step_size = (lr / bias1) as f32;
        let decay = (1.0 - lr * weight_decay) as f32;
        let (b1, b2) = (beta1 as f32, beta2 as f32);
        let (bias2_sqrt, eps) = (bias2_sqrt as f32, eps as f32);
        for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            let (m, v) = (&mut self.state.m[i], &mut self.state.v[i]);
            for j in 0..p.len() {
                let gj = g[j];
                if weight_decay != 0.0 {
                    p[j] *= decay;
                }
                m[j] += (gj - m[j]) * (1.0 - b1); // torch: exp_avg.lerp_(grad, 1 - beta1)
                v[j] = b2 * v[j] + (1.0 - b2) * gj * gj;
                let denom = v[j].sqrt() / bias2_sqrt + eps;
                p[j] -= step_size * (m[j] / denom);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: the update equations of torch.optim.AdamW (docs, "Algorithm"), evaluated in f64
    /// by hand for two steps on a scalar parameter p0 = 1.0 with gradients 0.5 then -0.25,
    /// lr = 0.1, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01.
    #[test]
    fn two_steps_match_the_pytorch_update_rule() {
        let (lr, wd, b1, b2, eps) = (0.1f64, 0.01, 0.9, 0.999, 1e-8);
        let mut want = 1.0f64;
        let (mut m, mut v) = (0.0f64, 0.0f64);
        for (t, g) in [(1, 0.5f64), (2, -0.25)] {
            want *= 1.0 - lr * wd;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let mh = m / (1.0 - b1.powi(t));
            let vh = v / (1.0 - b2.powi(t));
            want -= lr * mh / (vh.sqrt() + eps);
        }
        let mut opt = AdamW::new(
            AdamWParams {
                weight_decay: wd,
                ..Default::default()
            },
            &[1],
        );
        let mut p = vec![vec![1.0f32]];
        opt.step(lr, &mut p, &[vec![0.5]]);
        opt.step(lr, &mut p, &[vec![-0.25]]);
        assert!(
            (f64::from(p[0][0]) - want).abs() < 1e-6,
            "{} vs {want}",
            p[0][0]
        );
        assert_eq!(opt.state.step, 2);
        // the first Adam step moves each coordinate by ~lr regardless of gradient scale
        let mut opt = AdamW::new(AdamWParams::default(), &[2]);
        let mut p = vec![vec![0.0f32, 0.0]];
        opt.step(0.01, &mut p, &[vec![1e-3, -50.0]]);
        assert!(
            (p[0][0] + 0.01).abs() < 1e-6 && (p[0][1] - 0.01).abs() < 1e-6,
            "{:?}",
            p[0]
        );
    }

    #[test]
    fn weight_decay_is_decoupled_from_the_gradient() {
        // zero gradient: Adam's step is 0, only the decay acts: p * (1 - lr * wd)
        let mut opt = AdamW::new(
            AdamWParams {
                weight_decay: 0.5,
                ..Default::default()
            },
            &[1],
        );
        let mut p = vec![vec![2.0f32]];
        opt.step(0.1, &mut p, &[vec![0.0]]);
        assert!((p[0][0] - 2.0 * 0.95).abs() < 1e-6, "{}", p[0][0]);
    }
}

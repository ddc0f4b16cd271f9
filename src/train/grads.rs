//! Gradients on the host: accumulation over micro-batches, the global L2 norm and clipping
//! (`torch.nn.utils.clip_grad_norm_` semantics: scale by `max_norm / (norm + 1e-6)` when below 1).

use candle_core::backprop::GradStore;
use candle_core::{DType, Var};

use super::error::{Result, TrainError};

/// Add each variable's gradient from `grads` into `acc` (same order as `vars`).
/// A variable without a gradient is an error naming it.
pub fn accumulate(
    acc: &mut [Vec<f32>],
    grads: &GradStore,
    vars: &[(String, Var)],
    step: usize,
) -> Result<()> {
    for ((name, var), a) in vars.iter().zip(acc.iter_mut()) {
        let Some(g) = grads.get(var.as_tensor()) else {
            return Err(TrainError::NoGradient { name: name.clone() });
        };
        let g = g
            .to_dtype(DType::F32)
            .and_then(|g| g.flatten_all()?.to_vec1::<f32>());
        let g = g.map_err(TrainError::candle(step))?;
        a.iter_mut().zip(&g).for_each(|(x, y)| *x += y);
    }
    Ok(())
}

/// The L2 norm of all gradients together (f64 accumulation, fixed order).
pub fn global_norm(grads: &[Vec<f32>]) -> f64 {
    grads
        .iter()
        .flatten()
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt()
}

/// Scale the gradients so their global norm is at most `max_norm`. Returns the norm before clipping.
pub fn clip(grads: &mut [Vec<f32>], max_norm: Option<f64>) -> f64 {
    let norm = global_norm(grads);
    if let Some(max) = max_norm {
        let coef = max / (norm + 1e-6);
        if coef < 1.0 {
            let coef = coef as f32;
            grads.iter_mut().flatten().for_each(|g| *g *= coef);
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_scales_to_the_max_norm_and_reports_the_norm_before() {
        let mut g = vec![vec![3.0f32], vec![4.0]];
        assert_eq!(clip(&mut g, Some(10.0)), 5.0);
        assert_eq!(g, vec![vec![3.0], vec![4.0]]);
        assert_eq!(clip(&mut g, Some(1.0)), 5.0);
        assert!((global_norm(&g) - 1.0).abs() < 1e-5);
    }
}

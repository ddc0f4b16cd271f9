//! What a pruned model looks like: zeros per projection, per layer, and parameter counts.

use std::fmt;

use candle_core::DType;

use super::error::Result;
use crate::model::Llama;

/// One projection's size and zeros.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleSparsity {
    /// HF module path, e.g. `model.layers.0.self_attn.q_proj`.
    pub module: String,
    pub layer: usize,
    /// HF short name (`q_proj` ...).
    pub proj: String,
    pub total: usize,
    pub zeros: usize,
}

impl ModuleSparsity {
    pub fn sparsity(&self) -> f64 {
        self.zeros as f64 / self.total.max(1) as f64
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PruneReport {
    /// Every projection, in the model's order.
    pub modules: Vec<ModuleSparsity>,
    /// All base parameters (tied embeddings once).
    pub total_params: usize,
    /// Base parameters that are not exactly zero.
    pub nonzero_params: usize,
}

pub(crate) fn count_zeros(t: &candle_core::Tensor) -> Result<usize> {
    let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(v.iter().filter(|x| **x == 0.0).count())
}

impl PruneReport {
    /// Measure `model` as it is now.
    pub fn of(model: &Llama) -> Result<Self> {
        let mut modules = Vec::new();
        for (i, (path, lin)) in model.linears().into_iter().enumerate() {
            let proj = path.rsplit('.').next().unwrap_or_default().to_string();
            modules.push(ModuleSparsity {
                layer: i / crate::model::config::PROJECTIONS.len(),
                proj,
                total: lin.weight().elem_count(),
                zeros: count_zeros(lin.weight())?,
                module: path,
            });
        }
        let (mut total, mut zeros) = (0, 0);
        for (_, t) in model.named_tensors() {
            total += t.elem_count();
            zeros += count_zeros(&t)?;
        }
        Ok(Self {
            modules,
            total_params: total,
            nonzero_params: total - zeros,
        })
    }

    /// Sparsity of all projections of each layer together, layer by layer.
    pub fn layer_sparsity(&self) -> Vec<f64> {
        let n = self.modules.iter().map(|m| m.layer + 1).max().unwrap_or(0);
        let mut acc = vec![(0usize, 0usize); n];
        for m in &self.modules {
            acc[m.layer].0 += m.zeros;
            acc[m.layer].1 += m.total;
        }
        acc.iter()
            .map(|(z, t)| *z as f64 / (*t).max(1) as f64)
            .collect()
    }

    /// Sparsity of all projections together.
    pub fn projection_sparsity(&self) -> f64 {
        let z: usize = self.modules.iter().map(|m| m.zeros).sum();
        let t: usize = self.modules.iter().map(|m| m.total).sum();
        z as f64 / t.max(1) as f64
    }
}

impl fmt::Display for PruneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "parameters: {} total, {} nonzero ({:.2}% zero); projections {:.2}% zero",
            self.total_params,
            self.nonzero_params,
            100.0 * (1.0 - self.nonzero_params as f64 / self.total_params.max(1) as f64),
            100.0 * self.projection_sparsity()
        )?;
        for (layer, s) in self.layer_sparsity().iter().enumerate() {
            write!(f, "layer {layer:>3}: {:>6.2}% |", 100.0 * s)?;
            for m in self.modules.iter().filter(|m| m.layer == layer) {
                write!(f, " {} {:.1}%", m.proj, 100.0 * m.sparsity())?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

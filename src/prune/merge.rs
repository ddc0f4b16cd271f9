//! Merging adapters into an unstructured-pruned model without filling its zeros: the merged
//! weight `W'` (LoRA `W + sBA`, DoRA `(m/n)(W + sBA)`) is multiplied by the base's nonzero mask,
//! so the result has exactly the base's zero pattern. The part of the update that falls on
//! pruned positions is dropped; the report says how large it was relative to the whole update.

use candle_core::DType;

use super::error::{PruneError, Result};
use crate::model::Llama;

#[derive(Debug, Clone, PartialEq)]
pub struct SparseMergeReport {
    /// Per merged module: `||dropped update||_F / ||update||_F` (0 when the update is zero).
    pub dropped: Vec<(String, f64)>,
}

impl SparseMergeReport {
    /// The largest relative drop over all modules.
    pub fn max_dropped(&self) -> f64 {
        self.dropped.iter().map(|(_, d)| *d).fold(0.0, f64::max)
    }
}

/// Fold every adapter into its weight, keep the base's zeros, and remove the adapters.
/// A module whose adapter is already merged is an error: its base zero pattern is no longer exact.
pub fn merge_keep_sparsity(model: &mut Llama) -> Result<SparseMergeReport> {
    for (path, l) in model.linears() {
        if l.is_merged() {
            return Err(PruneError::module(
                &path,
                "its adapter is already merged; unmerge before a sparsity-keeping merge",
            ));
        }
    }
    let mut dropped = Vec::new();
    for (path, l) in model.linears_mut() {
        let Some(adapter) = l.set_adapter(None)? else {
            continue;
        };
        let w = l.weight().clone();
        let merged = adapter.merged_weight(&w)?;
        let keep = w.ne(0.0)?.to_dtype(w.dtype())?;
        let kept = merged.mul(&keep)?;
        let delta = merged.sub(&w)?.to_dtype(DType::F64)?;
        let lost = merged.sub(&kept)?.to_dtype(DType::F64)?;
        let dn = delta.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
        let ln = lost.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
        dropped.push((path, if dn > 0.0 { ln / dn } else { 0.0 }));
        l.set_weight(kept);
    }
    Ok(SparseMergeReport { dropped })
}

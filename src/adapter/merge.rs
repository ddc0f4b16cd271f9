//! Merging adapters into the base weights of a whole model, and undoing it.
//!
//! LoRA: `W' = W + s B A`; DoRA: `W' = (m/n)[:, None] * (W + s B A)`. A merged model computes the
//! same outputs as the unmerged one (to rounding) with plain linears; `unmerge_all` restores the
//! base weights, `merge_and_unload` folds the adapters in for good (for export as a plain model).

use super::attach::AdaptableModel;
use super::error::AdapterError;

/// A prefix is attention state, not a weight delta: nothing to fold in.
fn refuse_prefix<M: AdaptableModel + ?Sized>(model: &M) -> Result<(), AdapterError> {
    match model.prefix() {
        Some(_) => Err(AdapterError::InvalidConfig {
            field: "method",
            msg: "a prefix (prefix tuning) cannot be merged into the weights: evaluate it unmerged"
                .into(),
        }),
        None => Ok(()),
    }
}

/// Merge every adapter not yet merged; returns how many were merged.
pub fn merge_all<M: AdaptableModel + ?Sized>(model: &mut M) -> Result<usize, AdapterError> {
    refuse_prefix(model)?;
    let mut n = 0;
    for (path, lin) in model.linears_mut() {
        if lin.merge().map_err(AdapterError::tensor(&path))? {
            n += 1;
        }
    }
    Ok(n)
}

/// Unmerge every merged adapter; returns how many were unmerged.
pub fn unmerge_all<M: AdaptableModel + ?Sized>(model: &mut M) -> Result<usize, AdapterError> {
    let mut n = 0;
    for (path, lin) in model.linears_mut() {
        if lin.unmerge().map_err(AdapterError::tensor(&path))? {
            n += 1;
        }
    }
    Ok(n)
}

/// Fold every adapter into its weight and remove it; returns how many were folded in.
pub fn merge_and_unload<M: AdaptableModel + ?Sized>(model: &mut M) -> Result<usize, AdapterError> {
    refuse_prefix(model)?;
    let mut n = 0;
    for (path, lin) in model.linears_mut() {
        if lin
            .merge_and_unload()
            .map_err(AdapterError::tensor(&path))?
            .is_some()
        {
            n += 1;
        }
    }
    Ok(n)
}

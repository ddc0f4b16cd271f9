//! The `merge` runner: fold the trained adapter into the base weights (LoRA `W + sBA`, DoRA
//! `(m/n)(W + sBA)`) and store the result as an HF dir. With `keep-sparsity`, the merged weights
//! keep the base's zero pattern (`prune::merge_keep_sparsity`) and the stage's output says how
//! sparse the base and the merged model are and how much of the update was dropped.

use std::path::Path;

use serde_json::json;

use crate::adapter::merge_and_unload;
use crate::cache::Entry;
use crate::prune::{PruneReport, merge_keep_sparsity};
use crate::run::artifacts::{MODEL_DIR, install_adapter, load_model, subdir};
use crate::run::context::Ctx;
use crate::run::error::Result;

use super::MergeParams;

pub fn run(
    ctx: &Ctx,
    p: &MergeParams,
    model: &Entry,
    trained: &Entry,
    out: &Path,
) -> Result<serde_json::Value> {
    let mut loaded = load_model(model, p.dtype.candle(), &ctx.device)?;
    install_adapter(&mut loaded, trained)?;
    if p.keep_sparsity {
        let before = linear_sparsity(&PruneReport::of(&loaded.model)?);
        let report = merge_keep_sparsity(&mut loaded.model)?;
        let after = linear_sparsity(&PruneReport::of(&loaded.model)?);
        loaded.save_hf_dir(&subdir(out, MODEL_DIR)?)?;
        let n = report.dropped.len().max(1) as f64;
        let mean = report.dropped.iter().map(|(_, d)| d).sum::<f64>() / n;
        return Ok(json!({
            "merged_modules": report.dropped.len(),
            "dtype": p.dtype,
            "keep_sparsity": true,
            "linear_sparsity_base": before,
            "linear_sparsity_merged": after,
            "dropped_update_mean": mean,
            "dropped_update_max": report.max_dropped(),
            "dropped_update": report.dropped.iter().map(|(m, d)| json!({"module": m, "relative_norm": d})).collect::<Vec<_>>(),
        }));
    }
    let merged = merge_and_unload(&mut loaded.model)?;
    loaded.save_hf_dir(&subdir(out, MODEL_DIR)?)?;
    Ok(json!({ "merged_modules": merged, "dtype": p.dtype, "keep_sparsity": false }))
}

/// Zeros / elements over all projection weights.
fn linear_sparsity(r: &PruneReport) -> f64 {
    let (zeros, total) = r
        .modules
        .iter()
        .fold((0usize, 0usize), |(z, t), m| (z + m.zeros, t + m.total));
    zeros as f64 / total.max(1) as f64
}

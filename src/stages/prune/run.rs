//! The `prune` runner: unstructured (magnitude, Wanda), N:M, or structured (attention heads as
//! whole KV groups, FFN channels) pruning of a model entry, stored as an HF dir (per-layer dims
//! recorded) that later stages load like any other model, plus the sparsity report.

use std::path::Path;

use candle_core::DType;
use serde_json::json;

use crate::cache::Entry;
use crate::exec::progress::Progress;

use crate::prune::{
    Group, Importance, InputNorms, Pattern, PruneReport, Score, StructuredSpec, UnstructuredSpec,
    apply_structured, collect_input_norms, plan_structured, prune_unstructured, ratio_for_target,
};

use crate::run::artifacts::{MODEL_DIR, load_model, subdir};
use crate::run::context::Ctx;
use crate::run::error::{Result, RunError};
use crate::stages::tokens;

use super::{PruneMethod, PruneParams};

pub struct PruneInputs<'a> {
    pub model: &'a Entry,
    /// The `tokens` entry of the calibration data under this model, when the method needs
    /// activations.
    pub calibration: Option<&'a Entry>,
}

fn sparsity(p: &PruneParams) -> Result<f64> {
    p.sparsity
        .ok_or_else(|| RunError::Plan(format!("prune `{}` needs `sparsity`", p.method)))
}

pub fn run(
    ctx: &Ctx,
    p: &PruneParams,
    inputs: PruneInputs,
    out: &Path,
    progress: &dyn Progress,
) -> Result<serde_json::Value> {
    let mut loaded = load_model(inputs.model, DType::F32, &ctx.device)?;
    let calib: Option<InputNorms> = match (inputs.calibration, &p.calibration) {
        (Some(entry), Some(c)) => {
            let ds = tokens::load(entry)?;
            let seqs: Vec<Vec<u32>> = ds
                .train
                .iter()
                .take(c.rows)
                .map(|e| e.input_ids.iter().copied().take(c.max_len).collect())
                .collect();
            progress.message(&format!("calibrating on {} rows", seqs.len()));
            Some(collect_input_norms(&mut loaded.model, &seqs)?)
        }
        _ => None,
    };
    let method = p.method;
    match method {
        PruneMethod::Magnitude | PruneMethod::Wanda | PruneMethod::NofM => {
            let score = if method == PruneMethod::Wanda {
                Score::Wanda
            } else {
                Score::Magnitude
            };
            let pattern = match (method, p.n_m) {
                (PruneMethod::NofM, Some((n, m))) => Pattern::NofM { n, m },
                (PruneMethod::NofM, None) => {
                    return Err(RunError::Plan("prune `n:m` needs `n-m`".into()));
                }
                (PruneMethod::Wanda, _) => Pattern::Sparsity {
                    sparsity: sparsity(p)?,
                    group: Group::Row,
                },
                _ => Pattern::Sparsity {
                    sparsity: sparsity(p)?,
                    group: Group::Matrix,
                },
            };
            prune_unstructured(
                &mut loaded.model,
                &UnstructuredSpec { score, pattern },
                calib.as_ref(),
            )?;
        }
        PruneMethod::Heads | PruneMethod::Ffn => {
            let ratio = match (p.sparsity, p.target_params) {
                (Some(s), _) => s,
                (None, Some(t)) => ratio_for_target(loaded.model.config(), t as usize)?,
                (None, None) => {
                    return Err(RunError::Plan(format!(
                        "prune `{method}` needs `sparsity` or `target-params`"
                    )));
                }
            };
            let spec = StructuredSpec {
                head_ratio: if method == PruneMethod::Heads {
                    ratio
                } else {
                    0.0
                },
                ffn_ratio: if method == PruneMethod::Ffn {
                    ratio
                } else {
                    0.0
                },
                importance: if calib.is_some() {
                    Importance::Activation
                } else {
                    Importance::Magnitude
                },
                global: false,
            };
            let plan = plan_structured(&loaded.model, &spec, calib.as_ref())?;
            loaded.model = apply_structured(&loaded.model, &plan)?;
            loaded.config = loaded.model.config().clone();
        }
    }
    let report = PruneReport::of(&loaded.model)?;
    loaded.save_hf_dir(&subdir(out, MODEL_DIR)?)?;
    std::fs::write(out.join("prune_report.txt"), report.to_string())
        .map_err(crate::run::error::io(&out.join("prune_report.txt")))?;
    Ok(json!({
        "method": method.name(),
        "parameters": loaded.model.num_parameters(),
        "report": report.to_string(),
    }))
}

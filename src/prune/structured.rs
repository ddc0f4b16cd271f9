//! Structured pruning: remove whole KV groups (a KV head with the `n_heads / n_kv_heads` query
//! heads that read it, so GQA stays valid) and FFN channels, giving a smaller model whose layers
//! may differ (`LlamaConfig.layers[i]`).
//!
//! Importance of a KV group `g` of layer `l` (query heads `g*rep .. (g+1)*rep`, HF's repeat_kv
//! order) and of an FFN channel `c`:
//! - magnitude: the L2 norm of all weights that belong to it (its q/k/v rows and o_proj columns;
//!   its gate/up rows and down_proj column);
//! - activation: the L2 norm of its output contribution bound, `sqrt(sum_j ||X_j||^2 ||W[:,j]||^2)`
//!   over its o_proj (down_proj) input columns `j`, with `X` from calibration. A head or channel
//!   whose output columns are zero scores 0 and goes first.
//!
//! [`plan_structured`] decides what to keep; [`apply_structured`] builds the smaller model from the
//! original's tensors through `Llama::from_tensors`, which checks every shape.

use candle_core::{DType, Tensor};

use super::calib::{InputNorms, ensure_no_adapters};
use super::error::{PruneError, Result};
use super::mask;
use crate::model::Llama;
use crate::model::config::{LayerDims, module_path};
use crate::model::weights::NamedTensors;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    Magnitude,
    Activation,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StructuredSpec {
    /// Fraction of KV groups (with their query heads) to remove.
    pub head_ratio: f64,
    /// Fraction of FFN channels to remove.
    pub ffn_ratio: f64,
    pub importance: Importance,
    /// Rank groups (channels) of all layers together instead of layer by layer.
    pub global: bool,
}

/// What one layer keeps, in ascending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerKeep {
    pub kv_groups: Vec<usize>,
    pub ffn_channels: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructuredPlan {
    pub layers: Vec<LayerKeep>,
}

fn host2(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

fn weight(model: &Llama, layer: usize, proj: &str) -> Result<Vec<Vec<f32>>> {
    let path = module_path(layer, proj);
    let lins = model.linears();
    let lin = lins
        .iter()
        .find(|(p, _)| *p == path)
        .ok_or_else(|| PruneError::module(&path, "no such projection"))?;
    host2(lin.1.weight())
}

fn row_sq(w: &[Vec<f32>], r: usize) -> f64 {
    w[r].iter().map(|x| f64::from(*x) * f64::from(*x)).sum()
}

fn col_sq(w: &[Vec<f32>], c: usize, scale: f64) -> f64 {
    w.iter()
        .map(|r| f64::from(r[c]) * f64::from(r[c]))
        .sum::<f64>()
        * scale
}

/// Importance of every KV group and FFN channel of each layer.
fn importances(
    model: &Llama,
    how: Importance,
    calib: Option<&InputNorms>,
) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
    let cfg = model.config();
    let d = cfg.head_dim;
    let mut out = Vec::with_capacity(cfg.n_layers());
    for (l, dims) in cfg.layers.iter().enumerate() {
        let rep = dims.n_heads / dims.n_kv_heads;
        let o = weight(model, l, "o_proj")?;
        let down = weight(model, l, "down_proj")?;
        let (groups, chans) = match how {
            Importance::Magnitude => {
                let (q, k, v) = (
                    weight(model, l, "q_proj")?,
                    weight(model, l, "k_proj")?,
                    weight(model, l, "v_proj")?,
                );
                let (gate, up) = (weight(model, l, "gate_proj")?, weight(model, l, "up_proj")?);
                let groups = (0..dims.n_kv_heads)
                    .map(|g| {
                        let q_rows = g * rep * d..(g + 1) * rep * d;
                        let kv_rows = g * d..(g + 1) * d;
                        let s: f64 = q_rows
                            .map(|r| row_sq(&q, r) + col_sq(&o, r, 1.0))
                            .sum::<f64>()
                            + kv_rows.map(|r| row_sq(&k, r) + row_sq(&v, r)).sum::<f64>();
                        s.sqrt() as f32
                    })
                    .collect();
                let chans = (0..dims.intermediate_size)
                    .map(|c| {
                        (row_sq(&gate, c) + row_sq(&up, c) + col_sq(&down, c, 1.0)).sqrt() as f32
                    })
                    .collect();
                (groups, chans)
            }
            Importance::Activation => {
                let calib = calib.ok_or_else(|| {
                    PruneError::Plan("activation importance needs calibration input norms".into())
                })?;
                let sq = |proj: &str| -> Result<Vec<f64>> {
                    let p = module_path(l, proj);
                    calib
                        .sq_sums
                        .get(&p)
                        .cloned()
                        .ok_or_else(|| PruneError::module(&p, "no calibration statistics"))
                };
                let (xo, xd) = (sq("o_proj")?, sq("down_proj")?);
                if xo.len() != dims.n_heads * d || xd.len() != dims.intermediate_size {
                    return Err(PruneError::Plan(format!(
                        "layer {l}: calibration statistics do not match the model's dims"
                    )));
                }
                let groups = (0..dims.n_kv_heads)
                    .map(|g| {
                        let cols = g * rep * d..(g + 1) * rep * d;
                        (cols.map(|c| col_sq(&o, c, xo[c])).sum::<f64>()).sqrt() as f32
                    })
                    .collect();
                let chans = (0..dims.intermediate_size)
                    .map(|c| col_sq(&down, c, xd[c]).sqrt() as f32)
                    .collect();
                (groups, chans)
            }
        };
        out.push((groups, chans));
    }
    Ok(out)
}

/// Indices to keep after removing `remove` lowest, never removing the last one.
fn keep_lowest_removed(scores: &[f32], remove: usize) -> Vec<usize> {
    let m = mask::lowest(scores, remove.min(scores.len().saturating_sub(1)));
    (0..scores.len()).filter(|i| !m[*i]).collect()
}

/// Global selection: remove the `k` lowest across layers, keeping at least one per layer.
fn keep_global(per_layer: &[&Vec<f32>], ratio: f64) -> Vec<Vec<usize>> {
    let flat: Vec<(f32, usize, usize)> = per_layer
        .iter()
        .enumerate()
        .flat_map(|(l, s)| s.iter().enumerate().map(move |(i, x)| (*x, l, i)))
        .collect();
    let k = (ratio * flat.len() as f64).round() as usize;
    let mut order: Vec<usize> = (0..flat.len()).collect();
    order.sort_by(|a, b| flat[*a].0.total_cmp(&flat[*b].0).then(a.cmp(b)));
    let mut left: Vec<usize> = per_layer.iter().map(|s| s.len()).collect();
    let mut removed: Vec<Vec<bool>> = per_layer.iter().map(|s| vec![false; s.len()]).collect();
    let mut done = 0;
    for idx in order {
        if done == k {
            break;
        }
        let (_, l, i) = flat[idx];
        if left[l] > 1 {
            removed[l][i] = true;
            left[l] -= 1;
            done += 1;
        }
    }
    removed
        .iter()
        .map(|r| (0..r.len()).filter(|i| !r[*i]).collect())
        .collect()
}

fn check_ratio(field: &'static str, value: f64) -> Result<()> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(PruneError::BadRatio { field, value })
    }
}

/// Decide which KV groups and FFN channels each layer keeps (`round(ratio * count)` removed per
/// layer, or across layers when `global`; at least one of each kept per layer).
pub fn plan_structured(
    model: &Llama,
    spec: &StructuredSpec,
    calib: Option<&InputNorms>,
) -> Result<StructuredPlan> {
    check_ratio("head_ratio", spec.head_ratio)?;
    check_ratio("ffn_ratio", spec.ffn_ratio)?;
    ensure_no_adapters(model)?;
    let imp = importances(model, spec.importance, calib)?;
    let layers = if spec.global {
        let g: Vec<&Vec<f32>> = imp.iter().map(|(g, _)| g).collect();
        let c: Vec<&Vec<f32>> = imp.iter().map(|(_, c)| c).collect();
        keep_global(&g, spec.head_ratio)
            .into_iter()
            .zip(keep_global(&c, spec.ffn_ratio))
            .map(|(kv_groups, ffn_channels)| LayerKeep {
                kv_groups,
                ffn_channels,
            })
            .collect()
    } else {
        imp.iter()
            .map(|(g, c)| LayerKeep {
                kv_groups: keep_lowest_removed(
                    g,
                    (spec.head_ratio * g.len() as f64).round() as usize,
                ),
                ffn_channels: keep_lowest_removed(
                    c,
                    (spec.ffn_ratio * c.len() as f64).round() as usize,
                ),
            })
            .collect()
    };
    Ok(StructuredPlan { layers })
}

fn index(ix: &[usize], device: &candle_core::Device) -> Result<Tensor> {
    let v: Vec<u32> = ix.iter().map(|i| *i as u32).collect();
    Ok(Tensor::from_vec(v, ix.len(), device)?)
}

fn check_plan(model: &Llama, plan: &StructuredPlan) -> Result<()> {
    let cfg = model.config();
    if plan.layers.len() != cfg.n_layers() {
        return Err(PruneError::Plan(format!(
            "{} layers planned, the model has {}",
            plan.layers.len(),
            cfg.n_layers()
        )));
    }
    for (l, (k, d)) in plan.layers.iter().zip(&cfg.layers).enumerate() {
        let ok = |v: &[usize], n: usize| {
            !v.is_empty() && v.windows(2).all(|w| w[0] < w[1]) && v.iter().all(|i| *i < n)
        };
        if !ok(&k.kv_groups, d.n_kv_heads) || !ok(&k.ffn_channels, d.intermediate_size) {
            return Err(PruneError::Plan(format!(
                "layer {l}: kept groups/channels must be non-empty, ascending and below {} / {}",
                d.n_kv_heads, d.intermediate_size
            )));
        }
    }
    Ok(())
}

/// Build the pruned model: the kept rows of q/k/v/gate/up and columns of o/down, other tensors
/// as they are, with per-layer dims in the new config.
pub fn apply_structured(model: &Llama, plan: &StructuredPlan) -> Result<Llama> {
    ensure_no_adapters(model)?;
    check_plan(model, plan)?;
    let mut cfg = model.config().clone();
    let d = cfg.head_dim;
    let mut w = NamedTensors::new("(structured prune)");
    for (name, t) in model.named_tensors() {
        w.insert(name, t);
    }
    let device = model.embed_tokens().device().clone();
    for (l, keep) in plan.layers.iter().enumerate() {
        let dims = cfg.layers[l];
        let rep = dims.n_heads / dims.n_kv_heads;
        let q_rows: Vec<usize> = keep
            .kv_groups
            .iter()
            .flat_map(|g| g * rep * d..(g + 1) * rep * d)
            .collect();
        let kv_rows: Vec<usize> = keep
            .kv_groups
            .iter()
            .flat_map(|g| g * d..(g + 1) * d)
            .collect();
        let (q_ix, kv_ix, f_ix) = (
            index(&q_rows, &device)?,
            index(&kv_rows, &device)?,
            index(&keep.ffn_channels, &device)?,
        );
        for (proj, ix, dim) in [
            ("q_proj", &q_ix, 0),
            ("k_proj", &kv_ix, 0),
            ("v_proj", &kv_ix, 0),
            ("o_proj", &q_ix, 1),
            ("gate_proj", &f_ix, 0),
            ("up_proj", &f_ix, 0),
            ("down_proj", &f_ix, 1),
        ] {
            let name = format!("{}.weight", module_path(l, proj));
            let t = w
                .tensors
                .remove(&name)
                .ok_or_else(|| PruneError::module(&name, "missing from the model's tensors"))?;
            w.insert(name, t.index_select(ix, dim)?.contiguous()?);
        }
        cfg.layers[l] = LayerDims {
            n_heads: keep.kv_groups.len() * rep,
            n_kv_heads: keep.kv_groups.len(),
            intermediate_size: keep.ffn_channels.len(),
        };
    }
    Ok(Llama::from_tensors(cfg, w, model.dtype())?)
}

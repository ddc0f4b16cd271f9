//! Unstructured pruning: zero individual weights of every projection by a score, to a sparsity or
//! an N:M pattern. Shapes do not change.
//!
//! Scores: magnitude `|W_ij|`, or Wanda `|W_ij| * ||X_j||_2` (Sun et al. 2023) with `X` the
//! projection's calibration inputs. Comparison groups: each matrix, each output row (Wanda's
//! choice), or all projections of the model together (global).

use candle_core::{DType, Tensor};

use super::calib::{InputNorms, ensure_no_adapters};
use super::error::{PruneError, Result};
use super::mask;
use super::report::PruneReport;
use crate::adapter::linear::Linear;
use crate::model::Llama;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score {
    Magnitude,
    Wanda,
}

/// Which weights compete with each other for the same sparsity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Each projection matrix separately ("per layer").
    Matrix,
    /// Each output row of each projection (Wanda).
    Row,
    /// All projections of the model together.
    Global,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pattern {
    /// Zero `floor(sparsity * size)` weights of every group.
    Sparsity { sparsity: f64, group: Group },
    /// Keep at most `n` nonzeros in every `m` consecutive inputs of a row (2:4 as in SparseGPT).
    NofM { n: usize, m: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnstructuredSpec {
    pub score: Score,
    pub pattern: Pattern,
}

fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// The scores of one projection, row-major `[out, in]`.
fn scores(path: &str, lin: &Linear, score: Score, calib: Option<&InputNorms>) -> Result<Vec<f32>> {
    let w = host(lin.weight())?;
    match score {
        Score::Magnitude => Ok(w.iter().map(|x| x.abs()).collect()),
        Score::Wanda => {
            let calib = calib
                .ok_or_else(|| PruneError::module(path, "Wanda needs calibration input norms"))?;
            let norms = calib.norms(path)?;
            let (_, inp) = lin.shape();
            if norms.len() != inp {
                return Err(PruneError::module(
                    path,
                    format!(
                        "calibration has {} input norms, weight has {inp} inputs",
                        norms.len()
                    ),
                ));
            }
            Ok(w.iter()
                .enumerate()
                .map(|(i, x)| x.abs() * norms[i % inp])
                .collect())
        }
    }
}

/// Wanda's score matrix of one projection (exposed for checks against a hand computation).
pub fn wanda_scores(path: &str, lin: &Linear, calib: &InputNorms) -> Result<Vec<f32>> {
    scores(path, lin, Score::Wanda, Some(calib))
}

/// Zero the weights of `lin` where `prune` is true.
fn apply_mask(lin: &mut Linear, prune: &[bool]) -> Result<()> {
    let w = lin.weight();
    let (dtype, dims, device) = (w.dtype(), w.dims().to_vec(), w.device().clone());
    let keep: Vec<f32> = prune.iter().map(|p| if *p { 0.0 } else { 1.0 }).collect();
    let keep = Tensor::from_vec(keep, dims, &device)?.to_dtype(dtype)?;
    let pruned = w.mul(&keep)?;
    lin.set_weight(pruned);
    Ok(())
}

fn check(spec: &UnstructuredSpec) -> Result<()> {
    match spec.pattern {
        Pattern::Sparsity { sparsity, .. } if !(0.0..1.0).contains(&sparsity) => {
            Err(PruneError::BadSparsity(sparsity))
        }
        Pattern::NofM { n, m } if m == 0 || n > m => Err(PruneError::BadNm {
            n,
            m,
            reason: "need 0 <= n <= m and m > 0".into(),
        }),
        _ => Ok(()),
    }
}

/// Prune every projection of `model` in place; `calib` is required for [`Score::Wanda`].
/// Returns the report of the pruned model.
pub fn prune_unstructured(
    model: &mut Llama,
    spec: &UnstructuredSpec,
    calib: Option<&InputNorms>,
) -> Result<PruneReport> {
    check(spec)?;
    ensure_no_adapters(model)?;
    let mut all = Vec::new();
    for (path, lin) in model.linears() {
        let s = scores(&path, lin, spec.score, calib)?;
        if let Pattern::NofM { m, .. } = spec.pattern
            && lin.shape().1 % m != 0
        {
            return Err(PruneError::module(
                &path,
                format!("{} inputs are not a multiple of M = {m}", lin.shape().1),
            ));
        }
        all.push(s);
    }
    let masks: Vec<Vec<bool>> = match spec.pattern {
        Pattern::NofM { n, m } => all.iter().map(|s| mask::n_of_m(s, n, m)).collect(),
        Pattern::Sparsity { sparsity, group } => match group {
            Group::Matrix => all
                .iter()
                .map(|s| mask::lowest(s, (sparsity * s.len() as f64).floor() as usize))
                .collect(),
            Group::Row => all
                .iter()
                .zip(model.linears())
                .map(|(s, (_, l))| {
                    let cols = l.shape().1;
                    mask::lowest_per_row(s, cols, (sparsity * cols as f64).floor() as usize)
                })
                .collect(),
            Group::Global => {
                let lens: Vec<usize> = all.iter().map(Vec::len).collect();
                let flat: Vec<f32> = all.concat();
                let k = (sparsity * flat.len() as f64).floor() as usize;
                let m = mask::lowest(&flat, k);
                let mut out = Vec::with_capacity(lens.len());
                let mut at = 0;
                for n in lens {
                    out.push(m[at..at + n].to_vec());
                    at += n;
                }
                out
            }
        },
    };
    drop(all);
    for ((_, lin), m) in model.linears_mut().into_iter().zip(&masks) {
        apply_mask(lin, m)?;
    }
    PruneReport::of(model)
}

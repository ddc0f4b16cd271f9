//! Causal-LM cross-entropy with HF semantics: position `t` predicts `labels[t + 1]`, labels equal
//! to [`IGNORE_INDEX`] contribute nothing, and the loss is the mean over the remaining (loss) tokens.
//!
//! Guarantees:
//! - [`loss_sum`] returns the differentiable SUM of token negative log-likelihoods; the caller
//!   divides by the token count it wants (one batch, or all micro-batches of an accumulated step,
//!   see `trainer`). [`causal_lm_loss`] is the HF mean.
//! - On CPU with `f32` logits the sum is a fused custom op (one pass per row, rows in parallel,
//!   its own backward `softmax - onehot`), computed without copying the logits; elsewhere it is
//!   built from candle ops that all have a backward (log-sum-exp with a detached max, gather).
//!   Both paths agree (tested).

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;
use std::sync::Mutex;

use super::batch::IGNORE_INDEX;
use crate::cpu::fastexp::softmax_row;

/// Targets of each position after the causal shift, flattened `[b * t]`: `labels[row][i + 1]`,
/// and `IGNORE_INDEX` at the last position of each row.
pub fn shifted_targets(labels: &Tensor) -> Result<Vec<i64>> {
    let rows = labels.to_dtype(DType::I64)?.to_vec2::<i64>()?;
    let mut out = Vec::with_capacity(rows.iter().map(Vec::len).sum());
    for row in rows {
        out.extend(row.iter().skip(1).copied());
        if !row.is_empty() {
            out.push(IGNORE_INDEX);
        }
    }
    Ok(out)
}

/// Number of tokens that carry loss in `labels` (`[b, t]`), after the causal shift.
pub fn count_loss_tokens(labels: &Tensor) -> Result<usize> {
    Ok(shifted_targets(labels)?
        .iter()
        .filter(|&&l| l != IGNORE_INDEX)
        .count())
}

/// The loss positions of `labels` (`[b, t]`) after the causal shift: the flattened indices
/// `row * t + i` whose target is not ignored, and those targets. Logits at the other positions
/// (padding, masked prompt tokens, each row's last position) do not enter the loss.
pub fn loss_positions(labels: &Tensor) -> Result<(Vec<u32>, Vec<i64>)> {
    let targets = shifted_targets(labels)?;
    let mut rows = Vec::new();
    let mut kept = Vec::new();
    for (i, &l) in targets.iter().enumerate() {
        if l != IGNORE_INDEX {
            rows.push(i as u32);
            kept.push(l);
        }
    }
    Ok((rows, kept))
}

/// The sum over loss tokens of `-log softmax(logits[b, t])[labels[b, t + 1]]`, a scalar `f32`
/// tensor that backpropagates into `logits` (`[b, t, vocab]`). `labels`: `[b, t]` integer.
pub fn loss_sum(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let targets = shifted_targets(labels)?;
    let (b, t, _) = logits.dims3()?;
    if targets.len() != b * t {
        bail!(
            "loss: labels {:?} do not match logits {:?}",
            labels.dims(),
            logits.dims()
        );
    }
    loss_sum_targets(logits, targets)
}

/// [`loss_sum`] for logits `[.., vocab]` (any leading shape, `n` rows in all) and one target per
/// row (`IGNORE_INDEX` rows contribute nothing): e.g. only the loss positions' logits
/// ([`loss_positions`]) with their targets.
pub fn loss_sum_targets(logits: &Tensor, targets: Vec<i64>) -> Result<Tensor> {
    let v = logits.dim(candle_core::D::Minus1)?;
    let n = logits.elem_count() / v.max(1);
    if targets.len() != n {
        bail!(
            "loss: {} targets for logits {:?}",
            targets.len(),
            logits.dims()
        );
    }
    if let Some(&bad) = targets
        .iter()
        .find(|&&l| l != IGNORE_INDEX && (l < 0 || l as usize >= v))
    {
        bail!("loss: label {bad} is outside the vocabulary (size {v})");
    }
    if matches!(logits.device(), Device::Cpu) && logits.dtype() == DType::F32 {
        let op = CrossEntropySum {
            targets,
            vocab: v,
            grad: Mutex::new(None),
        };
        if logits.is_variable() || logits.track_op() {
            logits.apply_op1(op)
        } else {
            logits.apply_op1_no_bwd(&op)
        }
    } else {
        loss_sum_composed(logits, &targets)
    }
}

/// HF's causal-LM loss: [`loss_sum`] divided by the number of loss tokens (0 when there are none).
pub fn causal_lm_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let n = count_loss_tokens(labels)?;
    let sum = loss_sum(logits, labels)?;
    if n == 0 {
        sum.affine(0.0, 0.0)
    } else {
        sum.affine(1.0 / n as f64, 0.0)
    }
}

/// The same sum built from differentiable candle ops (any device and dtype); `logits` `[.., v]`
/// with one target per row.
pub fn loss_sum_composed(logits: &Tensor, targets: &[i64]) -> Result<Tensor> {
    let v = logits.dim(candle_core::D::Minus1)?;
    let n = logits.elem_count() / v.max(1);
    let dev = logits.device();
    let logits = logits.to_dtype(DType::F32)?.reshape((n, v))?;
    let mask: Vec<f32> = targets
        .iter()
        .map(|&l| if l == IGNORE_INDEX { 0.0 } else { 1.0 })
        .collect();
    let safe: Vec<u32> = targets
        .iter()
        .map(|&l| if l == IGNORE_INDEX { 0 } else { l as u32 })
        .collect();
    let mask = Tensor::from_vec(mask, n, dev)?;
    let safe = Tensor::from_vec(safe, (n, 1), dev)?;
    let max = logits.max_keepdim(1)?.detach();
    let lse = logits
        .broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(1)?
        .log()?
        .add(&max)?;
    let picked = logits.gather(&safe, 1)?;
    (lse - picked)?.squeeze(1)?.mul(&mask)?.sum_all()
}

/// Fused cross-entropy sum over `[b, t, v]` f32 logits on CPU. The forward also computes the
/// gradient `softmax - onehot` of each loss row (the backward only scales it), so the logits are
/// read once.
struct CrossEntropySum {
    targets: Vec<i64>,
    vocab: usize,
    grad: Mutex<Option<Vec<f32>>>,
}

impl CustomOp1 for CrossEntropySum {
    fn name(&self) -> &'static str {
        "rora-cross-entropy-sum"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            bail!("cross-entropy: logits must be f32")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("cross-entropy: logits must be contiguous")
        };
        let data = &data[start..end];
        let v = self.vocab;
        let mut grad = vec![0f32; data.len()];
        let nll: Vec<f64> = data
            .par_chunks(v)
            .zip(grad.par_chunks_mut(v))
            .zip(self.targets.par_iter())
            .map(|((row, g), &target)| {
                if target == IGNORE_INDEX {
                    return 0.0;
                }
                let lse = softmax_row(row, g);
                g[target as usize] -= 1.0;
                f64::from(lse - row[target as usize])
            })
            .collect();
        // invariant: serial sum in row order, so the result does not depend on thread count.
        let total: f64 = nll.iter().sum();
        *self
            .grad
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned".into()))? = Some(grad);
        Ok((CpuStorage::F32(vec![total as f32]), Shape::from(())))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = grad_res.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let grad = self
            .grad
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned".into()))?
            .take();
        let Some(mut grad) = grad else {
            bail!("cross-entropy: backward ran twice")
        };
        if g != 1.0 {
            grad.par_iter_mut().for_each(|x| *x *= g);
        }
        Ok(Some(Tensor::from_vec(grad, arg.shape(), arg.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// Reference computed by hand (numpy-free): for logits row x and target y,
    /// nll = log(sum_j exp(x_j)) - x_y.
    fn hand_nll(row: &[f32], y: usize) -> f64 {
        let lse = row.iter().map(|&x| f64::from(x).exp()).sum::<f64>().ln();
        lse - f64::from(row[y])
    }

    fn example() -> (Vec<f32>, Tensor, Tensor) {
        // b = 2, t = 3, v = 4
        let data: Vec<f32> = (0..24).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3).collect();
        let logits = Tensor::from_vec(data.clone(), (2, 3, 4), &Device::Cpu).unwrap();
        // row 0: position 0 is a masked prompt token (its label ignored), predicts labels 2 and 3
        // row 1: last token is padding
        let labels =
            Tensor::new(&[[IGNORE_INDEX, 2, 3], [1, 0, IGNORE_INDEX]], &Device::Cpu).unwrap();
        (data, logits, labels)
    }

    #[test]
    fn mean_matches_hand_computation_and_ignores_masked_tokens() {
        let (d, logits, labels) = example();
        let row = |b: usize, t: usize| &d[(b * 3 + t) * 4..(b * 3 + t) * 4 + 4];
        // loss tokens: (row0, pos0 -> 2), (row0, pos1 -> 3), (row1, pos0 -> 0)
        let want = (hand_nll(row(0, 0), 2) + hand_nll(row(0, 1), 3) + hand_nll(row(1, 0), 0)) / 3.0;
        let got = causal_lm_loss(&logits, &labels)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((f64::from(got) - want).abs() < 1e-6, "{got} vs {want}");
        assert_eq!(count_loss_tokens(&labels).unwrap(), 3);
    }

    #[test]
    fn masked_positions_get_zero_gradient_and_do_not_change_the_loss() {
        let (mut d, _, labels) = example();
        let base = {
            let l = Tensor::from_vec(d.clone(), (2, 3, 4), &Device::Cpu).unwrap();
            loss_sum(&l, &labels).unwrap().to_scalar::<f32>().unwrap()
        };
        // positions whose target is ignored: (0, 2) last, (1, 1) -> padding, (1, 2) last
        for (b, t) in [(0usize, 2usize), (1, 1), (1, 2)] {
            for j in 0..4 {
                d[(b * 3 + t) * 4 + j] += 100.0;
            }
        }
        let var = Var::from_tensor(&Tensor::from_vec(d, (2, 3, 4), &Device::Cpu).unwrap()).unwrap();
        let sum = loss_sum(var.as_tensor(), &labels).unwrap();
        assert_eq!(sum.to_scalar::<f32>().unwrap(), base);
        let grads = sum.backward().unwrap();
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        for (b, t) in [(0usize, 2usize), (1, 1), (1, 2)] {
            assert!(
                g[b][t].iter().all(|&x| x == 0.0),
                "grad at {b},{t}: {:?}",
                g[b][t]
            );
        }
        // a loss row's gradient is softmax - onehot: sums to zero, negative only at the target
        let r = &g[0][1];
        assert!(r.iter().sum::<f32>().abs() < 1e-6);
        assert!(r[3] < 0.0 && r[0] > 0.0);
    }

    #[test]
    fn fused_and_composed_paths_agree_in_value_and_gradient() {
        let (d, _, labels) = example();
        let targets = shifted_targets(&labels).unwrap();
        let var = Var::from_tensor(&Tensor::from_vec(d, (2, 3, 4), &Device::Cpu).unwrap()).unwrap();
        let fused = loss_sum(var.as_tensor(), &labels)
            .unwrap()
            .affine(0.5, 0.0)
            .unwrap();
        let composed = loss_sum_composed(var.as_tensor(), &targets)
            .unwrap()
            .affine(0.5, 0.0)
            .unwrap();
        let (a, b) = (
            fused.to_scalar::<f32>().unwrap(),
            composed.to_scalar::<f32>().unwrap(),
        );
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        let ga = fused
            .backward()
            .unwrap()
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap();
        let gb = composed
            .backward()
            .unwrap()
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap();
        let diff = (ga - gb)
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6, "max grad diff {diff}");
    }

    #[test]
    fn out_of_vocabulary_label_is_an_error() {
        let logits = Tensor::zeros((1, 2, 4), DType::F32, &Device::Cpu).unwrap();
        let labels = Tensor::new(&[[0i64, 9]], &Device::Cpu).unwrap();
        assert!(
            loss_sum(&logits, &labels)
                .unwrap_err()
                .to_string()
                .contains("label 9")
        );
    }
}

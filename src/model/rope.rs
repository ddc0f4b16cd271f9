//! RoPE frequencies (plain and LLaMA-3 scaled) and the per-row position ids and attention bias
//! derived from an attention mask (the `crate::lm` convention: position = cumsum(mask) - 1,
//! clamped at 0).

use candle_core::{DType, Device, Result, Tensor};

use super::config::LlamaConfig;

/// Additive bias for disallowed attention (finite, so a fully masked padding row stays finite).
pub use crate::cpu::MASKED;

/// Inverse frequencies `1 / theta^(2i/d)`, with LLaMA-3 scaling when configured (as in HF's
/// `_compute_llama3_parameters`).
pub fn inv_freq(cfg: &LlamaConfig) -> Vec<f64> {
    let d = cfg.head_dim;
    let base: Vec<f64> = (0..d / 2)
        .map(|i| 1.0 / cfg.rope_theta.powf((2 * i) as f64 / d as f64))
        .collect();
    let Some(s) = &cfg.rope_scaling else {
        return base;
    };
    let old = s.original_max_position_embeddings as f64;
    let low_wavelen = old / s.low_freq_factor;
    let high_wavelen = old / s.high_freq_factor;
    base.into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f64::consts::PI / f;
            if wavelen < high_wavelen {
                f
            } else if wavelen > low_wavelen {
                f / s.factor
            } else {
                let smooth =
                    (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
                (1.0 - smooth) * f / s.factor + smooth * f
            }
        })
        .collect()
}

/// Everything a forward call needs that depends on the mask only.
pub struct Positions {
    /// `[b, 1, t_new, d]` in the compute dtype.
    pub cos: Tensor,
    /// `[b, 1, t_new, d]`, `[-sin, sin]`.
    pub sin_signed: Tensor,
    /// `[b, 1, t_new, t_total]` f32: 0 where query may attend key, `MASKED` elsewhere.
    pub bias: Tensor,
}

impl Positions {
    /// For `mask` `[b, t_total]` (1 = real token) and the last `t_new` positions as queries.
    pub fn new(
        mask: &[Vec<u32>],
        t_new: usize,
        inv_freq: &[f64],
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let b = mask.len();
        let t_total = mask.first().map_or(0, |r| r.len());
        if t_new > t_total {
            candle_core::bail!(
                "attention mask covers {t_total} positions, fewer than the {t_new} new tokens"
            );
        }
        let start = t_total - t_new;
        let half = inv_freq.len();
        let d = 2 * half;
        let mut cos = Vec::with_capacity(b * t_new * d);
        let mut sin = Vec::with_capacity(b * t_new * d);
        let mut bias = Vec::with_capacity(b * t_new * t_total);
        for row in mask {
            if row.len() != t_total {
                candle_core::bail!("attention mask rows have different lengths");
            }
            let mut seen = 0u64;
            let mut pos = Vec::with_capacity(t_total);
            for &m in row {
                seen += u64::from(m != 0);
                pos.push(seen.saturating_sub(1));
            }
            for (q, &p) in pos.iter().enumerate().take(t_total).skip(start) {
                push_angles(&mut cos, &mut sin, p, inv_freq);
                bias.extend((0..t_total).map(|k| if k <= q && row[k] != 0 { 0.0 } else { MASKED }));
            }
        }
        let shape = (b, 1, t_new, d);
        Ok(Self {
            cos: Tensor::from_vec(cos, shape, device)?.to_dtype(dtype)?,
            sin_signed: Tensor::from_vec(sin, shape, device)?.to_dtype(dtype)?,
            bias: Tensor::from_vec(bias, (b, 1, t_new, t_total), device)?,
        })
    }

    /// For explicit layouts (packed sequences): `pos` `[b * t]` position ids and `allowed`
    /// `[b * t * t]` (query-major: may query `q` of row `r` attend key `k` of the same row?).
    pub fn explicit(
        b: usize,
        t: usize,
        pos: &[u64],
        allowed: &[bool],
        inv_freq: &[f64],
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if pos.len() != b * t || allowed.len() != b * t * t {
            candle_core::bail!(
                "explicit positions: {} ids and {} mask entries for [{b}, {t}]",
                pos.len(),
                allowed.len()
            );
        }
        let d = 2 * inv_freq.len();
        let mut cos = Vec::with_capacity(b * t * d);
        let mut sin = Vec::with_capacity(b * t * d);
        for &p in pos {
            push_angles(&mut cos, &mut sin, p, inv_freq);
        }
        let bias = allowed
            .iter()
            .map(|&a| if a { 0.0 } else { MASKED })
            .collect();
        let shape = (b, 1, t, d);
        Ok(Self {
            cos: Tensor::from_vec(cos, shape, device)?.to_dtype(dtype)?,
            sin_signed: Tensor::from_vec(sin, shape, device)?.to_dtype(dtype)?,
            bias: Tensor::from_vec(bias, (b, 1, t, t), device)?,
        })
    }
}

/// Append `[c, c]` and `[-s, s]` for position `p`.
fn push_angles(cos: &mut Vec<f32>, sin: &mut Vec<f32>, p: u64, inv_freq: &[f64]) {
    let p = p as f64;
    for _ in 0..2 {
        cos.extend(inv_freq.iter().map(|f| (p * f).cos() as f32));
    }
    sin.extend(inv_freq.iter().map(|f| -(p * f).sin() as f32));
    sin.extend(inv_freq.iter().map(|f| (p * f).sin() as f32));
}

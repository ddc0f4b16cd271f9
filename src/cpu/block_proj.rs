//! The adapted projection of the fused decoder layer, f32 on the CPU:
//! `z = x W^T + h B^T` with `h = s x A^T`, and `y = ratio * z` (DoRA: `ratio = m / n`,
//! `n = ||W + s B A||_row` detached; LoRA: `y = z`). The backward returns `dx` and the adapter
//! gradients (`dA`, `dB`, `dm`) and never one for the frozen `W`.
//!
//! When the batch has many rows for the projection's size (`out * in <= rows * (in + out) / 2`),
//! the forward forms the merged weight `W' = W + s B A` once (`out * in * r` multiply-adds) and
//! computes `z = x W'^T`, and the backward takes `dx = g' W'`: this skips `h B^T` and `s dh A`
//! (`rows * r * (in + out)`), at the memory of one weight copy kept until the backward, which
//! the condition bounds by half the projection's activations. DoRA's norm is then the row norm
//! of `W'` itself. Otherwise the factors are applied one after the other (PEFT's order).
//!
//! Guarantees: the same algebra as `adapter::lora` / `adapter::dora` (PEFT semantics; the DoRA
//! norm by the same expansion as `Dora::weight_norm`, or directly from `W'`), both orders checked
//! against the autograd path by `block_tests`.

use std::cell::Cell;

use candle_core::Result;
use rayon::prelude::*;

use super::block_kernels::{mm, mm_wide};

thread_local! {
    static FORCE_MERGE: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Run `f` with the merged-weight order forced on or off for forwards on this thread (tests:
/// the tiny test shapes would otherwise always take the factored order).
#[cfg(test)]
pub fn with_forced_merge<R>(merge: bool, f: impl FnOnce() -> R) -> R {
    let before = FORCE_MERGE.with(|c| c.replace(Some(merge)));
    let out = f();
    FORCE_MERGE.with(|c| c.set(before));
    out
}

/// Where one adapter's parameters sit in the layer's packed parameter vector.
#[derive(Debug, Clone, Copy)]
pub struct AdapterSlot {
    pub r: usize,
    pub scale: f32,
    /// Offsets of `A` `[r, in]`, `B` `[out, r]` and DoRA's `m` `[out]`.
    pub a: usize,
    pub b: usize,
    pub m: Option<usize>,
}

/// One projection: shape and adapter (if any).
#[derive(Debug, Clone, Copy)]
pub struct ProjShape {
    pub out: usize,
    pub inp: usize,
    pub ad: Option<AdapterSlot>,
}

/// What the backward of one projection needs from its forward.
#[derive(Default)]
pub struct ProjSaved {
    /// `s x A^T`, `[rows, r]`.
    h: Vec<f32>,
    /// DoRA: the output before the ratio, `[rows, out]`.
    z: Vec<f32>,
    /// DoRA: `m / n` and `n`, `[out]` each.
    ratio: Vec<f32>,
    norm: Vec<f32>,
    /// The merged weight `W + s B A` `[out, in]` when the forward used it, else empty.
    merged: Vec<f32>,
    /// With dropout: the adapter branch's input `x~ = x * mask`, `[rows, in]`, else empty.
    xd: Vec<f32>,
}

impl ProjShape {
    fn parts<'a>(&self, ad: &AdapterSlot, p: &'a [f32]) -> (&'a [f32], &'a [f32]) {
        (&p[ad.a..][..ad.r * self.inp], &p[ad.b..][..self.out * ad.r])
    }

    /// The packed-vector length this projection's adapter needs, checked against `p`.
    fn check(&self, p_len: usize) -> Result<()> {
        if let Some(ad) = &self.ad {
            let end = (ad.a + ad.r * self.inp)
                .max(ad.b + self.out * ad.r)
                .max(ad.m.map_or(0, |m| m + self.out));
            if end > p_len {
                candle_core::bail!(
                    "fused layer: adapter parameters end at {end}, packed vector has {p_len}"
                );
            }
        }
        Ok(())
    }

    /// Whether the forward merges the adapter into a weight copy (see the module docs).
    fn merges(&self, rows: usize) -> bool {
        FORCE_MERGE
            .with(|c| c.get())
            .unwrap_or_else(|| 2 * self.out * self.inp <= rows * (self.inp + self.out))
    }

    /// `y` `[rows, out]` for `x` `[rows, inp]`, and what the backward needs. `mask`: the
    /// adapter branch's dropout mask `[rows, inp]` (LoRA only), applied as `x~ = x * mask`.
    pub fn forward(
        &self,
        w: &[f32],
        p: &[f32],
        x: &[f32],
        rows: usize,
        mask: Option<&[f32]>,
    ) -> Result<(Vec<f32>, ProjSaved)> {
        self.check(p.len())?;
        if let Some(m) = mask
            && (m.len() != x.len() || self.ad.is_none_or(|ad| ad.m.is_some()))
        {
            candle_core::bail!(
                "fused layer: a dropout mask needs a LoRA adapter and {} values",
                x.len()
            );
        }
        let (out, inp) = (self.out, self.inp);
        let mut y = vec![0f32; rows * out];
        let Some(ad) = &self.ad else {
            mm(
                &mut y,
                false,
                (x, false),
                (w, true),
                (rows, out, inp),
                1.0,
                true,
            )?;
            return Ok((y, ProjSaved::default()));
        };
        let (a, b) = self.parts(ad, p);
        let mut saved = ProjSaved::default();
        if let Some(m) = mask {
            saved.xd = x.iter().zip(m).map(|(x, m)| x * m).collect();
        }
        let xa = if mask.is_some() { &saved.xd[..] } else { x };
        let mut h = vec![0f32; rows * ad.r];
        mm(
            &mut h,
            false,
            (xa, false),
            (a, true),
            (rows, ad.r, inp),
            ad.scale,
            true,
        )?;
        if mask.is_none() && self.merges(rows) {
            let mut merged = w.to_vec();
            mm(
                &mut merged,
                true,
                (b, false),
                (a, false),
                (out, inp, ad.r),
                ad.scale,
                true,
            )?;
            mm(
                &mut y,
                false,
                (x, false),
                (&merged, true),
                (rows, out, inp),
                1.0,
                true,
            )?;
            if ad.m.is_some() {
                saved.norm = merged
                    .par_chunks(inp)
                    .map(|row| row.iter().fold(0f32, |acc, &v| acc + v * v).sqrt())
                    .collect();
            }
            saved.merged = merged;
        } else {
            mm(
                &mut y,
                false,
                (x, false),
                (w, true),
                (rows, out, inp),
                1.0,
                true,
            )?;
            mm(
                &mut y,
                true,
                (&h, false),
                (b, true),
                (rows, out, ad.r),
                1.0,
                true,
            )?;
            if ad.m.is_some() {
                saved.norm = dora_norm(w, a, b, (out, inp, ad.r), ad.scale)?;
            }
        }
        saved.h = h;
        if let Some(mo) = ad.m {
            let ratio: Vec<f32> = p[mo..][..out]
                .iter()
                .zip(&saved.norm)
                .map(|(m, n)| m / n)
                .collect();
            saved.z = y.clone();
            y.par_chunks_mut(out)
                .for_each(|row| row.iter_mut().zip(&ratio).for_each(|(y, r)| *y *= r));
            saved.ratio = ratio;
        }
        Ok((y, saved))
    }

    /// Backward for the output gradient `g` `[rows, out]`: writes `dx` (added to it when
    /// `acc_dx`; skipped when `dx` is `None`) and this adapter's gradients into `dp`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        w: &[f32],
        p: &[f32],
        saved: ProjSaved,
        x: &[f32],
        g: &[f32],
        rows: usize,
        dx: Option<(&mut [f32], bool)>,
        dp: &mut [f32],
        mask: Option<&[f32]>,
    ) -> Result<()> {
        let (out, inp) = (self.out, self.inp);
        let scaled;
        let gz: &[f32] = match self.ad.as_ref().and_then(|ad| ad.m.map(|mo| (ad, mo))) {
            Some((_, mo)) => {
                // dm_j = sum_i g_ij z_ij / n_j (the norm is a constant); dz = g * ratio
                let dm = &mut dp[mo..][..out];
                let mut acc = vec![0f64; out];
                for (gr, zr) in g.chunks(out).zip(saved.z.chunks(out)) {
                    for ((a, &g), &z) in acc.iter_mut().zip(gr).zip(zr) {
                        *a += f64::from(g * z);
                    }
                }
                for ((d, a), n) in dm.iter_mut().zip(&acc).zip(&saved.norm) {
                    *d = (*a as f32) / n;
                }
                let mut s = g.to_vec();
                s.par_chunks_mut(out)
                    .for_each(|row| row.iter_mut().zip(&saved.ratio).for_each(|(g, r)| *g *= r));
                scaled = s;
                &scaled
            }
            None => g,
        };
        let Some(ad) = &self.ad else {
            if let Some((dx, acc)) = dx {
                mm(
                    dx,
                    acc,
                    (gz, false),
                    (w, false),
                    (rows, inp, out),
                    1.0,
                    true,
                )?;
            }
            return Ok(());
        };
        let (a, b) = self.parts(ad, p);
        let r = ad.r;
        // dB = g'^T h, computed as its transpose h^T g' (wide in `out`)
        mm_wide(
            &mut dp[ad.b..][..out * r],
            true,
            &saved.h,
            gz,
            (r, out, rows),
            1.0,
        )?;
        // s * dh, the gradient of x A^T
        let mut sdh = vec![0f32; rows * r];
        mm(
            &mut sdh,
            false,
            (gz, false),
            (b, false),
            (rows, r, out),
            ad.scale,
            true,
        )?;
        let xa = if saved.xd.is_empty() {
            x
        } else {
            &saved.xd[..]
        };
        mm_wide(
            &mut dp[ad.a..][..r * inp],
            false,
            &sdh,
            xa,
            (r, inp, rows),
            1.0,
        )?;
        if let Some((dx, acc)) = dx {
            if let Some(m) = mask {
                // dx = g' W + (s dh A) * mask
                let mut t = vec![0f32; rows * inp];
                mm(
                    &mut t,
                    false,
                    (&sdh, false),
                    (a, false),
                    (rows, inp, r),
                    1.0,
                    true,
                )?;
                mm(
                    dx,
                    acc,
                    (gz, false),
                    (w, false),
                    (rows, inp, out),
                    1.0,
                    true,
                )?;
                dx.par_chunks_mut(inp)
                    .zip(t.par_chunks(inp).zip(m.par_chunks(inp)))
                    .for_each(|(d, (t, m))| {
                        d.iter_mut()
                            .zip(t)
                            .zip(m)
                            .for_each(|((d, t), m)| *d += t * m)
                    });
            } else if saved.merged.is_empty() {
                mm(
                    dx,
                    acc,
                    (gz, false),
                    (w, false),
                    (rows, inp, out),
                    1.0,
                    true,
                )?;
                mm(
                    dx,
                    true,
                    (&sdh, false),
                    (a, false),
                    (rows, inp, r),
                    1.0,
                    true,
                )?;
            } else {
                mm(
                    dx,
                    acc,
                    (gz, false),
                    (&saved.merged, false),
                    (rows, inp, out),
                    1.0,
                    true,
                )?;
            }
        }
        Ok(())
    }
}

/// `||W + s B A||_row` without forming the sum: `||W||^2 + 2 s rowsum(B * (W A^T)) +
/// s^2 rowsum((B A A^T) * B)`, clamped at 0 before the root (as `Dora::weight_norm`).
fn dora_norm(
    w: &[f32],
    a: &[f32],
    b: &[f32],
    (out, inp, r): (usize, usize, usize),
    s: f32,
) -> Result<Vec<f32>> {
    let mut wa = vec![0f32; out * r];
    mm(
        &mut wa,
        false,
        (w, false),
        (a, true),
        (out, r, inp),
        1.0,
        true,
    )?;
    let mut aat = vec![0f32; r * r];
    mm(
        &mut aat,
        false,
        (a, false),
        (a, true),
        (r, r, inp),
        1.0,
        false,
    )?;
    let mut baat = vec![0f32; out * r];
    mm(
        &mut baat,
        false,
        (b, false),
        (&aat, false),
        (out, r, r),
        1.0,
        false,
    )?;
    let mut norm = vec![0f32; out];
    norm.par_iter_mut().enumerate().for_each(|(o, n)| {
        let wr = &w[o * inp..][..inp];
        let sq = wr.iter().fold(0f32, |acc, &v| acc + v * v);
        let (br, war, bar) = (&b[o * r..][..r], &wa[o * r..][..r], &baat[o * r..][..r]);
        let cross = br.iter().zip(war).fold(0f32, |acc, (x, y)| acc + x * y);
        let quad = bar.iter().zip(br).fold(0f32, |acc, (x, y)| acc + x * y);
        *n = (sq + 2.0 * s * cross + s * s * quad).max(0.0).sqrt();
    });
    Ok(norm)
}

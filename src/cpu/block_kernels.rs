//! f32 CPU kernels of the fused decoder layer (`block_op`): a checked `gemm` wrapper, RMSNorm,
//! RoPE, grouped-query attention and SwiGLU, each with its backward, and the adapted projection
//! `y = ratio * (x W^T + s (x A^T) B^T)` with its backward (input and adapter gradients only; the
//! frozen `W` gets none).
//!
//! Guarantees: every result is computed in a fixed order that does not depend on the number of
//! threads (row-parallel element-wise passes, `gemm`'s thread split never splits a dot product,
//! attention parallel over (batch, KV head) with the GQA sums inside one task); the exponential
//! is `cpu::fastexp::exp_approx`, as in the other fused CPU ops.

use candle_core::Result;
use rayon::prelude::*;

use super::fastexp::exp_approx;
use super::simd_fn;

/// What the attention backward reads: `q`, `k`, `v`, the probabilities and the output gradient.
type AttnSaved<'a> = (&'a [f32], &'a [f32], &'a [f32], &'a [f32], &'a [f32]);

simd_fn!(swiglu_fwd_chunk => swiglu_fwd_body(y: &mut [f32], g: &[f32], u: &[f32]) -> ());
simd_fn!(swiglu_bwd_chunk => swiglu_bwd_body(
    dg: &mut [f32], du: &mut [f32], x: &[f32], u: &[f32], g: &[f32]) -> ());
simd_fn!(attn_fwd_one => attn_fwd_group(
    g: usize, p: &mut [f32], o: &mut [f32], qkvb: (&[f32], &[f32], &[f32], &[f32]), s: Heads,
    scale: f32) -> Result<()>);
simd_fn!(attn_bwd_one => attn_bwd_group(
    g: usize, grads: (&mut [f32], &mut [f32], &mut [f32]),
    saved: AttnSaved, s: Heads, scale: f32) -> Result<()>);

/// `dst [m, n] = beta * op(a) op(b)`, plus the old `dst` when `acc`. `a` is stored `[m, k]`
/// row-major, or `[k, m]` when `ta`; `b` is `[k, n]`, or `[n, k]` when `tb`. `par` spreads the
/// product over the rayon pool (not inside a rayon task).
#[allow(clippy::too_many_arguments)]
pub fn mm(
    dst: &mut [f32],
    acc: bool,
    (a, ta): (&[f32], bool),
    (b, tb): (&[f32], bool),
    (m, n, k): (usize, usize, usize),
    beta: f32,
    par: bool,
) -> Result<()> {
    if dst.len() != m * n || a.len() != m * k || b.len() != k * n {
        candle_core::bail!(
            "fused layer: matmul of {} x {} into {} does not fit ({m}, {n}, {k})",
            a.len(),
            b.len(),
            dst.len()
        );
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !acc {
            dst.fill(0.0);
        }
        return Ok(());
    }
    let (a_rs, a_cs) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (b_rs, b_cs) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let threads = rayon::current_num_threads();
    let parallelism = if par && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the lengths checked above cover every index the strides reach.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            acc,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            beta,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// A raw output pointer shared by the two halves of [`mm_wide`] (they write disjoint columns).
#[derive(Clone, Copy)]
struct DstPtr(*mut f32);
// SAFETY: only used for the disjoint column halves of one `dst` borrowed for the call.
unsafe impl Send for DstPtr {}
unsafe impl Sync for DstPtr {}

/// `dst = beta * a^T b` with `a` stored `[k, m]` and `b` `[k, n]`: the long reductions of the
/// adapter gradients (`k` = rows, `m` = rank). `gemm`'s own thread split leaves these shapes on
/// one core, so the columns of `dst` are cut into two fixed halves computed at the same time, one
/// thread each. The split does not depend on the number of threads, and no dot product is split,
/// so results do not either. `dst` is `[m, n]`, or `[n, m]` when `dst_t`.
pub fn mm_wide(
    dst: &mut [f32],
    dst_t: bool,
    a: &[f32],
    b: &[f32],
    (m, n, k): (usize, usize, usize),
    beta: f32,
) -> Result<()> {
    if dst.len() != m * n || a.len() != m * k || b.len() != k * n {
        candle_core::bail!(
            "fused layer: matmul of {} x {} into {} does not fit ({m}, {n}, {k})",
            a.len(),
            b.len(),
            dst.len()
        );
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        dst.fill(0.0);
        return Ok(());
    }
    let half = n / 2;
    let (dst_rs, dst_cs) = if dst_t {
        (1, m as isize)
    } else {
        (n as isize, 1)
    };
    let out = DstPtr(dst.as_mut_ptr());
    let run = |c0: usize, c1: usize| {
        let dst = out;
        // SAFETY: the lengths checked above cover every index the strides reach for columns
        // `c0..c1`; the two calls write disjoint columns of `dst`, borrowed mutably for this call.
        unsafe {
            let d = dst.0.offset(c0 as isize * dst_cs);
            gemm::gemm(
                m,
                c1 - c0,
                k,
                d,
                dst_cs,
                dst_rs,
                false,
                a.as_ptr(),
                m as isize,
                1,
                b.as_ptr().add(c0),
                1,
                n as isize,
                1.0,
                beta,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    if half == 0 {
        run(0, n);
    } else {
        rayon::join(|| run(0, half), || run(half, n));
    }
    Ok(())
}

/// `y = x / sqrt(mean(x^2) + eps) * w` per row of width `w.len()`; returns `(y, 1/rms per row)`.
pub fn rms_fwd(x: &[f32], w: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let n = w.len();
    let mut y = vec![0f32; x.len()];
    let mut inv = vec![0f32; x.len() / n];
    y.par_chunks_mut(n)
        .zip(inv.par_iter_mut())
        .zip(x.par_chunks(n))
        .for_each(|((y, inv), x)| {
            let ss = x.iter().fold(0f32, |a, &v| a + v * v);
            *inv = 1.0 / (ss / n as f32 + eps).sqrt();
            for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                *y = x * *inv * w;
            }
        });
    (y, inv)
}

/// RMSNorm backward: `dx += inv w g - x inv^3 mean(g w x)` per row.
pub fn rms_bwd(x: &[f32], inv: &[f32], w: &[f32], g: &[f32], dx: &mut [f32]) {
    let n = w.len();
    dx.par_chunks_mut(n)
        .zip(x.par_chunks(n).zip(g.par_chunks(n)))
        .zip(inv.par_iter())
        .for_each(|((dx, (x, g)), &r)| {
            let dot = x
                .iter()
                .zip(g)
                .zip(w)
                .fold(0f32, |a, ((&x, &g), &w)| a + g * w * x);
            let c = dot * r * r * r / n as f32;
            for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
                *dx += r * w * g - x * c;
            }
        });
}

#[inline(always)]
fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + exp_approx(-v))
}

/// `silu(gate) * up`.
pub fn swiglu_fwd(gate: &[f32], up: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; gate.len()];
    y.par_chunks_mut(1 << 12)
        .zip(gate.par_chunks(1 << 12).zip(up.par_chunks(1 << 12)))
        .for_each(|(y, (g, u))| swiglu_fwd_chunk(y, g, u));
    y
}

#[inline(always)]
fn swiglu_fwd_body(y: &mut [f32], g: &[f32], u: &[f32]) {
    for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
        *y = g * sigmoid(g) * u;
    }
}

#[inline(always)]
fn swiglu_bwd_body(dg: &mut [f32], du: &mut [f32], x: &[f32], u: &[f32], g: &[f32]) {
    let n = x
        .len()
        .min(u.len())
        .min(g.len())
        .min(dg.len())
        .min(du.len());
    let (dg, du, x, u, g) = (&mut dg[..n], &mut du[..n], &x[..n], &u[..n], &g[..n]);
    for i in 0..n {
        let s = sigmoid(x[i]);
        du[i] = g[i] * x[i] * s;
        dg[i] = g[i] * u[i] * s * (1.0 + x[i] * (1.0 - s));
    }
}

/// SwiGLU backward: `(d gate, d up)`.
pub fn swiglu_bwd(gate: &[f32], up: &[f32], g: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut dg = vec![0f32; gate.len()];
    let mut du = vec![0f32; gate.len()];
    const C: usize = 1 << 12;
    dg.par_chunks_mut(C)
        .zip(du.par_chunks_mut(C))
        .zip(
            gate.par_chunks(C)
                .zip(up.par_chunks(C))
                .zip(g.par_chunks(C)),
        )
        .for_each(|((dg, du), ((x, u), g))| swiglu_bwd_chunk(dg, du, x, u, g));
    (dg, du)
}

/// Attention shapes: batch, time, query heads, KV heads, head dim.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub b: usize,
    pub t: usize,
    pub h: usize,
    pub kvh: usize,
    pub d: usize,
}

/// `[b, t, heads * d]` -> `[b, heads, t, d]`, with RoPE (`cos`, `sin` `[b, t, d]`, `sin` signed
/// `[-s, s]`) when given.
pub fn to_heads(x: &[f32], s: Heads, heads: usize, rope: Option<(&[f32], &[f32])>) -> Vec<f32> {
    let (t, d) = (s.t, s.d);
    let half = d / 2;
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(t * d).enumerate().for_each(|(bh, o)| {
        let (bi, hh) = (bh / heads, bh % heads);
        for ti in 0..t {
            let row = bi * t + ti;
            let src = &x[(row * heads + hh) * d..][..d];
            let dst = &mut o[ti * d..][..d];
            match rope {
                Some((cos, sin)) => {
                    let (c, sn) = (&cos[row * d..][..d], &sin[row * d..][..d]);
                    for j in 0..d {
                        let p = if j < half { j + half } else { j - half };
                        dst[j] = src[j] * c[j] + src[p] * sn[j];
                    }
                }
                None => dst.copy_from_slice(src),
            }
        }
    });
    out
}

/// Inverse of [`to_heads`] for gradients: `[b, heads, t, d]` -> `[b, t, heads * d]`, applying
/// the transpose of RoPE when given.
pub fn from_heads(g: &[f32], s: Heads, heads: usize, rope: Option<(&[f32], &[f32])>) -> Vec<f32> {
    let (t, d) = (s.t, s.d);
    let half = d / 2;
    let mut out = vec![0f32; g.len()];
    out.par_chunks_mut(heads * d)
        .enumerate()
        .for_each(|(row, o)| {
            let (bi, ti) = (row / t, row % t);
            for hh in 0..heads {
                let src = &g[((bi * heads + hh) * t + ti) * d..][..d];
                let dst = &mut o[hh * d..][..d];
                match rope {
                    Some((cos, sin)) => {
                        let (c, sn) = (&cos[row * d..][..d], &sin[row * d..][..d]);
                        for k in 0..d {
                            let p = if k < half { k + half } else { k - half };
                            dst[k] = src[k] * c[k] + src[p] * sn[p];
                        }
                    }
                    None => dst.copy_from_slice(src),
                }
            }
        });
    out
}

/// A reduction over `x` in eight interleaved lanes (lane `i` takes elements `i, i + 8, ...`),
/// combined in lane order, then the tail: vectorizes where one running value cannot.
#[inline(always)]
fn lanes8(x: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [init; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = f(*l, v);
        }
    }
    let acc = lanes.iter().fold(init, |a, &l| f(a, l));
    tail.iter().fold(acc, |a, &v| f(a, v))
}

/// `sum(a * b)` in eight lanes, as [`lanes8`].
#[inline(always)]
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((l, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *l += x * y;
        }
    }
    let acc = lanes.iter().sum::<f32>();
    ta.iter().zip(tb).fold(acc, |s, (&x, &y)| s + x * y)
}

/// Attention forward on head-major `q` `[b, h, t, d]`, `k`, `v` `[b, kvh, t, d]` with the
/// additive `bias` `[b, t, t]` and score scale; returns `(probs [b, h, t, t], out [b, h, t, d])`.
pub fn attn_fwd(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    bias: &[f32],
    s: Heads,
    scale: f32,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let (t, d, rep) = (s.t, s.d, s.h / s.kvh);
    let mut probs = vec![0f32; s.b * s.h * t * t];
    let mut out = vec![0f32; s.b * s.h * t * d];
    probs
        .par_chunks_mut(rep * t * t)
        .zip(out.par_chunks_mut(rep * t * d))
        .enumerate()
        .try_for_each(|(g, (p, o))| -> Result<()> {
            attn_fwd_one(g, p, o, (q, k, v, bias), s, scale)
        })?;
    Ok((probs, out))
}

/// [`attn_fwd`] for KV group `g` (one batch row, one KV head and its query heads).
#[inline(always)]
fn attn_fwd_group(
    g: usize,
    p: &mut [f32],
    o: &mut [f32],
    (q, k, v, bias): (&[f32], &[f32], &[f32], &[f32]),
    s: Heads,
    scale: f32,
) -> Result<()> {
    let (t, d, rep) = (s.t, s.d, s.h / s.kvh);
    let bi = g / s.kvh;
    let kk = &k[g * t * d..][..t * d];
    let vv = &v[g * t * d..][..t * d];
    for i in 0..rep {
        let hh = (g % s.kvh) * rep + i;
        let qq = &q[(bi * s.h + hh) * t * d..][..t * d];
        let p = &mut p[i * t * t..][..t * t];
        mm(p, false, (qq, false), (kk, true), (t, t, d), scale, false)?;
        for (ti, row) in p.chunks_mut(t).enumerate() {
            let bias = &bias[(bi * t + ti) * t..][..t];
            row.iter_mut().zip(bias).for_each(|(y, &c)| *y += c);
            let max = lanes8(row, f32::NEG_INFINITY, |m, y| if y > m { y } else { m });
            row.iter_mut().for_each(|y| *y = exp_approx(*y - max));
            let sum = lanes8(row, 0.0, |a, y| a + y);
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|y| *y *= inv);
        }
        let o = &mut o[i * t * d..][..t * d];
        mm(o, false, (p, false), (vv, false), (t, d, t), 1.0, false)?;
    }
    Ok(())
}

/// Attention backward: from the head-major output gradient `dout` `[b, h, t, d]`, returns
/// `(dq [b, h, t, d], dk, dv [b, kvh, t, d])` (before the RoPE transpose).
pub fn attn_bwd(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f32],
    dout: &[f32],
    s: Heads,
    scale: f32,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let (t, d, rep) = (s.t, s.d, s.h / s.kvh);
    let mut dq = vec![0f32; q.len()];
    let mut dk = vec![0f32; k.len()];
    let mut dv = vec![0f32; v.len()];
    dq.par_chunks_mut(rep * t * d)
        .zip(dk.par_chunks_mut(t * d).zip(dv.par_chunks_mut(t * d)))
        .enumerate()
        .try_for_each(|(g, (dq, (dk, dv)))| -> Result<()> {
            attn_bwd_one(g, (dq, dk, dv), (q, k, v, probs, dout), s, scale)
        })?;
    Ok((dq, dk, dv))
}

/// [`attn_bwd`] for KV group `g`.
#[inline(always)]
fn attn_bwd_group(
    g: usize,
    (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
    (q, k, v, probs, dout): AttnSaved,
    s: Heads,
    scale: f32,
) -> Result<()> {
    let (t, d, rep) = (s.t, s.d, s.h / s.kvh);
    let kk = &k[g * t * d..][..t * d];
    let vv = &v[g * t * d..][..t * d];
    let mut dp = vec![0f32; t * t];
    for i in 0..rep {
        let head = g * rep + i; // (bi * h + hh) since h = kvh * rep
        let qq = &q[head * t * d..][..t * d];
        let p = &probs[head * t * t..][..t * t];
        let dy = &dout[head * t * d..][..t * d];
        mm(
            &mut dp,
            false,
            (dy, false),
            (vv, true),
            (t, t, d),
            1.0,
            false,
        )?;
        mm(dv, i > 0, (p, true), (dy, false), (t, d, t), 1.0, false)?;
        for (drow, prow) in dp.chunks_mut(t).zip(p.chunks(t)) {
            let dot = dot8(drow, prow);
            for (g, &y) in drow.iter_mut().zip(prow) {
                *g = scale * y * (*g - dot);
            }
        }
        let dqh = &mut dq[i * t * d..][..t * d];
        mm(dqh, false, (&dp, false), (kk, false), (t, d, t), 1.0, false)?;
        mm(dk, i > 0, (&dp, true), (qq, false), (t, d, t), 1.0, false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_reductions_equal_the_sequential_ones() {
        let x: Vec<f32> = (0..37)
            .map(|i| ((i * 11 % 19) as f32 - 9.0) * 0.3)
            .collect();
        let y: Vec<f32> = (0..37).map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.7).collect();
        let max = lanes8(&x, f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
        assert_eq!(max, x.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        let want: f64 = x.iter().map(|&v| f64::from(v)).sum();
        assert!((f64::from(lanes8(&x, 0.0, |a, v| a + v)) - want).abs() < 1e-5);
        let want: f64 = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        assert!((f64::from(dot8(&x, &y)) - want).abs() < 1e-4);
    }

    /// `mm_wide` against a plain f64 triple loop (the reference), in both output layouts, with
    /// an odd width (unequal halves) and with one and two threads (bit-identical results).
    #[test]
    fn mm_wide_equals_the_definition_in_both_layouts() {
        let (m, n, k) = (3, 7, 11);
        let a: Vec<f32> = (0..k * m)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.25)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.5)
            .collect();
        let beta = 0.75f32;
        let want = |i: usize, j: usize| {
            (0..k).fold(0f64, |s, kk| {
                s + f64::from(a[kk * m + i]) * f64::from(b[kk * n + j])
            }) * f64::from(beta)
        };
        for dst_t in [false, true] {
            let mut runs = Vec::new();
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut dst = vec![f32::NAN; m * n];
                pool.install(|| mm_wide(&mut dst, dst_t, &a, &b, (m, n, k), beta))
                    .unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let got = if dst_t {
                            dst[j * m + i]
                        } else {
                            dst[i * n + j]
                        };
                        assert!((f64::from(got) - want(i, j)).abs() < 1e-5, "({i}, {j})");
                    }
                }
                runs.push(dst);
            }
            assert_eq!(runs[0], runs[1]);
        }
        let mut bad = vec![0f32; m * n - 1];
        assert!(mm_wide(&mut bad, false, &a, &b, (m, n, k), 1.0).is_err());
    }
}

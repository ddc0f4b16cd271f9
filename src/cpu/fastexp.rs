//! A vectorizable `exp` and the softmax row kernel of the fused cross-entropy.
//!
//! `std`'s `f32::exp` is a scalar libm call (~5-10 ns); the loss over a 49k vocabulary spends
//! most of its time there. [`exp_approx`] is the Cephes `expf` polynomial (range reduction by
//! `ln 2`, degree-6 polynomial, exponent built from bits): relative error below 3e-7 over the
//! range the loss uses (tested against `f64::exp`), no branches, so LLVM vectorizes the loops
//! below; they are compiled twice, once with AVX2+FMA enabled and picked at run time.
//! Both builds give identical results (no fused multiply-add contraction in Rust).

const LOG2E: f32 = std::f32::consts::LOG2_E;
const C1: f32 = 0.693_359_4;
const C2: f32 = -2.121_944_4e-4;
const P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];

/// `e^x` for `x` in `[-87, 88]` (clamped outside).
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // floor(t) by truncation and a correction: exact for |t| < 2^31 (here |t| < 128), and
    // unlike `f32::floor` (a libm call without SSE4.1) it vectorizes on every x86-64.
    let t = x * LOG2E + 0.5;
    let tr = (t as i32) as f32;
    let fx = if tr > t { tr - 1.0 } else { tr };
    let r = x - fx * C1 - fx * C2;
    let mut y = P[0];
    for p in &P[1..] {
        y = y * r + p;
    }
    let y = y * r * r + r + 1.0;
    y * f32::from_bits(((fx as i32 + 127) << 23) as u32)
}

/// Writes `exp(row - max(row))` into `out` and returns `(max, sum of out)`.
#[inline(always)]
fn exp_shifted_generic(row: &[f32], out: &mut [f32]) -> (f32, f32) {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = if x > *l { x } else { *l };
        }
    }
    let mut max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for &x in tail {
        max = max.max(x);
    }
    let mut sums = [0f32; 8];
    let mut oc = out.chunks_exact_mut(8);
    for (c, o) in row.chunks_exact(8).zip(&mut oc) {
        for ((s, &x), y) in sums.iter_mut().zip(c).zip(o.iter_mut()) {
            *y = exp_approx(x - max);
            *s += *y;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for (&x, y) in tail.iter().zip(oc.into_remainder()) {
        *y = exp_approx(x - max);
        sum += *y;
    }
    (max, sum)
}

#[inline(always)]
fn scale_generic(out: &mut [f32], s: f32) {
    out.iter_mut().for_each(|x| *x *= s);
}

#[inline(always)]
fn softmax_row_body(row: &[f32], out: &mut [f32]) -> f32 {
    let (max, sum) = exp_shifted_generic(row, out);
    scale_generic(out, 1.0 / sum);
    max + sum.ln()
}

super::simd_fn! {
    /// Softmax of `row` into `out`; returns `log(sum(exp(row)))`.
    pub softmax_row => softmax_row_body(row: &[f32], out: &mut [f32]) -> f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: f64 `exp` from std.
    #[test]
    fn exp_approx_is_accurate_to_3e_7_relative() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let want = f64::from(x).exp();
            let rel = ((f64::from(exp_approx(x)) - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        // the truncation floor equals `f32::floor`, so the values are the Cephes ones bit for bit
        for i in -2000..=2000 {
            let x = i as f32 * 0.0437;
            let t = x.clamp(-87.0, 88.0) * LOG2E + 0.5;
            let tr = (t as i32) as f32;
            assert_eq!(if tr > t { tr - 1.0 } else { tr }, t.floor(), "at {x}");
        }
        assert_eq!(exp_approx(0.0), 1.0);
    }

    #[test]
    fn softmax_row_matches_the_definition_and_both_builds_agree() {
        let row: Vec<f32> = (0..37)
            .map(|i| ((i * 13 % 17) as f32 - 8.0) * 0.7)
            .collect();
        let mut out = vec![0f32; 37];
        let lse = softmax_row(&row, &mut out);
        let want_lse = row.iter().map(|&x| f64::from(x).exp()).sum::<f64>().ln();
        assert!(
            (f64::from(lse) - want_lse).abs() < 1e-5,
            "{lse} vs {want_lse}"
        );
        for (o, &x) in out.iter().zip(&row) {
            assert!((f64::from(*o) - (f64::from(x) - want_lse).exp()).abs() < 1e-6);
        }
        let mut generic = vec![0f32; 37];
        let (max, sum) = exp_shifted_generic(&row, &mut generic);
        scale_generic(&mut generic, 1.0 / sum);
        assert_eq!(generic, out);
        assert_eq!(max + sum.ln(), lse);
    }
}

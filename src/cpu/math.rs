//! Small host-side numerics over one row of logits.

/// `log_softmax` of a row, accumulated in f64.
pub(crate) fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    row.iter().map(|&x| x as f64 - lse).collect()
}

/// `(log_softmax(row)[tok], argmax(row) == tok)` for scoring a continuation token, in two
/// vectorized passes (the max in 8 lanes, then `exp(x - max)` with `fastexp::exp_approx`, relative
/// error < 3e-7, summed in 8 f32 lanes flushed to f64 every 1024 values; AVX2 build when the CPU
/// has it). Within 1e-6 of [`log_softmax`] for rows whose entries are within 80 of the max
/// (further ones contribute < 2e-35 each); the argmax is [`argmax`]'s (first maximum, NaN never
/// wins).
pub(crate) fn scored_token(row: &[f32], tok: usize) -> (f64, bool) {
    scored_token_simd(row, tok)
}

super::simd_fn!(scored_token_simd => scored_token_generic(row: &[f32], tok: usize) -> (f64, bool));

#[inline(always)]
fn scored_token_generic(row: &[f32], tok: usize) -> (f64, bool) {
    use super::fastexp::exp_approx;
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            lanes[l] = if c[l] > lanes[l] { c[l] } else { lanes[l] };
        }
    }
    let mut max = f32::NEG_INFINITY;
    for &x in lanes.iter().chain(tail) {
        max = if x > max { x } else { max };
    }
    let mut sum = 0f64;
    for block in row.chunks(1024) {
        let mut acc = [0f32; 8];
        let chunks = block.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            for l in 0..8 {
                acc[l] += exp_approx(c[l] - max);
            }
        }
        let mut part: f32 = acc.iter().sum();
        for &x in tail {
            part += exp_approx(x - max);
        }
        sum += part as f64;
    }
    let lse = max as f64 + sum.ln();
    let x = row[tok];
    // the first maximum is `tok` iff row[tok] is the max and nothing before it reaches it
    let greedy = x == max && !row[..tok].iter().any(|&y| y >= max);
    (x as f64 - lse, greedy)
}

/// Index of the first maximal value (torch.argmax semantics). NaN never wins.
pub(crate) fn argmax(row: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] || (row[best].is_nan() && !x.is_nan()) {
            best = i;
        }
    }
    best as u32
}

/// The `k` largest `(score, index)` pairs, best first; ties go to the smaller index.
pub(crate) fn top_k(scores: &[f64], k: usize) -> Vec<(f64, usize)> {
    let mut all: Vec<(f64, usize)> = scores
        .iter()
        .copied()
        .enumerate()
        .map(|(i, s)| (s, i))
        .collect();
    let cmp = |a: &(f64, usize), b: &(f64, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    let k = k.min(all.len());
    if k == 0 {
        return Vec::new();
    }
    if k < all.len() {
        all.select_nth_unstable_by(k - 1, cmp);
        all.truncate(k);
    }
    all.sort_by(cmp);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_matches_formula() {
        // log_softmax([1, 2, 3]) = x - ln(e + e^2 + e^3) (hand formula).
        let ls = log_softmax(&[1.0, 2.0, 3.0]);
        let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        for (i, v) in ls.iter().enumerate() {
            assert!((v - ((i + 1) as f64 - lse)).abs() < 1e-12);
        }
    }

    #[test]
    fn scored_token_matches_log_softmax_and_argmax() {
        // A vocabulary-sized row (49152 + 5, so the 8-lane loops have a tail) with a spread
        // of 30 nats, ties at the maximum (first one wins) and a few values far below.
        let mut row: Vec<f32> = (0..49157)
            .map(|i| ((i * 7919 % 10007) as f32 / 10007.0) * 30.0 - 20.0)
            .collect();
        row[40_000] = 12.0;
        row[45_000] = 12.0;
        row[3] = -1e30;
        let full = log_softmax(&row);
        for tok in [0, 3, 7, 1000, 40_000, 45_000, 49_156] {
            let (lp, greedy) = scored_token(&row, tok);
            assert!(
                (lp - full[tok]).abs() < 1e-6,
                "tok {tok}: {lp} vs {}",
                full[tok]
            );
            assert_eq!(greedy, argmax(&row) as usize == tok, "tok {tok}");
        }
        assert_eq!(argmax(&row), 40_000);
        // NaN never wins: the argmax is the first real maximum.
        let with_nan = [f32::NAN, 1.0, 2.0, 2.0];
        assert!(scored_token(&with_nan, 2).1);
        assert!(!scored_token(&with_nan, 3).1);
    }

    #[test]
    fn argmax_first_max_and_top_k_order() {
        assert_eq!(argmax(&[0.0, 3.0, 3.0, 1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
        assert_eq!(
            top_k(&[0.5, 2.0, 2.0, -1.0, 3.0], 3),
            vec![(3.0, 4), (2.0, 1), (2.0, 2)]
        );
        assert_eq!(top_k(&[1.0], 4), vec![(1.0, 0)]);
    }
}

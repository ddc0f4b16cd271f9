//! Small host-side numerics over one row of logits.

/// `log_softmax` of a row, accumulated in f64.
pub(crate) fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    row.iter().map(|&x| x as f64 - lse).collect()
}

/// `log_softmax(row)[tok]` without building the whole row: the same f64 arithmetic, in the same
/// order, as [`log_softmax`], so the result is bit-identical.
pub(crate) fn log_prob(row: &[f32], tok: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    row[tok] as f64 - lse
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
    fn log_prob_is_bit_identical_to_log_softmax() {
        let row: Vec<f32> = (0..1000)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let full = log_softmax(&row);
        for tok in [0, 1, 500, 999] {
            assert_eq!(log_prob(&row, tok).to_bits(), full[tok].to_bits());
        }
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

//! Selecting what to prune from a score vector: the `k` lowest scores (exactly `k`, ties broken
//! by position), row by row, or N:M groups. Plain slices, no tensors: the callers flatten.

use std::cmp::Ordering;

/// `true` at the `k` lowest scores (ties: the earlier position goes first). `k > len` marks all.
pub fn lowest(scores: &[f32], k: usize) -> Vec<bool> {
    let n = scores.len();
    let k = k.min(n);
    let mut out = vec![false; n];
    if k == 0 {
        return out;
    }
    let mut tmp = scores.to_vec();
    let (_, t, _) = tmp.select_nth_unstable_by(k - 1, f32::total_cmp);
    let t = *t;
    let mut marked = 0;
    for (o, s) in out.iter_mut().zip(scores) {
        if s.total_cmp(&t) == Ordering::Less {
            *o = true;
            marked += 1;
        }
    }
    for (o, s) in out.iter_mut().zip(scores) {
        if marked == k {
            break;
        }
        if s.total_cmp(&t) == Ordering::Equal {
            *o = true;
            marked += 1;
        }
    }
    out
}

/// [`lowest`] applied to each row of a row-major `[rows, cols]` matrix with `k` per row.
pub fn lowest_per_row(scores: &[f32], cols: usize, k: usize) -> Vec<bool> {
    if cols == 0 {
        return vec![];
    }
    scores.chunks(cols).flat_map(|row| lowest(row, k)).collect()
}

/// N:M along the input dim of a row-major `[rows, cols]` matrix: in every run of `m` consecutive
/// columns of a row, mark the `m - n` lowest scores (so at most `n` stay nonzero).
/// `cols` must be a multiple of `m` (the caller checks).
pub fn n_of_m(scores: &[f32], n: usize, m: usize) -> Vec<bool> {
    scores
        .chunks(m)
        .flat_map(|g| lowest(g, m.saturating_sub(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_marks_exactly_k_with_ties_by_position() {
        let s = [3.0, 1.0, 1.0, 1.0, 0.5, 2.0];
        // 0.5 first, then the first two of the three 1.0s.
        assert_eq!(lowest(&s, 3), [false, true, true, false, true, false]);
        assert_eq!(lowest(&s, 0), [false; 6]);
        assert_eq!(lowest(&s, 9), [true; 6]);
    }

    #[test]
    fn n_of_m_keeps_the_largest_n_in_each_group() {
        let s = [4.0, 1.0, 3.0, 2.0, 0.1, 0.4, 0.3, 0.2];
        // 2:4 -> prune the two smallest of each group of four.
        assert_eq!(
            n_of_m(&s, 2, 4),
            [false, true, false, true, true, false, false, true]
        );
    }

    #[test]
    fn per_row_prunes_each_row_separately() {
        let s = [1.0, 2.0, 3.0, 30.0, 20.0, 10.0];
        assert_eq!(
            lowest_per_row(&s, 3, 1),
            [true, false, false, false, false, true]
        );
    }
}

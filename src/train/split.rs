//! Length groups: a right-padded micro-batch run as several narrower forward/backward passes.
//!
//! A batch of mixed-length rows is padded to its longest row, and every padded position costs a
//! full pass through the layers (on the shipped commonsense rows at batch 8, about half of all
//! positions are padding). The loss of a micro-batch is a sum over rows, so the same gradient is
//! the sum of the gradients of row groups, each padded only to its own longest row. The trainer
//! splits every micro-batch this way: the rows, their order across steps, the loss normalisation
//! and the optimizer step are unchanged; only float summation order differs (and the dropout masks,
//! which are drawn per forward pass: still seeded and reproducible).
//!
//! Grouping: rows sorted by length (ties by index), cut into contiguous groups that minimise
//! `sum(rows x longest) + OVERHEAD_TOKENS x groups` (exact, by dynamic programming), so a cut is
//! made only where it saves more padded positions than a pass costs in fixed overhead and
//! smaller matmuls.

use candle_core::{Result, Tensor};

use super::batch::Batch;

/// What one extra forward/backward pass is worth in padded token positions.
pub const OVERHEAD_TOKENS: usize = 96;

/// Real length of each row of a right-padded `[b, t]` mask (its number of ones).
pub fn row_lengths(mask: &Tensor) -> Result<Vec<usize>> {
    Ok(mask
        .to_dtype(candle_core::DType::U32)?
        .to_vec2::<u32>()?
        .iter()
        .map(|r| r.iter().filter(|&&m| m != 0).count())
        .collect())
}

/// Row groups (indices into `lengths`, each group's rows in index order) and each group's width.
pub fn length_groups(lengths: &[usize], overhead: usize) -> Vec<(Vec<usize>, usize)> {
    let n = lengths.len();
    if n == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    let len = |k: usize| lengths[order[k]].max(1);
    // best[k] = cheapest cost of the first k sorted rows; cut[k] = where its last group starts
    let mut best = vec![0usize; n + 1];
    let mut cut = vec![0usize; n + 1];
    for k in 1..=n {
        let (mut bc, mut bj) = (usize::MAX, 0);
        for (j, &before) in best[..k].iter().enumerate() {
            // rows j..k sorted ascending: the group's width is its last row's length
            let c = before + (k - j) * len(k - 1) + overhead;
            if c < bc {
                (bc, bj) = (c, j);
            }
        }
        best[k] = bc;
        cut[k] = bj;
    }
    let mut groups = Vec::new();
    let mut k = n;
    while k > 0 {
        let j = cut[k];
        let mut rows: Vec<usize> = order[j..k].to_vec();
        rows.sort_unstable();
        groups.push((rows, len(k - 1)));
        k = j;
    }
    groups.reverse();
    groups
}

/// Rows `rows` of `b`, narrowed to the first `width` positions (right padding only beyond them).
pub fn sub_batch(b: &Batch, rows: &[usize], width: usize, lengths: &[usize]) -> Result<Batch> {
    let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let idx = Tensor::new(idx.as_slice(), b.input_ids.device())?;
    let pick = |t: &Tensor| t.index_select(&idx, 0)?.narrow(1, 0, width)?.contiguous();
    Ok(Batch {
        input_ids: pick(&b.input_ids)?,
        attention_mask: pick(&b.attention_mask)?,
        labels: pick(&b.labels)?,
        n_tokens: rows.iter().map(|&r| lengths[r]).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cut_where_padding_outweighs_a_pass() {
        // Two clusters: 4 short rows (~20) and 4 long rows (~250): cutting between them saves
        // 4 x 230 padded positions, far more than one pass.
        let lengths = [250, 20, 240, 18, 22, 255, 19, 230];
        let g = length_groups(&lengths, OVERHEAD_TOKENS);
        assert_eq!(
            g,
            vec![(vec![1, 3, 4, 6], 22), (vec![0, 2, 5, 7], 255)],
            "{g:?}"
        );
        // Similar lengths stay one pass.
        let g = length_groups(&[100, 104, 98, 101], OVERHEAD_TOKENS);
        assert_eq!(g, vec![(vec![0, 1, 2, 3], 104)]);
        // No overhead: every distinct length is its own group; every row lands exactly once.
        let g = length_groups(&lengths, 0);
        let mut all: Vec<usize> = g.iter().flat_map(|(r, _)| r.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
        assert_eq!(g.len(), 8);
        assert!(length_groups(&[], 10).is_empty());
    }

    #[test]
    fn the_grouping_is_the_cheapest_contiguous_cut() {
        // Brute force over all cuts of the sorted rows (2^(n-1) of them) for a few cases.
        for (lengths, overhead) in [
            (vec![5usize, 80, 81, 200, 7, 120, 119, 60], 40usize),
            (vec![10, 10, 10, 300], 100),
            (vec![1, 2, 3, 4, 5, 6], 2),
        ] {
            let mut sorted = lengths.clone();
            sorted.sort_unstable();
            let n = sorted.len();
            let mut want = usize::MAX;
            for mask in 0..(1u32 << (n - 1)) {
                let (mut cost, mut start) = (0, 0);
                for (k, &l) in sorted.iter().enumerate() {
                    if k == n - 1 || mask & (1 << k) != 0 {
                        cost += (k + 1 - start) * l + overhead;
                        start = k + 1;
                    }
                }
                want = want.min(cost);
            }
            let got: usize = length_groups(&lengths, overhead)
                .iter()
                .map(|(r, w)| r.len() * w + overhead)
                .sum();
            assert_eq!(got, want, "{lengths:?}");
        }
    }
}

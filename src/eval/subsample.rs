//! Seeded subsampling of a task's items (`limit`).
//!
//! Guarantees: the same `(n, limit, seed)` always selects the same indices (ChaCha8 stream, rand 0.9
//! `index::sample`), the indices are distinct and returned in ascending (file) order, and
//! `limit >= n` keeps every item.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

crate::choice_enum! {
    /// Which rows `limit` keeps.
    pub enum Subset {
        /// A seeded random subset, in file order (every part of the file is represented).
        Random = "random",
        /// The first rows of the file (lm-eval's `--limit`).
        First = "first",
    }
}

/// Indices of the items to evaluate under `subset`.
pub fn select(n: usize, limit: Option<usize>, subset: Subset, seed: u64) -> Vec<usize> {
    match subset {
        Subset::Random => subsample_indices(n, limit, seed),
        Subset::First => (0..limit.map_or(n, |k| k.min(n))).collect(),
    }
}

/// Indices of the items to evaluate: a seeded random subset.
pub fn subsample_indices(n: usize, limit: Option<usize>, seed: u64) -> Vec<usize> {
    match limit {
        Some(k) if k < n => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut idx = rand::seq::index::sample(&mut rng, n, k).into_vec();
            idx.sort_unstable();
            idx
        }
        _ => (0..n).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_distinct_sorted_and_stable() {
        let a = subsample_indices(1000, Some(50), 42);
        assert_eq!(a, subsample_indices(1000, Some(50), 42));
        assert_ne!(a, subsample_indices(1000, Some(50), 43));
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a.iter().all(|&i| i < 1000));
        // Not simply the first 50.
        assert_ne!(a, (0..50).collect::<Vec<_>>());
        assert_eq!(
            subsample_indices(7, Some(10), 1),
            (0..7).collect::<Vec<_>>()
        );
        assert_eq!(subsample_indices(7, None, 1), (0..7).collect::<Vec<_>>());
        assert_eq!(select(1000, Some(50), Subset::Random, 42), a);
        assert_eq!(select(1000, Some(3), Subset::First, 42), vec![0, 1, 2]);
        assert_eq!(select(2, Some(3), Subset::First, 42), vec![0, 1]);
        assert_eq!(select(2, None, Subset::First, 42), vec![0, 1]);
    }
}

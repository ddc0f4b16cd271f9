//! Seeded permutations, independent of `rand`'s sampling algorithms: a Fisher-Yates shuffle driven
//! by ChaCha8 words (`rand_chacha`, whose output stream is fixed by its spec), so a seed gives the
//! same order on every machine and every `rand` version. Each use takes its own stream id, so the
//! split, the row limit and each epoch's order are independent.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Stream ids (the ChaCha nonce) per purpose.
pub const STREAM_SPLIT: u64 = 1;
pub const STREAM_LIMIT: u64 = 2;
/// Epoch `e` of a batch plan uses stream `STREAM_EPOCH_BASE + e`.
pub const STREAM_EPOCH_BASE: u64 = 1 << 32;

pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// A uniform integer in `0..n` (`n > 0`) by the widening multiply (bias < n / 2^64).
fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}

/// Shuffles `items` in place (Fisher-Yates, from the back).
pub fn shuffle<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i + 1);
        items.swap(i, j);
    }
}

/// A permutation of `0..n`.
pub fn permutation(n: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    shuffle(&mut p, &mut rng(seed, stream));
    p
}

/// `k` of `0..n` chosen uniformly without replacement, in ascending order.
pub fn sample_sorted(n: usize, k: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut p = permutation(n, seed, stream);
    p.truncate(k.min(n));
    p.sort_unstable();
    p
}

/// Splits `0..n` into (train, val): `val_rows` rows drawn with `seed`, both in ascending order.
pub fn split_indices(n: usize, val_rows: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let val = sample_sorted(n, val_rows, seed, STREAM_SPLIT);
    let mut is_val = vec![false; n];
    for &i in &val {
        is_val[i] = true;
    }
    let train = (0..n).filter(|&i| !is_val[i]).collect();
    (train, val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_are_seeded_and_complete() {
        let a = permutation(100, 42, 7);
        assert_eq!(a, permutation(100, 42, 7));
        assert_ne!(a, permutation(100, 43, 7));
        assert_ne!(a, permutation(100, 42, 8));
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn split_is_a_partition_of_the_requested_size() {
        let (train, val) = split_indices(50, 12, 42);
        assert_eq!(val.len(), 12);
        assert_eq!(train.len(), 38);
        let mut all: Vec<_> = train.iter().chain(&val).copied().collect();
        all.sort();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        assert_eq!(split_indices(50, 12, 42), (train, val));
        assert_eq!(split_indices(5, 10, 1).1.len(), 5);
    }
}

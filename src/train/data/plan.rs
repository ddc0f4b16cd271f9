//! The batch plan: which example indices form batch `i` of epoch `e`, as a pure function of
//! (lengths, config, epoch), so a trainer that stores a [`Cursor`] resumes on exactly the batches
//! an uninterrupted run would have seen.
//!
//! Per epoch: a seeded permutation (stream `STREAM_EPOCH_BASE + epoch`), or the dataset order when
//! `shuffle` is off; with `group_by_length`, the permutation is cut into mega-batches of
//! `mega_batch_mult * batch_size` examples, each sorted by length (longest first, ties by index),
//! as transformers' `LengthGroupedSampler`; then consecutive chunks of `batch_size` form batches.

use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::shuffle::{STREAM_EPOCH_BASE, permutation};

/// A position in the stream of batches: the next batch to run is `batch` of `epoch`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Cursor {
    pub epoch: u64,
    pub batch: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanConfig {
    pub batch_size: usize,
    pub seed: u64,
    pub shuffle: bool,
    pub group_by_length: bool,
    /// Mega-batch size in batches (transformers uses 50).
    pub mega_batch_mult: usize,
    /// Drop a last, smaller batch.
    pub drop_last: bool,
}

impl PlanConfig {
    pub fn new(batch_size: usize, seed: u64) -> Self {
        Self {
            batch_size,
            seed,
            shuffle: true,
            group_by_length: false,
            mega_batch_mult: 50,
            drop_last: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BatchPlan {
    lengths: Vec<usize>,
    cfg: PlanConfig,
}

impl BatchPlan {
    /// `lengths[i]` is the token length of example `i`.
    pub fn new(lengths: Vec<usize>, cfg: PlanConfig) -> Result<Self, DataError> {
        if cfg.batch_size == 0 {
            return Err(DataError::Config("batch size must be at least 1".into()));
        }
        if cfg.group_by_length && cfg.mega_batch_mult == 0 {
            return Err(DataError::Config(
                "mega-batch multiplier must be at least 1".into(),
            ));
        }
        Ok(Self { lengths, cfg })
    }

    pub fn config(&self) -> &PlanConfig {
        &self.cfg
    }

    pub fn batches_per_epoch(&self) -> usize {
        let n = self.lengths.len();
        if self.cfg.drop_last {
            n / self.cfg.batch_size
        } else {
            n.div_ceil(self.cfg.batch_size)
        }
    }

    /// All batches of `epoch`, in order.
    pub fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let n = self.lengths.len();
        let mut order: Vec<usize> = if self.cfg.shuffle {
            permutation(n, self.cfg.seed, STREAM_EPOCH_BASE + epoch)
        } else {
            (0..n).collect()
        };
        if self.cfg.group_by_length {
            let mega = self.cfg.mega_batch_mult * self.cfg.batch_size;
            for chunk in order.chunks_mut(mega) {
                chunk.sort_by(|&a, &b| self.lengths[b].cmp(&self.lengths[a]).then(a.cmp(&b)));
            }
        }
        let mut batches: Vec<Vec<usize>> = order
            .chunks(self.cfg.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        if self.cfg.drop_last
            && batches
                .last()
                .is_some_and(|b| b.len() < self.cfg.batch_size)
        {
            batches.pop();
        }
        batches
    }

    /// Batches from `cursor` on, across epochs, without end (stop by step budget or epoch).
    pub fn iter_from(&self, cursor: Cursor) -> BatchIter<'_> {
        BatchIter {
            plan: self,
            cursor,
            current: None,
        }
    }
}

/// Yields `(cursor of this batch, indices)`; the cursor to save after running a batch is the
/// next one yielded, or [`BatchIter::position`].
pub struct BatchIter<'a> {
    plan: &'a BatchPlan,
    cursor: Cursor,
    current: Option<(u64, Vec<Vec<usize>>)>,
}

impl BatchIter<'_> {
    /// The next batch to be yielded.
    pub fn position(&self) -> Cursor {
        self.cursor
    }
}

impl Iterator for BatchIter<'_> {
    type Item = (Cursor, Vec<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.plan.batches_per_epoch() == 0 {
            return None;
        }
        loop {
            if self
                .current
                .as_ref()
                .is_none_or(|(e, _)| *e != self.cursor.epoch)
            {
                self.current = Some((self.cursor.epoch, self.plan.epoch(self.cursor.epoch)));
            }
            let (_, batches) = self.current.as_ref()?;
            if let Some(b) = batches.get(self.cursor.batch) {
                let out = (self.cursor, b.clone());
                self.cursor.batch += 1;
                return Some(out);
            }
            self.cursor = Cursor {
                epoch: self.cursor.epoch + 1,
                batch: 0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_cover_every_example_once_and_differ() {
        let plan = BatchPlan::new((0..10).collect(), PlanConfig::new(3, 42)).unwrap();
        assert_eq!(plan.batches_per_epoch(), 4);
        let e0 = plan.epoch(0);
        let mut all: Vec<_> = e0.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(e0.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
        assert_ne!(e0, plan.epoch(1));
        assert_eq!(e0, plan.epoch(0));
    }

    #[test]
    fn resuming_from_a_cursor_reproduces_the_stream() {
        let plan =
            BatchPlan::new((0..7).map(|i| i * 3 % 5).collect(), PlanConfig::new(2, 9)).unwrap();
        let full: Vec<_> = plan.iter_from(Cursor::default()).take(13).collect();
        let mut it = plan.iter_from(Cursor::default());
        let _ = it.by_ref().take(6).count();
        let saved = it.position();
        assert_eq!(saved, Cursor { epoch: 1, batch: 2 });
        let resumed: Vec<_> = plan.iter_from(saved).take(7).collect();
        assert_eq!(resumed, full[6..]);
    }

    #[test]
    fn length_grouping_sorts_within_mega_batches() {
        let lengths = vec![5, 1, 9, 3, 7, 2, 8, 4];
        let mut cfg = PlanConfig::new(2, 1);
        cfg.group_by_length = true;
        cfg.mega_batch_mult = 2; // mega-batches of 4
        let plan = BatchPlan::new(lengths.clone(), cfg).unwrap();
        let batches = plan.epoch(0);
        for mega in batches.chunks(2) {
            let lens: Vec<_> = mega.concat().iter().map(|&i| lengths[i]).collect();
            assert!(lens.windows(2).all(|w| w[0] >= w[1]), "{lens:?}");
        }
        let mut cfg = PlanConfig::new(3, 1);
        cfg.drop_last = true;
        assert_eq!(BatchPlan::new(lengths, cfg).unwrap().epoch(0).len(), 2);
    }
}

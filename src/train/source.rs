//! Where the loop gets its batches: the [`BatchSource`] trait, and [`ExampleSource`], an
//! in-memory implementation over tokenized [`Example`]s.
//!
//! The contract that makes resume exact: `batch(seed, epoch, index, size)` is a pure function of
//! its arguments, so a data cursor `(epoch, index)` in a checkpoint is all the data state there is.

use candle_core::Device;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;

use super::batch::{Batch, Example};

pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

pub trait BatchSource {
    /// Training micro-batches of `size` rows in one epoch.
    fn num_batches(&self, size: usize) -> usize;
    /// The `index`-th training micro-batch of `epoch` (data order drawn from `seed` and `epoch`).
    /// Must be a pure function of its arguments.
    fn batch(
        &self,
        seed: u64,
        epoch: usize,
        index: usize,
        size: usize,
        device: &Device,
    ) -> Result<Batch, SourceError>;
    /// Validation micro-batches of `size` rows (0 when there is no validation split).
    fn num_val_batches(&self, _size: usize) -> usize {
        0
    }
    /// The `index`-th validation micro-batch, in a fixed order.
    fn val_batch(
        &self,
        index: usize,
        _size: usize,
        _device: &Device,
    ) -> Result<Batch, SourceError> {
        Err(format!("no validation batch {index}: the source has no validation split").into())
    }
}

/// Tokenized examples held in memory, reshuffled every epoch with a ChaCha8 stream seeded from
/// `(seed, epoch)`; the last micro-batch of an epoch may be short.
pub struct ExampleSource {
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    pub pad_id: u32,
    /// Shuffle the training rows each epoch (off: file order, every epoch).
    pub shuffle: bool,
    order: Mutex<Option<(u64, usize, Vec<usize>)>>,
}

impl ExampleSource {
    pub fn new(train: Vec<Example>, val: Vec<Example>, pad_id: u32) -> Self {
        Self {
            train,
            val,
            pad_id,
            shuffle: true,
            order: Mutex::new(None),
        }
    }

    /// The permutation of training rows for `epoch`.
    pub fn epoch_order(&self, seed: u64, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        if self.shuffle {
            let mix = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix));
        }
        order
    }

    fn rows(&self, seed: u64, epoch: usize, range: std::ops::Range<usize>) -> Vec<usize> {
        let mut cached = match self.order.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match &*cached {
            Some((s, e, order)) if *s == seed && *e == epoch => order[range].to_vec(),
            _ => {
                let order = self.epoch_order(seed, epoch);
                let rows = order[range].to_vec();
                *cached = Some((seed, epoch, order));
                rows
            }
        }
    }
}

impl BatchSource for ExampleSource {
    fn num_batches(&self, size: usize) -> usize {
        self.train.len().div_ceil(size.max(1))
    }

    fn batch(
        &self,
        seed: u64,
        epoch: usize,
        index: usize,
        size: usize,
        device: &Device,
    ) -> Result<Batch, SourceError> {
        let start = index * size;
        if start >= self.train.len() {
            return Err(
                format!("batch {index} of epoch {epoch} is past the end of the data").into(),
            );
        }
        let end = (start + size).min(self.train.len());
        let rows = self.rows(seed, epoch, start..end);
        let examples: Vec<&Example> = rows.iter().map(|&i| &self.train[i]).collect();
        Ok(Batch::collate(&examples, self.pad_id, device)?)
    }

    fn num_val_batches(&self, size: usize) -> usize {
        self.val.len().div_ceil(size.max(1))
    }

    fn val_batch(&self, index: usize, size: usize, device: &Device) -> Result<Batch, SourceError> {
        let start = index * size;
        if start >= self.val.len() {
            return Err(format!("validation batch {index} is past the end of the data").into());
        }
        let examples: Vec<&Example> = self.val[start..(start + size).min(self.val.len())]
            .iter()
            .collect();
        Ok(Batch::collate(&examples, self.pad_id, device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(i: u32) -> Example {
        Example {
            input_ids: vec![i, i + 1],
            labels: vec![i as i64, (i + 1) as i64],
        }
    }

    #[test]
    fn batches_are_a_pure_function_of_seed_epoch_and_index() {
        let src = ExampleSource::new((0..10).map(ex).collect(), vec![], 0);
        assert_eq!(src.num_batches(4), 3);
        let first = |seed, epoch| {
            let b = src.batch(seed, epoch, 0, 4, &Device::Cpu).unwrap();
            b.input_ids.to_vec2::<u32>().unwrap()
        };
        let a = first(1, 0);
        let _ = first(1, 1); // moves the cache to another epoch
        assert_eq!(first(1, 0), a);
        assert_ne!(first(1, 1), a, "epochs are reshuffled");
        // every row once per epoch; the last batch is short
        let mut seen: Vec<u32> = (0..3)
            .flat_map(|i| {
                src.batch(1, 2, i, 4, &Device::Cpu)
                    .unwrap()
                    .input_ids
                    .to_vec2::<u32>()
                    .unwrap()
            })
            .map(|row| row[0])
            .collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<u32>>());
        assert!(src.batch(1, 0, 3, 4, &Device::Cpu).is_err());
    }
}

//! The data helper's [`TokenizedDataset`] as a [`BatchSource`]: training batches follow its
//! [`BatchPlan`] (seeded shuffle per epoch, optional length grouping), so the trainer's cursor
//! `(epoch, index)` names the same rows after a restart. Validation batches are the validation
//! split in order.

use candle_core::Device;
use std::sync::Mutex;

use super::batch::Batch;
use super::data::{BatchPlan, PlanConfig, Split, TokenizedDataset};
use super::source::{BatchSource, SourceError};

/// (seed, batch size, epoch): what a cached epoch of batches was computed for.
type EpochKey = (u64, usize, usize);

pub struct DatasetSource<'a> {
    ds: &'a TokenizedDataset,
    pad_id: u32,
    /// Shuffle, length grouping and drop-last; batch size and seed come from the trainer.
    plan: PlanConfig,
    lengths: Vec<usize>,
    /// The last epoch's batches, keyed by (seed, size, epoch).
    cache: Mutex<Option<(EpochKey, Vec<Vec<usize>>)>>,
}

impl<'a> DatasetSource<'a> {
    pub fn new(ds: &'a TokenizedDataset, pad_id: u32, plan: PlanConfig) -> Self {
        let lengths = ds.lengths(Split::Train);
        Self {
            ds,
            pad_id,
            plan,
            lengths,
            cache: Mutex::new(None),
        }
    }

    fn plan_for(&self, seed: u64, size: usize) -> Result<BatchPlan, SourceError> {
        let cfg = PlanConfig {
            batch_size: size,
            seed,
            ..self.plan.clone()
        };
        Ok(BatchPlan::new(self.lengths.clone(), cfg)?)
    }
}

impl BatchSource for DatasetSource<'_> {
    fn num_batches(&self, size: usize) -> usize {
        self.plan_for(0, size).map_or(0, |p| p.batches_per_epoch())
    }

    fn batch(
        &self,
        seed: u64,
        epoch: usize,
        index: usize,
        size: usize,
        device: &Device,
    ) -> Result<Batch, SourceError> {
        let key = (seed, size, epoch);
        let mut cache = match self.cache.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if cache.as_ref().is_none_or(|(k, _)| *k != key) {
            *cache = Some((key, self.plan_for(seed, size)?.epoch(epoch as u64)));
        }
        let rows = cache
            .as_ref()
            .and_then(|(_, batches)| batches.get(index))
            .ok_or_else(|| format!("batch {index} of epoch {epoch} is past the end of the plan"))?;
        Ok(self.ds.collate(Split::Train, rows, self.pad_id, device)?)
    }

    fn num_val_batches(&self, size: usize) -> usize {
        self.ds.val.len().div_ceil(size.max(1))
    }

    fn val_batch(&self, index: usize, size: usize, device: &Device) -> Result<Batch, SourceError> {
        let start = index * size;
        let rows: Vec<usize> = (start..(start + size).min(self.ds.val.len())).collect();
        if rows.is_empty() {
            return Err(format!("validation batch {index} is past the end of the data").into());
        }
        Ok(self.ds.collate(Split::Val, &rows, self.pad_id, device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::batch::Example;
    use crate::train::data::DatasetMeta;

    fn ds() -> TokenizedDataset {
        let ex = |i: u32| Example {
            input_ids: vec![i; 1 + i as usize % 4],
            labels: vec![i as i64; 1 + i as usize % 4],
        };
        TokenizedDataset {
            train: (0..10).map(ex).collect(),
            val: (20..23).map(ex).collect(),
            meta: DatasetMeta::default(),
        }
    }

    #[test]
    fn batches_follow_the_data_plan_and_cover_each_row_once_per_epoch() {
        let ds = ds();
        let mut plan = PlanConfig::new(1, 0);
        plan.group_by_length = true;
        let src = DatasetSource::new(&ds, 0, plan.clone());
        assert_eq!(src.num_batches(4), 3);
        let want = BatchPlan::new(
            ds.lengths(Split::Train),
            PlanConfig {
                batch_size: 4,
                seed: 7,
                ..plan
            },
        )
        .unwrap()
        .epoch(1);
        let mut seen = vec![];
        for (i, rows) in want.iter().enumerate() {
            let b = src.batch(7, 1, i, 4, &Device::Cpu).unwrap();
            let firsts: Vec<u32> = b
                .input_ids
                .to_vec2::<u32>()
                .unwrap()
                .iter()
                .map(|r| r[0])
                .collect();
            assert_eq!(firsts, rows.iter().map(|&r| r as u32).collect::<Vec<_>>());
            seen.extend(firsts);
        }
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<u32>>());
        assert!(src.batch(7, 1, 3, 4, &Device::Cpu).is_err());
        assert_eq!(src.num_val_batches(2), 2);
        assert_eq!(
            src.val_batch(1, 2, &Device::Cpu).unwrap().input_ids.dims()[0],
            1
        );
    }
}

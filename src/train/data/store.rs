//! The tokenized dataset and its on-disk form (the `data` stage's cache output):
//!
//! ```text
//! <dir>/meta.json            DatasetMeta + format version
//! <dir>/tokens.safetensors   {train,val}.input_ids u32 [tokens], {train,val}.labels i64 [tokens],
//!                            {train,val}.offsets u64 [rows + 1]
//! ```
//! Flat arrays with offsets load in one pass (mmap, no per-row parsing). Loading checks that the
//! offsets are monotone and match the array lengths, so a corrupt file is an error, not a panic.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::train::batch::{Batch, Example};

use super::error::DataError;

pub const FORMAT_VERSION: u32 = 1;
const META: &str = "meta.json";
const TOKENS: &str = "tokens.safetensors";

/// What went into a dataset and what came out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    pub files: Vec<String>,
    pub template: String,
    pub max_len: usize,
    pub train_on_inputs: bool,
    pub rows_read: usize,
    /// Rows per task (`instruction` / `text` for rows without one).
    pub rows_per_task: BTreeMap<String, usize>,
    pub truncated: usize,
    pub train_rows: usize,
    pub val_rows: usize,
    pub train_tokens: usize,
    pub val_tokens: usize,
    /// Tokens that carry loss in the train split.
    pub train_loss_tokens: usize,
    pub packed: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedDataset {
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    pub meta: DatasetMeta,
}

#[derive(Serialize, Deserialize)]
struct MetaFile {
    format_version: u32,
    meta: DatasetMeta,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
}

impl TokenizedDataset {
    pub fn split(&self, split: Split) -> &[Example] {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// Token lengths of a split (for [`super::plan::BatchPlan`]).
    pub fn lengths(&self, split: Split) -> Vec<usize> {
        self.split(split)
            .iter()
            .map(|e| e.input_ids.len())
            .collect()
    }

    /// The right-padded batch of the given rows of a split. An index out of range is an error.
    pub fn collate(
        &self,
        split: Split,
        indices: &[usize],
        pad_id: u32,
        device: &Device,
    ) -> Result<Batch, DataError> {
        let rows = self.split(split);
        let picked = indices
            .iter()
            .map(|&i| {
                rows.get(i).ok_or_else(|| {
                    DataError::Config(format!(
                        "row {i} out of range ({} rows in {split:?})",
                        rows.len()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Batch::collate(&picked, pad_id, device)
            .map_err(|e| DataError::Config(format!("collate: {e}")))
    }

    /// Writes `meta.json` and `tokens.safetensors` into `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<(), DataError> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let mut arrays: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, rows) in [("train", &self.train), ("val", &self.val)] {
            let total: usize = rows.iter().map(|e| e.input_ids.len()).sum();
            let mut ids = Vec::with_capacity(total * 4);
            let mut labels = Vec::with_capacity(total * 8);
            let mut offsets = Vec::with_capacity((rows.len() + 1) * 8);
            let mut off = 0u64;
            offsets.extend_from_slice(&off.to_le_bytes());
            for e in rows.iter() {
                if e.labels.len() != e.input_ids.len() {
                    return Err(DataError::store(
                        dir,
                        "an example's labels and input_ids differ in length",
                    ));
                }
                e.input_ids
                    .iter()
                    .for_each(|t| ids.extend_from_slice(&t.to_le_bytes()));
                e.labels
                    .iter()
                    .for_each(|l| labels.extend_from_slice(&l.to_le_bytes()));
                off += e.input_ids.len() as u64;
                offsets.extend_from_slice(&off.to_le_bytes());
            }
            arrays.push((format!("{name}.input_ids"), Dtype::U32, vec![total], ids));
            arrays.push((format!("{name}.labels"), Dtype::I64, vec![total], labels));
            arrays.push((
                format!("{name}.offsets"),
                Dtype::U64,
                vec![rows.len() + 1],
                offsets,
            ));
        }
        let views = arrays
            .iter()
            .map(|(n, dt, shape, bytes)| {
                TensorView::new(*dt, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| DataError::store(dir, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let path = dir.join(TOKENS);
        safetensors::tensor::serialize_to_file(views, None, &path)
            .map_err(|e| DataError::store(&path, e))?;
        let meta = MetaFile {
            format_version: FORMAT_VERSION,
            meta: self.meta.clone(),
        };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| DataError::store(dir, e))?;
        std::fs::write(dir.join(META), json).map_err(|e| DataError::io(dir.join(META), e))
    }

    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let meta_path = dir.join(META);
        let bytes = std::fs::read(&meta_path).map_err(|e| DataError::io(&meta_path, e))?;
        let meta: MetaFile =
            serde_json::from_slice(&bytes).map_err(|e| DataError::store(&meta_path, e))?;
        if meta.format_version != FORMAT_VERSION {
            return Err(DataError::store(
                &meta_path,
                format!(
                    "format version {} (this build reads {FORMAT_VERSION})",
                    meta.format_version
                ),
            ));
        }
        let path = dir.join(TOKENS);
        let file = std::fs::File::open(&path).map_err(|e| DataError::io(&path, e))?;
        let mmap = crate::sys::map_readonly(&file).map_err(|e| DataError::io(&path, e))?;
        let st =
            safetensors::SafeTensors::deserialize(&mmap).map_err(|e| DataError::store(&path, e))?;
        let read = |name: &str, dtype: Dtype| -> Result<Vec<u8>, DataError> {
            let t = st
                .tensor(name)
                .map_err(|e| DataError::store(&path, format!("`{name}`: {e}")))?;
            if t.dtype() != dtype {
                return Err(DataError::store(
                    &path,
                    format!("`{name}`: dtype {:?}, expected {dtype:?}", t.dtype()),
                ));
            }
            Ok(t.data().to_vec())
        };
        let mut splits = Vec::new();
        for name in ["train", "val"] {
            let ids: Vec<u32> = read(&format!("{name}.input_ids"), Dtype::U32)?
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let labels: Vec<i64> = read(&format!("{name}.labels"), Dtype::I64)?
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            let offsets: Vec<usize> = read(&format!("{name}.offsets"), Dtype::U64)?
                .chunks_exact(8)
                .map(|c| {
                    u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as usize
                })
                .collect();
            let consistent = ids.len() == labels.len()
                && offsets.first() == Some(&0)
                && offsets.last() == Some(&ids.len())
                && offsets.windows(2).all(|w| w[0] <= w[1]);
            if !consistent {
                return Err(DataError::store(
                    &path,
                    format!("`{name}`: offsets do not match the token arrays"),
                ));
            }
            let rows = offsets
                .windows(2)
                .map(|w| Example {
                    input_ids: ids[w[0]..w[1]].to_vec(),
                    labels: labels[w[0]..w[1]].to_vec(),
                })
                .collect::<Vec<_>>();
            splits.push(rows);
        }
        let val = splits.pop().unwrap_or_default();
        let train = splits.pop().unwrap_or_default();
        Ok(Self {
            train,
            val,
            meta: meta.meta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::batch::IGNORE_INDEX;

    #[test]
    fn save_load_round_trip_and_corruption_is_an_error() {
        let ds = TokenizedDataset {
            train: vec![
                Example {
                    input_ids: vec![1, 2, 3],
                    labels: vec![IGNORE_INDEX, 2, 3],
                },
                Example {
                    input_ids: vec![],
                    labels: vec![],
                },
                Example {
                    input_ids: vec![70000],
                    labels: vec![70000],
                },
            ],
            val: vec![Example {
                input_ids: vec![9],
                labels: vec![IGNORE_INDEX],
            }],
            meta: DatasetMeta {
                template: "raw".into(),
                train_rows: 3,
                val_rows: 1,
                ..Default::default()
            },
        };
        let dir = tempfile::tempdir().unwrap();
        ds.save(dir.path()).unwrap();
        assert_eq!(TokenizedDataset::load(dir.path()).unwrap(), ds);
        let batch = ds.collate(Split::Train, &[0, 2], 0, &Device::Cpu).unwrap();
        assert_eq!(
            batch.input_ids.to_vec2::<u32>().unwrap(),
            vec![vec![1, 2, 3], vec![70000, 0, 0]]
        );
        assert!(ds.collate(Split::Val, &[1], 0, &Device::Cpu).is_err());
        let p = dir.path().join(TOKENS);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 5);
        std::fs::write(&p, bytes).unwrap();
        let e = TokenizedDataset::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("tokens.safetensors"), "{e}");
    }
}

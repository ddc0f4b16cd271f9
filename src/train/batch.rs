//! A tokenized training example and the padded batch the training loop consumes.
//!
//! Labels follow the HF convention: aligned with `input_ids` (the loss shifts them internally:
//! position `t` predicts `labels[t + 1]`), `IGNORE_INDEX` (-100) marks tokens that contribute no
//! loss (the prompt when `train_on_inputs` is off, and padding).

use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

pub const IGNORE_INDEX: i64 = -100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub input_ids: Vec<u32>,
    /// Same length as `input_ids`; `IGNORE_INDEX` where no loss is taken.
    pub labels: Vec<i64>,
}

impl Example {
    /// Tokens that contribute to the loss (labels not ignored, excluding the first position,
    /// which nothing predicts).
    pub fn loss_tokens(&self) -> usize {
        self.labels
            .iter()
            .skip(1)
            .filter(|&&l| l != IGNORE_INDEX)
            .count()
    }
}

/// A right-padded batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[b, t]` u32.
    pub input_ids: Tensor,
    /// `[b, t]` u32, 1 = real token.
    pub attention_mask: Tensor,
    /// `[b, t]` i64, `IGNORE_INDEX` on padding and masked tokens.
    pub labels: Tensor,
    /// Real (unpadded) tokens in the batch.
    pub n_tokens: usize,
}

impl Batch {
    /// Right-pad `examples` to their longest length with `pad_id` (labels `IGNORE_INDEX`, mask 0).
    pub fn collate(examples: &[&Example], pad_id: u32, device: &Device) -> Result<Self> {
        let b = examples.len();
        let t = examples
            .iter()
            .map(|e| e.input_ids.len())
            .max()
            .unwrap_or(0);
        let mut ids = vec![pad_id; b * t];
        let mut mask = vec![0u32; b * t];
        let mut labels = vec![IGNORE_INDEX; b * t];
        let mut n_tokens = 0;
        for (row, e) in examples.iter().enumerate() {
            let n = e.input_ids.len();
            n_tokens += n;
            ids[row * t..row * t + n].copy_from_slice(&e.input_ids);
            mask[row * t..row * t + n].fill(1);
            labels[row * t..row * t + n].copy_from_slice(&e.labels);
        }
        Ok(Self {
            input_ids: Tensor::from_vec(ids, (b, t), device)?,
            attention_mask: Tensor::from_vec(mask, (b, t), device)?,
            labels: Tensor::from_vec(labels, (b, t), device)?,
            n_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collate_right_pads_and_ignores_padding() {
        let a = Example {
            input_ids: vec![5, 6, 7],
            labels: vec![IGNORE_INDEX, 6, 7],
        };
        let b = Example {
            input_ids: vec![8],
            labels: vec![8],
        };
        let batch = Batch::collate(&[&a, &b], 0, &Device::Cpu).unwrap();
        assert_eq!(
            batch.input_ids.to_vec2::<u32>().unwrap(),
            vec![vec![5, 6, 7], vec![8, 0, 0]]
        );
        assert_eq!(
            batch.attention_mask.to_vec2::<u32>().unwrap(),
            vec![vec![1, 1, 1], vec![1, 0, 0]]
        );
        assert_eq!(
            batch.labels.to_vec2::<i64>().unwrap(),
            vec![
                vec![IGNORE_INDEX, 6, 7],
                vec![8, IGNORE_INDEX, IGNORE_INDEX]
            ]
        );
        assert_eq!(batch.n_tokens, 4);
        assert_eq!(a.loss_tokens(), 2);
    }
}

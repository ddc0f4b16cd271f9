//! A toy trainable LM for the loop's tests: frozen embedding and head, a Var-based low-rank
//! correction `h = e + s * B A dropout(e)` with seeded dropout, so it exercises everything the
//! trainer touches without the real model.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::Cell;

use crate::lm::{CausalLm, TrainableLm};

pub struct ToyLm {
    emb: Tensor,
    head: Tensor,
    a: Var,
    b: Var,
    scale: f64,
    dropout: f64,
    training: Cell<bool>,
    seed: Cell<u64>,
    forwards: Cell<usize>,
    /// From this forward call on (0-based), logits are NaN.
    pub nan_from_forward: Option<usize>,
    /// An extra variable the forward never uses (to test the missing-gradient check).
    pub unused: Option<Var>,
}

impl ToyLm {
    /// Weights drawn from `seed`: vocab `v`, width `d`, rank `r`; B starts at 0 as in LoRA.
    pub fn new(v: usize, d: usize, r: usize, dropout: f64, seed: u64) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut draw = |n: usize, bound: f32| -> Vec<f32> {
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        };
        let dev = Device::Cpu;
        let emb = Tensor::from_vec(draw(v * d, 1.0), (v, d), &dev)?;
        let head = Tensor::from_vec(draw(v * d, 1.0), (v, d), &dev)?;
        let a = Var::from_tensor(&Tensor::from_vec(
            draw(r * d, 1.0 / (d as f32).sqrt()),
            (r, d),
            &dev,
        )?)?;
        let b = Var::from_tensor(&Tensor::zeros((d, r), DType::F32, &dev)?)?;
        Ok(Self {
            emb,
            head,
            a,
            b,
            scale: 2.0 / r as f64, // alpha = 2 != r
            dropout,
            training: Cell::new(false),
            seed: Cell::new(0),
            forwards: Cell::new(0),
            nan_from_forward: None,
            unused: None,
        })
    }

    fn dropout_mask(&self, n: usize) -> Result<Option<Tensor>> {
        if !self.training.get() || self.dropout == 0.0 {
            return Ok(None);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed.get());
        let keep = 1.0 - self.dropout;
        let mask: Vec<f32> = (0..n)
            .map(|_| {
                if rng.random::<f64>() < keep {
                    (1.0 / keep) as f32
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Some(Tensor::from_vec(mask, n, &Device::Cpu)?))
    }
}

impl CausalLm for ToyLm {
    fn forward(&self, input_ids: &Tensor, _attention_mask: &Tensor) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let calls = self.forwards.get();
        self.forwards.set(calls + 1);
        let x = self.emb.index_select(&input_ids.flatten_all()?, 0)?;
        let xd = match self.dropout_mask(x.elem_count())? {
            Some(m) => x.mul(&m.reshape(x.shape())?)?,
            None => x.clone(),
        };
        let delta = xd
            .matmul(&self.a.as_tensor().t()?)?
            .matmul(&self.b.as_tensor().t()?)?;
        let h = (x + delta.affine(self.scale, 0.0)?)?;
        let logits = h.matmul(&self.head.t()?)?.reshape((b, t, ()))?;
        match self.nan_from_forward {
            Some(k) if calls >= k => logits.affine(f64::NAN, 0.0),
            _ => Ok(logits),
        }
    }

    fn vocab_size(&self) -> usize {
        self.emb.dim(0).unwrap_or(0)
    }

    fn device(&self) -> &Device {
        self.emb.device()
    }
}

impl TrainableLm for ToyLm {
    fn trainable_vars(&self) -> Vec<(String, Var)> {
        let mut v = vec![
            (
                "base_model.model.toy.lora_A.weight".to_string(),
                self.a.clone(),
            ),
            (
                "base_model.model.toy.lora_B.weight".to_string(),
                self.b.clone(),
            ),
        ];
        if let Some(u) = &self.unused {
            v.push((
                "base_model.model.unused.lora_A.weight".to_string(),
                u.clone(),
            ));
        }
        v
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }

    fn set_dropout_seed(&self, seed: u64) {
        self.seed.set(seed);
    }
}

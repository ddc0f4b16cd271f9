//! Prefix tuning (Li & Liang 2021) as PEFT implements it without a projection
//! (`peft/tuners/prefix_tuning`, `PeftModelForCausalLM.get_prompt`; LLM-Adapters' vendored PEFT
//! computes the same): `n` learned virtual tokens whose keys and values are prepended to every
//! layer's attention.
//!
//! The one trainable tensor is PEFT's `prompt_embeddings` `[n, layers * 2 * kv_heads * head_dim]`:
//! row `t` holds, layer after layer, that token's key then value, each `[kv_heads, head_dim]`
//! head-major (`view(n, L*2, kvh, hd)`, chunk `2l` the key and `2l + 1` the value of layer `l`).
//! PEFT (>= 0.12) sizes it by the model's KV heads, so grouped-query models carry `kv_heads`
//! heads. Initialisation is `nn.Embedding`'s, N(0, 1).
//!
//! In the model (`crate::model::llama`): prefix keys are never rotated (they enter the cache as
//! they are), every query attends every prefix slot, and real token `i` takes RoPE position
//! `n + i` (PEFT's `past_key_values` length offset), so the logits and the loss cover real
//! tokens only. A prefix cannot be merged into weights.

use candle_core::{DType, Device, Result, Tensor, Var};

use super::init::{derive_seed, normal_tensor};

/// The model dimensions a prefix is laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixShape {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl PrefixShape {
    /// PEFT's `token_dim` (after its KV-head adjustment): `kv_heads * head_dim`.
    pub fn token_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Width of one virtual token's row: `layers * 2 * token_dim`.
    pub fn width(&self) -> usize {
        self.layers * 2 * self.token_dim()
    }

    /// Trainable parameters of `n` virtual tokens.
    pub fn params(&self, n: usize) -> usize {
        n * self.width()
    }
}

#[derive(Debug)]
pub struct Prefix {
    /// `[n, layers * 2 * kv_heads * head_dim]`.
    embeddings: Var,
    shape: PrefixShape,
}

impl Prefix {
    /// From saved `prompt_embeddings` (checked against the model's shape).
    pub fn new(embeddings: &Tensor, shape: PrefixShape) -> Result<Self> {
        let (n, w) = embeddings.dims2()?;
        if n == 0 || w != shape.width() {
            candle_core::bail!(
                "prompt_embeddings has shape {:?}, expected [n, {}] ({} layers x 2 x {} KV heads x {} head dim)",
                embeddings.dims(),
                shape.width(),
                shape.layers,
                shape.kv_heads,
                shape.head_dim
            );
        }
        Ok(Self {
            embeddings: Var::from_tensor(embeddings)?,
            shape,
        })
    }

    /// `n` fresh virtual tokens, N(0, 1) (PEFT's `nn.Embedding` init), seeded by `seed`.
    pub fn init(
        n: usize,
        shape: PrefixShape,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let e = normal_tensor(
            &[n, shape.width()],
            1.0,
            derive_seed(seed, "prefix", "prompt_embeddings"),
            dtype,
            device,
        )?;
        Self::new(&e, shape)
    }

    /// The number of virtual tokens.
    pub fn tokens(&self) -> usize {
        self.embeddings.dims()[0]
    }

    pub fn shape(&self) -> PrefixShape {
        self.shape
    }

    pub fn var(&self) -> &Var {
        &self.embeddings
    }

    /// Keys and values of layer `l` for a batch of `b`: `[b, kv_heads, n, head_dim]` each, in
    /// `dtype`, differentiable with respect to the embeddings.
    pub fn layer_kv(&self, l: usize, b: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
        let s = self.shape;
        let n = self.tokens();
        let e = self
            .embeddings
            .as_tensor()
            .reshape((n, s.layers * 2, s.kv_heads, s.head_dim))?;
        let part = |i: usize| -> Result<Tensor> {
            e.narrow(1, i, 1)?
                .squeeze(1)?
                .transpose(0, 1)?
                .unsqueeze(0)?
                .broadcast_as((b, s.kv_heads, n, s.head_dim))?
                .to_dtype(dtype)?
                .contiguous()
        };
        Ok((part(2 * l)?, part(2 * l + 1)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference: PEFT get_prompt: view(b, n, L*2, kvh, hd).permute(2, 0, 3, 1, 4).split(2), so
    // key[l][h][t][d] = W[t, ((2l) * kvh + h) * hd + d] and value uses 2l + 1.
    #[test]
    fn layer_kv_reads_peft_layout() {
        let shape = PrefixShape {
            layers: 3,
            kv_heads: 2,
            head_dim: 4,
        };
        let n = 5;
        let w: Vec<f32> = (0..n * shape.width()).map(|i| i as f32).collect();
        let p = Prefix::new(
            &Tensor::from_vec(w.clone(), (n, shape.width()), &Device::Cpu).unwrap(),
            shape,
        )
        .unwrap();
        let (k, v) = p.layer_kv(1, 2, DType::F32).unwrap();
        assert_eq!(k.dims(), &[2, 2, 5, 4]);
        let k = k.to_vec3::<f32>().ok();
        assert!(k.is_none(), "rank 4");
        let (k, v) = (
            p.layer_kv(1, 1, DType::F32).unwrap().0.squeeze(0).unwrap(),
            v.narrow(0, 1, 1).unwrap().squeeze(0).unwrap(),
        );
        let (k, v) = (k.to_vec3::<f32>().unwrap(), v.to_vec3::<f32>().unwrap());
        let (kvh, hd) = (2, 4);
        for t in 0..n {
            for h in 0..kvh {
                for d in 0..hd {
                    let at = |c: usize| w[t * shape.width() + (c * kvh + h) * hd + d];
                    assert_eq!(k[h][t][d], at(2));
                    assert_eq!(v[h][t][d], at(3));
                }
            }
        }
        assert_eq!(shape.params(30), 30 * 3 * 2 * 8);
    }
}

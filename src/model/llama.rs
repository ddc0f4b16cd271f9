//! The LLaMA decoder (LLaMA 1/2/3, TinyLlama, SmolLM, Sheared-LLaMA, per-layer pruned shapes).
//!
//! Guarantees: logits for every position (`crate::lm::CausalLm`), padding on either side gives
//! the same logits for real tokens as the unpadded row, incremental decoding with a KV cache
//! (`crate::lm::IncrementalLm`) equals the full forward, and every op on the path from the input
//! embeddings to the logits has a backward pass (see `ops`). Projections are
//! `crate::adapter::linear::Linear`s, reachable by their HF module paths for adapters.

use candle_core::{DType, Device, Result, Tensor};

use super::attention::{Attention, LayerKv};
use super::block::{Block, Mlp};
use super::config::{LlamaConfig, PROJECTIONS, module_path};
use super::error::{ModelError, Result as ModelResult};
use super::ops::{self, LayerPath, LayerPathLog, LayerPathReport};
use super::packed::PackedTree;
use super::rope::{self, Positions};
use super::weights::NamedTensors;
use crate::adapter::linear::Linear;
use crate::adapter::prefix::{Prefix, PrefixShape};
use crate::lm::{Branches, CausalLm, IncrementalLm};

pub struct Llama {
    config: LlamaConfig,
    /// `[vocab, hidden]`.
    embed_tokens: Tensor,
    layers: Vec<Block>,
    /// `[hidden]`.
    norm: Tensor,
    /// `[vocab, hidden]`; `None` when tied to `embed_tokens`.
    lm_head: Option<Tensor>,
    inv_freq: Vec<f64>,
    dtype: DType,
    device: Device,
    /// Fused or composed decoder layers in training forwards, and what they ran.
    layer_path: LayerPath,
    layer_log: LayerPathLog,
    /// Prefix tuning's virtual tokens (`crate::adapter::prefix`).
    prefix: Option<Prefix>,
}

/// Key/value cache for incremental decoding: one slot per layer.
pub struct KvCache {
    layers: Vec<LayerKv>,
    batch: usize,
    /// Leading slots that hold a prefix's virtual tokens (not positions of the input).
    virtual_len: usize,
}

impl KvCache {
    /// Positions of the input already cached (a prefix's virtual tokens not counted).
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .map_or(0, LayerKv::len)
            .saturating_sub(self.virtual_len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Llama {
    /// Build from HF-named tensors, checking every shape against `config`. Tensors are converted
    /// to `dtype`; tensors the model does not use are ignored.
    pub fn from_tensors(
        config: LlamaConfig,
        mut w: NamedTensors,
        dtype: DType,
    ) -> ModelResult<Self> {
        config.validate(w.path())?;
        let (v, hs) = (config.vocab_size, config.hidden_size);
        let device = match w.tensors.values().next() {
            Some(t) => t.device().clone(),
            None => Device::Cpu,
        };
        let embed_tokens = w.take("model.embed_tokens.weight", &[v, hs], dtype)?;
        let mut layers = Vec::with_capacity(config.n_layers());
        for (i, d) in config.layers.iter().enumerate() {
            let mut lin = |proj: &str| -> ModelResult<Linear> {
                // invariant: PROJECTIONS are the names proj_shape knows and i < n_layers.
                let (o, n) = config
                    .proj_shape(i, proj)
                    .ok_or_else(|| ModelError::InvalidInput(proj.into()))?;
                Ok(Linear::new(
                    w.take(&format!("{}.weight", module_path(i, proj)), &[o, n], dtype)?,
                    None,
                ))
            };
            let self_attn = Attention {
                q_proj: lin("q_proj")?,
                k_proj: lin("k_proj")?,
                v_proj: lin("v_proj")?,
                o_proj: lin("o_proj")?,
                n_heads: d.n_heads,
                n_kv_heads: d.n_kv_heads,
                head_dim: config.head_dim,
            };
            let mlp = Mlp {
                gate_proj: lin("gate_proj")?,
                up_proj: lin("up_proj")?,
                down_proj: lin("down_proj")?,
            };
            let p = format!("model.layers.{i}");
            layers.push(Block {
                input_layernorm: w.take(&format!("{p}.input_layernorm.weight"), &[hs], dtype)?,
                self_attn,
                post_attention_layernorm: w.take(
                    &format!("{p}.post_attention_layernorm.weight"),
                    &[hs],
                    dtype,
                )?,
                mlp,
                path: Default::default(),
            });
        }
        let norm = w.take("model.norm.weight", &[hs], dtype)?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(w.take("lm_head.weight", &[v, hs], dtype)?)
        };
        let inv_freq = rope::inv_freq(&config);
        Ok(Self {
            config,
            embed_tokens,
            layers,
            norm,
            lm_head,
            inv_freq,
            dtype,
            device,
            layer_path: LayerPath::default(),
            layer_log: LayerPathLog::default(),
            prefix: None,
        })
    }

    /// Choose the decoder layers' implementation for training forwards (each layer then decides
    /// again at its next training forward).
    pub fn set_layer_path(&mut self, path: LayerPath) {
        self.layer_path = path;
        self.layers.iter().for_each(Block::reset_path);
    }

    /// Which path the training forwards took since the last [`Llama::reset_layer_log`].
    pub fn layer_report(&self) -> LayerPathReport {
        self.layer_log.report()
    }

    /// Clear the path log and every layer's decision (after adapters were installed or merged).
    pub fn reset_layer_log(&self) {
        self.layer_log.reset();
        self.layers.iter().for_each(Block::reset_path);
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The dtype of the base weights (and of activations between layers).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn embed_tokens(&self) -> &Tensor {
        &self.embed_tokens
    }

    pub fn norm(&self) -> &Tensor {
        &self.norm
    }

    /// The output projection `[vocab, hidden]` (the embedding matrix when tied).
    pub fn lm_head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Every adaptable projection with its HF module path, layer by layer in PEFT's order.
    pub fn linears(&self) -> Vec<(String, &Linear)> {
        let mut out = Vec::with_capacity(self.layers.len() * PROJECTIONS.len());
        for (i, b) in self.layers.iter().enumerate() {
            let (a, m) = (&b.self_attn, &b.mlp);
            let all = [
                &a.q_proj,
                &a.k_proj,
                &a.v_proj,
                &a.o_proj,
                &m.gate_proj,
                &m.up_proj,
                &m.down_proj,
            ];
            out.extend(
                PROJECTIONS
                    .iter()
                    .zip(all)
                    .map(|(p, l)| (module_path(i, p), l)),
            );
        }
        out
    }

    /// Mutable access to every adaptable projection (same order as [`Llama::linears`]).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::with_capacity(self.layers.len() * PROJECTIONS.len());
        for (i, b) in self.layers.iter_mut().enumerate() {
            let (a, m) = (&mut b.self_attn, &mut b.mlp);
            let all = [
                &mut a.q_proj,
                &mut a.k_proj,
                &mut a.v_proj,
                &mut a.o_proj,
                &mut m.gate_proj,
                &mut m.up_proj,
                &mut m.down_proj,
            ];
            out.extend(
                PROJECTIONS
                    .iter()
                    .zip(all)
                    .map(|(p, l)| (module_path(i, p), l)),
            );
        }
        out
    }

    /// The current weights under their HF names (projections as they are now, e.g. after a
    /// merge). `lm_head.weight` is omitted when tied.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            self.embed_tokens.clone(),
        )];
        for (i, b) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.push((
                format!("{p}.input_layernorm.weight"),
                b.input_layernorm.clone(),
            ));
            out.push((
                format!("{p}.post_attention_layernorm.weight"),
                b.post_attention_layernorm.clone(),
            ));
        }
        out.extend(
            self.linears()
                .into_iter()
                .map(|(n, l)| (format!("{n}.weight"), l.weight().clone())),
        );
        out.push(("model.norm.weight".to_string(), self.norm.clone()));
        if let Some(h) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), h.clone()));
        }
        out
    }

    /// Parameter count of the base model (tied embeddings counted once).
    pub fn num_parameters(&self) -> usize {
        self.named_tensors()
            .iter()
            .map(|(_, t)| t.elem_count())
            .sum()
    }

    /// The shape a prefix takes on this model (`None` when layers differ in KV heads).
    pub fn prefix_shape(&self) -> Option<PrefixShape> {
        let kv = self.config.layers.first()?.n_kv_heads;
        self.config
            .layers
            .iter()
            .all(|l| l.n_kv_heads == kv)
            .then_some(PrefixShape {
                layers: self.config.n_layers(),
                kv_heads: kv,
                head_dim: self.config.head_dim,
            })
    }

    pub fn prefix(&self) -> Option<&Prefix> {
        self.prefix.as_ref()
    }

    /// Install (or remove) a prefix, returning the previous one.
    pub fn set_prefix(&mut self, prefix: Option<Prefix>) -> Option<Prefix> {
        std::mem::replace(&mut self.prefix, prefix)
    }

    /// One cache slot per layer holding the prefix's keys and values for `b` rows (`host`: the
    /// inference host buffers; else tensors that keep the graph to the prefix for training).
    fn prefix_slots(&self, p: &Prefix, b: usize, host: bool) -> Result<Vec<LayerKv>> {
        (0..self.layers.len())
            .map(|l| {
                let (k, v) = p.layer_kv(l, b, self.dtype)?;
                LayerKv::prefilled(k, v, host)
            })
            .collect()
    }

    /// Output of the last decoder layer `[b, t_new, hidden]` (before the final norm).
    fn forward_decoder(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let mut mask = attention_mask.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        if mask.len() != b {
            candle_core::bail!("attention mask has {} rows, input_ids {b}", mask.len());
        }
        let cached = cache.as_ref().map_or(0, |c| c.len());
        if mask.first().map_or(0, |r| r.len()) != cached + t {
            candle_core::bail!(
                "attention mask covers {} positions, expected {cached} cached + {t} new",
                mask.first().map_or(0, |r| r.len())
            );
        }
        // A prefix's virtual tokens are always-visible leading key slots: real token i takes
        // RoPE position n + i (PEFT's past_key_values offset), the prefix keys no rotation.
        let n = self.prefix.as_ref().map_or(0, Prefix::tokens);
        if n > 0 {
            for row in &mut mask {
                row.splice(0..0, std::iter::repeat_n(1, n));
            }
        }
        let pos = Positions::new(&mask, t, &self.inv_freq, self.dtype, &self.device)?;
        let mut scratch;
        let cache = match (cache, &self.prefix) {
            (Some(c), _) => Some(c),
            (None, Some(p)) => {
                scratch = KvCache {
                    layers: self.prefix_slots(p, b, false)?,
                    batch: b,
                    virtual_len: n,
                };
                Some(&mut scratch)
            }
            (None, None) => None,
        };
        let mut x = self
            .embed_tokens
            .index_select(&input_ids.flatten_all()?, 0)?
            .reshape((b, t, ()))?;
        match cache {
            Some(c) => {
                if c.batch != b {
                    candle_core::bail!("cache was made for batch {}, got {b}", c.batch);
                }
                for (layer, slot) in self.layers.iter().zip(c.layers.iter_mut()) {
                    x = layer.forward(
                        &x,
                        &pos,
                        self.config.rms_norm_eps,
                        Some(slot),
                        self.layer_path,
                        &self.layer_log,
                    )?;
                }
            }
            None => {
                for layer in &self.layers {
                    x = layer.forward(
                        &x,
                        &pos,
                        self.config.rms_norm_eps,
                        None,
                        self.layer_path,
                        &self.layer_log,
                    )?;
                }
            }
        }
        Ok(x)
    }

    /// Final hidden states `[b, t_new, hidden]` (after the last norm).
    pub fn forward_hidden(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let x = self.forward_decoder(input_ids, attention_mask, cache)?;
        ops::rms_norm(&x, &self.norm, self.config.rms_norm_eps)
    }

    /// f32 logits for hidden states `[b, t, hidden]` -> `[b, t, vocab]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let (b, t, h) = hidden.dims3()?;
        // frozen: no gradient for the [vocab, hidden] matrix (tied or not)
        let y =
            crate::adapter::frozen::frozen_linear(&hidden.reshape((b * t, h))?, self.lm_head())?;
        y.to_dtype(DType::F32)?.reshape((b, t, ()))
    }
}

impl CausalLm for Llama {
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        self.logits(&self.forward_hidden(input_ids, attention_mask, None)?)
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// Final norm and output projection only at `rows` (per-row ops, so the rows equal the full
    /// forward's).
    fn logits_at(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: &[u32],
    ) -> Result<Tensor> {
        let hidden = self.forward_decoder(input_ids, attention_mask, None)?;
        let (b, t, h) = hidden.dims3()?;
        let idx = Tensor::new(rows, &self.device)?;
        let x = hidden
            .reshape((b * t, h))?
            .index_select(&idx, 0)?
            .unsqueeze(0)?;
        let x = ops::rms_norm(&x, &self.norm, self.config.rms_norm_eps)?;
        self.logits(&x)?.squeeze(0)
    }

    /// Packed: every prefix once, no padding through the layers (`super::packed`), the final
    /// norm and the output projection only at the returned rows.
    fn branch_logits(&self, segments: &[Branches<'_>]) -> Result<Tensor> {
        if segments.is_empty() {
            return Tensor::zeros((0, self.config.vocab_size), DType::F32, &self.device);
        }
        if self.prefix.is_some() {
            // the packed layout has no slots for a prefix: one padded batch instead
            return crate::lm::branch_logits_by_forward(self, segments);
        }
        let pk = PackedTree::new(segments, &self.inv_freq, self.dtype, &self.device)?;
        let ids = Tensor::new(pk.tokens.as_slice(), &self.device)?;
        let mut x = self.embed_tokens.index_select(&ids, 0)?.unsqueeze(0)?;
        for layer in &self.layers {
            x = layer.forward_packed(&x, &pk, self.config.rms_norm_eps)?;
        }
        // RMSNorm is per row: selecting first gives the same rows
        let x = x
            .squeeze(0)?
            .index_select(&pk.logit_rows, 0)?
            .unsqueeze(0)?;
        let x = ops::rms_norm(&x, &self.norm, self.config.rms_norm_eps)?;
        self.logits(&x)?.squeeze(0)
    }
}

impl IncrementalLm for Llama {
    type Cache = KvCache;

    fn new_cache(&self, batch: usize) -> Result<KvCache> {
        match &self.prefix {
            Some(p) => Ok(KvCache {
                layers: self.prefix_slots(p, batch, true)?,
                batch,
                virtual_len: p.tokens(),
            }),
            None => Ok(KvCache {
                layers: vec![LayerKv::Empty; self.layers.len()],
                batch,
                virtual_len: 0,
            }),
        }
    }

    fn forward_step(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        self.logits(&self.forward_hidden(input_ids, attention_mask, Some(cache))?)
    }

    fn forward_step_last(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        cache: &mut KvCache,
        keep: usize,
    ) -> Result<Tensor> {
        let hidden = self.forward_hidden(input_ids, attention_mask, Some(cache))?;
        let t = hidden.dim(1)?;
        let keep = keep.min(t);
        if keep == t {
            return self.logits(&hidden);
        }
        self.logits(&hidden.narrow(1, t - keep, keep)?.contiguous()?)
    }

    fn reorder_cache(&self, cache: &mut KvCache, rows: &[u32]) -> Result<bool> {
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= cache.batch) {
            candle_core::bail!(
                "reorder_cache: row {bad} of a cache with {} rows",
                cache.batch
            );
        }
        for layer in &mut cache.layers {
            layer.reorder(rows)?;
        }
        cache.batch = rows.len();
        Ok(true)
    }
}

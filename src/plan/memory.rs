//! Memory estimate of a training job (weights, adapters, gradients, optimizer state, activations),
//! for `rora plan`'s table and its warning when a job will not fit its device.
//!
//! The estimate is arithmetic on the model's shape, nothing is allocated. What it counts:
//! - weights: every base parameter in the compute dtype (frozen, no gradient);
//! - adapters: `r * (in + out)` per adapted projection (+ `out` for DoRA's magnitude), f32;
//! - gradients: one f32 per adapter parameter; optimizer: AdamW's two f32 moments per parameter;
//! - activations: what autograd keeps for the backward pass of one micro-batch of `tokens =
//!   micro_batch * seq` tokens, no activation checkpointing. Per token and layer, in the compute
//!   dtype: the two norm inputs and outputs (4h), q/k/v (q + 2kv), the attention output (q), the
//!   gate, up, silu(gate) and product (4 ffn), plus the attention probabilities (heads * seq) and,
//!   in f32, each adapter's `A x` (r per adapted projection); then the embedding output (h) and the
//!   f32 logits twice (logits and their log-softmax/gradient: 2 * vocab).
//!
//! It is an estimate of the steady state, not of allocator fragmentation or kernel workspace; the
//! planner compares it with the device's memory and warns when it does not fit. For data that
//! fills every row it is the steady state; on mixed-length rows it is an upper bound, since the
//! trainer runs each micro-batch as length groups (each padded to its own longest row) and
//! computes logits only at loss positions (`train::split`, `CausalLm::logits_at`).

use serde::Serialize;

use crate::adapter::scaling::ScalingRule;
use crate::adapter::spec::{AdapterSpec, Method};

use crate::model::config::{LlamaConfig, PROJECTIONS, module_path};

/// One adapted projection's shape: `(out, in)`.
pub type ProjShape = (usize, usize);

/// What to estimate: a model shape, the compute dtype's width, the adapted projections, the batch.
#[derive(Debug, Clone)]
pub struct MemoryInput<'a> {
    pub config: &'a LlamaConfig,
    /// Bytes per base weight and activation element (2 for bf16/f16, 4 for f32).
    pub dtype_bytes: u64,
    /// `(layer, projection)` pairs that carry an adapter, with their rank.
    pub adapted: Vec<(usize, &'static str, usize)>,
    /// The method and scaling rule (DoRA adds a magnitude vector of `out` per adapted
    /// projection; a bottleneck's widths depend on where it sits).
    pub method: Method,
    pub rule: ScalingRule,
    pub micro_batch: usize,
    pub seq: usize,
}

/// Bytes per part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    pub weights: u64,
    pub adapters: u64,
    pub gradients: u64,
    pub optimizer: u64,
    pub activations: u64,
}

impl MemoryEstimate {
    pub fn total(&self) -> u64 {
        self.weights + self.adapters + self.gradients + self.optimizer + self.activations
    }
}

/// Parameters of the base model.
pub fn base_params(c: &LlamaConfig) -> u64 {
    let (v, h) = (c.vocab_size as u64, c.hidden_size as u64);
    let embeddings = v * h * if c.tie_word_embeddings { 1 } else { 2 };
    let norms = c.n_layers() as u64 * 2 * h;
    embeddings + projection_params(c) + norms + h
}

/// Parameters of every layer's projections (q, k, v, o, gate, up, down).
fn projection_params(c: &LlamaConfig) -> u64 {
    (0..c.n_layers())
        .map(|i| {
            PROJECTIONS
                .iter()
                .filter_map(|p| c.proj_shape(i, p))
                .map(|(o, n)| (o * n) as u64)
                .sum::<u64>()
        })
        .sum()
}

/// Floating-point operations of one training token through a frozen base with small adapters:
/// the forward's matmuls (2 per weight: every projection and the output head; the embedding is a
/// lookup) and the backward's input gradients (2 more per weight; frozen weights need no weight
/// gradients). Attention scores and the adapters themselves are left out: under 5% for the
/// LLaMA shapes at 512 tokens and rank 64. `rora plan`'s time estimate and `rora bench train`'s
/// `train_flops_per_s` use the same count, so their ratio is a time.
pub fn train_flops_per_token(c: &LlamaConfig) -> f64 {
    let head = c.vocab_size as u64 * c.hidden_size as u64;
    4.0 * (projection_params(c) + head) as f64
}

/// Every projection of every layer (PEFT's `all-linear` on a LLaMA), at rank `r`.
pub fn all_projections(c: &LlamaConfig, r: usize) -> Vec<(usize, &'static str, usize)> {
    (0..c.n_layers())
        .flat_map(|i| PROJECTIONS.iter().map(move |p| (i, *p, r)))
        .collect()
}

/// The adapted projections for a list of short names (`q_proj`, ...), a regex over module paths,
/// and an optional layer subset.
pub fn select_projections(
    c: &LlamaConfig,
    r: usize,
    names: Option<&[String]>,
    regex: Option<&regex::Regex>,
    layers: Option<&[usize]>,
) -> Vec<(usize, &'static str, usize)> {
    all_projections(c, r)
        .into_iter()
        .filter(|(i, _, _)| layers.is_none_or(|l| l.contains(i)))
        .filter(|(_, p, _)| names.is_none_or(|n| n.iter().any(|x| x == p)))
        .filter(|(i, p, _)| regex.is_none_or(|re| re.is_match(&module_path(*i, p))))
        .collect()
}

/// Trainable parameters of the adapters on the `adapted` projections, as the adapter library
/// counts them ([`AdapterSpec::trainable_params`]: `r (out + in)` each, plus DoRA's magnitude
/// vector; a bottleneck's `b (d_in + d_out)`).
pub fn adapter_params(
    c: &LlamaConfig,
    adapted: &[(usize, &'static str, usize)],
    method: Method,
    rule: ScalingRule,
) -> u64 {
    adapted
        .iter()
        .filter_map(|&(i, p, rank)| {
            let spec = AdapterSpec {
                method,
                rank,
                alpha: 1.0,
                rule,
            };
            spec.trainable_params(p, c.proj_shape(i, p)?)
        })
        .map(|n| n as u64)
        .sum()
}

pub fn estimate(m: &MemoryInput) -> MemoryEstimate {
    let c = m.config;
    let b = m.dtype_bytes;
    let adapter_params = adapter_params(c, &m.adapted, m.method, m.rule);
    let tokens = (m.micro_batch * m.seq) as u64;
    let h = c.hidden_size as u64;
    let per_layer: u64 = c
        .layers
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let q = (d.n_heads * c.head_dim) as u64;
            let kv = (d.n_kv_heads * c.head_dim) as u64;
            let f = d.intermediate_size as u64;
            let lora: u64 = m
                .adapted
                .iter()
                .filter(|(l, _, _)| *l == i)
                .map(|(_, _, r)| *r as u64)
                .sum();
            b * (4 * h + 2 * q + 2 * kv + 4 * f + d.n_heads as u64 * m.seq as u64) + 4 * lora
        })
        .sum();
    let activations = tokens * (per_layer + b * h + 4 * 2 * c.vocab_size as u64);
    MemoryEstimate {
        weights: base_params(c) * b,
        adapters: adapter_params * 4,
        gradients: adapter_params * 4,
        optimizer: adapter_params * 8,
        activations,
    }
}

/// `16.06 GB` (decimal units, as GPU sizes are sold; two decimals).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut x = bytes as f64;
    let mut u = 0;
    while x >= 1000.0 && u + 1 < UNITS.len() {
        x /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{x:.2} {}", UNITS[u])
    }
}

/// Memory of well-known accelerators, in bytes (`--memory h200`).
pub const KNOWN_DEVICES: [(&str, u64); 7] = [
    ("h200", 143_771 * MIB),
    ("h100", 81_559 * MIB),
    ("a100-80", 81_920 * MIB),
    ("a100-40", 40_960 * MIB),
    ("l40s", 46_068 * MIB),
    ("l4", 23_034 * MIB),
    ("rtx4090", 24_564 * MIB),
];
const MIB: u64 = 1 << 20;

/// A memory size: a known device name (`h200`), or a number with a unit (`80GB`, `141 GiB`,
/// `512MiB`, bytes when no unit).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    if let Some((_, b)) = KNOWN_DEVICES.iter().find(|(n, _)| *n == t) {
        return Ok(*b);
    }
    let split = t
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let x: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a size like 80GB, 141GiB or a device name"))?;
    let mult: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("`{s}`: unknown unit `{other}`")),
    };
    Ok((x * mult).round() as u64)
}

/// The estimate of one job of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct JobMemory {
    pub job: usize,
    pub label: String,
    pub estimate: MemoryEstimate,
    pub total: u64,
    /// The adapter's trainable parameters and the base's parameters.
    pub trainable_params: u64,
    pub base_params: u64,
}

impl JobMemory {
    /// PEFT's `trainable%`: trainable parameters over all of them (base + adapter), in percent.
    pub fn trainable_percent(&self) -> f64 {
        100.0 * self.trainable_params as f64 / (self.base_params + self.trainable_params) as f64
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;

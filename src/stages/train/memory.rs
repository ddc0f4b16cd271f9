//! The memory estimate of a `train` job, from the params of the jobs it depends on: the model
//! shape (a random preset, a local HF dir or GGUF file, or a known hub id), the adapter's targets
//! and rank, the training micro-batch and the data's `max-len`.
//!
//! The compute dtype is the one the train runner loads the base in: the dtype the base's entry was
//! saved in: the `model` stage's `dtype`; a `prune` stage saves f32.

use crate::model::config::LlamaConfig;
use crate::plan::job::{Job, Plan};
use crate::plan::memory::{
    JobMemory, MemoryInput, adapter_params, base_params, estimate, select_projections,
    train_flops_per_token,
};
use crate::plan::shapes;
use crate::schema::Kind;
use crate::stages::adapter::{AdapterParams, Targets};
use crate::stages::data::DataParams;
use crate::stages::model::{ModelParams, ModelSource, model_config};

use super::TrainParams;

/// Bytes per element of the base the adapter job's `model` input holds.
fn base_dtype_bytes(plan: &Plan, adapter_job: &Job) -> u64 {
    dep(plan, adapter_job, "model")
        .and_then(|j| j.params.get::<ModelParams>())
        .map_or(4, |m| m.dtype.bytes())
}

fn dep<'a>(plan: &'a Plan, job: &Job, role: &str) -> Option<&'a Job> {
    job.deps
        .iter()
        .find(|d| d.role == role)
        .map(|d| plan.job(d.job))
}

/// The model config behind a job, walking `model` / `from` / `adapter` inputs to a model stage.
pub fn model_shape(plan: &Plan, job: &Job) -> Option<LlamaConfig> {
    let mut j = job;
    for _ in 0..plan.jobs.len() {
        if j.kind == Kind::Model {
            let p = j.params.get::<ModelParams>()?;
            return match &p.source {
                ModelSource::Hub { id, .. } => shapes::by_hub_id(id),
                _ => model_config(p).ok().flatten(),
            };
        }
        j = ["model", "from", "adapter"]
            .iter()
            .find_map(|r| dep(plan, j, r))?;
    }
    None
}

/// The estimate of one train job, or `None` when the model's shape is not known offline.
pub fn train_job_memory(plan: &Plan, job: &Job) -> Option<JobMemory> {
    let t = job.params.get::<TrainParams>()?;
    let adapter_job = dep(plan, job, "adapter")?;
    let a = adapter_job.params.get::<AdapterParams>()?.settings()?;
    let seq = dep(plan, job, "data")?.params.get::<DataParams>()?.max_len;
    let config = model_shape(plan, adapter_job)?;
    let (names, regex) = match &a.targets {
        Targets::Names(n) => (Some(n.as_slice()), None),
        Targets::AllLinear => (None, None),
        Targets::Regex(r) => (None, Some(regex::Regex::new(r).ok()?)),
    };
    let adapted = select_projections(&config, a.rank, names, regex.as_ref(), a.layers.as_deref());
    let method = a.method.library();
    let (adapted, trainable_params) = if method == crate::adapter::Method::Prefix {
        // n virtual tokens x layers x (key + value) x KV heads x head dim
        let kv: usize = config
            .layers
            .iter()
            .map(|l| 2 * l.n_kv_heads * config.head_dim)
            .sum();
        (Vec::new(), (a.rank * kv) as u64)
    } else {
        let p = adapter_params(&config, &adapted, method, a.scaling);
        (adapted, p)
    };
    let e = estimate(&MemoryInput {
        config: &config,
        dtype_bytes: base_dtype_bytes(plan, adapter_job),
        adapted,
        method,
        rule: a.scaling,
        micro_batch: t.micro_batch.max(1),
        seq,
    });
    // the estimate counts adapters from the adapted projections; a prefix has none
    let mut e = e;
    if method == crate::adapter::Method::Prefix {
        e.adapters = 4 * trainable_params;
        e.gradients = 4 * trainable_params;
        e.optimizer = 8 * trainable_params;
    }
    Some(JobMemory {
        job: job.id.0,
        label: job.label.clone(),
        estimate: e,
        total: e.total(),
        trainable_params,
        base_params: base_params(&config),
    })
}

/// The floating-point work of one train job ([`train_flops_per_token`] times steps x batch x
/// max-len: an upper bound, every row counted at the data's `max-len`), or `None` when the model
/// shape is not known offline or the job trains for epochs (the row count is known only at run
/// time).
pub fn train_job_flops(plan: &Plan, job: &Job) -> Option<f64> {
    let t = job.params.get::<TrainParams>()?;
    let super::Duration::Steps(steps) = t.duration else {
        return None;
    };
    let adapter_job = dep(plan, job, "adapter")?;
    let seq = dep(plan, job, "data")?.params.get::<DataParams>()?.max_len;
    let config = model_shape(plan, adapter_job)?;
    Some(train_flops_per_token(&config) * (steps as f64) * (t.batch as f64) * (seq as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check_bytes;
    use crate::plan::{DigestMemo, plan};

    /// The estimate of train stage `t` of the pipeline `src`.
    fn train_memory(src: &str) -> JobMemory {
        let r = check_bytes("p.kdl", src.as_bytes());
        assert!(!r.has_errors(), "{:?}", r.diagnostics);
        let p = plan(&r.pipeline.expect("checked"), &mut DigestMemo::new()).expect("plan");
        let train = p.stage_jobs("t").next().expect("train job");
        train_job_memory(&p, train).expect("estimate")
    }

    /// The weights' share of the estimate of a train job on a model saved as `model_dtype`,
    /// directly or through an unstructured prune.
    fn weights(model_dtype: &str, pruned: bool) -> u64 {
        let input = if pruned { "p" } else { "m" };
        let src = format!(
            r#"
model "m" {{
    random layers=2 hidden=64 heads=4 kv-heads=2 ffn=128
    dtype "{model_dtype}"
}}
data "d" {{
    hub "org/commonsense"
    max-len 128
}}
prune "p" model="m" {{
    method "magnitude"
    sparsity 0.5
}}
adapter "a" model="{input}" {{
    rank 8
    alpha 16
    targets "q_proj" "v_proj"
}}
train "t" adapter="a" data="d" {{
    steps 10
}}
"#
        );
        train_memory(&src).estimate.weights
    }

    #[test]
    fn the_estimate_follows_the_dtype_the_base_is_saved_in() {
        let f32 = weights("f32", false);
        assert!(f32 > 0);
        assert_eq!(weights("bf16", false) * 2, f32);
        assert_eq!(weights("f16", false) * 2, f32);
        // a prune stage saves f32, whatever the model's dtype
        assert_eq!(weights("bf16", true), f32);
    }

    /// The train job's estimate for LLaMA-7B (hub id, shape known offline) with the adapter
    /// options `adapter` (one per line).
    fn llama_7b_with(adapter: &str) -> JobMemory {
        train_memory(&format!(
            r#"
model "m" {{
    hub "huggyllama/llama-7b"
}}
data "d" {{
    hub "org/commonsense"
}}
adapter "a" model="m" {{
    {adapter}
}}
train "t" adapter="a" data="d" {{
    steps 10
}}
"#
        ))
    }

    /// `method` at rank 32 on q, k, v, up, down (the paper's Table I setting).
    fn llama_7b(method: &str) -> JobMemory {
        llama_7b_with(&format!(
            "method \"{method}\"\n    rank 32\n    alpha 64\n    targets \"q_proj\" \"k_proj\" \"v_proj\" \"up_proj\" \"down_proj\""
        ))
    }

    // Table I of the RoRA paper (from LLM-Adapters' / DoRA's tables): LoRA r32 on LLaMA-7B is
    // 0.83% of the parameters, DoRA 0.84%. By hand: per layer r (in + out) for q, k, v
    // (4096 + 4096), up (4096 + 11008) and down (11008 + 4096) = 32 x 54,784 = 1,753,088, x 32
    // layers = 56,098,816; DoRA adds out per projection (3 x 4096 + 11008 + 4096 = 27,392 per
    // layer, 876,544 in all). LLaMA-7B has 6,738,415,616 parameters (PEFT's count).
    #[test]
    fn trainable_parameters_match_table_one() {
        let lora = llama_7b("lora");
        assert_eq!(lora.base_params, 6_738_415_616);
        assert_eq!(lora.trainable_params, 56_098_816);
        assert_eq!(format!("{:.2}", lora.trainable_percent()), "0.83");
        let dora = llama_7b("dora");
        assert_eq!(dora.trainable_params, 56_098_816 + 876_544);
        assert_eq!(format!("{:.2}", dora.trainable_percent()), "0.84");
    }

    /// LLaMA-7B with a bottleneck or prefix `method` at LLM-Adapters' defaults (bottleneck 256;
    /// targets from the schema: series down_proj, parallel up_proj + down_proj; 30 virtual
    /// tokens).
    fn llama_7b_bottleneck(method: &str) -> JobMemory {
        llama_7b_with(&format!("method \"{method}\""))
    }

    // Table I (LLM-Adapters' commonsense rows): Series 0.99%, Parallel 3.54%. By hand: series
    // after down_proj is 4096 -> 256 -> 4096, 2 x 4096 x 256 = 2,097,152 per layer, x 32 =
    // 67,108,864 (0.9861%); parallel on up_proj (4096 -> 256 -> 11008) and down_proj
    // (11008 -> 256 -> 4096) is 2 x 256 x 15,104 = 7,733,248 per layer, x 32 = 247,463,936
    // (3.5423%), both of base + adapter as PEFT prints them.
    #[test]
    fn bottleneck_and_prefix_parameters_match_table_one() {
        let series = llama_7b_bottleneck("series");
        assert_eq!(series.trainable_params, 67_108_864);
        assert_eq!(format!("{:.2}", series.trainable_percent()), "0.99");
        let parallel = llama_7b_bottleneck("parallel");
        assert_eq!(parallel.trainable_params, 247_463_936);
        assert_eq!(format!("{:.2}", parallel.trainable_percent()), "3.54");
        // Table I prints 0.11 for prefix tuning; LLM-Adapters' default 30 virtual tokens are
        // 30 x 32 layers x 2 x 4096 = 7,864,320 parameters, 0.1166%, which rounds to 0.12 (no
        // whole number of tokens gives 0.11 under the rounding of the other rows).
        let prefix = llama_7b_bottleneck("prefix");
        assert_eq!(prefix.trainable_params, 7_864_320);
        assert_eq!(format!("{:.4}", prefix.trainable_percent()), "0.1166");
    }
}

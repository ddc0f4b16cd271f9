//! The `adapter` runner: attach fresh adapters to the base model and save them.

use std::path::Path;

use candle_core::DType;
use serde_json::json;

use crate::adapter::{
    AdapterConfig, LoraInit, Method, ParamCount, SaveOptions, Targets, attach, llama_base_params,
    save_peft,
};
use crate::cache::Entry;
use crate::run::artifacts::{ADAPTER_CONFIG, ADAPTER_DIR, load_model, write_json};
use crate::run::context::Ctx;
use crate::run::error::Result;

use super::{AdapterMethod, AdapterParams, InitChoice, Targets as IrTargets};

/// The adapter library's config for a planned adapter stage.
pub fn config(p: &AdapterParams) -> Result<AdapterConfig> {
    let method = match p.method {
        AdapterMethod::Lora => Method::Lora,
        AdapterMethod::Dora => Method::Dora,
    };
    let targets = match &p.targets {
        IrTargets::Names(n) => Targets::Names(n.clone()),
        IrTargets::Regex(r) => Targets::Regex(r.clone()),
        IrTargets::AllLinear => Targets::AllLinear,
    };
    let mut c = AdapterConfig::new(method, p.scaling, p.rank, p.alpha, targets);
    c.layers = p.layers.clone();
    c.dropout = p.dropout;
    c.init = match p.init {
        InitChoice::Peft => LoraInit::Kaiming,
        InitChoice::Gaussian => LoraInit::Gaussian,
    };
    c.seed = p.seed;
    for m in &p.modules {
        if let Some(r) = m.rank {
            c.rank_pattern.push((m.pattern.clone(), r));
        }
        if let Some(a) = m.alpha {
            c.alpha_pattern.push((m.pattern.clone(), a));
        }
    }
    c.validate()?;
    Ok(c)
}

pub fn run(ctx: &Ctx, p: &AdapterParams, model: &Entry, out: &Path) -> Result<serde_json::Value> {
    let cfg = config(p)?;
    let mut loaded = load_model(model, DType::F32, &ctx.device)?;
    let report = attach(&mut loaded.model, &cfg)?;
    save_peft(
        &loaded.model,
        &cfg,
        &out.join(ADAPTER_DIR),
        &SaveOptions::default(),
    )?;
    write_json(&out.join(ADAPTER_CONFIG), &cfg)?;
    let count = ParamCount::new(llama_base_params(&loaded.config), report.trainable_params());
    Ok(json!({
        "method": cfg.method.name(),
        "scaling": cfg.rule.name(),
        "rank": cfg.rank,
        "alpha": cfg.alpha,
        "scale": cfg.rule.scale(cfg.alpha, cfg.rank),
        "modules": report.modules.len(),
        "trainable_params": count.trainable,
        "total_params": count.total,
        "trainable_percent": count.percent(),
        "summary": count.to_string(),
    }))
}

//! The `adapter` runner: attach fresh adapters to the base model and save them, or load a PEFT
//! adapter (a folder, or two files of a hub repo at the pinned commit) onto the base model, which
//! checks every tensor against the model, and keep its files as they are.

use std::path::Path;

use candle_core::DType;
use serde_json::json;

use crate::adapter::bottleneck_io::BIN_FILE;
use crate::adapter::peft_io::{CONFIG_FILE, WEIGHTS_FILE};
use crate::adapter::{
    AdapterConfig, AttachReport, LoraInit, ParamCount, SaveOptions, Targets, attach,
    llama_base_params, load_peft, save_peft,
};
use crate::cache::Entry;
use crate::hub::{Hub, RepoKind};
use crate::model::config::LlamaConfig;
use crate::run::artifacts::{ADAPTER_CONFIG, ADAPTER_DIR, load_model, subdir, write_json};
use crate::run::context::Ctx;
use crate::run::error::{Result, RunError, io};

use super::{AdapterParams, AdapterSettings, AdapterSource, InitChoice, Targets as IrTargets};

/// The adapter library's config for a fresh adapter's settings.
pub fn config(p: &AdapterSettings) -> Result<AdapterConfig> {
    if p.method == super::AdapterMethod::Prefix {
        let mut c = crate::adapter::prefix_io::prefix_config(p.rank);
        c.seed = p.seed;
        c.validate()?;
        return Ok(c);
    }
    let method = p.method.library();
    let targets = match &p.targets {
        IrTargets::Names(n) => Targets::Names(n.clone()),
        IrTargets::Regex(r) => Targets::Regex(r.clone()),
        IrTargets::AllLinear => Targets::AllLinear,
    };
    let mut c = AdapterConfig::new(method, p.scaling, p.rank, p.alpha, targets);
    c.activation = p.activation;
    c.layers = p.layers.clone();
    c.dropout = p.dropout;
    c.init = match p.init {
        InitChoice::Peft => LoraInit::Kaiming,
        InitChoice::Gaussian => LoraInit::Gaussian,
        InitChoice::Bert => LoraInit::Bert,
        InitChoice::Mam => LoraInit::Mam,
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

pub fn run(
    ctx: &Ctx,
    p: &AdapterParams,
    model: &Entry,
    out: &Path,
    save: &SaveOptions,
) -> Result<serde_json::Value> {
    match (&p.source, p.settings()) {
        (AdapterSource::Fresh, Some(s)) => fresh(ctx, s, model, out, save),
        (AdapterSource::Fresh, None) => Err(RunError::Plan(
            "a fresh adapter stage without settings".into(),
        )),
        (AdapterSource::Path(dir), _) => loaded(
            ctx,
            dir,
            model,
            out,
            json!({ "path": dir.display().to_string() }),
        ),
        (AdapterSource::Hub { id, revision }, _) => {
            let hub = Hub::from_env()?;
            let config = hub.file(RepoKind::Model, id, revision, CONFIG_FILE)?;
            hub.file(RepoKind::Model, id, revision, WEIGHTS_FILE)?;
            let dir = config.parent().unwrap_or(Path::new("."));
            loaded(
                ctx,
                dir,
                model,
                out,
                json!({ "hub": id, "commit": revision }),
            )
        }
    }
}

fn fresh(
    ctx: &Ctx,
    p: &AdapterSettings,
    model: &Entry,
    out: &Path,
    save: &SaveOptions,
) -> Result<serde_json::Value> {
    let cfg = config(p)?;
    let mut loaded = load_model(model, DType::F32, &ctx.device)?;
    let report = attach(&mut loaded.model, &cfg)?;
    save_peft(&loaded.model, &cfg, &out.join(ADAPTER_DIR), save)?;
    write_json(&out.join(ADAPTER_CONFIG), &cfg)?;
    Ok(summary(&cfg, &report, &loaded.config, None))
}

/// Load the PEFT adapter in `dir` onto the model (every tensor checked against its module) and
/// keep its two files byte for byte.
fn loaded(
    ctx: &Ctx,
    dir: &Path,
    model: &Entry,
    out: &Path,
    from: serde_json::Value,
) -> Result<serde_json::Value> {
    let mut base = load_model(model, DType::F32, &ctx.device)?;
    let peft = load_peft(&mut base.model, dir)?;
    let dst = subdir(out, ADAPTER_DIR)?;
    // the config and whichever weights files the folder has (an LLM-Adapters folder may hold
    // only adapter_model.bin; load_peft above read one of them)
    for f in [CONFIG_FILE, WEIGHTS_FILE, BIN_FILE] {
        let (src, to) = (dir.join(f), dst.join(f));
        if f == CONFIG_FILE || src.exists() {
            std::fs::copy(&src, &to).map_err(io(&src))?;
        }
    }
    write_json(&out.join(ADAPTER_CONFIG), &peft.config)?;
    Ok(summary(
        &peft.config,
        &peft.report,
        &base.config,
        Some(from),
    ))
}

fn summary(
    cfg: &AdapterConfig,
    report: &AttachReport,
    model: &LlamaConfig,
    loaded_from: Option<serde_json::Value>,
) -> serde_json::Value {
    let count = ParamCount::new(llama_base_params(model), report.trainable_params());
    let mut meta = json!({
        "method": cfg.method.name(),
        "mergeable": cfg.method.mergeable(),
        "scaling": cfg.rule.name(),
        "rank": cfg.rank,
        "alpha": cfg.alpha,
        "scale": cfg.rule.scale(cfg.alpha, cfg.rank),
        "modules": report.modules.len(),
        "trainable_params": count.trainable,
        "total_params": count.total,
        "trainable_percent": count.percent(),
        "summary": count.to_string(),
    });
    if let Some(from) = loaded_from {
        meta["loaded_from"] = from;
    }
    meta
}

//! The `model` stage: load a base model from the hub, an HF dir, a GGUF file or a seeded random
//! init, and store it as an HF dir so later stages load it by mmap without converting again.

use std::path::Path;

use serde_json::json;

use crate::exec::progress::Progress;
use crate::hub::Hub;
use crate::model::{LoadOptions, ModelSource, RandomSpec, load};
use crate::run::artifacts::{MODEL_DIR, subdir};
use crate::run::context::Ctx;
use crate::run::error::Result;

use super::{ModelParams, ModelSource as IrSource};

pub fn run(
    ctx: &Ctx,
    p: &ModelParams,
    out: &Path,
    progress: &dyn Progress,
) -> Result<serde_json::Value> {
    let source = &p.source;
    let mut extra = serde_json::Map::new();
    let src = match source {
        IrSource::Gguf(path) => ModelSource::Gguf(path.clone()),
        IrSource::Path(path) => ModelSource::HfDir(path.clone()),
        IrSource::Random(r) => ModelSource::Random(RandomSpec::uniform(
            r.hidden, r.layers, r.heads, r.kv_heads, r.ffn, r.seed,
        )),
        IrSource::Hub { id, revision } => {
            progress.message(&format!("downloading {id}@{revision}"));
            let snap = Hub::from_env()?.model(id, revision, &[])?;
            extra.insert("hub_commit".into(), json!(snap.commit));
            ModelSource::HfDir(snap.dir)
        }
    };
    progress.message(&format!("loading {}", src.describe()));
    let opts = LoadOptions {
        dtype: p.dtype.candle(),
        device: ctx.device.clone(),
    };
    let loaded = load(&src, &opts)?;
    loaded.save_hf_dir(&subdir(out, MODEL_DIR)?)?;
    let c = &loaded.config;
    let mut meta = json!({
        "source": src.describe(),
        "layers": c.n_layers(),
        "hidden": c.hidden_size,
        "vocab": c.vocab_size,
        "parameters": loaded.model.num_parameters(),
        "dtype": p.dtype.name(),
    });
    if let Some(m) = meta.as_object_mut() {
        m.extend(extra);
    }
    Ok(meta)
}

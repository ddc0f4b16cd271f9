//! The `merge` stage: fold the trained adapter into the base weights (LoRA `W + sBA`, DoRA
//! `(m/n)(W + sBA)`) and store the result as an HF dir.

use std::path::Path;

use serde_json::json;

use crate::adapter::merge_and_unload;
use crate::cache::Entry;
use crate::ir::params::MergeParams;

use super::Ctx;
use super::artifacts::{MODEL_DIR, dtype, install_adapter, load_model, subdir};
use super::error::Result;

pub fn run(
    ctx: &Ctx,
    p: &MergeParams,
    model: &Entry,
    trained: &Entry,
    out: &Path,
) -> Result<serde_json::Value> {
    let mut loaded = load_model(model, dtype(&p.dtype)?, &ctx.device)?;
    install_adapter(&mut loaded, trained)?;
    let merged = merge_and_unload(&mut loaded.model)?;
    loaded.save_hf_dir(&subdir(out, MODEL_DIR)?)?;
    Ok(json!({ "merged_modules": merged, "dtype": p.dtype }))
}

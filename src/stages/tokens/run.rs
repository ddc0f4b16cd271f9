//! The `tokens` runner: only the model entry's tokenizer is read, not its weights; the result is
//! a `TokenizedDataset` in `dataset/`.

use std::path::Path;

use serde_json::json;

use crate::cache::Entry;
use crate::exec::progress::Progress;
use crate::model::hf::load_hf_text;
use crate::train::data::template::ModelChat;
use crate::train::data::{DataError, Template, TokenizedDataset, build_from_files};

use crate::run::artifacts::{DATA_CONFIG, DATASET_DIR, MODEL_DIR, read_json};
use crate::run::error::Result;
use crate::stages::data::DataRecord;

pub fn run(
    data: &Entry,
    model: &Entry,
    out: &Path,
    progress: &dyn Progress,
) -> Result<serde_json::Value> {
    let record: DataRecord = read_json(&data.file(DATA_CONFIG))?;
    let text = load_hf_text(&model.file(MODEL_DIR))?;
    let mut cfg = record.config.clone();
    cfg.tokenize.eos_id = text.special.eos.first().copied();
    cfg.tokenize.bos_id = text.special.bos;
    let chat = match (&cfg.template, &text.chat_template) {
        (Template::Model { .. }, Some(source)) => Some(
            ModelChat::new(source, &text.template_tokens)
                .map_err(|e| DataError::Config(format!("the model's chat template: {e}")))?,
        ),
        _ => None,
    };
    progress.message(&format!("tokenizing {} files", record.files.len()));
    let ds = build_from_files(&cfg, &record.files, &text.tokenizer, chat.as_ref())?;
    ds.save(&out.join(DATASET_DIR))?;
    Ok(json!({ "data": data.key(), "model": model.key(), "meta": ds.meta }))
}

/// The dataset a `tokens` entry holds.
pub fn load(entry: &Entry) -> Result<TokenizedDataset> {
    Ok(TokenizedDataset::load(&entry.file(DATASET_DIR))?)
}

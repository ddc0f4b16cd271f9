//! The `data` stage's work: files -> rows -> rendered text -> examples -> (limit) -> train/val
//! split -> (packing) -> [`TokenizedDataset`]. Rows are streamed and tokenized in chunks, so only
//! the tokenized examples are held, never a file's raw rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::train::batch::Example;

use super::error::DataError;
use super::pack::pack;
use super::read::{FileFormat, for_each_record, resolve_files};
use super::schema::{Row, RowSchema, parse_row};
use super::shuffle::{STREAM_LIMIT, sample_sorted, split_indices};
use super::store::{DatasetMeta, TokenizedDataset};
use super::task::Task;
use super::template::{ModelChat, Rendered, Template, render};
use super::tokenize::{TokenizeOptions, Tokenized, plain_tokenizer, tokenize_batch};

/// Rows tokenized per call into the tokenizer (which parallelises within a call).
const CHUNK: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataConfig {
    /// Paths or globs; relative ones resolve against the pipeline file's directory.
    pub files: Vec<String>,
    /// Overrides the format told by each file's extension.
    pub format: Option<FileFormat>,
    pub schema: RowSchema,
    /// Task of multiple-choice rows; `None`: from each file's name.
    pub task: Option<Task>,
    pub template: Template,
    pub tokenize: TokenizeOptions,
    /// Rows held out for validation (LLM-Adapters: 120, seed 42).
    pub val_rows: usize,
    /// Keep a seeded random subset of this many rows (before the split), in file order.
    pub limit: Option<usize>,
    pub seed: u64,
    /// Pack the train split into rows of this many tokens.
    pub pack: Option<usize>,
}

impl DataConfig {
    pub fn new(files: Vec<String>, template: Template) -> Self {
        Self {
            files,
            format: None,
            schema: RowSchema::Auto,
            task: None,
            template,
            tokenize: TokenizeOptions::default(),
            val_rows: 0,
            limit: None,
            seed: 42,
            pack: None,
        }
    }
}

/// Resolves `cfg.files` against `base_dir` and builds the dataset.
pub fn build_dataset(
    cfg: &DataConfig,
    base_dir: &Path,
    tokenizer: &Tokenizer,
    chat: Option<&ModelChat>,
) -> Result<TokenizedDataset, DataError> {
    let files = resolve_files(&cfg.files, base_dir)?;
    build_from_files(cfg, &files, tokenizer, chat)
}

/// `chat`: the model's chat template, which `template "model"` renders with.
pub fn build_from_files(
    cfg: &DataConfig,
    files: &[PathBuf],
    tokenizer: &Tokenizer,
    chat: Option<&ModelChat>,
) -> Result<TokenizedDataset, DataError> {
    if let (Template::Model { .. }, None) = (&cfg.template, chat) {
        return Err(DataError::Config(
            "template \"model\": the model has no chat template (tokenizer_config.json `chat_template`, GGUF `tokenizer.chat_template`); name a built-in template such as \"chatml\"".into(),
        ));
    }
    let tok = plain_tokenizer(tokenizer)?;
    let mut examples: Vec<Example> = Vec::new();
    let mut truncated = 0usize;
    let mut rows_per_task: BTreeMap<String, usize> = BTreeMap::new();
    let mut pending: Vec<Rendered> = Vec::with_capacity(CHUNK);
    let mut flush = |pending: &mut Vec<Rendered>| -> Result<(), DataError> {
        for Tokenized {
            example,
            truncated: t,
        } in tokenize_batch(&tok, pending, &cfg.tokenize)?
        {
            truncated += usize::from(t);
            examples.push(example);
        }
        pending.clear();
        Ok(())
    };
    for path in files {
        let task = cfg.task.or_else(|| Task::from_file_name(path));
        for_each_record(path, cfg.format, &mut |location, value| {
            let row = parse_row(value, cfg.schema, task, path, location)?;
            let key = match (&row, task) {
                (Row::MultipleChoice(_), Some(t)) => t.name(),
                (Row::MultipleChoice(_), None) => {
                    return Err(DataError::UnknownTask {
                        path: path.clone(),
                        name: path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        known: Task::known_names(),
                    });
                }
                (Row::Instruction(_), _) => "instruction",
                (Row::Text(_), _) => "text",
                (Row::Chat(_), _) => "chat",
            };
            *rows_per_task.entry(key.to_string()).or_default() += 1;
            let rendered =
                render(&cfg.template, &row, task, chat).map_err(|message| DataError::Template {
                    path: path.clone(),
                    location,
                    template: cfg.template.name().to_string(),
                    message,
                })?;
            pending.push(rendered);
            if pending.len() == CHUNK {
                flush(&mut pending)?;
            }
            Ok(())
        })?;
    }
    flush(&mut pending)?;
    let rows_read = examples.len();
    if let Some(limit) = cfg.limit
        && limit < examples.len()
    {
        let keep = sample_sorted(examples.len(), limit, cfg.seed, STREAM_LIMIT);
        examples = select(examples, &keep);
    }
    if cfg.val_rows > 0 && cfg.val_rows >= examples.len() {
        return Err(DataError::Config(format!(
            "val-rows {} leaves no training rows ({} rows after the limit)",
            cfg.val_rows,
            examples.len()
        )));
    }
    let (train_idx, val_idx) = split_indices(examples.len(), cfg.val_rows, cfg.seed);
    let val = select_ref(&examples, &val_idx);
    let mut train = select(examples, &train_idx);
    if let Some(len) = cfg.pack {
        train = pack(&train, len)?;
    }
    let count = |v: &[Example]| v.iter().map(|e| e.input_ids.len()).sum::<usize>();
    let meta = DatasetMeta {
        files: files.iter().map(|p| p.display().to_string()).collect(),
        template: cfg.template.name().to_string(),
        max_len: cfg.tokenize.max_len,
        train_on_inputs: cfg.tokenize.train_on_inputs,
        rows_read,
        rows_per_task,
        truncated,
        train_rows: train.len(),
        val_rows: val.len(),
        train_tokens: count(&train),
        val_tokens: count(&val),
        train_loss_tokens: train.iter().map(Example::loss_tokens).sum(),
        packed: cfg.pack,
    };
    Ok(TokenizedDataset { train, val, meta })
}

/// The rows at `sorted` (ascending) indices, moving them out of `all`.
fn select(all: Vec<Example>, sorted: &[usize]) -> Vec<Example> {
    let mut want = sorted.iter().peekable();
    all.into_iter()
        .enumerate()
        .filter_map(|(i, e)| {
            if want.peek() == Some(&&i) {
                want.next();
                Some(e)
            } else {
                None
            }
        })
        .collect()
}

fn select_ref(all: &[Example], idx: &[usize]) -> Vec<Example> {
    idx.iter().filter_map(|&i| all.get(i).cloned()).collect()
}

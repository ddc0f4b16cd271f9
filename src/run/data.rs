//! The `data` stage: resolve the files, read and validate every row (a bad row fails here, naming
//! file, line and field), and record the data config. Tokenization needs the model's tokenizer,
//! so it is a job of its own, planned per (data, model) pair: see [`super::tokens`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::exec::Progress;
use crate::hub::Hub;
use crate::ir::params::{DataParams, DataSource};
use crate::train::data::{
    DataConfig, FileFormat, RowSchema, Task, Template, TokenizeOptions, read::for_each_record,
    schema::parse_row,
};

use super::artifacts::{DATA_CONFIG, write_json};
use super::error::{Result, RunError};

/// What a data entry records: the config to tokenize with and the files it resolved to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataRecord {
    pub config: DataConfig,
    pub files: Vec<PathBuf>,
    pub rows_per_task: BTreeMap<String, usize>,
}

fn config(p: &DataParams, files: Vec<String>) -> Result<DataConfig> {
    let template = Template::parse(&p.template)
        .ok_or_else(|| RunError::Unsupported(format!("template `{}`", p.template)))?;
    let format = match p.format.as_str() {
        "auto" | "" => None,
        "jsonl" => Some(FileFormat::Jsonl),
        "json" => Some(FileFormat::Json),
        "parquet" => Some(FileFormat::Parquet),
        other => return Err(RunError::Unsupported(format!("data format `{other}`"))),
    };
    let task = match &p.task {
        None => None,
        Some(t) => {
            Some(Task::parse(t).ok_or_else(|| RunError::Unsupported(format!("task `{t}`")))?)
        }
    };
    let mut c = DataConfig::new(files, template);
    c.format = format;
    c.schema = RowSchema::Auto;
    c.task = task;
    c.tokenize = TokenizeOptions {
        max_len: p.max_len,
        train_on_inputs: p.train_on_inputs,
        ..TokenizeOptions::default()
    };
    c.val_rows = p.validation;
    c.seed = p.validation_seed;
    c.limit = p.limit;
    Ok(c)
}

pub fn run(p: &DataParams, out: &Path, progress: &dyn Progress) -> Result<serde_json::Value> {
    let source = p
        .source
        .as_ref()
        .ok_or_else(|| RunError::Plan("data stage without a source".into()))?;
    let (patterns, files, commit) = match source {
        DataSource::Files(globs) => {
            let files = crate::train::data::resolve_files(globs, Path::new("/"))?;
            (globs.clone(), files, None)
        }
        DataSource::Hub {
            id,
            revision,
            split,
            config,
        } => {
            progress.message(&format!("downloading {id}@{revision} (split {split})"));
            let (commit, files) =
                Hub::from_env()?.dataset_split(id, revision, split, config.as_deref())?;
            let names = files.iter().map(|f| f.display().to_string()).collect();
            (names, files, Some(commit))
        }
    };
    let cfg = config(p, patterns)?;
    let mut rows_per_task: BTreeMap<String, usize> = BTreeMap::new();
    for path in &files {
        let task = cfg.task.or_else(|| Task::from_file_name(path));
        progress.message(&format!("reading {}", path.display()));
        for_each_record(path, cfg.format, &mut |location, value| {
            let _row = parse_row(value, cfg.schema, task, path, location)?;
            let name = task.map_or("instruction", |t| t.name());
            *rows_per_task.entry(name.to_string()).or_default() += 1;
            Ok(())
        })?;
    }
    let record = DataRecord {
        config: cfg,
        files,
        rows_per_task: rows_per_task.clone(),
    };
    write_json(&out.join(DATA_CONFIG), &record)?;
    Ok(json!({ "rows_per_task": rows_per_task, "hub_commit": commit }))
}

//! The `data` runner: resolve the files, read and validate every row, record the data config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::exec::progress::Progress;
use crate::hub::Hub;
use crate::run::artifacts::{DATA_CONFIG, write_json};
use crate::run::error::Result;
use crate::train::data::{
    DataConfig, DataError, RowSchema, Task, Template, TokenizeOptions,
    read::for_each_record,
    schema::{Row, parse_row},
    template::TrainOn,
};

use super::{DataParams, DataSource};

/// What a data entry records: the config to tokenize with and the files it resolved to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataRecord {
    pub config: DataConfig,
    pub files: Vec<PathBuf>,
    pub rows_per_task: BTreeMap<String, usize>,
}

fn config(p: &DataParams, files: Vec<String>) -> DataConfig {
    let mut c = DataConfig::new(files, p.template.clone());
    c.format = p.format.file_format();
    c.schema = RowSchema::Auto;
    c.task = p.task;
    c.tokenize = TokenizeOptions {
        max_len: p.max_len,
        train_on_inputs: match p.template {
            Template::Model { train_on } => train_on == TrainOn::All,
            _ => p.train_on_inputs,
        },
        ..TokenizeOptions::default()
    };
    c.val_rows = p.validation;
    c.seed = p.validation_seed;
    c.limit = p.limit;
    c
}

pub fn run(p: &DataParams, out: &Path, progress: &dyn Progress) -> Result<serde_json::Value> {
    let source = &p.source;
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
    let cfg = config(p, patterns);
    let mut rows_per_task: BTreeMap<String, usize> = BTreeMap::new();
    for path in &files {
        let task = cfg.task.or_else(|| Task::from_file_name(path));
        progress.message(&format!("reading {}", path.display()));
        for_each_record(path, cfg.format, &mut |location, value| {
            let row = parse_row(value, cfg.schema, task, path, location)?;
            cfg.template
                .accepts(&row)
                .map_err(|message| DataError::Template {
                    path: path.clone(),
                    location,
                    template: cfg.template.name().to_string(),
                    message,
                })?;
            let name = match (&row, task) {
                (Row::Chat(_), _) => "chat",
                (Row::Text(_), _) => "text",
                (_, Some(t)) => t.name(),
                (_, None) => "instruction",
            };
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

//! Typed parameters of each stage kind, built from a [`BoundStage`]: what a stage runner reads.
//! Paths are absolute (resolved against the pipeline file's directory). Building never fails on a
//! checked pipeline; on an unchecked one, missing values fall back to the registry defaults.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::bind::BoundStage;
use crate::adapter::scaling::ScalingRule;
use crate::schema::Kind;
use crate::source::SourceFile;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RandomModel {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelSource {
    Hub { id: String, revision: String },
    Path(PathBuf),
    Gguf(PathBuf),
    Random(RandomModel),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelParams {
    /// `None` only in an unchecked pipeline (the checker requires exactly one source).
    pub source: Option<ModelSource>,
    pub dtype: String,
    pub device: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// The data stage's name (its job is a dependency with role `calibration`).
    pub data: String,
    pub rows: usize,
    pub max_len: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneParams {
    pub method: String,
    pub sparsity: Option<f64>,
    pub n_m: Option<(usize, usize)>,
    pub target_params: Option<u64>,
    pub calibration: Option<Calibration>,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSource {
    /// Absolute glob patterns (expand with `glob`).
    Files(Vec<String>),
    Hub {
        id: String,
        split: String,
        config: Option<String>,
        revision: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataParams {
    pub source: Option<DataSource>,
    pub format: String,
    pub template: String,
    /// Task of every row; `None`: from each file's name.
    pub task: Option<String>,
    pub max_len: usize,
    pub train_on_inputs: bool,
    pub validation: usize,
    pub validation_seed: u64,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterMethod {
    Lora,
    Dora,
}

/// How alpha was chosen: a fixed value, or `k * rank`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlphaPolicy {
    Fixed(f64),
    PerRank(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Targets {
    Names(Vec<String>),
    AllLinear,
    Regex(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModulePattern {
    pub pattern: String,
    pub rank: Option<usize>,
    pub alpha: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterParams {
    pub method: AdapterMethod,
    pub scaling: ScalingRule,
    pub rank: usize,
    pub alpha_policy: AlphaPolicy,
    /// The effective alpha (`k * rank` under the per-rank policy).
    pub alpha: f64,
    pub targets: Targets,
    /// Layer indices; `None`: every layer.
    pub layers: Option<Vec<usize>>,
    pub dropout: f64,
    pub init: String,
    pub modules: Vec<ModulePattern>,
    pub seed: u64,
}

impl AdapterParams {
    /// The scale `s` of `W x + s B A x` for the default rank and alpha.
    pub fn scale(&self) -> f64 {
        self.scaling.scale(self.alpha, self.rank)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Duration {
    Steps(u64),
    Epochs(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Warmup {
    Steps(u64),
    Ratio(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainParams {
    pub duration: Duration,
    pub batch: usize,
    pub micro_batch: usize,
    pub lr: f64,
    pub warmup: Warmup,
    pub schedule: String,
    pub weight_decay: f64,
    pub grad_clip: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub seed: u64,
    pub checkpoint_every: Option<u64>,
    pub eval_every: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeParams {
    pub dtype: String,
    /// Mask the merged weights with the base's nonzeros (unstructured-pruned bases stay sparse).
    pub keep_sparsity: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalParams {
    pub tasks: Vec<String>,
    pub protocol: String,
    pub limit: Option<usize>,
    pub batch_size: usize,
    /// Directory of `<task>.<split>.jsonl[.gz]`.
    pub dir: PathBuf,
    pub split: String,
    pub max_new_tokens: usize,
    pub beams: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportParams {
    pub table: bool,
    pub plots: Vec<String>,
    pub formats: Vec<String>,
    pub out: Option<PathBuf>,
}

/// Typed parameters of one job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StageParams {
    Model(ModelParams),
    Prune(PruneParams),
    Data(DataParams),
    Adapter(AdapterParams),
    Train(TrainParams),
    Merge(MergeParams),
    Eval(EvalParams),
    Report(ReportParams),
    /// The derived `tokens` job: no options (its inputs are its `data` and `model` jobs).
    Tokens,
}

/// The shipped evaluation subsets (the default of eval `dir`).
pub fn shipped_eval_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("datasets")
        .join("commonsense")
}

/// `rel` resolved against the pipeline file and made absolute (without touching the file system).
pub fn abs_path(file: &SourceFile, rel: &str) -> PathBuf {
    let p = file.resolve(rel);
    std::path::absolute(&p).unwrap_or(p)
}

fn u(v: Option<i64>, d: u64) -> u64 {
    v.map_or(d, |x| x.max(0) as u64)
}

fn us(v: Option<i64>, d: usize) -> usize {
    v.map_or(d, |x| x.max(0) as usize)
}

impl StageParams {
    pub fn from_bound(b: &BoundStage, file: &SourceFile) -> StageParams {
        let prop_i = |c: &str, p: &str| b.prop(c, p).and_then(|v| v.as_i64());
        let prop_f = |c: &str, p: &str| b.prop(c, p).and_then(|v| v.as_f64());
        let prop_s = |c: &str, p: &str| b.prop(c, p).and_then(|v| v.as_str()).map(String::from);
        let s = |c: &str, d: &str| b.str(c).unwrap_or(d).to_string();
        match b.kind {
            Kind::Model => {
                let source = if let Some(id) = b.str("hub") {
                    Some(ModelSource::Hub {
                        id: id.into(),
                        revision: prop_s("hub", "revision").unwrap_or("main".into()),
                    })
                } else if let Some(p) = b.str("path") {
                    Some(ModelSource::Path(abs_path(file, p)))
                } else if let Some(p) = b.str("gguf") {
                    Some(ModelSource::Gguf(abs_path(file, p)))
                } else if b.has("random") {
                    Some(ModelSource::Random(RandomModel {
                        layers: us(prop_i("random", "layers"), 2),
                        hidden: us(prop_i("random", "hidden"), 64),
                        heads: us(prop_i("random", "heads"), 4),
                        kv_heads: us(prop_i("random", "kv-heads"), 2),
                        ffn: us(prop_i("random", "ffn"), 128),
                        seed: u(prop_i("random", "seed"), 0),
                    }))
                } else {
                    None
                };
                StageParams::Model(ModelParams {
                    source,
                    dtype: s("dtype", "f32"),
                    device: s("device", "auto"),
                })
            }
            Kind::Prune => {
                let n_m = b.first("n-m").and_then(|f| match f.args.as_slice() {
                    [n, m] => Some((n.as_i64()?.max(0) as usize, m.as_i64()?.max(0) as usize)),
                    _ => None,
                });
                let calibration = b.first("calibration").map(|_| Calibration {
                    data: prop_s("calibration", "data").unwrap_or_default(),
                    rows: us(prop_i("calibration", "rows"), 128),
                    max_len: us(prop_i("calibration", "max-len"), 256),
                });
                StageParams::Prune(PruneParams {
                    method: s("method", "magnitude"),
                    sparsity: b.float("sparsity"),
                    n_m,
                    target_params: b.int("target-params").map(|x| x.max(0) as u64),
                    calibration,
                    seed: u(b.int("seed"), 0),
                })
            }
            Kind::Data => {
                let source = if b.has("files") {
                    let pats = b
                        .strs("files")
                        .iter()
                        .map(|p| abs_path(file, p).to_string_lossy().into_owned())
                        .collect();
                    Some(DataSource::Files(pats))
                } else {
                    b.str("hub").map(|id| DataSource::Hub {
                        id: id.into(),
                        split: prop_s("hub", "split").unwrap_or("train".into()),
                        config: prop_s("hub", "config"),
                        revision: prop_s("hub", "revision").unwrap_or("main".into()),
                    })
                };
                StageParams::Data(DataParams {
                    source,
                    format: s("format", "auto"),
                    template: s("template", "llm-adapters"),
                    task: b.str("task").map(String::from),
                    max_len: us(b.int("max-len"), 256),
                    train_on_inputs: b.bool("train-on-inputs").unwrap_or(true),
                    validation: us(b.int("validation"), 0),
                    validation_seed: u(prop_i("validation", "seed"), 42),
                    limit: b.int("limit").map(|x| x.max(0) as usize),
                })
            }
            Kind::Adapter => {
                let rank = us(b.int("rank"), 8).max(1);
                let alpha_policy = match b.float("alpha-per-rank") {
                    Some(k) => AlphaPolicy::PerRank(k),
                    None => AlphaPolicy::Fixed(b.float("alpha").unwrap_or(8.0)),
                };
                let alpha = match alpha_policy {
                    AlphaPolicy::Fixed(a) => a,
                    AlphaPolicy::PerRank(k) => k * rank as f64,
                };
                let scaling = match b.str("scaling") {
                    Some("rora") => ScalingRule::Rora,
                    Some("fixed") => ScalingRule::Fixed(prop_f("scaling", "value").unwrap_or(1.0)),
                    _ => ScalingRule::Lora,
                };
                let names = b.strs("targets");
                let targets = if let Some(r) = b.str("target-regex") {
                    Targets::Regex(r.into())
                } else if names.iter().any(|n| n == "all-linear") {
                    Targets::AllLinear
                } else {
                    Targets::Names(names)
                };
                let layers = if b.has("layers") {
                    Some(
                        b.ints("layers")
                            .into_iter()
                            .map(|x| x.max(0) as usize)
                            .collect(),
                    )
                } else {
                    match b.ints("layer-range").as_slice() {
                        [a, z] => Some((*a.max(&0) as usize..=(*z).max(0) as usize).collect()),
                        _ => None,
                    }
                };
                let modules = b
                    .all("module")
                    .iter()
                    .map(|f| ModulePattern {
                        pattern: f
                            .args
                            .first()
                            .and_then(|v| v.as_str())
                            .unwrap_or_default()
                            .to_string(),
                        rank: f
                            .props
                            .get("rank")
                            .and_then(|v| v.as_i64())
                            .map(|x| x.max(1) as usize),
                        alpha: f.props.get("alpha").and_then(|v| v.as_f64()),
                    })
                    .collect();
                StageParams::Adapter(AdapterParams {
                    method: if b.str("method") == Some("dora") {
                        AdapterMethod::Dora
                    } else {
                        AdapterMethod::Lora
                    },
                    scaling,
                    rank,
                    alpha_policy,
                    alpha,
                    targets,
                    layers,
                    dropout: b.float("dropout").unwrap_or(0.0),
                    init: s("init", "peft"),
                    modules,
                    seed: u(b.int("seed"), 0),
                })
            }
            Kind::Train => {
                let batch = us(b.int("batch"), 16).max(1);
                StageParams::Train(TrainParams {
                    duration: match b.int("steps") {
                        Some(n) => Duration::Steps(n.max(1) as u64),
                        None => Duration::Epochs(b.float("epochs").unwrap_or(1.0)),
                    },
                    batch,
                    micro_batch: us(prop_i("batch", "micro"), batch).max(1),
                    lr: b.float("lr").unwrap_or(2e-4),
                    warmup: match b.float("warmup-ratio") {
                        Some(r) => Warmup::Ratio(r),
                        None => Warmup::Steps(u(b.int("warmup"), 0)),
                    },
                    schedule: s("schedule", "linear"),
                    weight_decay: b.float("weight-decay").unwrap_or(0.0),
                    grad_clip: b.float("grad-clip").unwrap_or(1.0),
                    beta1: prop_f("optimizer", "beta1").unwrap_or(0.9),
                    beta2: prop_f("optimizer", "beta2").unwrap_or(0.999),
                    eps: prop_f("optimizer", "eps").unwrap_or(1e-8),
                    seed: u(b.int("seed"), 42),
                    checkpoint_every: b.int("checkpoint-every").map(|x| x.max(1) as u64),
                    eval_every: b.int("eval-every").map(|x| x.max(1) as u64),
                })
            }
            Kind::Merge => StageParams::Merge(MergeParams {
                dtype: s("dtype", "f32"),
                keep_sparsity: b.bool("keep-sparsity").unwrap_or(false),
            }),
            Kind::Eval => StageParams::Eval(EvalParams {
                tasks: b.strs("tasks"),
                protocol: s("protocol", "llm-adapters"),
                limit: b.int("limit").map(|x| x.max(1) as usize),
                batch_size: us(b.int("batch-size"), 8).max(1),
                dir: b
                    .str("dir")
                    .map_or_else(shipped_eval_dir, |d| abs_path(file, d)),
                split: s("split", "eval"),
                max_new_tokens: us(b.int("max-new-tokens"), 32),
                beams: us(b.int("beams"), 1).max(1),
            }),
            Kind::Report => StageParams::Report(ReportParams {
                table: b.has("table"),
                plots: b
                    .all("plot")
                    .iter()
                    .filter_map(|f| f.args.first()?.as_str().map(String::from))
                    .collect(),
                formats: b.strs("format"),
                out: b.str("out").map(|d| abs_path(file, d)),
            }),
            Kind::Tokens => StageParams::Tokens,
        }
    }
}

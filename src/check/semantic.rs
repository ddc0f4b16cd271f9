//! The semantic pass: cross-option and cross-stage rules, checked at every sweep point of each
//! stage (over the axes it uses directly): model/data sources, conflicting options, fixed scale
//! without a value, targets and regexes, ranks and layer indices against the model config when it is
//! at hand, batch divisibility, pruning amounts, DoRA + quantized base + merge, and local files.

use std::collections::{BTreeMap, BTreeSet};

use super::modelinfo::model_config;
use crate::diag::{Code, Diagnostic, Diagnostics, suggest};
use crate::ir::bind::{BoundStage, bind};
use crate::ir::params::{AdapterParams, ModelSource, StageParams, Targets};
use crate::ir::points::points;
use crate::ir::{Pipeline, StageDecl, Value};
use crate::model::config::{LlamaConfig, PROJECTIONS, module_path};
use crate::schema::{self, Kind, Ty};
use crate::source::Span;

/// Sweep points checked per stage (each axis value is still checked against its type by resolve).
const POINT_CAP: usize = 4096;

struct Sem<'a> {
    p: &'a Pipeline,
    diags: &'a mut Diagnostics,
    seen: BTreeSet<(Code, Span)>,
    /// Model config of each model-producing stage, when known and not swept.
    configs: BTreeMap<String, Option<LlamaConfig>>,
    /// Whether a model stage's weights are quantized (GGUF).
    quantized: BTreeMap<String, bool>,
    /// Whether any point of an adapter stage is DoRA.
    dora: BTreeMap<String, bool>,
}

pub fn semantic(p: &Pipeline, diags: &mut Diagnostics) {
    let mut s = Sem {
        p,
        diags,
        seen: BTreeSet::new(),
        configs: BTreeMap::new(),
        quantized: BTreeMap::new(),
        dora: BTreeMap::new(),
    };
    for stage in &p.stages {
        s.conflicts(stage);
        let used: BTreeSet<String> = stage
            .vars()
            .filter(|v| v.0 == crate::ir::VarKind::Sweep)
            .map(|v| v.1.to_string())
            .collect();
        let pts = points(&p.axes, &used, POINT_CAP)
            .unwrap_or_else(|| points(&p.axes, &BTreeSet::new(), 1).unwrap_or_default());
        let single = pts.len() == 1;
        for pt in &pts {
            let Ok(b) = bind(stage, pt, &p.params) else {
                continue;
            };
            s.files(stage, &b);
            let params = StageParams::from_bound(&b, &p.file);
            s.rules(stage, &b, &params, single);
        }
    }
}

impl Sem<'_> {
    fn push(&mut self, d: Diagnostic) {
        let key = (d.code, d.span().unwrap_or_default());
        if self.seen.insert(key) {
            self.diags.push(d);
        }
    }

    fn span_of(&self, stage: &StageDecl, field: &str) -> Span {
        stage.field(field).map_or(stage.name_span, |f| f.name_span)
    }

    fn arg_span(&self, stage: &StageDecl, field: &str, i: usize) -> Span {
        stage
            .field(field)
            .and_then(|f| f.args.get(i))
            .map_or_else(|| self.span_of(stage, field), |a| a.span())
    }

    /// Options that exclude each other, as written (independent of sweep points).
    fn conflicts(&mut self, stage: &StageDecl) {
        let groups: &[&[&str]] = match stage.kind {
            Kind::Model => &[&["hub", "path", "gguf", "random"]],
            Kind::Data => &[&["files", "hub"]],
            Kind::Adapter => &[
                &["alpha", "alpha-per-rank"],
                &["targets", "target-regex"],
                &["layers", "layer-range"],
            ],
            Kind::Train => &[&["steps", "epochs"], &["warmup", "warmup-ratio"]],
            _ => &[],
        };
        for g in groups {
            let present: Vec<&str> = g
                .iter()
                .copied()
                .filter(|n| stage.fields.contains_key(*n))
                .collect();
            if present.len() > 1 {
                let mut d = Diagnostic::error(
                    Code::ConflictingOptions,
                    format!(
                        "{} `{}` gives both {}",
                        stage.kind.name(),
                        stage.name,
                        present
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                );
                for n in &present {
                    d = d.label(self.span_of(stage, n), format!("`{n}` here"));
                }
                self.push(d.help(format!("keep one of {}", present.join(", "))));
            }
        }
        let missing_source = match stage.kind {
            Kind::Model
                if !["hub", "path", "gguf", "random"]
                    .iter()
                    .any(|n| stage.fields.contains_key(*n)) =>
            {
                Some((
                    Code::NoModelSource,
                    "has no source",
                    "add one of: hub \"org/name\", path \"dir\", gguf \"file.gguf\", random layers=2 hidden=64",
                ))
            }
            Kind::Data
                if !["files", "hub"]
                    .iter()
                    .any(|n| stage.fields.contains_key(*n)) =>
            {
                Some((
                    Code::MissingChild,
                    "has no rows: it needs `files` or `hub`",
                    "add files \"../datasets/commonsense/*.train.jsonl\" or hub \"org/dataset\"",
                ))
            }
            _ => None,
        };
        if let Some((code, what, help)) = missing_source {
            self.push(
                Diagnostic::error(
                    code,
                    format!("{} `{}` {what}", stage.kind.name(), stage.name),
                )
                .label(stage.name_span, "declared here")
                .help(help),
            );
        }
    }

    /// Local files, directories and globs must exist (relative to the pipeline file).
    fn files(&mut self, stage: &StageDecl, b: &BoundStage) {
        for c in schema::spec(stage.kind).children {
            let Some(bound) = b.fields.get(c.name) else {
                continue;
            };
            let Some(decl) = stage.fields.get(c.name) else {
                continue;
            };
            for (occ, f) in decl.iter().zip(bound) {
                for (i, v) in f.args.iter().enumerate() {
                    let (Some(ty @ (Ty::Path | Ty::Glob)), Value::Str(rel)) = (c.args.ty(i), v)
                    else {
                        continue;
                    };
                    let span = occ.args.get(i).map_or(occ.name_span, |a| a.span());
                    let full = self.p.file.resolve(rel);
                    let found = match ty {
                        Ty::Glob => glob::glob(&full.to_string_lossy())
                            .map(|mut g| g.any(|e| e.is_ok()))
                            .unwrap_or(false),
                        _ => full.exists(),
                    };
                    if !found {
                        let what = if ty == Ty::Glob {
                            "matches no file"
                        } else {
                            "does not exist"
                        };
                        self.push(
                            Diagnostic::error(
                                Code::MissingFile,
                                format!("`{rel}` {what} (looked at {})", full.display()),
                            )
                            .label(span, "relative to the pipeline file's directory")
                            .help("fix the path, or use a hub source (hub \"org/name\")"),
                        );
                    }
                }
            }
        }
    }

    fn rules(&mut self, stage: &StageDecl, b: &BoundStage, params: &StageParams, single: bool) {
        match params {
            StageParams::Model(m) => {
                if let Some(ModelSource::Random(r)) = &m.source
                    && (r.hidden % r.heads != 0 || r.heads % r.kv_heads != 0)
                {
                    self.push(
                            Diagnostic::error(Code::OutOfRange, format!("random model `{}`: hidden ({}) must be a multiple of heads ({}), and heads of kv-heads ({})", stage.name, r.hidden, r.heads, r.kv_heads))
                                .label(self.span_of(stage, "random"), "these dimensions")
                                .help("e.g. hidden=64 heads=4 kv-heads=2"),
                        );
                }
                self.quantized.insert(
                    stage.name.clone(),
                    matches!(m.source, Some(ModelSource::Gguf(_))),
                );
                let cfg = if single {
                    match model_config(m) {
                        Ok(c) => c,
                        Err(e) => {
                            let f = if stage.fields.contains_key("gguf") {
                                "gguf"
                            } else {
                                "path"
                            };
                            self.push(
                                Diagnostic::warning(Code::ModelConfig, e)
                                    .label(self.arg_span(stage, f, 0), "this model")
                                    .help("rank and layer checks are skipped for this model"),
                            );
                            None
                        }
                    }
                } else {
                    None
                };
                self.configs.insert(stage.name.clone(), cfg);
            }
            StageParams::Prune(pr) => {
                let src = stage
                    .refs
                    .get("model")
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                let keeps_shape = matches!(pr.method.as_str(), "magnitude" | "wanda" | "n:m");
                let cfg = if keeps_shape {
                    self.configs.get(&src).cloned().flatten()
                } else {
                    None
                };
                self.configs.insert(stage.name.clone(), cfg);
                let q = self.quantized.get(&src).copied().unwrap_or(false);
                self.quantized.insert(stage.name.clone(), q);
                let amount = match pr.method.as_str() {
                    "n:m" => pr.n_m.is_some(),
                    _ => pr.sparsity.is_some() || pr.target_params.is_some(),
                };
                if !amount {
                    let want = if pr.method == "n:m" {
                        "n-m 2 4"
                    } else {
                        "sparsity 0.5 (or target-params N)"
                    };
                    self.push(
                        Diagnostic::error(
                            Code::PruneNeedsAmount,
                            format!(
                                "prune `{}` ({}) does not say how much to prune",
                                stage.name, pr.method
                            ),
                        )
                        .label(self.span_of(stage, "method"), "method here")
                        .help(format!("add {want}")),
                    );
                }
                if let Some((n, m)) = pr.n_m
                    && (n == 0 || n >= m)
                {
                    self.push(
                        Diagnostic::error(
                            Code::InvalidNm,
                            format!("n-m {n} {m}: n must be between 1 and m - 1"),
                        )
                        .label(self.span_of(stage, "n-m"), "here")
                        .help("e.g. n-m 2 4"),
                    );
                }
                if matches!(pr.method.as_str(), "wanda" | "heads" | "ffn")
                    && pr.calibration.is_none()
                {
                    self.push(
                        Diagnostic::error(
                            Code::NeedsCalibration,
                            format!(
                                "prune `{}` uses {}, which needs calibration data",
                                stage.name, pr.method
                            ),
                        )
                        .label(self.span_of(stage, "method"), "method here")
                        .help("add calibration data=\"<data stage>\" rows=128"),
                    );
                }
            }
            StageParams::Adapter(a) => {
                let model = stage
                    .refs
                    .get("model")
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                let cfg = self.configs.get(&model).cloned().flatten();
                self.adapter(stage, b, a, cfg.as_ref());
                let d = self.dora.entry(stage.name.clone()).or_insert(false);
                *d |= a.method == crate::ir::params::AdapterMethod::Dora;
            }
            StageParams::Train(t) => {
                if t.batch % t.micro_batch != 0 {
                    self.push(
                        Diagnostic::error(
                            Code::BatchNotDivisible,
                            format!(
                                "batch {} is not a multiple of micro={}",
                                t.batch, t.micro_batch
                            ),
                        )
                        .label(self.span_of(stage, "batch"), "here")
                        .help("use a micro-batch that divides the batch (e.g. batch 16 micro=4)"),
                    );
                }
                if let (crate::ir::params::Duration::Steps(n), crate::ir::params::Warmup::Steps(w)) =
                    (t.duration, t.warmup)
                    && w >= n
                    && w > 0
                {
                    self.push(
                        Diagnostic::warning(
                            Code::WarmupExceedsSteps,
                            format!(
                                "warmup {w} >= steps {n}: the learning rate never reaches its peak"
                            ),
                        )
                        .label(self.span_of(stage, "warmup"), "here")
                        .help("shorten warmup or train longer"),
                    );
                }
            }
            StageParams::Merge(_) => self.merge(stage),
            _ => {}
        }
        let _ = b;
    }

    fn adapter(
        &mut self,
        stage: &StageDecl,
        b: &BoundStage,
        a: &AdapterParams,
        cfg: Option<&LlamaConfig>,
    ) {
        if b.str("scaling") == Some("fixed") && b.prop("scaling", "value").is_none() {
            self.push(
                Diagnostic::error(Code::FixedScaleNeedsValue, "scaling \"fixed\" needs value=")
                    .label(self.span_of(stage, "scaling"), "no value= here")
                    .help("scaling \"fixed\" value=2.0"),
            );
        }
        let n_layers = cfg.map_or(128, |c| c.n_layers());
        let layers: Vec<usize> = match &a.layers {
            Some(l) => l.clone(),
            None => (0..n_layers).collect(),
        };
        if let (Some(c), Some(l)) = (cfg, &a.layers)
            && let Some(bad) = l.iter().find(|i| **i >= c.n_layers())
        {
            let f = if stage.fields.contains_key("layers") {
                "layers"
            } else {
                "layer-range"
            };
            self.push(
                Diagnostic::error(
                    Code::LayerOutOfRange,
                    format!(
                        "layer {bad} does not exist: the model has {} layers (0..={})",
                        c.n_layers(),
                        c.n_layers() - 1
                    ),
                )
                .label(self.span_of(stage, f), "here")
                .help("use indices below the layer count"),
            );
        }
        if let Some(r) = b.ints("layer-range").get(..2)
            && r[0] > r[1]
        {
            self.push(
                Diagnostic::error(
                    Code::OutOfRange,
                    format!("layer-range {} {}: first is after last", r[0], r[1]),
                )
                .label(self.span_of(stage, "layer-range"), "here")
                .help("write layer-range <first> <last> with first <= last"),
            );
        }
        let mut patterns = vec![];
        for (i, m) in a.modules.iter().enumerate() {
            match regex::Regex::new(&m.pattern) {
                Ok(re) => patterns.push((re, m.rank)),
                Err(e) => {
                    let span = stage
                        .fields
                        .get("module")
                        .and_then(|v| v.get(i))
                        .and_then(|f| f.args.first())
                        .map_or(stage.name_span, |x| x.span());
                    self.push(Diagnostic::error(Code::InvalidRegex, format!("module pattern does not compile: {}", first_line(&e.to_string()))).label(span, "this regex").help("module patterns are Rust regexes over paths like model.layers.0.self_attn.q_proj"));
                }
            }
        }
        let targeted: Vec<(usize, &str)> = match &a.targets {
            Targets::AllLinear => layers
                .iter()
                .flat_map(|l| PROJECTIONS.iter().map(move |p| (*l, *p)))
                .collect(),
            Targets::Names(names) => {
                let mut sel = vec![];
                for (i, n) in names.iter().enumerate() {
                    let projs: Vec<&str> = PROJECTIONS
                        .iter()
                        .copied()
                        .filter(|p| {
                            let path = module_path(0, p);
                            *p == n.as_str()
                                || path
                                    .strip_suffix(n.as_str())
                                    .is_some_and(|head| head.ends_with('.'))
                        })
                        .collect();
                    if projs.is_empty() {
                        let help =
                            match suggest(n, PROJECTIONS.iter().copied().chain(["all-linear"])) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None => {
                                    format!("targets are {} or all-linear", PROJECTIONS.join(", "))
                                }
                            };
                        self.push(
                            Diagnostic::error(
                                Code::TargetsMatchNothing,
                                format!("target `{n}` matches no module of a LLaMA model"),
                            )
                            .label(self.arg_span(stage, "targets", i), "no such module")
                            .help(help),
                        );
                    }
                    sel.extend(
                        layers
                            .iter()
                            .flat_map(|l| projs.iter().map(move |p| (*l, *p))),
                    );
                }
                sel
            }
            Targets::Regex(r) => match regex::Regex::new(r) {
                Ok(re) => {
                    let sel: Vec<(usize, &str)> = layers
                        .iter()
                        .flat_map(|l| PROJECTIONS.iter().map(move |p| (*l, *p)))
                        .filter(|(l, p)| re.is_match(&module_path(*l, p)))
                        .collect();
                    if sel.is_empty() {
                        self.push(Diagnostic::error(Code::TargetsMatchNothing, format!("target-regex `{r}` matches no module")).label(self.arg_span(stage, "target-regex", 0), "matches nothing").help("module paths look like model.layers.0.self_attn.q_proj / model.layers.0.mlp.up_proj"));
                    }
                    sel
                }
                Err(e) => {
                    self.push(
                        Diagnostic::error(
                            Code::InvalidRegex,
                            format!(
                                "target-regex does not compile: {}",
                                first_line(&e.to_string())
                            ),
                        )
                        .label(self.arg_span(stage, "target-regex", 0), "this regex")
                        .help("target-regex is a Rust regex over module paths"),
                    );
                    vec![]
                }
            },
        };
        let Some(cfg) = cfg else { return };
        for (l, p) in targeted {
            let Some((out, inp)) = cfg.proj_shape(l, p) else {
                continue;
            };
            let r = if patterns.is_empty() {
                a.rank
            } else {
                let path = module_path(l, p);
                patterns
                    .iter()
                    .find(|(re, _)| re.is_match(&path))
                    .and_then(|(_, r)| *r)
                    .unwrap_or(a.rank)
            };
            if r > out.min(inp) {
                let path = module_path(l, p);
                self.push(
                    Diagnostic::error(Code::RankTooLarge, format!("rank {r} is larger than {path} allows: it is [{out}, {inp}], so rank <= {}", out.min(inp)))
                        .label(self.span_of(stage, "rank"), "this rank")
                        .help(format!("use a rank <= {} or target other modules", out.min(inp))),
                );
                return;
            }
        }
    }

    fn merge(&mut self, stage: &StageDecl) {
        let p = self.p;
        let Some(train) = stage.refs.get("from").and_then(|r| p.stage(&r.name)) else {
            return;
        };
        let Some(adapter) = train.refs.get("adapter").and_then(|r| p.stage(&r.name)) else {
            return;
        };
        let Some(model) = adapter.refs.get("model") else {
            return;
        };
        let dora = self.dora.get(&adapter.name).copied().unwrap_or(false);
        if dora && self.quantized.get(&model.name).copied().unwrap_or(false) {
            self.push(
                Diagnostic::error(Code::DoraQuantizedMerge, format!("merge `{}` would merge the DoRA adapter `{}` into the quantized (GGUF) model `{}`", stage.name, adapter.name, model.name))
                    .label(stage.name_span, "this merge")
                    .label(self.span_of(adapter, "method"), "DoRA here")
                    .help("use a full-precision base (hub or path), LoRA/RoRA, or evaluate the unmerged adapter with eval model=\"<train stage>\""),
            );
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

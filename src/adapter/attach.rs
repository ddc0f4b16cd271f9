//! Attaching adapters to a model and reaching them afterwards.
//!
//! A model is anything that lists its adaptable projections ([`AdaptableModel`]). [`attach`]
//! validates the whole config against the model first (targets match something, ranks fit every
//! layer, no module is adapted twice) and only then installs adapters, so a failed attach leaves
//! the model untouched. Trainable variables are enumerated with PEFT's names
//! (`base_model.model.{module_path}.lora_A.weight`, ...) in the model's module order.

use candle_core::Var;

use super::bottleneck::{Bottleneck, Placement};
use super::config::AdapterConfig;
use super::dora::Dora;
use super::error::AdapterError;
use super::linear::{Linear, LinearAdapter};
use super::lora::Lora;
use super::lowrank::{LowRank, adapter_dtype};
use super::prefix::{Prefix, PrefixShape};
use super::spec::{AdapterSpec, Method};

/// A model whose projections can carry adapters. Paths are HF module paths
/// (`model.layers.3.self_attn.q_proj`); both methods list the same modules in the same order.
pub trait AdaptableModel {
    fn linears(&self) -> Vec<(String, &Linear)>;
    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)>;
    /// The shape a prefix (prefix tuning) takes on this model; `None` where it takes none.
    fn prefix_shape(&self) -> Option<PrefixShape> {
        None
    }
    /// The installed prefix.
    fn prefix(&self) -> Option<&Prefix> {
        None
    }
    /// Install (or remove, with `None`) the prefix, returning the previous one.
    fn set_prefix(&mut self, prefix: Option<Prefix>) -> Result<Option<Prefix>, AdapterError> {
        match prefix {
            None => Ok(None),
            Some(_) => Err(AdapterError::NoPrefix),
        }
    }
}

/// A bare list of named projections (toy models, tests).
impl AdaptableModel for Vec<(String, Linear)> {
    fn linears(&self) -> Vec<(String, &Linear)> {
        self.iter().map(|(p, l)| (p.clone(), l)).collect()
    }

    fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        self.iter_mut().map(|(p, l)| (p.clone(), l)).collect()
    }
}

/// One adapted module.
#[derive(Debug, Clone, PartialEq)]
pub struct ModulePlan {
    pub path: String,
    /// `(out, in)` of the base layer.
    pub shape: (usize, usize),
    pub spec: AdapterSpec,
}

impl ModulePlan {
    pub fn trainable_params(&self) -> usize {
        // `plan` admits only modules the method has a place on
        self.spec
            .trainable_params(&self.path, self.shape)
            .unwrap_or(0)
    }
}

/// What [`attach`] did (or would do): one entry per adapted module, in model order; or the
/// virtual tokens of a prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachReport {
    pub modules: Vec<ModulePlan>,
    /// `(virtual tokens, shape)` of a prefix.
    pub prefix: Option<(usize, PrefixShape)>,
}

impl AttachReport {
    pub fn prefix(n: usize, shape: PrefixShape) -> Self {
        Self {
            modules: Vec::new(),
            prefix: Some((n, shape)),
        }
    }

    pub fn trainable_params(&self) -> usize {
        self.modules
            .iter()
            .map(ModulePlan::trainable_params)
            .sum::<usize>()
            + self.prefix.map_or(0, |(n, s)| s.params(n))
    }

    /// Distinct `(rank, alpha, scale)` triples, in first-seen order (one line per job in reports).
    pub fn scales(&self) -> Vec<(usize, f64, f64)> {
        let mut out: Vec<(usize, f64, f64)> = Vec::new();
        for m in &self.modules {
            let t = (m.spec.rank, m.spec.alpha, m.spec.scale());
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }
}

impl std::fmt::Display for AttachReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some((n, s)) = self.prefix {
            return write!(
                f,
                "prefix of {n} virtual tokens on {} layers ({} KV heads x {})",
                s.layers, s.kv_heads, s.head_dim
            );
        }
        let Some(first) = self.modules.first() else {
            return write!(f, "no adapted modules");
        };
        write!(
            f,
            "{} on {} modules, rule {}",
            first.spec.method.name(),
            self.modules.len(),
            first.spec.rule.name()
        )?;
        for (r, a, s) in self.scales() {
            if first.spec.method.is_bottleneck() {
                write!(f, "; bottleneck={r} scale={s:.6}")?;
            } else {
                write!(f, "; r={r} alpha={a} scale={s:.6}")?;
            }
        }
        Ok(())
    }
}

/// Decide which of the given `(path, (out, in))` modules get which adapter, checking the config.
pub fn plan(
    shapes: &[(String, (usize, usize))],
    cfg: &AdapterConfig,
) -> Result<AttachReport, AdapterError> {
    let matcher = cfg.validate()?;
    let mut modules = Vec::new();
    for (path, shape) in shapes {
        if !matcher.is_target(path) {
            continue;
        }
        let spec = matcher.spec(path);
        let max = shape.0.min(shape.1);
        if spec.method.is_bottleneck() {
            if Placement::of(spec.method, path).is_none() {
                return Err(AdapterError::NoPlacement {
                    module: path.clone(),
                    method: spec.method.name(),
                });
            }
        } else if spec.rank > max {
            return Err(AdapterError::RankTooLarge {
                module: path.clone(),
                rank: spec.rank,
                max,
                out: shape.0,
                inp: shape.1,
            });
        }
        modules.push(ModulePlan {
            path: path.clone(),
            shape: *shape,
            spec,
        });
    }
    if modules.is_empty() {
        let mut available: Vec<&str> = shapes.iter().map(|(p, _)| p.as_str()).take(8).collect();
        if shapes.len() > 8 {
            available.push("...");
        }
        return Err(AdapterError::NoTargetMatched {
            targets: cfg.targets_description(),
            available: available.join(", "),
        });
    }
    Ok(AttachReport {
        modules,
        prefix: None,
    })
}

/// Attach fresh adapters (A from `cfg.init`, B = 0, DoRA magnitude = row norms of W) to every
/// module `cfg` targets; or a fresh prefix (`Method::Prefix`, `cfg.rank` virtual tokens). Errors
/// leave the model unchanged.
pub fn attach<M: AdaptableModel + ?Sized>(
    model: &mut M,
    cfg: &AdapterConfig,
) -> Result<AttachReport, AdapterError> {
    if cfg.method == Method::Prefix {
        cfg.validate()?;
        let shape = model.prefix_shape().ok_or(AdapterError::NoPrefix)?;
        if model.prefix().is_some() {
            return Err(AdapterError::AlreadyAdapted {
                module: "prefix".into(),
            });
        }
        let (device, dtype) = adapter_home(model);
        let p = Prefix::init(cfg.rank, shape, cfg.seed, dtype, &device)
            .map_err(AdapterError::tensor("prefix"))?;
        model.set_prefix(Some(p))?;
        return Ok(AttachReport::prefix(cfg.rank, shape));
    }
    let shapes: Vec<(String, (usize, usize))> = model
        .linears()
        .into_iter()
        .map(|(p, l)| (p, l.shape()))
        .collect();
    let report = plan(&shapes, cfg)?;
    let mut adapters = Vec::with_capacity(report.modules.len());
    {
        let linears = model.linears();
        for m in &report.modules {
            let Some((_, lin)) = linears.iter().find(|(p, _)| *p == m.path) else {
                continue;
            };
            if lin.adapter().is_some() {
                return Err(AdapterError::AlreadyAdapted {
                    module: m.path.clone(),
                });
            }
            let adapter = build(m, lin, cfg).map_err(AdapterError::tensor(&m.path))?;
            adapters.push((m.path.clone(), adapter));
        }
    }
    install(model, adapters)?;
    Ok(report)
}

fn build(
    m: &ModulePlan,
    lin: &Linear,
    cfg: &AdapterConfig,
) -> candle_core::Result<Box<dyn LinearAdapter>> {
    let w = lin.weight();
    if let Some(placement) = Placement::of(m.spec.method, &m.path) {
        return Ok(Box::new(Bottleneck::init(
            m.spec,
            placement,
            cfg.activation,
            m.shape,
            cfg.init,
            cfg.dropout,
            cfg.seed,
            &m.path,
            adapter_dtype(w.dtype()),
            w.device(),
        )?));
    }
    let low = LowRank::init(
        m.spec,
        m.shape,
        cfg.init,
        cfg.dropout,
        cfg.seed,
        &m.path,
        adapter_dtype(w.dtype()),
        w.device(),
    )?;
    Ok(match m.spec.method {
        Method::Lora => Box::new(Lora::new(low)),
        Method::Dora => Box::new(Dora::init(low, w)?),
        Method::Series | Method::Parallel | Method::Prefix => {
            candle_core::bail!(
                "{}: no place for a {} adapter",
                m.path,
                m.spec.method.name()
            )
        }
    })
}

/// Install ready-made adapters by module path (loading). Every path must name a module that has
/// no adapter yet; otherwise nothing is installed.
pub fn install<M: AdaptableModel + ?Sized>(
    model: &mut M,
    adapters: Vec<(String, Box<dyn LinearAdapter>)>,
) -> Result<(), AdapterError> {
    {
        let linears = model.linears();
        for (path, _) in &adapters {
            match linears.iter().find(|(p, _)| p == path) {
                None => {
                    return Err(AdapterError::UnknownModule {
                        module: path.clone(),
                    });
                }
                Some((_, l)) if l.adapter().is_some() => {
                    return Err(AdapterError::AlreadyAdapted {
                        module: path.clone(),
                    });
                }
                Some(_) => {}
            }
        }
    }
    let mut adapters = adapters;
    for (path, lin) in model.linears_mut() {
        if let Some(i) = adapters.iter().position(|(p, _)| *p == path) {
            let (_, a) = adapters.swap_remove(i);
            lin.set_adapter(Some(a))
                .map_err(AdapterError::tensor(&path))?;
        }
    }
    Ok(())
}

/// Remove every adapter (unmerging first), returning how many were removed.
pub fn detach_all<M: AdaptableModel + ?Sized>(model: &mut M) -> Result<usize, AdapterError> {
    let mut n = usize::from(model.set_prefix(None)?.is_some());
    for (path, lin) in model.linears_mut() {
        if lin
            .set_adapter(None)
            .map_err(AdapterError::tensor(&path))?
            .is_some()
        {
            n += 1;
        }
    }
    Ok(n)
}

/// Every adapter variable with its PEFT name, in model order (A, B, magnitude per module), and a
/// prefix's `prompt_embeddings`.
pub fn trainable_vars<M: AdaptableModel + ?Sized>(model: &M) -> Vec<(String, Var)> {
    let mut out = Vec::new();
    if let Some(p) = model.prefix() {
        out.push((PREFIX_KEY.to_string(), p.var().clone()));
    }
    for (path, lin) in model.linears() {
        if let Some(a) = lin.adapter() {
            for (suffix, var) in a.vars() {
                out.push((peft_key(&path, suffix), var));
            }
        }
    }
    out
}

/// The device and adapter dtype for parameters that belong to no one module (a prefix): the
/// first projection's device, and f32 (f64 on an f64 base).
pub fn adapter_home<M: AdaptableModel + ?Sized>(
    model: &M,
) -> (candle_core::Device, candle_core::DType) {
    model.linears().first().map_or(
        (candle_core::Device::Cpu, candle_core::DType::F32),
        |(_, l)| {
            (
                l.weight().device().clone(),
                adapter_dtype(l.weight().dtype()),
            )
        },
    )
}

/// The saved name of a prefix's embeddings (PEFT's `prompt_embeddings`, no module path).
pub const PREFIX_KEY: &str = "prompt_embeddings";

/// `base_model.model.{path}.{suffix}`, PEFT's saved tensor name.
pub fn peft_key(path: &str, suffix: &str) -> String {
    format!("base_model.model.{path}.{suffix}")
}

/// Switch dropout on (training) or off (evaluation) in every adapter.
pub fn set_training<M: AdaptableModel + ?Sized>(model: &M, training: bool) {
    for (_, lin) in model.linears() {
        if let Some(a) = lin.adapter() {
            a.set_training(training);
        }
    }
}

/// Select the dropout random stream of every adapter (the trainer sets e.g. the micro-step).
pub fn set_dropout_stream<M: AdaptableModel + ?Sized>(model: &M, stream: u64) {
    for (_, lin) in model.linears() {
        if let Some(a) = lin.adapter() {
            a.set_dropout_stream(stream);
        }
    }
}

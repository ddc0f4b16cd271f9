//! What to attach where: [`AdapterConfig`] and its validation.
//!
//! Matching follows PEFT (`peft/tuners/tuners_utils.py`, `check_target_module_exists`; and
//! `peft/utils/other.py`, `get_pattern_key`) so a config means the same thing here and in PEFT:
//! - [`Targets::Names`]: a module matches a name when its path equals it or ends with `.{name}`;
//! - [`Targets::Regex`]: the whole module path must match (`re.fullmatch`);
//! - [`Targets::AllLinear`]: every projection the model exposes (PEFT's `"all-linear"`, which
//!   excludes the output head; the model never exposes `lm_head` as adaptable);
//! - `layers`: only modules whose path holds `.layers.{i}.` with `i` in the list;
//! - rank/alpha patterns: the first pattern `P` (in order) such that the module path matches
//!   `^(.*\.)?(P)$` overrides the global rank/alpha.
//!
//! [`AdapterConfig::validate`] checks ranges and compiles every regex, so later passes cannot fail
//! on a malformed config.

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::bottleneck::Activation;
use super::error::AdapterError;
use super::init::LoraInit;
use super::scaling::ScalingRule;
use super::spec::{AdapterSpec, Method};

/// Which modules get an adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum Targets {
    Names(Vec<String>),
    Regex(String),
    AllLinear,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub method: Method,
    pub rule: ScalingRule,
    pub rank: usize,
    pub alpha: f64,
    pub targets: Targets,
    /// Layer indices to adapt (`None`: all layers).
    pub layers: Option<Vec<usize>>,
    /// Dropout probability on the adapter input, in `[0, 1)`.
    pub dropout: f64,
    pub init: LoraInit,
    pub seed: u64,
    /// `(regex, rank)`, first match wins (PEFT's `rank_pattern`).
    pub rank_pattern: Vec<(String, usize)>,
    /// `(regex, alpha)`, first match wins (PEFT's `alpha_pattern`).
    pub alpha_pattern: Vec<(String, f64)>,
    /// The non-linearity of a bottleneck adapter (unused by LoRA/DoRA).
    #[serde(default)]
    pub activation: Activation,
}

impl AdapterConfig {
    /// LoRA-family defaults for the given rule, rank, alpha and targets.
    pub fn new(
        method: Method,
        rule: ScalingRule,
        rank: usize,
        alpha: f64,
        targets: Targets,
    ) -> Self {
        Self {
            method,
            rule,
            rank,
            alpha,
            targets,
            layers: None,
            dropout: 0.0,
            init: LoraInit::Kaiming,
            seed: 0,
            rank_pattern: Vec::new(),
            alpha_pattern: Vec::new(),
            activation: Activation::default(),
        }
    }

    /// A bottleneck adapter (`Method::Series` / `Method::Parallel`) of width `size` with
    /// LLM-Adapters' defaults: tanh, `bert` init, no dropout. `rule` is `Fixed(s)` or
    /// `Learned(s0)`; `alpha` records the scale.
    pub fn bottleneck(method: Method, size: usize, rule: ScalingRule, targets: Targets) -> Self {
        let mut c = Self::new(method, rule, size, rule.scale(1.0, size), targets);
        c.init = LoraInit::Bert;
        c
    }

    /// Check ranges and compile the patterns.
    pub fn validate(&self) -> Result<Matcher, AdapterError> {
        let invalid = |field: &'static str, msg: String| AdapterError::InvalidConfig { field, msg };
        if self.rank == 0 {
            return Err(invalid("rank", "must be at least 1".into()));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(invalid(
                "alpha",
                format!("must be a positive number, got {}", self.alpha),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(invalid(
                "dropout",
                format!("must lie in [0, 1), got {}", self.dropout),
            ));
        }
        if let ScalingRule::Fixed(s) | ScalingRule::Learned(s) = self.rule
            && !s.is_finite()
        {
            return Err(invalid(
                "rule",
                format!("fixed scale must be finite, got {s}"),
            ));
        }
        let bottleneck = self.method.is_bottleneck();
        if bottleneck && !matches!(self.rule, ScalingRule::Fixed(_) | ScalingRule::Learned(_)) {
            return Err(invalid(
                "rule",
                format!(
                    "a {} adapter scales by a fixed or learned number, not the {} rule",
                    self.method.name(),
                    self.rule.name()
                ),
            ));
        }
        if !bottleneck && matches!(self.rule, ScalingRule::Learned(_)) {
            return Err(invalid(
                "rule",
                "a learned scale is for bottleneck adapters (series, parallel)".into(),
            ));
        }
        if bottleneck != self.init.is_bottleneck() {
            return Err(invalid(
                "init",
                format!(
                    "{:?} does not initialise a {} adapter",
                    self.init,
                    self.method.name()
                ),
            ));
        }
        if bottleneck && !(self.rank_pattern.is_empty() && self.alpha_pattern.is_empty()) {
            return Err(invalid(
                "rank_pattern",
                "bottleneck adapters have one size and scale for every module".into(),
            ));
        }
        match &self.targets {
            Targets::Names(n) if n.is_empty() => {
                return Err(invalid("targets", "no module names given".into()));
            }
            _ => {}
        }
        if let Some((p, _)) = self.rank_pattern.iter().find(|(_, r)| *r == 0) {
            return Err(invalid(
                "rank_pattern",
                format!("pattern {p:?} sets rank 0"),
            ));
        }
        if let Some((p, a)) = self
            .alpha_pattern
            .iter()
            .find(|(_, a)| !(a.is_finite() && *a > 0.0))
        {
            return Err(invalid(
                "alpha_pattern",
                format!("pattern {p:?} sets alpha {a}"),
            ));
        }
        let target_regex = match &self.targets {
            Targets::Regex(r) => Some(compile("targets", &format!("^(?:{r})$"), r)?),
            _ => None,
        };
        let rank_pattern = compile_patterns("rank_pattern", &self.rank_pattern)?;
        let alpha_pattern = compile_patterns("alpha_pattern", &self.alpha_pattern)?;
        Ok(Matcher {
            config: self.clone(),
            target_regex,
            rank_pattern,
            alpha_pattern,
        })
    }

    /// A short human description of the targets (for reports and errors).
    pub fn targets_description(&self) -> String {
        let t = match &self.targets {
            Targets::Names(n) => n.join(", "),
            Targets::Regex(r) => format!("regex {r:?}"),
            Targets::AllLinear => "all-linear".to_string(),
        };
        match &self.layers {
            Some(l) => format!("{t} in layers {l:?}"),
            None => t,
        }
    }
}

fn compile(field: &'static str, full: &str, pattern: &str) -> Result<Regex, AdapterError> {
    Regex::new(full).map_err(|source| AdapterError::BadRegex {
        field,
        pattern: pattern.to_string(),
        source: Box::new(source),
    })
}

fn compile_patterns<T: Copy>(
    field: &'static str,
    patterns: &[(String, T)],
) -> Result<Vec<(Regex, T)>, AdapterError> {
    patterns
        .iter()
        .map(|(p, v)| Ok((compile(field, &format!(r"^(?:.*\.)?(?:{p})$"), p)?, *v)))
        .collect()
}

/// The layer index of a module path (`model.layers.{i}.…`), if it has one.
pub fn layer_index(path: &str) -> Option<usize> {
    let start = path
        .find(".layers.")
        .map(|i| i + ".layers.".len())
        .or_else(|| path.strip_prefix("layers.").map(|_| "layers.".len()))?;
    let rest = &path[start..];
    let end = rest.find('.')?;
    rest[..end].parse().ok()
}

/// A validated config, ready to decide per module.
#[derive(Debug, Clone)]
pub struct Matcher {
    config: AdapterConfig,
    target_regex: Option<Regex>,
    rank_pattern: Vec<(Regex, usize)>,
    alpha_pattern: Vec<(Regex, f64)>,
}

impl Matcher {
    pub fn config(&self) -> &AdapterConfig {
        &self.config
    }

    /// Does the module at `path` get an adapter?
    pub fn is_target(&self, path: &str) -> bool {
        let by_name = match &self.config.targets {
            Targets::Names(names) => names
                .iter()
                .any(|n| path == n.as_str() || path.ends_with(&format!(".{n}"))),
            Targets::Regex(_) => self.target_regex.as_ref().is_some_and(|r| r.is_match(path)),
            Targets::AllLinear => true,
        };
        by_name
            && match &self.config.layers {
                None => true,
                Some(layers) => layer_index(path).is_some_and(|i| layers.contains(&i)),
            }
    }

    /// The spec of the module at `path` (patterns applied).
    pub fn spec(&self, path: &str) -> AdapterSpec {
        let rank = self
            .rank_pattern
            .iter()
            .find(|(r, _)| r.is_match(path))
            .map(|(_, v)| *v);
        let alpha = self
            .alpha_pattern
            .iter()
            .find(|(r, _)| r.is_match(path))
            .map(|(_, v)| *v);
        AdapterSpec {
            method: self.config.method,
            rank: rank.unwrap_or(self.config.rank),
            alpha: alpha.unwrap_or(self.config.alpha),
            rule: self.config.rule,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(targets: Targets) -> AdapterConfig {
        AdapterConfig::new(Method::Lora, ScalingRule::Lora, 8, 16.0, targets)
    }

    const Q0: &str = "model.layers.0.self_attn.q_proj";
    const Q1: &str = "model.layers.1.self_attn.q_proj";
    const UP1: &str = "model.layers.1.mlp.up_proj";

    #[test]
    fn names_match_by_dotted_suffix_like_peft() {
        let m = cfg(Targets::Names(vec!["q_proj".into(), "mlp.up_proj".into()]))
            .validate()
            .unwrap();
        assert!(m.is_target(Q0) && m.is_target(UP1));
        assert!(!m.is_target("model.layers.0.self_attn.k_proj"));
        // "proj" is not a dotted suffix of "q_proj"
        let m = cfg(Targets::Names(vec!["proj".into()])).validate().unwrap();
        assert!(!m.is_target(Q0));
    }

    #[test]
    fn regex_must_match_the_whole_path() {
        let m = cfg(Targets::Regex(r".*\.1\..*q_proj".into()))
            .validate()
            .unwrap();
        assert!(m.is_target(Q1) && !m.is_target(Q0));
        let m = cfg(Targets::Regex("q_proj".into())).validate().unwrap();
        assert!(!m.is_target(Q0), "fullmatch, not search");
    }

    #[test]
    fn layers_restrict_targets() {
        let mut c = cfg(Targets::AllLinear);
        c.layers = Some(vec![1]);
        let m = c.validate().unwrap();
        assert!(m.is_target(Q1) && m.is_target(UP1) && !m.is_target(Q0));
        assert_eq!(layer_index("model.layers.12.mlp.down_proj"), Some(12));
        assert_eq!(layer_index("lm_head"), None);
    }

    // Reference: PEFT get_pattern_key: re.match(rf"(.*\.)?({key})$", module_name), first key wins.
    #[test]
    fn patterns_override_rank_and_alpha_first_match_wins() {
        let mut c = cfg(Targets::AllLinear);
        c.rank_pattern = vec![
            ("layers.1.self_attn.q_proj".into(), 4),
            ("q_proj".into(), 16),
        ];
        c.alpha_pattern = vec![("up_proj".into(), 3.0)];
        let m = c.validate().unwrap();
        assert_eq!(m.spec(Q1).rank, 4);
        assert_eq!(m.spec(Q0).rank, 16);
        assert_eq!(m.spec(UP1).rank, 8);
        assert_eq!(m.spec(UP1).alpha, 3.0);
        assert_eq!(m.spec(Q0).alpha, 16.0);
        // "proj" alone does not match "q_proj" at a dot boundary
        let mut c = cfg(Targets::AllLinear);
        c.rank_pattern = vec![("proj".into(), 2)];
        assert_eq!(c.validate().unwrap().spec(Q0).rank, 8);
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let mut c = cfg(Targets::AllLinear);
        c.dropout = 1.0;
        assert!(c.validate().unwrap_err().to_string().contains("dropout"));
        let c = cfg(Targets::Regex("(".into()));
        assert!(c.validate().unwrap_err().to_string().contains("targets"));
        let mut c = cfg(Targets::AllLinear);
        c.rank = 0;
        assert!(c.validate().unwrap_err().to_string().contains("rank"));
    }
}

//! What the semantic rules of every stage kind share while the semantic pass walks a pipeline:
//! the diagnostics sink (each code and span reported once), span helpers, and what earlier stages
//! told later ones (a model stage's config for rank checks, whether it is quantized, whether an
//! adapter is DoRA).

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::ir::{Pipeline, StageDecl};
use crate::model::config::LlamaConfig;
use crate::source::Span;

pub struct CheckCx<'a> {
    pub p: &'a Pipeline,
    diags: &'a mut Diagnostics,
    seen: BTreeSet<(Code, Span)>,
    /// Model config of each model-producing stage, when known and not swept.
    pub configs: BTreeMap<String, Option<LlamaConfig>>,
    /// Whether a model stage's weights are quantized (GGUF).
    pub quantized: BTreeMap<String, bool>,
    /// Whether any point of an adapter stage is DoRA.
    pub dora: BTreeMap<String, bool>,
    /// Adapter stage name -> the method's name, for adapters that cannot be merged.
    pub unmergeable: BTreeMap<String, &'static str>,
}

impl<'a> CheckCx<'a> {
    pub fn new(p: &'a Pipeline, diags: &'a mut Diagnostics) -> Self {
        Self {
            p,
            diags,
            seen: BTreeSet::new(),
            configs: BTreeMap::new(),
            quantized: BTreeMap::new(),
            dora: BTreeMap::new(),
            unmergeable: BTreeMap::new(),
        }
    }

    /// Report `d` unless the same code was already reported at the same span (sweep points).
    pub fn push(&mut self, d: Diagnostic) {
        let key = (d.code, d.span().unwrap_or_default());
        if self.seen.insert(key) {
            self.diags.push(d);
        }
    }

    /// The span of option `field` as written, else of the stage's name.
    pub fn span_of(&self, stage: &StageDecl, field: &str) -> Span {
        stage.field(field).map_or(stage.name_span, |f| f.name_span)
    }

    /// The span of argument `i` of option `field`.
    pub fn arg_span(&self, stage: &StageDecl, field: &str, i: usize) -> Span {
        stage
            .field(field)
            .and_then(|f| f.args.get(i))
            .map_or_else(|| self.span_of(stage, field), |a| a.span())
    }
}

/// The last non-empty line of an error message (regex errors end with the useful one).
pub fn first_line(s: &str) -> String {
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

//! The pipeline's intermediate representations.
//!
//! - [`PipelineDecl`]: what the shape pass produces. Every node matched the registry: known names,
//!   argument counts and literal types/ranges are right, values keep their spans. Variables
//!   (`(sweep)"x"`, `(param)"x"`) are still unresolved.
//! - [`Pipeline`]: what `check` produces. References resolve to stages of the right kind, the graph
//!   is acyclic (stages are in topological order), every variable exists and each of its values fits
//!   every place it is used, and the cross-stage rules hold.
//! - [`bind::BoundStage`] / [`params::StageParams`]: one stage at one sweep point, defaults filled, typed.

pub mod bind;
pub mod bound;
pub mod points;

use std::collections::BTreeMap;

use crate::schema::Kind;
use crate::source::{SourceFile, Span};

/// A literal value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

impl Value {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Numbers (integers widen).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Bool(_) => "boolean",
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s}"),
            Value::Bool(b) => write!(f, "#{b}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VarKind {
    Sweep,
    Param,
}

/// An argument or property value as written: a literal or a variable.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Lit {
        value: Value,
        span: Span,
    },
    Var {
        kind: VarKind,
        name: String,
        span: Span,
    },
}

impl Arg {
    pub fn span(&self) -> Span {
        match self {
            Arg::Lit { span, .. } | Arg::Var { span, .. } => *span,
        }
    }

    pub fn lit(&self) -> Option<&Value> {
        match self {
            Arg::Lit { value, .. } => Some(value),
            Arg::Var { .. } => None,
        }
    }
}

/// One occurrence of an option (a child node).
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub span: Span,
    pub name_span: Span,
    pub args: Vec<Arg>,
    pub props: BTreeMap<String, Arg>,
}

/// A reference to another stage through a property (`model="base"`).
#[derive(Debug, Clone, PartialEq)]
pub struct StageRef {
    pub name: String,
    pub span: Span,
}

/// A stage as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct StageDecl {
    pub kind: Kind,
    pub name: String,
    pub span: Span,
    pub name_span: Span,
    /// Property name -> referenced stage.
    pub refs: BTreeMap<String, StageRef>,
    /// Option name -> occurrences (one unless the option is repeatable).
    pub fields: BTreeMap<String, Vec<Field>>,
}

impl StageDecl {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.get(name).and_then(|v| v.first())
    }

    /// Every variable used by this stage: (kind, name, span).
    pub fn vars(&self) -> impl Iterator<Item = (VarKind, &str, Span)> {
        self.fields
            .values()
            .flatten()
            .flat_map(|f| f.args.iter().chain(f.props.values()))
            .filter_map(|a| match a {
                Arg::Var { kind, name, span } => Some((*kind, name.as_str(), *span)),
                Arg::Lit { .. } => None,
            })
    }
}

/// One sweep axis. Axes with the same `group` (a `zip` block) advance together.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub name: String,
    pub span: Span,
    pub values: Vec<(Value, Span)>,
    pub group: usize,
}

/// A named constant.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    pub name: String,
    pub span: Span,
    pub value: Value,
    pub value_span: Span,
}

/// The output of the shape pass.
#[derive(Debug, Clone)]
pub struct PipelineDecl {
    pub file: SourceFile,
    pub stages: Vec<StageDecl>,
    pub axes: Vec<Axis>,
    pub params: Vec<ParamDecl>,
}

/// A checked pipeline. `stages` are in topological order (every stage after the stages it references).
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub file: SourceFile,
    pub stages: Vec<StageDecl>,
    pub axes: Vec<Axis>,
    pub params: Vec<ParamDecl>,
    /// Stage name -> index in `stages`.
    pub index: BTreeMap<String, usize>,
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<&StageDecl> {
        self.index.get(name).map(|i| &self.stages[*i])
    }

    pub fn axis(&self, name: &str) -> Option<&Axis> {
        self.axes.iter().find(|a| a.name == name)
    }

    pub fn param(&self, name: &str) -> Option<&ParamDecl> {
        self.params.iter().find(|p| p.name == name)
    }
}

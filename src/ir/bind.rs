//! Binding: one stage at one sweep point. Variables are replaced by their values, numbers are
//! coerced to the declared type (an integer where a number is declared becomes a float, so
//! `alpha 16` and `alpha 16.0` bind, and hash, the same), and registry defaults are filled in.

use std::collections::BTreeMap;

use super::{Arg, ParamDecl, StageDecl, Value, VarKind};
use crate::schema::{self, Args, ChildSpec, Default, Kind, Ty};

/// A sweep point: axis name -> value. Only the axes a job depends on.
pub type Point = BTreeMap<String, Value>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BindError {
    #[error("stage `{stage}`: {kind:?} variable `{name}` has no value at this point")]
    Unbound {
        stage: String,
        kind: VarKind,
        name: String,
    },
}

/// One option occurrence with values.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundField {
    pub args: Vec<Value>,
    pub props: BTreeMap<String, Value>,
}

/// A stage with every variable replaced and defaults filled.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundStage {
    pub kind: Kind,
    pub name: String,
    /// Property -> referenced stage name.
    pub refs: BTreeMap<String, String>,
    pub fields: BTreeMap<String, Vec<BoundField>>,
}

/// Coerce a value to a type: integers widen to floats where a number is declared.
pub fn coerce(v: Value, ty: Option<Ty>) -> Value {
    match (v, ty) {
        (Value::Int(i), Some(Ty::Float { .. })) => Value::Float(i as f64),
        (v, _) => v,
    }
}

fn default_field(d: Default) -> BoundField {
    let args = match d {
        Default::Int(i) => vec![Value::Int(i)],
        Default::Float(f) => vec![Value::Float(f)],
        Default::Str(s) => vec![Value::Str(s.to_string())],
        Default::Bool(b) => vec![Value::Bool(b)],
        Default::Strs(v) => v.iter().map(|s| Value::Str(s.to_string())).collect(),
    };
    BoundField {
        args,
        props: BTreeMap::new(),
    }
}

fn default_value(d: Default) -> Option<Value> {
    default_field(d).args.into_iter().next()
}

/// Bind `stage` at `point` with the pipeline's `params`.
pub fn bind(
    stage: &StageDecl,
    point: &Point,
    params: &[ParamDecl],
) -> Result<BoundStage, BindError> {
    let spec = schema::spec(stage.kind);
    let resolve = |a: &Arg, ty: Option<Ty>| -> Result<Value, BindError> {
        let v = match a {
            Arg::Lit { value, .. } => value.clone(),
            Arg::Var { kind, name, .. } => {
                let found = match kind {
                    VarKind::Sweep => point.get(name).cloned(),
                    VarKind::Param => params
                        .iter()
                        .find(|p| &p.name == name)
                        .map(|p| p.value.clone()),
                };
                found.ok_or_else(|| BindError::Unbound {
                    stage: stage.name.clone(),
                    kind: *kind,
                    name: name.clone(),
                })?
            }
        };
        Ok(coerce(v, ty))
    };
    let mut fields = BTreeMap::new();
    for c in spec.children {
        let bound = match stage.fields.get(c.name) {
            Some(occ) => occ
                .iter()
                .map(|f| bind_field(c, f, &resolve))
                .collect::<Result<Vec<_>, _>>()?,
            // An omitted option binds exactly like the option written with its defaults.
            None => c
                .default
                .map(|d| {
                    let mut f = default_field(d);
                    f.props = c
                        .props
                        .iter()
                        .filter_map(|p| {
                            Some((p.name.to_string(), p.default.and_then(default_value)?))
                        })
                        .collect();
                    vec![f]
                })
                .unwrap_or_default(),
        };
        if !bound.is_empty() {
            fields.insert(c.name.to_string(), bound);
        }
    }
    let refs = stage
        .refs
        .iter()
        .map(|(k, r)| (k.clone(), r.name.clone()))
        .collect();
    Ok(BoundStage {
        kind: stage.kind,
        name: stage.name.clone(),
        refs,
        fields,
    })
}

fn bind_field(
    c: &ChildSpec,
    f: &super::Field,
    resolve: &impl Fn(&Arg, Option<Ty>) -> Result<Value, BindError>,
) -> Result<BoundField, BindError> {
    let args = f
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| resolve(a, c.args.ty(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut props = BTreeMap::new();
    for p in c.props {
        let v = match f.props.get(p.name) {
            Some(a) => Some(resolve(a, Some(p.ty))?),
            None => p.default.and_then(default_value),
        };
        if let Some(v) = v {
            props.insert(p.name.to_string(), coerce(v, Some(p.ty)));
        }
    }
    Ok(BoundField { args, props })
}

impl BoundStage {
    pub fn first(&self, name: &str) -> Option<&BoundField> {
        self.fields.get(name).and_then(|v| v.first())
    }

    pub fn all(&self, name: &str) -> &[BoundField] {
        self.fields.get(name).map_or(&[], |v| v.as_slice())
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    fn arg(&self, name: &str) -> Option<&Value> {
        self.first(name).and_then(|f| f.args.first())
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.arg(name).and_then(Value::as_i64)
    }

    pub fn float(&self, name: &str) -> Option<f64> {
        self.arg(name).and_then(Value::as_f64)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.arg(name).and_then(Value::as_str)
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.arg(name).and_then(Value::as_bool)
    }

    pub fn strs(&self, name: &str) -> Vec<String> {
        self.first(name).map_or(vec![], |f| {
            f.args
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
    }

    pub fn ints(&self, name: &str) -> Vec<i64> {
        self.first(name).map_or(vec![], |f| {
            f.args.iter().filter_map(Value::as_i64).collect()
        })
    }

    pub fn prop(&self, name: &str, prop: &str) -> Option<&Value> {
        self.first(name).and_then(|f| f.props.get(prop))
    }

    /// Whether a child was absent from the file and only filled from its default.
    pub fn is_default(&self, decl: &StageDecl, name: &str) -> bool {
        self.has(name) && !decl.fields.contains_key(name)
    }
}

/// The declared argument shape of an option (for callers that need the spec next to a bound field).
pub fn child_args(kind: Kind, name: &str) -> Option<Args> {
    schema::spec(kind).child(name).map(|c| c.args)
}

//! Binding: one stage at one sweep point. Variables are replaced by their values, numbers are
//! coerced to the declared type (an integer where a number is declared becomes a float, so
//! `alpha 16` and `alpha 16.0` bind, and hash, the same), and registry defaults are filled in.

use std::collections::BTreeMap;

pub use super::bound::{BoundField, BoundStage};
use super::{Arg, ParamDecl, StageDecl, Value, VarKind};
use crate::schema::{ChildSpec, Default, KindSpec, Ty};

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

/// The default of `c` given the options bound before it (`ChildSpec::default_when`).
pub fn default_of(c: &ChildSpec, bound: &BTreeMap<String, Vec<BoundField>>) -> Option<Default> {
    c.default_when
        .iter()
        .find(|(opt, values, _)| {
            bound
                .get(*opt)
                .and_then(|f| f.first())
                .and_then(|f| f.args.first())
                .and_then(|v| v.as_str())
                .is_some_and(|v| values.contains(&v))
        })
        .map(|(_, _, d)| *d)
        .or(c.default)
}

/// Whether `field` is `c` exactly as its default binds it (`d`, props at their defaults).
pub fn is_default_field(c: &ChildSpec, d: Default, field: &BoundField) -> bool {
    let want = default_field(d);
    let args: Vec<Value> = want
        .args
        .into_iter()
        .enumerate()
        .map(|(i, v)| coerce(v, c.args.ty(i)))
        .collect();
    args == field.args
        && c.props.iter().all(|p| {
            let d = p
                .default
                .and_then(default_value)
                .map(|d| coerce(d, Some(p.ty)));
            field.props.get(p.name) == d.as_ref()
        })
}

pub(crate) fn default_value(d: Default) -> Option<Value> {
    default_field(d).args.into_iter().next()
}

/// Bind `stage` (of the kind `spec` describes) at `point` with the pipeline's `params`.
pub fn bind(
    stage: &StageDecl,
    spec: &KindSpec,
    point: &Point,
    params: &[ParamDecl],
) -> Result<BoundStage, BindError> {
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
            None => default_of(c, &fields)
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

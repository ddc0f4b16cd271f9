//! What every stage module's params have in common: the type-erased [`StageParams`] a job carries
//! (each kind downcasts to its own struct), [`ParamError`], and the accessors that read a bound
//! option whose default the spec supplies.

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::ir::Value;
use crate::ir::bound::BoundStage;
use crate::schema::Kind;
use crate::source::SourceFile;

/// What a kind's params type must be.
trait AnyParams: Any + fmt::Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn to_json(&self) -> serde_json::Value;
}

impl<T: Any + fmt::Debug + Send + Sync + Serialize> AnyParams for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn to_json(&self) -> serde_json::Value {
        // A params struct holds strings, numbers, booleans, paths, lists and enums: always JSON.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The typed params of one job: its kind's own params struct, behind a cheap clone.
#[derive(Clone)]
pub struct StageParams {
    kind: Kind,
    inner: Arc<dyn AnyParams>,
}

impl StageParams {
    pub fn new<T: Any + fmt::Debug + Send + Sync + Serialize>(kind: Kind, params: T) -> Self {
        Self {
            kind,
            inner: Arc::new(params),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The params as `T`, when they are of that type.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.inner.as_any().downcast_ref::<T>()
    }

    /// Mutable access for the planner (hub pinning writes the resolved commit): the params are
    /// copied into an allocation of their own first, so no other holder sees the change.
    pub fn get_mut<T: Any + Clone + fmt::Debug + Send + Sync + Serialize>(
        &mut self,
    ) -> Option<&mut T> {
        let value: T = self.get::<T>()?.clone();
        self.inner = Arc::new(value);
        // invariant: just stored a T, and this Arc has no other owner.
        Arc::get_mut(&mut self.inner).and_then(|p| {
            let any: &mut dyn Any = p;
            any.downcast_mut::<T>()
        })
    }
}

impl fmt::Debug for StageParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Serialize for StageParams {
    /// The params' fields with the kind as `"kind"`, as `rora plan --format json` prints them.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = self.inner.to_json();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("kind".into(), self.kind.name().into());
        } else {
            v = serde_json::json!({ "kind": self.kind.name() });
        }
        v.serialize(s)
    }
}

/// A bound stage lacks a value the checker guarantees (the pipeline was not checked).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "stage `{stage}`: `{option}` has no value of the declared type (was the pipeline checked?)"
)]
pub struct ParamError {
    pub stage: String,
    pub option: String,
}

/// Accessors for options the spec gives a default (so the binder always filled them).
pub trait Need {
    fn need(&self, option: &str) -> Result<&Value, ParamError>;
    fn need_prop(&self, option: &str, prop: &str) -> Result<&Value, ParamError>;
    fn missing(&self, option: &str) -> ParamError;

    /// A choice option holds a value that is not one of its choices (an unchecked pipeline).
    fn missing_choice(&self, option: &str) -> ParamError {
        self.missing(option)
    }

    fn need_int(&self, option: &str) -> Result<i64, ParamError> {
        self.need(option)?
            .as_i64()
            .ok_or_else(|| self.missing(option))
    }
    fn need_usize(&self, option: &str) -> Result<usize, ParamError> {
        Ok(self.need_int(option)?.max(0) as usize)
    }
    fn need_u64(&self, option: &str) -> Result<u64, ParamError> {
        Ok(self.need_int(option)?.max(0) as u64)
    }
    fn need_float(&self, option: &str) -> Result<f64, ParamError> {
        self.need(option)?
            .as_f64()
            .ok_or_else(|| self.missing(option))
    }
    fn need_bool(&self, option: &str) -> Result<bool, ParamError> {
        self.need(option)?
            .as_bool()
            .ok_or_else(|| self.missing(option))
    }
    fn need_str(&self, option: &str) -> Result<&str, ParamError> {
        self.need(option)?
            .as_str()
            .ok_or_else(|| self.missing(option))
    }
    /// A choice option as its enum (`parse` is the enum's `from_name`).
    fn need_choice<T>(&self, option: &str, parse: fn(&str) -> Option<T>) -> Result<T, ParamError> {
        parse(self.need_str(option)?).ok_or_else(|| self.missing(option))
    }
    fn need_prop_int(&self, option: &str, prop: &str) -> Result<i64, ParamError> {
        self.need_prop(option, prop)?
            .as_i64()
            .ok_or_else(|| self.missing(&format!("{option} {prop}=")))
    }
    fn need_prop_usize(&self, option: &str, prop: &str) -> Result<usize, ParamError> {
        Ok(self.need_prop_int(option, prop)?.max(0) as usize)
    }
    fn need_prop_float(&self, option: &str, prop: &str) -> Result<f64, ParamError> {
        self.need_prop(option, prop)?
            .as_f64()
            .ok_or_else(|| self.missing(&format!("{option} {prop}=")))
    }
    fn need_prop_str(&self, option: &str, prop: &str) -> Result<&str, ParamError> {
        self.need_prop(option, prop)?
            .as_str()
            .ok_or_else(|| self.missing(&format!("{option} {prop}=")))
    }
}

impl Need for BoundStage {
    fn need(&self, option: &str) -> Result<&Value, ParamError> {
        self.first(option)
            .and_then(|f| f.args.first())
            .ok_or_else(|| self.missing(option))
    }

    fn need_prop(&self, option: &str, prop: &str) -> Result<&Value, ParamError> {
        self.prop(option, prop)
            .ok_or_else(|| self.missing(&format!("{option} {prop}=")))
    }

    fn missing(&self, option: &str) -> ParamError {
        ParamError {
            stage: self.name.clone(),
            option: option.to_string(),
        }
    }
}

/// `rel` resolved against the pipeline file and made absolute (without touching the file system).
pub fn abs_path(file: &SourceFile, rel: &str) -> PathBuf {
    let p = file.resolve(rel);
    std::path::absolute(&p).unwrap_or(p)
}

/// A non-negative integer option as a count.
pub(crate) fn count(v: Option<i64>) -> Option<usize> {
    v.map(|x| x.max(0) as usize)
}

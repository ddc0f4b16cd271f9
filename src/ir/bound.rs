//! A stage bound at one sweep point (what [`super::bind::bind`] makes): every variable replaced by
//! its value and every default filled, with typed accessors.

use std::collections::BTreeMap;

use super::{StageDecl, Value};
use crate::schema::Kind;

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

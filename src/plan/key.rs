//! Stage keys: blake3 over the canonical JSON of a declared [`Fingerprint`]. Canonical means: maps
//! are BTreeMaps (sorted), floats are written as their shortest round-trip `{:e}` text (so `16`,
//! `16.0` and `1.6e1` for a number option agree, and -0 is 0), defaults are filled, options marked
//! unkeyed in the registry (device, eval batch size, ...) are left out, and local paths are replaced by
//! the content digests of what they point to. Never `std::hash::Hash`. A change here that changes
//! any key must bump [`KEY_FORMAT_VERSION`]; golden tests pin the derivation.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::ir::Value;
use crate::ir::bind::BoundStage;
use crate::schema::{KindSpec, Ty};

/// Version of the key derivation.
pub const KEY_FORMAT_VERSION: u32 = 1;

/// A canonical value.
#[derive(Debug, Clone, PartialEq)]
pub enum Canon {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    List(Vec<Canon>),
    Map(BTreeMap<String, Canon>),
}

/// Shortest round-trip text of a float, with -0 as 0.
pub fn canonical_float(x: f64) -> String {
    if x == 0.0 {
        "0e0".to_string()
    } else {
        format!("{x:e}")
    }
}

impl Serialize for Canon {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Canon::Int(i) => s.serialize_i64(*i),
            Canon::Float(f) => {
                let mut m = BTreeMap::new();
                m.insert("f", canonical_float(*f));
                m.serialize(s)
            }
            Canon::Str(x) => s.serialize_str(x),
            Canon::Bool(b) => s.serialize_bool(*b),
            Canon::List(l) => l.serialize(s),
            Canon::Map(m) => m.serialize(s),
        }
    }
}

impl From<&Value> for Canon {
    fn from(v: &Value) -> Self {
        match v {
            Value::Int(i) => Canon::Int(*i),
            Value::Float(f) => Canon::Float(*f),
            Value::Str(s) => Canon::Str(s.clone()),
            Value::Bool(b) => Canon::Bool(*b),
        }
    }
}

/// Everything a stage's output depends on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fingerprint {
    pub key_format_version: u32,
    pub kind: String,
    pub kind_version: u32,
    /// Resolved options (defaults filled; unkeyed options and local paths left out).
    pub params: BTreeMap<String, Canon>,
    /// Role (`model`, `adapter`, `from`, `calibration.data`) -> keys of the upstream jobs.
    pub upstream: BTreeMap<String, Vec<String>>,
    /// Option (`files`, `gguf`, `dir`) -> blake3 content digest of the local inputs.
    pub inputs: BTreeMap<String, String>,
    pub seed: Option<i64>,
}

/// A stage key: 64 hex characters of blake3.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct StageKey(pub String);

impl StageKey {
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters, for display.
    pub fn short(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }
}

impl std::fmt::Display for StageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Fingerprint {
    /// The canonical bytes that are hashed.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // invariant: the fingerprint holds only strings, integers, booleans, lists and string-keyed maps.
        serde_json::to_vec(self).expect("fingerprint serializes")
    }

    pub fn key(&self) -> StageKey {
        StageKey(blake3::hash(&self.canonical_bytes()).to_hex().to_string())
    }
}

/// The keyed options of a bound stage. A field is its single argument when it has one argument
/// and no properties, else `{"args": [...], "<prop>": ...}`; repeatable options are lists.
pub fn key_params(spec: &KindSpec, b: &BoundStage) -> BTreeMap<String, Canon> {
    let mut out = BTreeMap::new();
    for c in spec.children.iter().filter(|c| c.keyed) {
        let Some(fields) = b.fields.get(c.name) else {
            continue;
        };
        // options added later are not keyed at their defaults (`registry::added_later_option`)
        if !c.keyed_at_default
            && let Some(d) = c.default
            && fields.len() == 1
            && crate::ir::bind::is_default_field(c, d, &fields[0])
        {
            continue;
        }
        let local = |i: usize| matches!(c.args.ty(i), Some(Ty::Path | Ty::Glob));
        // props added later are not keyed at their defaults (`registry::added_later`)
        let keyed_prop = |name: &str, v: &crate::ir::Value| {
            c.props.iter().find(|p| p.name == name).is_none_or(|p| {
                p.keyed_at_default
                    || p.default
                        .and_then(crate::ir::bind::default_value)
                        .map(|d| crate::ir::bind::coerce(d, Some(p.ty)))
                        .as_ref()
                        != Some(v)
            })
        };
        let encode = |f: &crate::ir::bind::BoundField| -> Option<Canon> {
            let props: BTreeMap<&String, &crate::ir::Value> =
                f.props.iter().filter(|(k, v)| keyed_prop(k, v)).collect();
            let args: Vec<Canon> = f
                .args
                .iter()
                .enumerate()
                .filter(|(i, _)| !local(*i))
                .map(|(_, v)| v.into())
                .collect();
            if args.is_empty() && !f.args.is_empty() && props.is_empty() {
                return None; // only a local path: represented by its digest in `inputs`
            }
            if props.is_empty()
                && args.len() == 1
                && !matches!(c.args, crate::schema::Args::Many { .. })
            {
                return args.into_iter().next();
            }
            let mut m: BTreeMap<String, Canon> = props
                .into_iter()
                .map(|(k, v)| (k.clone(), v.into()))
                .collect();
            m.insert("args".into(), Canon::List(args));
            Some(Canon::Map(m))
        };
        let encoded: Vec<Canon> = fields.iter().filter_map(encode).collect();
        if encoded.is_empty() {
            continue;
        }
        let v = if c.repeat {
            Canon::List(encoded)
        } else {
            encoded.into_iter().next().unwrap_or(Canon::Bool(true))
        };
        out.insert(c.name.to_string(), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_canonical() {
        assert_eq!(canonical_float(2e-4), "2e-4");
        assert_eq!(canonical_float(16.0), "1.6e1");
        assert_eq!(canonical_float(-0.0), canonical_float(0.0));
        assert_eq!(canonical_float(0.1 + 0.2), "3.0000000000000004e-1");
    }

    #[test]
    fn key_is_blake3_of_the_canonical_json() {
        let fp = Fingerprint {
            key_format_version: 1,
            kind: "merge".into(),
            kind_version: 1,
            params: [("dtype".to_string(), Canon::Str("f32".into()))].into(),
            upstream: BTreeMap::new(),
            inputs: BTreeMap::new(),
            seed: None,
        };
        let json = String::from_utf8(fp.canonical_bytes()).unwrap();
        assert_eq!(
            json,
            r#"{"key_format_version":1,"kind":"merge","kind_version":1,"params":{"dtype":"f32"},"upstream":{},"inputs":{},"seed":null}"#
        );
        assert_eq!(
            fp.key().hex(),
            blake3::hash(json.as_bytes()).to_hex().as_str()
        );
    }
}

//! PEFT's `adapter_config.json` for LoRA/DoRA (`peft.LoraConfig`), read and written field by field.
//!
//! Field names, types and defaults follow `peft/tuners/lora/config.py` (`LoraConfig`): `r`
//! (default 8), `lora_alpha` (8), `lora_dropout` (0.0), `use_rslora`, `use_dora`, `target_modules`
//! (a list of names or one regex string, or `"all-linear"`), `layers_to_transform` (int or list),
//! `layers_pattern`, `rank_pattern` / `alpha_pattern` (ordered maps regex -> value),
//! `init_lora_weights` (`true` or a scheme name), `bias` (`"none"`), `peft_type` (`"LORA"`),
//! `task_type` (`"CAUSAL_LM"`). Unknown fields written by newer PEFT versions are kept on load
//! and ignored. Whole numbers are written as JSON integers, as Python writes them.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A JSON object whose key order is kept (PEFT's patterns are matched first-key-first).
#[derive(Debug, Clone, PartialEq)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object (or null)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, T>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Ordered(Vec::new()))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Ordered(Vec::new()))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A number written the way Python writes it: `16` for whole values, `45.254833995939045` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Num(pub f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            s.serialize_i64(self.0 as i64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

/// `target_modules`: a list of names, or one string (a regex, or `"all-linear"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PeftTargets {
    List(Vec<String>),
    One(String),
}

/// `layers_to_transform`: one index or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PeftLayers {
    One(usize),
    List(Vec<usize>),
}

impl PeftLayers {
    pub fn to_vec(&self) -> Vec<usize> {
        match self {
            PeftLayers::One(i) => vec![*i],
            PeftLayers::List(l) => l.clone(),
        }
    }
}

fn default_r() -> usize {
    8
}
fn default_alpha() -> Num {
    Num(8.0)
}
fn default_bias() -> String {
    "none".into()
}
fn default_peft_type() -> String {
    "LORA".into()
}
fn default_init() -> serde_json::Value {
    serde_json::Value::Bool(true)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeftLoraConfig {
    #[serde(default)]
    pub alpha_pattern: Ordered<Num>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default = "default_bias")]
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default = "default_init")]
    pub init_lora_weights: serde_json::Value,
    #[serde(default)]
    pub layers_pattern: Option<serde_json::Value>,
    #[serde(default)]
    pub layers_to_transform: Option<PeftLayers>,
    #[serde(default = "default_alpha")]
    pub lora_alpha: Num,
    #[serde(default)]
    pub lora_dropout: f64,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    #[serde(default = "default_peft_type")]
    pub peft_type: String,
    #[serde(default = "default_r")]
    pub r: usize,
    #[serde(default)]
    pub rank_pattern: Ordered<usize>,
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub target_modules: Option<PeftTargets>,
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub use_rslora: bool,
    /// Fields this reader does not interpret (kept so a load/save cycle does not lose them).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_pattern_order_survive_like_python_writes_them() {
        let json = r#"{"r": 8, "lora_alpha": 16, "rank_pattern": {"z_proj": 4, "a_proj": 2},
            "alpha_pattern": {"q": 45.254833995939045}, "target_modules": ["q_proj", "v_proj"],
            "layers_to_transform": 3, "peft_version": "0.17.1", "megatron_core": "megatron.core"}"#;
        let c: PeftLoraConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.rank_pattern.0[0], ("z_proj".to_string(), 4));
        assert_eq!(c.layers_to_transform.as_ref().unwrap().to_vec(), vec![3]);
        assert_eq!(c.other["peft_version"], "0.17.1");
        let out = serde_json::to_string(&c).unwrap();
        assert!(out.contains(r#""lora_alpha":16,"#), "{out}");
        assert!(
            out.contains(r#""rank_pattern":{"z_proj":4,"a_proj":2}"#),
            "{out}"
        );
        assert!(out.contains("45.254833995939045"), "{out}");
        assert_eq!(c.peft_type, "LORA");
        assert_eq!(c.bias, "none");
    }
}

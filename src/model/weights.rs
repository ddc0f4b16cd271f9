//! A set of tensors under their HF names (`model.layers.0.self_attn.q_proj.weight`, ...), as
//! every loader produces them, with the file they came from for error messages.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};

use super::error::{ModelError, Result};

pub struct NamedTensors {
    /// Where the tensors came from (a file or a directory), named in errors.
    pub path: PathBuf,
    pub tensors: HashMap<String, Tensor>,
}

impl NamedTensors {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            tensors: HashMap::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) {
        self.tensors.insert(name.into(), t);
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Remove `name`, check its shape and convert it to `dtype`.
    pub fn take(&mut self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
            })?;
        if t.dims() != shape {
            return Err(ModelError::WrongShape {
                path: self.path.clone(),
                tensor: name.to_string(),
                expected: shape.to_vec(),
                got: t.dims().to_vec(),
            });
        }
        Ok(t.to_dtype(dtype)?)
    }
}

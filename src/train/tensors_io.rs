//! Named host `f32` buffers to and from safetensors bytes, with a fixed layout: the same
//! buffers always give the same bytes (no metadata map, names sorted by safetensors).

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::path::Path;

use super::error::{Result, TrainError};

/// One named buffer with its shape.
pub struct HostTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub fn to_bytes(tensors: &[HostTensor], path: &Path) -> Result<Vec<u8>> {
    let raw: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut views = Vec::with_capacity(tensors.len());
    for (t, bytes) in tensors.iter().zip(&raw) {
        let view = TensorView::new(Dtype::F32, t.shape.clone(), bytes)
            .map_err(|e| TrainError::checkpoint(path, format!("tensor {}: {e}", t.name)))?;
        views.push((t.name.as_str(), view));
    }
    safetensors::tensor::serialize(views, None).map_err(|e| TrainError::checkpoint(path, e))
}

/// Read the tensors named `names` (f32) from `path`, checking each exists with `numel` elements.
pub fn read(path: &Path, names: &[(String, usize)]) -> Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).map_err(TrainError::io(path))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| TrainError::checkpoint(path, e))?;
    names
        .iter()
        .map(|(name, numel)| {
            let view = st
                .tensor(name)
                .map_err(|e| TrainError::checkpoint(path, format!("tensor {name}: {e}")))?;
            if view.dtype() != Dtype::F32 || view.data().len() != numel * 4 {
                return Err(TrainError::checkpoint(
                    path,
                    format!(
                        "tensor {name}: expected {numel} f32 values, found {:?} {:?}",
                        view.dtype(),
                        view.shape()
                    ),
                ));
            }
            Ok(view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        })
        .collect()
}

//! What a model source stores, for `rora model info`: tensor storage types as found on disk
//! (before dequantization) and parameter counts per part of the model.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::SafeTensors;

use super::error::{ModelError, Result};
use super::gguf_file::{GgufFile, kind_name};
use super::llama::Llama;
use super::source::ModelSource;

/// Storage type -> number of tensors stored with it.
pub fn stored_dtypes(source: &ModelSource) -> Result<BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    match source {
        ModelSource::Gguf(p) => {
            for t in GgufFile::open(p)?.tensors {
                *out.entry(kind_name(t.kind)).or_default() += 1;
            }
        }
        ModelSource::HfDir(d) => {
            for entry in std::fs::read_dir(d).map_err(|e| ModelError::io(d, e))? {
                let p = entry.map_err(|e| ModelError::io(d, e))?.path();
                if p.extension().is_some_and(|e| e == "safetensors") {
                    count_safetensors(&p, &mut out)?;
                }
            }
        }
        ModelSource::Random(_) => {
            out.insert("F32 (generated)".into(), 0);
        }
    }
    Ok(out)
}

fn count_safetensors(p: &Path, out: &mut BTreeMap<String, usize>) -> Result<()> {
    let f = std::fs::File::open(p).map_err(|e| ModelError::io(p, e))?;
    let mmap = crate::sys::map_readonly(&f).map_err(|e| ModelError::io(p, e))?;
    let st = SafeTensors::deserialize(&mmap).map_err(|e| ModelError::CorruptSafetensors {
        path: p.into(),
        reason: e.to_string(),
    })?;
    for (_, v) in st.tensors() {
        *out.entry(format!("{:?}", v.dtype())).or_default() += 1;
    }
    Ok(())
}

/// Parameter counts: (embeddings, attention, mlp, norms, lm_head when untied).
pub struct ParamCounts {
    pub embeddings: usize,
    pub attention: usize,
    pub mlp: usize,
    pub norms: usize,
    pub lm_head: usize,
}

impl ParamCounts {
    pub fn of(model: &Llama) -> Self {
        let mut c = ParamCounts {
            embeddings: 0,
            attention: 0,
            mlp: 0,
            norms: 0,
            lm_head: 0,
        };
        for (name, t) in model.named_tensors() {
            let n = t.elem_count();
            if name.contains("self_attn") {
                c.attention += n;
            } else if name.contains(".mlp.") {
                c.mlp += n;
            } else if name.contains("norm") {
                c.norms += n;
            } else if name.starts_with("lm_head") {
                c.lm_head += n;
            } else {
                c.embeddings += n;
            }
        }
        c
    }

    pub fn total(&self) -> usize {
        self.embeddings + self.attention + self.mlp + self.norms + self.lm_head
    }
}

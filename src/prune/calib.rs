//! Calibration: the L2 norm over calibration tokens of every input feature of every projection,
//! `||X_j||_2 = sqrt(sum_tokens x_j^2)` (Wanda's activation statistic, also used by the
//! activation-based structured importance).
//!
//! Recording works through the adapter hook: a [`Recorder`] implementing
//! `crate::adapter::LinearAdapter` is installed on every projection, returns the base output
//! unchanged and accumulates `x^2` per input feature. Each calibration sequence runs alone with
//! an all-ones mask, so padding never enters the statistics. The recorders are removed after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result as CResult, Tensor, Var};

use super::error::{PruneError, Result};
use crate::adapter::linear::LinearAdapter;
use crate::adapter::scaling::ScalingRule;
use crate::adapter::spec::{AdapterSpec, Method};
use crate::lm::CausalLm;
use crate::model::Llama;

/// Per projection (HF module path): the sum over calibration tokens of `x_j^2`, per input `j`.
#[derive(Debug, Clone, Default)]
pub struct InputNorms {
    /// Calibration tokens seen by every projection.
    pub tokens: usize,
    pub sq_sums: HashMap<String, Vec<f64>>,
}

impl InputNorms {
    /// `||X_j||_2` for the projection at `module`, or an error naming it when not recorded.
    pub fn norms(&self, module: &str) -> Result<Vec<f32>> {
        self.sq_sums
            .get(module)
            .map(|v| v.iter().map(|s| s.sqrt() as f32).collect())
            .ok_or_else(|| {
                PruneError::module(module, "no calibration statistics for this projection")
            })
    }
}

#[derive(Default)]
struct Acc {
    sq: Option<Tensor>,
    tokens: usize,
}

/// The recording adapter (internal: installed and removed by [`collect_input_norms`]).
struct Recorder {
    acc: Arc<Mutex<Acc>>,
}

impl LinearAdapter for Recorder {
    fn forward(
        &self,
        x: &Tensor,
        base: &Tensor,
        _weight: &Tensor,
        _bias: Option<&Tensor>,
    ) -> CResult<Tensor> {
        let inp = x.dim(candle_core::D::Minus1)?;
        let flat = x.to_dtype(DType::F32)?.reshape(((), inp))?;
        let sq = flat.sqr()?.sum(0)?;
        let mut acc = self
            .acc
            .lock()
            .map_err(|_| candle_core::Error::Msg("calibration recorder lock poisoned".into()))?;
        acc.tokens += flat.dim(0)?;
        acc.sq = Some(match acc.sq.take() {
            Some(s) => (s + sq)?,
            None => sq,
        });
        Ok(base.clone())
    }

    fn spec(&self) -> AdapterSpec {
        AdapterSpec {
            method: Method::Lora,
            rank: 0,
            alpha: 0.0,
            rule: ScalingRule::Fixed(0.0),
        }
    }

    fn vars(&self) -> Vec<(&'static str, Var)> {
        vec![]
    }

    fn set_training(&self, _training: bool) {}

    fn set_dropout_stream(&self, _stream: u64) {}

    fn merged_weight(&self, weight: &Tensor) -> CResult<Tensor> {
        Ok(weight.clone())
    }

    fn unmerged_weight(&self, merged: &Tensor) -> CResult<Tensor> {
        Ok(merged.clone())
    }
}

/// Fail when any projection carries an adapter (pruning works on plain base weights).
pub(crate) fn ensure_no_adapters(model: &Llama) -> Result<()> {
    for (path, l) in model.linears() {
        if l.adapter().is_some() {
            return Err(PruneError::module(
                &path,
                "carries an adapter; prune the base model before attaching adapters",
            ));
        }
    }
    Ok(())
}

/// Run `model` over each calibration sequence (token ids, one forward each) and return the input
/// norms of every projection. The model is left as it was (no adapters).
pub fn collect_input_norms(model: &mut Llama, sequences: &[Vec<u32>]) -> Result<InputNorms> {
    ensure_no_adapters(model)?;
    if sequences.iter().all(|s| s.is_empty()) {
        return Err(PruneError::Calibration("no calibration tokens".into()));
    }
    let mut accs = Vec::new();
    for (path, l) in model.linears_mut() {
        let acc = Arc::new(Mutex::new(Acc::default()));
        l.set_adapter(Some(Box::new(Recorder { acc: acc.clone() })))?;
        accs.push((path, acc));
    }
    let device: Device = model.device().clone();
    let run = || -> Result<()> {
        for s in sequences.iter().filter(|s| !s.is_empty()) {
            let ids = Tensor::from_slice(s, (1, s.len()), &device)?;
            let mask = Tensor::ones((1, s.len()), DType::U32, &device)?;
            model.forward_hidden(&ids, &mask, None)?;
        }
        Ok(())
    };
    let ran = run();
    for (_, l) in model.linears_mut() {
        l.set_adapter(None)?;
    }
    ran?;
    let mut out = InputNorms::default();
    for (path, acc) in accs {
        let acc = acc
            .lock()
            .map_err(|_| PruneError::Calibration("recorder lock poisoned".into()))?;
        let sq = match &acc.sq {
            Some(t) => t.to_vec1::<f32>()?.into_iter().map(f64::from).collect(),
            None => return Err(PruneError::module(&path, "saw no calibration input")),
        };
        out.tokens = acc.tokens;
        out.sq_sums.insert(path, sq);
    }
    Ok(out)
}

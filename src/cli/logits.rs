//! `rora model logits SRC`: the logits of one token sequence on a device, and, with `--compare`,
//! the largest difference from the same model on another device (the GPU-vs-CPU check of
//! `scripts/gpu-check.sh`). Prints one JSON line; fails (exit 1) when the difference exceeds
//! `--tol`.
//!
//! Both sides load the same source with the same dtype; logits are compared in f32. `max_abs_diff`
//! is `max |a - b|` over every position and vocabulary entry, `max_abs_logit` the largest `|b|`
//! for scale.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use clap::Args;
use miette::{IntoDiagnostic, Result, miette};
use serde_json::json;

use super::load::{LoadArgs, load_src, open};
use crate::lm::CausalLm;
use crate::model::{LoadOptions, ModelSource, load};

#[derive(Debug, Args)]
pub struct LogitsArgs {
    /// A .gguf file, an HF model directory, or random:<preset>[,key=value...].
    pub src: String,
    /// Token ids, comma-separated (default: 1..=16, every id taken modulo the vocabulary).
    #[arg(long, value_delimiter = ',')]
    pub tokens: Vec<u32>,
    /// Also run on this device and report the largest logit difference.
    #[arg(long, value_name = "DEVICE")]
    pub compare: Option<String>,
    /// Largest allowed difference with --compare (default: 1e-3 for f32, 2e-2 for bf16/f16).
    #[arg(long)]
    pub tol: Option<f64>,
    /// A PEFT adapter folder (adapter_config.json, adapter_model.safetensors) to install on the
    /// model, unmerged, before computing.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Write the logits (`[seq, vocab]` f32) to this safetensors file as `logits`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Logits `[seq, vocab]` (f32, on the CPU) of `ids` under `model`.
pub fn logits(model: &dyn CausalLm, ids: &[u32]) -> candle_core::Result<Tensor> {
    let dev = model.device();
    let input = Tensor::new(ids, dev)?.unsqueeze(0)?;
    let mask = Tensor::ones((1, ids.len()), DType::U32, dev)?;
    model
        .forward(&input, &mask)?
        .squeeze(0)?
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)
}

/// `max |a - b|` and `max |b|`.
pub fn max_diff(a: &Tensor, b: &Tensor) -> candle_core::Result<(f64, f64)> {
    let d = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let m = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    Ok((f64::from(d), f64::from(m)))
}

/// The default tolerance of a dtype (the numbers: 1e-3 in f32, 2e-2 in bf16).
pub fn default_tol(dtype: DType) -> f64 {
    if dtype == DType::F32 { 1e-3 } else { 2e-2 }
}

pub fn run(a: &LogitsArgs) -> Result<()> {
    // The adapter, unmerged, on each model this command computes with.
    let install = |m: &mut crate::model::LoadedModel| -> Result<()> {
        if let Some(dir) = &a.adapter {
            crate::adapter::load_peft(&mut m.model, dir)
                .map_err(|e| miette!(code = "rora::model::adapter", "{e}"))?;
        }
        Ok(())
    };
    let (source, mut m, _) = load_src(&a.src, &a.load)?;
    install(&mut m)?;
    let vocab = m.model.vocab_size() as u32;
    let ids: Vec<u32> = if a.tokens.is_empty() {
        (1..=16).map(|i| i % vocab).collect()
    } else {
        a.tokens.iter().map(|i| i % vocab).collect()
    };
    let l = logits(&m.model, &ids).into_diagnostic()?;
    if let Some(out) = &a.out {
        let map = std::collections::HashMap::from([("logits".to_string(), l.clone())]);
        candle_core::safetensors::save(&map, out)
            .map_err(|e| miette!("writing {}: {e}", out.display()))?;
    }
    let mut line = json!({
        "src": source.describe(),
        "adapter": a.adapter,
        "device": a.load.device,
        "dtype": a.load.dtype().as_str(),
        "tokens": ids.len(),
        "vocab": vocab,
        "checksum": l.sum_all().and_then(|s| s.to_scalar::<f32>()).into_diagnostic()?,
    });
    let mut failed = None;
    if let Some(other) = &a.compare {
        let opts = LoadOptions {
            dtype: a.load.dtype(),
            device: open(other)?,
        };
        let mut reference =
            load(&ModelSource::parse(&a.src).into_diagnostic()?, &opts).into_diagnostic()?;
        install(&mut reference)?;
        let r = logits(&reference.model, &ids).into_diagnostic()?;
        let (d, scale) = max_diff(&l, &r).into_diagnostic()?;
        let tol = a.tol.unwrap_or_else(|| default_tol(a.load.dtype()));
        line["compare"] = json!(other);
        line["max_abs_diff"] = json!(d);
        line["max_abs_logit"] = json!(scale);
        line["tol"] = json!(tol);
        line["ok"] = json!(d <= tol);
        if d.is_nan() || d > tol {
            failed = Some((d, tol));
        }
    }
    println!("{line}");
    match failed {
        Some((d, tol)) => Err(miette!(
            code = "rora::model::logits",
            "logits on {} and {} differ by {d:e} > {tol:e}",
            a.load.device,
            a.compare.as_deref().unwrap_or("?")
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_diff_and_tolerances() {
        let a = Tensor::new(&[[1.0f32, -2.0], [0.5, 3.0]], &Device::Cpu).expect("tensor");
        let b = Tensor::new(&[[1.0f32, -2.5], [0.5, 3.25]], &Device::Cpu).expect("tensor");
        let (d, m) = max_diff(&a, &b).expect("diff");
        assert_eq!((d, m), (0.5, 3.25));
        assert_eq!(default_tol(DType::F32), 1e-3);
        assert_eq!(default_tol(DType::BF16), 2e-2);
    }
}

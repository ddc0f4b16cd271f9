//! How the model commands (`rora model ...`, `rora model logits`, `rora bench`) load a model and
//! open a device from their flags.

use std::time::Instant;

use candle_core::DType;
use clap::{Args, ValueEnum};
use miette::{IntoDiagnostic, Result, miette};

use crate::model::{LoadOptions, LoadedModel, ModelSource, load};

/// Compute dtype of the base weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadDtype {
    F32,
    Bf16,
    F16,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Dtype of the base weights.
    #[arg(long, value_enum, default_value = "f32", env = "RORA_DTYPE")]
    pub dtype: LoadDtype,
    /// Where to compute: `cpu`, `cuda[:N]` (needs the `cuda` feature) or `auto`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl LoadArgs {
    pub fn dtype(&self) -> DType {
        match self.dtype {
            LoadDtype::F32 => DType::F32,
            LoadDtype::Bf16 => DType::BF16,
            LoadDtype::F16 => DType::F16,
        }
    }

    pub fn options(&self) -> Result<LoadOptions> {
        Ok(LoadOptions {
            dtype: self.dtype(),
            device: open(&self.device)?,
        })
    }
}

/// Open a device named on the command line, with the CLI's error code.
pub fn open(spec: &str) -> Result<candle_core::Device> {
    crate::device::DeviceSpec::parse(spec)
        .and_then(|d| d.open())
        .map_err(|e| miette!(code = "rora::cli::device", "{e}"))
}

pub fn load_src(src: &str, args: &LoadArgs) -> Result<(ModelSource, LoadedModel, f64)> {
    let source = ModelSource::parse(src).into_diagnostic()?;
    let opts = args.options()?;
    let t0 = Instant::now();
    let m = load(&source, &opts).into_diagnostic()?;
    Ok((source, m, t0.elapsed().as_secs_f64()))
}

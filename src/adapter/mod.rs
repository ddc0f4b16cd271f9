//! Adapters on the model's frozen projections: LoRA (`alpha/r`), RoRA (`alpha/sqrt(r)`,
//! PEFT's `use_rslora`), fixed scale, and DoRA with the same scaling choices; and LLM-Adapters'
//! bottleneck adapters (series, parallel; [`bottleneck`]), saved in LLM-Adapters' layout.
//!
//! ```text
//! AdapterConfig --validate--> Matcher --plan(model shapes)--> AttachReport --attach--> adapters on Linears
//!      ^                                                                                  |
//!      +-- load_peft (adapter_config.json + adapter_model.safetensors) <-- save_peft -----+
//! ```
//! Guarantees:
//! - only adapter parameters are `Var`s (f32, f64 on an f64 base); base weights stay plain tensors,
//!   are never copied per adapter, and get no gradient (the base matmul is [`frozen::frozen_linear`]);
//! - a fresh low-rank adapter (`B = 0`) leaves every output unchanged; the scale multiplies only
//!   the delta (a bottleneck with `bert` init does change it, as in LLM-Adapters);
//! - merged forward equals unmerged forward (LoRA `W + sBA`, DoRA `(m/n)(W + sBA)`); a bottleneck
//!   adapter refuses to merge;
//! - names, shapes and config fields on disk are PEFT's, so adapters move both ways;
//! - `attach` either adapts every targeted module or changes nothing.
pub mod attach;
pub mod bottleneck;
pub mod bottleneck_io;
pub mod config;
pub mod dora;
pub mod dropout;
pub mod error;
pub use crate::cpu::{frozen, fused_lora};
pub mod init;
pub mod linear;
pub mod lora;
pub mod lowrank;
pub mod merge;
pub mod params;
pub mod peft_config;
pub mod peft_convert;
pub mod peft_io;
pub mod prefix;
pub mod prefix_io;
pub mod scaling;
pub mod spec;
pub mod torch_bin;

#[cfg(test)]
mod tests;

pub use attach::{
    AdaptableModel, AttachReport, ModulePlan, attach, detach_all, install, peft_key, plan,
    set_dropout_stream, set_training, trainable_vars,
};
pub use config::{AdapterConfig, Matcher, Targets};
pub use error::AdapterError;
pub use init::LoraInit;
pub use linear::{Linear, LinearAdapter};
pub use merge::{merge_all, merge_and_unload, unmerge_all};
pub use params::{ParamCount, llama_base_params};
pub use peft_io::{
    LoadedPeft, SaveOptions, ScaleExport, load_peft, read_adapter_config, read_peft_config,
    save_peft,
};
pub use scaling::ScalingRule;
pub use spec::{AdapterSpec, Method};

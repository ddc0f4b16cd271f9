//! Pruning a loaded [`crate::model::Llama`]: unstructured (magnitude, Wanda, N:M), structured (whole
//! KV groups of heads and FFN channels, giving per-layer dims), and merging adapters into a sparse
//! model without filling its zeros.
//!
//! ```text
//! Llama --(calib: record ||X_j||_2 of every projection's inputs)--> InputNorms
//! Llama + UnstructuredSpec (+ InputNorms for Wanda) --prune_unstructured--> same shapes, zeros set
//! Llama + StructuredSpec (+ InputNorms) --plan_structured--> StructuredPlan --apply_structured--> smaller Llama
//! Llama with adapters --merge_keep_sparsity--> merged weights masked by the base's zero pattern
//! ```
//! Guarantees:
//! - unstructured pruning zeroes exactly `floor(sparsity * n)` entries of each comparison group
//!   (a matrix, an output row, or all projections together), ties broken by position, and
//!   N:M leaves at most `n` nonzeros in every run of `m` consecutive inputs of a row;
//! - structured pruning removes a KV head together with the query heads that read it, keeps at
//!   least one KV group and one FFN channel per layer, and records the new dims in
//!   `LlamaConfig.layers` (saved as `rora_layer_dims` by the HF writer);
//! - nothing here touches a model that carries adapters, except [`merge_keep_sparsity`].
//!
//! Wanda's input norms come from one pass of the unpruned model over the calibration sequences
//! (not Wanda's layer-by-layer pass through already-pruned layers).

pub mod calib;
pub mod error;
pub mod mask;
pub mod merge;
pub mod report;
pub mod structured;
pub mod target;
pub mod unstructured;

#[cfg(test)]
mod tests;

pub use calib::{InputNorms, collect_input_norms};
pub use error::PruneError;
pub use merge::{SparseMergeReport, merge_keep_sparsity};
pub use report::{ModuleSparsity, PruneReport};
pub use structured::{
    Importance, LayerKeep, StructuredPlan, StructuredSpec, apply_structured, plan_structured,
};
pub use target::{predicted_params, ratio_for_target};
pub use unstructured::{Group, Pattern, Score, UnstructuredSpec, prune_unstructured};

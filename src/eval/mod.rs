//! Evaluation on multiple-choice tasks (the eight commonsense benchmarks and user files), under
//! two protocols that are always named in the results:
//!
//! - `llm-adapters` ([`llm_adapters`]): the LLM-Adapters instruction prompt byte for byte, greedy or
//!   beam generation ([`generate`]: batched, left padding, attention masks, KV cache), the first
//!   regex match of the task's label word, exact-match accuracy and the unparseable rate;
//! - `loglik` ([`loglik`]): lm-evaluation-harness style log-likelihood of each choice, acc and acc_norm.
//!
//! [`evaluate`] runs an [`EvalConfig`] on any [`crate::lm::IncrementalLm`] and returns
//! [`EvalResults`], which [`EvalResults::write`] stores as `results.json` plus per-task prediction
//! JSONL files. [`report`] turns a set of runs into tables and plots.

pub mod codec;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod generate;
pub mod llm_adapters;
pub mod loglik;
pub mod report;
pub mod results;
#[cfg(test)]
mod smollm2_tests;
pub mod stats;
pub mod subsample;
pub mod task;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use codec::TextCodec;
pub use config::{EvalConfig, Progress, no_progress};
pub use error::EvalError;
pub use evaluate::{Prepared, Work, evaluate, evaluate_prepared, prepare};
pub use generate::{Generated, GenerationConfig};
pub use results::{EvalResults, EvalSummary, Prediction, Protocol, TaskResult};
pub use task::{McItem, Task, TaskKind};

//! Training: examples and batches, the loop, optimizer, schedules, checkpoints.
//!
//! Entry point: [`train`] over any [`crate::lm::TrainableLm`] and any [`BatchSource`], configured
//! by a [`TrainConfig`]; see `trainer` for what the loop guarantees (token-exact accumulation,
//! exact resume, non-finite loss handling) and `checkpoint` for the on-disk layout.
pub mod adamw;
mod atomic;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dataset_source;
pub mod error;
pub mod grads;
pub mod hooks;
pub mod loss;
pub mod metrics;
pub mod rng;
pub mod schedule;
pub mod source;
pub mod split;
pub mod tensorboard;
mod tensors_io;
pub mod trainer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod toy;

pub use config::{Budget, TrainConfig, TrainKnobs};
pub use dataset_source::DatasetSource;
pub use error::TrainError;
pub use hooks::{Control, NoHooks, ProgressHooks, TrainHooks};
pub use schedule::{Schedule, Warmup};
pub use source::{BatchSource, ExampleSource};
pub use trainer::{TrainSummary, train};

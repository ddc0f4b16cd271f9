//! Data for training: readers (JSONL, JSON arrays, Parquet; `.gz`; files and globs), row schemas
//! (multiple choice, instruction, text, chat), templates (`llm-adapters`, `alpaca`, `chatml`,
//! `raw`, and `model`: the model's own chat template), tokenization with truncation, EOS/BOS and
//! prompt or non-assistant masking, seeded limit / validation split, packing, a serialisable
//! [`TokenizedDataset`], and a resumable [`BatchPlan`].
//!
//! ```text
//! files --read--> JSON records --schema--> Row --template--> Rendered {prompt, completion}
//!                                                            | Rendered::Chat {text, loss ranges}
//!   --tokenize--> Example {input_ids, labels} --limit, split, pack--> TokenizedDataset
//!   --BatchPlan(seed, epoch, cursor)--> indices --TokenizedDataset::collate--> Batch
//! ```
//! Guarantees: every bad input is a [`DataError`] naming the file, the line or row, and the field;
//! the same files, config and seed give the same dataset and the same batches on every machine
//! (ChaCha8 streams, no `std` hashing, files sorted); a saved dataset loads back equal.

pub mod build;
pub mod error;
pub mod mc;
pub mod pack;
mod parquet;
pub mod plan;
pub mod prompts;
pub mod read;
pub mod schema;
pub mod shuffle;
pub mod splits;
pub mod store;
pub mod subsets;
pub mod task;
pub mod template;
pub mod tokenize;

#[cfg(test)]
pub(crate) mod test_tokenizer;

pub use build::{DataConfig, build_dataset, build_from_files};
pub use error::{DataError, Location};
pub use mc::read_mc_file;
pub use plan::{BatchIter, BatchPlan, Cursor, PlanConfig};
pub use read::{FileFormat, resolve_files};
pub use schema::{InstructionRow, McRow, Row, RowSchema};
pub use store::{DatasetMeta, Split, TokenizedDataset};
pub use task::{Task, answer_label, label_set};
pub use template::{Rendered, Template};
pub use tokenize::TokenizeOptions;

#[cfg(test)]
mod tests;

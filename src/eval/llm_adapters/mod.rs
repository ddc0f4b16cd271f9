//! The `llm-adapters` protocol (LLM-Adapters / DoRA commonsense_evaluate.py): the instruction eval
//! prompt, generation, the first regex match of the task's label word, exact-match accuracy, and
//! the unparseable rate on its own.

pub mod extract;
pub mod prompt;
mod protocol;

pub use protocol::run_task;
pub(crate) use protocol::stderr_of;

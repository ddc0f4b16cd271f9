//! Evaluation tasks defined in files: the `task` file kind (its schema in [`spec`], checked by
//! `crate::check::task`), the typed definition and its compiled templates ([`def`]), reading rows
//! through a task's columns ([`rows`]), and the built-in tasks ([`builtin`], the files in
//! `tasks/`). Training's LLM-Adapters instructions and answer words come from the built-in files
//! too, so a prompt exists in one place.

pub mod builtin;
pub mod def;
pub mod names;
pub mod rows;
pub mod spec;
pub mod template;

pub use def::{ChoiceRequest, Compiled, TaskDef};
pub use rows::{McItem, RowError, read_rows};

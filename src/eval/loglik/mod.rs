//! The `loglik` protocol (lm-evaluation-harness style multiple choice): the log-likelihood of each
//! choice's continuation given the task's context; acc = argmax loglik, acc_norm = argmax
//! loglik / characters of the choice.

pub mod prompt;
mod protocol;
pub mod score;
pub mod shared;

pub use protocol::run_task;

#[cfg(test)]
mod tests;

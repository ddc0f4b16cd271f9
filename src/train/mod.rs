//! Training: examples and batches, the loop, optimizer, schedules, checkpoints.
pub mod batch;
pub mod data;

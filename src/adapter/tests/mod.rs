//! Numeric tests of the adapter module against formulas and independent computations.
//! All use alpha != r so a scale bug shows.
mod bottleneck;
mod fixtures;
mod gradcheck;
mod merge;
mod model_level;
mod peft;
mod scaling_analysis;

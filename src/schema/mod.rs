//! The vocabulary of stage schemas: [`KindSpec`] with its properties (stage references), children
//! (options) with argument types, ranges, defaults and docs, and the builders the stage modules
//! declare their specs with. Each kind's spec lives in its module under `crate::stages`; the same
//! specs drive the shape checker, `rora schema [kind]`, typed parameter binding, the cache-key
//! parameters, and the generated files in `schemas/` (drift-tested; `RORA_UPDATE_SCHEMAS=1`
//! rewrites them).

pub mod generate;
pub mod registry;
pub mod types;

pub use registry::{DTYPES, Dtype, MODEL_LIKE, TASKS, TOP_LEVEL};
pub use types::{Args, ChildSpec, Default, Kind, KindSpec, PropSpec, Ty};

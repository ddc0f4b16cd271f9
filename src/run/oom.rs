//! Out-of-memory failures: a stage whose error says the device ran out of memory fails with
//! [`RunError::OutOfMemory`], which carries the planner's estimate for the job and the device's
//! total and free memory at the time of the report. The executor commits nothing for a failed stage.
//!
//! The device's free memory is read after the failed stage's tensors were dropped, so it is not
//! the peak the stage reached; the estimate is the only figure for what the job needs.

use candle_core::Device;

use super::error::RunError;
use crate::device::{DeviceInfo, is_out_of_memory};
use crate::plan::memory::human;
use crate::plan::{Job, Plan};

/// `e` unchanged, unless it is an out-of-memory error: then [`RunError::OutOfMemory`].
pub fn explain(plan: &Plan, job: &Job, device: &Device, e: RunError) -> RunError {
    let cause = e.to_string();
    if !is_out_of_memory(&cause) {
        return e;
    }
    let info = DeviceInfo::query(device);
    let estimate = match crate::stages::get(job.kind).and_then(|k| k.memory(plan, job)) {
        Some(m) => format!(
            "job `{}` was estimated at {} (weights {}, adapters+grads+optimizer {}, activations {})",
            job.label,
            human(m.total),
            human(m.estimate.weights),
            human(m.estimate.adapters + m.estimate.gradients + m.estimate.optimizer),
            human(m.estimate.activations)
        ),
        None => format!("no estimate for job `{}`", job.label),
    };
    let device_mem = match (info.total_bytes, info.free_bytes) {
        (Some(t), Some(f)) => format!("the device has {} ({} free now)", human(t), human(f)),
        (Some(t), None) => format!("the device has {}", human(t)),
        _ => "the device's memory is unknown".to_string(),
    };
    RunError::OutOfMemory {
        device: format!("{} ({})", info.label, info.name),
        detail: format!("{estimate}; {device_mem}; lower the micro-batch or max-len"),
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check_bytes;
    use crate::plan::{DigestMemo, plan};

    const PIPELINE: &str = r#"
model "m" {
    random layers=2 hidden=64 heads=4 kv-heads=2 ffn=128
}
data "d" {
    hub "org/commonsense"
    max-len 128
}
adapter "a" model="m" {
    rank 8
    alpha 16
    targets "q_proj" "v_proj"
}
train "t" adapter="a" data="d" {
    steps 10
    lr 1e-3
}
"#;

    #[test]
    fn out_of_memory_errors_carry_the_estimate_and_others_pass_through() {
        let r = check_bytes("p.kdl", PIPELINE.as_bytes());
        assert!(!r.has_errors(), "{:?}", r.diagnostics);
        let p = plan(&r.pipeline.expect("checked"), &mut DigestMemo::new()).expect("plan");
        let train = p.stage_jobs("t").next().expect("train job");
        let oom = RunError::Tensor(candle_core::Error::Msg(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into(),
        ));
        let e = explain(&p, train, &Device::Cpu, oom);
        let total = crate::stages::train::memory::train_job_memory(&p, train)
            .expect("estimate")
            .total;
        let text = e.to_string();
        assert!(matches!(e, RunError::OutOfMemory { .. }), "{text}");
        assert!(
            text.contains(&format!("estimated at {}", human(total))),
            "{text}"
        );
        assert!(text.contains("CUDA_ERROR_OUT_OF_MEMORY"), "{text}");
        let other = RunError::Plan("something else".into());
        assert!(matches!(
            explain(&p, train, &Device::Cpu, other),
            RunError::Plan(_)
        ));
    }
}

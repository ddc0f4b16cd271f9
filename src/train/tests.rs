//! Loop-level tests on the toy model (`toy.rs`): learning, accumulation, resume, reproducibility,
//! non-finite losses. Kept small (vocab 16, width 16) so the whole file runs in well under a second.

use candle_core::Device;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::batch::{Batch, Example, IGNORE_INDEX};
use super::hooks::{Control, NoHooks, TrainHooks};
use super::metrics::StepMetrics;
use super::toy::ToyLm;
use super::trainer::{FINAL_ADAPTER, micro_step};
use super::*;
use crate::lm::TrainableLm;

const V: usize = 16;

/// Row `i`: a walk through a fixed permutation of the vocabulary (next = 5 * cur + 3 mod 16), so a
/// bigram model can learn it; lengths vary from 4 to 9, the first two tokens are a masked "prompt".
fn rows(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| {
            let len = 4 + i % 6;
            let mut ids = vec![(i % V) as u32];
            for _ in 1..len {
                ids.push((ids[ids.len() - 1] * 5 + 3) % V as u32);
            }
            let labels = ids
                .iter()
                .enumerate()
                .map(|(j, &t)| if j < 2 { IGNORE_INDEX } else { t as i64 })
                .collect();
            Example {
                input_ids: ids,
                labels,
            }
        })
        .collect()
}

fn cfg(steps: usize, batch: usize, micro: usize) -> TrainConfig {
    TrainConfig {
        budget: Budget::MaxSteps(steps),
        batch_size: batch,
        micro_batch_size: micro,
        lr: 0.05,
        warmup: Warmup::Steps(2),
        schedule: Schedule::Linear,
        max_grad_norm: Some(1.0),
        seed: 3,
        ..Default::default()
    }
}

fn losses(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<StepMetrics>(l).ok())
        .filter(|m| m.kind == "train")
        .map(|m| m.loss)
        .collect()
}

#[test]
fn loss_falls_on_a_fixed_batch() {
    let model = ToyLm::new(V, 16, 8, 0.0, 1).unwrap();
    let mut data = ExampleSource::new(rows(4), vec![], 0);
    data.shuffle = false;
    let dir = tempfile::tempdir().unwrap();
    let c = TrainConfig {
        schedule: Schedule::Constant,
        ..cfg(30, 4, 4)
    };
    let s = train(&model, &data, &c, dir.path(), &mut NoHooks).unwrap();
    let l = losses(dir.path());
    assert_eq!(l.len(), 30);
    assert!(l[29] < 0.5 * l[0], "loss {} -> {}", l[0], l[29]);
    assert_eq!(s.steps, 30);
}

#[test]
fn the_toy_model_overfits_16_rows_and_reports_validation_loss() {
    let model = ToyLm::new(V, 16, 8, 0.0, 2).unwrap();
    let data = ExampleSource::new(rows(16), rows(4), 0);
    let dir = tempfile::tempdir().unwrap();
    let c = TrainConfig {
        budget: Budget::Epochs(40),
        eval_every: Some(20),
        lr: 0.05,
        ..cfg(0, 4, 2)
    };
    let s = train(&model, &data, &c, dir.path(), &mut NoHooks).unwrap();
    assert_eq!(s.steps, 160);
    let l = losses(dir.path());
    let (first, last) = (l[0], s.final_loss.unwrap());
    // ln(16) = 2.77 is chance level; the rows are a deterministic walk, so the loss can go near 0
    assert!(last < 0.1 * first && last < 0.25, "loss {first} -> {last}");
    // the validation rows follow the same walk
    assert!(
        s.final_val_loss.unwrap() < 0.3,
        "val loss {:?}",
        s.final_val_loss
    );
    assert!((s.epochs - 40.0).abs() < 1e-9);
}

/// Gradients of one batch of 8 against 4 accumulated micro-batches of 2 (rows of different
/// lengths and loss-token counts, so per-micro-batch averaging would differ).
#[test]
fn accumulating_4_micro_batches_equals_one_batch_of_4x() {
    let examples = rows(8);
    let refs: Vec<&Example> = examples.iter().collect();
    let dev = Device::Cpu;
    let model = ToyLm::new(V, 16, 8, 0.0, 4).unwrap();
    // a non-zero B so that A's gradient is non-zero too
    let vars = model.trainable_vars();
    vars[1]
        .1
        .set(
            &vars[1]
                .1
                .as_tensor()
                .ones_like()
                .unwrap()
                .affine(0.3, 0.0)
                .unwrap(),
        )
        .unwrap();
    let full = Batch::collate(&refs, 0, &dev).unwrap();
    let tokens = loss::count_loss_tokens(&full.labels).unwrap();
    let sizes: Vec<usize> = vars.iter().map(|(_, v)| v.elem_count()).collect();
    let zeros = || -> Vec<Vec<f32>> { sizes.iter().map(|&n| vec![0.0; n]).collect() };
    let mut one = zeros();
    let knobs = crate::train::TrainKnobs::default();
    let loss_one = micro_step(&model, &full, tokens, &vars, &mut one, 1, &knobs).unwrap();
    let mut four = zeros();
    let mut loss_four = 0.0;
    for chunk in refs.chunks(2) {
        let b = Batch::collate(chunk, 0, &dev).unwrap();
        loss_four += micro_step(&model, &b, tokens, &vars, &mut four, 1, &knobs).unwrap();
    }
    assert!(
        (loss_one - loss_four).abs() < 1e-4 * loss_one.abs(),
        "{loss_one} vs {loss_four}"
    );
    let max_diff = one
        .iter()
        .flatten()
        .zip(four.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let max_abs = one.iter().flatten().map(|a| a.abs()).fold(0f32, f32::max);
    assert!(max_abs > 1e-3, "gradients too small to compare: {max_abs}");
    assert!(max_diff < 1e-5, "max gradient difference {max_diff}");

    // and through the whole loop (no clipping, no dropout): same adapter after 3 steps
    let data = || {
        let mut d = ExampleSource::new(rows(24), vec![], 0);
        d.shuffle = false;
        d
    };
    let run = |micro| {
        let m = ToyLm::new(V, 16, 8, 0.0, 4).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let c = TrainConfig {
            max_grad_norm: None,
            ..cfg(3, 8, micro)
        };
        train(&m, &data(), &c, dir.path(), &mut NoHooks).unwrap();
        m.trainable_vars()
            .iter()
            .flat_map(|(_, v)| {
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect::<Vec<f32>>()
    };
    let (a, b) = (run(8), run(2));
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-5, "adapters differ by {diff}");
}

/// Stops the run after `at` steps, like a crash (no final checkpoint, no final adapter).
struct CrashAt(usize);
impl TrainHooks for CrashAt {
    fn on_step(&mut self, m: &StepMetrics) -> Control {
        if m.step == self.at() {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}
impl CrashAt {
    fn at(&self) -> usize {
        self.0
    }
}

fn resume_cfg() -> TrainConfig {
    TrainConfig {
        save_every: Some(4),
        eval_every: Some(5),
        ..cfg(14, 4, 2)
    }
}

fn resume_data() -> ExampleSource {
    ExampleSource::new(rows(10), rows(3), 0)
}

#[test]
fn a_crashed_run_resumes_to_the_same_adapter_bytes() {
    let (c, data) = (resume_cfg(), resume_data());
    let whole = tempfile::tempdir().unwrap();
    // dropout 0.1: the resumed run must also draw the same dropout masks
    let s = train(
        &ToyLm::new(V, 16, 8, 0.1, 5).unwrap(),
        &data,
        &c,
        whole.path(),
        &mut NoHooks,
    )
    .unwrap();
    assert_eq!(s.resumed_from, None);

    let broken = tempfile::tempdir().unwrap();
    let err = train(
        &ToyLm::new(V, 16, 8, 0.1, 5).unwrap(),
        &data,
        &c,
        broken.path(),
        &mut CrashAt(10),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Stopped { step: 10 }), "{err}");
    assert!(!broken.path().join(FINAL_ADAPTER).exists());
    // a fresh model (as after a restart) picks up the newest checkpoint: step 8
    let s = train(
        &ToyLm::new(V, 16, 8, 0.1, 5).unwrap(),
        &data,
        &c,
        broken.path(),
        &mut NoHooks,
    )
    .unwrap();
    assert_eq!(s.resumed_from, Some(8));
    let bytes = |d: &Path| std::fs::read(d.join(FINAL_ADAPTER)).unwrap();
    assert_eq!(bytes(whole.path()), bytes(broken.path()));
    assert_eq!(losses(whole.path()), losses(broken.path()));
    // only the newest `keep_checkpoints` (2) remain
    let kept: Vec<usize> = checkpoint::list(&broken.path().join("checkpoints"))
        .unwrap()
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(kept, vec![8, 12]);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let data = resume_data();
    let run = |seed| {
        let dir = tempfile::tempdir().unwrap();
        let c = TrainConfig {
            seed,
            ..resume_cfg()
        };
        train(
            &ToyLm::new(V, 16, 8, 0.1, 5).unwrap(),
            &data,
            &c,
            dir.path(),
            &mut NoHooks,
        )
        .unwrap();
        std::fs::read(dir.path().join(FINAL_ADAPTER)).unwrap()
    };
    let a = run(1);
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
}

#[test]
fn a_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint() {
    let mut model = ToyLm::new(V, 16, 8, 0.0, 6).unwrap();
    // 10 rows in micro-batches of 2, two per step: steps take 2, 2, 1 micro-batches per epoch, so
    // forward calls 0..8 are steps 1-5 and the first call of step 6 is NaN
    model.nan_from_forward = Some(9);
    let dir = tempfile::tempdir().unwrap();
    let c = TrainConfig {
        save_every: Some(2),
        ..cfg(10, 4, 2)
    };
    let err = train(&model, &resume_data(), &c, dir.path(), &mut NoHooks).unwrap_err();
    assert!(
        matches!(err, TrainError::NonFiniteLoss { step: 6, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("at step 6"), "{err}");
    let latest = checkpoint::latest(&dir.path().join("checkpoints"))
        .unwrap()
        .unwrap();
    assert!(latest.ends_with("step-00000004"), "{latest:?}");
    assert!(!dir.path().join(FINAL_ADAPTER).exists());
}

#[test]
fn a_variable_without_gradient_is_an_error_naming_it() {
    let mut model = ToyLm::new(V, 16, 8, 0.0, 7).unwrap();
    let t = candle_core::Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap();
    model.unused = Some(candle_core::Var::from_tensor(&t).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let err = train(
        &model,
        &resume_data(),
        &cfg(2, 4, 4),
        dir.path(),
        &mut NoHooks,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("base_model.model.unused.lora_A.weight"),
        "{err}"
    );
}

#[test]
fn a_checkpoint_of_another_config_is_refused() {
    let data = resume_data();
    let dir = tempfile::tempdir().unwrap();
    let _ = train(
        &ToyLm::new(V, 16, 8, 0.0, 5).unwrap(),
        &data,
        &resume_cfg(),
        dir.path(),
        &mut CrashAt(5),
    );
    let other = TrainConfig {
        lr: 0.01,
        ..resume_cfg()
    };
    let err = train(
        &ToyLm::new(V, 16, 8, 0.0, 5).unwrap(),
        &data,
        &other,
        dir.path(),
        &mut NoHooks,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("different training config"),
        "{err}"
    );
}

/// Hooks of the child process in the SIGKILL test: slow steps so the parent can kill mid-run.
struct Slow;
impl TrainHooks for Slow {
    fn on_step(&mut self, _: &StepMetrics) -> Control {
        std::thread::sleep(Duration::from_millis(40));
        Control::Continue
    }
}

const CHILD_ENV: &str = "RORA_TRAIN_SIGKILL_CHILD_DIR";

fn sigkill_cfg() -> TrainConfig {
    TrainConfig {
        save_every: Some(3),
        ..cfg(60, 4, 2)
    }
}

/// Not a test on its own: the child half of `a_run_killed_with_sigkill_resumes_exactly`.
#[test]
fn sigkill_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let model = ToyLm::new(V, 16, 8, 0.1, 9).unwrap();
    let _ = train(
        &model,
        &resume_data(),
        &sigkill_cfg(),
        Path::new(&dir),
        &mut Slow,
    );
}

#[test]
fn a_run_killed_with_sigkill_resumes_exactly() {
    let whole = tempfile::tempdir().unwrap();
    train(
        &ToyLm::new(V, 16, 8, 0.1, 9).unwrap(),
        &resume_data(),
        &sigkill_cfg(),
        whole.path(),
        &mut NoHooks,
    )
    .unwrap();
    let killed = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "train::tests::sigkill_child_entry",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_ENV, killed.path())
        .env("RAYON_NUM_THREADS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ckpts = killed.path().join("checkpoints");
    let start = Instant::now();
    while checkpoint::list(&ckpts)
        .unwrap()
        .last()
        .is_none_or(|c| c.0 < 9)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "child made no checkpoint"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(
        !killed.path().join(FINAL_ADAPTER).exists(),
        "the child finished before it was killed"
    );
    let s = train(
        &ToyLm::new(V, 16, 8, 0.1, 9).unwrap(),
        &resume_data(),
        &sigkill_cfg(),
        killed.path(),
        &mut NoHooks,
    )
    .unwrap();
    assert!(
        s.resumed_from.is_some_and(|k| (9..60).contains(&k)),
        "{:?}",
        s.resumed_from
    );
    let bytes = |d: &Path| std::fs::read(d.join(FINAL_ADAPTER)).unwrap();
    assert_eq!(bytes(whole.path()), bytes(killed.path()));
}

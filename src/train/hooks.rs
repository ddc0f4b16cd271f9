//! Progress hooks: how the loop reports to its caller (a progress bar, the executor's events,
//! a test that wants to stop a run mid-way).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::Path;

use super::metrics::{EvalMetrics, StepMetrics};

/// What the loop does after a hook saw a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Stop now, without a final checkpoint (the run ends with `TrainError::Stopped`).
    Stop,
}

pub trait TrainHooks {
    /// Called once; `start_step` > 0 when the run resumed from a checkpoint.
    fn on_start(&mut self, _total_steps: usize, _start_step: usize) {}
    fn on_step(&mut self, _m: &StepMetrics) -> Control {
        Control::Continue
    }
    fn on_eval(&mut self, _m: &EvalMetrics) {}
    fn on_checkpoint(&mut self, _step: usize, _dir: &Path) {}
    fn on_finish(&mut self) {}
}

/// Hooks that do nothing.
pub struct NoHooks;
impl TrainHooks for NoHooks {}

/// An indicatif bar on stderr with ETA, loss and learning rate; invisible when stderr is not a
/// terminal (indicatif hides it), and under `hidden()`.
pub struct ProgressHooks {
    bar: ProgressBar,
    log_every: usize,
}

impl ProgressHooks {
    pub fn stderr(log_every: usize) -> Self {
        Self::with_target(ProgressDrawTarget::stderr(), log_every)
    }

    pub fn hidden() -> Self {
        Self::with_target(ProgressDrawTarget::hidden(), 1)
    }

    fn with_target(target: ProgressDrawTarget, log_every: usize) -> Self {
        let bar = ProgressBar::with_draw_target(None, target);
        let style = ProgressStyle::with_template(
            "{spinner} train [{bar:30}] {pos}/{len} steps {elapsed}<{eta} {msg}",
        );
        if let Ok(style) = style {
            bar.set_style(style.progress_chars("=> "));
        }
        Self {
            bar,
            log_every: log_every.max(1),
        }
    }
}

impl TrainHooks for ProgressHooks {
    fn on_start(&mut self, total_steps: usize, start_step: usize) {
        self.bar.set_length(total_steps as u64);
        self.bar.set_position(start_step as u64);
        self.bar.reset_eta();
    }

    fn on_step(&mut self, m: &StepMetrics) -> Control {
        self.bar.set_position(m.step as u64);
        if m.step.is_multiple_of(self.log_every) || m.step == m.total_steps {
            self.bar.set_message(format!(
                "loss {:.4} lr {:.2e} {:.0} tok/s",
                m.loss, m.lr, m.tokens_per_s
            ));
        }
        Control::Continue
    }

    fn on_eval(&mut self, m: &EvalMetrics) {
        self.bar
            .println(format!("step {}: val loss {:.4}", m.step, m.val_loss));
    }

    fn on_finish(&mut self) {
        self.bar.finish();
    }
}

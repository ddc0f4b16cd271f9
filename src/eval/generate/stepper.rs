//! One decoding step for a set of rows that each extend a row of the previous step.
//!
//! Rows share a left-padded prompt width and grow by one token per step, so a row's attention
//! mask is its prompt's padding mask followed by ones. With the KV cache, only the new tokens are
//! fed; when rows are rearranged (beam search) the cache is reordered, and if the model cannot do
//! that the stepper drops the cache and recomputes every row from its full sequence.

use candle_core::Tensor;

use crate::eval::error::{EvalError, Result};
use crate::lm::IncrementalLm;

#[derive(Clone)]
struct Row {
    prompt: usize,
    generated: Vec<u32>,
}

pub(super) struct Stepper<'a, M: IncrementalLm> {
    model: &'a M,
    prompts: &'a [Vec<u32>],
    pad_id: u32,
    width: usize,
    rows: Vec<Row>,
    cache: Option<M::Cache>,
}

impl<'a, M: IncrementalLm> Stepper<'a, M> {
    /// Run the prompts (one row each); returns the logits after each prompt's last token.
    pub(super) fn start(
        model: &'a M,
        prompts: &'a [Vec<u32>],
        pad_id: u32,
    ) -> Result<(Self, Vec<Vec<f32>>)> {
        let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
        if prompts.iter().any(Vec::is_empty) {
            return Err(EvalError::Config(
                "generation needs a non-empty prompt for every row".into(),
            ));
        }
        let rows: Vec<Row> = (0..prompts.len())
            .map(|p| Row {
                prompt: p,
                generated: Vec::new(),
            })
            .collect();
        let mut cache = model
            .new_cache(rows.len())
            .map_err(EvalError::model("new_cache"))?;
        let mut me = Self {
            model,
            prompts,
            pad_id,
            width,
            rows,
            cache: None,
        };
        let (ids, mask) = me.padded(width, 0, true);
        let shape = (me.rows.len(), width);
        let ids =
            Tensor::from_vec(ids, shape, model.device()).map_err(EvalError::model("prompt ids"))?;
        let mask = Tensor::from_vec(mask, shape, model.device())
            .map_err(EvalError::model("prompt mask"))?;
        let logits = model
            .forward_step_last(&ids, &mask, &mut cache, 1)
            .map_err(EvalError::model("prompt forward"))?;
        me.cache = Some(cache);
        Ok((me, last_position(&logits)?))
    }

    /// Row `i` becomes row `src[i]` extended by `tokens[i]`; returns each row's next logits.
    pub(super) fn step(&mut self, src: &[usize], tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        let identity = src.len() == self.rows.len() && src.iter().enumerate().all(|(i, &s)| i == s);
        self.rows = src
            .iter()
            .zip(tokens)
            .map(|(&s, &t)| {
                let mut r = self.rows[s].clone();
                r.generated.push(t);
                r
            })
            .collect();
        if !identity && let Some(cache) = self.cache.as_mut() {
            let idx: Vec<u32> = src.iter().map(|&s| s as u32).collect();
            if !self
                .model
                .reorder_cache(cache, &idx)
                .map_err(EvalError::model("reorder_cache"))?
            {
                self.cache = None;
            }
        }
        let steps = self.rows[0].generated.len();
        let device = self.model.device();
        if let Some(mut cache) = self.cache.take() {
            let (_, mask) = self.padded(self.width, steps, false);
            let new = Tensor::from_vec(tokens.to_vec(), (tokens.len(), 1), device)
                .map_err(EvalError::model("step input"))?;
            let mask = Tensor::from_vec(mask, (self.rows.len(), self.width + steps), device)
                .map_err(EvalError::model("step mask"))?;
            let logits = self
                .model
                .forward_step(&new, &mask, &mut cache)
                .map_err(EvalError::model("decode step"))?;
            self.cache = Some(cache);
            return last_position(&logits);
        }
        let width = self
            .rows
            .iter()
            .map(|r| self.prompts[r.prompt].len())
            .max()
            .unwrap_or(0);
        let (ids, mask) = self.padded(width, steps, true);
        let shape = (self.rows.len(), width + steps);
        let ids =
            Tensor::from_vec(ids, shape, device).map_err(EvalError::model("recompute ids"))?;
        let mask =
            Tensor::from_vec(mask, shape, device).map_err(EvalError::model("recompute mask"))?;
        let logits = self
            .model
            .forward(&ids, &mask)
            .map_err(EvalError::model("recompute step"))?;
        last_position(&logits)
    }

    /// Left-padded `[rows, width + steps]` ids (empty unless `with_ids`) and mask, row-major.
    fn padded(&self, width: usize, steps: usize, with_ids: bool) -> (Vec<u32>, Vec<u32>) {
        let t = width + steps;
        let mut ids = Vec::with_capacity(if with_ids { self.rows.len() * t } else { 0 });
        let mut mask = Vec::with_capacity(self.rows.len() * t);
        for r in &self.rows {
            let p = &self.prompts[r.prompt];
            let pad = width - p.len();
            if with_ids {
                ids.extend(std::iter::repeat_n(self.pad_id, pad));
                ids.extend_from_slice(p);
                ids.extend_from_slice(&r.generated);
            }
            mask.extend(std::iter::repeat_n(0u32, pad));
            mask.extend(std::iter::repeat_n(1u32, p.len() + r.generated.len()));
        }
        (ids, mask)
    }
}
/// Logits of the last position of `[b, t, vocab]`, as host rows of f32.
fn last_position(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let get = || -> candle_core::Result<Vec<Vec<f32>>> {
        let t = logits.dim(1)?;
        logits
            .narrow(1, t - 1, 1)?
            .squeeze(1)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec2::<f32>()
    };
    get().map_err(EvalError::model("reading logits"))
}

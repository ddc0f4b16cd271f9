//! Greedy decoding: each row takes its first maximal logit until EOS or the token budget.

use super::Generated;
use super::math::argmax;
use super::stepper::Stepper;
use crate::eval::error::Result;
use crate::lm::IncrementalLm;

pub(super) fn greedy<M: IncrementalLm>(
    model: &M,
    prompts: &[Vec<u32>],
    eos_ids: &[u32],
    pad_id: u32,
    max_new_tokens: usize,
) -> Result<Vec<Generated>> {
    let b = prompts.len();
    let mut out = vec![Generated::default(); b];
    if max_new_tokens == 0 {
        return Ok(out);
    }
    let (mut stepper, mut logits) = Stepper::start(model, prompts, pad_id)?;
    let identity: Vec<usize> = (0..b).collect();
    for step in 0..max_new_tokens {
        let mut next = vec![pad_id; b];
        for (row, g) in out.iter_mut().enumerate() {
            if g.finished {
                continue;
            }
            let tok = argmax(&logits[row]);
            if eos_ids.contains(&tok) {
                g.finished = true;
            } else {
                g.tokens.push(tok);
                next[row] = tok;
            }
        }
        if step + 1 == max_new_tokens || out.iter().all(|g| g.finished) {
            break;
        }
        logits = stepper.step(&identity, &next)?;
    }
    Ok(out)
}

//! Beam search in the manner of Hugging Face's `BeamSearchScorer` (`do_sample=False`,
//! `early_stopping=False`), batched over prompts with `num_beams` rows each.
//!
//! Per step and prompt: candidates are the `2 * num_beams` best `(beam, token)` pairs by cumulative
//! log-probability; an end-of-sequence candidate ranked within the first `num_beams` becomes a
//! finished hypothesis (score `sum_logprobs / len^length_penalty`, `len` counting the generated tokens
//! and the EOS); the first `num_beams` other candidates continue. A prompt is done once it holds
//! `num_beams` hypotheses and the best running beam can no longer beat the worst of them. At the
//! token budget, running beams join the hypotheses. The best hypothesis is returned.
//!
//! Differences from HF: HF (4.3x-4.4x) divides by the length before the EOS and varies that choice
//! across versions; we count the EOS so the first step never divides by zero.

use super::math::{log_softmax, top_k};
use super::stepper::Stepper;
use super::{Generated, GenerationConfig};
use crate::eval::error::Result;
use crate::lm::IncrementalLm;

#[derive(Clone)]
struct Beam {
    tokens: Vec<u32>,
    sum_logprobs: f64,
}

struct Hyp {
    tokens: Vec<u32>,
    score: f64,
    finished: bool,
}

/// The finished hypotheses of one prompt, at most `num_beams`, with its running beams.
struct PromptState {
    hyps: Vec<Hyp>,
    beams: Vec<Beam>,
    done: bool,
}

impl PromptState {
    fn add(&mut self, hyp: Hyp, capacity: usize) {
        if self.hyps.len() < capacity || hyp.score > self.worst() {
            self.hyps.push(hyp);
            if self.hyps.len() > capacity {
                let worst = (0..self.hyps.len())
                    .min_by(|&a, &b| self.hyps[a].score.total_cmp(&self.hyps[b].score))
                    .unwrap_or(0);
                self.hyps.remove(worst);
            }
        }
    }

    fn worst(&self) -> f64 {
        self.hyps
            .iter()
            .map(|h| h.score)
            .fold(f64::INFINITY, f64::min)
    }
}

pub(super) fn beam_search<M: IncrementalLm>(
    model: &M,
    prompts: &[Vec<u32>],
    eos_ids: &[u32],
    pad_id: u32,
    cfg: &GenerationConfig,
) -> Result<Vec<Generated>> {
    let nb = cfg.num_beams;
    let lp = cfg.length_penalty;
    let b = prompts.len();
    if cfg.max_new_tokens == 0 {
        return Ok(vec![Generated::default(); b]);
    }
    let (mut stepper, mut logits) = Stepper::start(model, prompts, pad_id)?;
    let mut states: Vec<PromptState> = (0..b)
        .map(|_| PromptState {
            hyps: Vec::new(),
            beams: vec![Beam {
                tokens: Vec::new(),
                sum_logprobs: 0.0,
            }],
            done: false,
        })
        .collect();
    // Rows of the current logits that belong to prompt p: `rows_of[p]` (one row before the first step).
    let mut rows_of: Vec<Vec<usize>> = (0..b).map(|p| vec![p]).collect();
    for cur_len in 0..cfg.max_new_tokens {
        let mut src = Vec::with_capacity(b * nb);
        let mut next = Vec::with_capacity(b * nb);
        for (p, st) in states.iter_mut().enumerate() {
            let rows = &rows_of[p];
            if st.done {
                // Keep the rows busy with padding; their output is never read.
                src.extend(rows.iter().copied().cycle().take(nb));
                next.extend(std::iter::repeat_n(pad_id, nb));
                continue;
            }
            let vocab = logits[rows[0]].len();
            let mut scores = Vec::with_capacity(rows.len() * vocab);
            for (beam, &row) in st.beams.iter().zip(rows) {
                scores.extend(
                    log_softmax(&logits[row])
                        .into_iter()
                        .map(|l| l + beam.sum_logprobs),
                );
            }
            let mut continuing: Vec<(usize, u32, f64)> = Vec::with_capacity(nb);
            for (rank, (score, flat)) in top_k(&scores, 2 * nb).into_iter().enumerate() {
                let (beam, tok) = (flat / vocab, (flat % vocab) as u32);
                if eos_ids.contains(&tok) {
                    if rank < nb {
                        let tokens = st.beams[beam].tokens.clone();
                        let len = (cur_len + 1) as f64;
                        st.add(
                            Hyp {
                                tokens,
                                score: score / len.powf(lp),
                                finished: true,
                            },
                            nb,
                        );
                    }
                } else {
                    continuing.push((beam, tok, score));
                }
                if continuing.len() == nb {
                    break;
                }
            }
            let best_running = continuing.first().map(|c| c.2).unwrap_or(f64::NEG_INFINITY);
            let attainable = best_running / ((cur_len + 1) as f64).powf(lp);
            st.done = st.hyps.len() >= nb && st.worst() >= attainable;
            st.beams = continuing
                .iter()
                .map(|&(beam, tok, score)| {
                    let mut tokens = st.beams[beam].tokens.clone();
                    tokens.push(tok);
                    Beam {
                        tokens,
                        sum_logprobs: score,
                    }
                })
                .collect();
            // Fewer continuations than beams happens only with a tiny vocabulary; repeat the last.
            let fill = continuing.last().copied();
            for i in 0..nb {
                match continuing.get(i).copied().or(fill) {
                    Some((beam, tok, _)) => {
                        src.push(rows[beam]);
                        next.push(tok);
                    }
                    None => {
                        src.push(rows[0]);
                        next.push(pad_id);
                    }
                }
            }
            if st.beams.is_empty() {
                st.done = true;
            }
        }
        rows_of = (0..b).map(|p| (p * nb..(p + 1) * nb).collect()).collect();
        if states.iter().all(|s| s.done) || cur_len + 1 == cfg.max_new_tokens {
            break;
        }
        logits = stepper.step(&src, &next)?;
    }
    Ok(states
        .into_iter()
        .map(|mut st| {
            if !st.done {
                let beams = std::mem::take(&mut st.beams);
                for beam in beams {
                    let len = beam.tokens.len().max(1) as f64;
                    st.add(
                        Hyp {
                            score: beam.sum_logprobs / len.powf(lp),
                            tokens: beam.tokens,
                            finished: false,
                        },
                        nb,
                    );
                }
            }
            let best = st
                .hyps
                .into_iter()
                .max_by(|a, b| a.score.total_cmp(&b.score));
            best.map(|h| Generated {
                tokens: h.tokens,
                finished: h.finished,
            })
            .unwrap_or_default()
        })
        .collect())
}

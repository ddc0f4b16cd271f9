use super::math::{argmax, log_softmax};
use super::*;
use crate::eval::testing::{EOS, PAD, ToyLm};

fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![5, 9, 12, 40],
        vec![3],
        vec![7, 7, 7, 7, 7, 7, 7, 8],
        vec![100, 1, 2],
    ]
}

/// Greedy decoding written directly from the toy's definition (no batching, no cache).
fn reference_greedy(lm: &ToyLm, prompt: &[u32], max_new: usize) -> Generated {
    let mut seq = prompt.to_vec();
    let mut g = Generated::default();
    for _ in 0..max_new {
        let t = argmax(&lm.logits_for(&seq));
        if t == EOS {
            g.finished = true;
            break;
        }
        g.tokens.push(t);
        seq.push(t);
    }
    g
}

fn greedy_cfg(max_new: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: max_new,
        num_beams: 1,
        length_penalty: 1.0,
    }
}

#[test]
fn greedy_batched_equals_single_and_hand_reference() {
    let lm = ToyLm::new(259);
    let ps = prompts();
    let batched = generate(&lm, &ps, &[EOS], PAD, &greedy_cfg(12)).unwrap();
    for (p, got) in ps.iter().zip(&batched) {
        let single = generate(&lm, std::slice::from_ref(p), &[EOS], PAD, &greedy_cfg(12)).unwrap();
        assert_eq!(&single[0], got);
        assert_eq!(*got, reference_greedy(&lm, p, 12));
    }
    // The toy ends some rows early and not others, so padding of finished rows is exercised.
    assert!(
        batched.iter().any(|g| g.finished) && batched.iter().any(|g| !g.finished),
        "{batched:?}"
    );
}

#[test]
fn greedy_feeds_only_new_tokens_through_the_cache() {
    let lm = ToyLm::new(259);
    let ps = vec![vec![1u32, 2, 3, 4, 5, 6], vec![9u32, 8]];
    let out = generate(&lm, &ps, &[], PAD, &greedy_cfg(5)).unwrap();
    assert!(out.iter().all(|g| g.tokens.len() == 5));
    // One prompt pass over [2, 6] positions, then 4 single-token steps for 2 rows.
    assert_eq!(lm.positions.get(), 2 * 6 + 4 * 2);
}

fn beam_cfg(nb: usize, max_new: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: max_new,
        num_beams: nb,
        length_penalty: 1.0,
    }
}

#[test]
fn beam_batched_equals_single_and_cache_equals_recompute() {
    let lm = ToyLm::new(259);
    let mut no_reorder = ToyLm::new(259);
    no_reorder.reorder = false;
    let ps = prompts();
    let cfg = beam_cfg(4, 10);
    let batched = generate(&lm, &ps, &[EOS], PAD, &cfg).unwrap();
    let recomputed = generate(&no_reorder, &ps, &[EOS], PAD, &cfg).unwrap();
    assert_eq!(batched, recomputed);
    for (p, got) in ps.iter().zip(&batched) {
        let single = generate(&lm, std::slice::from_ref(p), &[EOS], PAD, &cfg).unwrap();
        assert_eq!(&single[0], got);
    }
    assert!(batched.iter().all(|g| !g.tokens.is_empty() || g.finished));
}

/// With as many beams as tokens, two steps of beam search are exhaustive: the result is the
/// two-token continuation with the highest summed log-probability (brute force over 12^2).
#[test]
fn beam_search_is_exhaustive_with_vocab_many_beams() {
    let lm = ToyLm::new(12);
    let mut greedy_missed = 0;
    for k in 0..40u32 {
        let prompt = vec![k, 1, 4];
        let got = generate(
            &lm,
            std::slice::from_ref(&prompt),
            &[],
            PAD,
            &beam_cfg(12, 2),
        )
        .unwrap();
        let first = log_softmax(&lm.logits_for(&prompt));
        let mut best = (f64::NEG_INFINITY, vec![]);
        for a in 0..12u32 {
            let mut seq = prompt.clone();
            seq.push(a);
            let second = log_softmax(&lm.logits_for(&seq));
            for b in 0..12u32 {
                let s = first[a as usize] + second[b as usize];
                if s > best.0 {
                    best = (s, vec![a, b]);
                }
            }
        }
        assert_eq!(got[0].tokens, best.1, "prompt {prompt:?}");
        let greedy =
            generate(&lm, std::slice::from_ref(&prompt), &[], PAD, &greedy_cfg(2)).unwrap();
        greedy_missed += (greedy[0].tokens != best.1) as usize;
    }
    // Otherwise this test would not show beam search doing anything greedy does not.
    assert!(greedy_missed > 0);
}

//! Context-shared scoring against independent scoring: exactly equal on the toy model (whose
//! logits are a pure function of the real prefix, so any cache, padding or position mistake
//! changes them), within 1e-5 relative on a tiny random LLaMA (float rounding of other matmul shapes).

use candle_core::{DType, Device};

use super::score::{EncodedRequest, score_requests};
use super::shared::score_requests_shared;
use crate::eval::testing::{EOS, PAD, ToyLm};
use crate::model::Llama;
use crate::model::random::{RandomSpec, random_tensors};

fn req(context: &[u32], continuation: &[u32]) -> EncodedRequest {
    EncodedRequest {
        context: context.to_vec(),
        continuation: continuation.to_vec(),
    }
}

/// Items with 2-4 choices sharing a context of varying length, single-token continuations
/// (BoolQ-like), winogrande-like distinct contexts with a shared continuation, an empty
/// continuation, and one request long enough for `max_len = 12` to truncate.
fn requests() -> Vec<EncodedRequest> {
    let c1 = [10, 20, 30, 40, 50, 60];
    let c2 = [7, 8];
    let c3 = [100, 101, 102, 103];
    vec![
        req(&c1, &[1, 2, 3]),
        req(&c1, &[4]),
        req(&c2, &[9, 9, 9, 9, 9]),
        req(&c3, &[200]),
        req(&c2, &[11, 12]),
        req(&c3, &[201]),
        req(&[70, 71, 72], &[5, 6, 7]),
        req(&[70, 73], &[5, 6, 7]),
        req(&c2, &[13]),
        req(&c2, &[14, 15, 16, 17]),
        req(&c1, &[]),
        req(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], &[12, 13, 14]),
        req(&c1, &[18, 19, 21, 22, 23, 24]),
    ]
}

#[test]
fn shared_equals_independent_on_the_toy_model() {
    let reqs = requests();
    for packed in [true, false] {
        for batch in [1, 2, 3, 8, 64] {
            let mut lm = ToyLm::new(260);
            lm.packed = packed;
            let want = score_requests(&lm, &reqs, batch, 12, PAD).unwrap();
            let independent = lm.positions.get();
            lm.positions.set(0);
            let got = score_requests_shared(&lm, &reqs, batch, 12, PAD).unwrap();
            assert_eq!(got, want, "batch {batch}, packed {packed}");
            if packed {
                // Each context once: fewer positions than running every context once per choice.
                assert!(
                    lm.positions.get() < independent,
                    "{} positions shared vs {independent} independent",
                    lm.positions.get()
                );
            }
        }
    }
    // Truncation still applies: the long request scores against the tail of its context.
    let lm = ToyLm::new(260);
    let cut = score_requests_shared(&lm, &reqs[11..12], 4, 4, PAD).unwrap();
    assert_eq!(cut, score_requests(&lm, &reqs[11..12], 4, 4, PAD).unwrap());
    assert_ne!(cut, score_requests(&lm, &reqs[11..12], 4, 12, PAD).unwrap());
    // Tokens outside the vocabulary are an error, not a panic.
    let bad = [req(&[1, 2], &[EOS + 100, 1])];
    assert!(score_requests_shared(&lm, &bad, 4, 12, PAD).is_err());
}

#[test]
fn shared_equals_independent_on_a_tiny_llama_with_padding() {
    // std 0.5 so the logits are far from uniform and scores differ between positions.
    let mut spec = RandomSpec::tiny(31);
    spec.std = 0.5;
    let (cfg, w) = random_tensors(&spec, &Device::Cpu).unwrap();
    let model = Llama::from_tensors(cfg, w, DType::F32).unwrap();
    let reqs = requests();
    let want = score_requests(&model, &reqs, 1, 12, 0).unwrap();
    let mut spread = (f64::INFINITY, f64::NEG_INFINITY);
    for batch in [1, 3, 8] {
        let got = score_requests_shared(&model, &reqs, batch, 12, 0).unwrap();
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            // Relative: f32 rounding of the other matmul shapes moved a -10.05 score by 1.6e-5.
            assert!(
                (g.loglik - w.loglik).abs() < 1e-5 * w.loglik.abs().max(1.0),
                "request {k}, batch {batch}: {} vs {}",
                g.loglik,
                w.loglik
            );
            assert_eq!(g.is_greedy, w.is_greedy, "request {k}, batch {batch}");
            spread = (spread.0.min(w.loglik), spread.1.max(w.loglik));
        }
    }
    // The comparison means something only if the scores are not all alike.
    assert!(spread.1 - spread.0 > 1.0, "scores {spread:?}");
}

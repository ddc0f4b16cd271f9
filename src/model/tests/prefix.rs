//! Prefix tuning in the model: the training forward (prefix slots as tensors in the graph) equals
//! incremental decoding over a cache that starts with the prefix (host buffers), padding leaves
//! real rows unchanged, greedy generation with the cache equals generation without one, and the
//! gradient reaching `prompt_embeddings` matches finite differences in f64. PEFT's own forward
//! is the outside reference (`tests/integration/peft_interop.rs`).

use candle_core::{DType, Device, IndexOp, Tensor};

use super::{ids, max_abs_diff, spec};
use crate::adapter::prefix::Prefix;
use crate::lm::{CausalLm, IncrementalLm};
use crate::model::generate::greedy;
use crate::model::llama::Llama;
use crate::model::random::random_tensors;

fn ones(t: usize) -> Tensor {
    Tensor::ones((1, t), DType::U32, &Device::Cpu).unwrap()
}

/// A random model (tiny: 2 layers, 2 KV heads of 16) in `dtype` with a prefix of `n` tokens.
fn with_prefix(seed: u64, n: usize, dtype: DType) -> Llama {
    let (cfg, w) = random_tensors(&spec(seed), &Device::Cpu).unwrap();
    let mut m = Llama::from_tensors(cfg, w, dtype).unwrap();
    let shape = m.prefix_shape().unwrap();
    let p = Prefix::init(n, shape, seed, dtype, &Device::Cpu).unwrap();
    m.set_prefix(Some(p));
    m
}

#[test]
fn a_prefix_changes_the_logits_and_cache_steps_match_the_full_forward() {
    let m = with_prefix(21, 5, DType::F32);
    let seq: Vec<u32> = vec![1, 90, 14, 230, 7, 7, 150, 42, 99, 3];
    let full = m.forward(&ids(&[&seq]), &ones(seq.len())).unwrap();
    let mut bare = with_prefix(21, 5, DType::F32);
    bare.set_prefix(None);
    let base = bare.forward(&ids(&[&seq]), &ones(seq.len())).unwrap();
    assert!(
        max_abs_diff(&full, &base) > 1e-2,
        "the prefix changes nothing"
    );
    let mut cache = m.new_cache(1).unwrap();
    assert_eq!(cache.len(), 0, "virtual tokens are not input positions");
    let parts = std::iter::once(0..6)
        .chain((6..9).map(|i| i..i + 1))
        .chain(std::iter::once(9..10));
    for r in parts {
        let step = m
            .forward_step(&ids(&[&seq[r.clone()]]), &ones(r.end), &mut cache)
            .unwrap();
        let d = max_abs_diff(&step.i(0).unwrap(), &full.i((0, r.clone())).unwrap());
        assert!(d < 1e-5, "positions {r:?} differ by {d}");
    }
    assert_eq!(cache.len(), seq.len());
}

#[test]
fn left_padding_with_a_prefix_matches_the_unpadded_row() {
    let m = with_prefix(22, 3, DType::F32);
    let a: Vec<u32> = vec![5, 77, 120, 33, 9, 200, 17];
    let b: Vec<u32> = vec![44, 3, 250, 61];
    let lb = m.forward(&ids(&[&b]), &ones(b.len())).unwrap();
    let mask = Tensor::from_vec(
        [vec![1u32; 7], [vec![0; 3], vec![1; 4]].concat()].concat(),
        (2, 7),
        &Device::Cpu,
    )
    .unwrap();
    let out = m
        .forward(&ids(&[&a, &[vec![2u32; 3], b.clone()].concat()]), &mask)
        .unwrap();
    let d = max_abs_diff(&out.i((1, 3..)).unwrap(), &lb.i(0).unwrap());
    assert!(d < 1e-5, "left-padded row differs by {d}");
}

// Generation keeps the prefix in the KV cache: the cached greedy decode equals choosing each
// token by the argmax of a fresh full forward over prompt + generated (no cache at all).
#[test]
fn greedy_with_a_prefix_equals_generation_without_a_cache() {
    let m = with_prefix(23, 4, DType::F32);
    let prompts = vec![vec![1u32, 50, 60, 70, 80], vec![1, 9]];
    let cached = greedy(&m, &prompts, 6, &[], 2).unwrap();
    for (p, got) in prompts.iter().zip(&cached) {
        let mut seq = p.clone();
        for _ in 0..6 {
            let logits = m.forward(&ids(&[&seq]), &ones(seq.len())).unwrap();
            let next: u32 = logits
                .i((0, seq.len() - 1))
                .unwrap()
                .argmax(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            seq.push(next);
        }
        assert_eq!(&seq[p.len()..], got.as_slice());
    }
}

// Reference: central differences of L = sum(h * R) (h: the final hidden states) with respect to
// prompt_embeddings, in f64.
#[test]
fn prefix_gradient_matches_finite_differences() {
    let m = with_prefix(24, 2, DType::F64);
    let p = m.prefix().unwrap().var().clone();
    let seq = ids(&[[3u32, 17, 42, 7, 99]]);
    // the final hidden states (f64; the logits are cast to f32)
    let r = Tensor::randn(0f64, 1.0, (1, 5, 64), &Device::Cpu).unwrap();
    let loss = || {
        m.forward_hidden(&seq, &ones(5), None)
            .unwrap()
            .mul(&r)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let grads = loss().backward().unwrap();
    let g: Vec<f64> = grads
        .get(p.as_tensor())
        .expect("no gradient reached prompt_embeddings")
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let base: Vec<f64> = p.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    let eps = 1e-6;
    // every 7th coordinate: keys and values of both layers and both heads
    let mut bad = vec![];
    for i in (0..base.len()).step_by(7) {
        let at = |delta: f64| {
            let mut v = base.clone();
            v[i] += delta;
            p.set(&Tensor::from_vec(v, p.dims(), &Device::Cpu).unwrap())
                .unwrap();
            loss().to_scalar::<f64>().unwrap()
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps);
        p.set(&Tensor::from_vec(base.clone(), p.dims(), &Device::Cpu).unwrap())
            .unwrap();
        if (fd - g[i]).abs() >= 1e-6 * (1.0 + fd.abs()) {
            bad.push((i, g[i], fd));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {}: {bad:?}",
        bad.len(),
        base.len() / 7
    );
    assert!(g.iter().filter(|v| v.abs() > 1e-8).count() > base.len() / 2);
}

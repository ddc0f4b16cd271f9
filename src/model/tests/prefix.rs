//! Prefix tuning in the model: the training forward (prefix slots as tensors in the graph) equals
//! incremental decoding over a cache that starts with the prefix (host buffers), padding leaves
//! real rows unchanged, greedy generation with the cache equals generation without one, and the
//! gradient reaching `prompt_embeddings` matches finite differences in f64. PEFT's own forward
//! is the outside reference (`tests/integration/peft_interop.rs`).

use candle_core::{DType, Device, IndexOp, Tensor};

use super::{ids, max_abs_diff, spec};
use crate::adapter::prefix::Prefix;
use crate::lm::CausalLm;
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
    // the cache starts with the prefix's slots, which are not input positions (len 0)
    // (the prefix's N(0, 1) values make the logits larger than the bare model's: f32 rounding of
    // the decode kernel and the matmul path differ by about 1e-5)
    super::masking::cache_steps_match_full_forward(&m, 5e-5);
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

// Reference: PEFT's prefix attention written out with plain loops in f64 (HF's LlamaAttention
// with past_key_values = the prefix): per query head h (KV head h / rep), the query of token i
// rotated at position n + i (rotate-half RoPE, 1 / theta^(2j/d)), scores against the n prefix
// keys (not rotated) and the real keys 0..=i (rotated at n + j), softmax, the weighted sum of
// prefix values and real values, then o_proj.
#[test]
fn prefix_attention_is_the_written_out_formula() {
    use crate::adapter::init::uniform_tensor;
    use crate::adapter::linear::Linear;
    use crate::model::attention::{Attention, LayerKv};
    use crate::model::rope::Positions;
    let (h, kvh, d, hidden, n, t) = (4usize, 2usize, 4usize, 8usize, 3usize, 5usize);
    let dev = Device::Cpu;
    let w = |o: usize, i: usize, seed: u64| {
        uniform_tensor(&[o, i], 0.5, seed, DType::F64, &dev).unwrap()
    };
    let (wq, wk, wv, wo) = (
        w(h * d, hidden, 1),
        w(kvh * d, hidden, 2),
        w(kvh * d, hidden, 3),
        w(hidden, h * d, 4),
    );
    let attn = Attention {
        q_proj: Linear::new(wq.clone(), None),
        k_proj: Linear::new(wk.clone(), None),
        v_proj: Linear::new(wv.clone(), None),
        o_proj: Linear::new(wo.clone(), None),
        n_heads: h,
        n_kv_heads: kvh,
        head_dim: d,
    };
    let x = uniform_tensor(&[1, t, hidden], 1.0, 5, DType::F64, &dev).unwrap();
    let pk = uniform_tensor(&[1, kvh, n, d], 1.0, 6, DType::F64, &dev).unwrap();
    let pv = uniform_tensor(&[1, kvh, n, d], 1.0, 7, DType::F64, &dev).unwrap();
    let inv: Vec<f64> = (0..d / 2)
        .map(|j| 1.0 / 10000f64.powf((2 * j) as f64 / d as f64))
        .collect();
    let pos = Positions::new(&[vec![1u32; n + t]], t, &inv, DType::F64, &dev).unwrap();
    let mut slot = LayerKv::prefilled(pk.clone(), pv.clone(), false).unwrap();
    let got: Vec<Vec<f64>> = attn
        .forward(&x, &pos, Some(&mut slot))
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2()
        .unwrap();

    let mat = |m: &Tensor| -> Vec<Vec<f64>> { m.to_vec2().unwrap() };
    let (wq, wk, wv, wo) = (mat(&wq), mat(&wk), mat(&wv), mat(&wo));
    let xs: Vec<Vec<f64>> = x.squeeze(0).unwrap().to_vec2().unwrap();
    let lin = |w: &[Vec<f64>], v: &[f64]| -> Vec<f64> {
        w.iter()
            .map(|r| r.iter().zip(v).map(|(a, b)| a * b).sum())
            .collect()
    };
    let rope = |v: &[f64], p: usize| -> Vec<f64> {
        let half = d / 2;
        let mut out = v.to_vec();
        for j in 0..half {
            let (c, s) = ((p as f64 * inv[j]).cos(), (p as f64 * inv[j]).sin());
            out[j] = v[j] * c - v[j + half] * s;
            out[j + half] = v[j + half] * c + v[j] * s;
        }
        out
    };
    let head = |v: &[f64], i: usize| v[i * d..(i + 1) * d].to_vec();
    // [kv head][prefix token][dim]
    let planes = |t: &Tensor| -> Vec<Vec<Vec<f64>>> { t.squeeze(0).unwrap().to_vec3().unwrap() };
    let (pk, pv) = (planes(&pk), planes(&pv));
    let ks: Vec<Vec<f64>> = xs.iter().map(|xi| lin(&wk, xi)).collect();
    let vs: Vec<Vec<f64>> = xs.iter().map(|xi| lin(&wv, xi)).collect();
    for (i, xi) in xs.iter().enumerate() {
        let q = lin(&wq, xi);
        let mut y = vec![0.0; h * d];
        for hq in 0..h {
            let g = hq / (h / kvh);
            let qh = rope(&head(&q, hq), n + i);
            let mut keys: Vec<Vec<f64>> = pk[g].clone();
            let mut vals: Vec<Vec<f64>> = pv[g].clone();
            for j in 0..=i {
                keys.push(rope(&head(&ks[j], g), n + j));
                vals.push(head(&vs[j], g));
            }
            let scores: Vec<f64> = keys
                .iter()
                .map(|k| k.iter().zip(&qh).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt())
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for (p, v) in e.iter().zip(&vals) {
                for k in 0..d {
                    y[hq * d + k] += p / z * v[k];
                }
            }
        }
        let want = lin(&wo, &y);
        for (a, b) in got[i].iter().zip(&want) {
            // the RoPE tables are computed in f32 (`rope::push_angles`), hence 1e-6, not f64 eps
            assert!((a - b).abs() < 1e-6, "token {i}: {a} vs {b}");
        }
    }
}

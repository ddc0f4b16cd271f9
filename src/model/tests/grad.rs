//! Gradients flow through every op of the forward pass (candle's fused ops would silently stop
//! them): each op's autograd gradient matches central finite differences in f64, and a whole
//! model passes non-zero gradients to its input embeddings and to a first-layer projection.

use candle_core::{DType, Device, Tensor, Var};

use crate::lm::CausalLm;
use crate::model::llama::Llama;
use crate::model::ops;
use crate::model::random::random_tensors;

/// Checks d(sum(f(x) * r))/dx from autograd against central differences at every coordinate.
fn fd_check(shape: &[usize], f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, shape, &dev).unwrap()).unwrap();
    let y = f(x.as_tensor()).unwrap();
    let r = Tensor::randn(0f64, 1.0, y.shape(), &dev).unwrap();
    let loss = |t: &Tensor| f(t).unwrap().mul(&r).unwrap().sum_all().unwrap();
    let grads = loss(x.as_tensor()).backward().unwrap();
    let g: Vec<f64> = grads
        .get(x.as_tensor())
        .expect("no gradient reached the input")
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let base: Vec<f64> = x.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    let eps = 1e-5;
    for i in 0..base.len() {
        let mut p = base.clone();
        p[i] += eps;
        let mut m = base.clone();
        m[i] -= eps;
        let at = |v: Vec<f64>| {
            loss(&Tensor::from_vec(v, shape, &dev).unwrap())
                .to_scalar::<f64>()
                .unwrap()
        };
        let fd = (at(p) - at(m)) / (2.0 * eps);
        assert!(
            (fd - g[i]).abs() < 1e-6 * (1.0 + fd.abs()),
            "coordinate {i}: autograd {} vs finite difference {fd}",
            g[i]
        );
    }
    assert!(g.iter().any(|v| v.abs() > 1e-8));
}

#[test]
fn rms_norm_has_a_correct_gradient() {
    let w = Tensor::new(&[0.5f64, -1.5, 2.0, 1.0], &Device::Cpu).unwrap();
    fd_check(&[2, 3, 4], |x| ops::rms_norm(x, &w, 1e-5));
}

#[test]
fn softmax_has_a_correct_gradient() {
    fd_check(&[2, 3, 5], ops::softmax_last_dim);
}

#[test]
fn swiglu_has_a_correct_gradient() {
    let up = Tensor::randn(0f64, 1.0, (2, 6), &Device::Cpu).unwrap();
    fd_check(&[2, 6], |g| ops::swiglu(g, &up));
    let gate = Tensor::randn(0f64, 1.0, (2, 6), &Device::Cpu).unwrap();
    fd_check(&[2, 6], |u| ops::swiglu(&gate, u));
}

#[test]
fn rope_has_a_correct_gradient() {
    let dev = Device::Cpu;
    let ang = Tensor::randn(0f64, 2.0, (1, 1, 3, 2), &dev).unwrap();
    let cos = Tensor::cat(&[&ang.cos().unwrap(), &ang.cos().unwrap()], 3).unwrap();
    let sin = ang.sin().unwrap();
    let sin_signed = Tensor::cat(&[&sin.neg().unwrap(), &sin], 3).unwrap();
    fd_check(&[1, 2, 3, 4], |x| ops::rope(x, &cos, &sin_signed));
}

#[test]
fn whole_model_passes_gradients_through_frozen_projections() {
    let (cfg, mut w) = random_tensors(&super::spec(21), &Device::Cpu).unwrap();
    let emb = Var::from_tensor(&w.tensors["model.embed_tokens.weight"]).unwrap();
    let q0 = Var::from_tensor(&w.tensors["model.layers.0.self_attn.q_proj.weight"]).unwrap();
    let down1 = Var::from_tensor(&w.tensors["model.layers.1.mlp.down_proj.weight"]).unwrap();
    w.insert("model.embed_tokens.weight", emb.as_tensor().clone());
    w.insert(
        "model.layers.0.self_attn.q_proj.weight",
        q0.as_tensor().clone(),
    );
    w.insert(
        "model.layers.1.mlp.down_proj.weight",
        down1.as_tensor().clone(),
    );
    let m = Llama::from_tensors(cfg, w, DType::F32).unwrap();
    let x = super::ids(&[[4u32, 8, 15, 16, 23], [42, 42, 7, 2, 2]]);
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1], [1, 1, 1, 0, 0]], &Device::Cpu).unwrap();
    let logits = m.forward(&x, &mask).unwrap();
    let grads = logits
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .backward()
        .unwrap();
    // The embedding sits below every projection: a non-zero gradient there means gradients flow
    // through all of them. The projection weights themselves are frozen (`frozen_linear` computes
    // only the input gradient), so even as Vars they must get none.
    let g = grads
        .get(emb.as_tensor())
        .expect("no gradient for the embeddings");
    let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
    assert!(
        norm > 0.0 && norm.is_finite(),
        "embed: gradient norm {norm}"
    );
    for (name, v) in [("q_proj.0", &q0), ("down_proj.1", &down1)] {
        assert!(
            grads.get(v.as_tensor()).is_none(),
            "{name}: a frozen base weight got a gradient"
        );
    }
}

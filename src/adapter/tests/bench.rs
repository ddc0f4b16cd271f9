//! Timings (ignored by default): one adapted projection, forward + backward, on the SmolLM2
//! attention shape (x [1024, 576], W [576, 576]), r = 8.
//! Run with `RAYON_NUM_THREADS=2 cargo test --release --lib adapter::tests::bench -- --ignored --nocapture`.

use candle_core::{DType, Module};

use super::fixtures::rand;
use crate::adapter::{AdapterConfig, Linear, Method, ScalingRule, Targets, attach, set_training};

fn time(method: Option<Method>, dropout: f64) -> f64 {
    let w = rand(&[576, 576], 1, DType::F32).affine(0.04, 0.0).unwrap();
    let mut model = vec![(
        "model.layers.0.self_attn.q_proj".to_string(),
        Linear::new(w, None),
    )];
    if let Some(m) = method {
        let mut cfg = AdapterConfig::new(m, ScalingRule::Rora, 8, 16.0, Targets::AllLinear);
        cfg.dropout = dropout;
        attach(&mut model, &cfg).unwrap();
        set_training(&model, true);
    }
    let x = candle_core::Var::from_tensor(&rand(&[1024, 576], 2, DType::F32)).unwrap();
    let g = rand(&[1024, 576], 3, DType::F32);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = std::time::Instant::now();
        let y = model[0].1.forward(x.as_tensor()).unwrap();
        let grads = (y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(grads.get(x.as_tensor()).is_some());
        best = best.min(t0.elapsed().as_secs_f64());
    }
    best * 1e3
}

#[test]
#[ignore]
fn bench_adapted_projection() {
    let base = time(None, 0.0);
    let lora = time(Some(Method::Lora), 0.0);
    let lora_do = time(Some(Method::Lora), 0.05);
    let dora = time(Some(Method::Dora), 0.0);
    let dora_do = time(Some(Method::Dora), 0.05);
    eprintln!(
        "fwd+bwd ms (best of 5): base {base:.1}, lora {lora:.1}, lora+dropout {lora_do:.1}, dora {dora:.1}, dora+dropout {dora_do:.1}"
    );
}

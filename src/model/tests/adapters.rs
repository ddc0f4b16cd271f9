//! Adapters attached to the whole model train: after two SGD steps on the LM loss every adapter
//! variable (LoRA A and B, DoRA magnitude) has had a non-zero gradient, and the loss went down.
//! This is the end-to-end check that no op on the path lacks a backward (DESIGN.md).

use candle_core::{D, DType, Device, Tensor};

use super::{ids, random_model, spec};
use crate::adapter::attach::attach;
use crate::adapter::config::{AdapterConfig, Targets};
use crate::adapter::scaling::ScalingRule;
use crate::adapter::spec::Method;
use crate::lm::{CausalLm, TrainableLm};

fn lm_loss(m: &crate::model::Llama, x: &Tensor, y: &Tensor) -> Tensor {
    let mask = Tensor::ones(x.dims(), DType::U32, &Device::Cpu).unwrap();
    let logits = m.forward(x, &mask).unwrap();
    let (b, t, v) = logits.dims3().unwrap();
    let logp =
        candle_nn::ops::log_softmax(&logits.reshape((b * t, v)).unwrap(), D::Minus1).unwrap();
    logp.gather(&y.reshape((b * t, 1)).unwrap(), 1)
        .unwrap()
        .mean_all()
        .unwrap()
        .neg()
        .unwrap()
}

#[test]
fn every_adapter_var_gets_a_gradient_through_the_model() {
    for method in [Method::Lora, Method::Dora] {
        let mut m = random_model(&spec(51));
        let targets = Targets::Names(
            ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]
                .map(String::from)
                .to_vec(),
        );
        let cfg = AdapterConfig::new(method, ScalingRule::Rora, 4, 8.0, targets);
        attach(&mut m, &cfg).unwrap();
        let vars = m.trainable_vars();
        assert_eq!(
            vars.len(),
            2 * 5 * if method == Method::Dora { 3 } else { 2 }
        );
        m.set_training(true);
        let x = ids(&[[1u32, 40, 77, 12, 9, 200], [1, 3, 3, 250, 100, 7]]);
        let y = ids(&[[40u32, 77, 12, 9, 200, 2], [3, 3, 250, 100, 7, 2]]);
        let mut seen = vec![false; vars.len()];
        let first = lm_loss(&m, &x, &y).to_scalar::<f32>().unwrap();
        for _ in 0..2 {
            let grads = lm_loss(&m, &x, &y).backward().unwrap();
            for (i, (name, v)) in vars.iter().enumerate() {
                if let Some(g) = grads.get(v.as_tensor()) {
                    let n: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
                    seen[i] |= n > 0.0;
                    assert!(n.is_finite(), "{name}");
                    v.set(&(v.as_tensor() - (g * 0.5).unwrap()).unwrap())
                        .unwrap();
                }
            }
        }
        for ((name, _), s) in vars.iter().zip(&seen) {
            assert!(*s, "{method:?}: {name} never got a gradient");
        }
        let last = lm_loss(&m, &x, &y).to_scalar::<f32>().unwrap();
        assert!(last < first, "{method:?}: loss {first} -> {last}");
    }
}

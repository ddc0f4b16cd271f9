//! The fused decoder layer (`block_op`) against the composed autograd path on a tiny model.
//!
//! Reference: the same model, adapters and batch run inside [`with_reference_path`], i.e. the
//! layer composed from candle ops with candle's autograd (itself checked against finite
//! differences in `model::tests::grad`). Loss and every adapter gradient must agree within 1e-5
//! relative (to the largest entry of that gradient). `B` is set non-zero so that `A` gets a
//! gradient; alpha != r so a scale bug shows. Each case runs with the adapted projections in
//! both orders (factored and merged weight, `block_proj`).

use candle_core::{DType, Device, Tensor};

use super::block_op::{fused_layer_runs, with_reference_path};
use crate::adapter::{self, AdapterConfig, Method, ScalingRule, Targets};
use crate::cpu::block_proj::with_forced_merge;
use crate::lm::{CausalLm, TrainableLm};
use crate::model::llama::Llama;
use crate::model::random::{RandomSpec, random_tensors};
use crate::train::loss::loss_sum;

fn model(method: Method, rule: ScalingRule, targets: Targets) -> Llama {
    model_with_dropout(method, rule, targets, 0.0)
}

fn model_with_dropout(method: Method, rule: ScalingRule, targets: Targets, p: f64) -> Llama {
    // 2 layers, hidden 32, 4 heads over 2 KV heads (GQA), FFN 48
    let (cfg, w) = random_tensors(&RandomSpec::uniform(32, 2, 4, 2, 48, 5), &Device::Cpu).unwrap();
    let mut m = Llama::from_tensors(cfg, w, DType::F32).unwrap();
    let mut acfg = AdapterConfig::new(method, rule, 4, 12.0, targets);
    acfg.dropout = p;
    adapter::attach(&mut m, &acfg).unwrap();
    for (i, (name, v)) in m.trainable_vars().into_iter().enumerate() {
        if name.ends_with("lora_B.weight") || name.ends_with("lora_magnitude_vector") {
            let noise = crate::adapter::init::uniform_tensor(
                v.dims(),
                0.05,
                100 + i as u64,
                DType::F32,
                &Device::Cpu,
            )
            .unwrap();
            v.set(&(v.as_tensor() + noise).unwrap()).unwrap();
        }
    }
    m.set_training(true);
    m
}

/// Loss sum and every adapter gradient (flattened), in `trainable_vars` order. The dropout
/// stream is reset first, so both paths draw the same masks.
fn loss_and_grads(m: &Llama) -> (f32, Vec<(String, Vec<f32>)>) {
    loss_and_grads_with(m, false)
}

/// With `at_positions`, the loss as the trainer computes it: logits only at the loss positions
/// (`CausalLm::logits_at` via `trainer::batch_loss_sum`) instead of `loss_sum(forward(..))`.
fn loss_and_grads_with(m: &Llama, at_positions: bool) -> (f32, Vec<(String, Vec<f32>)>) {
    m.set_dropout_seed(7);
    let ids = Tensor::new(
        &[[0u32, 0, 17, 99, 3, 250, 8], [5, 6, 7, 8, 9, 10, 11]],
        &Device::Cpu,
    )
    .unwrap();
    // row 0 is left-padded by two positions
    let mask = Tensor::new(
        &[[0u32, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]],
        &Device::Cpu,
    )
    .unwrap();
    let labels = Tensor::new(
        &[[-100i64, -100, 17, 99, 3, 250, 8], [5, 6, 7, 8, 9, 10, 11]],
        &Device::Cpu,
    )
    .unwrap();
    let sum = if at_positions {
        let b = crate::train::batch::Batch {
            input_ids: ids,
            attention_mask: mask,
            labels,
            n_tokens: 12,
        };
        crate::train::trainer::batch_loss_sum(m, &b, true, false).unwrap()
    } else {
        loss_sum(&m.forward(&ids, &mask).unwrap(), &labels).unwrap()
    };
    let grads = sum.backward().unwrap();
    let g = m
        .trainable_vars()
        .into_iter()
        .map(|(n, v)| {
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {n}"));
            (n, g.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        })
        .collect();
    (sum.to_scalar::<f32>().unwrap(), g)
}

fn check(method: Method, rule: ScalingRule, targets: Targets) {
    let m = model(method, rule, targets);
    let (want_loss, want) = with_reference_path(|| loss_and_grads(&m));
    // both orders of the adapted projection: factored (PEFT's) and merged weight
    for merge in [false, true] {
        compare(&m, merge, want_loss, &want);
    }
}

fn compare(m: &Llama, merge: bool, want_loss: f32, want: &[(String, Vec<f32>)]) {
    let runs = fused_layer_runs();
    let (loss, grads) = with_forced_merge(merge, || loss_and_grads(m));
    assert!(
        fused_layer_runs() >= runs + 2,
        "the fused layer did not run"
    );
    assert!(
        (loss - want_loss).abs() <= 1e-5 * want_loss.abs(),
        "merge {merge}: loss {loss} vs {want_loss}"
    );
    assert_eq!(grads.len(), want.len());
    for ((name, g), (_, w)) in grads.iter().zip(want) {
        let scale = w.iter().fold(0f32, |a, v| a.max(v.abs()));
        let diff = g.iter().zip(w).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        assert!(scale > 0.0, "{name}: zero reference gradient");
        assert!(
            diff <= 1e-5 * scale,
            "merge {merge}: {name}: gradient differs by {diff} (scale {scale})"
        );
    }
}

#[test]
fn lora_gradients_equal_the_autograd_path() {
    check(Method::Lora, ScalingRule::Lora, Targets::AllLinear);
}

#[test]
fn rora_scaling_gradients_equal_the_autograd_path() {
    check(Method::Lora, ScalingRule::Rora, Targets::AllLinear);
}

#[test]
fn dora_gradients_equal_the_autograd_path() {
    check(Method::Dora, ScalingRule::Lora, Targets::AllLinear);
}

#[test]
fn layers_with_unadapted_projections_match_too() {
    let t = Targets::Names(vec!["q_proj".into(), "v_proj".into(), "down_proj".into()]);
    check(Method::Lora, ScalingRule::Lora, t);
}

/// LoRA with dropout 0.3: the fused layer draws the same masks as the composed path (same
/// stream and call count) and applies them to the adapter branch only.
#[test]
fn lora_with_dropout_equals_the_autograd_path() {
    let m = model_with_dropout(Method::Lora, ScalingRule::Rora, Targets::AllLinear, 0.3);
    let (want_loss, want) = with_reference_path(|| loss_and_grads(&m));
    compare(&m, false, want_loss, &want);
    // a different stream gives different masks, so the masks do reach the loss
    m.set_dropout_seed(8);
    let other = m
        .forward(
            &Tensor::new(&[[5u32, 6, 7, 8, 9, 10, 11]], &Device::Cpu).unwrap(),
            &Tensor::new(&[[1u32, 1, 1, 1, 1, 1, 1]], &Device::Cpu).unwrap(),
        )
        .unwrap();
    m.set_dropout_seed(7);
    let same = m
        .forward(
            &Tensor::new(&[[5u32, 6, 7, 8, 9, 10, 11]], &Device::Cpu).unwrap(),
            &Tensor::new(&[[1u32, 1, 1, 1, 1, 1, 1]], &Device::Cpu).unwrap(),
        )
        .unwrap();
    let d = (other - same)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d > 0.0, "dropout masks had no effect");
}

/// The trainer's loss at the loss positions only (padding and the rows' last positions never
/// reach the output projection) equals the loss over full logits, value and gradients, on the
/// composed and on the fused layer.
#[test]
fn loss_at_loss_positions_equals_the_full_logits_loss() {
    let m = model(Method::Lora, ScalingRule::Rora, Targets::AllLinear);
    let (want_loss, want) = with_reference_path(|| loss_and_grads(&m));
    let composed = with_reference_path(|| loss_and_grads_with(&m, true));
    let fused = loss_and_grads_with(&m, true);
    for (what, (loss, grads)) in [("composed", composed), ("fused", fused)] {
        assert!(
            (loss - want_loss).abs() <= 1e-5 * want_loss.abs(),
            "{what}: loss {loss} vs {want_loss}"
        );
        for ((name, g), (_, w)) in grads.iter().zip(&want) {
            let scale = w.iter().fold(0f32, |a, v| a.max(v.abs()));
            let diff = g.iter().zip(w).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
            assert!(
                scale > 0.0 && diff <= 1e-5 * scale,
                "{what}: {name}: gradient differs by {diff} (scale {scale})"
            );
        }
    }
}

/// A micro-batch split into length groups (each padded to its own longest row) gives the loss
/// and gradients of the whole padded batch, on the fused layer.
#[test]
fn length_groups_give_the_whole_batch_gradient() {
    use crate::train::batch::{Batch, Example};
    use crate::train::trainer::micro_step_split;
    let m = model(Method::Lora, ScalingRule::Rora, Targets::AllLinear);
    let rows: Vec<Example> = [3usize, 12, 2, 11, 7]
        .iter()
        .enumerate()
        .map(|(r, &n)| {
            let ids: Vec<u32> = (0..n)
                .map(|i| ((r * 31 + i * 7) % 250) as u32 + 1)
                .collect();
            let mut labels: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
            labels[0] = -100; // a masked prompt token
            Example {
                input_ids: ids,
                labels,
            }
        })
        .collect();
    let refs: Vec<&Example> = rows.iter().collect();
    let b = Batch::collate(&refs, 0, &Device::Cpu).unwrap();
    let vars = m.trainable_vars();
    let run = |overhead| {
        let mut acc: Vec<Vec<f32>> = vars
            .iter()
            .map(|(_, v)| vec![0f32; v.elem_count()])
            .collect();
        let loss = micro_step_split(&m, &b, 30, &vars, &mut acc, 1, overhead, false).unwrap();
        (loss, acc)
    };
    let (whole_loss, whole) = run(None);
    let lengths = crate::train::split::row_lengths(&b.attention_mask).unwrap();
    assert!(crate::train::split::length_groups(&lengths, 0).len() > 1);
    let (split_loss, split) = run(Some(0));
    assert!(
        (split_loss - whole_loss).abs() <= 1e-5 * whole_loss.abs(),
        "loss {split_loss} vs {whole_loss}"
    );
    for ((name, _), (g, w)) in vars.iter().zip(split.iter().zip(&whole)) {
        let scale = w.iter().fold(0f32, |a, v| a.max(v.abs()));
        let diff = g.iter().zip(w).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        assert!(
            scale > 0.0 && diff <= 1e-5 * scale,
            "{name}: gradient differs by {diff} (scale {scale})"
        );
    }
}

/// A layer decides its training path once per run: the composed path asked for is remembered with
/// its reason, and choosing the path again (or resetting the log) lets the layers decide anew.
#[test]
fn layers_decide_their_path_once_and_the_log_says_why() {
    use super::block_op::LayerPath;
    let mut m = model(
        Method::Lora,
        ScalingRule::Rora,
        Targets::Names(vec!["q_proj".into()]),
    );
    m.set_layer_path(LayerPath::Composed);
    m.reset_layer_log();
    let runs = fused_layer_runs();
    for _ in 0..2 {
        loss_and_grads(&m);
    }
    let r = m.layer_report();
    assert_eq!((r.path, r.fused_forwards), ("composed", 0));
    assert_eq!(r.composed_forwards, 2 * m.config().n_layers() as u64);
    assert_eq!(r.composed_because, Some("the composed path was asked for"));
    m.set_layer_path(LayerPath::Auto);
    m.reset_layer_log();
    loss_and_grads(&m);
    let r = m.layer_report();
    assert_eq!(r.path, "fused", "{r:?}");
    assert!(fused_layer_runs() > runs);
}

#[test]
fn unfused_codes_round_trip() {
    use super::block_op::Unfused;
    for code in 0..=u8::MAX {
        if let Some(u) = Unfused::from_code(code) {
            assert_eq!(u.code(), code);
        }
    }
    assert_eq!(
        Unfused::from_code(Unfused::Shapes.code()),
        Some(Unfused::Shapes)
    );
}

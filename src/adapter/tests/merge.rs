//! Merge/unmerge and the zero-init property, for every method and scaling rule.
//! Reference: merged and unmerged forwards compute the same function (DESIGN.md, "Numerics").

use candle_core::DType;

use super::fixtures::{max_diff_all, outputs, randomize_adapters, toy_model};
use crate::adapter::{
    AdapterConfig, Method, ScalingRule, Targets, attach, merge_all, merge_and_unload, unmerge_all,
};

fn config(method: Method, rule: ScalingRule) -> AdapterConfig {
    // alpha != r everywhere; a rank pattern gives one module another rank and alpha.
    let mut c = AdapterConfig::new(method, rule, 4, 12.0, Targets::AllLinear);
    c.rank_pattern = vec![("layers.1.mlp.down_proj".into(), 2)];
    c.alpha_pattern = vec![("q_proj".into(), 5.0)];
    c.seed = 3;
    c
}

fn cases() -> Vec<(Method, ScalingRule)> {
    let mut v = Vec::new();
    for m in [Method::Lora, Method::Dora] {
        for r in [
            ScalingRule::Lora,
            ScalingRule::Rora,
            ScalingRule::Fixed(0.7),
        ] {
            v.push((m, r));
        }
    }
    v
}

#[test]
fn fresh_adapters_leave_outputs_unchanged() {
    for (method, rule) in cases() {
        let mut model = toy_model(2, DType::F32);
        let before = outputs(&model, DType::F32);
        attach(&mut model, &config(method, rule)).unwrap();
        let after = outputs(&model, DType::F32);
        let d = max_diff_all(&before, &after);
        assert!(
            d < 1e-6,
            "{method:?} {rule:?}: B = 0 must give the base output, diff {d}"
        );
    }
}

#[test]
fn merged_equals_unmerged_and_unmerge_restores_the_base() {
    for (method, rule) in cases() {
        let mut model = toy_model(2, DType::F32);
        let base_out = outputs(&model, DType::F32);
        let base_w: Vec<_> = model.iter().map(|(_, l)| l.weight().clone()).collect();
        attach(&mut model, &config(method, rule)).unwrap();
        randomize_adapters(&model, 11);
        let adapted = outputs(&model, DType::F32);
        assert!(
            max_diff_all(&base_out, &adapted) > 1e-2,
            "{method:?}: adapters must change outputs"
        );

        assert_eq!(merge_all(&mut model).unwrap(), 14);
        let merged = outputs(&model, DType::F32);
        let d = max_diff_all(&adapted, &merged);
        assert!(d < 1e-5, "{method:?} {rule:?}: merged vs unmerged {d}");

        assert_eq!(unmerge_all(&mut model).unwrap(), 14);
        for ((_, l), w) in model.iter().zip(&base_w) {
            let d = super::fixtures::max_abs_diff(l.weight(), w);
            assert!(d < 1e-5, "{method:?}: unmerge must restore W, diff {d}");
        }
        let again = outputs(&model, DType::F32);
        assert!(max_diff_all(&adapted, &again) < 1e-5);

        assert_eq!(merge_and_unload(&mut model).unwrap(), 14);
        assert!(model.iter().all(|(_, l)| l.adapter().is_none()));
        assert!(max_diff_all(&adapted, &outputs(&model, DType::F32)) < 1e-5);
    }
}

// DoRA's merge is W' = (m/n) (W + sBA), so every row of W' has norm |m| (Liu et al. 2024, eq. 2).
#[test]
fn dora_merged_rows_have_the_magnitude_as_norm() {
    let mut model = toy_model(1, DType::F32);
    attach(&mut model, &config(Method::Dora, ScalingRule::Rora)).unwrap();
    randomize_adapters(&model, 5);
    let mags: Vec<_> = crate::adapter::trainable_vars(&model)
        .into_iter()
        .filter(|(n, _)| n.ends_with("lora_magnitude_vector"))
        .map(|(_, v)| v.as_tensor().clone())
        .collect();
    merge_all(&mut model).unwrap();
    for ((_, l), m) in model.iter().zip(&mags) {
        let norms = l.weight().sqr().unwrap().sum(1).unwrap().sqrt().unwrap();
        assert!(super::fixtures::max_abs_diff(&norms, m) < 1e-5);
    }
}

#[test]
fn bf16_base_keeps_f32_adapters_and_merges_close() {
    for method in [Method::Lora, Method::Dora] {
        let mut model = toy_model(1, DType::BF16);
        attach(&mut model, &config(method, ScalingRule::Rora)).unwrap();
        for (_, v) in crate::adapter::trainable_vars(&model) {
            assert_eq!(v.dtype(), DType::F32);
        }
        randomize_adapters(&model, 2);
        let adapted = outputs(&model, DType::BF16);
        merge_all(&mut model).unwrap();
        assert_eq!(model[0].1.weight().dtype(), DType::BF16);
        // bf16 has 8 mantissa bits: outputs of size ~1 agree to a few 1e-2.
        let d = max_diff_all(&adapted, &outputs(&model, DType::BF16));
        assert!(d < 0.1, "{method:?}: bf16 merged vs unmerged {d}");
    }
}

//! Attaching to a model: targeting errors, PEFT names, gradients through two SGD steps,
//! reproducible dropout, parameter counts.

use candle_core::{DType, Module, Tensor};
use candle_nn::Optimizer;

use super::fixtures::{rand, tiny_config, toy_model};
use crate::adapter::params::{llama_base_params, llama_linear_shapes};
use crate::adapter::{
    AdapterConfig, AdapterError, Method, ParamCount, ScalingRule, Targets, attach, plan,
    set_dropout_stream, set_training, trainable_vars,
};
use crate::model::config::{LayerDims, LlamaConfig};

fn qv(method: Method) -> AdapterConfig {
    AdapterConfig::new(
        method,
        ScalingRule::Rora,
        4,
        12.0,
        Targets::Names(vec!["q_proj".into(), "v_proj".into()]),
    )
}

#[test]
fn targets_that_match_nothing_are_an_error_and_change_nothing() {
    let mut model = toy_model(2, DType::F32);
    let cfg = AdapterConfig::new(
        Method::Lora,
        ScalingRule::Lora,
        4,
        8.0,
        Targets::Names(vec!["c_attn".into()]),
    );
    let err = attach(&mut model, &cfg).unwrap_err();
    assert!(matches!(err, AdapterError::NoTargetMatched { .. }), "{err}");
    assert!(
        err.to_string().contains("c_attn")
            && err.to_string().contains("model.layers.0.self_attn.q_proj")
    );
    assert!(model.iter().all(|(_, l)| l.adapter().is_none()));
}

#[test]
fn rank_above_a_layer_dimension_is_an_error_naming_the_layer() {
    let mut model = toy_model(1, DType::F32);
    // k_proj is 8x16: rank 9 does not fit, q_proj (16x16) would.
    let cfg = AdapterConfig::new(Method::Lora, ScalingRule::Lora, 9, 8.0, Targets::AllLinear);
    let err = attach(&mut model, &cfg).unwrap_err().to_string();
    assert!(
        err.contains("model.layers.0.self_attn.k_proj") && err.contains("rank 9"),
        "{err}"
    );
    assert!(
        model.iter().all(|(_, l)| l.adapter().is_none()),
        "attach must be all or nothing"
    );
}

#[test]
fn attaching_twice_is_an_error() {
    let mut model = toy_model(1, DType::F32);
    attach(&mut model, &qv(Method::Lora)).unwrap();
    let err = attach(&mut model, &qv(Method::Lora))
        .unwrap_err()
        .to_string();
    assert!(err.contains("already has an adapter"), "{err}");
}

#[test]
fn trainable_vars_have_peft_names_shapes_and_model_order() {
    let mut model = toy_model(2, DType::F32);
    let mut cfg = qv(Method::Dora);
    cfg.layers = Some(vec![1]);
    attach(&mut model, &cfg).unwrap();
    let got: Vec<(String, Vec<usize>)> = trainable_vars(&model)
        .into_iter()
        .map(|(n, v)| (n, v.dims().to_vec()))
        .collect();
    let p = "base_model.model.model.layers.1.self_attn";
    let want = vec![
        (format!("{p}.q_proj.lora_A.weight"), vec![4, 16]),
        (format!("{p}.q_proj.lora_B.weight"), vec![16, 4]),
        (format!("{p}.q_proj.lora_magnitude_vector"), vec![16]),
        (format!("{p}.v_proj.lora_A.weight"), vec![4, 16]),
        (format!("{p}.v_proj.lora_B.weight"), vec![8, 4]),
        (format!("{p}.v_proj.lora_magnitude_vector"), vec![8]),
    ];
    assert_eq!(got, want);
}

/// Mean squared error of every adapted module's output against a random target.
fn mse(model: &[(String, crate::adapter::Linear)]) -> Tensor {
    let mut total: Option<Tensor> = None;
    for (i, (_, l)) in model.iter().enumerate() {
        let x = rand(&[4, l.shape().1], 100 + i as u64, DType::F32);
        let t = rand(&[4, l.shape().0], 200 + i as u64, DType::F32);
        let e = (l.forward(&x).unwrap() - t)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap();
        total = Some(match total {
            Some(s) => (s + e).unwrap(),
            None => e,
        });
    }
    total.unwrap()
}

#[test]
fn every_adapter_var_gets_a_gradient_by_the_second_sgd_step_and_base_weights_none() {
    for method in [Method::Lora, Method::Dora] {
        let mut model = toy_model(2, DType::F32);
        let mut cfg = AdapterConfig::new(method, ScalingRule::Lora, 4, 12.0, Targets::AllLinear);
        cfg.dropout = 0.1;
        attach(&mut model, &cfg).unwrap();
        set_training(&model, true);
        let vars: Vec<_> = trainable_vars(&model).into_iter().map(|(_, v)| v).collect();
        let mut sgd = candle_nn::SGD::new(vars.clone(), 0.1).unwrap();
        let first = mse(&model);
        let mut grads = first.backward().unwrap();
        sgd.step(&grads).unwrap();
        let second = mse(&model);
        grads = second.backward().unwrap();
        for (name, v) in trainable_vars(&model) {
            let g = grads
                .get(v.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            let n = g
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(n > 0.0, "{method:?} {name}: zero gradient at step 2");
        }
        for (path, l) in &model {
            assert!(
                grads.get(l.weight()).is_none(),
                "{path}: a base weight got a gradient"
            );
        }
        sgd.step(&grads).unwrap();
        let third = mse(&model).to_scalar::<f32>().unwrap();
        assert!(
            third < first.to_scalar::<f32>().unwrap(),
            "{method:?}: loss must fall"
        );
    }
}

#[test]
fn dropout_is_reproducible_per_stream_and_off_in_eval() {
    let run = |stream: u64, training: bool| {
        let mut model = toy_model(1, DType::F32);
        let mut cfg =
            AdapterConfig::new(Method::Lora, ScalingRule::Rora, 4, 12.0, Targets::AllLinear);
        cfg.dropout = 0.5;
        cfg.seed = 9;
        attach(&mut model, &cfg).unwrap();
        super::fixtures::randomize_adapters(&model, 1);
        set_training(&model, training);
        set_dropout_stream(&model, stream);
        super::fixtures::outputs(&model, DType::F32)
    };
    let a = run(5, true);
    assert_eq!(
        super::fixtures::max_diff_all(&a, &run(5, true)),
        0.0,
        "same stream, same masks"
    );
    assert!(
        super::fixtures::max_diff_all(&a, &run(6, true)) > 1e-3,
        "another stream, other masks"
    );
    let eval = run(5, false);
    assert_eq!(
        super::fixtures::max_diff_all(&eval, &run(6, false)),
        0.0,
        "no dropout in eval"
    );
}

fn llama_7b() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 32000,
        hidden_size: 4096,
        head_dim: 128,
        layers: vec![
            LayerDims {
                n_heads: 32,
                n_kv_heads: 32,
                intermediate_size: 11008
            };
            32
        ],
        tie_word_embeddings: false,
        ..tiny_config(1)
    }
}

// Reference: PEFT's print_trainable_parameters for LLaMA-7B (huggyllama/llama-7b) with
// LoraConfig(r=8, target_modules=["q_proj", "v_proj"]) prints
// "trainable params: 4,194,304 || all params: 6,742,609,920 || trainable%: 0.0622"
// (widely reproduced, e.g. in the PEFT and alpaca-lora READMEs). DoRA adds `out` per module.
#[test]
fn parameter_counts_match_peft_for_llama_7b() {
    let cfg = llama_7b();
    let base = llama_base_params(&cfg);
    assert_eq!(base, 6_738_415_616);
    let mut lora = qv(Method::Lora);
    lora.rank = 8;
    lora.alpha = 16.0;
    let report = plan(&llama_linear_shapes(&cfg), &lora).unwrap();
    let count = ParamCount::new(base, report.trainable_params());
    assert_eq!(
        count.to_string(),
        "trainable params: 4,194,304 || all params: 6,742,609,920 || trainable%: 0.0622"
    );
    let dora = AdapterConfig {
        method: Method::Dora,
        ..lora
    };
    let report = plan(&llama_linear_shapes(&cfg), &dora).unwrap();
    assert_eq!(report.trainable_params(), 4_194_304 + 32 * (4096 + 4096));
}

#[test]
fn parameter_count_of_an_attached_model_counts_the_vars() {
    let mut model = toy_model(2, DType::F32);
    let report = attach(&mut model, &qv(Method::Dora)).unwrap();
    let base: usize = model.iter().map(|(_, l)| l.weight().elem_count()).sum();
    let count = ParamCount::of_model(&model, base);
    // q: 4*(16+16)+16 = 144, v: 4*(16+8)+8 = 104, two layers
    assert_eq!(count.trainable, 2 * (144 + 104));
    assert_eq!(count.trainable, report.trainable_params());
    assert_eq!(count.total, base + count.trainable);
}

#[test]
fn attach_report_prints_the_effective_scale() {
    let mut model = toy_model(1, DType::F32);
    let mut cfg = qv(Method::Lora);
    cfg.rank = 8;
    cfg.alpha = 16.0;
    let report = attach(&mut model, &cfg).unwrap();
    // rora: 16 / sqrt(8) = 5.656854...
    assert_eq!(
        report.to_string(),
        "lora on 2 modules, rule rora; r=8 alpha=16 scale=5.656854"
    );
}

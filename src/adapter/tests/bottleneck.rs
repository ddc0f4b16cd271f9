//! Bottleneck adapters against LLM-Adapters' formulas (`bottleneck.py` `Linear.forward`, written
//! out here with plain matmuls), their init, the merge refusal and the LLM-Adapters file layout.

use candle_core::{DType, Device, Module, Tensor};

use super::fixtures::{max_abs_diff, outputs, rand, toy_model};
use crate::adapter::bottleneck::{Activation, Bottleneck, Placement};
use crate::adapter::bottleneck_io::BIN_FILE;
use crate::adapter::dropout::Dropout;
use crate::adapter::peft_io::{CONFIG_FILE, WEIGHTS_FILE};
use crate::adapter::{
    AdapterConfig, AdapterSpec, Linear, LoraInit, Method, SaveOptions, ScalingRule, Targets,
    attach, load_peft, merge_all, save_peft,
};

/// `s * up(act(down(z)))` written out: `z` `[n, d_in]`.
fn adapter_ref(z: &Tensor, down: &Tensor, up: &Tensor, act: Activation, s: f64) -> Tensor {
    let h = z.matmul(&down.t().unwrap()).unwrap();
    let h = match act {
        Activation::Tanh => h.tanh(),
        Activation::Relu => h.relu(),
        Activation::Silu => h.silu(),
        Activation::Gelu => h.gelu_erf(),
    }
    .unwrap();
    h.matmul(&up.t().unwrap()).unwrap().affine(s, 0.0).unwrap()
}

// Reference: LLM-Adapters bottleneck.py L351-390:
//   mh_adapter:       result = F.linear(x + s * A(x), W, b)
//   output_adapter:   result = F.linear(x, W, b); result = result + s * A(result)
//   parallel_adapter: result = F.linear(x, W, b) + s * A(x)
#[test]
fn forward_is_llm_adapters_formula_for_each_placement() {
    let (out, inp) = (6, 5);
    let w = rand(&[out, inp], 1, DType::F64);
    let bias = rand(&[out], 2, DType::F64);
    let x = rand(&[7, inp], 3, DType::F64);
    for act in [
        Activation::Tanh,
        Activation::Relu,
        Activation::Silu,
        Activation::Gelu,
    ] {
        for (placement, method) in [
            (Placement::Before, Method::Series),
            (Placement::After, Method::Series),
            (Placement::Parallel, Method::Parallel),
        ] {
            let (d_in, d_out) = placement.widths((out, inp));
            let down = rand(&[3, d_in], 4, DType::F64);
            let up = rand(&[d_out, 3], 5, DType::F64);
            let s = 0.7;
            let spec = AdapterSpec {
                method,
                rank: 3,
                alpha: s,
                rule: ScalingRule::Fixed(s),
            };
            let bn = Bottleneck::new(
                spec,
                placement,
                act,
                (out, inp),
                &down,
                &up,
                None,
                Dropout::new(0.0, 0),
            )
            .unwrap();
            let mut lin = Linear::new(w.clone(), Some(bias.clone()));
            lin.set_adapter(Some(Box::new(bn))).unwrap();
            let linear = |z: &Tensor| {
                z.matmul(&w.t().unwrap())
                    .unwrap()
                    .broadcast_add(&bias)
                    .unwrap()
            };
            let want = match placement {
                Placement::Before => linear(&(&x + adapter_ref(&x, &down, &up, act, s)).unwrap()),
                Placement::After => {
                    let h = linear(&x);
                    (&h + adapter_ref(&h, &down, &up, act, s)).unwrap()
                }
                Placement::Parallel => (linear(&x) + adapter_ref(&x, &down, &up, act, s)).unwrap(),
            };
            let got = lin.forward(&x).unwrap();
            let d = max_abs_diff(&got, &want);
            assert!(d < 1e-12, "{placement:?} {act:?}: {d}");
        }
    }
}

fn bottleneck_cfg(method: Method, rule: ScalingRule, targets: &[&str]) -> AdapterConfig {
    let mut c = AdapterConfig::bottleneck(
        method,
        4,
        rule,
        Targets::Names(targets.iter().map(|s| s.to_string()).collect()),
    );
    c.seed = 3;
    c
}

// Reference: LLM-Adapters reset_adapter_parameters: "bert" draws both matrices N(0, 0.02^2),
// "mam_adapter" zeroes adapter_up, so only mam leaves the model unchanged at step 0.
#[test]
fn mam_init_is_the_identity_and_bert_init_is_not() {
    let before = outputs(&toy_model(1, DType::F64), DType::F64);
    for (init, identity) in [(LoraInit::Mam, true), (LoraInit::Bert, false)] {
        let mut m = toy_model(1, DType::F64);
        let mut c = bottleneck_cfg(
            Method::Series,
            ScalingRule::Fixed(1.0),
            &["up_proj", "down_proj"],
        );
        c.init = init;
        attach(&mut m, &c).unwrap();
        let after = outputs(&m, DType::F64);
        let d = before
            .iter()
            .zip(&after)
            .map(|(a, b)| max_abs_diff(a, b))
            .fold(0.0, f64::max);
        assert_eq!(d == 0.0, identity, "{init:?}: {d}");
    }
    // bert's spread is 0.02 (LLM-Adapters' std)
    let mut m = toy_model(1, DType::F64);
    let mut c = bottleneck_cfg(Method::Parallel, ScalingRule::Fixed(1.0), &["up_proj"]);
    c.rank = 64;
    attach(&mut m, &c).unwrap();
    let vars = crate::adapter::trainable_vars(&m);
    let v: Vec<f64> = vars[0]
        .1
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let std = (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
    assert!((std / 0.02 - 1.0).abs() < 0.1, "std {std}");
}

#[test]
fn merging_a_bottleneck_is_refused_and_changes_nothing() {
    let mut m = toy_model(1, DType::F32);
    attach(
        &mut m,
        &bottleneck_cfg(Method::Series, ScalingRule::Fixed(1.0), &["down_proj"]),
    )
    .unwrap();
    let before = outputs(&m, DType::F32);
    let err = merge_all(&mut m).unwrap_err().to_string();
    assert!(err.contains("cannot be merged"), "{err}");
    let after = outputs(&m, DType::F32);
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(max_abs_diff(a, b), 0.0);
    }
}

#[test]
fn series_adapters_have_no_place_on_attention_projections() {
    let mut m = toy_model(1, DType::F32);
    let err = attach(
        &mut m,
        &bottleneck_cfg(Method::Series, ScalingRule::Fixed(1.0), &["q_proj"]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no place"), "{err}");
    assert!(crate::adapter::trainable_vars(&m).is_empty());
}

#[test]
fn invalid_combinations_name_the_field() {
    let mut c = bottleneck_cfg(Method::Series, ScalingRule::Lora, &["down_proj"]);
    assert!(c.validate().unwrap_err().to_string().contains("rule"));
    c.rule = ScalingRule::Fixed(1.0);
    c.init = LoraInit::Kaiming;
    assert!(c.validate().unwrap_err().to_string().contains("init"));
    let mut l = AdapterConfig::new(
        Method::Lora,
        ScalingRule::Learned(1.0),
        4,
        8.0,
        Targets::AllLinear,
    );
    assert!(l.validate().unwrap_err().to_string().contains("rule"));
    l.rule = ScalingRule::Lora;
    l.init = LoraInit::Bert;
    assert!(l.validate().unwrap_err().to_string().contains("init"));
}

// The folder is LLM-Adapters' layout (config fields, key names, shapes), and rora reads it back
// from either weights file with the same outputs.
#[test]
fn save_and_load_round_trip_in_llm_adapters_layout() {
    for (method, rule, targets) in [
        (
            Method::Series,
            ScalingRule::Fixed(0.5),
            vec!["up_proj", "down_proj"],
        ),
        (
            Method::Parallel,
            ScalingRule::Learned(1.0),
            vec!["up_proj", "down_proj"],
        ),
    ] {
        let mut m = toy_model(2, DType::F32);
        let cfg = bottleneck_cfg(method, rule, &targets);
        attach(&mut m, &cfg).unwrap();
        // move the learned scale off its start so a lost scale shows
        for (k, v) in crate::adapter::trainable_vars(&m) {
            if k.ends_with("adapter_scaling") {
                v.set(&Tensor::new(&[1.7f32], &Device::Cpu).unwrap())
                    .unwrap();
            }
        }
        let want = outputs(&m, DType::F32);
        let dir = tempfile::tempdir().unwrap();
        save_peft(&m, &cfg, dir.path(), &SaveOptions::default()).unwrap();

        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(CONFIG_FILE)).unwrap()).unwrap();
        assert_eq!(json["peft_type"], "BOTTLENECK");
        assert_eq!(json["bottleneck_size"], 4);
        assert_eq!(json["non_linearity"], "tanh");
        assert_eq!(json["use_parallel_adapter"], method == Method::Parallel);
        assert_eq!(json["target_modules"], serde_json::json!(targets));
        match rule {
            ScalingRule::Learned(_) => assert_eq!(json["scaling"], "learned"),
            // a float, as LLM-Adapters needs (an int would not set adapter_scaling)
            _ => assert!(json["scaling"].is_f64(), "{}", json["scaling"]),
        }
        let weights =
            candle_core::safetensors::load(dir.path().join(WEIGHTS_FILE), &Device::Cpu).unwrap();
        let down = &weights["base_model.model.model.layers.1.mlp.down_proj.adapter_down.weight"];
        let up = &weights["base_model.model.model.layers.1.mlp.up_proj.adapter_up.weight"];
        // toy: hidden 16, ffn 24; series: down_proj after (16 -> 16), up_proj before (16 -> 16)
        let (down_in, up_out) = if method == Method::Series {
            (16, 16)
        } else {
            (24, 24)
        };
        assert_eq!(down.dims(), &[4, down_in]);
        assert_eq!(up.dims(), &[up_out, 4]);
        assert_eq!(
            weights
                .keys()
                .filter(|k| k.ends_with("adapter_scaling"))
                .count(),
            if method == Method::Parallel { 4 } else { 0 }
        );

        for only_bin in [false, true] {
            if only_bin {
                std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
            }
            let mut fresh = toy_model(2, DType::F32);
            let loaded = load_peft(&mut fresh, dir.path()).unwrap();
            assert_eq!(loaded.config.method, method);
            assert_eq!(loaded.report.modules.len(), 4);
            let got = outputs(&fresh, DType::F32);
            for (a, b) in want.iter().zip(&got) {
                assert_eq!(max_abs_diff(a, b), 0.0, "{method:?} only_bin={only_bin}");
            }
        }
        assert!(dir.path().join(BIN_FILE).exists());
    }
}

// Folders as LLM-Adapters writes them: defaults filled in, suffix matching, refusals by field.
#[test]
fn llm_adapters_configs_are_read_as_it_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let read = |json: serde_json::Value| {
        std::fs::write(dir.path().join(CONFIG_FILE), json.to_string()).unwrap();
        crate::adapter::read_adapter_config(dir.path())
    };
    // no target_modules: LLM-Adapters' LLaMA defaults (get_peft_model fills them in)
    let c =
        read(serde_json::json!({"peft_type": "BOTTLENECK", "use_parallel_adapter": true})).unwrap();
    assert_eq!(c.method, Method::Parallel);
    assert_eq!(c.rank, 256);
    assert_eq!(
        c.targets,
        Targets::Names(vec!["q_proj".into(), "v_proj".into(), "k_proj".into()])
    );
    let c =
        read(serde_json::json!({"peft_type": "BOTTLENECK", "use_adapterp": true, "scaling": 2}))
            .unwrap();
    assert_eq!(c.targets, Targets::Names(vec!["down_proj".into()]));
    assert_eq!(c.rule, ScalingRule::Fixed(2.0));
    // a list entry that is not a projection name matches by suffix, no dot boundary
    let c = read(serde_json::json!({"peft_type": "BOTTLENECK", "target_modules": ["own_proj"]}))
        .unwrap();
    let m = c.validate().unwrap();
    assert!(m.is_target("model.layers.0.mlp.down_proj"));
    assert!(!m.is_target("model.layers.0.mlp.up_proj"));
    for (field, json) in [
        (
            "non_linearity",
            serde_json::json!({"peft_type": "BOTTLENECK", "non_linearity": "swish"}),
        ),
        (
            "scaling",
            serde_json::json!({"peft_type": "BOTTLENECK", "scaling": "big"}),
        ),
        (
            "bias",
            serde_json::json!({"peft_type": "BOTTLENECK", "bias": "all"}),
        ),
        (
            "init_weights",
            serde_json::json!({"peft_type": "BOTTLENECK", "init_weights": "mam"}),
        ),
    ] {
        let err = read(json).unwrap_err().to_string();
        assert!(err.contains(field) && err.contains(CONFIG_FILE), "{err}");
    }
}

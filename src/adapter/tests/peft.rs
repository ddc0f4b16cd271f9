//! PEFT format: round trips, the baked-scale export, a hand-written PEFT adapter, bad files.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};

use super::fixtures::{max_diff_all, outputs, rand, randomize_adapters, toy_model};
use crate::adapter::peft_io::{CONFIG_FILE, WEIGHTS_FILE};
use crate::adapter::{
    AdapterConfig, Method, SaveOptions, ScaleExport, ScalingRule, Targets, attach, load_peft,
    save_peft,
};

fn config(method: Method, rule: ScalingRule) -> AdapterConfig {
    let mut c = AdapterConfig::new(
        method,
        rule,
        4,
        12.0,
        Targets::Names(vec!["q_proj".into(), "v_proj".into(), "down_proj".into()]),
    );
    c.layers = Some(vec![1]);
    c.rank_pattern = vec![("down_proj".into(), 2)];
    c.alpha_pattern = vec![("v_proj".into(), 5.0)];
    c.dropout = 0.05;
    c
}

fn read_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(CONFIG_FILE)).unwrap()).unwrap()
}

#[test]
fn save_then_load_gives_identical_outputs_and_peft_fields() {
    for method in [Method::Lora, Method::Dora] {
        let dir = tempfile::tempdir().unwrap();
        let mut model = toy_model(2, DType::F32);
        let cfg = config(method, ScalingRule::Rora);
        attach(&mut model, &cfg).unwrap();
        randomize_adapters(&model, 4);
        let want = outputs(&model, DType::F32);
        let opts = SaveOptions {
            base_model_name_or_path: Some("tiny".into()),
            ..Default::default()
        };
        save_peft(&model, &cfg, dir.path(), &opts).unwrap();

        let j = read_json(dir.path());
        assert_eq!(j["peft_type"], "LORA");
        assert_eq!(j["task_type"], "CAUSAL_LM");
        assert_eq!(j["bias"], "none");
        assert_eq!(j["r"], 4);
        assert_eq!(j["lora_alpha"], 12);
        assert_eq!(j["use_rslora"], true);
        assert_eq!(j["use_dora"], method == Method::Dora);
        assert_eq!(j["lora_dropout"], 0.05);
        assert_eq!(j["init_lora_weights"], true);
        assert_eq!(
            j["target_modules"],
            serde_json::json!(["down_proj", "q_proj", "v_proj"])
        );
        assert_eq!(j["layers_to_transform"], serde_json::json!([1]));
        assert_eq!(j["rank_pattern"], serde_json::json!({"down_proj": 2}));
        assert_eq!(j["alpha_pattern"], serde_json::json!({"v_proj": 5}));
        assert_eq!(j["base_model_name_or_path"], "tiny");

        let bytes = std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
        let p = "base_model.model.model.layers.1";
        let mut expect = vec![
            (format!("{p}.self_attn.q_proj.lora_A.weight"), vec![4, 16]),
            (format!("{p}.self_attn.q_proj.lora_B.weight"), vec![16, 4]),
            (format!("{p}.self_attn.v_proj.lora_A.weight"), vec![4, 16]),
            (format!("{p}.self_attn.v_proj.lora_B.weight"), vec![8, 4]),
            (format!("{p}.mlp.down_proj.lora_A.weight"), vec![2, 24]),
            (format!("{p}.mlp.down_proj.lora_B.weight"), vec![16, 2]),
        ];
        if method == Method::Dora {
            expect.push((
                format!("{p}.self_attn.q_proj.lora_magnitude_vector"),
                vec![16],
            ));
            expect.push((
                format!("{p}.self_attn.v_proj.lora_magnitude_vector"),
                vec![8],
            ));
            expect.push((format!("{p}.mlp.down_proj.lora_magnitude_vector"), vec![16]));
        }
        expect.sort();
        let mut got: Vec<(String, Vec<usize>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.shape().to_vec()))
            .collect();
        got.sort();
        assert_eq!(got, expect);

        let mut fresh = toy_model(2, DType::F32);
        let loaded = load_peft(&mut fresh, dir.path()).unwrap();
        assert_eq!(loaded.report.modules.len(), 3);
        assert_eq!(loaded.config.rule, ScalingRule::Rora);
        assert_eq!(
            max_diff_all(&want, &outputs(&fresh, DType::F32)),
            0.0,
            "{method:?}"
        );
    }
}

// Baked export: lora_alpha' = alpha * sqrt(r) with use_rslora=false gives PEFT's
// scale alpha'/r = alpha/sqrt(r) (peft LoraLayer.update_layer).
#[test]
fn baked_export_puts_the_rslora_scale_into_lora_alpha() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = toy_model(2, DType::F32);
    let cfg = config(Method::Lora, ScalingRule::Rora);
    attach(&mut model, &cfg).unwrap();
    randomize_adapters(&model, 8);
    let want = outputs(&model, DType::F32);
    let opts = SaveOptions {
        scale: ScaleExport::Baked,
        ..Default::default()
    };
    save_peft(&model, &cfg, dir.path(), &opts).unwrap();
    let j = read_json(dir.path());
    assert_eq!(j["use_rslora"], false);
    let alpha = j["lora_alpha"].as_f64().unwrap();
    assert!(
        (alpha - 12.0 * 2.0).abs() < 1e-12,
        "12 * sqrt(4) = 24, got {alpha}"
    );
    // v_proj (alpha 5, r 4): 5 * 2 = 10; down_proj (alpha 12, r 2): 12 * sqrt 2.
    let ap = j["alpha_pattern"].as_object().unwrap();
    assert_eq!(
        ap[r"model\.layers\.1\.self_attn\.v_proj"].as_f64().unwrap(),
        10.0
    );
    let down = ap[r"model\.layers\.1\.mlp\.down_proj"].as_f64().unwrap();
    assert!((down - 12.0 * 2f64.sqrt()).abs() < 1e-12);
    assert_eq!(ap.len(), 2);

    let mut fresh = toy_model(2, DType::F32);
    let loaded = load_peft(&mut fresh, dir.path()).unwrap();
    assert_eq!(loaded.config.rule, ScalingRule::Lora);
    let d = max_diff_all(&want, &outputs(&fresh, DType::F32));
    assert!(
        d < 1e-6,
        "baked export must reproduce the outputs, diff {d}"
    );
}

/// A safetensors file assembled byte by byte (8-byte header length, JSON header, raw f16 data),
/// as the format specification describes, independent of any writer in this crate.
fn write_f16_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
        }
        header.insert(name.clone(), serde_json::json!({"dtype": "F16", "shape": shape, "data_offsets": [start, data.len()]}));
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}

/// Values exactly representable in f16.
fn pattern(n: usize, m: usize, k: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + k) % m) as f32 / 16.0 - 0.25)
        .collect()
}

fn f64_tensor(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(
        v.iter().map(|x| *x as f64).collect::<Vec<_>>(),
        shape,
        &Device::Cpu,
    )
    .unwrap()
}

/// (name, shape, values) of each fixture tensor.
type Fixture = Vec<(String, Vec<usize>, Vec<f32>)>;

fn fixture_dir(dora: bool) -> (tempfile::TempDir, Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = include_str!("fixtures_peft/adapter_config.json").to_string();
    if dora {
        cfg = cfg.replace(r#""use_dora": false"#, r#""use_dora": true"#);
    }
    std::fs::write(dir.path().join(CONFIG_FILE), cfg).unwrap();
    let p = "base_model.model.model.layers.0.self_attn";
    let mut t = vec![
        (
            format!("{p}.q_proj.lora_A.weight"),
            vec![4, 16],
            pattern(64, 9, 1),
        ),
        (
            format!("{p}.q_proj.lora_B.weight"),
            vec![16, 4],
            pattern(64, 5, 2),
        ),
        (
            format!("{p}.v_proj.lora_A.weight"),
            vec![4, 16],
            pattern(64, 11, 3),
        ),
        (
            format!("{p}.v_proj.lora_B.weight"),
            vec![8, 4],
            pattern(32, 6, 4),
        ),
    ];
    if dora {
        t.push((
            format!("{p}.q_proj.lora_magnitude_vector"),
            vec![16],
            pattern(16, 5, 0).iter().map(|x| x + 2.0).collect(),
        ));
        t.push((
            format!("{p}.v_proj.lora_magnitude_vector"),
            vec![8],
            pattern(8, 3, 0).iter().map(|x| x + 2.0).collect(),
        ));
    }
    write_f16_safetensors(&dir.path().join(WEIGHTS_FILE), &t);
    (dir, t)
}

// Reference: the formulas computed directly in f64 from the fixture values:
// LoRA y = W x + (alpha/r) B A x; DoRA y = (m/n) (W + s B A) x with n = ||W + s B A||_row.
#[test]
fn a_hand_written_peft_adapter_loads_and_computes_the_formula() {
    for dora in [false, true] {
        let (dir, tensors) = fixture_dir(dora);
        let mut model = toy_model(1, DType::F32);
        let loaded = load_peft(&mut model, dir.path()).unwrap();
        assert_eq!(loaded.report.modules.len(), 2);
        assert_eq!(
            loaded.peft.as_ref().unwrap().other["megatron_core"],
            "megatron.core"
        );
        let s = 32.0 / 4.0;
        for (proj, k) in [("q_proj", 0), ("v_proj", 2)] {
            let (_, lin) = model.iter().find(|(p, _)| p.ends_with(proj)).unwrap();
            let a = f64_tensor(&tensors[k].2, &tensors[k].1);
            let b = f64_tensor(&tensors[k + 1].2, &tensors[k + 1].1);
            let w = lin.weight().to_dtype(DType::F64).unwrap();
            let mut wp = (&w + b.matmul(&a).unwrap().affine(s, 0.0).unwrap()).unwrap();
            if dora {
                let m = &tensors[4 + k / 2];
                let m = f64_tensor(&m.2, &m.1);
                let n = wp.sqr().unwrap().sum(1).unwrap().sqrt().unwrap();
                wp = wp
                    .broadcast_mul(&(m / n).unwrap().unsqueeze(1).unwrap())
                    .unwrap();
            }
            let x = rand(&[5, 16], 77, DType::F64);
            let want = x.matmul(&wp.t().unwrap()).unwrap();
            let got = lin
                .forward(&x.to_dtype(DType::F32).unwrap())
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap();
            let d = super::fixtures::max_abs_diff(&want, &got);
            assert!(d < 1e-5, "dora={dora} {proj}: diff {d}");
        }
    }
}

#[test]
fn bad_files_are_errors_naming_the_file_and_tensor() {
    // Wrong shape: lora_B of v_proj written with rank 3.
    let (dir, mut t) = fixture_dir(false);
    t[3] = (t[3].0.clone(), vec![8, 3], pattern(24, 6, 4));
    write_f16_safetensors(&dir.path().join(WEIGHTS_FILE), &t);
    let err = load_peft(&mut toy_model(1, DType::F32), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(WEIGHTS_FILE)
            && err.contains("v_proj.lora_B.weight")
            && err.contains("[8, 3]"),
        "{err}"
    );

    // Missing tensor.
    let (dir, mut t) = fixture_dir(false);
    t.remove(1);
    write_f16_safetensors(&dir.path().join(WEIGHTS_FILE), &t);
    let err = load_peft(&mut toy_model(1, DType::F32), dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("q_proj.lora_B.weight"), "{err}");

    // A module the config does not target.
    let (dir, mut t) = fixture_dir(false);
    t.push((
        "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight".into(),
        vec![4, 16],
        pattern(64, 3, 0),
    ));
    write_f16_safetensors(&dir.path().join(WEIGHTS_FILE), &t);
    let err = load_peft(&mut toy_model(1, DType::F32), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mlp.up_proj") && err.contains("does not target"),
        "{err}"
    );

    // Truncated file.
    let (dir, _) = fixture_dir(false);
    let bytes = std::fs::read(dir.path().join(WEIGHTS_FILE)).unwrap();
    std::fs::write(dir.path().join(WEIGHTS_FILE), &bytes[..bytes.len() / 2]).unwrap();
    let err = load_peft(&mut toy_model(1, DType::F32), dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains(WEIGHTS_FILE), "{err}");

    // Another PEFT method.
    let (dir, _) = fixture_dir(false);
    let cfg = std::fs::read_to_string(dir.path().join(CONFIG_FILE))
        .unwrap()
        .replace(r#""LORA""#, r#""IA3""#);
    std::fs::write(dir.path().join(CONFIG_FILE), cfg).unwrap();
    let err = load_peft(&mut toy_model(1, DType::F32), dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains(CONFIG_FILE) && err.contains("IA3"), "{err}");

    // A model left untouched by a failed load.
    let (dir, mut t) = fixture_dir(false);
    t.remove(3);
    write_f16_safetensors(&dir.path().join(WEIGHTS_FILE), &t);
    let mut model = toy_model(1, DType::F32);
    assert!(load_peft(&mut model, dir.path()).is_err());
    assert!(model.iter().all(|(_, l)| l.adapter().is_none()));
}

// A fixed scale has no PEFT field: it is written as lora_alpha = s * r (scale alpha/r = s).
#[test]
fn fixed_scale_is_exported_baked() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = toy_model(1, DType::F32);
    let cfg = AdapterConfig::new(
        Method::Dora,
        ScalingRule::Fixed(0.7),
        4,
        12.0,
        Targets::AllLinear,
    );
    attach(&mut model, &cfg).unwrap();
    randomize_adapters(&model, 3);
    let want = outputs(&model, DType::F32);
    save_peft(&model, &cfg, dir.path(), &SaveOptions::default()).unwrap();
    let j = read_json(dir.path());
    assert_eq!(j["use_rslora"], false);
    assert!((j["lora_alpha"].as_f64().unwrap() - 2.8).abs() < 1e-12);
    assert_eq!(j["use_dora"], true);
    let mut fresh = toy_model(1, DType::F32);
    load_peft(&mut fresh, dir.path()).unwrap();
    assert!(max_diff_all(&want, &outputs(&fresh, DType::F32)) < 1e-6);
}

// An adapted set that is not "names x layers" is written as full module paths, which PEFT
// matches exactly (`key in config.target_modules`).
#[test]
fn irregular_target_sets_are_written_as_full_paths() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = toy_model(2, DType::F32);
    let re = r"model\.layers\.0\.self_attn\.q_proj|model\.layers\.1\.self_attn\.v_proj";
    let cfg = AdapterConfig::new(
        Method::Lora,
        ScalingRule::Lora,
        2,
        3.0,
        Targets::Regex(re.into()),
    );
    attach(&mut model, &cfg).unwrap();
    randomize_adapters(&model, 6);
    let want = outputs(&model, DType::F32);
    save_peft(&model, &cfg, dir.path(), &SaveOptions::default()).unwrap();
    let j = read_json(dir.path());
    assert_eq!(
        j["target_modules"],
        serde_json::json!([
            "model.layers.0.self_attn.q_proj",
            "model.layers.1.self_attn.v_proj"
        ])
    );
    assert_eq!(j["layers_to_transform"], serde_json::Value::Null);
    let mut fresh = toy_model(2, DType::F32);
    let loaded = load_peft(&mut fresh, dir.path()).unwrap();
    assert_eq!(loaded.report.modules.len(), 2);
    assert_eq!(max_diff_all(&want, &outputs(&fresh, DType::F32)), 0.0);
}

#[test]
fn loading_onto_an_adapted_model_is_an_error() {
    let (dir, _) = fixture_dir(false);
    let mut model = toy_model(1, DType::F32);
    load_peft(&mut model, dir.path()).unwrap();
    let err = load_peft(&mut model, dir.path()).unwrap_err().to_string();
    assert!(err.contains("already has an adapter"), "{err}");
}

// What PEFT 0.21's LoraConfig can say that rora does not implement is refused naming the field,
// before any tensor is read; the defaults PEFT writes for the same fields are accepted.
#[test]
fn unsupported_peft_fields_are_refused_by_name() {
    let refused = [
        (r#""bias": "all""#, "bias"),
        (r#""modules_to_save": ["lm_head"]"#, "modules_to_save"),
        (r#""exclude_modules": ["v_proj"]"#, "exclude_modules"),
        (r#""lora_bias": true"#, "lora_bias"),
        (r#""use_qalora": true"#, "use_qalora"),
        (
            r#""trainable_token_indices": [1, 2]"#,
            "trainable_token_indices",
        ),
        (r#""layer_replication": [[0, 1]]"#, "layer_replication"),
        (
            r#""target_parameters": ["mlp.experts"]"#,
            "target_parameters",
        ),
        (
            r#""init_lora_weights": "pissa_niter_4""#,
            "init_lora_weights",
        ),
        (r#""init_lora_weights": "olora""#, "init_lora_weights"),
        (r#""layers_pattern": "blocks""#, "layers_pattern"),
        (r#""peft_type": "LOHA""#, "peft_type"),
        (r#""fan_in_fan_out": true"#, "fan_in_fan_out"),
    ];
    for (field, name) in refused {
        let (dir, _) = fixture_dir(false);
        let path = dir.path().join(CONFIG_FILE);
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (k, val) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(
            &format!("{{{field}}}"),
        )
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
        v[&k] = val;
        std::fs::write(&path, v.to_string()).unwrap();
        let err = crate::adapter::read_peft_config(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(name) && err.contains(CONFIG_FILE),
            "{field}: {err}"
        );
        let mut model = toy_model(1, DType::F32);
        assert!(load_peft(&mut model, dir.path()).is_err(), "{field}");
    }
    // PEFT's defaults for the same fields (as save_pretrained writes them) load.
    let (dir, _) = fixture_dir(false);
    let path = dir.path().join(CONFIG_FILE);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (k, val) in [
        ("exclude_modules", serde_json::Value::Null),
        ("lora_bias", false.into()),
        ("use_qalora", false.into()),
        ("qalora_group_size", 16.into()),
        ("trainable_token_indices", serde_json::Value::Null),
        ("layer_replication", serde_json::Value::Null),
        ("target_parameters", serde_json::Value::Null),
        ("layers_pattern", serde_json::Value::Null),
        ("loftq_config", serde_json::json!({})),
        ("megatron_core", "megatron.core".into()),
        ("peft_version", "0.21.2".into()),
        (
            "runtime_config",
            serde_json::json!({"ephemeral_gpu_offload": false}),
        ),
    ] {
        v[k] = val;
    }
    std::fs::write(&path, v.to_string()).unwrap();
    load_peft(&mut toy_model(1, DType::F32), dir.path()).unwrap();
}

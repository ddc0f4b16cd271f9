//! Structured pruning: removing heads/channels that contribute nothing leaves the logits as they
//! were; pruned (per-layer) models survive an HF save -> load exactly.

use candle_core::{DType, Tensor};

use super::{logits, max_diff, sequences, tiny};
use crate::model::config::{LayerDims, module_path};
use crate::model::{LoadOptions, LoadedModel, ModelSource, load};
use crate::prune::{
    Importance, LayerKeep, PruneError, StructuredPlan, StructuredSpec, apply_structured,
    collect_input_norms, plan_structured,
};

/// Zero o_proj input columns `cols` and down_proj input columns `chans` of `layer`.
fn zero_columns(model: &mut crate::model::Llama, layer: usize, cols: &[usize], chans: &[usize]) {
    for (proj, zero) in [("o_proj", cols), ("down_proj", chans)] {
        let path = module_path(layer, proj);
        for (p, l) in model.linears_mut() {
            if p == path {
                let mut w: Vec<Vec<f32>> = l.weight().to_vec2().unwrap();
                for row in &mut w {
                    for c in zero {
                        row[*c] = 0.0;
                    }
                }
                let (o, i) = l.shape();
                let t = Tensor::from_vec(w.concat(), (o, i), l.weight().device()).unwrap();
                l.set_weight(t);
            }
        }
    }
}

/// Reference: a head whose o_proj input columns are zero and an FFN channel whose down_proj column
/// is zero add nothing to the residual stream, so removing them must not change the logits.
#[test]
fn removing_dead_heads_and_channels_keeps_the_logits() {
    let mut m = tiny(7);
    // Tiny: head_dim 16, 4 heads over 2 KV heads (rep 2). Layer 0 group 1 = heads 2, 3 = o_proj
    // columns 32..64; layer 1 group 0 = columns 0..32. 32 of 128 FFN channels per layer.
    let dead0: Vec<usize> = (0..128).filter(|c| c % 4 == 1).collect();
    let dead1: Vec<usize> = (0..32).map(|c| c * 3 + 5).collect();
    zero_columns(&mut m, 0, &(32..64).collect::<Vec<_>>(), &dead0);
    zero_columns(&mut m, 1, &(0..32).collect::<Vec<_>>(), &dead1);
    let seqs = sequences();
    let before = logits(&m, &seqs[0]);
    let calib = collect_input_norms(&mut m, &seqs).unwrap();
    let spec = StructuredSpec {
        head_ratio: 0.5,
        ffn_ratio: 0.25,
        importance: Importance::Activation,
        global: false,
    };
    let plan = plan_structured(&m, &spec, Some(&calib)).unwrap();
    assert_eq!(plan.layers[0].kv_groups, [0]);
    assert_eq!(plan.layers[1].kv_groups, [1]);
    let alive = |dead: &[usize]| (0..128).filter(|c| !dead.contains(c)).collect::<Vec<_>>();
    assert_eq!(plan.layers[0].ffn_channels, alive(&dead0));
    assert_eq!(plan.layers[1].ffn_channels, alive(&dead1));
    let small = apply_structured(&m, &plan).unwrap();
    let dims = LayerDims {
        n_heads: 2,
        n_kv_heads: 1,
        intermediate_size: 96,
    };
    assert_eq!(small.config().layers, [dims, dims]);
    assert!(small.num_parameters() < m.num_parameters());
    let after = logits(&small, &seqs[0]);
    let d = max_diff(&before, &after);
    assert!(d < 1e-5, "logits moved by {d}");
    // Removing a live group instead does change them (the check above can fail).
    let mut wrong = plan.clone();
    wrong.layers[0].kv_groups = vec![1];
    let d = max_diff(
        &before,
        &logits(&apply_structured(&m, &wrong).unwrap(), &seqs[0]),
    );
    assert!(d > 1e-3, "removing a live head changed logits only by {d}");
}

#[test]
fn magnitude_importance_removes_the_smallest_group_and_global_gives_per_layer_dims() {
    let m = tiny(8);
    let spec = StructuredSpec {
        head_ratio: 0.5,
        ffn_ratio: 0.5,
        importance: Importance::Magnitude,
        global: true,
    };
    let plan = plan_structured(&m, &spec, None).unwrap();
    let groups: usize = plan.layers.iter().map(|l| l.kv_groups.len()).sum();
    let chans: usize = plan.layers.iter().map(|l| l.ffn_channels.len()).sum();
    assert_eq!((groups, chans), (2, 128));
    assert!(plan.layers.iter().all(|l| !l.kv_groups.is_empty()));
    let small = apply_structured(&m, &plan).unwrap();
    assert_eq!(small.config().layers.len(), 2);
    assert!(
        matches!(
            plan_structured(
                &m,
                &StructuredSpec {
                    head_ratio: 1.0,
                    ..spec
                },
                None
            ),
            Err(PruneError::BadRatio { .. })
        ),
        "ratio 1 would remove every head"
    );
    assert!(matches!(
        plan_structured(
            &m,
            &StructuredSpec {
                importance: Importance::Activation,
                ..spec
            },
            None
        ),
        Err(PruneError::Plan(_))
    ));
}

#[test]
fn pruned_per_layer_model_round_trips_through_an_hf_dir() {
    let loaded = load(
        &ModelSource::parse("random:tiny,seed=9,std=0.2").unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    let plan = StructuredPlan {
        layers: vec![
            LayerKeep {
                kv_groups: vec![1],
                ffn_channels: (0..128).filter(|c| c % 3 != 0).collect(),
            },
            LayerKeep {
                kv_groups: vec![0, 1],
                ffn_channels: (0..40).collect(),
            },
        ],
    };
    let small = apply_structured(&loaded.model, &plan).unwrap();
    assert!(!small.config().is_uniform());
    let pruned = LoadedModel {
        config: small.config().clone(),
        model: small,
        tokenizer: loaded.tokenizer.clone(),
        special: loaded.special.clone(),
        chat_template: loaded.chat_template.clone(),
        source: "pruned".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    pruned.save_hf_dir(dir.path()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(text.contains("rora_layer_dims"), "{text}");
    let back = load(
        &ModelSource::HfDir(dir.path().into()),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(back.config.layers, pruned.config.layers);
    assert_eq!(back.config, pruned.config);
    let a = pruned.model.named_tensors();
    let b: std::collections::HashMap<_, _> = back.model.named_tensors().into_iter().collect();
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        let u = &b[name];
        assert_eq!(t.dims(), u.dims(), "{name}");
        let d = (t.to_dtype(DType::F32).unwrap() - u.to_dtype(DType::F32).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "{name} changed by {d}");
    }
    let s = &sequences()[1];
    assert_eq!(logits(&pruned.model, s), logits(&back.model, s));
    let bad = StructuredPlan {
        layers: vec![plan.layers[0].clone()],
    };
    assert!(matches!(
        apply_structured(&loaded.model, &bad),
        Err(PruneError::Plan(_))
    ));
}

/// Reference: the predicted count must equal the pruned model's own `num_parameters`.
#[test]
fn a_parameter_budget_gives_a_ratio_whose_model_fits() {
    use crate::prune::{predicted_params, ratio_for_target};
    let m = tiny(12);
    assert_eq!(predicted_params(m.config(), 0.0), m.num_parameters());
    let target = m.num_parameters() * 4 / 5;
    let r = ratio_for_target(m.config(), target).unwrap();
    assert!(r > 0.0 && r < 1.0, "{r}");
    let spec = StructuredSpec {
        head_ratio: r,
        ffn_ratio: r,
        importance: Importance::Magnitude,
        global: false,
    };
    let small = apply_structured(&m, &plan_structured(&m, &spec, None).unwrap()).unwrap();
    assert_eq!(small.num_parameters(), predicted_params(m.config(), r));
    assert!(small.num_parameters() <= target);
    // A slightly smaller ratio no longer fits (the ratio is the least that does).
    assert!(predicted_params(m.config(), r - 1e-6) > target);
    assert!(matches!(
        ratio_for_target(m.config(), 1000),
        Err(PruneError::Plan(_))
    ));
}

//! Reference values are hand-computed from the published config.json of each shape (see
//! `shapes.rs`) and the formulas in the module docs; the arithmetic is written out beside each.

use super::*;
use crate::plan::shapes;

fn llama8b() -> LlamaConfig {
    shapes::by_name("llama-8b").expect("known shape")
}

#[test]
fn llama3_8b_weights_in_bf16_are_16_06_gb() {
    let c = llama8b();
    // embeddings 128256*4096*2 (untied) = 1_050_673_152
    // per layer: q 4096^2 + k,v 2*4096*1024 + o 4096^2 + 3*4096*14336 + 2 norms*4096 = 218_112_000
    // 32 layers = 6_979_584_000; + final norm 4096
    assert_eq!(base_params(&c), 8_030_261_248);
    let e = estimate(&MemoryInput {
        config: &c,
        dtype_bytes: 2,
        adapted: vec![],
        method: crate::adapter::Method::Lora,
        rule: crate::adapter::ScalingRule::Lora,
        micro_batch: 1,
        seq: 1,
    });
    assert_eq!(e.weights, 16_060_522_496);
    assert_eq!(human(e.weights), "16.06 GB");
}

#[test]
fn llama3_8b_lora_r8_all_linear_adapter_and_optimizer_state() {
    let c = llama8b();
    // per layer, r=8: q 8*(4096+4096) + k,v 2*8*(4096+1024) + o 8*8192 + gate,up,down 3*8*(4096+14336)
    //   = 65_536 + 81_920 + 65_536 + 442_368 = 655_360; 32 layers = 20_971_520 (PEFT's count too)
    let mut m = MemoryInput {
        config: &c,
        dtype_bytes: 2,
        adapted: all_projections(&c, 8),
        method: crate::adapter::Method::Lora,
        rule: crate::adapter::ScalingRule::Lora,
        micro_batch: 1,
        seq: 1,
    };
    let e = estimate(&m);
    assert_eq!(e.adapters, 20_971_520 * 4);
    assert_eq!(e.gradients, 20_971_520 * 4);
    assert_eq!(e.optimizer, 20_971_520 * 8);
    // DoRA adds `out` per projection: 4096+1024+1024+4096+14336+14336+4096 = 43_008 per layer
    m.method = crate::adapter::Method::Dora;
    assert_eq!(estimate(&m).adapters, (20_971_520 + 32 * 43_008) * 4);
}

#[test]
fn activations_of_a_tiny_shape_by_hand() {
    // h=64, 1 layer, 4 heads of 16 (q=64), 2 kv heads (kv=32), ffn 128, vocab 100, f32,
    // rank 4 on q_proj and v_proj, micro-batch 2 x seq 8 = 16 tokens.
    let c = LlamaConfig {
        vocab_size: 100,
        hidden_size: 64,
        head_dim: 16,
        layers: vec![crate::model::config::LayerDims {
            n_heads: 4,
            n_kv_heads: 2,
            intermediate_size: 128,
        }],
        rms_norm_eps: 1e-5,
        rope_theta: 1e4,
        rope_scaling: None,
        max_position_embeddings: 64,
        tie_word_embeddings: false,
        bos_token_id: None,
        eos_token_ids: vec![],
    };
    let names = ["q_proj".to_string(), "v_proj".to_string()];
    let adapted = select_projections(&c, 4, Some(&names), None, None);
    assert_eq!(adapted, vec![(0, "q_proj", 4), (0, "v_proj", 4)]);
    let e = estimate(&MemoryInput {
        config: &c,
        dtype_bytes: 4,
        adapted,
        method: crate::adapter::Method::Lora,
        rule: crate::adapter::ScalingRule::Lora,
        micro_batch: 2,
        seq: 8,
    });
    // per token, layer: 4*(4*64 + 2*64 + 2*32 + 4*128 + 4 heads*8) = 4*992 = 3968, + A x: 4*(4+4) = 32
    // embedding output 4*64 = 256, logits 4*2*100 = 800  -> 5056 per token, x16 tokens
    assert_eq!(e.activations, 80_896);
    // adapters: q 4*(64+64) + v 4*(32+64) = 512 + 384 = 896 params, f32
    assert_eq!(e.adapters, 3584);
    assert_eq!(e.optimizer, 7168);
    // weights: emb 2*100*64 + q 4096 + k,v 2*2048 + o 4096 + 3*8192 + norms 128 + final 64, f32
    assert_eq!(
        e.weights,
        (12_800 + 4096 + 4096 + 4096 + 24_576 + 128 + 64) * 4
    );
    assert_eq!(
        e.total(),
        e.weights + e.adapters + e.gradients + e.optimizer + e.activations
    );
}

#[test]
fn layer_and_regex_selection() {
    let c = llama8b();
    let re = regex::Regex::new(r"\.mlp\.").expect("valid regex");
    let sel = select_projections(&c, 16, None, Some(&re), Some(&[0, 31]));
    assert_eq!(sel.len(), 6);
    assert!(
        sel.iter()
            .all(|(i, p, r)| (*i == 0 || *i == 31) && p.ends_with("_proj") && *r == 16)
    );
    assert!(
        sel.iter()
            .all(|(_, p, _)| ["gate_proj", "up_proj", "down_proj"].contains(p))
    );
}

#[test]
fn sizes_parse_with_units_and_device_names() {
    assert_eq!(parse_size("80GB"), Ok(80_000_000_000));
    assert_eq!(parse_size("141 GiB"), Ok(141 * (1u64 << 30)));
    assert_eq!(parse_size("512MiB"), Ok(512 << 20));
    assert_eq!(parse_size("1000"), Ok(1000));
    assert_eq!(parse_size("H200"), Ok(143_771 << 20));
    assert!(parse_size("lots").is_err());
    assert!(parse_size("12 parsecs").is_err());
    assert_eq!(human(999), "999 B");
    assert_eq!(human(1_500_000), "1.50 MB");
}

#[test]
fn hub_ids_map_to_known_shapes() {
    let c = shapes::by_hub_id("meta-llama/Meta-Llama-3-8B").expect("known");
    assert_eq!(base_params(&c), 8_030_261_248);
    // Llama-3.2-1B: tied embeddings, 1_235_814_400 parameters (its model card's count)
    let c = shapes::by_name("llama-1b").expect("known");
    assert_eq!(base_params(&c), 1_235_814_400);
    assert!(shapes::by_hub_id("someone/unknown").is_none());
}

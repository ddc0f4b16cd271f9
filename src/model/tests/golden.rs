//! The tiny GGUF fixture against its golden file (numpy forward with interleaved RoPE on the
//! GGUF's Q/K, so this also checks the Q/K un-permutation and the byte tokenizer).

use candle_core::{DType, Device, IndexOp, Tensor};

use super::fixture;
use crate::lm::CausalLm;
use crate::model::{LoadOptions, ModelSource, load};

#[test]
fn tiny_gguf_matches_golden_ids_and_logits() {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("tiny-random-llama.golden.json")).unwrap(),
    )
    .unwrap();
    let m = load(
        &ModelSource::Gguf(fixture("tiny-random-llama.gguf")),
        &LoadOptions::default(),
    )
    .unwrap();
    let text = golden["input_text"].as_str().unwrap();
    let enc = m.tokenizer.encode(text, true).unwrap();
    let want_ids: Vec<u32> = golden["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(enc.get_ids(), want_ids.as_slice());
    assert_eq!(m.tokenizer.decode(&want_ids, true).unwrap(), text);

    let t = want_ids.len();
    let input = Tensor::from_vec(want_ids, (1, t), &Device::Cpu).unwrap();
    let mask = Tensor::ones((1, t), DType::U32, &Device::Cpu).unwrap();
    let logits = m.model.forward(&input, &mask).unwrap();
    let last: Vec<f32> = logits.i((0, t - 1)).unwrap().to_vec1().unwrap();
    let want: Vec<f64> = golden["logits_last_row"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(last.len(), want.len());
    let worst = last
        .iter()
        .zip(&want)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-4, "max |logit - golden| = {worst}");
    let argmax: Vec<u32> = logits.argmax(2).unwrap().i(0).unwrap().to_vec1().unwrap();
    let want_argmax: Vec<u32> = golden["argmax"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(argmax, want_argmax);
    assert_eq!(m.special.eos, vec![2]);
    assert!(m.config.tie_word_embeddings);
}

#[test]
fn tiny_gguf_control_tokens_are_special() {
    let m = load(
        &ModelSource::Gguf(fixture("tiny-random-llama.gguf")),
        &LoadOptions::default(),
    )
    .unwrap();
    let enc = m
        .tokenizer
        .encode("<|im_start|>hi<|im_end|>", true)
        .unwrap();
    assert_eq!(enc.get_ids(), &[1, b'h' as u32 + 3, b'i' as u32 + 3, 2]);
    assert_eq!(m.tokenizer.decode(enc.get_ids(), true).unwrap(), "hi");
}

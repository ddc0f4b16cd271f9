//! Tests on the real SmolLM2-135M-Instruct GGUF, skipped (with a message) when the shared assets
//! are absent. References (ASSETS.md): an independent numpy forward gives perplexity about 6.7
//! on plain English and answers "Paris".

use std::path::PathBuf;

use super::shared_dir;
use crate::model::chat::{ChatMessage, render_chat};
use crate::model::generate::{greedy, nll};
use crate::model::{LoadOptions, LoadedModel, ModelSource, load};

fn smollm2() -> Option<LoadedModel> {
    let p: PathBuf = shared_dir().join("assets/models/smollm2-135m-instruct-q4_1.gguf");
    if !p.exists() {
        eprintln!("SKIP: {} not found (set RORA_SHARED_DIR)", p.display());
        return None;
    }
    Some(load(&ModelSource::Gguf(p), &LoadOptions::default()).unwrap())
}

/// Plain English (tests/fixtures/english.txt, written for this test): 68 tokens.
pub const PARAGRAPH: &str = include_str!("../../../tests/fixtures/english.txt");

#[test]
fn smollm2_tokenizer_splits_digits_and_keeps_specials() {
    let Some(m) = smollm2() else { return };
    let enc = m.tokenizer.encode("<|im_start|>user 2024", true).unwrap();
    let toks: Vec<String> = enc
        .get_ids()
        .iter()
        .map(|&i| m.tokenizer.id_to_token(i).unwrap())
        .collect();
    assert_eq!(toks, ["<|im_start|>", "user", "Ġ", "2", "0", "2", "4"]);
    assert_eq!(m.special.eos, vec![2]);
    assert_eq!(m.config.n_layers(), 30);
    assert!(m.config.tie_word_embeddings);
}

#[test]
fn smollm2_perplexity_is_single_digit() {
    let Some(m) = smollm2() else { return };
    let ids = m
        .tokenizer
        .encode(PARAGRAPH, false)
        .unwrap()
        .get_ids()
        .to_vec();
    let (total, n) = nll(&m.model, &ids, 512).unwrap();
    let ppl = (total / n as f64).exp();
    eprintln!("SmolLM2 perplexity on {n} tokens: {ppl:.3}");
    assert!(ppl > 1.0 && ppl < 10.0, "perplexity {ppl}");
}

#[test]
fn smollm2_answers_paris() {
    let Some(m) = smollm2() else { return };
    let template = m.chat_template.as_deref().unwrap();
    let prompt = render_chat(
        template,
        &[ChatMessage::user("What is the capital of France?")],
        true,
        "<|im_start|>",
        "<|im_end|>",
    )
    .unwrap();
    assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt:?}");
    let ids = m
        .tokenizer
        .encode(prompt, false)
        .unwrap()
        .get_ids()
        .to_vec();
    let out = greedy(&m.model, &[ids], 12, &m.special.eos, m.special.pad_id()).unwrap();
    let text = m.tokenizer.decode(&out[0], true).unwrap();
    eprintln!("SmolLM2 answer: {text:?}");
    assert!(text.contains("Paris"), "{text:?}");
}

//! GGUF files with SentencePiece vocabularies (`tokenizer.ggml.model = llama`): a tiny GGUF written
//! here (candle's writer; the vocabulary of `tests/interop/write_spm_gguf.py`,
//! `tests/fixtures/spm/vocab.json`: `<unk>`, `<s>`, `</s>`, 256 byte tokens, scored pieces, one
//! user-defined token) loads to a tokenizer that
//! encodes and decodes exactly as `tests/fixtures/spm/tokenizer.json`: the LLaMA-2-style
//! tokenizer.json for the same vocabulary, its merges derived by transformers 5.24's GGUF reader
//! (`tests/interop/spm_reference.py` says how it was made).

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Value;
use tokenizers::Tokenizer;

use super::quant::write_gguf;
use crate::model::tokenizer::spm_merges;
use crate::model::{LoadOptions, ModelSource, RandomSpec, load};

/// The vocabulary `tests/interop/write_spm_gguf.py` writes: tokens, scores, token types.
fn vocab() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    #[derive(serde::Deserialize)]
    struct Vocab {
        tokens: Vec<String>,
        scores: Vec<f32>,
        types: Vec<i32>,
    }
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spm/vocab.json");
    let v: Vocab = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    (v.tokens, v.scores, v.types)
}

/// A one-layer random model with the SentencePiece vocabulary, written as GGUF with `flags`
/// (`add_bos_token`, `add_eos_token`, `add_space_prefix`) and loaded back: its tokenizer.
fn gguf_tokenizer(dir: &std::path::Path, flags: &[(&str, bool)]) -> Tokenizer {
    let (tokens, scores, types) = vocab();
    let mut spec = RandomSpec::uniform(32, 1, 2, 2, 64, 5);
    spec.config.vocab_size = tokens.len();
    let m = load(&ModelSource::Random(spec), &LoadOptions::default()).unwrap();
    let mut extra: Vec<(String, Value)> = vec![
        ("tokenizer.ggml.model".into(), Value::String("llama".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array(scores.into_iter().map(Value::F32).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.unknown_token_id".into(), Value::U32(0)),
    ];
    for (k, v) in flags {
        extra.push((format!("tokenizer.ggml.{k}"), Value::Bool(*v)));
    }
    let extra: Vec<(&str, Value)> = extra.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let name = flags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let path = dir.join(format!("spm{name}.gguf"));
    write_gguf(&m, GgmlDType::F32, &path, &extra);
    load(&ModelSource::Gguf(path), &LoadOptions::default())
        .unwrap()
        .tokenizer
}

/// The error of loading the SentencePiece GGUF with `extra` metadata replaced.
fn gguf_error(dir: &std::path::Path, name: &str, extra: &[(&str, Value)]) -> String {
    let (tokens, scores, types) = vocab();
    let mut spec = RandomSpec::uniform(32, 1, 2, 2, 64, 5);
    spec.config.vocab_size = tokens.len();
    let m = load(&ModelSource::Random(spec), &LoadOptions::default()).unwrap();
    let mut meta: Vec<(&str, Value)> = vec![
        ("tokenizer.ggml.model", Value::String("llama".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.scores",
            Value::Array(scores.into_iter().map(Value::F32).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
    ];
    for (k, v) in extra {
        meta.retain(|(m, _)| m != k);
        meta.push((k, v.clone()));
    }
    let path = dir.join(name);
    write_gguf(&m, GgmlDType::F32, &path, &meta);
    match load(&ModelSource::Gguf(path), &LoadOptions::default()) {
        Ok(_) => panic!("{name} loaded"),
        Err(e) => e.to_string(),
    }
}

// Refusals name the file and the field.
#[test]
fn bad_sentencepiece_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let short = gguf_error(
        dir.path(),
        "short.gguf",
        &[("tokenizer.ggml.scores", Value::Array(vec![Value::F32(0.0)]))],
    );
    assert!(
        short.contains("short.gguf")
            && short.contains("tokenizer.ggml.scores has 1 entries for 289 tokens"),
        "{short}"
    );
    let text = gguf_error(
        dir.path(),
        "text.gguf",
        &[(
            "tokenizer.ggml.scores",
            Value::Array(vec![Value::String("x".into())]),
        )],
    );
    assert!(
        text.contains("tokenizer.ggml.scores: expected an array of numbers"),
        "{text}"
    );
    let other = gguf_error(
        dir.path(),
        "bert.gguf",
        &[("tokenizer.ggml.model", Value::String("bert".into()))],
    );
    assert!(
        other.contains("tokenizer.ggml.model `bert` is not supported (byte-level BPE `gpt2`, SentencePiece `llama`)"),
        "{other}"
    );
}

fn reference() -> Tokenizer {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spm/tokenizer.json");
    Tokenizer::from_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const TEXTS: [&str; 14] = [
    "Hello world",
    " the cat",
    "hello  world",
    "über 日本",
    "<|im_start|>the",
    "<s>the</s> a cat",
    "",
    "\n",
    " ",
    "the\tcat\r\n",
    "ǅ😀",
    "at or at",
    "The cat sat on the mat.",
    "world hello the",
];

#[test]
fn sentencepiece_gguf_encodes_and_decodes_as_its_tokenizer_json() {
    let dir = tempfile::tempdir().unwrap();
    let got = gguf_tokenizer(dir.path(), &[]);
    let want = reference();
    for text in TEXTS {
        for special in [true, false] {
            let g = got.encode(text, special).unwrap();
            let w = want.encode(text, special).unwrap();
            assert_eq!(g.get_ids(), w.get_ids(), "{text:?} special={special}");
            assert_eq!(g.get_offsets(), w.get_offsets(), "{text:?}");
            for skip in [true, false] {
                assert_eq!(
                    got.decode(g.get_ids(), skip).unwrap(),
                    want.decode(w.get_ids(), skip).unwrap(),
                    "{text:?} skip={skip}"
                );
            }
        }
    }
    // by hand: BOS; `▁` alone (no `▁H`), byte fallback for `H` (0x48 -> id 3 + 0x48), `ello`,
    // `▁world`; decoding drops the prefix space again
    let e = got.encode("Hello world", true).unwrap();
    assert_eq!(e.get_ids(), &[1, 277, 75, 273, 276]);
    assert_eq!(got.decode(e.get_ids(), true).unwrap(), "Hello world");
    assert_eq!(got.decode(e.get_ids(), false).unwrap(), "<s> Hello world");
    // the merges are transformers' (score, then longer left, then longer right, then file order)
    let (tokens, scores, _) = vocab();
    let scores: Vec<f64> = scores.into_iter().map(f64::from).collect();
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/spm/tokenizer.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let want_merges: Vec<(String, String)> =
        serde_json::from_value(fixture["model"]["merges"].clone()).unwrap();
    assert_eq!(spm_merges(&tokens, &scores), want_merges);
}

#[test]
fn sentencepiece_gguf_flags_bos_eos_and_space_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let t = gguf_tokenizer(
        dir.path(),
        &[("add_bos_token", false), ("add_eos_token", true)],
    );
    // `▁the` (265) then EOS (2), no BOS
    assert_eq!(t.encode("the", true).unwrap().get_ids(), &[265, 2]);
    let t = gguf_tokenizer(dir.path(), &[("add_space_prefix", false)]);
    // no `▁` in front: `t` + `he`; a space inside still becomes `▁`
    assert_eq!(t.encode("the", false).unwrap().get_ids(), &[279, 260]);
    assert_eq!(
        t.encode("the cat", false).unwrap().get_ids(),
        &[279, 260, 267]
    );
    assert_eq!(t.decode(&[279, 260, 267], true).unwrap(), "the cat");
}

//! Bad input gives a typed error that names the file and the tensor or field at fault.

use std::path::Path;

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Value;

use super::fixture;
use super::quant::{random_loaded, write_gguf};
use crate::model::{LoadOptions, ModelError, ModelSource, load};

fn load_dir(d: &Path) -> ModelError {
    match load(&ModelSource::HfDir(d.into()), &LoadOptions::default()) {
        Ok(_) => panic!("loading {} should fail", d.display()),
        Err(e) => e,
    }
}

fn load_gguf(p: &Path) -> ModelError {
    match load(&ModelSource::Gguf(p.into()), &LoadOptions::default()) {
        Ok(_) => panic!("loading {} should fail", p.display()),
        Err(e) => e,
    }
}

fn saved_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    random_loaded(true).save_hf_dir(d.path()).unwrap();
    d
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

#[test]
fn truncated_safetensors_names_the_file() {
    let d = saved_dir();
    let p = d.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_dir(d.path());
    assert!(matches!(e, ModelError::CorruptSafetensors { .. }), "{e:?}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn wrong_shape_names_the_tensor() {
    let d = saved_dir();
    edit_config(d.path(), |v| v["intermediate_size"] = 128.into());
    let e = load_dir(d.path());
    assert!(
        matches!(&e, ModelError::WrongShape { tensor, .. } if tensor == "model.layers.0.mlp.gate_proj.weight"),
        "{e:?}"
    );
    assert!(e.to_string().contains("[128, 256]"), "{e}");
}

#[test]
fn missing_tensor_names_the_tensor() {
    let d = saved_dir();
    // untied in the config, but the file has no lm_head
    edit_config(d.path(), |v| v["tie_word_embeddings"] = false.into());
    let e = load_dir(d.path());
    assert!(
        matches!(&e, ModelError::MissingTensor { tensor, .. } if tensor == "lm_head.weight"),
        "{e:?}"
    );
}

#[test]
fn config_missing_field_names_file_and_field() {
    let d = saved_dir();
    edit_config(d.path(), |v| {
        v.as_object_mut().unwrap().remove("num_attention_heads");
    });
    let e = load_dir(d.path());
    assert!(
        matches!(&e, ModelError::MissingField { field, .. } if field == "num_attention_heads"),
        "{e:?}"
    );
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn tokenizer_larger_than_vocab_is_a_mismatch() {
    let d = saved_dir();
    edit_config(d.path(), |v| v["vocab_size"] = 200.into());
    let e = load_dir(d.path());
    assert!(
        matches!(
            e,
            ModelError::VocabMismatch {
                tokenizer: 259,
                model: 200,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
}

#[test]
fn truncated_gguf_names_the_file_and_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("tiny-random-llama.gguf")).unwrap();
    let header = dir.path().join("header.gguf");
    std::fs::write(&header, &bytes[..2000]).unwrap();
    let e = load_gguf(&header);
    assert!(matches!(e, ModelError::CorruptGguf { .. }), "{e:?}");
    assert!(
        e.to_string().contains("header.gguf") && e.to_string().contains("truncated"),
        "{e}"
    );
    let data = dir.path().join("data.gguf");
    std::fs::write(&data, &bytes[..bytes.len() - 100]).unwrap();
    let e = load_gguf(&data);
    assert!(
        e.to_string().contains("data.gguf") && e.to_string().contains("output_norm.weight"),
        "{e}"
    );
    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"not a gguf file at all").unwrap();
    assert!(load_gguf(&garbage).to_string().contains("magic"));
}

#[test]
fn unsupported_quant_type_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("iq.gguf");
    write_gguf(&random_loaded(true), GgmlDType::F32, &p, &[]);
    // Patch the type of blk.0.attn_v.weight to IQ2_XXS (16): name, n_dims u32, dims u64s, type u32.
    let mut bytes = std::fs::read(&p).unwrap();
    let name = b"blk.0.attn_v.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let nd = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * nd;
    bytes[ty..ty + 4].copy_from_slice(&16u32.to_le_bytes());
    std::fs::write(&p, bytes).unwrap();
    let e = load_gguf(&p);
    assert!(
        matches!(&e, ModelError::UnsupportedQuant { tensor, .. } if tensor == "blk.0.attn_v.weight"),
        "{e:?}"
    );
    assert!(e.to_string().contains("IQ2_XXS"), "{e}");
}

#[test]
fn gguf_vocab_mismatch_and_unknown_pre_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("vocab.gguf");
    write_gguf(
        &random_loaded(true),
        GgmlDType::F32,
        &p,
        &[("llama.vocab_size", Value::U32(300))],
    );
    assert!(matches!(
        load_gguf(&p),
        ModelError::VocabMismatch {
            tokenizer: 259,
            model: 300,
            ..
        }
    ));
    let p = dir.path().join("pre.gguf");
    write_gguf(
        &random_loaded(true),
        GgmlDType::F32,
        &p,
        &[("tokenizer.ggml.pre", Value::String("martian".into()))],
    );
    let e = load_gguf(&p);
    assert!(
        matches!(e, ModelError::Tokenizer { .. }) && e.to_string().contains("martian"),
        "{e}"
    );
}

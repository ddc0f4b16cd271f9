//! A small real tokenizer for tests: byte-level BPE (GPT-2 byte alphabet and pre-tokenizer), id
//! of byte `b` = `b`, one merge (two spaces -> id 259), and special tokens `<pad>` 256, `<s>` 257,
//! `</s>` 258, `<|im_start|>` 260, `<|im_end|>` 261. No post-processor: BOS/EOS come from
//! [`super::tokenize::TokenizeOptions`].

use tokenizers::Tokenizer;

/// GPT-2's `bytes_to_unicode`: the printable character standing for each byte.
pub fn byte_char(b: u8) -> char {
    let printable =
        |c: u32| (33..=126).contains(&c) || (161..=172).contains(&c) || (174..=255).contains(&c);
    if printable(b as u32) {
        return char::from(b);
    }
    let n = (0..b as u32).filter(|&c| !printable(c)).count() as u32;
    // invariant: 256 + n < 0xD800, always a valid scalar value
    char::from_u32(256 + n).unwrap_or('?')
}

pub fn byte_tokenizer() -> Tokenizer {
    let mut vocab = serde_json::Map::new();
    for b in 0..=255u8 {
        vocab.insert(byte_char(b).to_string(), b.into());
    }
    let specials = [
        ("<pad>", 256),
        ("<s>", 257),
        ("</s>", 258),
        ("<|im_start|>", 260),
        ("<|im_end|>", 261),
    ];
    for (t, id) in specials {
        vocab.insert(t.to_string(), id.into());
    }
    let sp = byte_char(b' ');
    vocab.insert(format!("{sp}{sp}"), 259.into());
    let added: Vec<_> = specials
        .iter()
        .map(|(t, id)| {
            serde_json::json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": [format!("{sp} {sp}")]}
    });
    Tokenizer::from_bytes(json.to_string().as_bytes()).expect("test tokenizer builds")
}

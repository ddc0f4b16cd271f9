//! The text side of evaluation: a `tokenizers::Tokenizer` with the ids generation needs
//! (end-of-sequence ids that stop a row, the id used for padding).

use tokenizers::Tokenizer;

use super::error::{EvalError, Result};

#[derive(Clone, Copy)]
pub struct TextCodec<'a> {
    pub tokenizer: &'a Tokenizer,
    /// Any of these ends a generated row (e.g. `<|endoftext|>` and `<|im_end|>`).
    pub eos_ids: &'a [u32],
    /// Fills left padding (masked out) and finished rows.
    pub pad_id: u32,
}

impl<'a> TextCodec<'a> {
    pub fn new(tokenizer: &'a Tokenizer, eos_ids: &'a [u32], pad_id: u32) -> Self {
        Self {
            tokenizer,
            eos_ids,
            pad_id,
        }
    }

    /// Token ids of `text`; `special` adds the tokenizer's special tokens (e.g. a BOS) as HF's
    /// `tokenizer(text)` does.
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EvalError::Tokenizer {
                what: preview(text),
                message: e.to_string(),
            })
    }

    /// Text of `ids`, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| EvalError::Tokenizer {
                what: format!("ids {:?}", &ids[..ids.len().min(8)]),
                message: e.to_string(),
            })
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }
}

fn preview(text: &str) -> String {
    let short: String = text.chars().take(40).collect();
    format!("{short:?}")
}

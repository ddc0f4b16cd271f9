//! Tokenization of rendered rows into [`Example`]s, as LLM-Adapters' `generate_and_tokenize_prompt`:
//!
//! 1. `ids = encode(prompt + completion)` (the tokenizer's own special tokens when
//!    `add_special_tokens`; `bos_id` prepended when given and not already first);
//! 2. truncate to `max_len`; append `eos_id` when given, not already last, and `len < max_len`;
//! 3. `labels = ids`; with `train_on_inputs` off, the first `len(encode(prompt))` labels (same BOS
//!    rule, no EOS) become `IGNORE_INDEX`. The prompt is tokenized on its own so the boundary is
//!    the one the reference implementation uses, even where a merge would straddle it.
//!
//! A conversation rendered by a chat template ([`Rendered::Chat`]) is encoded as transformers'
//! `apply_chat_template(tokenize=True)` encodes it: without adding special tokens (BOS and EOS
//! are the template's), then truncated to `max_len`. A token carries the loss when its byte
//! offsets overlap one of the loss ranges (`token_end > start && token_start < end`, the rule of
//! transformers' `return_assistant_tokens_mask`), or always when there are none.

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::train::batch::{Example, IGNORE_INDEX};

use super::error::DataError;
use super::template::{Pair, Rendered};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizeOptions {
    /// Truncation length (LLM-Adapters' `cutoff_len`, 256 in the reference recipe).
    pub max_len: usize,
    /// Let the tokenizer's post-processor add its special tokens (e.g. LLaMA's `<s>`).
    pub add_special_tokens: bool,
    /// Prepend this BOS id when the encoding does not already start with it.
    pub bos_id: Option<u32>,
    /// Append this EOS id when it fits.
    pub eos_id: Option<u32>,
    /// Train on the prompt tokens too (the reference recipe does); off masks them.
    pub train_on_inputs: bool,
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        Self {
            max_len: 256,
            add_special_tokens: true,
            bos_id: None,
            eos_id: None,
            train_on_inputs: true,
        }
    }
}

/// One tokenized example and whether truncation cut it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenized {
    pub example: Example,
    pub truncated: bool,
}

/// A copy of `tokenizer` with padding and truncation switched off (a tokenizer.json may carry
/// either; both would corrupt lengths and masks here).
pub fn plain_tokenizer(tokenizer: &Tokenizer) -> Result<Tokenizer, DataError> {
    let mut t = tokenizer.clone();
    t.with_padding(None);
    t.with_truncation(None)
        .map_err(|e| DataError::Tokenizer(e.to_string()))?;
    Ok(t)
}

/// Tokenizes a batch of rendered rows (the tokenizer parallelises over rows), in their order.
/// `tokenizer` should come from [`plain_tokenizer`].
pub fn tokenize_batch(
    tokenizer: &Tokenizer,
    rows: &[Rendered],
    opts: &TokenizeOptions,
) -> Result<Vec<Tokenized>, DataError> {
    if opts.max_len == 0 {
        return Err(DataError::Config("max-len must be at least 1".into()));
    }
    let mut pairs = vec![];
    let mut chats = vec![];
    for r in rows {
        match r {
            Rendered::Pair(p) => pairs.push(p),
            Rendered::Chat { text, loss } => chats.push((text.clone(), loss.as_deref())),
        }
    }
    let mut pairs = tokenize_pairs(tokenizer, &pairs, opts)?.into_iter();
    let mut chats = tokenize_chats(tokenizer, chats, opts.max_len)?.into_iter();
    rows.iter()
        .map(|r| match r {
            Rendered::Pair(_) => pairs.next(),
            Rendered::Chat { .. } => chats.next(),
        })
        .map(|t| t.ok_or_else(|| DataError::Tokenizer("the tokenizer dropped a row".into())))
        .collect()
}

fn tokenize_chats(
    tokenizer: &Tokenizer,
    rows: Vec<(String, Option<&[std::ops::Range<usize>]>)>,
    max_len: usize,
) -> Result<Vec<Tokenized>, DataError> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let (texts, losses): (Vec<String>, Vec<_>) = rows.into_iter().unzip();
    let encs = tokenizer
        .encode_batch(texts, false)
        .map_err(|e| DataError::Tokenizer(e.to_string()))?;
    Ok(encs
        .iter()
        .zip(losses)
        .map(|(enc, loss)| {
            let mut ids = enc.get_ids().to_vec();
            let mut labels: Vec<i64> = ids
                .iter()
                .zip(enc.get_offsets())
                .map(|(&id, &(start, end))| match loss {
                    Some(spans) if !spans.iter().any(|s| end > s.start && start < s.end) => {
                        IGNORE_INDEX
                    }
                    _ => id as i64,
                })
                .collect();
            let truncated = ids.len() > max_len;
            ids.truncate(max_len);
            labels.truncate(max_len);
            Tokenized {
                example: Example {
                    input_ids: ids,
                    labels,
                },
                truncated,
            }
        })
        .collect())
}

fn tokenize_pairs(
    tokenizer: &Tokenizer,
    rows: &[&Pair],
    opts: &TokenizeOptions,
) -> Result<Vec<Tokenized>, DataError> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let encode = |texts: Vec<String>| -> Result<Vec<Vec<u32>>, DataError> {
        let encs = tokenizer
            .encode_batch_fast(texts, opts.add_special_tokens)
            .map_err(|e| DataError::Tokenizer(e.to_string()))?;
        Ok(encs
            .into_iter()
            .map(|e| {
                let mut ids = e.get_ids().to_vec();
                if let Some(bos) = opts.bos_id
                    && ids.first() != Some(&bos)
                {
                    ids.insert(0, bos);
                }
                ids
            })
            .collect())
    };
    let full = encode(rows.iter().map(|p| p.full()).collect())?;
    let prompt_lens: Vec<usize> = if opts.train_on_inputs {
        vec![0; rows.len()]
    } else {
        encode(rows.iter().map(|r| r.prompt.clone()).collect())?
            .iter()
            .map(Vec::len)
            .collect()
    };
    Ok(full
        .into_iter()
        .zip(prompt_lens)
        .map(|(mut ids, prompt_len)| {
            let truncated = ids.len() > opts.max_len;
            ids.truncate(opts.max_len);
            if let Some(eos) = opts.eos_id
                && ids.last() != Some(&eos)
                && ids.len() < opts.max_len
            {
                ids.push(eos);
            }
            let mut labels: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
            let masked = prompt_len.min(labels.len());
            labels[..masked].fill(IGNORE_INDEX);
            Tokenized {
                example: Example {
                    input_ids: ids,
                    labels,
                },
                truncated,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::test_tokenizer::byte_tokenizer;
    use super::*;

    fn opts(max_len: usize, train_on_inputs: bool) -> TokenizeOptions {
        TokenizeOptions {
            max_len,
            add_special_tokens: true,
            bos_id: Some(257),
            eos_id: Some(258),
            train_on_inputs,
        }
    }

    // Hand computation. The test tokenizer is byte-level BPE (GPT-2 pre-tokenizer regex): byte b
    // has id b, and the one merge joins two spaces ("ĠĠ", id 259). The full text "ab  c" splits
    // into "ab" | " " | " c" (the whitespace run stops before the space that precedes a letter),
    // so no merge: [a, b, Ġ, Ġ, c]. The prompt alone "ab  " ends in the run "  ", merged: [a, b,
    // ĠĠ], 3 tokens (+ BOS = 4). As in LLM-Adapters, the first len(prompt tokens) = 4 labels are
    // masked, which here also masks the first space of the full text.
    #[test]
    fn masks_exactly_the_prompt_tokens_and_appends_eos() {
        let tok = byte_tokenizer();
        let r = Rendered::pair("ab  ", "c");
        let out = tokenize_batch(&tok, std::slice::from_ref(&r), &opts(16, false)).unwrap();
        let e = &out[0].example;
        assert_eq!(e.input_ids, vec![257, 97, 98, 32, 32, 99, 258]);
        assert_eq!(e.labels, vec![-100, -100, -100, -100, 32, 99, 258]);
        assert!(!out[0].truncated);
        let prompt_only = tok.encode("ab  ", true).unwrap();
        assert_eq!(prompt_only.get_ids(), &[97, 98, 259]);
        let on = tokenize_batch(&tok, &[r], &opts(16, true)).unwrap();
        assert_eq!(on[0].example.labels, vec![257, 97, 98, 32, 32, 99, 258]);
    }

    #[test]
    fn truncation_drops_eos_when_it_does_not_fit() {
        let tok = byte_tokenizer();
        let r = Rendered::pair("abc", "defg");
        let out = tokenize_batch(&tok, std::slice::from_ref(&r), &opts(5, false)).unwrap();
        assert_eq!(out[0].example.input_ids, vec![257, 97, 98, 99, 100]);
        assert_eq!(out[0].example.labels, vec![-100, -100, -100, -100, 100]);
        assert!(out[0].truncated);
        // BOS + 7 letters = 8 tokens: with max_len 9 EOS fits, with max_len 8 it does not.
        let out = tokenize_batch(&tok, std::slice::from_ref(&r), &opts(9, true)).unwrap();
        assert_eq!(
            out[0].example.input_ids,
            vec![257, 97, 98, 99, 100, 101, 102, 103, 258]
        );
        let out = tokenize_batch(&tok, &[r], &opts(8, true)).unwrap();
        assert_eq!(
            out[0].example.input_ids,
            vec![257, 97, 98, 99, 100, 101, 102, 103]
        );
        assert!(!out[0].truncated);
    }

    #[test]
    fn prompt_longer_than_max_len_masks_everything() {
        let tok = byte_tokenizer();
        let r = Rendered::pair("abcdef", "g");
        let out = tokenize_batch(&tok, &[r], &opts(4, false)).unwrap();
        assert!(out[0].example.labels.iter().all(|&l| l == IGNORE_INDEX));
        assert_eq!(out[0].example.loss_tokens(), 0);
    }
}

//! Test doubles: a deterministic toy language model and a small real byte-level BPE tokenizer.
//!
//! `ToyLm`'s logits at a position are a pure function of the real (mask = 1) tokens up to and
//! including it, so any mistake in padding, masks or cache handling changes its output. Its
//! logits can be recomputed by hand with [`ToyLm::logits_for`].

use std::cell::Cell;

use candle_core::{Device, Result, Tensor};
use tokenizers::Tokenizer;

use crate::lm::{Branches, CausalLm, IncrementalLm, branch_logits_by_forward};

pub(crate) const EOS: u32 = 256;
pub(crate) const PAD: u32 = 257;

/// Merged tokens of the test tokenizer, so context/continuation boundaries matter.
const MERGES: &[(&str, &str)] = &[
    ("Ġ", "y"),
    ("Ġy", "e"),
    ("Ġye", "s"),
    ("Ġ", "n"),
    ("Ġn", "o"),
    ("A", "n"),
    ("An", "s"),
    ("Ans", "w"),
    ("Answ", "e"),
    ("Answe", "r"),
    ("Answer", ":"),
];

pub(crate) struct ToyLm {
    pub vocab: usize,
    /// Whether `reorder_cache` is supported (false exercises the recompute path).
    pub reorder: bool,
    /// Whether `branch_logits` is packed (each prefix once) or the trait's default (a forward
    /// per branch).
    pub packed: bool,
    /// Positions computed so far (to see that the cache feeds only new tokens).
    pub positions: Cell<usize>,
    device: Device,
}

pub(crate) struct ToyCache {
    rows: Vec<Vec<u32>>,
    len: usize,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl ToyLm {
    pub fn new(vocab: usize) -> Self {
        Self {
            vocab,
            reorder: true,
            packed: true,
            positions: Cell::new(0),
            device: Device::Cpu,
        }
    }

    /// The logits after the real tokens `prefix` (by definition of the toy).
    pub fn logits_for(&self, prefix: &[u32]) -> Vec<f32> {
        let h = prefix
            .iter()
            .fold(0xC0FFEEu64, |h, &t| mix(h ^ (t as u64 + 1)));
        let mut row: Vec<f32> = (0..self.vocab)
            .map(|v| {
                let r = mix(h ^ mix(v as u64 + 7)) >> 11;
                (r as f64 / (1u64 << 53) as f64 * 8.0 - 4.0) as f32
            })
            .collect();
        // Some prefixes make EOS very likely, so rows stop at different steps.
        if (EOS as usize) < self.vocab && h % 5 == 0 && prefix.len() > 3 {
            row[EOS as usize] = 10.0;
        }
        row
    }

    fn rows_of(t: &Tensor) -> Result<Vec<Vec<u32>>> {
        t.to_vec2::<u32>()
    }
}

impl CausalLm for ToyLm {
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let mut cache = self.new_cache(input_ids.dim(0)?)?;
        self.forward_step(input_ids, attention_mask, &mut cache)
    }
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn branch_logits(&self, segments: &[Branches<'_>]) -> Result<Tensor> {
        if !self.packed {
            return branch_logits_by_forward(self, segments);
        }
        let mut out = Vec::new();
        for seg in segments {
            if seg.prefix.is_empty() {
                candle_core::bail!("toy: empty prefix");
            }
            out.extend(self.logits_for(seg.prefix));
            let mut path = seg.prefix.to_vec();
            for b in seg.branches {
                path.truncate(seg.prefix.len());
                for &t in b.iter().take(b.len().saturating_sub(1)) {
                    path.push(t);
                    out.extend(self.logits_for(&path));
                }
            }
            self.positions.set(self.positions.get() + seg.fed());
        }
        let rows = out.len() / self.vocab;
        Tensor::from_vec(out, (rows, self.vocab), &self.device)
    }
}

impl IncrementalLm for ToyLm {
    type Cache = ToyCache;

    fn new_cache(&self, batch: usize) -> Result<ToyCache> {
        Ok(ToyCache {
            rows: vec![Vec::new(); batch],
            len: 0,
        })
    }

    fn forward_step(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        cache: &mut ToyCache,
    ) -> Result<Tensor> {
        let ids = Self::rows_of(input_ids)?;
        let mask = Self::rows_of(attention_mask)?;
        let (b, new) = input_ids.dims2()?;
        if mask.len() != b
            || cache.rows.len() != b
            || mask.iter().any(|m| m.len() != cache.len + new)
        {
            candle_core::bail!(
                "toy: mask {:?} does not cover cached {} + new {new} for {b} rows",
                attention_mask.shape(),
                cache.len
            );
        }
        let mut out = Vec::with_capacity(b * new * self.vocab);
        for row in 0..b {
            for j in 0..new {
                if mask[row][cache.len + j] == 1 {
                    cache.rows[row].push(ids[row][j]);
                    out.extend(self.logits_for(&cache.rows[row]));
                } else {
                    out.extend(std::iter::repeat_n(-99.0f32, self.vocab));
                }
            }
        }
        cache.len += new;
        self.positions.set(self.positions.get() + b * new);
        Tensor::from_vec(out, (b, new, self.vocab), &self.device)
    }

    fn reorder_cache(&self, cache: &mut ToyCache, rows: &[u32]) -> Result<bool> {
        if !self.reorder {
            return Ok(false);
        }
        cache.rows = rows
            .iter()
            .map(|&r| cache.rows[r as usize].clone())
            .collect();
        Ok(true)
    }
}

/// A bigram lookup model: after real token `t` it puts logit 5 on `next[t]` (0 elsewhere; all 0
/// when `t` has no entry). Used to script outputs such as "answer2<eos>".
pub(crate) struct BigramLm {
    pub vocab: usize,
    pub next: std::collections::HashMap<u32, u32>,
    device: Device,
}

impl BigramLm {
    /// A model that, after a prompt ending in a space, writes `text` (bytes distinct) then EOS.
    pub fn scripted(vocab: usize, text: &str) -> Self {
        let mut next = std::collections::HashMap::new();
        let mut prev = b' ' as u32;
        for b in text.bytes() {
            next.insert(prev, b as u32);
            prev = b as u32;
        }
        next.insert(prev, EOS);
        Self {
            vocab,
            next,
            device: Device::Cpu,
        }
    }

    fn row(&self, last: Option<u32>) -> Vec<f32> {
        let mut row = vec![0.0f32; self.vocab];
        if let Some(n) = last.and_then(|t| self.next.get(&t)) {
            row[*n as usize] = 5.0;
        }
        row
    }
}

impl CausalLm for BigramLm {
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let mut cache = self.new_cache(input_ids.dim(0)?)?;
        self.forward_step(input_ids, attention_mask, &mut cache)
    }
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn device(&self) -> &Device {
        &self.device
    }
}

impl IncrementalLm for BigramLm {
    type Cache = Vec<Option<u32>>;

    fn new_cache(&self, batch: usize) -> Result<Self::Cache> {
        Ok(vec![None; batch])
    }

    fn forward_step(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        cache: &mut Self::Cache,
    ) -> Result<Tensor> {
        let ids = input_ids.to_vec2::<u32>()?;
        let mask = attention_mask.to_vec2::<u32>()?;
        let (b, new) = input_ids.dims2()?;
        let mut out = Vec::with_capacity(b * new * self.vocab);
        for row in 0..b {
            let offset = mask[row].len() - new;
            for j in 0..new {
                if mask[row][offset + j] == 1 {
                    cache[row] = Some(ids[row][j]);
                }
                out.extend(self.row(cache[row]));
            }
        }
        Tensor::from_vec(out, (b, new, self.vocab), &self.device)
    }
}

/// GPT-2's byte-to-character map.
fn bytes_to_unicode() -> Vec<char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut map = vec![' '; 256];
    for (b, c) in bs.iter().zip(cs) {
        map[*b as usize] = char::from_u32(c).unwrap_or(' ');
    }
    map
}

/// A byte-level BPE tokenizer: ids 0-255 are bytes, 256 `<|endoftext|>`, 257 `<pad>`, then merges.
pub(crate) fn byte_tokenizer() -> Tokenizer {
    let map = bytes_to_unicode();
    let mut vocab = serde_json::Map::new();
    for (b, c) in map.iter().enumerate() {
        vocab.insert(c.to_string(), serde_json::json!(b));
    }
    // The specials sit in the model vocabulary too, so the added tokens keep ids 256 and 257.
    vocab.insert("<|endoftext|>".into(), serde_json::json!(EOS));
    vocab.insert("<pad>".into(), serde_json::json!(PAD));
    for (next, (a, b)) in (258..).zip(MERGES) {
        vocab.insert(format!("{a}{b}"), serde_json::json!(next));
    }
    let merges: Vec<String> = MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect();
    let special = |id: u32, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(EOS, "<|endoftext|>"), special(PAD, "<pad>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges}
    });
    Tokenizer::from_bytes(json.to_string().as_bytes()).unwrap()
}

pub(crate) fn byte_vocab() -> usize {
    258 + MERGES.len()
}

#[test]
fn byte_tokenizer_round_trips_and_merges() {
    let tok = byte_tokenizer();
    let ids = tok.encode("Answer: yes", false).unwrap().get_ids().to_vec();
    // The GPT-2 pre-tokenizer splits "Answer" from ":"; "Answer" and " yes" are merged tokens.
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(tok.decode(&ids, true).unwrap(), "Answer: yes");
    let ids = tok.encode("héllo", false).unwrap().get_ids().to_vec();
    assert_eq!(ids.len(), 6);
    assert_eq!(tok.decode(&ids, true).unwrap(), "héllo");
}

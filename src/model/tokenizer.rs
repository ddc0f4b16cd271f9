//! Tokenizers built in memory from GGUF vocabulary metadata (byte-level BPE, `gpt2`, and
//! SentencePiece BPE, `llama`: [`sentencepiece_bpe`]), and the built-in 259-token byte tokenizer
//! of random models.
//!
//! The byte-level pre-tokenizer follows the name llama.cpp stores in `tokenizer.ggml.pre`:
//! `default`/`gpt2` (the GPT-2 regex, no prefix space), `smollm` (digits one by one, then the
//! GPT-2 regex, as SmolLM2's tokenizer.json), `llama-bpe`/`llama3`/`smaug-bpe` (the LLaMA-3
//! split regex), `qwen2`. Any other name is an error rather than a silently different split.
//! In byte-level vocabularies control and user-defined tokens (GGUF token types 3 and 4) become
//! special tokens, so they are matched whole in text and skipped when decoding with
//! `skip_special_tokens`.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::tokenizer::SplitDelimiterBehavior;
use tokenizers::{AddedToken, Tokenizer};

/// Special token ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    /// Generation stops at any of these.
    pub eos: Vec<u32>,
    pub pad: Option<u32>,
}

impl SpecialTokens {
    /// The id to pad batches with: `pad`, else the first `eos`, else 0.
    pub fn pad_id(&self) -> u32 {
        self.pad.or_else(|| self.eos.first().copied()).unwrap_or(0)
    }
}

const REGEX_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const REGEX_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GPT-2's byte -> printable char table (`bytes_to_unicode` in GPT-2's encoder.py).
pub fn bytes_to_unicode() -> [char; 256] {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut out = ['\0'; 256];
    let mut n = 0;
    for b in 0..256u32 {
        let c = if printable(b) {
            b
        } else {
            n += 1;
            255 + n
        };
        // invariant: c < 512, always a valid scalar value.
        out[b as usize] = char::from_u32(c).unwrap_or('\u{FFFD}');
    }
    out
}

/// What a byte-level BPE vocabulary needs besides tokens and merges.
pub struct BpeSpec<'a> {
    pub tokens: &'a [String],
    pub merges: Vec<(String, String)>,
    /// The llama.cpp pre-tokenizer name (`tokenizer.ggml.pre`).
    pub pre: &'a str,
    /// Ids of the tokens to register as special.
    pub special_ids: Vec<u32>,
    /// Prepend this token id when encoding with special tokens.
    pub add_bos: Option<u32>,
    pub unk: Option<u32>,
}

fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, String> {
    let split = |re: &str| -> Result<PreTokenizerWrapper, String> {
        Ok(Split::new(
            SplitPattern::Regex(re.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| e.to_string())?
        .into())
    };
    Ok(match pre {
        "default" | "gpt2" | "gpt-2" => ByteLevel::new(false, true, true).into(),
        "smollm" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        "llama-bpe" | "llama3" | "smaug-bpe" => Sequence::new(vec![
            split(REGEX_LLAMA3)?,
            ByteLevel::new(false, true, false).into(),
        ])
        .into(),
        "qwen2" => Sequence::new(vec![
            split(REGEX_QWEN2)?,
            ByteLevel::new(false, false, false).into(),
        ])
        .into(),
        other => {
            return Err(format!(
                "pre-tokenizer `{other}` is not supported (default, gpt2, smollm, llama-bpe, qwen2)"
            ));
        }
    })
}

/// Token -> id, ids in file order (a token that occurs twice keeps its last id).
fn vocab_of(tokens: &[String]) -> tokenizers::models::bpe::Vocab {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect()
}

/// A byte-level BPE tokenizer (`tokenizer.ggml.model = gpt2`). Errors are plain messages; the
/// caller adds the file.
pub fn byte_level_bpe(spec: BpeSpec<'_>) -> Result<Tokenizer, String> {
    let mut builder = BPE::builder().vocab_and_merges(vocab_of(spec.tokens), spec.merges);
    if let Some(u) = spec.unk.and_then(|u| spec.tokens.get(u as usize)) {
        builder = builder.unk_token(u.clone());
    }
    let bpe = builder.build().map_err(|e| e.to_string())?;
    let mut tok = Tokenizer::new(bpe);
    if spec.pre == "qwen2" {
        tok.with_normalizer(Some(NFC)).map_err(|e| e.to_string())?;
    }
    tok.with_pre_tokenizer(Some(pre_tokenizer(spec.pre)?));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    if let Some(id) = spec.add_bos {
        let name = spec
            .tokens
            .get(id as usize)
            .ok_or_else(|| format!("BOS id {id} is outside the vocabulary"))?;
        let tp = TemplateProcessing::builder()
            .try_single(format!("{name} $0"))
            .map_err(|e| e.to_string())?
            .try_pair(format!("{name} $A {name} $B"))
            .map_err(|e| e.to_string())?
            .special_tokens(vec![(name.clone(), id)])
            .build()
            .map_err(|e| e.to_string())?;
        tok.with_post_processor(Some(tp));
    }
    let specials: Vec<AddedToken> = spec
        .special_ids
        .iter()
        .map(|&id| {
            spec.tokens
                .get(id as usize)
                .map(|t| AddedToken::from(t.clone(), true))
                .ok_or_else(|| format!("special token id {id} is outside the vocabulary"))
        })
        .collect::<Result<_, _>>()?;
    tok.add_special_tokens(specials)
        .map_err(|e| e.to_string())?;
    Ok(tok)
}

/// The ChatML special tokens that open the byte vocabulary.
pub const BYTE_SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// The 259-token vocabulary of the tiny test GGUF and of random models: 3 ChatML specials, then
/// the 256 bytes in GPT-2's byte-to-char form (byte `b` has id `b + 3`), no merges.
pub fn byte_vocab() -> Vec<String> {
    let table = bytes_to_unicode();
    BYTE_SPECIALS
        .iter()
        .map(|s| s.to_string())
        .chain(table.iter().map(|c| c.to_string()))
        .collect()
}

/// The built-in byte tokenizer (vocab 259).
pub fn byte_tokenizer() -> Result<Tokenizer, String> {
    let tokens = byte_vocab();
    byte_level_bpe(BpeSpec {
        tokens: &tokens,
        merges: vec![],
        pre: "default",
        special_ids: vec![0, 1, 2],
        add_bos: None,
        unk: None,
    })
}

/// What a SentencePiece vocabulary (`tokenizer.ggml.model = llama`) needs.
pub struct SpmSpec<'a> {
    pub tokens: &'a [String],
    /// One per token (`tokenizer.ggml.scores`); merges are derived from them.
    pub scores: &'a [f64],
    /// GGUF token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    pub types: &'a [u64],
    /// `tokenizer.ggml.merges` when the file has them.
    pub merges: Option<Vec<(String, String)>>,
    pub add_bos: Option<u32>,
    pub add_eos: Option<u32>,
    pub unk: Option<u32>,
    /// `tokenizer.ggml.add_space_prefix`: a `▁` before the text (SentencePiece's default).
    pub add_space_prefix: bool,
}

/// The BPE merges a SentencePiece vocabulary implies, as transformers derives them when it loads
/// a GGUF without merges (`generate_merges` in `tokenization_utils_base.py`, 5.24): every split
/// of every token into two tokens, ordered by the whole token's score (highest first), then the
/// longer left part, then the longer right part, then vocabulary order. A token that occurs
/// twice has its last id and its last score, at its first position.
pub fn spm_merges(tokens: &[String], scores: &[f64]) -> Vec<(String, String)> {
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, t) in tokens.iter().enumerate() {
        last.insert(t, i);
    }
    let mut seen = std::collections::HashSet::new();
    let mut merges: Vec<(&str, &str, f64)> = vec![];
    for t in tokens {
        if !seen.insert(t.as_str()) {
            continue;
        }
        let score = scores.get(last[t.as_str()]).copied().unwrap_or(0.0);
        let mut local: Vec<(&str, &str, f64)> = t
            .char_indices()
            .skip(1)
            .map(|(at, _)| t.split_at(at))
            .filter(|(l, r)| last.contains_key(l) && last.contains_key(r))
            .map(|(l, r)| (l, r, score))
            .collect();
        local.sort_by_key(|(l, r, _)| (last[l], last[r]));
        merges.extend(local);
    }
    let chars = |s: &str| s.chars().count();
    // stable: equal keys keep their order, as Python's sorted(reverse=True) keeps it
    merges.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then_with(|| chars(b.0).cmp(&chars(a.0)))
            .then_with(|| chars(b.1).cmp(&chars(a.1)))
    });
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}

/// A SentencePiece BPE tokenizer laid out as the LLaMA-2 family's `tokenizer.json` (what
/// transformers' `LlamaConverter` wrote for it, and how sentencepiece and llama.cpp encode):
/// normalizer `Prepend("▁")` (when `add_space_prefix`) then `Replace(" ", "▁")`, no
/// pre-tokenizer; BPE with byte fallback (`<0x41>`), `fuse_unk`, the unknown token; decoder
/// `Replace("▁", " ")`, `ByteFallback`, `Fuse`, `Strip(" ", 1, 0)` (the strip only with the
/// prefix); BOS / EOS added by a template post-processor as the file's `add_bos_token` /
/// `add_eos_token` say. Unknown and control tokens are special added tokens, user-defined ones
/// added tokens that decoding keeps; all are matched in the raw text before normalization.
pub fn sentencepiece_bpe(spec: SpmSpec<'_>) -> Result<Tokenizer, String> {
    use tokenizers::decoders::DecoderWrapper;
    use tokenizers::decoders::byte_fallback::ByteFallback;
    use tokenizers::decoders::fuse::Fuse;
    use tokenizers::decoders::sequence::Sequence as DecoderSequence;
    use tokenizers::decoders::strip::Strip;
    use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace, Sequence as NormSequence};

    const SPACE: &str = "\u{2581}";
    if spec.scores.len() != spec.tokens.len() && spec.merges.is_none() {
        return Err(format!(
            "tokenizer.ggml.scores has {} entries for {} tokens",
            spec.scores.len(),
            spec.tokens.len()
        ));
    }
    let vocab = vocab_of(spec.tokens);
    let merges = match spec.merges {
        Some(m) => m,
        None => spm_merges(spec.tokens, spec.scores),
    };
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(u) = spec.unk.and_then(|u| spec.tokens.get(u as usize)) {
        builder = builder.unk_token(u.clone());
    }
    let mut tok = Tokenizer::new(builder.build().map_err(|e| e.to_string())?);
    let replace = Replace::new(" ", SPACE).map_err(|e| e.to_string())?;
    let mut norm: Vec<NormalizerWrapper> = vec![];
    if spec.add_space_prefix {
        norm.push(Prepend::new(SPACE.into()).into());
    }
    norm.push(replace.into());
    tok.with_normalizer(Some(NormSequence::new(norm)))
        .map_err(|e| e.to_string())?;
    let mut dec: Vec<DecoderWrapper> = vec![
        DecoderWrapper::Replace(Replace::new(SPACE, " ").map_err(|e| e.to_string())?),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if spec.add_space_prefix {
        dec.push(Strip::new(' ', 1, 0).into());
    }
    tok.with_decoder(Some(DecoderSequence::new(dec)));
    let name = |id: u32| {
        spec.tokens
            .get(id as usize)
            .cloned()
            .ok_or_else(|| format!("special token id {id} is outside the vocabulary"))
    };
    if spec.add_bos.is_some() || spec.add_eos.is_some() {
        let mut ends: Vec<(String, u32)> = vec![];
        for id in [spec.add_bos, spec.add_eos].into_iter().flatten() {
            ends.push((name(id)?, id));
        }
        let bos = spec.add_bos.map(name).transpose()?;
        let eos = spec.add_eos.map(name).transpose()?;
        let seq = |s: &str, type_id: u32| {
            let mut parts = vec![];
            if let Some(b) = &bos {
                parts.push(format!("{b}:{type_id}"));
            }
            parts.push(format!("${s}:{type_id}"));
            if let Some(e) = &eos {
                parts.push(format!("{e}:{type_id}"));
            }
            parts.join(" ")
        };
        let tp = TemplateProcessing::builder()
            .try_single(seq("A", 0))
            .map_err(|e| e.to_string())?
            .try_pair(format!("{} {}", seq("A", 0), seq("B", 1)))
            .map_err(|e| e.to_string())?
            .special_tokens(ends)
            .build()
            .map_err(|e| e.to_string())?;
        tok.with_post_processor(Some(tp));
    }
    let mut special = vec![];
    let mut added = vec![];
    for (i, ty) in spec.types.iter().enumerate() {
        let t = || name(i as u32);
        match ty {
            2 | 3 => special.push(AddedToken::from(t()?, true).normalized(false)),
            4 => added.push(AddedToken::from(t()?, false).normalized(false)),
            _ => {}
        }
    }
    tok.add_special_tokens(special).map_err(|e| e.to_string())?;
    tok.add_tokens(added).map_err(|e| e.to_string())?;
    Ok(tok)
}

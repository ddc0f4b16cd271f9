//! With the SmolLM2 asset (RORA_SHARED_DIR, default ../shared): zero-shot loglik on PIQA items.
//!
//! The model here is candle-transformers' quantized LLaMA driven token by token (it returns only
//! the last position's logits), wrapped as a `CausalLm`: a reference implementation independent of
//! rora's model. `RORA_LOGLIK_DUMP=<file>` writes every request's token ids and score for
//! `scripts/loglik_numpy.py`, an independent numpy forward over the same GGUF.

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::{Device, Result, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use tokenizers::Tokenizer;

use super::loglik::prompt::requests;
use super::loglik::score::encode_pair;
use super::*;
use crate::lm::{CausalLm, IncrementalLm};

struct QuantRef {
    model: RefCell<ModelWeights>,
    vocab: usize,
    device: Device,
}

impl CausalLm for QuantRef {
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let ids = input_ids.to_vec2::<u32>()?;
        let mask = attention_mask.to_vec2::<u32>()?;
        let (b, t) = input_ids.dims2()?;
        let mut out = vec![0f32; b * t * self.vocab];
        let mut model = self.model.borrow_mut();
        for row in 0..b {
            let mut pos = 0;
            for j in 0..t {
                if mask[row][j] == 1 {
                    let x = Tensor::new(&[[ids[row][j]]], &self.device)?;
                    let logits = model.forward(&x, pos)?.squeeze(0)?.to_vec1::<f32>()?;
                    let at = (row * t + j) * self.vocab;
                    out[at..at + self.vocab].copy_from_slice(&logits);
                    pos += 1;
                }
            }
        }
        Tensor::from_vec(out, (b, t, self.vocab), &self.device)
    }
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn device(&self) -> &Device {
        &self.device
    }
}

impl IncrementalLm for QuantRef {
    type Cache = ();
    fn new_cache(&self, _batch: usize) -> Result<()> {
        Ok(())
    }
    fn forward_step(&self, _ids: &Tensor, _mask: &Tensor, _cache: &mut ()) -> Result<Tensor> {
        candle_core::bail!("the quantized reference only scores whole sequences")
    }
}

fn shared_dir() -> PathBuf {
    std::env::var_os("RORA_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

#[test]
#[ignore = "needs the SmolLM2 asset; about a minute on 2 CPU cores"]
fn smollm2_piqa_loglik_above_chance() {
    let assets = shared_dir().join("assets");
    let gguf = assets.join("models/smollm2-135m-instruct-q4_1.gguf");
    let piqa = assets.join("commonsense/piqa.eval.jsonl.gz");
    if !gguf.is_file() || !piqa.is_file() {
        eprintln!(
            "SKIP smollm2_piqa_loglik_above_chance: {} or {} missing (set RORA_SHARED_DIR)",
            gguf.display(),
            piqa.display()
        );
        return;
    }
    let mut file = std::fs::File::open(&gguf).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let tokenizer = Tokenizer::from_gguf(&content).unwrap();
    let model = ModelWeights::from_gguf(content, &mut file, &Device::Cpu).unwrap();
    let lm = QuantRef {
        model: RefCell::new(model),
        vocab: 49152,
        device: Device::Cpu,
    };
    // SmolLM2: id 0 <|endoftext|>, id 2 <|im_end|> (the GGUF's eos and padding id).
    let eos = [0u32, 2];
    let codec = TextCodec::new(&tokenizer, &eos, 2);
    let task = Task {
        name: "piqa".into(),
        kind: TaskKind::Piqa,
        path: piqa,
    };
    let mut cfg = EvalConfig::new(vec![task.clone()], Protocol::Loglik);
    cfg.limit = Some(50);
    let started = std::time::Instant::now();
    let res = evaluate(&lm, &codec, &cfg, &mut no_progress).unwrap();
    let t = &res.summary.tasks[0];
    eprintln!(
        "smollm2 piqa loglik: n={} acc={:.3} acc_norm={:.3} in {:.1}s",
        t.n,
        t.accuracy,
        t.acc_norm.unwrap_or(0.0),
        started.elapsed().as_secs_f64()
    );
    if let Some(dump) = std::env::var_os("RORA_LOGLIK_DUMP") {
        let items = task.load().unwrap();
        let chosen = subsample::subsample_indices(items.len(), cfg.limit, cfg.seed);
        let mut w = std::fs::File::create(dump).unwrap();
        for (k, (&i, pred)) in chosen.iter().zip(&res.predictions["piqa"]).enumerate() {
            let Prediction::Loglik(p) = pred else {
                panic!("loglik prediction")
            };
            for (c, r) in requests(TaskKind::Piqa, &items[i])
                .unwrap()
                .iter()
                .enumerate()
            {
                let e = encode_pair(&codec, r).unwrap();
                let line = serde_json::json!({"item": k, "choice": c, "label": p.label,
                    "context": e.context, "continuation": e.continuation, "loglik": p.scores[c]});
                writeln!(w, "{line}").unwrap();
            }
        }
    }
    // Chance is 0.5; SmolLM2-135M is reported around 0.68 on PIQA (acc, lm-eval).
    assert!(
        t.accuracy >= 0.6,
        "PIQA acc {} is not well above chance",
        t.accuracy
    );
}

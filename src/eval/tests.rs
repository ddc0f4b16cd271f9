//! End-to-end tests of `evaluate` on toy models (src/eval/testing.rs) with a real byte-level tokenizer.

use std::path::{Path, PathBuf};

use super::generate::math::log_softmax;
use super::loglik::prompt::{ChoiceRequest, requests};
use super::loglik::score::{encode_pair, score_requests};
use super::testing::{BigramLm, EOS, PAD, ToyLm, byte_tokenizer, byte_vocab};
use super::*;
use crate::lm::CausalLm;

fn write_task(dir: &Path, name: &str, rows: &[(&str, &[&str], usize)]) -> PathBuf {
    let body: String = rows
        .iter()
        .enumerate()
        .map(|(i, (q, c, l))| {
            serde_json::json!({"id": i, "question": q, "choices": c, "label": l}).to_string() + "\n"
        })
        .collect();
    let path = dir.join(format!("{name}.eval.jsonl"));
    std::fs::write(&path, body).unwrap();
    path
}

const SIQA: &[(&str, &[&str], usize)] = &[
    ("Tracy went home. Why?", &["tired", "hungry", "bored"], 1),
    (
        "Sydney felt bad. How would you describe Sydney?",
        &["sympathetic", "cold", "odd"],
        0,
    ),
    ("Kai ate. What next?", &["sleep", "run", "eat more"], 1),
    ("Jo sang. Why?", &["happy", "sad", "paid"], 2),
    (
        "Ash left early. What will others want?",
        &["to follow", "to stay", "to call"],
        1,
    ),
];

#[test]
fn llm_adapters_exact_match_and_unparseable_counts() {
    let dir = tempfile::tempdir().unwrap();
    let siqa = write_task(dir.path(), "siqa", SIQA);
    let boolq = write_task(
        dir.path(),
        "boolq",
        &[
            ("is it", &["true", "false"], 0),
            ("is not", &["true", "false"], 1),
        ],
    );
    let tok = byte_tokenizer();
    let eos = [EOS];
    let codec = TextCodec::new(&tok, &eos, PAD);
    // Always answers "answer2": right exactly where the label is 1; on boolq it never parses.
    let lm = BigramLm::scripted(byte_vocab(), "answer2");
    let mut cfg = EvalConfig::new(
        vec![Task::from_file(&siqa), Task::from_file(&boolq)],
        Protocol::LlmAdapters,
    );
    cfg.generation = GenerationConfig {
        max_new_tokens: 16,
        num_beams: 1,
        length_penalty: 1.0,
    };
    cfg.batch_size = 2;
    let mut events = 0;
    let res = evaluate(&lm, &codec, &cfg, &mut |_| events += 1).unwrap();
    let s = &res.summary.tasks[0];
    // Labels 1, 0, 1, 2, 1: "answer2" is right three times.
    assert_eq!(
        (s.task.as_str(), s.n, s.correct, s.unparseable),
        ("siqa", 5, 3, Some(0))
    );
    assert_eq!(s.accuracy, 0.6);
    let b = &res.summary.tasks[1];
    assert_eq!(
        (b.n, b.correct, b.unparseable, b.unparseable_rate),
        (2, 0, Some(2), Some(1.0))
    );
    assert_eq!(res.summary.average, 0.3);
    assert_eq!(res.summary.protocol, Protocol::LlmAdapters);
    assert!(events >= 6);
    let Prediction::Generation(p) = &res.predictions["siqa"][0] else {
        panic!("generation prediction")
    };
    assert_eq!(
        (
            p.output.as_str(),
            p.prediction.as_deref(),
            p.label.as_str(),
            p.correct
        ),
        ("answer2", Some("answer2"), "answer2", true)
    );
    assert!(
        p.prompt.starts_with("Below is an instruction")
            && p.prompt.contains("Answer1: tired Answer2: hungry")
    );
    // Results and predictions land in the output directory.
    let out = dir.path().join("out");
    res.write(&out).unwrap();
    assert_eq!(EvalSummary::read(&out).unwrap(), res.summary);
    let lines = std::fs::read_to_string(out.join("predictions/boolq.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2);
    assert!(
        lines.contains("\"prediction\":null") && lines.contains("\"correct\":false"),
        "{lines}"
    );
}

#[test]
fn llm_adapters_batched_equals_batch_size_one_with_beams() {
    let dir = tempfile::tempdir().unwrap();
    let siqa = write_task(dir.path(), "siqa", SIQA);
    let tok = byte_tokenizer();
    let eos = [EOS];
    let codec = TextCodec::new(&tok, &eos, PAD);
    let lm = ToyLm::new(byte_vocab());
    for beams in [1, 3] {
        let mut cfg = EvalConfig::new(vec![Task::from_file(&siqa)], Protocol::LlmAdapters);
        cfg.generation = GenerationConfig {
            max_new_tokens: 6,
            num_beams: beams,
            length_penalty: 1.0,
        };
        cfg.batch_size = 5;
        let batched = evaluate(&lm, &codec, &cfg, &mut no_progress).unwrap();
        cfg.batch_size = 1;
        let single = evaluate(&lm, &codec, &cfg, &mut no_progress).unwrap();
        assert_eq!(batched.predictions, single.predictions, "num_beams {beams}");
    }
}

/// The summed log-probability of `cont` after `ctx`, straight from the toy's definition.
fn hand_loglik(lm: &ToyLm, ctx: &[u32], cont: &[u32]) -> f64 {
    let mut seq = ctx.to_vec();
    let mut total = 0.0;
    for &t in cont {
        total += log_softmax(&lm.logits_for(&seq))[t as usize];
        seq.push(t);
    }
    total
}

#[test]
fn loglik_scores_equal_hand_computation_in_any_batch() {
    let tok = byte_tokenizer();
    let eos = [EOS];
    let codec = TextCodec::new(&tok, &eos, PAD);
    let lm = ToyLm::new(byte_vocab());
    let item = McItem::new(
        serde_json::json!(0),
        "Sarah beat Maria so _ won the prize.",
        &["Sarah".into(), "Maria".into()],
        1,
    );
    let mut reqs = requests(TaskKind::Winogrande, &item).unwrap();
    reqs.extend(
        requests(
            TaskKind::Boolq,
            &McItem {
                choices: vec!["true".into(), "false".into()],
                ..item.clone()
            },
        )
        .unwrap(),
    );
    let encoded: Vec<_> = reqs
        .iter()
        .map(|r| encode_pair(&codec, r).unwrap())
        .collect();
    let by_one = score_requests(&lm, &encoded, 1, 2048, PAD).unwrap();
    let by_all = score_requests(&lm, &encoded, 8, 2048, PAD).unwrap();
    for ((e, a), b) in encoded.iter().zip(&by_one).zip(&by_all) {
        let want = hand_loglik(&lm, &e.context, &e.continuation);
        // scoring sums exp_approx (relative error < 3e-7) where the hand formula uses f64 exp
        assert!((a.loglik - want).abs() < 1e-6, "{} vs {want}", a.loglik);
        assert_eq!(a, b);
    }
    // Left truncation keeps the last max_len + 1 tokens: scoring sees only the tail of the context.
    let e = &encoded[0];
    let c = e.continuation.len();
    let cut = score_requests(&lm, std::slice::from_ref(e), 1, c + 2, PAD).unwrap()[0];
    let want = hand_loglik(&lm, &e.context[e.context.len() - 3..], &e.continuation);
    assert!((cut.loglik - want).abs() < 1e-6);
}

#[test]
fn encode_pair_splits_like_lm_eval() {
    let tok = byte_tokenizer();
    let eos = [EOS];
    let codec = TextCodec::new(&tok, &eos, PAD);
    let ids = |s: &str| codec.encode(s, false).unwrap();
    let req = |c: &str, x: &str| ChoiceRequest {
        context: c.into(),
        continuation: x.into(),
        norm_chars: 1,
    };
    // Trailing whitespace of the context moves into the continuation (" yes" is one merged token).
    let e = encode_pair(&codec, &req("Answer: ", "yes")).unwrap();
    assert_eq!((e.context, e.continuation), (ids("Answer:"), ids(" yes")));
    // The split is at len(encode(context)) in encode(whole), even when tokens merge across it:
    // "Ans" + "wer" encodes whole as the single token "Answer", so the continuation is empty.
    let e = encode_pair(&codec, &req("Ans", "wer")).unwrap();
    assert_eq!(e.context, ids("Ans"));
    assert!(e.continuation.is_empty());
    // An empty context becomes the EOS token.
    let e = encode_pair(&codec, &req("", " no")).unwrap();
    assert_eq!((e.context, e.continuation), (vec![EOS], ids(" no")));
}

/// A model with all-zero logits gives every token log(1/V), so a continuation of k tokens scores
/// exactly -k ln V; acc prefers the fewest tokens and acc_norm divides by characters.
struct Uniform(candle_core::Device, usize);

impl crate::lm::CausalLm for Uniform {
    fn forward(
        &self,
        ids: &candle_core::Tensor,
        _mask: &candle_core::Tensor,
    ) -> candle_core::Result<candle_core::Tensor> {
        let (b, t) = ids.dims2()?;
        candle_core::Tensor::zeros((b, t, self.1), candle_core::DType::F32, &self.0)
    }
    fn vocab_size(&self) -> usize {
        self.1
    }
    fn device(&self) -> &candle_core::Device {
        &self.0
    }
}

impl crate::lm::IncrementalLm for Uniform {
    type Cache = ();
    fn new_cache(&self, _batch: usize) -> candle_core::Result<()> {
        Ok(())
    }
    fn forward_step(
        &self,
        ids: &candle_core::Tensor,
        mask: &candle_core::Tensor,
        _: &mut (),
    ) -> candle_core::Result<candle_core::Tensor> {
        self.forward(ids, mask)
    }
}

#[test]
fn loglik_acc_and_acc_norm_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    // piqa: " ab" is 3 byte tokens (-3 ln V), " yes" is one merged token (-ln V): acc picks choice 1;
    // per character, -3 ln V / 2 vs -ln V / 3: acc_norm also picks choice 1.
    // arc-e: " xxxxxxxx" (9 tokens, 8 chars), " q" (2 tokens, 1 char), " zzzzzz" (7 tokens, 6 chars):
    // acc picks " q" (index 1); acc_norm: -9/8 ln V > -7/6 ln V > -2 ln V, so it picks index 0.
    let piqa = write_task(dir.path(), "piqa", &[("goal", &["ab", "yes"], 1)]);
    let arc = write_task(
        dir.path(),
        "arc-e",
        &[("q", &["xxxxxxxx", "q", "zzzzzz"], 0)],
    );
    let tok = byte_tokenizer();
    let eos = [EOS];
    let codec = TextCodec::new(&tok, &eos, PAD);
    let v = byte_vocab();
    let lm = Uniform(candle_core::Device::Cpu, v);
    let cfg = EvalConfig::new(
        vec![Task::from_file(&piqa), Task::from_file(&arc)],
        Protocol::Loglik,
    );
    let res = evaluate(&lm, &codec, &cfg, &mut no_progress).unwrap();
    let ln_v = (v as f64).ln();
    let Prediction::Loglik(p) = &res.predictions["piqa"][0] else {
        panic!("loglik prediction")
    };
    assert!(
        (p.scores[0] + 3.0 * ln_v).abs() < 1e-9 && (p.scores[1] + ln_v).abs() < 1e-9,
        "{:?}",
        p.scores
    );
    assert_eq!((p.prediction, p.prediction_norm, p.correct), (1, 1, true));
    let Prediction::Loglik(a) = &res.predictions["arc-e"][0] else {
        panic!("loglik prediction")
    };
    assert!((a.scores_norm[0] + 9.0 * ln_v / 8.0).abs() < 1e-9);
    assert_eq!(
        (a.prediction, a.prediction_norm, a.correct, a.correct_norm),
        (1, 0, false, true)
    );
    assert_eq!(res.summary.tasks[1].acc_norm, Some(1.0));
    assert_eq!(res.summary.average, 0.5);
    assert_eq!(res.summary.average_acc_norm, Some(1.0));
}

#[test]
fn limit_subsamples_with_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<(String, Vec<&str>, usize)> = (0..40)
        .map(|i| (format!("q{i}"), vec!["a", "b"], 0))
        .collect();
    let rows: Vec<(&str, &[&str], usize)> = rows
        .iter()
        .map(|(q, c, l)| (q.as_str(), c.as_slice(), *l))
        .collect();
    let path = write_task(dir.path(), "piqa", &rows);
    let tok = byte_tokenizer();
    let eos = [EOS];
    let codec = TextCodec::new(&tok, &eos, PAD);
    let lm = Uniform(candle_core::Device::Cpu, byte_vocab());
    let mut cfg = EvalConfig::new(vec![Task::from_file(&path)], Protocol::Loglik);
    cfg.limit = Some(7);
    let ids = |cfg: &EvalConfig| -> Vec<serde_json::Value> {
        evaluate(&lm, &codec, cfg, &mut no_progress)
            .unwrap()
            .predictions["piqa"]
            .iter()
            .map(|p| match p {
                Prediction::Loglik(p) => p.id.clone(),
                Prediction::Generation(p) => p.id.clone(),
            })
            .collect()
    };
    let a = ids(&cfg);
    assert_eq!(a.len(), 7);
    assert_eq!(a, ids(&cfg));
    cfg.seed = 7;
    assert_ne!(a, ids(&cfg));
}

/// The built-in task files' llm-adapters instructions and answer words against LLM-Adapters'
/// own test files (`dataset/<task>/test.json` of AGI-Edgerunners/LLM-Adapters: `instruction` and
/// `answer` per row, in the order of the shared eval files): every row of the seven tasks whose
/// test file exists there (12,377 rows; HellaSwag's is not in the repository). Needs the shared
/// assets and `RORA_LLM_ADAPTERS_DIR` (the repository's `dataset` directory); skips otherwise.
#[test]
fn llm_adapters_instructions_match_their_test_files() {
    let Some(lla) = std::env::var_os("RORA_LLM_ADAPTERS_DIR").map(PathBuf::from) else {
        eprintln!("SKIP: set RORA_LLM_ADAPTERS_DIR to LLM-Adapters' dataset directory");
        return;
    };
    let shared = crate::model::tests::shared_dir().join("assets/commonsense");
    let tasks = [
        (TaskKind::Boolq, "boolq"),
        (TaskKind::Piqa, "piqa"),
        (TaskKind::Siqa, "social_i_qa"),
        (TaskKind::Winogrande, "winogrande"),
        (TaskKind::ArcE, "ARC-Easy"),
        (TaskKind::ArcC, "ARC-Challenge"),
        (TaskKind::Obqa, "openbookqa"),
    ];
    let mut rows = 0;
    for (kind, dir) in tasks {
        let ours = shared.join(format!("{kind}.eval.jsonl.gz"));
        if !ours.is_file() {
            eprintln!("SKIP: {} not found (set RORA_SHARED_DIR)", ours.display());
            return;
        }
        let items = task::load_items(&ours, kind).unwrap();
        let theirs: Vec<serde_json::Value> = serde_json::from_str(
            &std::fs::read_to_string(lla.join(dir).join("test.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(items.len(), theirs.len(), "{kind}");
        for (i, (item, row)) in items.iter().zip(&theirs).enumerate() {
            let want = row["instruction"].as_str().unwrap();
            assert_eq!(
                llm_adapters::prompt::instruction(kind, item),
                want,
                "{kind} row {i}"
            );
            let answer = llm_adapters::prompt::answer_label(kind, item.label);
            assert_eq!(answer.as_deref(), row["answer"].as_str(), "{kind} row {i}");
        }
        rows += items.len();
    }
    assert_eq!(rows, 12_377);
}

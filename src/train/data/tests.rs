//! Cross-module tests: the byte-exact LLM-Adapters train prompt for each of the eight tasks from
//! real rows (references from tests/fixtures/data/llm_adapters/make_fixtures.py, an independent
//! Python rendering of the DoRA repo's generate_prompt), and the whole data pipeline end to end.

use std::path::{Path, PathBuf};

use super::read::read_records;
use super::schema::{RowSchema, parse_row};
use super::template::{Template, render};
use super::test_tokenizer::byte_tokenizer;
use super::*;
use crate::train::batch::IGNORE_INDEX;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data/llm_adapters")
}

#[test]
fn llm_adapters_train_prompt_is_byte_exact_for_every_task() {
    for task in Task::COMMONSENSE {
        let row_path = fixtures().join(format!("{task}.row.jsonl"));
        let (loc, value) = read_records(&row_path).unwrap().remove(0);
        // The fixture file is named `<task>.row.json`: the task comes from the name.
        let row = parse_row(
            value,
            RowSchema::Auto,
            Task::from_file_name(&row_path),
            &row_path,
            loc,
        )
        .unwrap();
        let rendered = render(&Template::LlmAdapters, &row, Some(task)).unwrap();
        let expected =
            std::fs::read_to_string(fixtures().join(format!("{task}.train.txt"))).unwrap();
        assert_eq!(rendered.full(), expected, "task {task}");
        assert!(expected.ends_with(&rendered.completion));
        assert!(rendered.completion.starts_with("the correct answer is "));
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn builds_a_dataset_from_globs_with_split_limit_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut boolq = String::new();
    for i in 0..30 {
        boolq.push_str(&format!(
            "{{\"id\": {i}, \"question\": \"is {i} even\", \"choices\": [\"true\", \"false\"], \"label\": {}}}\n",
            i % 2
        ));
    }
    write(dir.path(), "boolq.train.jsonl", &boolq);
    write(
        dir.path(),
        "extra.train.json",
        r#"[{"instruction": "Say hi", "input": "", "output": "hi"}, {"instruction": "Echo", "input": "x", "output": "x"}]"#,
    );
    let tok = byte_tokenizer();
    let mut cfg = DataConfig::new(vec!["*.train.json*".into()], Template::LlmAdapters);
    cfg.tokenize = TokenizeOptions {
        max_len: 512,
        add_special_tokens: true,
        bos_id: Some(257),
        eos_id: Some(258),
        train_on_inputs: false,
    };
    cfg.val_rows = 4;
    cfg.limit = Some(25);
    let ds = build_dataset(&cfg, dir.path(), &tok).unwrap();
    assert_eq!(ds.meta.rows_read, 32);
    assert_eq!(ds.meta.rows_per_task.get("boolq"), Some(&30));
    assert_eq!(ds.meta.rows_per_task.get("instruction"), Some(&2));
    assert_eq!((ds.train.len(), ds.val.len()), (21, 4));
    assert_eq!(ds.meta.truncated, 0);
    // Each example: BOS first, EOS last, the unmasked tail is the completion plus EOS. Hand
    // computation of the boundary: the prompt ends in "\n" + 16 spaces; alone that is one
    // pre-token (Ċ + 8 merged "ĠĠ" = 9 tokens); in the full text the GPT-2 regex gives "\n" + 15
    // spaces (Ċ + 7 "ĠĠ" + Ġ = 9 tokens) and " the...". So the 9 masked tokens end one space early
    // and the tail is " " + completion, as LLM-Adapters' len(tokenize(prompt)) rule gives.
    for e in ds.train.iter().chain(&ds.val) {
        assert_eq!(e.input_ids[0], 257);
        assert_eq!(*e.input_ids.last().unwrap(), 258);
        let unmasked = e.labels.iter().filter(|&&l| l != IGNORE_INDEX).count();
        let first = e.labels.iter().position(|&l| l != IGNORE_INDEX).unwrap();
        assert!(e.labels[first..].iter().all(|&l| l != IGNORE_INDEX));
        let tail: Vec<u8> = e.input_ids[first..e.input_ids.len() - 1]
            .iter()
            .map(|&t| t as u8)
            .collect();
        let tail = String::from_utf8(tail).unwrap();
        assert!(
            tail.starts_with(" the correct answer is ") || tail == " hi" || tail == " x",
            "unmasked tail {tail:?} ({unmasked} tokens)"
        );
    }
    // Same config, same dataset; another seed, another split.
    assert_eq!(build_dataset(&cfg, dir.path(), &tok).unwrap(), ds);
    cfg.seed = 7;
    assert_ne!(build_dataset(&cfg, dir.path(), &tok).unwrap().val, ds.val);
    let out = tempfile::tempdir().unwrap();
    ds.save(out.path()).unwrap();
    assert_eq!(TokenizedDataset::load(out.path()).unwrap(), ds);
}

#[test]
fn a_bad_row_deep_in_a_file_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"id": 1, "question": "q", "choices": ["a", "b"], "label": 0}"#;
    let bad = r#"{"id": 2, "question": "q", "choices": ["a", 3], "label": 0}"#;
    write(
        dir.path(),
        "piqa.train.jsonl",
        &format!("{good}\n{good}\n{bad}\n"),
    );
    let cfg = DataConfig::new(vec!["piqa.train.jsonl".into()], Template::LlmAdapters);
    let e = build_dataset(&cfg, dir.path(), &byte_tokenizer())
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("piqa.train.jsonl: line 3: field `choices`: element 1: expected a string, found a number"), "{e}");
    write(dir.path(), "mystery.jsonl", &format!("{good}\n"));
    let cfg = DataConfig::new(vec!["mystery.jsonl".into()], Template::LlmAdapters);
    let e = build_dataset(&cfg, dir.path(), &byte_tokenizer())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("mystery.jsonl: cannot tell the task from the file name"),
        "{e}"
    );
    let cfg = DataConfig {
        val_rows: 1,
        ..DataConfig::new(vec!["piqa.train.jsonl".into()], Template::Raw)
    };
    let e = build_dataset(&cfg, dir.path(), &byte_tokenizer())
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3"), "{e}");
}

#[test]
fn batch_plan_over_a_built_dataset_collates_padded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..10)
        .map(|i| format!("{{\"text\": \"{}\"}}\n", "a".repeat(i + 1)))
        .collect();
    write(dir.path(), "t.jsonl", &rows);
    let mut cfg = DataConfig::new(vec!["t.jsonl".into()], Template::Raw);
    cfg.tokenize.eos_id = Some(258);
    let ds = build_dataset(&cfg, dir.path(), &byte_tokenizer()).unwrap();
    let mut pc = PlanConfig::new(4, 3);
    pc.group_by_length = true;
    let plan = BatchPlan::new(ds.lengths(Split::Train), pc).unwrap();
    let (cursor, idx) = plan.iter_from(Cursor::default()).next().unwrap();
    assert_eq!(cursor, Cursor { epoch: 0, batch: 0 });
    let batch = ds
        .collate(Split::Train, &idx, 256, &candle_core::Device::Cpu)
        .unwrap();
    let lens: Vec<usize> = idx.iter().map(|&i| ds.train[i].input_ids.len()).collect();
    assert_eq!(batch.input_ids.dims(), &[4, *lens.iter().max().unwrap()]);
    assert_eq!(batch.n_tokens, lens.iter().sum::<usize>());
    // Packing: rows of 8 tokens hold every token once.
    cfg.pack = Some(8);
    let packed = build_dataset(&cfg, dir.path(), &byte_tokenizer()).unwrap();
    assert!(packed.train.iter().all(|e| e.input_ids.len() <= 8));
    assert_eq!(packed.meta.train_tokens, ds.meta.train_tokens);
}

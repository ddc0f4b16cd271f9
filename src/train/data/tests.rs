//! Cross-module tests: the byte-exact LLM-Adapters train prompt for each of the eight tasks from
//! real rows (references from tests/fixtures/data/llm_adapters/make_fixtures.py, an independent
//! Python rendering of the DoRA repo's generate_prompt), and the whole data pipeline end to end.

use std::path::{Path, PathBuf};

use super::read::read_records;
use super::schema::{RowSchema, parse_row};
use super::template::{Rendered, Template, render};
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
        let Rendered::Pair(rendered) =
            render(&Template::LlmAdapters, &row, Some(task), None).unwrap()
        else {
            panic!("llm-adapters renders a prompt and a completion")
        };
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
    let ds = build_dataset(&cfg, dir.path(), &tok, None).unwrap();
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
    assert_eq!(build_dataset(&cfg, dir.path(), &tok, None).unwrap(), ds);
    cfg.seed = 7;
    assert_ne!(
        build_dataset(&cfg, dir.path(), &tok, None).unwrap().val,
        ds.val
    );
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
    let e = build_dataset(&cfg, dir.path(), &byte_tokenizer(), None)
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("piqa.train.jsonl: line 3: field `choices`: element 1: expected a string, found a number"), "{e}");
    write(dir.path(), "mystery.jsonl", &format!("{good}\n"));
    let cfg = DataConfig::new(vec!["mystery.jsonl".into()], Template::LlmAdapters);
    let e = build_dataset(&cfg, dir.path(), &byte_tokenizer(), None)
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
    let e = build_dataset(&cfg, dir.path(), &byte_tokenizer(), None)
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
    let ds = build_dataset(&cfg, dir.path(), &byte_tokenizer(), None).unwrap();
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
    let packed = build_dataset(&cfg, dir.path(), &byte_tokenizer(), None).unwrap();
    assert!(packed.train.iter().all(|e| e.input_ids.len() <= 8));
    assert_eq!(packed.meta.train_tokens, ds.meta.train_tokens);
}

fn chat_fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/chat")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn chat_row(messages: &serde_json::Value) -> schema::Row {
    parse_row(
        serde_json::json!({ "messages": messages }),
        RowSchema::Auto,
        None,
        Path::new("chat.jsonl"),
        Location::Line(1),
    )
    .unwrap()
}

fn chatml_tokens() -> Vec<(String, String)> {
    vec![
        ("bos_token".into(), "<|im_start|>".into()),
        ("eos_token".into(), "<|im_end|>".into()),
    ]
}

// transformers' own token mask: golden.json's `generation/*` cases hold the `input_ids` and
// `assistant_masks` that `apply_chat_template(tokenize=True, return_assistant_tokens_mask=True)`
// returned for generation.jinja with the tiny-random-llama vocabulary, which is rora's built-in
// byte tokenizer. `template "model"` must give the same ids, with the loss on exactly the tokens
// the mask marks.
#[test]
fn model_template_masks_as_transformers_assistant_masks() {
    let cases: Vec<serde_json::Value> = serde_json::from_str(&chat_fixture("golden.json")).unwrap();
    let tok = crate::model::tokenizer::byte_tokenizer().unwrap();
    let chat =
        template::ModelChat::new(&chat_fixture("generation.jinja"), &chatml_tokens()).unwrap();
    let assistant = Template::Model {
        train_on: template::TrainOn::Assistant,
    };
    let mut checked = 0;
    for c in cases.iter().filter(|c| {
        c["name"].as_str().unwrap().starts_with("generation/")
            && c["add_generation_prompt"] == false
    }) {
        let r = render(&assistant, &chat_row(&c["messages"]), None, Some(&chat)).unwrap();
        let opts = TokenizeOptions {
            max_len: 4096,
            ..Default::default()
        };
        let out = tokenize::tokenize_batch(&tok, &[r], &opts).unwrap();
        let e = &out[0].example;
        let ids: Vec<u32> = serde_json::from_value(c["input_ids"].clone()).unwrap();
        let mask: Vec<u8> = serde_json::from_value(c["assistant_masks"].clone()).unwrap();
        assert_eq!(e.input_ids, ids, "{}", c["name"]);
        let got: Vec<u8> = e
            .labels
            .iter()
            .map(|&l| u8::from(l != IGNORE_INDEX))
            .collect();
        assert_eq!(got, mask, "{}", c["name"]);
        checked += 1;
    }
    assert_eq!(checked, 3);
}

// SmolLM2's template (no generation blocks): the loss is on each assistant reply and what closes
// it (`<|im_end|>\n`), counted by hand: byte tokenizer, one token per byte or special.
#[test]
fn model_template_on_smollm2_chat_and_sharegpt_rows() {
    let tok = crate::model::tokenizer::byte_tokenizer().unwrap();
    let chat = template::ModelChat::new(&chat_fixture("smollm2.jinja"), &chatml_tokens()).unwrap();
    let sharegpt = parse_row(
        serde_json::json!({"conversations": [
            {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"},
            {"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]}),
        RowSchema::Auto,
        None,
        Path::new("c.jsonl"),
        Location::Line(3),
    )
    .unwrap();
    let messages = chat_row(&serde_json::json!([
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"},
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]));
    assert_eq!(sharegpt, messages);
    let opts = TokenizeOptions {
        max_len: 4096,
        ..Default::default()
    };
    let run = |train_on| {
        let t = Template::Model { train_on };
        let r = render(&t, &messages, None, Some(&chat)).unwrap();
        tokenize::tokenize_batch(&tok, &[r], &opts)
            .unwrap()
            .remove(0)
    };
    let only = run(template::TrainOn::Assistant).example;
    let trained: Vec<u8> = only
        .input_ids
        .iter()
        .zip(&only.labels)
        .filter(|(_, l)| **l != IGNORE_INDEX)
        .map(|(&id, _)| id as u8)
        .collect();
    // "Yo" <|im_end|> "\n" then "4" <|im_end|> "\n" (byte b has id b + 3; <|im_end|> is 2)
    let want: Vec<u8> = [b"Yo".as_slice(), &[255], b"\n", b"4", &[255], b"\n"]
        .concat()
        .iter()
        .map(|&b| if b == 255 { 2 } else { b + 3 })
        .collect();
    assert_eq!(trained, want);
    // the default system turn SmolLM2's template adds is in the text, without loss
    let text = tok.decode(&only.input_ids, false).unwrap();
    assert!(text.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    let all = run(template::TrainOn::All).example;
    assert_eq!(all.input_ids, only.input_ids);
    assert!(all.labels.iter().all(|&l| l != IGNORE_INDEX));
    // instruction rows become a user and an assistant turn
    let inst = parse_row(
        serde_json::json!({"instruction": "Hi", "output": "Yo"}),
        RowSchema::Auto,
        None,
        Path::new("c.jsonl"),
        Location::Line(1),
    )
    .unwrap();
    let t = Template::Model {
        train_on: template::TrainOn::Assistant,
    };
    let as_chat = render(&t, &inst, None, Some(&chat)).unwrap();
    let first_two = chat_row(&serde_json::json!([
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]));
    assert_eq!(as_chat, render(&t, &first_two, None, Some(&chat)).unwrap());
}

#[test]
fn chat_rows_need_the_model_template_and_a_chat_template() {
    let row = chat_row(&serde_json::json!([{"role": "user", "content": "Hi"}]));
    let e = render(&Template::Alpaca, &row, None, None).unwrap_err();
    assert!(e.contains("needs `template \"model\"`"), "{e}");
    let t = Template::Model {
        train_on: template::TrainOn::Assistant,
    };
    let e = render(&t, &row, None, None).unwrap_err();
    assert!(e.contains("the model has no chat template"), "{e}");
    let e = render(&t, &schema::Row::Text("x".into()), None, None).unwrap_err();
    assert!(e.contains("needs the `raw` template"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.jsonl"),
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n",
    )
    .unwrap();
    let cfg = DataConfig::new(vec!["c.jsonl".into()], t);
    let e = build_dataset(&cfg, dir.path(), &byte_tokenizer(), None).unwrap_err();
    assert!(e.to_string().contains("no chat template"), "{e}");
}

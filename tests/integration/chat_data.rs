//! Chat rows end to end through the CLI: `messages` and ShareGPT files rendered with the model's
//! own chat template (`template "model"`; random models carry a ChatML template), the loss on the
//! assistant's turns by default and on every token with `train-on="all"`, training on both, and
//! the mistakes `rora check` and `rora run` report before any compute.

use std::path::Path;

use crate::support::{rora, text, walk};

fn pipeline(dir: &Path, data_options: &str) -> std::path::PathBuf {
    let data = crate::root().join("datasets/chat");
    let p = dir.join("chat.kdl");
    std::fs::write(
        &p,
        format!(
            r#"
model "tiny" {{
    random layers=1 hidden=32 heads=2 kv-heads=1 ffn=64 seed=3
}}
data "assistant" {{
    files "{data}/commonsense.messages.jsonl" "{data}/commonsense.sharegpt.jsonl"
    template "model"
    max-len 512
}}
data "all" {{
    files "{data}/commonsense.messages.jsonl"
    {data_options}
    max-len 512
}}
adapter "ad" model="tiny" {{
    rank 4
    alpha 8
    targets "q_proj" "v_proj"
}}
train "ft" adapter="ad" data="assistant" {{
    steps 2
    batch 2
    lr 1e-3
}}
train "ft-all" adapter="ad" data="all" {{
    steps 2
    batch 2
    lr 1e-3
}}
"#,
            data = data.display()
        ),
    )
    .unwrap();
    p
}

/// The `meta` of every `tokens` entry: what the tokenization recorded.
fn tokens_meta(cache: &Path) -> Vec<serde_json::Value> {
    walk(&cache.join("v1/entries"))
        .into_iter()
        .filter(|f| f.ends_with("manifest.json"))
        .map(|f| serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(f).unwrap()))
        .map(Result::unwrap)
        .filter(|m| m["kind"] == "tokens")
        .map(|m| m["meta"]["outputs"]["meta"].clone())
        .collect()
}

#[test]
fn chat_files_train_with_the_models_template_on_assistant_turns_or_all() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = pipeline(dir.path(), r#"template "model" train-on="all""#);
    let o = rora(&["run", p.to_str().unwrap()], &cache);
    assert!(o.status.success(), "{}", text(&o));
    let mut metas = tokens_meta(&cache);
    metas.sort_by_key(|m| m["rows_read"].as_u64());
    assert_eq!(metas.len(), 2, "{metas:?}");
    let (all, assistant) = (&metas[0], &metas[1]);
    // 48 messages rows; 48 + 24 ShareGPT rows
    assert_eq!(all["rows_read"], 48);
    assert_eq!(assistant["rows_read"], 72);
    assert_eq!(assistant["rows_per_task"]["chat"], 72);
    assert_eq!(all["template"], "model");
    assert_eq!(all["train_on_inputs"], true);
    assert_eq!(assistant["train_on_inputs"], false);
    // every token but each row's first (which nothing predicts) carries the loss
    assert_eq!(
        all["train_loss_tokens"].as_u64().unwrap(),
        all["train_tokens"].as_u64().unwrap() - all["train_rows"].as_u64().unwrap()
    );
    let (loss, tokens) = (
        assistant["train_loss_tokens"].as_u64().unwrap(),
        assistant["train_tokens"].as_u64().unwrap(),
    );
    // the answers are short and the questions long: a small share of tokens carries the loss
    assert!(loss > 0 && loss * 4 < tokens, "{loss} of {tokens}");
}

#[test]
fn chat_mistakes_are_reported_before_compute() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // a chat file with a prompt template: the data stage names the file, line and template
    let p = pipeline(dir.path(), r#"template "alpaca""#);
    let o = rora(&["run", p.to_str().unwrap()], &cache);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("commonsense.messages.jsonl: line 1: template `alpaca`: a chat row"),
        "{t}"
    );
    assert!(tokens_meta(&cache).is_empty(), "{t}");
    // a row with an unknown role
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}\n{\"conversations\": [{\"from\": \"robot\", \"value\": \"b\"}]}\n",
    )
    .unwrap();
    let p2 = dir.path().join("bad.kdl");
    std::fs::write(
        &p2,
        format!(
            "model \"tiny\" {{\n    random layers=1 hidden=32 heads=2 kv-heads=1 ffn=64\n}}\ndata \"d\" {{\n    files \"{}\"\n    template \"model\"\n}}\nadapter \"ad\" model=\"tiny\" {{\n    rank 2\n}}\ntrain \"ft\" adapter=\"ad\" data=\"d\" {{\n    steps 1\n}}\n",
            bad.display()
        ),
    )
    .unwrap();
    let o = rora(&["run", p2.to_str().unwrap()], &cache);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("bad.jsonl: line 2: field `conversations[0].from`: unknown role \"robot\""),
        "{t}"
    );
}

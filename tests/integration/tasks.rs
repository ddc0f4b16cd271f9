//! User-defined eval tasks through the CLI: a task file and a row file evaluated end to end by
//! `rora run` (both protocols), lm-eval-shaped results, the key following the task file's content,
//! and the diagnostics for bad task files, unknown names and bad rows.

use std::path::{Path, PathBuf};

use crate::support::{rora, text};

/// A copy of `datasets/custom` and a pipeline beside it, so tests can edit the task file.
fn setup(dir: &Path, protocol: &str, extra: &str) -> PathBuf {
    let custom = dir.join("custom");
    std::fs::create_dir_all(&custom).unwrap();
    for e in std::fs::read_dir(crate::root().join("datasets/custom")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, custom.join(p.file_name().unwrap())).unwrap();
    }
    let pipeline = dir.join("p.kdl");
    std::fs::write(
        &pipeline,
        format!(
            "model \"tiny\" {{\n    random layers=1 hidden=32 heads=2 kv-heads=1 ffn=64 seed=3\n}}\n\
             eval \"quiz\" model=\"tiny\" {{\n    tasks \"custom/science-quiz.kdl\" \"csqa-mini\"\n    \
             dir \"custom\"\n    protocol \"{protocol}\"\n{extra}}}\n"
        ),
    )
    .unwrap();
    pipeline
}

/// The eval entry's `results.json` (the one entry of an eval job in the cache).
fn results(cache: &Path) -> serde_json::Value {
    let path = crate::support::walk(cache)
        .into_iter()
        .find(|p| p.ends_with("out/results.json"))
        .expect("an eval entry");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn predictions(cache: &Path, task: &str) -> Vec<serde_json::Value> {
    let path = crate::support::walk(cache)
        .into_iter()
        .find(|p| p.ends_with(format!("out/predictions/{task}.jsonl")))
        .expect("predictions");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_task_file_and_a_row_file_run_end_to_end_with_lm_eval_results() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = setup(dir.path(), "loglik", "");
    let out = rora(&["run", p.to_str().unwrap()], &cache);
    assert!(out.status.success(), "{}", text(&out));
    let r = results(&cache);
    for task in ["science-quiz", "csqa-mini"] {
        let preds = predictions(&cache, task);
        assert_eq!(preds.len(), 12);
        // lm-eval's stderr of a mean of 0/1 outcomes: sqrt(p (1 - p) / (n - 1)).
        let n = preds.len() as f64;
        let p = preds.iter().filter(|x| x["correct"] == true).count() as f64 / n;
        let res = &r["results"][task];
        assert_eq!(res["acc,none"].as_f64().unwrap(), p, "{r}");
        let se = res["acc_stderr,none"].as_f64().unwrap();
        assert!(
            (se - (p * (1.0 - p) / (n - 1.0)).sqrt()).abs() < 1e-12,
            "{r}"
        );
        assert!(res["acc_norm,none"].is_number() && res["acc_norm_stderr,none"].is_number());
        assert_eq!(r["n-samples"][task]["effective"], 12);
    }
    // The task file's columns: `stem`, `A`..`E`, letter labels (q01's answer is B = 1); two
    // solved train examples before each question, the item's own context last.
    let quiz = predictions(&cache, "science-quiz");
    assert_eq!(quiz[0]["id"], "q01");
    assert_eq!(quiz[0]["label"], 1);
    let ctx = quiz[0]["contexts"][0].as_str().unwrap();
    assert_eq!(ctx.matches("Question: ").count(), 3, "{ctx}");
    assert!(ctx.ends_with("Question: What do plants take in from the air to make food?\nAnswer:"));
    assert_eq!(quiz[0]["continuations"][1], " carbon dioxide");
    // The row file in `dir` reads with the default prompts: zero-shot.
    let mini = predictions(&cache, "csqa-mini");
    assert_eq!(
        mini[0]["contexts"][0],
        "Question: What do plants take in from the air to make food?\nAnswer:"
    );
    // Both tasks score the same twelve questions with the same item contexts except the
    // few-shot prefix, so the results differ only through it.
    assert_eq!(r["config"]["protocol"], "loglik");

    // A rerun computes nothing; editing the task file changes the eval key only.
    let out = rora(&["run", p.to_str().unwrap()], &cache);
    assert!(text(&out).contains("2 cached"), "{}", text(&out));
    let task = dir.path().join("custom/science-quiz.kdl");
    let edited = std::fs::read_to_string(&task)
        .unwrap()
        .replace("fewshot 2", "fewshot 1");
    std::fs::write(&task, edited).unwrap();
    let out = rora(&["run", p.to_str().unwrap()], &cache);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 computed"), "{}", text(&out));
}

#[test]
fn generation_with_a_plain_prompt_extracts_the_letter() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = setup(
        dir.path(),
        "llm-adapters",
        "    max-new-tokens 3\n    limit 4\n    subset \"first\"\n",
    );
    let out = rora(&["run", p.to_str().unwrap()], &cache);
    assert!(out.status.success(), "{}", text(&out));
    let quiz = predictions(&cache, "science-quiz");
    // `subset "first"` keeps the first four rows, in order.
    let ids: Vec<&str> = quiz.iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["q01", "q02", "q03", "q04"]);
    let first = &quiz[0];
    assert_eq!(first["label"], "B");
    let prompt = first["prompt"].as_str().unwrap();
    // Two solved examples (prompt + gold letter), then the item; no LLM-Adapters wrapper.
    assert!(!prompt.contains("### Instruction"), "{prompt}");
    assert!(
        prompt.ends_with(
            "What do plants take in from the air to make food?\nA. oxygen\nB. carbon dioxide\nC. nitrogen\nD. helium\nE. steam\nAnswer:"
        ),
        "{prompt}"
    );
    assert_eq!(prompt.matches("Answer:").count(), 3, "{prompt}");
    let r = results(&cache);
    assert!(
        r["results"]["science-quiz"]["exact_match,none"].is_number(),
        "{r}"
    );
    // The default row file uses LLM-Adapters' instruction prompt.
    let mini = predictions(&cache, "csqa-mini");
    assert!(
        mini[0]["prompt"]
            .as_str()
            .unwrap()
            .contains("Answer format: answer1/answer2/answer3/answer4/answer5")
    );
}

#[test]
fn task_file_errors_come_with_spans_from_check_and_from_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let task = dir.path().join("t.kdl");
    std::fs::write(
        &task,
        "task \"t\" {\n    questoin-column \"q\"\n    min-choices 1\n}\n",
    )
    .unwrap();
    let out = rora(&["check", task.to_str().unwrap()], &cache);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("did you mean `question-column`?"), "{t}");
    assert!(t.contains("t.kdl:2:5"), "{t}");
    assert!(t.contains("t.kdl:3:17"), "{t}");
    let fixture = crate::root().join("tests/fixtures/tasks/bad-template.kdl");
    let out = rora(&["check", fixture.to_str().unwrap()], &cache);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("template `context` does not parse"), "{t}");
    assert!(t.contains("`extract` is not a regex"), "{t}");
    let out = rora(
        &[
            "check",
            crate::root()
                .join("datasets/custom/science-quiz.kdl")
                .to_str()
                .unwrap(),
        ],
        &cache,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2-shot from train"), "{}", text(&out));
}

#[test]
fn unknown_names_and_bad_rows_are_reported_before_any_model_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let p = dir.path().join("p.kdl");
    let pipeline = |tasks: &str, dir: &str| {
        format!(
            "model \"tiny\" {{\n    random layers=1 hidden=32 heads=2 kv-heads=1 ffn=64\n}}\n\
             eval \"e\" model=\"tiny\" {{\n    tasks {tasks}\n{dir}}}\n"
        )
    };
    std::fs::write(&p, pipeline("\"csqa\"", "")).unwrap();
    let out = rora(&["check", p.to_str().unwrap()], &cache);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("rora::semantic::unknown-task") && t.contains("csqa.eval.jsonl"),
        "{t}"
    );
    // With `dir` holding csqa.eval.jsonl the same name is a custom task; a label outside the
    // choices is an error naming the file and the line, and no eval output is stored.
    let rows = dir.path().join("rows");
    std::fs::create_dir_all(&rows).unwrap();
    std::fs::write(
        rows.join("csqa.eval.jsonl"),
        "{\"id\": 1, \"question\": \"q\", \"choices\": [\"a\", \"b\"], \"label\": 1}\n\
         {\"id\": 2, \"question\": \"q\", \"choices\": [\"a\", \"b\"], \"label\": 5}\n",
    )
    .unwrap();
    std::fs::write(&p, pipeline("\"csqa\"", "    dir \"rows\"\n")).unwrap();
    let out = rora(&["check", p.to_str().unwrap()], &cache);
    assert!(out.status.success(), "{}", text(&out));
    let out = rora(&["run", p.to_str().unwrap()], &cache);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(
        t.contains("csqa.eval.jsonl:2") && t.contains("`label`"),
        "{t}"
    );
    assert!(!t.contains("done     e"), "{t}");
}

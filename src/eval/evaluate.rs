//! The entry point: load each task, select its items, render every prompt ([`prepare`], before
//! any model is loaded, so a bad row or template fails early), then run the protocol
//! ([`evaluate_prepared`]) and collect results.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::codec::TextCodec;
use super::config::{EvalConfig, Progress};
use super::error::{EvalError, Result};
use super::llm_adapters::prompt::eval_prompt;
use super::results::{EvalResults, EvalSummary, Protocol};
use super::subsample::select;
use super::task::{McItem, Task, load_rows};
use super::{llm_adapters, loglik};
use crate::lm::IncrementalLm;
use crate::task::spec::PromptStyle;
use crate::task::{ChoiceRequest, Compiled};

/// What a protocol runs on: every request rendered.
#[derive(Debug)]
pub enum Work {
    /// Per item, one request per choice.
    Loglik(Vec<Vec<ChoiceRequest>>),
    /// Per item, the prompt and every choice's answer word.
    Generate {
        prompts: Vec<String>,
        answers: Vec<Vec<String>>,
    },
}

/// A task ready to evaluate.
#[derive(Debug)]
pub struct Prepared {
    pub task: Task,
    pub compiled: Compiled,
    /// The selected items, in file order.
    pub items: Vec<McItem>,
    /// Rows in the file before `limit`.
    pub rows: usize,
    pub work: Work,
}

/// Load, select and render every task of `cfg`. Errors name the file and the row.
pub fn prepare(cfg: &EvalConfig) -> Result<Vec<Prepared>> {
    if cfg.tasks.is_empty() {
        return Err(EvalError::Config("no tasks".into()));
    }
    let mut names = std::collections::BTreeSet::new();
    if let Some(dup) = cfg.tasks.iter().find(|t| !names.insert(t.name.as_str())) {
        return Err(EvalError::Config(format!(
            "task `{}` is listed twice",
            dup.name
        )));
    }
    cfg.tasks.iter().map(|t| prepare_task(t, cfg)).collect()
}

fn prepare_task(task: &Task, cfg: &EvalConfig) -> Result<Prepared> {
    let compiled = task.def.compile().map_err(|message| EvalError::BadItem {
        task: task.name.clone(),
        id: "-".into(),
        message,
    })?;
    let all = task.load()?;
    let rows = all.len();
    let items: Vec<McItem> = select(all.len(), cfg.limit, cfg.subset, cfg.seed)
        .into_iter()
        .map(|i| all[i].clone())
        .collect();
    let bad = |item: &McItem, message: String| EvalError::BadRow {
        path: task.path.clone(),
        line: item.line,
        message: format!("task `{}`: {message}", task.name),
    };
    let prefixes = fewshot_prefixes(task, &compiled, &items, cfg.protocol)?;
    let work = match cfg.protocol {
        Protocol::Loglik => Work::Loglik(
            items
                .iter()
                .zip(&prefixes)
                .map(|(it, pre)| {
                    let mut reqs = compiled.requests(it).map_err(|m| bad(it, m))?;
                    for r in &mut reqs {
                        r.context.insert_str(0, pre);
                    }
                    Ok(reqs)
                })
                .collect::<Result<_>>()?,
        ),
        Protocol::LlmAdapters => {
            let mut prompts = Vec::with_capacity(items.len());
            let mut answers = Vec::with_capacity(items.len());
            for (it, pre) in items.iter().zip(&prefixes) {
                let (prompt, words) = generation_prompt(&compiled, it).map_err(|m| bad(it, m))?;
                prompts.push(format!("{pre}{prompt}"));
                answers.push(words);
            }
            Work::Generate { prompts, answers }
        }
    };
    Ok(Prepared {
        task: task.clone(),
        compiled,
        items,
        rows,
        work,
    })
}

/// The llm-adapters prompt of an item and its choices' answer words.
fn generation_prompt(
    c: &Compiled,
    item: &McItem,
) -> std::result::Result<(String, Vec<String>), String> {
    let answers = c.answers(item)?;
    let instruction = c.instruction(item, &answers)?;
    let prompt = match c.def.prompt {
        PromptStyle::LlmAdapters => eval_prompt(&instruction),
        PromptStyle::Plain => instruction,
    };
    Ok((prompt, answers))
}

/// The few-shot prefix of every item (empty strings when the task asks for none): `n` examples
/// drawn without replacement from the task's few-shot split with one seeded stream, in item order,
/// never the item itself; each example solved (loglik: context + delimiter + gold continuation;
/// llm-adapters: prompt + gold answer word, with the delimiter between for a plain prompt),
/// joined and followed by the few-shot delimiter.
fn fewshot_prefixes(
    task: &Task,
    c: &Compiled,
    items: &[McItem],
    protocol: Protocol,
) -> Result<Vec<String>> {
    let (Some(fs), Some(path)) = (&task.def.fewshot, &task.fewshot_path) else {
        return Ok(vec![String::new(); items.len()]);
    };
    let pool = load_rows(&task.def, path)?;
    let same_file = path == &task.path;
    let mut rng = ChaCha8Rng::seed_from_u64(fs.seed);
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let candidates: Vec<&McItem> = pool
            .iter()
            .filter(|ex| !(same_file && ex.id == item.id))
            .collect();
        if candidates.len() < fs.n {
            return Err(EvalError::Config(format!(
                "task `{}`: fewshot {} needs {} examples, {} has {}",
                task.name,
                fs.n,
                fs.n,
                path.display(),
                candidates.len()
            )));
        }
        let mut picked = rand::seq::index::sample(&mut rng, candidates.len(), fs.n).into_vec();
        picked.sort_unstable();
        let mut text = String::new();
        for i in picked {
            let ex = candidates[i];
            let bad = |message: String| EvalError::BadRow {
                path: path.clone(),
                line: ex.line,
                message: format!("task `{}` (few-shot example): {message}", task.name),
            };
            let solved = match protocol {
                Protocol::Loglik => {
                    let reqs = c.requests(ex).map_err(bad)?;
                    let r = &reqs[ex.label];
                    format!("{}{}", r.context, r.continuation)
                }
                Protocol::LlmAdapters => {
                    let (prompt, words) = generation_prompt(c, ex).map_err(bad)?;
                    // LLM-Adapters' prompt ends where the response starts; a plain one gets the
                    // task's delimiter first, as lm-eval does.
                    let gap = match c.def.prompt {
                        PromptStyle::LlmAdapters => "",
                        PromptStyle::Plain => c.def.delimiter.as_str(),
                    };
                    format!("{prompt}{gap}{}", words[ex.label])
                }
            };
            text.push_str(&solved);
            text.push_str(&fs.delimiter);
        }
        out.push(text);
    }
    Ok(out)
}

/// Evaluate `model` on every task of `cfg`: [`prepare`] then [`evaluate_prepared`].
pub fn evaluate<M: IncrementalLm>(
    model: &M,
    codec: &TextCodec,
    cfg: &EvalConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<EvalResults> {
    let prepared = prepare(cfg)?;
    evaluate_prepared(model, codec, cfg, &prepared, progress)
}

/// Evaluate prepared tasks. Tasks run in the order given; results are labelled with the protocol;
/// predictions are in file order of the selected items.
pub fn evaluate_prepared<M: IncrementalLm>(
    model: &M,
    codec: &TextCodec,
    cfg: &EvalConfig,
    prepared: &[Prepared],
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<EvalResults> {
    if cfg.batch_size == 0 {
        return Err(EvalError::Config("batch size must be at least 1".into()));
    }
    if cfg.protocol == Protocol::LlmAdapters && codec.eos_ids.is_empty() {
        return Err(EvalError::Config(
            "generation needs at least one end-of-sequence id".into(),
        ));
    }
    let mut results = Vec::with_capacity(prepared.len());
    let mut predictions = BTreeMap::new();
    for p in prepared {
        progress(Progress::TaskStarted {
            task: &p.task.name,
            items: p.items.len(),
        });
        let (result, preds) = match &p.work {
            Work::Generate { prompts, answers } => {
                llm_adapters::run_task(model, codec, p, prompts, answers, cfg, progress)?
            }
            Work::Loglik(reqs) => loglik::run_task(model, codec, p, reqs, cfg, progress)?,
        };
        progress(Progress::TaskFinished {
            task: &p.task.name,
            accuracy: result.accuracy,
        });
        results.push(result);
        predictions.insert(p.task.name.clone(), preds);
    }
    let generation = (cfg.protocol == Protocol::LlmAdapters).then(|| cfg.generation.clone());
    let mut summary = EvalSummary::new(cfg.protocol, results, cfg.limit, cfg.seed, generation);
    summary.subset = Some(cfg.subset);
    summary.lm_eval_names = prepared
        .iter()
        .map(|p| (p.task.name.clone(), p.task.def.lm_eval_name().to_string()))
        .collect();
    Ok(EvalResults {
        summary,
        predictions,
    })
}

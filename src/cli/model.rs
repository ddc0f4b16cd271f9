//! `rora model info|ppl|generate|logits`: inspect a model, measure perplexity, generate greedily,
//! compare logits across devices.
//!
//! `<src>` is a `.gguf` file, an HF model directory, or `random:<preset>[,key=value...]`.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use miette::{IntoDiagnostic, Result, miette};

pub use super::load::{LoadArgs, load_src, open};

use crate::model::chat::{ChatMessage, render_chat};
use crate::model::generate::{greedy, nll};
use crate::model::inspect::{ParamCounts, stored_dtypes};

#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Architecture, per-layer dimensions, parameter counts, dtypes and tokenizer.
    Info {
        /// A .gguf file, an HF model directory, or random:<preset>[,key=value...].
        src: String,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Perplexity of a text file (exp of the mean next-token negative log-likelihood).
    Ppl {
        src: String,
        /// The text to score.
        #[arg(long)]
        text_file: PathBuf,
        /// Longest window scored at once; longer texts are cut into consecutive windows.
        #[arg(long, default_value_t = 1024)]
        window: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Logits of a token sequence, optionally compared with another device (GPU vs CPU check).
    Logits(super::logits::LogitsArgs),
    /// Greedy generation from a prompt.
    Generate {
        src: String,
        #[arg(long)]
        prompt: String,
        /// Most tokens to generate.
        #[arg(long, default_value_t = 64)]
        max_new: usize,
        /// Wrap the prompt as a user message with the model's chat template.
        #[arg(long)]
        chat: bool,
        #[command(flatten)]
        load: LoadArgs,
    },
}

pub fn run(args: ModelArgs) -> Result<()> {
    match args.command {
        ModelCommand::Info { src, load } => info(&src, &load),
        ModelCommand::Logits(a) => super::logits::run(&a),
        ModelCommand::Ppl {
            src,
            text_file,
            window,
            load,
        } => {
            let (_, m, _) = load_src(&src, &load)?;
            let text = std::fs::read_to_string(&text_file)
                .map_err(|e| miette!("{}: {e}", text_file.display()))?;
            let ids = m
                .tokenizer
                .encode(text, false)
                .map_err(|e| miette!("tokenizing: {e}"))?
                .get_ids()
                .to_vec();
            let t0 = Instant::now();
            let (total, n) = nll(&m.model, &ids, window).into_diagnostic()?;
            if n == 0 {
                return Err(miette!(
                    "{}: fewer than two tokens to score",
                    text_file.display()
                ));
            }
            println!("tokens scored: {n}");
            println!("mean nll: {:.4}", total / n as f64);
            println!("perplexity: {:.3}", (total / n as f64).exp());
            println!(
                "time: {:.2}s ({:.0} tok/s)",
                t0.elapsed().as_secs_f64(),
                n as f64 / t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        ModelCommand::Generate {
            src,
            prompt,
            max_new,
            chat,
            load,
        } => {
            let (_, m, _) = load_src(&src, &load)?;
            let text = if chat {
                let tmpl = m
                    .chat_template
                    .as_deref()
                    .ok_or_else(|| miette!("{src}: the model has no chat template"))?;
                let tok = |id: Option<u32>| {
                    id.and_then(|i| m.tokenizer.id_to_token(i))
                        .unwrap_or_default()
                };
                render_chat(
                    tmpl,
                    &[ChatMessage::user(&prompt)],
                    true,
                    &tok(m.special.bos),
                    &tok(m.special.eos.first().copied()),
                )
                .into_diagnostic()?
            } else {
                prompt
            };
            let ids = m
                .tokenizer
                .encode(text, false)
                .map_err(|e| miette!("tokenizing: {e}"))?
                .get_ids()
                .to_vec();
            let t0 = Instant::now();
            let out = greedy(
                &m.model,
                &[ids],
                max_new,
                &m.special.eos,
                m.special.pad_id(),
            )
            .into_diagnostic()?;
            let new = out.first().cloned().unwrap_or_default();
            println!(
                "{}",
                m.tokenizer
                    .decode(&new, true)
                    .map_err(|e| miette!("decoding: {e}"))?
            );
            eprintln!(
                "[{} tokens in {:.2}s]",
                new.len(),
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

fn info(src: &str, args: &LoadArgs) -> Result<()> {
    let (source, m, secs) = load_src(src, args)?;
    let c = &m.config;
    println!("source: {}", m.source);
    println!("loaded in {secs:.2}s as {:?}", m.model.dtype());
    println!(
        "architecture: llama, {} layers, hidden {}, head_dim {}, vocab {}",
        c.n_layers(),
        c.hidden_size,
        c.head_dim,
        c.vocab_size
    );
    let scaling = c
        .rope_scaling
        .as_ref()
        .map_or("none".to_string(), |s| format!("llama3 x{}", s.factor));
    println!(
        "rope theta {}, scaling {scaling}; rms eps {}; max positions {}; tied embeddings {}",
        c.rope_theta, c.rms_norm_eps, c.max_position_embeddings, c.tie_word_embeddings
    );
    if c.is_uniform() {
        let d = c.layers[0];
        println!(
            "layers (all): heads {}, kv heads {}, ffn {}",
            d.n_heads, d.n_kv_heads, d.intermediate_size
        );
    } else {
        for (i, d) in c.layers.iter().enumerate() {
            println!(
                "layer {i}: heads {}, kv heads {}, ffn {}",
                d.n_heads, d.n_kv_heads, d.intermediate_size
            );
        }
    }
    let p = ParamCounts::of(&m.model);
    println!(
        "parameters: {} total = embeddings {} + attention {} + mlp {} + norms {} + lm_head {}",
        p.total(),
        p.embeddings,
        p.attention,
        p.mlp,
        p.norms,
        p.lm_head
    );
    let stored = stored_dtypes(&source).into_diagnostic()?;
    let stored: Vec<String> = stored.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    println!("stored tensor types: {}", stored.join(", "));
    let tok = |id: u32| m.tokenizer.id_to_token(id).unwrap_or_else(|| "?".into());
    println!(
        "tokenizer: {} tokens ({} special); bos {}; eos {}; pad {}",
        m.tokenizer.get_vocab_size(true),
        m.tokenizer.get_added_vocabulary().get_vocab().len(),
        m.special
            .bos
            .map_or("none".into(), |b| format!("{b} {}", tok(b))),
        m.special
            .eos
            .iter()
            .map(|&e| format!("{e} {}", tok(e)))
            .collect::<Vec<_>>()
            .join(", "),
        m.special
            .pad
            .map_or("none".into(), |p| format!("{p} {}", tok(p)))
    );
    println!(
        "chat template: {}",
        if m.chat_template.is_some() {
            "yes"
        } else {
            "no"
        }
    );
    Ok(())
}

#!/usr/bin/env python3
"""The PyTorch + transformers side of scripts/bench_eval.sh: the same eval work rora just did.

Reads what `smollm2_eval_bench` (src/eval/smollm2_tests.rs) wrote into OUT:
  hf/               the model as an HF dir, written by rora from the GGUF (identical f32 weights);
  loglik.jsonl      one loglik request a line: {"item", "choice", "label", "context", "continuation", "loglik"};
  generate.jsonl    one prompt a line: {"prompt": [ids], "tokens": [rora's generated ids]};
  rora.json         rora's timings and settings (batch size, max new tokens, eos ids, pad id).
and does the same work with transformers, batched the same way:
  loglik: requests sorted longest first, right-padded batches, one forward each, summed log_softmax
          of the continuation tokens (lm-eval's HFLM);
  generation: prompts sorted longest first, left-padded batches, `generate` (greedy, or `num_beams` from rora.json) with the same
          max new tokens and EOS ids (stops at the first EOS; the EOS is not counted).
Prints one JSON object: items/s and tokens/s of both, their ratio, and how far the outputs agree.

Usage: python scripts/bench_eval.py OUT [THREADS]
"""

import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def batches(order, size):
    for i in range(0, len(order), size):
        yield order[i : i + size]


def loglik_all(model, rows, batch, pad):
    order = sorted(range(len(rows)), key=lambda i: (-(len(rows[i]["context"]) + len(rows[i]["continuation"])), i))
    out = [0.0] * len(rows)
    for chunk in batches(order, batch):
        seqs = [(rows[i]["context"] + rows[i]["continuation"])[:-1] for i in chunk]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        for r, i in enumerate(chunk):
            cont = rows[i]["continuation"]
            n, s = len(cont), len(seqs[r])
            lp = torch.log_softmax(logits[r, s - n : s], dim=-1)
            out[i] = float(lp[torch.arange(n), torch.tensor(cont)].sum())
    return out


def generate_all(model, prompts, batch, pad, eos, max_new, beams=1):
    order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    out = [None] * len(prompts)
    for chunk in batches(order, batch):
        width = max(len(prompts[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, i in enumerate(chunk):
            p = prompts[i]
            ids[r, width - len(p) :] = torch.tensor(p)
            mask[r, width - len(p) :] = 1
        gen = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new,
            do_sample=False,
            num_beams=beams,
            length_penalty=1.0,
            early_stopping=False,
            eos_token_id=eos,
            pad_token_id=pad,
        )[:, width:]
        for r, i in enumerate(chunk):
            toks = []
            for t in gen[r].tolist():
                if t in eos:
                    break
                toks.append(t)
            out[i] = toks
    return out


def main():
    out_dir = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    rora = json.load(open(f"{out_dir}/rora.json"))
    rows = [json.loads(l) for l in open(f"{out_dir}/loglik.jsonl") if l.strip()]
    gens = [json.loads(l) for l in open(f"{out_dir}/generate.jsonl") if l.strip()]
    model = AutoModelForCausalLM.from_pretrained(f"{out_dir}/hf", torch_dtype=torch.float32)
    model.eval()
    pad, eos = rora["pad_id"], rora["eos_ids"]
    with torch.inference_mode():
        t0 = time.perf_counter()
        scores = loglik_all(model, rows, rora["batch_size"], pad)
        t_ll = time.perf_counter() - t0
        t0 = time.perf_counter()
        tokens = generate_all(
            model, [g["prompt"] for g in gens], rora["batch_size"], pad, eos, rora["max_new_tokens"], rora.get("num_beams", 1)
        )
        t_gen = time.perf_counter() - t0
    items = {}
    for r, s in zip(rows, scores):
        it = items.setdefault(r["item"], {"label": r["label"], "hf": {}, "rora": {}})
        it["hf"][r["choice"]] = s
        it["rora"][r["choice"]] = r["loglik"]
    pick = lambda d: max(sorted(d), key=lambda c: d[c])
    n_items = len(items)
    acc_hf = sum(pick(it["hf"]) == it["label"] for it in items.values()) / n_items
    acc_rora = sum(pick(it["rora"]) == it["label"] for it in items.values()) / n_items
    max_diff = max(abs(s - r["loglik"]) for r, s in zip(rows, scores))
    n_tok_hf = sum(len(t) for t in tokens)
    same_gen = sum(t == g["tokens"] for t, g in zip(tokens, gens))
    res = {
        "threads": threads,
        "torch": torch.__version__,
        "loglik_items": n_items,
        "loglik_requests": len(rows),
        "hf_loglik_s": round(t_ll, 3),
        "rora_loglik_s": round(rora["loglik_s"], 3),
        "hf_items_per_s": round(n_items / t_ll, 3),
        "rora_items_per_s": round(n_items / rora["loglik_s"], 3),
        "loglik_ratio_rora_over_hf": round(t_ll / rora["loglik_s"], 3),
        "acc_hf": acc_hf,
        "acc_rora": acc_rora,
        "max_abs_loglik_diff": max_diff,
        "gen_prompts": len(gens),
        "num_beams": rora.get("num_beams", 1),
        "hf_gen_tokens": n_tok_hf,
        "rora_gen_tokens": rora["gen_tokens"],
        "hf_gen_s": round(t_gen, 3),
        "rora_gen_s": round(rora["gen_s"], 3),
        "hf_tokens_per_s": round(n_tok_hf / t_gen, 3),
        "rora_tokens_per_s": round(rora["gen_tokens"] / rora["gen_s"], 3),
        "gen_ratio_rora_over_hf": round((rora["gen_tokens"] / rora["gen_s"]) / (n_tok_hf / t_gen), 3),
        "identical_generations": f"{same_gen}/{len(gens)}",
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

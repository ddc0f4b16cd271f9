#!/usr/bin/env python3
"""Independent check of rora's loglik scores: a plain numpy LLaMA forward over a GGUF file.

Input: the JSONL that `RORA_LOGLIK_DUMP=<file> cargo test --release -- --ignored smollm2_piqa_loglik`
writes, one request a line: {"item", "choice", "label", "context": [ids], "continuation": [ids],
"loglik": <rora's score>}. The script recomputes each continuation's summed log-probability from the
GGUF weights, using llama.cpp's own layout (Q/K rows as stored, interleaved RoPE: no un-permutation,
so it does not share that step with rora's loader), and prints the largest difference and both
accuracies. Token ids come from the dump (the tokenizer is checked elsewhere, against golden ids).

Setup: python3 -m venv /tmp/venv && /tmp/venv/bin/pip install numpy gguf
Run:   /tmp/venv/bin/python scripts/loglik_numpy.py MODEL.gguf DUMP.jsonl
"""

import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def scalar(reader, key):
    f = reader.fields[key]
    return f.parts[f.data[0]][0].item()


def load(path):
    r = GGUFReader(path)
    w = {}
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float32)
        w[t.name] = a.reshape([int(x) for x in reversed(t.shape)])  # ne0 is the fastest axis: (out, in)
    cfg = {
        "layers": scalar(r, "llama.block_count"),
        "heads": scalar(r, "llama.attention.head_count"),
        "kv_heads": scalar(r, "llama.attention.head_count_kv"),
        "theta": scalar(r, "llama.rope.freq_base"),
        "eps": scalar(r, "llama.attention.layer_norm_rms_epsilon"),
    }
    return w, cfg


def rms(x, g, eps):
    return x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps).astype(np.float32) * g


def rope_interleaved(x, theta):
    # x: (T, H, D); llama.cpp "normal" RoPE rotates pairs (2i, 2i+1) by pos * theta^(-2i/D).
    t, _, d = x.shape
    inv = theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    ang = np.arange(t, dtype=np.float64)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :].astype(np.float32), np.sin(ang)[:, None, :].astype(np.float32)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = a * sin + b * cos
    return out


def forward(w, cfg, ids):
    emb = w["token_embd.weight"]
    x = emb[np.array(ids)]
    t = len(ids)
    nh, nkv = cfg["heads"], cfg["kv_heads"]
    d = x.shape[1] // nh
    mask = np.triu(np.full((t, t), -np.inf, dtype=np.float32), 1)
    for i in range(cfg["layers"]):
        p = f"blk.{i}."
        h = rms(x, w[p + "attn_norm.weight"], cfg["eps"])
        q = rope_interleaved((h @ w[p + "attn_q.weight"].T).reshape(t, nh, d), cfg["theta"])
        k = rope_interleaved((h @ w[p + "attn_k.weight"].T).reshape(t, nkv, d), cfg["theta"])
        v = (h @ w[p + "attn_v.weight"].T).reshape(t, nkv, d)
        rep = nh // nkv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(d) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", s, v).reshape(t, nh * d)
        x = x + o @ w[p + "attn_output.weight"].T
        h = rms(x, w[p + "ffn_norm.weight"], cfg["eps"])
        g = h @ w[p + "ffn_gate.weight"].T
        u = h @ w[p + "ffn_up.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "ffn_down.weight"].T
    x = rms(x, w["output_norm.weight"], cfg["eps"])
    head = w.get("output.weight", emb)  # tied embeddings when output.weight is absent
    return x @ head.T


def loglik(w, cfg, ctx, cont):
    full = ctx + cont
    logits = forward(w, cfg, full[:-1]).astype(np.float64)
    lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    start = len(ctx) - 1
    return float(sum(logits[start + j, tok] - lse[start + j] for j, tok in enumerate(cont)))


def main():
    model, dump = sys.argv[1], sys.argv[2]
    w, cfg = load(model)
    rows = [json.loads(l) for l in open(dump) if l.strip()]
    items = {}
    max_diff = 0.0
    for r in rows:
        ours = loglik(w, cfg, r["context"], r["continuation"])
        max_diff = max(max_diff, abs(ours - r["loglik"]))
        items.setdefault(r["item"], {"label": r["label"], "numpy": {}, "rora": {}})
        items[r["item"]]["numpy"][r["choice"]] = ours
        items[r["item"]]["rora"][r["choice"]] = r["loglik"]
    acc = {k: 0 for k in ("numpy", "rora")}
    agree = 0
    for it in items.values():
        picks = {}
        for k in acc:
            s = it[k]
            picks[k] = max(sorted(s), key=lambda c: s[c])
            acc[k] += picks[k] == it["label"]
        agree += picks["numpy"] == picks["rora"]
    n = len(items)
    print(json.dumps({
        "items": n,
        "requests": len(rows),
        "max_abs_loglik_diff": max_diff,
        "acc_numpy": acc["numpy"] / n,
        "acc_rora": acc["rora"] / n,
        "same_prediction": agree / n,
    }))


if __name__ == "__main__":
    main()

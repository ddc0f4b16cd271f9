#!/usr/bin/env python3
"""The PyTorch + transformers + PEFT side of a training benchmark on real batches.

rora's trainer, run as `rora run P --dump-batches FILE`, appends every step's micro-batches (token ids
right padded to the micro-batch's longest row, the attention mask and the labels, -100 where
ignored) to FILE. This script trains PEFT on exactly those batches, the way HF's Trainer does with
its default padding collator: a forward over the whole padded micro-batch, logits at every
position, cross-entropy over the labels that are not -100 (normalised by the step's loss tokens,
as rora does across micro-batches), backward, gradient clipping at 1.0, AdamW. It prints one JSON
object: per-step seconds, losses and peak RSS.

Usage: python scripts/bench_train_real.py DUMP HF_DIR [--r 16 --alpha 32 --rslora --dora --dropout 0.05
       --targets q_proj,k_proj,v_proj,up_proj,down_proj --lr 2e-4 --threads 2]
"""

import argparse
import json
import resource
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dump")
    p.add_argument("hf_dir")
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument("--rslora", action="store_true")
    p.add_argument("--dora", action="store_true")
    p.add_argument("--dropout", type=float, default=0.05)
    p.add_argument("--targets", default="q_proj,k_proj,v_proj,up_proj,down_proj")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    steps = {}
    for line in open(a.dump):
        if line.strip():
            row = json.loads(line)
            steps.setdefault(row["step"], []).append(row)
    model = AutoModelForCausalLM.from_pretrained(a.hf_dir, dtype=torch.float32)
    cfg = LoraConfig(
        r=a.r,
        lora_alpha=a.alpha,
        use_rslora=a.rslora,
        use_dora=a.dora,
        lora_dropout=a.dropout,
        target_modules=a.targets.split(","),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, cfg)
    model.train()
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=a.lr, weight_decay=0.0)
    times, losses, real, padded = [], [], 0, 0
    for step in sorted(steps):
        micros = [
            (
                torch.tensor(m["input_ids"], dtype=torch.long),
                torch.tensor(m["attention_mask"], dtype=torch.long),
                torch.tensor(m["labels"], dtype=torch.long),
            )
            for m in sorted(steps[step], key=lambda m: m["micro"])
        ]
        loss_tokens = sum(int((lab[:, 1:] != -100).sum()) for _, _, lab in micros)
        t0 = time.perf_counter()
        total = 0.0
        for ids, mask, lab in micros:
            real += int(mask.sum())
            padded += mask.numel()
            logits = model(input_ids=ids, attention_mask=mask).logits
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                lab[:, 1:].reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            (loss / max(loss_tokens, 1)).backward()
            total += float(loss)
        torch.nn.utils.clip_grad_norm_([q for q in model.parameters() if q.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        losses.append(total / max(loss_tokens, 1))
    print(
        json.dumps(
            {
                "impl": "peft",
                "steps": len(times),
                "step_s": [round(t, 3) for t in times],
                "total_s": round(sum(times), 3),
                "losses": losses,
                "real_token_fraction": round(real / max(padded, 1), 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "threads": a.threads,
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""CPU prefix-tuning throughput peer: PyTorch + transformers + PEFT's PrefixTuningConfig.

The same model, data and timing as the shared LoRA baseline (../shared/bench/peft_baseline.py,
preset `tiny`: 4 layers, hidden 256, 4 heads, FFN 688, vocab 1000, random init; random token
batches drawn before timing; AdamW with torch's defaults; the median of the timed steps, each
forward + backward + step + zero_grad), with a prefix of --tokens virtual tokens instead of LoRA.
Prints one JSON line. Compare with

    RAYON_NUM_THREADS=2 rora bench train --prefix 30
    python scripts/bench_prefix_peft.py --tokens 30 --threads 2
"""
import argparse
import json
import statistics
import time
import warnings

p = argparse.ArgumentParser()
p.add_argument("--tokens", type=int, default=30)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--seq", type=int, default=128)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()

import torch  # noqa: E402
import transformers  # noqa: E402
from peft import PrefixTuningConfig, get_peft_model  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

torch.set_num_threads(args.threads)
transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore")
torch.manual_seed(args.seed)
cfg = LlamaConfig(
    vocab_size=1000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
    rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu",
    bos_token_id=1, eos_token_id=2, pad_token_id=None,
)
cfg._attn_implementation = "sdpa"
model = LlamaForCausalLM(cfg)
pmodel = get_peft_model(model, PrefixTuningConfig(num_virtual_tokens=args.tokens, task_type="CAUSAL_LM"))
pmodel.train()
trainable = [q for q in pmodel.parameters() if q.requires_grad]
opt = torch.optim.AdamW(trainable, lr=args.lr)
g = torch.Generator().manual_seed(args.seed + 1)
batches = [torch.randint(0, 1000, (args.batch, args.seq), generator=g)
           for _ in range(args.warmup + args.steps)]
times, losses = [], []
for i, ids in enumerate(batches):
    t0 = time.perf_counter()
    loss = pmodel(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    losses.append(loss.item())
    if i >= args.warmup:
        times.append(time.perf_counter() - t0)
med = statistics.median(times)
print(json.dumps({
    "tokens_per_s": round(args.batch * args.seq / med, 2),
    "step_ms_median": round(med * 1e3, 2),
    "first_loss": round(losses[0], 5),
    "final_loss": round(losses[-1], 5),
    "trainable_params": sum(q.numel() for q in trainable),
    "torch_threads": torch.get_num_threads(),
    "torch": torch.__version__,
    "virtual_tokens": args.tokens,
}))

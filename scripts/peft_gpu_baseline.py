#!/usr/bin/env python3
"""GPU LoRA/DoRA training-throughput baseline: PyTorch + transformers + PEFT, measured as
`rora bench train --device cuda` measures itself, for scripts/gpu-check.sh.

A LlamaForCausalLM of a LLaMA shape (random init, built on the GPU in the base dtype) gets a PEFT
adapter on q/k/v/o/gate/up/down (lora_alpha = 2r unless --alpha; adapters in f32, PEFT's default
autocast_adapter_dtype), and trains on random token batches (labels = inputs) with torch AdamW
(weight_decay 0.01). tokens_per_s = batch*seq / median step time, where a step is forward +
backward + optimizer step + zero_grad, timed with torch.cuda.synchronize(). Prints ONE JSON line.

  python3 scripts/peft_gpu_baseline.py --shape llama-1b --r 8 --dtype bf16
"""
import argparse
import json
import statistics
import sys
import time

SHAPES = {
    # published config.json values (as src/plan/shapes.rs)
    "llama-1b": dict(layers=16, hidden=2048, heads=32, kv_heads=8, intermediate=8192, vocab=128256,
                     tie=True, theta=500000.0),
    "llama-8b": dict(layers=32, hidden=4096, heads=32, kv_heads=8, intermediate=14336, vocab=128256,
                     tie=False, theta=500000.0),
    "tiny": dict(layers=4, hidden=256, heads=4, kv_heads=4, intermediate=688, vocab=1000,
                 tie=False, theta=10000.0),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=sorted(SHAPES), default="llama-1b")
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=float)
    p.add_argument("--dora", action="store_true")
    p.add_argument("--rslora", action="store_true")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--attn", default="sdpa")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda", help="cuda (the measurement) or cpu (a dry run of the script)")
    a = p.parse_args()

    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM
    transformers.logging.set_verbosity_error()

    t0 = time.perf_counter()
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    torch.manual_seed(a.seed)
    s = SHAPES[a.shape]
    cfg = LlamaConfig(vocab_size=s["vocab"], hidden_size=s["hidden"], intermediate_size=s["intermediate"],
                      num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
                      num_key_value_heads=s["kv_heads"], max_position_embeddings=8192, rms_norm_eps=1e-5,
                      rope_theta=s["theta"], tie_word_embeddings=s["tie"], use_cache=False,
                      bos_token_id=1, eos_token_id=2)
    cfg._attn_implementation = a.attn
    with torch.device(dev):
        torch.set_default_dtype(dtype)
        model = LlamaForCausalLM(cfg)
        torch.set_default_dtype(torch.float32)
    n_params = sum(x.numel() for x in model.parameters())
    lcfg = LoraConfig(r=a.r, lora_alpha=a.alpha if a.alpha is not None else 2 * a.r, target_modules=TARGETS,
                      lora_dropout=0.0, bias="none", use_rslora=a.rslora, use_dora=a.dora,
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lcfg).to(dev)
    trainable = [x for x in model.parameters() if x.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-3, weight_decay=0.01)
    g = torch.Generator(device=dev).manual_seed(a.seed + 1)
    batches = [torch.randint(0, s["vocab"], (a.batch, a.seq), device=dev, generator=g)
               for _ in range(a.warmup + a.steps)]
    setup_s = time.perf_counter() - t0
    model.train()
    times, losses = [], []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for ids in batches:
        sync()
        t = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - t)
        losses.append(out.loss.item())
    timed = times[a.warmup:]
    med = statistics.median(timed)
    print(json.dumps({
        "tokens_per_s": round(a.batch * a.seq / med, 2),
        "step_ms_median": round(med * 1e3, 2),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        "final_loss": losses[-1], "first_loss": losses[0],
        "shape": a.shape, "r": a.r, "dora": a.dora, "dtype": a.dtype, "batch": a.batch, "seq": a.seq,
        "steps": a.steps, "warmup": a.warmup, "params": n_params,
        "trainable_params": sum(x.numel() for x in trainable), "setup_s": round(setup_s, 2),
        "gpu": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__,
        "impl": "peft",
    }))


if __name__ == "__main__":
    sys.exit(main())

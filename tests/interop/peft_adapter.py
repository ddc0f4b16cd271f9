"""Train a PEFT adapter on a model folder for a few steps and record its logits.

Used by tests/integration/peft_interop.rs (the reference side of "an adapter trained by PEFT
enters a rora pipeline"). Needs torch, transformers and peft (../shared/bench/setup.sh makes an
env with them).

    python peft_adapter.py MODEL_DIR OUT_DIR KIND TOKENS
      KIND: lora | rslora | dora | patterns | regex
      TOKENS: comma-separated token ids

Writes OUT_DIR/adapter (PEFT's save_pretrained) and OUT_DIR/logits.safetensors with
`unmerged` (the PeftModel's logits, [seq, vocab], f32) and `merged` (after merge_and_unload).
"""
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

model_dir, out_dir, kind, tokens = sys.argv[1:5]
ids = torch.tensor([[int(t) for t in tokens.split(",")]])
torch.manual_seed(0)
torch.set_num_threads(1)

model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
# alpha != r everywhere, so a scale rule applied wrongly shows in the logits.
common = dict(r=4, lora_alpha=12, lora_dropout=0.0)
all_linear = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
configs = {
    "lora": LoraConfig(target_modules=["q_proj", "v_proj"], **common),
    "rslora": LoraConfig(target_modules=all_linear, use_rslora=True, **common),
    "dora": LoraConfig(target_modules=["q_proj", "k_proj", "v_proj", "up_proj"], use_dora=True, **common),
    "patterns": LoraConfig(
        target_modules=all_linear,
        rank_pattern={"v_proj": 2, r"layers\.1\.mlp\.down_proj": 6},
        alpha_pattern={"o_proj": 5},
        layers_to_transform=[1],
        **common,
    ),
    "regex": LoraConfig(target_modules=r".*\.layers\.0\.(self_attn\.(q|v)_proj|mlp\.up_proj)", **common),
}
peft_model = get_peft_model(model, configs[kind])

# A few steps of next-token training on random ids, so B (and DoRA's magnitude) move from init.
opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=5e-2)
vocab = model.config.vocab_size
for step in range(4):
    batch = torch.randint(0, vocab, (2, 12))
    loss = peft_model(input_ids=batch, labels=batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad()

peft_model.eval()
peft_model.save_pretrained(f"{out_dir}/adapter")
with torch.no_grad():
    unmerged = peft_model(input_ids=ids).logits[0].float().contiguous()
    merged_model = peft_model.merge_and_unload()
    merged = merged_model(input_ids=ids).logits[0].float().contiguous()
save_file({"unmerged": unmerged, "merged": merged}, f"{out_dir}/logits.safetensors")
print(f"{kind}: loss {loss.item():.4f}, max |unmerged - merged| {(unmerged - merged).abs().max().item():.2e}")

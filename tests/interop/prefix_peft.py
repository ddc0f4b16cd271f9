"""Train a PEFT prefix on a model folder for a few steps and record its logits.

    python prefix_peft.py MODEL_DIR OUT_DIR TOKENS

PrefixTuningConfig(num_virtual_tokens=5, task_type="CAUSAL_LM") (PEFT fills token_dim and
num_attention_heads from the model's KV heads), four AdamW steps on random ids so the prefix
moves from its N(0, 1) init, then OUT_DIR/adapter (save_pretrained) and OUT_DIR/logits.safetensors
(`logits` [seq, vocab] f32). Prints one JSON line with the config PEFT used. The other direction
(a folder rora wrote, loaded by PEFT) is peft_load.py.
"""
import json
import sys

import torch
from peft import PrefixTuningConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

model_dir, out_dir, tokens = sys.argv[1:4]
torch.manual_seed(0)
torch.set_num_threads(1)
base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
model = get_peft_model(base, PrefixTuningConfig(num_virtual_tokens=5, task_type="CAUSAL_LM"))
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
vocab = base.config.vocab_size
for step in range(4):
    batch = torch.randint(0, vocab, (2, 12))
    loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
model.eval()
model.save_pretrained(f"{out_dir}/adapter")
ids = torch.tensor([[int(t) for t in tokens.split(",")]])
with torch.no_grad():
    logits = model(input_ids=ids).logits[0].float().contiguous()
save_file({"logits": logits}, f"{out_dir}/logits.safetensors")
cfg = model.peft_config["default"]
print(json.dumps({k: getattr(cfg, k) for k in
                  ["num_virtual_tokens", "token_dim", "num_attention_heads", "num_layers"]}))

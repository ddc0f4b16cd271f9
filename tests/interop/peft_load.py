"""Load an adapter folder rora wrote with PEFT and record the adapted model's logits.

    python peft_load.py MODEL_DIR ADAPTER_DIR TOKENS OUT

Writes OUT (safetensors, `logits` [seq, vocab] f32) and prints one JSON line with the warnings
PEFT raised (python warnings and log records at WARNING or above) and the fields of the PEFT
config it read that describe the method (LoRA: use_rslora, use_dora, r, lora_alpha; prefix
tuning: num_virtual_tokens, token_dim, num_attention_heads, num_layers).
"""
import json
import sys

import torch
from caught import Caught
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

model_dir, adapter_dir, tokens, out = sys.argv[1:5]
base = AutoModelForCausalLM.from_pretrained(model_dir)
with Caught() as caught:
    model = PeftModel.from_pretrained(base, adapter_dir)
records = caught.messages
model.eval()
ids = torch.tensor([[int(t) for t in tokens.split(",")]])
with torch.no_grad():
    logits = model(input_ids=ids).logits[0].float().contiguous()
save_file({"logits": logits}, out)
cfg = model.peft_config["default"]
fields = ["use_rslora", "use_dora", "r", "lora_alpha",
          "num_virtual_tokens", "token_dim", "num_attention_heads", "num_layers"]
report = {"warnings": records, "peft_type": str(cfg.peft_type)}
report.update({f: getattr(cfg, f) for f in fields if hasattr(cfg, f)})
print(json.dumps(report))

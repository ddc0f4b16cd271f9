"""Load an adapter folder rora wrote with PEFT and record the adapted model's logits.

    python peft_load.py MODEL_DIR ADAPTER_DIR TOKENS OUT

Writes OUT (safetensors, `logits` [seq, vocab] f32) and prints one JSON line with the warnings
PEFT raised (python warnings and log records at WARNING or above) and the PEFT config it read.
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
print(json.dumps({
    "warnings": records,
    "use_rslora": cfg.use_rslora,
    "use_dora": cfg.use_dora,
    "r": cfg.r,
    "lora_alpha": cfg.lora_alpha,
}))

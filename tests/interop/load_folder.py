"""Load a model folder rora wrote with transformers and report every warning it raises.

    python load_folder.py MODEL_DIR TOKENS OUT

Prints one JSON line: {"warnings": [...], "bos": .., "eos": .., "dtype": ..}, and writes the
model's logits for TOKENS (comma-separated ids) to OUT (safetensors, `logits` [seq, vocab] f32).
Warnings are python `warnings` and log records at WARNING or above from any logger (transformers
logs its load reports there), caught while the model, its generation config and its tokenizer load.
"""
import json
import sys

import torch
from caught import Caught
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

model_dir, tokens, out = sys.argv[1:4]
with Caught() as caught:
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
records = caught.messages
ids = torch.tensor([[int(t) for t in tokens.split(",")]])
with torch.no_grad():
    logits = model(input_ids=ids).logits[0].float().contiguous()
save_file({"logits": logits}, out)
print(json.dumps({
    "warnings": records,
    "bos": tok.bos_token,
    "eos": tok.eos_token,
    "dtype": str(model.dtype),
    "generation_eos": model.generation_config.eos_token_id,
}))

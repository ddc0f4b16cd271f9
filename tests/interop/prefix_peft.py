"""PEFT prefix tuning on a model folder: train one and record its logits, or load one rora wrote.

    python prefix_peft.py train MODEL_DIR OUT_DIR TOKENS
    python prefix_peft.py load MODEL_DIR ADAPTER_DIR TOKENS OUT

`train`: PrefixTuningConfig(num_virtual_tokens=5, task_type="CAUSAL_LM") (PEFT fills token_dim
and num_attention_heads from the model's KV heads), four AdamW steps on random ids so the prefix
moves from its N(0, 1) init, then OUT_DIR/adapter (save_pretrained) and OUT_DIR/logits.safetensors
(`logits` [seq, vocab] f32). `load`: PeftModel.from_pretrained on rora's folder, logits to OUT.
Both print one JSON line: the config PEFT used and the warnings it raised.
"""
import json
import sys

import torch
from caught import Caught
from peft import PeftModel, PrefixTuningConfig, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

mode, model_dir = sys.argv[1:3]
torch.manual_seed(0)
torch.set_num_threads(1)
base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
if mode == "train":
    out_dir, tokens = sys.argv[3:5]
    model = get_peft_model(base, PrefixTuningConfig(num_virtual_tokens=5, task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    vocab = base.config.vocab_size
    for step in range(4):
        batch = torch.randint(0, vocab, (2, 12))
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(f"{out_dir}/adapter")
    out = f"{out_dir}/logits.safetensors"
    records = []
else:
    adapter_dir, tokens, out = sys.argv[3:6]
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
    "peft_type": str(cfg.peft_type),
    "num_virtual_tokens": cfg.num_virtual_tokens,
    "token_dim": cfg.token_dim,
    "num_attention_heads": cfg.num_attention_heads,
    "num_layers": cfg.num_layers,
}))

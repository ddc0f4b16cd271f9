"""Load a bottleneck adapter folder rora wrote as LLM-Adapters loads it, and record the logits.

    python bottleneck_load.py MODEL_DIR ADAPTER_DIR TOKENS OUT

LLM-Adapters (AGI-Edgerunners/LLM-Adapters, commit 8166572) is not on PyPI; its vendored peft
reads `adapter_config.json` (BottleneckConfig) and `torch.load`s `adapter_model.bin`, then wraps
each target module in `bottleneck.Linear`. This script does the same with that file's code paths
written out: target matching (`_find_and_replace`, bottleneck.py L135-148: a list entry matches
by `key.endswith(t)`, a string by `re.fullmatch`), the adapter type for LLaMA (L17-24: gate_proj
and up_proj `mh_adapter`, down_proj `output_adapter`; every target `parallel_adapter` with
`use_parallel_adapter`), the shapes (L166-172) and `Linear.forward` (L351-390). The weights load
with `weights_only=True` (torch's safe unpickler) and `strict` key accounting: every tensor in
the file must be used (LLM-Adapters' `strict=False` would silently drop a misnamed one).

Writes OUT (safetensors, `logits` [seq, vocab] f32) and prints one JSON line: the keys used and
the torch version.
"""
import json
import os
import re
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM
from transformers.activations import ACT2FN

model_dir, adapter_dir, tokens, out = sys.argv[1:5]
cfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
assert cfg["peft_type"] == "BOTTLENECK", cfg
state = torch.load(os.path.join(adapter_dir, "adapter_model.bin"), weights_only=True)
model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
model.eval()

ADAPTER_TYPE = {"gate_proj": "mh_adapter", "up_proj": "mh_adapter", "down_proj": "output_adapter"}


class Adapter(torch.nn.Module):
    """bottleneck.py `Linear` for one wrapped nn.Linear (bias=None in LLaMA)."""

    def __init__(self, base, adapter_type, prefix):
        super().__init__()
        self.base, self.adapter_type = base, adapter_type
        self.act = ACT2FN[cfg["non_linearity"]]
        self.down = state.pop(prefix + ".adapter_down.weight")
        self.up = state.pop(prefix + ".adapter_up.weight")
        b = cfg["bottleneck_size"]
        d_in = base.out_features if adapter_type == "output_adapter" else base.in_features
        d_out = base.in_features if adapter_type == "mh_adapter" else base.out_features
        assert tuple(self.down.shape) == (b, d_in), (prefix, self.down.shape)
        assert tuple(self.up.shape) == (d_out, b), (prefix, self.up.shape)
        if cfg["scaling"] == "learned":
            self.scaling = state.pop(prefix + ".adapter_scaling")
            assert tuple(self.scaling.shape) == (1,)
        else:
            assert isinstance(cfg["scaling"], float), "LLM-Adapters needs a float scaling"
            self.scaling = cfg["scaling"]

    def A(self, z):
        # adapter_dropout is the identity in eval mode
        return torch.nn.functional.linear(
            self.act(torch.nn.functional.linear(z.float(), self.down)), self.up
        )

    def forward(self, x):
        W = self.base.weight
        if self.adapter_type == "mh_adapter":
            return torch.nn.functional.linear(x + self.A(x) * self.scaling, W)
        if self.adapter_type == "output_adapter":
            result = torch.nn.functional.linear(x, W)
            return result + self.A(result) * self.scaling
        return torch.nn.functional.linear(x, W) + self.A(x) * self.scaling


targets = cfg["target_modules"]
used = []
for key, _ in list(model.named_modules()):
    if isinstance(targets, str):
        match = re.fullmatch(targets, key)
    else:
        match = any(key.endswith(t) for t in targets)
    if not match:
        continue
    parent = model.get_submodule(".".join(key.split(".")[:-1]))
    name = key.split(".")[-1]
    kind = "parallel_adapter" if cfg["use_parallel_adapter"] else ADAPTER_TYPE[name]
    setattr(parent, name, Adapter(getattr(parent, name), kind, "base_model.model." + key))
    used.append(key)
assert not state, f"tensors no module used: {sorted(state)}"
ids = torch.tensor([[int(t) for t in tokens.split(",")]])
with torch.no_grad():
    logits = model(input_ids=ids).logits[0].float().contiguous()
save_file({"logits": logits}, out)
print(json.dumps({"modules": used, "torch": torch.__version__}))

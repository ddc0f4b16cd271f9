"""Write tests/fixtures/spm/tokenizer.json: the LLaMA-2-style tokenizer.json for the tiny SentencePiece
vocabulary of write_spm_gguf.py, the reference rora's GGUF tokenizer is tested against.

    python spm_reference.py [OUT]      (needs transformers; ran with 5.24.0, tokenizers 0.23.3)

OUT defaults to the fixture; the test `spm_reference_is_what_transformers_derives` writes elsewhere and
compares.

- vocabulary and merges: what transformers' own GGUF reader derives from the file's tokens and scores
  (`TokenizersBackend.from_pretrained(dir, gguf_file=...)`, merges from `generate_merges`);
- layout: the LLaMA-2 family's tokenizer.json (meta-llama/Llama-2-7b-hf; written by transformers'
  LlamaConverter with legacy=True), which is how sentencepiece and llama.cpp encode: normalizer
  Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer, BPE with byte_fallback, fuse_unk and unk_token
  "<unk>", decoder Replace/ByteFallback/Fuse/Strip, `<s> $A`. transformers 5.24 itself loads a GGUF with
  a Metaspace(prepend_scheme="first") pre-tokenizer and no unk token instead, which differs on text
  that starts with a space, text after an added token, and characters without a byte token.

Also prints the encodings of a few texts by both tokenizers, to show where they differ (one JSON line each).
"""
import json
import os
import subprocess
import sys
import tempfile

from transformers import TokenizersBackend
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures", "spm", "tokenizer.json")

with tempfile.TemporaryDirectory() as d:
    gguf = os.path.join(d, "tiny-spm.gguf")
    subprocess.run([sys.executable, os.path.join(HERE, "write_spm_gguf.py"), gguf], check=True, capture_output=True)
    hf = TokenizersBackend.from_pretrained(d, gguf_file="tiny-spm.gguf", local_files_only=True)
    tj = json.loads(hf.backend_tokenizer.to_str())

tj["normalizer"] = {
    "type": "Sequence",
    "normalizers": [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
    ],
}
tj["pre_tokenizer"] = None
tj["model"]["unk_token"] = "<unk>"
with open(OUT, "w", encoding="utf-8") as f:
    json.dump(tj, f, ensure_ascii=False, indent=1)
    f.write("\n")

llama2 = Tokenizer.from_file(OUT)
for text in ["Hello world", " the cat", "<s>the", "über 日本", "ǅ"]:
    print(json.dumps({"text": text, "llama2_layout": llama2.encode(text).ids, "transformers_gguf": hf.encode(text)}, ensure_ascii=False))

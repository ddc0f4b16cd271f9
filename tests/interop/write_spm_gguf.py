"""Write a tiny GGUF (v3) whose tokenizer is a llama.cpp SentencePiece vocabulary, and no tensors.

    python write_spm_gguf.py OUT.gguf

Vocabulary (tests/fixtures/spm/vocab.json): `<unk>` (type 2), `<s>` and `</s>` (type 3), the 256 byte
tokens `<0x00>`..`<0xFF>` (type 6), then scored pieces (type 1; every merged piece is two others joined, as
in a real SentencePiece BPE vocabulary; `at`/`or` and `ell`/`▁wor` tie on score, and `▁wor` outscores its
own part `▁w`, so a merge order taken from anything but the scores shows), then `<|im_start|>` (type 4). No merges are
stored, so a loader has to derive them from the scores, as it must for every real SentencePiece
GGUF. The llama.* keys describe a one-layer model, for loaders that want a config; prints one JSON
line with the vocabulary size.
"""
import json
import os
import struct
import sys

UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9  # GGUF metadata value types

# The vocabulary: tokens, scores and token types, shared with the Rust tests that write the same file.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "spm", "vocab.json"), encoding="utf-8") as f:
    VOCAB = json.load(f)
TOKENS, SCORES, TYPES = VOCAB["tokens"], VOCAB["scores"], VOCAB["types"]


def string(text):
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def value(kind, v):
    if kind == STRING:
        return string(v)
    return struct.pack({UINT32: "<I", INT32: "<i", FLOAT32: "<f", BOOL: "<?"}[kind], v)


def array(kind, values):
    return struct.pack("<IQ", kind, len(values)) + b"".join(value(kind, v) for v in values)


METADATA = [
    ("general.architecture", STRING, "llama"),
    ("general.name", STRING, "tiny-spm"),
    ("general.alignment", UINT32, 32),
    ("llama.context_length", UINT32, 64),
    ("llama.embedding_length", UINT32, 8),
    ("llama.block_count", UINT32, 1),
    ("llama.feed_forward_length", UINT32, 16),
    ("llama.attention.head_count", UINT32, 2),
    ("llama.attention.head_count_kv", UINT32, 2),
    ("llama.attention.layer_norm_rms_epsilon", FLOAT32, 1e-5),
    ("llama.rope.dimension_count", UINT32, 4),
    ("llama.vocab_size", UINT32, len(TOKENS)),
    ("tokenizer.ggml.model", STRING, "llama"),
    ("tokenizer.ggml.tokens", ARRAY, (STRING, TOKENS)),
    ("tokenizer.ggml.scores", ARRAY, (FLOAT32, SCORES)),
    ("tokenizer.ggml.token_type", ARRAY, (INT32, TYPES)),
    ("tokenizer.ggml.bos_token_id", UINT32, 1),
    ("tokenizer.ggml.eos_token_id", UINT32, 2),
    ("tokenizer.ggml.unknown_token_id", UINT32, 0),
    ("tokenizer.ggml.padding_token_id", UINT32, 0),
    ("tokenizer.ggml.add_bos_token", BOOL, True),
    ("tokenizer.ggml.add_eos_token", BOOL, False),
    ("tokenizer.ggml.add_space_prefix", BOOL, True),
]

out = sys.argv[1]
blob = b"GGUF" + struct.pack("<IQQ", 3, 0, len(METADATA))  # version, tensor count, metadata count
for key, kind, v in METADATA:
    blob += string(key) + struct.pack("<I", kind) + (array(*v) if kind == ARRAY else value(kind, v))
blob += b"\0" * (-len(blob) % 32)  # the (empty) data section starts aligned
with open(out, "wb") as f:
    f.write(blob)
print(json.dumps({"tokens": len(TOKENS), "bytes": len(blob)}))

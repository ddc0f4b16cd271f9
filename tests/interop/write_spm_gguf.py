"""Write a tiny GGUF (v3) whose tokenizer is a llama.cpp SentencePiece vocabulary, and no tensors.

    python write_spm_gguf.py OUT.gguf

Vocabulary: `<unk>` (type 2), `<s>` and `</s>` (type 3), the 256 byte tokens `<0x00>`..`<0xFF>`
(type 6), then scored pieces (type 1), then `<|im_start|>` (type 4). No merges are
stored, so a loader has to derive them from the scores, as it must for every real SentencePiece
GGUF. The llama.* keys describe a one-layer model, for loaders that want a config; prints one JSON
line with the vocabulary size.
"""
import json
import struct
import sys

UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9  # GGUF metadata value types

# (piece, score): merged pieces best-first, then the single characters. Every merged piece is two
# others joined, as in a real SentencePiece BPE vocabulary. `at`/`or` and `ell`/`▁wor` tie on score,
# and `▁wor` outscores its own part `▁w`, so a merge order taken from anything but the scores shows.
PIECES = [
    ("▁t", -1.0), ("he", -2.0), ("▁a", -3.0), ("at", -4.0), ("or", -4.0), ("▁th", -5.0), ("▁the", -6.0),
    ("▁c", -7.0), ("▁cat", -8.0), ("▁h", -9.0), ("el", -10.0), ("ell", -11.0), ("▁w", -11.5),
    ("▁wor", -11.0), ("ello", -12.0), ("▁hello", -13.0), ("ld", -14.0), ("▁world", -15.0),
    ("▁", -100.0), ("e", -101.0), ("t", -102.0), ("o", -103.0), ("l", -104.0), ("h", -105.0),
    ("a", -106.0), ("r", -107.0), ("c", -108.0), ("w", -109.0), ("d", -110.0),
]  # fmt: skip
TOKENS = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [p for p, _ in PIECES] + ["<|im_start|>"]
TYPES = [2, 3, 3] + [6] * 256 + [1] * len(PIECES) + [4]
SCORES = [0.0] * 259 + [s for _, s in PIECES] + [0.0]


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

"""The peer of a `template "model" train-on="all"` tokens job: transformers renders and tokenizes the same
conversations with the same model folder, one row at a time as TRL's SFTTrainer maps them.

    python scripts/bench_chat_tokenize.py MODEL_DIR FILE.jsonl [FILE.jsonl ...]

MODEL_DIR: an HF folder with tokenizer.json and tokenizer_config.json (its chat_template), e.g. the
`model/` of a rora model entry (`rora show-output <model stage> P`). Rows are `messages` or ShareGPT
`conversations` (human/gpt -> user/assistant). Prints one JSON line: rows, tokens, seconds (CPU, the
reading of the files excluded), rows_per_s.
"""
import json
import sys
import time

from transformers import AutoTokenizer

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}

tok = AutoTokenizer.from_pretrained(sys.argv[1])
conversations = []
for path in sys.argv[2:]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if "messages" in row:
                conversations.append(row["messages"])
            else:
                conversations.append([{"role": ROLES[m["from"]], "content": m["value"]} for m in row["conversations"]])
t0 = time.process_time()
tokens = 0
for messages in conversations:
    ids = tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"][:512]
    tokens += len(ids)
seconds = time.process_time() - t0
print(json.dumps({"rows": len(conversations), "tokens": tokens, "seconds": round(seconds, 3),
                  "rows_per_s": round(len(conversations) / seconds, 1)}))

"""Writes the chat-format example files beside it from the shipped commonsense subsets.

    python3 datasets/chat/make_chat.py

- `commonsense.messages.jsonl`: 48 conversations (the first 6 train rows of each of the 8 tasks) in
  transformers' `messages` format: a user turn with the question and its numbered choices, an
  assistant turn with the correct choice's text; every other row starts with a system turn.
- `commonsense.sharegpt.jsonl`: 24 two-exchange conversations (two consecutive rows of the same
  list) in ShareGPT's `conversations` format (`from`: human / gpt, `value`).

Deterministic (no randomness, file order); the rows are the shipped ones, unmodified except for
this layout.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
TASKS = ["boolq", "piqa", "siqa", "hellaswag", "winogrande", "arc-e", "arc-c", "obqa"]
SYSTEM = "You answer commonsense questions with the text of the correct choice."


def rows():
    for task in TASKS:
        with open(os.path.join(HERE, "..", "commonsense", f"{task}.train.jsonl"), encoding="utf-8") as f:
            for line in f.readlines()[:6]:
                yield json.loads(line)


def question(r):
    choices = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(r["choices"]))
    return f"{r['question']}\n\n{choices}"


def write(name, items):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")


def main():
    rs = list(rows())
    messages = []
    for i, r in enumerate(rs):
        turns = [{"role": "system", "content": SYSTEM}] if i % 2 == 0 else []
        turns += [
            {"role": "user", "content": question(r)},
            {"role": "assistant", "content": r["choices"][r["label"]]},
        ]
        messages.append({"messages": turns})
    sharegpt = []
    for a, b in zip(rs[0::2], rs[1::2]):
        conv = []
        for r in (a, b):
            conv += [
                {"from": "human", "value": question(r)},
                {"from": "gpt", "value": r["choices"][r["label"]]},
            ]
        sharegpt.append({"conversations": conv})
    write("commonsense.messages.jsonl", messages)
    write("commonsense.sharegpt.jsonl", sharegpt)


if __name__ == "__main__":
    main()

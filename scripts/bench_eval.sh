#!/usr/bin/env bash
# Eval throughput, rora vs PyTorch + transformers, on the same SmolLM2 weights and items, in one run.
#
#   scripts/bench_eval.sh [OUT] [ITEMS] [GEN_PROMPTS]
#
# 1. rora (`rora bench eval`, RAYON_NUM_THREADS=2): loglik scoring of a seeded task
#    subset (ITEMS, default 100) and greedy generation (32 new tokens, batch 8) of the llm-adapters
#    prompts of the first GEN_PROMPTS (default 16) items; writes the model as an HF dir (from the
#    GGUF, f32) and the token ids of every request/prompt into OUT.
# 2. transformers (scripts/bench_eval.py, torch.set_num_threads(2)) does the same work on that HF
#    dir and those ids, batched the same way, and prints both rates, their ratio and how well
#    scores and generations agree.
# TASK=<task> (default piqa) benchmarks another commonsense task's eval split; BATCH (default 8)
# sets the batch size of both sides; BEAMS=4 generates with beam search (HF semantics) instead of
# greedy on both sides; BASELINE=1 also times rora's independent loglik path (every choice with its
# own context, as before context sharing) on the same requests: `baseline` in rora.json.
# Needs ../shared/assets (RORA_SHARED_DIR) and a Python with torch + transformers
# (PYTHON, default /work/peft-venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-target/evalbench/run}")
ITEMS=${2:-100}
GEN=${3:-16}
PYTHON=${PYTHON:-/work/peft-venv/bin/python}
mkdir -p "$OUT"
SHARED=${RORA_SHARED_DIR:-../shared}
cargo build --release --quiet
EXTRA=()
[ "${BASELINE:-0}" = 1 ] && EXTRA+=(--baseline)
RAYON_NUM_THREADS=2 target/release/rora bench eval \
  --gguf "$SHARED/assets/models/smollm2-135m-instruct-q4_1.gguf" --data "$SHARED/assets/commonsense" \
  --task "${TASK:-piqa}" --items "$ITEMS" --prompts "$GEN" --batch "${BATCH:-8}" --beams "${BEAMS:-1}" \
  "${EXTRA[@]}" --out "$OUT"
OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 "$PYTHON" scripts/bench_eval.py "$OUT" 2 | tee "$OUT/compare.json"

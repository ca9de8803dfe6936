#!/usr/bin/env bash
# Teach the shipped world model a new word (the dot: a small circle, which its image tokenizer
# already draws) with a LoRA adapter, with and without replay of its old data, and measure before
# and after (docs/fine-tuning.md).
#   bash docs/lora/teach_dot.sh            # OUT=runs/teach-dot MINUTES=10
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/teach-dot}
MINUTES=${MINUTES:-10}
PY=${PYTHON:-.venv/bin/python}
$PY docs/lora/check_concept.py --concept dot --output "$OUT/before.json"
for run in replay no-replay; do
  start=$SECONDS
  $PY -m showo train --preset world-lora --config "docs/lora/$run.json" --output "$OUT/$run" --max-minutes "$MINUTES"
  echo "$run: training took $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s" | tee "$OUT/$run.time"
  $PY docs/lora/check_concept.py --concept dot --adapter "$OUT/$run/final" --output "$OUT/$run.json"
done
$PY docs/lora/check_concept.py --table "$OUT/before.json" "$OUT/replay.json" "$OUT/no-replay.json"

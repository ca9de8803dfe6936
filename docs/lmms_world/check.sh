#!/usr/bin/env bash
# The shipped world model through lmms-eval (`--model showo`) and through `showo eval vqa` on the same
# 120 held-out world questions: the same answers, question by question (docs/evaluation.md).
#   LMMS_PYTHON=/path/to/venv-with-lmms-eval/bin/python bash docs/lmms_world/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${LMMS_PYTHON:-python}
OUT=runs/lmms-world
$PY docs/lmms_world/world_task.py --output $OUT
$PY -m showo eval vqa --data $OUT/world.jsonl --output $OUT/vqa --metric exact --batch-size 16
$PY -m lmms_eval --model showo --model_args pretrained=showo/weights/world,record=$OUT/record.json \
    --tasks world_vqa --include_path docs/lmms_world --batch_size 16 --output_path $OUT/lmms --log_samples
$PY docs/lmms_world/world_task.py --output $OUT --compare

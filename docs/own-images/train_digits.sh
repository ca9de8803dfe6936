#!/usr/bin/env bash
# Train showo on your own images, end to end, with one command (from the repository root, in .venv):
#   bash docs/own-images/train_digits.sh            # about 22 minutes on 2 CPU cores
# 1. the data: real handwritten digits in the documented formats (make_digits.py; needs scikit-learn);
# 2. an image tokenizer for them (preset world-tokenizer, 5 minutes);
# 3. the transformer (preset world-quick: 15 minutes), with a text tokenizer trained on the captions
#    and questions themselves;
# 4. a check on digits it never saw (check_digits.py).
set -euo pipefail
DATA=${DATA:-data/digits}
RUNS=${RUNS:-runs/digits}
TOKENIZER_MINUTES=${TOKENIZER_MINUTES:-5}
MODEL_MINUTES=${MODEL_MINUTES:-15}
PICTURES="{\"type\": \"webdataset\", \"path\": \"$DATA/train-*.tar\"}"
QUESTIONS="{\"type\": \"llava\", \"path\": \"$DATA/questions.json\", \"image_root\": \"$DATA/images\"}"

[ -f "$DATA/questions.json" ] || python docs/own-images/make_digits.py --output "$DATA"

showo train --preset world-tokenizer --output "$RUNS/tokenizer" "data.t2i=$PICTURES" \
    max_minutes="$TOKENIZER_MINUTES" max_steps=100000

showo train --preset world-quick --output "$RUNS/model" vq="$RUNS/tokenizer" \
    "data.t2i=$PICTURES" "data.mmu=$QUESTIONS" data.lm=null data.mixed=null \
    tokenizer.train_on=data tokenizer.samples=3000 max_minutes="$MODEL_MINUTES" max_steps=100000

showo generate "a handwritten digit seven" "a handwritten digit two" --model "$RUNS/model/final" \
    --images-per-prompt 4 --output "$RUNS/samples"
python docs/own-images/check_digits.py --model "$RUNS/model/final" --data "$DATA"

#!/usr/bin/env bash
# The demo: set up (idempotent), make the tiny random SD1 model once, and edit the bundled landscape with a
# gradient map (left third kept bit for bit, then a ramp to fully changed at the right edge). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

model=.cache/tiny-sd1/tiny-sd1.safetensors
if [ ! -f "$model" ]; then
  echo "making the tiny random-weight SD1 model (once) ..."
  .venv/bin/diffdiff make-tiny-model .cache/tiny-sd1 --family sd1 --single-file >/dev/null
fi
if [ ! -f examples/demo.png ] || [ ! -f examples/gradient-map.png ]; then
  .venv/bin/python scripts/make_demo_assets.py >/dev/null
fi

.venv/bin/diffdiff edit examples/demo.png --map examples/gradient-map.png \
  --prompt "a watercolour painting of a house by a lake" --model "$model" \
  --steps 8 --seed 1 -o demo-output.png --overwrite --stats .cache/demo-stats.json --quiet
echo "demo done: $(pwd)/demo-output.png"
echo "  (random weights: the change grows left to right into texture; where the map is 0 the pixels are the input's)"
echo "  run statistics: $(pwd)/.cache/demo-stats.json"

#!/usr/bin/env bash
# The demo: set up (idempotent), then edit the bundled landscape with the shipped demo model, asking for a
# night sky with stars while the map keeps the ground, house and trees bit for bit. Writes
# demo-output.png and demo-side-by-side.png (input | map | output). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p .cache
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

model=diffdiff/demo/demo-sd1.safetensors
if [ ! -f examples/demo.png ] || [ ! -f examples/sky-map.png ]; then
  .venv/bin/python scripts/make_demo_assets.py >/dev/null
fi

.venv/bin/diffdiff edit examples/demo.png --map examples/sky-map.png \
  --prompt "a night sky with stars" --model "$model" \
  --steps 20 --cfg 6 --seed 1 -o demo-output.png --overwrite --stats .cache/demo-stats.json --quiet
.venv/bin/python scripts/side_by_side.py examples/demo.png examples/sky-map.png demo-output.png \
  -o demo-side-by-side.png >/dev/null
echo "demo done: $(pwd)/demo-output.png"
echo "  input | map | output: $(pwd)/demo-side-by-side.png"
echo "  (the sky is repainted; where the map is black the pixels are the input's, bit for bit)"
echo "  run statistics: $(pwd)/.cache/demo-stats.json"

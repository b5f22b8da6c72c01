#!/usr/bin/env bash
# The GPU check on a machine with a CUDA GPU: make sure diffdiff's dependencies are importable, then run
# bench/gpu.py (fp16/bf16 edits with the map-0 check, a timed 1024² edit and 4096² upscale).
#   bash bench/gpu.sh [OUT.json] [--model FILE]
# PYTHON names the interpreter (default python3, which must hold a CUDA build of torch). Where the machine
# has no network, WHEELS names a folder of wheels to install the missing packages from.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${1:-gpu-check.json}
shift || true
if ! "$PYTHON" -c "import diffusers, transformers, safetensors, PIL, cv2, torchsde" 2>/dev/null; then
    if [ -n "${WHEELS:-}" ]; then
        "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/diffdiff-site "$WHEELS"/*.whl
        export PYTHONPATH=/tmp/diffdiff-site${PYTHONPATH:+:$PYTHONPATH}
    else
        "$PYTHON" -m pip install -q -e .
    fi
fi
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch')"
PYTHONUNBUFFERED=1 "$PYTHON" bench/gpu.py --json "$OUT" "$@"

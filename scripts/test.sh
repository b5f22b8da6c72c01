#!/usr/bin/env bash
# Set up (idempotent) and run the linter and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check diffdiff tests bench
.venv/bin/python -m pytest -n 2 "$@"

#!/usr/bin/env bash
# Create .venv (once) and install diffdiff into it with the pinned CPU torch. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$PY" --version 2>&1) ..."
  "$PY" -m venv .venv
fi
stamp=.venv/.diffdiff-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "installing torch 2.13.0 and diffdiff into .venv (the first time takes a few minutes) ..."
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
  echo "  done: .venv/bin/diffdiff is the command (or: source .venv/bin/activate)"
fi

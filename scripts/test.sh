#!/usr/bin/env bash
# Set up (idempotent) and run the linter and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x /usr/bin/chromium ]; then  # the page's browser tests drive Debian's chromium with Playwright
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the browser tests ..."
    apt-get install -y -q chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  else
    echo "the browser tests need Debian's chromium at /usr/bin/chromium: sudo apt-get install chromium" >&2
  fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check diffdiff tests bench
.venv/bin/python -m pytest -n 2 "$@"

#!/usr/bin/env bash
# README command 2: set up (once) and run the whole test suite. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"

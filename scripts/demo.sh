#!/usr/bin/env bash
# README command 1: set up (once) and run the demo on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo
exec .venv/bin/cwatch demo "$@"

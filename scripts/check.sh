#!/usr/bin/env bash
# Lint, type-check and test: what CI runs after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
ruff format --check .
mypy
# The slowest tests are listed at the end, so a CI log shows where its minutes went.
python -m pytest -q --durations=15

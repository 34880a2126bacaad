#!/usr/bin/env bash
# Lint, type-check and test: what CI runs after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
ruff format --check .
mypy
python -m pytest -q

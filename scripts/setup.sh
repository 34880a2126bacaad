#!/usr/bin/env bash
# Installs everything airflow-fate needs on a fresh machine (Python 3.11 with pip).
# Packages whose declared dependencies are unrelated or conflicting are installed with
# --no-deps here, because pip extras cannot express that.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
python -m pip install --quiet --disable-pip-version-check --no-deps \
    "anrg-saga==2.0.2"

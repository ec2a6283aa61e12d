#!/usr/bin/env bash
# Validates the core-kind Kubernetes manifests in deploy/ against the Kubernetes OpenAPI schemas
# (kubernetes-validate from PyPI ships them; Cilium CRDs are checked by tests/deploy_manifests.rs
# and `nodecache -lint-policy`).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v kubernetes-validate >/dev/null; then
    python3 -m pip install -q kubernetes-validate >/dev/null 2>&1 || { echo "[manifests.sh] cannot install kubernetes-validate"; exit 1; }
fi
kubernetes-validate --strict deploy/classic/node-local-dns.yaml deploy/cilium-lrp/node-local-dns.yaml
echo "[manifests.sh] core-kind manifests valid"

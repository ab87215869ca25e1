#!/usr/bin/env bash
# Install gdbnb into .venv (created if missing) and run the node:  bash scripts/run-node.sh [ROOM] [flags]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/python -m gdbnb "$@"

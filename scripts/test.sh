#!/usr/bin/env bash
# Install gdbnb with its test extras into .venv (created if missing) and run the whole suite.
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -k sync -x
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
exec .venv/bin/python -m pytest -q "$@"

#!/usr/bin/env bash
# Creates .venv with the locked dependencies on first use; later calls return at once.
# Needs only Python 3.11 and the package registries. Set PYTHON to choose the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=".venv/.installed-$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then exit 0; fi
echo "clapsweep: setting up .venv (first use; a few minutes)" >&2
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check uv
# uv resolves exactly what the lock names; it is ~5x faster than pip for torch's wheels.
VIRTUAL_ENV=.venv .venv/bin/uv pip sync --quiet requirements.lock
VIRTUAL_ENV=.venv .venv/bin/uv pip install --quiet --no-deps -e .
rm -f .venv/.installed-*
touch "$stamp"

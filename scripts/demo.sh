#!/usr/bin/env bash
# The main job on the offline demo world: generates synthworld on first use, then runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/clapsweep demo "$@"

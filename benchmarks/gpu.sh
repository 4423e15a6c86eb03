#!/usr/bin/env bash
# Stage one's steady state on a lent CUDA machine: one prepared run that exits on its own, well
# inside 10 minutes of device time.
#
#   bash benchmarks/gpu.sh                      (from the repository root; OUT=dir keeps the figures)
#   MIGUE_GPU_DRYRUN=1 bash benchmarks/gpu.sh   (the same steps on CPU with --small: checks the script
#                                                end to end on a machine without a GPU)
#
# 1. Installs migue into this machine's Python with its own CUDA torch: --no-deps --no-index, so
#    nothing is downloaded and torch is never replaced (skipped when this tree is already the
#    `migue` that Python imports). Stops at once, saying what, when torch sees no CUDA device or
#    a runtime dependency is missing.
# 2. Runs benchmarks/steady_state.py at 1280x720, GOP 250 (12 roughened videos x 500 frames: 204
#    MG clips, 84 context/face windows): the decode table with N = 1, 4, 8, 16 decode workers
#    (migue's workers vs bare PyAV on the same frames, same process count), then for bf16 and fp32
#    each video modality's extract / bare forward, the one pass vs three separate runs and frames
#    decoded / frames needed. Decode workers of the extractions = cores.
# 3. Bounded: `timeout` sends SIGINT at LIMIT seconds (default 420; Python prints where it was),
#    the script's --max-seconds dumps every thread's stack just before that, and output is
#    unbuffered (python -u), so even a hang leaves a trace. Decoding processes start from a fork
#    server, never forked from a process holding CUDA (the first H200 attempt hung that way).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/gpu-out}
LIMIT=${LIMIT:-420}
mkdir -p "$OUT"
CORES=$(nproc)
DRY=${MIGUE_GPU_DRYRUN:-0}

echo "== install (no downloads)"
if "$PY" -c 'import migue.cache as m, pathlib, sys; sys.exit(0 if pathlib.Path(m.__file__).resolve().is_relative_to(pathlib.Path.cwd().resolve()) else 1)' 2>/dev/null; then
    echo "migue already imports from this tree: not reinstalled"
else
    "$PY" -m pip install -q --no-deps --no-index --no-build-isolation -e . 2>&1 | tail -3
fi
MIGUE_GPU_DRYRUN=$DRY "$PY" - <<'EOF'
import importlib.util, os, sys
import torch
missing = [m for m in ("av", "cv2", "h5py", "click", "dask", "pandas", "einops", "tqdm", "mmengine", "mmaction")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing runtime packages (install them into this environment first): {', '.join(missing)}")
if not torch.cuda.is_available() and os.environ["MIGUE_GPU_DRYRUN"] != "1":
    sys.exit(f"torch {torch.__version__} sees no CUDA device (MIGUE_GPU_DRYRUN=1 runs the same steps on CPU)")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}; python {sys.version.split()[0]}")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

if [[ "$DRY" == "1" ]]; then
    ARGS=(--device cpu --small --precisions bf16 --decode-workers 1,2 --workers 2)
else
    ARGS=(--device cuda --precisions bf16,fp32 --decode-workers 1,4,8,16 --workers "$CORES")
fi
echo "== steady state (limit $LIMIT s): ${ARGS[*]}"
set +e
PYTHONFAULTHANDLER=1 timeout --signal=INT --kill-after=15 "$LIMIT" "$PY" -u benchmarks/steady_state.py \
    "${ARGS[@]}" --max-seconds $((LIMIT - 15)) --out "$OUT/gpu.json" 2>&1 | tee "$OUT/gpu.txt"
rc=${PIPESTATUS[0]}
set -e
echo "== exit code $rc (124/130: stopped at the time limit); figures in $OUT/gpu.txt and $OUT/gpu.json"
exit "$rc"

#!/usr/bin/env bash
# GPU extraction benchmark, for a lent CUDA machine; one prepared run that exits on its own.
#
#   bash benchmarks/gpu.sh            (from the repository root; OUT=dir keeps the figures there)
#
# 1. Installs migue into this machine's Python with its own CUDA torch: --no-deps --no-index, so
#    nothing is downloaded and torch is never replaced. Stops at once, saying what, when torch
#    sees no CUDA device or a runtime dependency is missing.
# 2. Runs benchmarks/extract_speed.py per modality (rgb, context, face) at 1280x720, GOP 250:
#    bf16, automatic batch size, decoding workers = cores; prints units/s, decode fps and the
#    share of time the GPU was busy (nvidia-smi samples during each timed run).
# 3. At most 4 minutes: `timeout` sends SIGINT at 240 s (Python prints where it was), the script's
#    own --max-seconds dumps every thread's stack just before that, and output is unbuffered
#    (python -u), so even a hang leaves a trace. The one earlier H200 attempt printed nothing in
#    420 s: block-buffered stdout hid whatever it had done, and its decode workers were forked
#    from a process that had initialised CUDA (now they start from a fork server).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
CORES=$(nproc)

echo "== install (no downloads)"
"$PY" -m pip install -q --no-deps --no-index --no-build-isolation -e . 2>&1 | tail -3
"$PY" - <<'EOF'
import importlib.util, sys
import torch
missing = [m for m in ("av", "cv2", "h5py", "click", "dask", "pandas", "einops", "tqdm", "mmengine", "mmaction")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing runtime packages (install them into this environment first): {', '.join(missing)}")
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}; python {sys.version.split()[0]}")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "== extraction benchmark (limit 240 s, $CORES decoding workers)"
set +e
PYTHONFAULTHANDLER=1 timeout --signal=INT --kill-after=15 240 "$PY" -u benchmarks/extract_speed.py \
    --device cuda --mvit-precision bf16 --face-precision bf16 --workers "$CORES" \
    --videos 12 --frames 300 --use-videos 12 --no-baseline --no-fp32 --max-seconds 225 \
    --out "$OUT/gpu.json" 2>&1 | tee "$OUT/gpu.txt"
rc=${PIPESTATUS[0]}
set -e
echo "== exit code $rc (124/130: stopped at the time limit)"
exit "$rc"

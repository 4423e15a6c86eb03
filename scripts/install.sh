#!/usr/bin/env bash
# Set up the project virtualenv (.venv) with the OpenMMLab stack that works on
# these machines. Every pin and flag below has its reason in comments; the
# measured facts behind them live in shared/notes/mm-stack.md.
# Idempotent: a stamp file records the hash of this script and pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MIGUE_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.migue-installed"
want=$(cat scripts/install.sh pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

# setuptools<81: mmengine imports pkg_resources, removed in setuptools 81.
pip install "setuptools<81" wheel cython
# torch alone and first: 2.13.0 is the CPU wheel on local disk. A looser pin, or
# anything that pulls torchvision, makes pip fetch a multi-GB CUDA build.
# GPU users: install your own CUDA torch into the venv before running this.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  pip install "torch==2.13.0"
fi
# The project's plain dependencies (declared in pyproject.toml), then migue itself.
pip install -e ".[dev]"
# mmcv-lite: full mmcv has no wheels (sdist only). mmaction2 1.2.0 asserts
# 2.0.0rc4 <= mmcv < 2.2.0, hence 2.1.0.
pip install "mmengine==0.10.7" "mmcv-lite==2.1.0"
# --no-deps: mmaction2's declared deps add opencv-contrib-python beside
# opencv-python (both write cv2/); mmpose's pull chumpy (fails to build) and
# torchvision (pulls CUDA torch). Their real runtime needs are listed here.
pip install --no-deps "mmaction2==1.2.0" "mmpose==1.3.2"
pip install six munkres
# xtcocotools: the only cp311 wheel is built against numpy 1.x and fails under
# numpy 2; a source build takes seconds.
if ! "$VENV/bin/python" -c "import xtcocotools" 2>/dev/null; then
  pip install --no-deps --no-build-isolation --no-binary xtcocotools "xtcocotools==1.14.3"
fi
"$VENV/bin/python" -c "import migue.extractors.compat as c; c.apply(); print('migue: environment ready')"
echo "$want" > "$stamp"

#!/usr/bin/env bash
# Create .venv and install stageplan with every extra used by the main job and the tests.
# torch is pinned and installed first: asking pip for a plain `torch` pulls several GB of CUDA
# packages, while torch==2.13.0 is the CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all,dev]'
# Optional torchcodec decoder (after the pinned torch; it must leave torch at 2.13.0).
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[torchcodec]'
# The lightning and transformers extras (in `all`) came after the pinned torch too; neither
# may replace it:
.venv/bin/python -c "import sys, torch; v = torch.__version__; \
sys.exit(None if v.split('+')[0] == '2.13.0' else f'setup: torch changed to {v}')"

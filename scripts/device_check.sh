#!/usr/bin/env bash
# The CUDA checks of issue 16 ("keep a GPU fed"), as one script for a lent H200 machine.
#
#   bash scripts/device_check.sh fetch   # HERE, with PyPI: wheels the device lacks -> .whl/
#   bash scripts/device_check.sh         # THERE (repo root; results in $OUT or ./device_out)
#
# The device image has python3 3.12 with torch (CUDA 13) and torchvision but neither PyAV nor
# torchcodec nor FFmpeg's shared libraries, and no network: `fetch` downloads PyAV 18.1.0 and
# torchcodec 0.17.0 (its PyPI wheel is the CUDA 13 build) for CPython 3.12 into .whl/ (ignored
# by git: add `/.whl/` to .git/info/exclude), which travels with the tree (`carry: [".whl"]`).
# torchcodec then uses the FFmpeg 8 libraries inside PyAV's wheel, linked under the names it
# asks for. Runs, each with its own time limit, about 8 minutes in all:
#   1. benchmarks/model_step.py --device cuda: DG-P3D-50 MFU at 16x224^2 (bf16, channels-last)
#      with torchvision's r2plus1d_18 / r3d_18 as peers;
#   2. the torchcodec exact-frame tests, on the CPU and on NVDEC;
#   3. benchmarks/feed_h200.py --device cuda --workers 16: measured consumption per state, the
#      loader on 16 worker processes (CPU decoding) and torchcodec decoding on NVDEC;
#   4. a short planning run of the synthetic preset on CUDA (4 epochs, no baseline).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}

if [ "${1:-run}" = "fetch" ]; then
  mkdir -p .whl
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    av==18.1.0 torchcodec==0.17.0
  ls -la .whl
  exit 0
fi

OUT=${OUT:-device_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export VIDEO3D_DATA=/tmp/video3d-data

# torchcodec loads libavcodec.so.N etc.: link PyAV's bundled FFmpeg under those names, and put
# PyAV's library folder on the path too (their own dependencies are found there).
avlibs=$("$PY" -c "import av, os; print(os.path.realpath(os.path.join(os.path.dirname(av.__file__), os.pardir, 'av.libs')))")
links=/tmp/ffmpeg-links
mkdir -p "$links"
for f in "$avlibs"/libav*.so.* "$avlibs"/libsw*.so.*; do
  base=$(basename "$f")
  ln -sf "$f" "$links/${base%%-*}.so.$(echo "$base" | sed -E 's/.*\.so\.([0-9]+).*/\1/')"
done
export LD_LIBRARY_PATH="$links:$avlibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  nproc
  "$PY" -c "import torch, av; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'av', av.__version__)"
  "$PY" -c "import torchcodec, torchcodec._core as c; print('torchcodec', torchcodec.__version__, c.get_ffmpeg_library_versions())"
} 2>&1 | tee "$OUT/versions.txt"

echo "== 1. model_step (cuda)"
timeout 180 "$PY" benchmarks/model_step.py --device cuda --json "$OUT/model_step.json" 2>&1 |
  tee "$OUT/model_step.log"

echo "== 2. torchcodec exact frames (cpu and nvdec)"
timeout 90 "$PY" -m pytest -q -p no:cacheprovider tests/video3d/data/test_torchcodec.py 2>&1 |
  tail -n 15 | tee "$OUT/torchcodec_tests.log"

echo "== 3. feed_h200 (cuda, 16 loader workers, nvdec)"
timeout 330 "$PY" benchmarks/feed_h200.py --device cuda --workers 16 --budget 1.5 --seconds 8 \
  --workdir /tmp/feed --json "$OUT/feed_h200_cuda.json" 2>&1 | tee "$OUT/feed_h200_cuda.log"

echo "== 4. planning run, synthetic preset, cuda"
echo '{"max_epochs": 4}' > /tmp/short.json
timeout 150 "$PY" -m video3d plan --preset synthetic --device cuda --no-baseline \
  --config /tmp/short.json --out /tmp/plan-synthetic 2>&1 | tail -n 40 |
  tee "$OUT/plan_synthetic_cuda.log"
cp /tmp/plan-synthetic/plan.json "$OUT/plan_synthetic_cuda.json" 2>/dev/null || true
echo "== done"

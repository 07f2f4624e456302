#!/usr/bin/env bash
# What issue #7 needs from a lent GPU machine, in as few device calls as possible.
#
# The device machine gets a copy of this repository and nothing beside it (no ../shared, no .venv), has
# its own python3 with a CUDA torch, numpy, pytest, click, scipy and ninja, and cannot download anything.
#
#   bench/gpu_session.sh stage   # here: copy into .device/ (git-ignored) what the GPU run reads from ../shared:
#                                # the golden ops fixtures and a 256x256 dataset made from the signer video
#   then, with the device tool, carry .device (and .torch_extensions to reuse builds on a warm machine):
#   bench/gpu_session.sh tests   # on the GPU: build the kernels, run the op tests (< 10 minutes)
#   bench/gpu_session.sh bench   # on the GPU: bench/ops_gpu.py (ops, G forward+backward, training sec/kimg)
#
# Logs and figures go to $OUT (the device tool brings that folder back), else to .device/out.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${DEVICE_STAGE:-.device}  # relative to the repository root (or absolute)
OUT=${OUT:-$STAGE/out}

case "${1:-}" in
stage)
    SHARED=${SIGNSTYLEGAN_SHARED:-../shared}
    PY=${PYTHON:-.venv/bin/python}
    mkdir -p "$STAGE/shared/fixtures/nvidia-compat"
    cp "$SHARED/fixtures/nvidia-compat/golden_ops.npz" "$STAGE/shared/fixtures/nvidia-compat/"
    if [ ! -f "$STAGE/signer-256.zip" ]; then
        "$PY" dataset_tool.py --source="$SHARED/data/signer-pix2pix-256.mp4" --dest="$STAGE/signer-256.zip" \
            --resolution=256x256 --transform=center-crop --max-images=64
    fi
    du -sh "$STAGE"
    ;;
tests)
    mkdir -p "$OUT"
    export SIGNSTYLEGAN_SHARED=$(realpath "$STAGE/shared") TORCH_EXTENSIONS_DIR=$PWD/.torch_extensions
    { nvidia-smi || true; python3 -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'numpy', numpy.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"; } 2>&1 | tee "$OUT/machine.txt"
    python3 -m torch_utils.custom_ops --build 2>&1 | tee "$OUT/build.log"
    python3 -m pytest tests/test_ops_cuda.py tests/test_ops.py tests/test_custom_ops.py -q -ra -p no:cacheprovider \
        2>&1 | tee "$OUT/pytest.log"
    ;;
bench)
    mkdir -p "$OUT"
    export TORCH_EXTENSIONS_DIR=$PWD/.torch_extensions
    python3 bench/ops_gpu.py --data="$STAGE/signer-256.zip" --json="$OUT/ops_gpu.json" "${@:2}" 2>&1 \
        | tee "$OUT/ops_gpu.md"
    ;;
*)
    echo "usage: bench/gpu_session.sh stage|tests|bench [bench/ops_gpu.py options]" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Rebuild the bundled demo models from the shared signer material with the project's own tools.
#
#   bash pretrained/build_demo.sh data      # crops of the signer video + the BIU-MG grid -> signer64.zip
#   bash pretrained/build_demo.sh train     # StyleGAN3-T, 64x64 (KIMG thousand images; resumable: run again)
#   bash pretrained/build_demo.sh pairs     # latent walks of G and their MediaPipe poses
#   bash pretrained/build_demo.sh lstm      # the pose-to-latent LSTM
#   bash pretrained/build_demo.sh export    # pretrained/demo-G.pkl, demo-lstm.pt, example.pose
#   bash pretrained/build_demo.sh eval      # pose consistency on testing-original.pose
#
# Run from the repository root after `make setup`. Variables: SHARED (../shared), WORK (demo-work),
# KIMG (training length), SNAPSHOT (the G snapshot to use; default: the newest), NUM_WALKS, LSTM_STEPS.
set -euo pipefail

PY=${PY:-.venv/bin/python}
SHARED=${SHARED:-../shared}
WORK=${WORK:-demo-work}
KIMG=${KIMG:-40}
NUM_WALKS=${NUM_WALKS:-120}
LSTM_STEPS=${LSTM_STEPS:-3000}
mkdir -p "$WORK"

snapshot() {
    if [ -n "${SNAPSHOT:-}" ]; then echo "$SNAPSHOT"; return; fi
    ls "$WORK"/runs/*/network-snapshot-*.pkl | sort | tail -n 1
}

case "${1:-}" in
data)
    # The video's pose is given (testing-reduced.pose is the pose this pix2pix video was rendered from).
    $PY utils/video_to_images.py --input_video="$SHARED/data/signer-pix2pix-256.mp4" \
        --input_pose="$SHARED/data/testing-reduced.pose" --output_path="$WORK/video128.zip" --resolution=128
    # The 16 BIU-MG training frames: cut the contact sheet into a video, estimate its poses, crop.
    $PY utils/grid_to_video.py --input="$SHARED/data/biu-mg-frames-grid.png" --rows=4 --cols=4 --output="$WORK/grid.mp4"
    $PY utils/estimate_pose.py --video="$WORK/grid.mp4" --output="$WORK/grid.pose"
    $PY utils/video_to_images.py --input_video="$WORK/grid.mp4" --input_pose="$WORK/grid.pose" \
        --output_path="$WORK/grid128.zip" --resolution=128
    # One folder of both sets (their bookkeeping files left out), then the training archive.
    rm -rf "$WORK/frames" && mkdir -p "$WORK/frames/video" "$WORK/frames/grid"
    (cd "$WORK/frames/video" && unzip -q ../../video128.zip -x dataset.json frames.json)
    (cd "$WORK/frames/grid" && unzip -q ../../grid128.zip -x dataset.json frames.json)
    $PY dataset_tool.py --source="$WORK/frames" --dest="$WORK/signer64.zip" --resolution=64x64
    ;;
train)
    run=$(ls -d "$WORK"/runs/*/ 2>/dev/null | tail -n 1 || true)
    if [ -n "$run" ]; then
        $PY train.py --resume="$run" --kimg="$KIMG"   # continue where it stopped
    else
        $PY train.py --outdir="$WORK/runs" --cfg=stylegan3-t --data="$WORK/signer64.zip" --gpus=1 --batch=16 \
            --gamma=0.5 --cbase=2048 --cmax=64 --mirror=1 --kimg="$KIMG" --tick=1 --snap=5 --metrics=none \
            --workers=1 --grid=4x4 --seed=0
    fi
    ;;
pairs)
    $PY utils/make_animations.py --network="$(snapshot)" --outdir="$WORK/pairs" --num="$NUM_WALKS" \
        --frames=60-160 --seed=0
    ;;
lstm)
    $PY train_pose_lstm.py --pairs="$WORK/pairs" --network="$(snapshot)" --outdir="$WORK/lstm" \
        --steps="$LSTM_STEPS" --hidden=256 --batch=32 --window=64 --val-every=500 --seed=0
    ;;
export)
    # Only G_ema is shipped (the generator the videos use); the LSTM checkpoint without optimizer state.
    $PY - "$(snapshot)" pretrained/demo-G.pkl <<'EOF'
import os, pickle, sys
sys.path.insert(0, ".")
import legacy
from dnnlib.util import atomic_write
with open(sys.argv[1], "rb") as f:
    snap = legacy.load_network_pkl(f)
with atomic_write(sys.argv[2]) as f:
    kwargs = dict(snap["training_set_kwargs"] or {})
    if "path" in kwargs:  # the archive's name, not this machine's path
        kwargs["path"] = os.path.basename(kwargs["path"])
    pickle.dump({"G_ema": snap["G_ema"], "training_set_kwargs": kwargs}, f)
EOF
    cp "$WORK/lstm/lstm-best.pt" pretrained/demo-lstm.pt
    cp "$SHARED/data/testing-reduced.pose" pretrained/example.pose && chmod 644 pretrained/example.pose
    ls -la pretrained
    ;;
eval)
    $PY gen_video.py --pose="$SHARED/data/testing-original.pose" --network=pretrained/demo-G.pkl \
        --lstm=pretrained/demo-lstm.pt --output="$WORK/testing-original.mp4" --side-by-side --consistency
    cat "$WORK/testing-original.json"
    ;;
*)
    sed -n '2,14p' "$0"
    exit 2
    ;;
esac

"""Frames per second of gen_video.py's pose mode at 256x256 on this machine, stage by stage.

    python bench/gen_video.py                 # 2 frames through G
    python bench/gen_video.py --frames=8 --batch=4 --precision=fp32
    python bench/gen_video.py --frames=8 --batch=4 --device=cuda

Stages, each timed on its own with the code gen_video.py runs:
- pose front end: `features_from_pose` on `../shared/data/testing-original.pose` (97 frames);
- LSTM: `iter_ws` of a random pose LSTM as train_pose_lstm.py builds it (hidden 512, 4 layers, one W
  for all layers) over the features repeated to `--lstm-frames` frames;
- G: `render_frames` with a random stylegan3-r generator as train.py builds `--cfg=stylegan3-r
  --cbase=16384` (bench/generator.py's `build_generator`), prepared for inference as gen_video.py
  prepares it (`training.inference.prepare_generator`, `--precision`), `--frames` frames at `--batch`;
- encoder: `VideoWriter` (H.264) on 50 random frames of the output size.
The last line gives the end-to-end rate these imply. Figures are for this machine and its load at
the time (printed): compare stages of one run, not runs on different machines.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import click
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.generator import build_generator  # noqa: E402
from bench.machine import describe_machine, load_average  # noqa: E402
from torch_utils import misc  # noqa: E402
from training import pose_lstm  # noqa: E402
from training.inference import prepare_generator  # noqa: E402
from training.rendering import describe_render_path, render_frames  # noqa: E402
from utils import pose_features  # noqa: E402
from utils.video_io import VideoWriter  # noqa: E402

#----------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@click.command()
@click.option("--frames", type=click.IntRange(min=1), default=2, show_default=True, help="Frames rendered by G")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Frames per synthesis call")
@click.option("--resolution", type=int, default=256, show_default=True, help="Output resolution")
@click.option("--lstm-frames", type=click.IntRange(min=1), default=500, show_default=True,
              help="Pose frames through the LSTM")
@click.option("--warmup", is_flag=True, help="One untimed G batch first (default on CUDA)")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="CPU rendering: bf16 convolutions where the CPU has bfloat16 units (auto), or fp32")
@click.option("--pose", "pose_path", default=None, help="Pose for the front end  [default: ../shared/data/testing-original.pose]")
def main(frames: int, batch: int, resolution: int, lstm_frames: int, warmup: bool, device: str, precision: str,
         pose_path: str | None) -> None:
    dev = misc.get_device(device)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shared = os.environ.get("SIGNSTYLEGAN_SHARED", os.path.join(os.path.dirname(repo), "shared"))
    pose_path = pose_path or os.path.join(shared, "data", "testing-original.pose")
    print(f"Machine: {describe_machine(dev)}; load average {load_average():.2f} at start")
    rows = []

    # Pose front end.
    pose = pose_features.load_pose(pose_path)
    spec = pose_features.make_feature_spec()
    t0 = time.perf_counter()
    feats = pose_features.features_from_pose(pose, spec)
    dt = time.perf_counter() - t0
    rows.append(("pose front end", len(feats), dt))

    # LSTM.
    G, _ = prepare_generator(build_generator("stylegan3-r", 16384, resolution).to(dev), dev, precision)
    torch.manual_seed(0)
    model = pose_lstm.PoseLSTM(spec.num_features, G.w_dim, hidden=512, num_layers=4, w_dim=G.w_dim,
                               num_ws=G.num_ws).to(dev).eval().requires_grad_(False)
    long_feats = np.resize(feats, (lstm_frames, feats.shape[1]))
    list(pose_lstm.iter_ws(model, long_feats[:16]))  # first-call set-up
    _sync(dev)
    t0 = time.perf_counter()
    ws = torch.cat([w.contiguous() for w in pose_lstm.iter_ws(model, long_feats, chunk=256)])
    _sync(dev)
    rows.append(("LSTM (hidden 512, 4 layers)", lstm_frames, time.perf_counter() - t0))

    # Generator.
    print(describe_render_path(G, dev, batch))
    ws = ws[:frames].to(dev)
    if warmup or dev.type == "cuda":
        next(render_frames(G, iter([ws[:batch]]), batch=batch, device=dev))
    _sync(dev)
    t0 = time.perf_counter()
    for _ in render_frames(G, iter([ws]), batch=batch, device=dev):
        pass
    _sync(dev)
    rows.append((f"G stylegan3-r cbase 16384 {resolution}x{resolution} (batch {batch})", frames,
                 time.perf_counter() - t0))

    # Encoder.
    imgs = np.random.default_rng(0).integers(0, 256, (50, resolution, resolution, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        with VideoWriter(os.path.join(d, "bench.mp4"), fps=25) as w:
            w.write(imgs)
        rows.append(("H.264 encoder (random frames)", len(imgs), time.perf_counter() - t0))

    print(f"{'stage':52s} {'frames':>7s} {'seconds':>9s} {'s/frame':>10s} {'frames/s':>10s}")
    for name, n, secs in rows:
        print(f"{name:52s} {n:7d} {secs:9.3f} {secs / n:10.4f} {n / secs:10.2f}")
    per_frame = sum(secs / n for _, n, secs in rows)
    print(f"End to end (sum of the stages per frame): {per_frame:.3f} s/frame, {1 / per_frame:.3f} frames/s; "
          f"G is {100 * (rows[2][2] / rows[2][1]) / per_frame:.1f}% of it")


if __name__ == "__main__":
    main()

#----------------------------------------------------------------------------

"""Render video with a generator: a signer performing a pose sequence, or a latent walk.

Pose mode (the pose-to-latent LSTM maps each pose frame to W; G renders it):

    python gen_video.py --pose=sign.pose --network=G.pkl --lstm=lstm.pt --output=out.mp4 \\
        [--side-by-side] [--consistency] [--smooth=1.5] [--trunc=1]

writes one frame per pose frame at the pose's frame rate (or `--fps`, resampling the pose), frames
streamed to the H.264 encoder in batches so memory does not grow with the length. With
`--consistency` the rendered frames' poses are estimated with MediaPipe and the pose-consistency
figures (`metrics/pose_consistency.py`) are written to `out.json` next to the video.

Latent-walk mode (interpolation videos without a pose, looping):

    python gen_video.py --network=G.pkl --seeds=0-31 --grid=4x2 --output=walk.mp4 \\
        [--w-frames=120] [--kind=cubic|linear] [--num-keyframes=N] [--trunc=1]

Every frame goes through `training.rendering.render_frames` (the one rendering path), with G
prepared for inference by `training.inference.prepare_generator` (`--precision`); the latent and
walk helpers live in `training/rendering.py` too. Pickles run code when loaded: use networks from
trusted sources only.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Iterator

import click
import numpy as np
import torch

import dnnlib
from dnnlib.util import parse_grid, parse_range
from training.rendering import (
    describe_render_path,
    load_generator,
    make_walk,
    render_frames,
    seeds_to_ws,
    truncate_ws,
)

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------
# Latent-walk mode.

def tile(frames: np.ndarray, gw: int, gh: int) -> np.ndarray:
    """`[gw*gh, H, W, C]` -> one `[gh*H, gw*W, C]` image, row by row."""
    n, h, w, c = frames.shape
    return frames.reshape(gh, gw, h, w, c).transpose(0, 2, 1, 3, 4).reshape(gh * h, gw * w, c)


def render_walk_video(network: str, seeds: list[int], output: str, grid: tuple[int, int] = (1, 1),
                      w_frames: int = 120, kind: str = "cubic", num_keyframes: int | None = None,
                      truncation_psi: float = 1.0, fps: float = 60.0, batch: int = 4, device: str = "auto",
                      progress: bool | None = None, precision: str = "auto") -> dict[str, Any]:
    """A looping latent-walk video: `gw x gh` cells, each cycling smoothly through `num_keyframes`
    key latents (`w_frames` frames from one key to the next). Cell i's key k is seed
    `seeds[(k * cells + i) % len(seeds)]`; by default `num_keyframes = len(seeds) // cells`.
    Returns `{"path", "num_frames", "fps", "width", "height"}`."""
    from tqdm import tqdm

    from torch_utils import misc
    from training.inference import prepare_generator
    from utils.video_io import VideoWriter

    gw, gh = grid
    cells = gw * gh
    if not seeds:
        raise dnnlib.UserError("--seeds: no seeds given")
    if num_keyframes is None:
        if len(seeds) % cells != 0:
            raise dnnlib.UserError(f"--seeds: {len(seeds)} seeds do not fill a {gw}x{gh} grid evenly; give a "
                                   f"multiple of {cells} seeds or --num-keyframes")
        num_keyframes = len(seeds) // cells
    if num_keyframes < 1 or w_frames < 1:
        raise dnnlib.UserError("--num-keyframes and --w-frames must be at least 1")
    dev = misc.get_device(device)
    G, desc = prepare_generator(load_generator(network, dev), dev, precision)
    writer = VideoWriter(output, fps=fps)  # fails here, before any rendering, on a bad output path
    try:
        key_seeds = [seeds[(k * cells + i) % len(seeds)] for k in range(num_keyframes) for i in range(cells)]
        keys = seeds_to_ws(G, key_seeds, truncation_psi, dev).reshape(num_keyframes, cells, G.num_ws, G.w_dim)
        walk = make_walk(keys, kind=kind, loop=True)
        num_frames = num_keyframes * w_frames
        log.info(describe_render_path(G, dev, batch, desc))
        chunk = max(1, batch // cells)

        def ws_chunks() -> Iterator[torch.Tensor]:
            for start in range(0, num_frames, chunk):
                t = np.arange(start, min(num_frames, start + chunk)) / w_frames
                yield torch.from_numpy(walk(t).reshape(-1, G.num_ws, G.w_dim))

        images = (img for b in render_frames(G, ws_chunks(), batch=chunk * cells, device=dev) for img in b)
        with tqdm(total=num_frames, desc="rendering", unit="frame",
                  disable=None if progress is None else not progress) as bar:
            for _ in range(num_frames):
                writer.write(tile(np.stack([next(images) for _ in range(cells)]), gw, gh))
                bar.update(1)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    w, h = writer.size
    return {"path": output, "num_frames": num_frames, "fps": fps, "width": w, "height": h}

#----------------------------------------------------------------------------
# Pose mode.

def _frame_index_map(num_out: int, fps_out: float, fps_in: float, num_in: int) -> np.ndarray:
    """For each output frame k, the input frame on screen at time k / fps_out."""
    k = np.arange(num_out)
    if abs(fps_out - fps_in) < 1e-9:
        return np.minimum(k, num_in - 1)
    return np.minimum(np.floor(k * fps_in / fps_out + 1e-6).astype(int), num_in - 1)


def _pose_drawings(pose, size: int, index: np.ndarray) -> Iterator[np.ndarray]:
    """`[size, size, 3]` drawings of the pose frames `index` (non-decreasing), drawn once each."""
    from utils.pose_render import render_pose
    drawn = render_pose(pose, size=(size, size))
    current, pos = None, -1
    for i in index:
        while pos < i:
            current = next(drawn)
            pos += 1
        yield current


def render_pose_video(pose_path: str, network: str, lstm: str, output: str, fps: float | None = None,
                      truncation_psi: float = 1.0, smooth: float = 0.0, batch: int = 4, device: str = "auto",
                      side_by_side: bool = False, consistency: bool = False,
                      progress: bool | None = None, precision: str = "auto") -> dict[str, Any]:
    """Render a pose sequence as video of the signer G learned (see the module docstring).

    Everything the user gave is checked before rendering (pose, LSTM, generator match, output
    path); on any error no output file is left. Returns `{"path", "num_frames", "fps", "width",
    "height"}` and, with `consistency`, `"consistency"` (the figures) and `"json"` (their file)."""
    from tqdm import tqdm

    from metrics.pose_consistency import video_pose_consistency
    from torch_utils import misc
    from training import pose_lstm
    from training.inference import prepare_generator
    from utils import pose_features
    from utils.video_io import VideoWriter

    if smooth < 0:
        raise dnnlib.UserError(f"--smooth must be >= 0 (frames), got {smooth}")
    if fps is not None and not fps > 0:
        raise dnnlib.UserError(f"--fps must be positive, got {fps}")
    json_path = os.path.splitext(output)[0] + ".json" if consistency else None
    if json_path is not None:
        dnnlib.util.check_writable(json_path, "consistency report")  # before the rendering, not after it

    pose = pose_features.load_pose(pose_path)
    dev = misc.get_device(device)
    model, spec, identity = pose_lstm.load_lstm(lstm, device=dev)
    G = load_generator(network, dev)
    pose_lstm.check_generator(identity, pose_lstm.generator_identity(G), lstm, network)
    G, desc = prepare_generator(G, dev, precision)  # the fastest correct way to run G here (logged below)

    feats = pose_features.features_from_pose(pose, spec, name=pose_path)
    pose_fps = float(pose.body.fps)
    feat_fps = spec.fps if spec.fps is not None else pose_fps
    out_fps = float(fps) if fps is not None else pose_fps
    if not out_fps > 0:
        raise dnnlib.UserError(f"Pose {pose_path} has frame rate {pose_fps}; pass --fps")
    if abs(out_fps - feat_fps) > 1e-9:
        feats = pose_features.resample_features(feats, spec, feat_fps, out_fps)
    num_frames = int(feats.shape[0])
    res = int(G.img_resolution)

    writer = VideoWriter(output, fps=out_fps)  # an unwritable output fails here, before rendering
    try:
        log.info(describe_render_path(G, dev, batch, desc))
        ws = pose_lstm.iter_ws(model, feats, chunk=max(64, batch), device=dev)
        ws = truncate_ws(pose_lstm.smooth_ws(ws, smooth), G.mapping.w_avg, truncation_psi)
        drawings = (_pose_drawings(pose, res, _frame_index_map(num_frames, out_fps, pose_fps,
                                                                pose.body.data.shape[0]))
                    if side_by_side else None)
        bar = tqdm(total=num_frames, desc="rendering", unit="frame", disable=None if progress is None else not progress)

        def frames() -> Iterator[np.ndarray]:
            for imgs in render_frames(G, ws, batch=batch, device=dev):
                if drawings is not None:
                    writer.write(np.stack([np.concatenate([next(drawings), img], axis=1) for img in imgs]))
                else:
                    writer.write(imgs)
                bar.update(len(imgs))
                yield from imgs

        result: dict[str, Any] = {}
        with bar:
            if consistency:
                result["consistency"] = video_pose_consistency(frames(), pose, fps=out_fps, progress=False)
            else:
                for _ in frames():
                    pass
        writer.close()
    except BaseException:
        writer.abort()
        raise
    w, h = writer.size
    result.update(path=output, num_frames=writer.num_frames, fps=out_fps, width=w, height=h)
    if json_path is not None:
        doc = {**result["consistency"], "video": output, "pose": pose_path, "network": network, "lstm": lstm,
               "fps": out_fps, "video_frames": writer.num_frames, "truncation_psi": truncation_psi, "smooth": smooth}
        try:
            with dnnlib.util.atomic_write(json_path, "w") as f:
                json.dump(doc, f, indent=2)
        except OSError as e:
            raise dnnlib.UserError(f"Cannot write {json_path}: {e.strerror or e}") from None
        result["json"] = json_path
    return result

#----------------------------------------------------------------------------
# Command line.

@click.command()
@click.option("--pose", "pose_path", metavar="FILE", help="Pose sequence to render (.pose, MediaPipe Holistic)")
@click.option("--network", required=True, metavar="PATH|URL", help="Generator pickle (trusted files only)")
@click.option("--lstm", metavar="FILE", help="Pose LSTM trained for this generator (pose mode)")
@click.option("--output", required=True, metavar="FILE", help="Video to write (.mp4)")
@click.option("--fps", type=float, default=None, help="Frame rate  [default: the pose's; 60 for walks]")
@click.option("--trunc", "truncation_psi", type=float, default=1.0, show_default=True, help="Truncation psi")
@click.option("--smooth", type=float, default=0.0, show_default=True, metavar="FRAMES",
              help="Gaussian smoothing of the latents over time (standard deviation in frames; pose mode)")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Frames per synthesis call")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="CPU rendering: bf16 convolutions where the CPU has bfloat16 units (auto), or fp32")
@click.option("--side-by-side", is_flag=True, help="Show the input pose next to the render (pose mode)")
@click.option("--consistency", is_flag=True,
              help="Measure pose consistency of the render; writes OUTPUT.json (pose mode)")
@click.option("--seeds", metavar="LIST", help="Latent walk: seeds of the key latents, e.g. 0-31")
@click.option("--grid", default="1x1", show_default=True, metavar="COLSxROWS", help="Latent walk: grid of walks")
@click.option("--w-frames", type=click.IntRange(min=1), default=120, show_default=True,
              help="Latent walk: frames from one key latent to the next")
@click.option("--kind", type=click.Choice(["cubic", "linear"]), default="cubic", show_default=True,
              help="Latent walk: interpolation")
@click.option("--num-keyframes", type=click.IntRange(min=1), default=None,
              help="Latent walk: key latents per cell  [default: seeds / cells]")
@dnnlib.util.cli_main
def main(pose_path: str | None, network: str, lstm: str | None, output: str, fps: float | None,
         truncation_psi: float, smooth: float, batch: int, device: str, precision: str, side_by_side: bool,
         consistency: bool, seeds: str | None, grid: str, w_frames: int, kind: str, num_keyframes: int | None) -> None:
    """Render a pose sequence as video of the signer (--pose, --lstm), or a looping latent walk (--seeds).

    \b
    python gen_video.py --pose=sign.pose --network=G.pkl --lstm=lstm.pt --output=out.mp4 --side-by-side
    python gen_video.py --network=G.pkl --seeds=0-31 --grid=4x2 --output=walk.mp4"""
    if (pose_path is None) == (seeds is None):
        raise dnnlib.UserError("Give either --pose (with --lstm) to render a pose, or --seeds for a latent walk")
    if pose_path is not None:
        if lstm is None:
            raise dnnlib.UserError("--pose needs --lstm (a pose LSTM trained for this generator)")
        res = render_pose_video(pose_path, network, lstm, output, fps=fps, truncation_psi=truncation_psi,
                                smooth=smooth, batch=batch, device=device, side_by_side=side_by_side,
                                consistency=consistency, precision=precision)
    else:
        if lstm is not None or side_by_side or consistency or smooth:
            raise dnnlib.UserError("--lstm, --side-by-side, --consistency and --smooth apply to pose mode (--pose)")
        res = render_walk_video(network, parse_range(seeds, "--seeds"), output, grid=parse_grid(grid),
                                w_frames=w_frames, kind=kind, num_keyframes=num_keyframes,
                                truncation_psi=truncation_psi, fps=fps or 60.0, batch=batch, device=device,
                                precision=precision)
    click.echo(f"Wrote {res['path']} ({res['num_frames']} frames at {res['fps']:g} fps, "
               f"{res['width']}x{res['height']})")
    if "json" in res:
        c = res["consistency"]
        figures = ", ".join(f"{k} {c[k]:.3f}" for k in ("body_mae", "face_mae", "left_hand_mae", "right_hand_mae")
                            if c.get(k) is not None)
        click.echo(f"Wrote {res['json']} (pose consistency: {figures or 'no person found in the render'})")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()

#----------------------------------------------------------------------------

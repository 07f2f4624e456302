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

Every frame goes through `render_frames` (the one rendering path; see `describe_render_path`).
The walk helpers (`seeds_to_ws`, `make_walk`) are shared with `utils/make_animations.py`.
Pickles run code when loaded: use networks from trusted sources only.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Iterable, Iterator

import click
import numpy as np
import torch

import dnnlib

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------
# Rendering: ws -> uint8 frames (the one place where G runs for video).

def describe_render_path(G: torch.nn.Module, device: torch.device, batch: int) -> str:
    """One line naming how `render_frames` runs G on `device`."""
    if getattr(G, "description", None):  # prepared by training.inference.prepare_generator
        return f"{G.description}; batch {batch}"
    res = int(G.img_resolution)
    return (f"Rendering {res}x{res} frames with {type(G.synthesis).__module__}.{type(G.synthesis).__name__} "
            f"on {device.type}: float32, reference PyTorch ops, batch {batch}")


@torch.no_grad()
def render_frames(G: torch.nn.Module, ws_iter: Iterable[torch.Tensor], batch: int = 4,
                  device: torch.device | str | None = None, noise_mode: str = "const") -> Iterator[np.ndarray]:
    """Render a stream of latents with `G.synthesis`.

    Args:
        G: generator (spec section 3 interface), on `device`, eval mode.
        ws_iter: chunks of ws `[n, num_ws, w_dim]` (any chunk sizes); re-batched to `batch`.
        batch: images per synthesis call.
        noise_mode: 'const' (deterministic), 'random' or 'none'.
    Yields `[b, H, W, C]` uint8 frames (0..255), `b <= batch`, in order; memory holds at most one
    batch of images."""
    from utils.video_io import to_uint8
    device = torch.device(device) if device is not None else next(G.parameters()).device
    batch = max(1, int(batch))
    pending: list[torch.Tensor] = []
    count = 0
    for ws in ws_iter:
        if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
            raise ValueError(f"render_frames: ws of shape {list(ws.shape)}, expected [n, {G.num_ws}, {G.w_dim}]")
        pending.append(ws)
        count += ws.shape[0]
        while count >= batch:
            cat = torch.cat(pending)
            head, rest = cat[:batch], cat[batch:]
            pending, count = ([rest] if rest.shape[0] else []), rest.shape[0]
            yield to_uint8(G.synthesis(head.to(device, torch.float32).contiguous(), noise_mode=noise_mode))
    if count:
        yield to_uint8(G.synthesis(torch.cat(pending).to(device, torch.float32).contiguous(), noise_mode=noise_mode))


def truncate_ws(chunks: Iterable[torch.Tensor], w_avg: torch.Tensor, psi: float) -> Iterator[torch.Tensor]:
    """Lerp each W toward `w_avg` `[w_dim]`: `w_avg + psi * (w - w_avg)` (psi 1 passes through)."""
    for ws in chunks:
        yield ws if psi == 1 else torch.lerp(w_avg.to(ws), ws, psi)

#----------------------------------------------------------------------------
# Latent walks (also used by utils/make_animations.py).

def seeds_to_ws(G: torch.nn.Module, seeds: list[int], truncation_psi: float = 1.0,
                device: torch.device | str = "cpu") -> np.ndarray:
    """ws `[len(seeds), num_ws, w_dim]` float32 of the z of each seed (`RandomState(seed).randn(z_dim)`,
    the gen_images convention). Unconditional generators only."""
    if G.c_dim != 0:
        raise dnnlib.UserError(f"The network is conditional ({G.c_dim} classes); latent walks need an "
                               f"unconditional generator")
    z = np.stack([np.random.RandomState(seed).randn(G.z_dim) for seed in seeds])
    return zs_to_ws(G, z, truncation_psi, device)


@torch.no_grad()
def zs_to_ws(G: torch.nn.Module, z: np.ndarray, truncation_psi: float = 1.0,
             device: torch.device | str = "cpu") -> np.ndarray:
    """`G.mapping` of z `[n, z_dim]` -> ws `[n, num_ws, w_dim]` float32 (numpy)."""
    zt = torch.from_numpy(np.asarray(z, dtype=np.float32)).to(device)
    c = torch.zeros([zt.shape[0], G.c_dim], device=device)
    return G.mapping(zt, c, truncation_psi=truncation_psi).cpu().numpy().astype(np.float32)


def make_walk(keys: np.ndarray, kind: str = "cubic", loop: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """A smooth path through key latents `keys` `[K, ...]`, as a function of time in key units.

    `loop=False`: passes through key k at t = k, for 0 <= t <= K-1 (cubic: natural spline).
    `loop=True`: periodic with period K (after key K-1 it returns to key 0 at t = K).
    `kind`: 'cubic' (C2-smooth, scipy CubicSpline) or 'linear'. Returns f(t `[n]`) -> `[n, ...]` float32."""
    from scipy.interpolate import CubicSpline
    keys = np.asarray(keys, dtype=np.float64)
    if kind not in ("cubic", "linear"):
        raise dnnlib.UserError(f"Unknown interpolation {kind!r}; use cubic or linear")
    num = keys.shape[0]
    if num == 0:
        raise ValueError("make_walk needs at least one key")
    if num == 1:
        return lambda t: np.broadcast_to(keys[0], (len(np.atleast_1d(t)),) + keys.shape[1:]).astype(np.float32)
    flat = keys.reshape(num, -1)
    if loop:
        flat = np.concatenate([flat, flat[:1]])
    x = np.arange(flat.shape[0], dtype=np.float64)
    period = float(num)

    if kind == "cubic":
        spline = CubicSpline(x, flat, axis=0, bc_type="periodic" if loop else "natural")

        def interp(t: np.ndarray) -> np.ndarray:
            return spline(t)
    else:
        def interp(t: np.ndarray) -> np.ndarray:
            i0 = np.clip(np.floor(t).astype(int), 0, len(x) - 2)
            a = (t - i0)[:, None]
            return flat[i0] * (1 - a) + flat[i0 + 1] * a

    def f(t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        t = np.mod(t, period) if loop else np.clip(t, 0, num - 1)
        return interp(t).reshape((len(t),) + keys.shape[1:]).astype(np.float32)
    return f


def parse_grid(s: str) -> tuple[int, int]:
    """'4x2' -> (4, 2) (columns, rows)."""
    parts = s.lower().split("x")
    try:
        gw, gh = (int(p) for p in parts)
    except ValueError:
        gw = gh = 0
    if len(parts) != 2 or gw < 1 or gh < 1:
        raise dnnlib.UserError(f"--grid: expected COLUMNSxROWS like 4x2, got {s!r}")
    return gw, gh


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

    from gen_images import load_generator
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
    G, _ = prepare_generator(load_generator(network, dev), dev, precision)
    writer = VideoWriter(output, fps=fps)  # fails here, before any rendering, on a bad output path
    try:
        key_seeds = [seeds[(k * cells + i) % len(seeds)] for k in range(num_keyframes) for i in range(cells)]
        keys = seeds_to_ws(G, key_seeds, truncation_psi, dev).reshape(num_keyframes, cells, G.num_ws, G.w_dim)
        walk = make_walk(keys, kind=kind, loop=True)
        num_frames = num_keyframes * w_frames
        log.info(describe_render_path(G, dev, batch))
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

    from gen_images import load_generator
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
    if json_path is not None and os.path.isdir(json_path):
        raise dnnlib.UserError(f"Cannot write {json_path}: it is a directory")

    pose = pose_features.load_pose(pose_path)
    dev = misc.get_device(device)
    model, spec, identity = pose_lstm.load_lstm(lstm, device=dev)
    G = load_generator(network, dev)
    pose_lstm.check_generator(identity, pose_lstm.generator_identity(G), lstm, network)
    G, _ = prepare_generator(G, dev, precision)  # the fastest correct way to run G here (logged below)

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
        log.info(describe_render_path(G, dev, batch))
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
        from gen_images import parse_range
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

"""Render video with a generator: a signer performing a pose sequence, or a latent walk.

Pose mode (the pose-to-latent LSTM maps each pose frame to W; G renders it):

    python gen_video.py --pose=sign.pose --network=G.pkl --lstm=lstm.pt --output=out.mp4 \\
        [--side-by-side] [--consistency] [--smooth=1.5] [--trunc=1]

writes one frame per pose frame at the pose's frame rate (or at `--fps`: the latents are interpolated
in time, so the motion stays that of the pose), frames
streamed to the H.264 encoder in batches so memory does not grow with the length. With
`--consistency` the rendered frames' poses are estimated with MediaPipe and the pose-consistency
figures (`metrics/pose_consistency.py`) are written to `out.json` next to the video, and the error
per frame of each body part to the chart `out-consistency.png`.

A folder of poses renders to a folder of videos (the networks loaded once; outputs that exist are
kept, so a stopped run continues, and `render-settings.json` refuses a re-run with another LSTM or
settings), with `--consistency` also `pose-consistency.json`: the figures of all videos pooled, and
each video's:

    python gen_video.py --pose=test-poses/ --network=G.pkl --lstm=lstm.pt --output=renders/ --consistency

Latent-walk mode (interpolation videos without a pose, looping):

    python gen_video.py --network=G.pkl --seeds=0-31 --grid=4x2 --output=walk.mp4 \\
        [--w-frames=120] [--kind=cubic|linear] [--num-keyframes=N] [--trunc=1]

Every frame goes through `training.rendering.render_frames` (the one rendering path), with G
prepared for inference by `training.inference.prepare_generator` (`--precision`); the latent and
walk helpers live in `training/rendering.py` too. Pickles run code when loaded: use networks from
trusted sources only.
"""

from __future__ import annotations

import contextlib
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
from utils import video_io

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

    gw, gh = grid
    cells = gw * gh
    video_io.check_fps(fps)
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
    video_io.check_frame_size(gw * G.img_resolution, gh * G.img_resolution, output)
    writer = video_io.VideoWriter(output, fps=fps)  # fails here, before any rendering, on a bad output path
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


MAX_SMOOTH = 100.0  # frames (4 s at 25 fps): far beyond where signing is blurred away


def _check_pose_options(smooth: float, fps: float | None) -> None:
    if not 0 <= smooth <= MAX_SMOOTH:
        raise dnnlib.UserError(f"--smooth must be from 0 to {MAX_SMOOTH:g} (frames of standard deviation), "
                               f"got {smooth}")
    if fps is not None:
        video_io.check_fps(fps)


class PoseVideoRenderer:
    """A generator and its pose LSTM, loaded, matched and prepared for inference once, to render
    one pose sequence or many (`render`)."""

    def __init__(self, network: str, lstm: str, device: str = "auto", precision: str = "auto", batch: int = 4):
        from torch_utils import misc
        from training import pose_lstm
        from training.inference import prepare_generator

        self.network, self.lstm, self.batch = network, lstm, max(1, int(batch))
        self.device = misc.get_device(device)
        self.model, self.spec, identity = pose_lstm.load_lstm(lstm, device=self.device)
        G = load_generator(network, self.device)
        G_identity = pose_lstm.generator_identity(G)
        pose_lstm.check_generator(identity, G_identity, lstm, network)
        self.generator_hash = G_identity["hash"]
        self.G, self.desc = prepare_generator(G, self.device, precision)  # the fastest correct way to run G here
        log.info(describe_render_path(self.G, self.device, self.batch, self.desc))  # once, not with each video

    def render(self, pose, pose_path: str, output: str, fps: float | None = None, truncation_psi: float = 1.0,
               smooth: float = 0.0, side_by_side: bool = False, json_path: str | None = None,
               progress: bool | None = None, leave: bool = True) -> dict[str, Any]:
        """Render `pose` (a loaded `pose_format.Pose`, read from `pose_path`) to the video `output`;
        with `json_path`, measure pose consistency and write the figures there. On any error no
        output file is left. Returns `{"path", "num_frames", "fps", "width", "height"}` and, with
        `json_path`, `"consistency"` (the figures) and `"json"`."""
        from tqdm import tqdm

        from metrics.pose_consistency import plot_consistency, video_pose_consistency
        from training import pose_lstm
        from utils import pose_features

        _check_pose_options(smooth, fps)
        G, dev, batch = self.G, self.device, self.batch
        pose_fps = float(pose.body.fps)
        if not pose_fps > 0:  # a header without a frame rate: --fps is the pose's rate
            if fps is None:
                raise dnnlib.UserError(f"Pose {pose_path} has no frame rate ({pose_fps}); pass its rate with --fps")
            pose_fps = float(fps)
        feats = pose_features.features_from_pose(pose, self.spec, name=pose_path, pose_fps=pose_fps)
        # The LSTM runs at the rate it was trained at (the spec's, else the pose's own); its latents are
        # then resampled to the output rate, so --fps changes the frame rate, not the motion.
        feat_fps = self.spec.fps if self.spec.fps is not None else pose_fps
        out_fps = float(fps) if fps is not None else pose_fps
        num_feats = int(feats.shape[0])
        num_frames = pose_lstm.resampled_length(num_feats, feat_fps, out_fps)
        res = int(G.img_resolution)

        writer = video_io.VideoWriter(output, fps=out_fps)  # an unwritable output fails here, before rendering
        try:
            ws = pose_lstm.iter_ws(self.model, feats, chunk=max(64, batch), device=dev)
            # Smoothed before the resampling, with --smooth in frames of the pose: its blur lasts the same
            # time at any --fps.
            ws = pose_lstm.smooth_ws(ws, smooth * feat_fps / pose_fps)
            ws = pose_lstm.resample_ws(ws, num_feats, feat_fps, out_fps)
            ws = truncate_ws(ws, G.mapping.w_avg, truncation_psi)
            drawings = (_pose_drawings(pose, res, _frame_index_map(num_frames, out_fps, pose_fps,
                                                                    pose.body.data.shape[0]))
                        if side_by_side else None)
            bar = tqdm(total=num_frames, desc="rendering", unit="frame", leave=leave,
                       disable=None if progress is None else not progress)

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
                if json_path is not None:
                    result["consistency"] = video_pose_consistency(frames(), pose, fps=out_fps, progress=False)
                else:
                    for _ in frames():
                        pass
            # An earlier video's report must not outlive it (nor be kept beside the new one when this run
            # measures nothing): removed before the rename, so a kill in between leaves no mismatched pair.
            for old in _reports_of(output, json_path):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(old)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        w, h = writer.size
        result.update(path=output, num_frames=writer.num_frames, fps=out_fps, width=w, height=h)
        if json_path is not None:
            doc = {**result["consistency"], "video": output, "pose": pose_path, "network": self.network,
                   "lstm": self.lstm, "fps": out_fps, "video_frames": writer.num_frames,
                   "truncation_psi": truncation_psi, "smooth": smooth}
            dnnlib.util.write_json(json_path, doc, "consistency report")
            result["json"] = json_path
            result["chart"] = chart_path(json_path)
            title = (f"Pose consistency of {os.path.basename(output)} with {os.path.basename(pose_path)}: "
                     f"error per frame, in shoulder widths")
            plot_consistency(result["consistency"], result["chart"], title=title)
        return result


def _reports_of(output: str, json_path: str | None) -> list[str]:
    """The consistency report and chart that go with the video `output`: `json_path`'s, or without one
    the `<name>.json` beside it when that is a report of this video (another JSON file is left alone)."""
    if json_path is None:
        own = os.path.splitext(output)[0] + ".json"
        try:
            with open(own, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            return []
        if not (isinstance(doc, dict) and isinstance(doc.get("video"), str)
                and os.path.basename(doc["video"]) == os.path.basename(output)):
            return []
        json_path = own
    return [json_path, chart_path(json_path)]


def chart_path(json_path: str) -> str:
    """Where the per-frame pose-consistency chart of a render goes: `<name>-consistency.png` beside `<name>.json`."""
    return os.path.splitext(json_path)[0] + "-consistency.png"


def render_pose_video(pose_path: str, network: str, lstm: str, output: str, fps: float | None = None,
                      truncation_psi: float = 1.0, smooth: float = 0.0, batch: int = 4, device: str = "auto",
                      side_by_side: bool = False, consistency: bool = False,
                      progress: bool | None = None, precision: str = "auto") -> dict[str, Any]:
    """Render a pose sequence as video of the signer G learned (see the module docstring).

    Everything the user gave is checked before rendering (pose, LSTM, generator match, output
    path); on any error no output file is left. Returns `{"path", "num_frames", "fps", "width",
    "height"}` and, with `consistency`, `"consistency"` (the figures) and `"json"` (their file)."""
    from utils import pose_estimation, pose_features

    _check_pose_options(smooth, fps)
    json_path = os.path.splitext(output)[0] + ".json" if consistency else None
    if json_path is not None:  # before the rendering, not after it
        dnnlib.util.check_writable(json_path, "consistency report")
        dnnlib.util.check_writable(chart_path(json_path), "consistency chart")
        pose_estimation.require_estimator()  # MediaPipe measures the render: fail before rendering
    pose = pose_features.load_pose(pose_path)
    renderer = PoseVideoRenderer(network, lstm, device=device, precision=precision, batch=batch)
    return renderer.render(pose, pose_path, output, fps=fps, truncation_psi=truncation_psi, smooth=smooth,
                           side_by_side=side_by_side, json_path=json_path, progress=progress)


SUMMARY_NAME = "pose-consistency.json"
SETTINGS_NAME = "render-settings.json"
EACH_POSE_RATE = "each pose's own"  # the recorded --fps of a folder rendered without one


def render_pose_folder(pose_dir: str, network: str, lstm: str, outdir: str, fps: float | None = None,
                       truncation_psi: float = 1.0, smooth: float = 0.0, batch: int = 4, device: str = "auto",
                       side_by_side: bool = False, consistency: bool = False,
                       progress: bool | None = None, precision: str = "auto") -> dict[str, Any]:
    """Render every `<name>.pose` in `pose_dir` to `<outdir>/<name>.mp4` (and, with `consistency`,
    `<name>.json` and `<name>-consistency.png`), loading the networks once. Outputs that exist are
    kept, so an interrupted run continues where it stopped. A pose that cannot be rendered
    (unreadable, no person) is reported and the others go on. `<outdir>/render-settings.json` records
    the networks (hashes of their weights) and the settings; a re-run that would mix in videos made
    otherwise (another LSTM, even under the same file name, or another `fps`, `truncation_psi`,
    `smooth`, `side_by_side`) is refused. With `consistency`,
    `<outdir>/pose-consistency.json` holds the figures of all videos pooled
    (`metrics.pose_consistency.combine_consistency`) and each video's own.

    Returns `{"rendered", "kept", "failed": [(pose path, reason)], "outdir"}`, with `consistency`
    also `"consistency"` (the pooled figures) and `"summary"` (its file)."""

    from tqdm import tqdm

    from metrics.pose_consistency import combine_consistency, plot_consistency
    from utils import pose_estimation, pose_features

    _check_pose_options(smooth, fps)
    if not os.path.isdir(pose_dir):
        raise dnnlib.UserError(f"Pose folder not found: {pose_dir}")
    by_name = dnnlib.util.files_by_name(pose_dir, [".pose"], "Poses")
    if not by_name:
        raise dnnlib.UserError(f"No .pose files in {pose_dir}")
    if os.path.splitext(outdir)[1].lower() == ".mp4":
        raise dnnlib.UserError(f"--pose is a folder, so --output must be a folder for the videos, not {outdir}")
    names, paths = list(by_name), list(by_name.values())
    lowered = {n.lower() for n in names}  # case-insensitive file systems (Windows, macOS): one file
    summary_path = os.path.join(outdir, SUMMARY_NAME)
    for taken, what in ((SUMMARY_NAME, "the summary"), (SETTINGS_NAME, "the record of the settings")):
        if (consistency or taken == SETTINGS_NAME) and os.path.splitext(taken)[0].lower() in lowered:
            raise dnnlib.UserError(f"A pose named {os.path.splitext(taken)[0]}.pose would overwrite {what} "
                                   f"{taken}; rename it")
    settings_path = os.path.join(outdir, SETTINGS_NAME)
    settings = {"fps": EACH_POSE_RATE if fps is None else float(fps), "truncation_psi": float(truncation_psi),
                "smooth": float(smooth), "side_by_side": bool(side_by_side)}
    made, remedy = "videos rendered", "use another --output, or remove its videos to render them again"
    # A record without any of the videos (a run that failed before its first) describes nothing.
    outputs = any(os.path.isfile(os.path.join(outdir, name + ".mp4")) for name in names)
    dnnlib.util.check_settings(settings_path, settings, made, remedy, outputs)  # before the networks load
    if consistency:
        pose_estimation.require_estimator()  # MediaPipe measures the renders: fail before rendering
    busy = "is being written by another gen_video.py; wait for it to end, or use another --output"
    with dnnlib.util.writing_folder(outdir, busy):  # one process at a time: two would mix their settings
        if consistency:
            dnnlib.util.check_writable(summary_path, "consistency summary")

        renderer = PoseVideoRenderer(network, lstm, device=device, precision=precision, batch=batch)
        # What the renders depend on, by content (a retrained lstm.pt keeps its name).
        from training.pose_lstm import weights_hash
        settings = {"generator": renderer.generator_hash, "lstm": weights_hash(renderer.model), **settings}
        outputs = any(os.path.isfile(os.path.join(outdir, name + ".mp4")) for name in names)  # now, locked
        dnnlib.util.check_settings(settings_path, settings, made, remedy, outputs)
        # How the frames are computed (--precision, kernels) is recorded, not compared: bf16 and fp32
        # renders differ by less than the eye sees (PSNR >= 40 dB), and a folder may be continued elsewhere.
        dnnlib.util.write_json(settings_path, {**settings, "network": network, "lstm_file": lstm,
                                               "render_path": renderer.desc}, "settings")
        figures: dict[str, dict[str, Any]] = {}
        rendered, kept, failed = 0, 0, []
        disable = None if progress is None else not progress
        for path, name in zip(tqdm(paths, desc="poses", unit="pose", disable=disable), names):
            video = os.path.join(outdir, name + ".mp4")
            json_path = os.path.join(outdir, name + ".json") if consistency else None
            fig = _read_figures(json_path) if json_path is not None and os.path.isfile(video) else None
            if os.path.isfile(video) and (json_path is None or fig is not None):  # finished by an earlier run
                kept += 1
                if fig is not None:
                    figures[name] = fig
                    if "per_frame" in fig and not os.path.isfile(chart_path(json_path)):  # stopped before its chart
                        plot_consistency(fig, chart_path(json_path))
                continue
            try:
                pose = pose_features.load_pose(path)
                res = renderer.render(pose, path, video, fps=fps, truncation_psi=truncation_psi, smooth=smooth,
                                      side_by_side=side_by_side, json_path=json_path, progress=progress, leave=False)
            except dnnlib.UserError as e:
                log.warning("Not rendered: %s", e)
                failed.append((path, str(e)))
                continue
            rendered += 1
            if json_path is not None:
                figures[name] = res["consistency"]
        result: dict[str, Any] = {"rendered": rendered, "kept": kept, "failed": failed, "outdir": outdir}
        if consistency and figures:
            pooled = combine_consistency(figures.values())
            per_video = {name: {k: v for k, v in fig.items() if k.endswith(("_mae", "_detection", "_matched"))
                                or k == "num_frames"} for name, fig in figures.items()}
            dnnlib.util.write_json(summary_path, {**pooled, "videos": per_video, "poses": pose_dir, "network": network,
                                                  "lstm": lstm, "truncation_psi": truncation_psi, "smooth": smooth},
                                   "consistency summary")
            result.update(consistency=pooled, summary=summary_path)
        return result


def _read_figures(json_path: str) -> dict[str, Any] | None:
    """The pose-consistency figures of an earlier render, or None when the file cannot be used
    (then the pose is rendered again)."""
    try:
        with open(json_path, encoding="utf-8") as f:
            fig = json.load(f)
    except (OSError, ValueError):
        return None
    return fig if isinstance(fig, dict) and isinstance(fig.get("components"), dict) else None

#----------------------------------------------------------------------------
# Command line.

@click.command()
@click.option("--pose", "pose_path", metavar="FILE|DIR",
              help="Pose sequence to render (.pose, MediaPipe Holistic), or a folder of them")
@click.option("--network", required=True, metavar="PATH|URL", help="Generator pickle (trusted files only)")
@click.option("--lstm", metavar="FILE", help="Pose LSTM trained for this generator (pose mode)")
@click.option("--output", required=True, metavar="FILE|DIR",
              help="Video to write (.mp4); a folder when --pose is one (name.mp4 per name.pose)")
@click.option("--fps", type=dnnlib.util.finite_float(), default=None,
              help="Frame rate  [default: the pose's; 60 for walks]")
@click.option("--trunc", "truncation_psi", type=dnnlib.util.finite_float(), default=1.0, show_default=True,
              help="Truncation psi")
@click.option("--smooth", type=dnnlib.util.finite_float(), default=0.0, show_default=True, metavar="FRAMES",
              help="Gaussian smoothing of the latents over time (standard deviation in frames of the pose, at any "
                   "--fps; pose mode)")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Frames per synthesis call")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="CPU rendering: bf16 convolutions where the CPU has bfloat16 units (auto), or fp32")
@click.option("--side-by-side", is_flag=True, help="Show the input pose next to the render (pose mode)")
@click.option("--consistency", is_flag=True,
              help="Measure pose consistency of the render; writes OUTPUT.json and a chart of the error per "
                   "frame, OUTPUT-consistency.png (pose mode)")
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
    python gen_video.py --pose=test-poses/ --network=G.pkl --lstm=lstm.pt --output=renders/ --consistency
    python gen_video.py --network=G.pkl --seeds=0-31 --grid=4x2 --output=walk.mp4"""
    if (pose_path is None) == (seeds is None):
        raise dnnlib.UserError("Give either --pose (with --lstm) to render a pose, or --seeds for a latent walk")
    if pose_path is not None:
        if lstm is None:
            raise dnnlib.UserError("--pose needs --lstm (a pose LSTM trained for this generator)")
        if os.path.isdir(pose_path):
            _report_folder(render_pose_folder(pose_path, network, lstm, output, fps=fps,
                                              truncation_psi=truncation_psi, smooth=smooth, batch=batch,
                                              device=device, side_by_side=side_by_side, consistency=consistency,
                                              precision=precision))
            return
        res = render_pose_video(pose_path, network, lstm, output, fps=fps, truncation_psi=truncation_psi,
                                smooth=smooth, batch=batch, device=device, side_by_side=side_by_side,
                                consistency=consistency, precision=precision)
    else:
        if lstm is not None or side_by_side or consistency or smooth:
            raise dnnlib.UserError("--lstm, --side-by-side, --consistency and --smooth apply to pose mode (--pose)")
        res = render_walk_video(network, parse_range(seeds, "--seeds", max_value=2 ** 32 - 1), output,
                                grid=parse_grid(grid), w_frames=w_frames, kind=kind, num_keyframes=num_keyframes,
                                truncation_psi=truncation_psi, fps=60.0 if fps is None else fps, batch=batch,
                                device=device, precision=precision)
    click.echo(f"Wrote {res['path']} ({res['num_frames']} frames at {res['fps']:g} fps, "
               f"{res['width']}x{res['height']})")
    if "json" in res:
        click.echo(f"Wrote {res['json']} (pose consistency: {_figures_line(res['consistency'])}) "
                   f"and {res['chart']}")


def _figures_line(c: dict[str, Any]) -> str:
    figures = ", ".join(f"{k} {c[k]:.3f}" for k in ("body_mae", "face_mae", "left_hand_mae", "right_hand_mae")
                        if c.get(k) is not None)
    return figures or "no person found in the render"


def _report_folder(res: dict[str, Any]) -> None:
    click.echo(f"{res['outdir']}: rendered {_count(res['rendered'], 'video')}, kept {res['kept']} from an "
               f"earlier run" + (f", {len(res['failed'])} failed" if res["failed"] else ""))
    if "summary" in res:
        click.echo(f"Wrote {res['summary']} (pose consistency of {_count(res['consistency']['num_videos'], 'video')}: "
                   f"{_figures_line(res['consistency'])})")
    if res["failed"]:
        reason = res["failed"][0][1]
        more = f" (and {len(res['failed']) - 1} more, logged above)" if len(res["failed"]) > 1 else ""
        raise dnnlib.UserError(f"{_count(len(res['failed']), 'pose')} could not be rendered{more}; first: {reason}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()

#----------------------------------------------------------------------------

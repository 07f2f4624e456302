"""Paired training data for the pose LSTM: random smooth walks through a generator's W space,
rendered to video, with the pose MediaPipe Holistic finds in every frame.

    python utils/make_animations.py --network=G.pkl --outdir=pairs --num=1000 [--frames=60-240] [--seed=0]
    python utils/make_animations.py --outdir=pairs --estimate-only      # poses for videos already there

Step 1 (render): for walk i, key latents z ~ N(0, I) every `--keyframe-every` frames are mapped to W
(`G.mapping`, `--trunc`), joined by a natural cubic spline in W and rendered (G prepared for
inference by `training.inference.prepare_generator`, `--precision`) to `<name>.mp4`, with the W of
every frame in `<name>.npy` (`[T, num_ws, w_dim]` float32); T is drawn from `--frames`. Walk i depends only on `--seed` and i, so any subset can be (re)made.
Step 2 (estimate): every `<name>.mp4` in the folder without a `<name>.pose` gets one (MediaPipe
Holistic through `utils.pose_estimation`), so the step also runs on folders another tool filled.
Both steps skip outputs that exist and write atomically: an interrupted run is simply re-run.
`walks.json` records the generator (a hash of its weights) and the settings; adding walks made
otherwise to the folder is refused, so the pairs never mix two generators. Settings not given (and
`--network`) are then the folder's: `--outdir=pairs --num=2000` adds walks as the first ones were made.
"""

from __future__ import annotations

import logging
import os
import sys

if __name__ == "__main__":  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import click  # noqa: E402
import numpy as np  # noqa: E402

import dnnlib  # noqa: E402
from utils import video_io  # noqa: E402

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------

def parse_frames(s: str) -> tuple[int, int]:
    """'60-240' -> (60, 240); '90' -> (90, 90)."""
    parts = str(s).split("-")
    try:
        lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (0, 0)
    except ValueError:
        lo = hi = 0
    if lo < 1 or hi < lo:
        raise dnnlib.UserError(f"--frames: expected a length or a range like 60-240 (at least 1), got {s!r}")
    return lo, hi


def walk_name(seed: int, index: int) -> str:
    return f"walk{seed:04d}-{index:05d}"


def walk_ws(G, seed: int, index: int, frames: tuple[int, int], keyframe_every: int = 30,
            truncation_psi: float = 1.0, device="cpu") -> np.ndarray:
    """The W sequence of walk `index`: `[T, num_ws, w_dim]` float32, T drawn from `frames` (inclusive).

    Key latents sit every `keyframe_every` frames (the last key just after the end), joined by a
    natural cubic spline, so the walk passes exactly through the mapped keys."""
    from training.rendering import make_walk, zs_to_ws
    rng = np.random.default_rng([seed, index])
    num_frames = int(rng.integers(frames[0], frames[1] + 1))
    num_keys = (num_frames - 1) // keyframe_every + 2
    z = rng.standard_normal((num_keys, G.z_dim))
    keys = zs_to_ws(G, z, truncation_psi, device)
    return make_walk(keys, kind="cubic", loop=False)(np.arange(num_frames) / keyframe_every)


SETTINGS_FILE = "walks.json"  # train_pose_lstm.py checks the generator it records too
_BUSY = "is being written by another make_animations.py; wait for it to end, or use another --outdir"
DEFAULT_SETTINGS = {"frames": [60, 240], "truncation_psi": 1.0, "fps": 25.0, "keyframe_every": 30}


def _holds_walks(outdir: str) -> bool:
    """Whether `outdir` holds walks (their videos or latents): without them its walks.json, left by a
    run that failed or was stopped before its first walk, describes nothing."""
    return os.path.isdir(outdir) and bool(dnnlib.util.list_files(outdir, [".mp4", ".npy"]))


def _check_settings(outdir: str, settings: dict) -> None:
    """Refuse to add walks to a folder whose walks were made otherwise (another generator, frame
    counts, truncation, frame rate or key spacing): the pairs would mix. Keys absent from either
    record (the generator's hash before G is loaded) are not compared."""
    dnnlib.util.check_settings(os.path.join(outdir, SETTINGS_FILE), settings, "walks made",
                               f"use another --outdir, or the settings of {SETTINGS_FILE}", _holds_walks(outdir))


def render_walks(network: str | None, outdir: str, num: int, frames: tuple[int, int] | None = None, seed: int = 0,
                 truncation_psi: float | None = None, fps: float | None = None, keyframe_every: int | None = None,
                 batch: int = 4, device: str = "auto", progress: bool | None = None,
                 precision: str = "auto") -> list[str]:
    """Step 1: render walks 0..num-1 to `<outdir>/<name>.mp4` + `.npy`; skip walks whose two files
    exist. G runs prepared for inference (`training.inference.prepare_generator`, `precision`
    'auto' | 'fp32' | 'bf16'). `network` and the settings left as None are those of the walks
    already in `outdir` (its walks.json), else `DEFAULT_SETTINGS`. Returns the names of all `num` walks."""
    import torch
    from tqdm import tqdm

    from torch_utils import misc
    from training.inference import prepare_generator
    from training.rendering import describe_render_path, load_generator, render_frames

    before = dnnlib.util.read_settings(os.path.join(outdir, SETTINGS_FILE), _holds_walks(outdir))
    given = {"frames": frames, "truncation_psi": truncation_psi, "fps": fps, "keyframe_every": keyframe_every}
    kinds = {"frames": lambda v: [int(n) for n in v], "truncation_psi": float, "fps": float, "keyframe_every": int}
    settings = {k: kinds[k](before.get(k, DEFAULT_SETTINGS[k]) if v is None else v) for k, v in given.items()}
    frames, fps = tuple(settings["frames"]), settings["fps"]
    truncation_psi, keyframe_every = settings["truncation_psi"], settings["keyframe_every"]
    if network is None:
        network = before.get("network")
        if network is None:
            raise dnnlib.UserError(f"Rendering walks needs --network (no {SETTINGS_FILE} in {outdir} names one)")
    if num < 1 or keyframe_every < 1:
        raise dnnlib.UserError("--num and --keyframe-every must be at least 1")
    video_io.check_fps(fps)
    _check_settings(outdir, settings)
    names = [walk_name(seed, i) for i in range(num)]
    todo = [i for i, name in enumerate(names)
            if not all(os.path.isfile(os.path.join(outdir, name + ext)) for ext in (".mp4", ".npy"))]
    if not todo:
        return names
    dev = misc.get_device(device)
    G = load_generator(network, dev)
    if G.c_dim != 0:
        raise dnnlib.UserError(f"{network} is a conditional generator ({G.c_dim} classes); walks need an "
                               f"unconditional one")
    from training.pose_lstm import generator_identity
    settings = {"generator": generator_identity(G)["hash"], "network": network, **settings}
    G, desc = prepare_generator(G, dev, precision)  # the fastest correct way to run G here (logged below)
    with dnnlib.util.writing_folder(outdir, _BUSY):  # one process at a time: two would mix their settings
        _check_settings(outdir, {k: v for k, v in settings.items() if k != "network"})  # again, locked
        dnnlib.util.write_json(os.path.join(outdir, SETTINGS_FILE), settings, "settings")
        if len(todo) < num:
            log.info("%d of %d walks exist in %s; rendering the other %d", num - len(todo), num, outdir, len(todo))
        log.info(describe_render_path(G, dev, batch, desc))
        for i in tqdm(todo, desc="rendering walks", unit="walk", disable=None if progress is None else not progress):
            base = os.path.join(outdir, names[i])
            ws = walk_ws(G, seed, i, frames, keyframe_every, truncation_psi, dev)
            chunks = (torch.from_numpy(ws[s:s + batch]) for s in range(0, len(ws), batch))
            with video_io.VideoWriter(base + ".mp4", fps=fps) as writer:
                for imgs in render_frames(G, chunks, batch=batch, device=dev):
                    writer.write(imgs)
            dnnlib.util.save_npy(base + ".npy", ws, "latents")
    return names


def estimate_poses(outdir: str, progress: bool | None = None) -> list[str]:
    """Step 2: a `<name>.pose` for every video in `outdir` that has none
    (`utils.pose_estimation.estimate_folder_poses`). Returns the names of the poses written. A video
    that cannot be read does not stop the others; then a `UserError` names it at the end."""
    from utils.pose_estimation import estimate_folder_poses, raise_for_failures

    if not os.path.isdir(outdir):
        raise dnnlib.UserError(f"Video folder not found: {outdir}")
    with dnnlib.util.writing_folder(outdir, _BUSY):
        res = estimate_folder_poses(outdir, outdir, progress=progress)
    raise_for_failures(res)
    return res["written"]

#----------------------------------------------------------------------------

@click.command()
@click.option("--network", metavar="PATH|URL",
              help="Generator pickle (trusted files only)  [default: the one of the walks in --outdir]")
@click.option("--outdir", required=True, metavar="DIR", help="Folder of pairs (name.mp4, name.npy, name.pose)")
@click.option("--num", type=int, default=None,
              help="Walks of this --seed to have in --outdir: those there are kept, the rest rendered (needed "
                   "unless --estimate-only)")
@click.option("--frames", metavar="MIN-MAX",
              help="Frames per walk  [default: 60-240, or the value in --outdir's walks.json; likewise --trunc, "
                   "--fps and --keyframe-every]")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed of the walks")
@click.option("--trunc", "truncation_psi", type=dnnlib.util.finite_float(), help="Truncation psi  [default: 1]")
@click.option("--fps", type=dnnlib.util.finite_float(), help="Frame rate of the videos  [default: 25]")
@click.option("--keyframe-every", type=int, metavar="FRAMES", help="Frames between key latents  [default: 30]")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Frames per synthesis call")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="CPU rendering: bf16 convolutions where the CPU has bfloat16 units (auto), or fp32")
@click.option("--estimate-only", is_flag=True, help="Only estimate poses for the videos in --outdir")
@click.option("--render-only", is_flag=True, help="Only render walks (estimate their poses later)")
@dnnlib.util.cli_main
def main(network: str | None, outdir: str, num: int | None, frames: str | None, seed: int,
         truncation_psi: float | None, fps: float | None, keyframe_every: int | None, batch: int, device: str,
         precision: str, estimate_only: bool, render_only: bool) -> None:
    """Render random latent walks of a generator and estimate their poses: (pose, W) training pairs.

    \b
    python utils/make_animations.py --network=G.pkl --outdir=pairs --num=1000
    python utils/make_animations.py --outdir=pairs --estimate-only"""
    if estimate_only and render_only:
        raise dnnlib.UserError("--estimate-only and --render-only exclude each other")
    if not estimate_only:
        if num is None:
            raise dnnlib.UserError("Rendering walks needs --num (or pass --estimate-only)")
        if not render_only:  # fail now, not after hours of rendering
            from utils.pose_estimation import require_estimator
            require_estimator()
        names = render_walks(network, outdir, num, None if frames is None else parse_frames(frames), seed,
                             truncation_psi, fps, keyframe_every, batch, device, precision=precision)
        total = len(dnnlib.util.list_files(outdir, [".npy"]))
        click.echo(f"{len(names)} walk{'' if len(names) == 1 else 's'} of --seed={seed} in {outdir} ({total} in all)")
    if not render_only:
        done = estimate_poses(outdir)
        click.echo(f"Estimated {len(done)} pose{'' if len(done) == 1 else 's'} in {outdir}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()

#----------------------------------------------------------------------------

"""Cut a signing video into square crops of the signer: the training images for the generator.

    python utils/video_to_images.py --input_video=signer.mp4 --input_pose=signer.pose \\
        --output_path=frames.zip [--pose_output_path=poses.zip] [--resolution=256] [--hand_crops] \\
        [--render_output_path=renders.zip]
    python utils/video_to_images.py --input_video=clips/ --input_pose=poses/ --output_path=frames.zip

With two folders, every video `<name>.<ext>` of `--input_video` that has a `<name>.pose` in
`--input_pose` is cropped into the same archives (videos without a pose are left out with a
warning); `frames.json` then lists the clips and gives each image its clip's index. All clips are
checked (poses readable, frame counts equal) before any cropping.

Each frame is cropped to a square centred between the shoulders (POSE_LANDMARKS LEFT/RIGHT_SHOULDER
of that frame) with a side of 3x the shoulder width, and resized to `resolution` (Lanczos). Parts
of the square outside the video repeat the edge pixels (`--pad=edge`) or are black.

Outputs (written under temporary names next to them; when all are complete, the existing ones
are removed and the new ones renamed into place, so that a run stopped part-way leaves the earlier
run's set, or some archives missing, never archives of two runs side by side: run it again to
rebuild the set. The temporaries a killed run left for these names are removed by the next run):

- `--output_path` (.zip): the dataset archive of spec section 6: `NNNNN/imgNNNNNNNN.png`
  (PNG compression 0 by default, zip stored), numbered consecutively over the written crops,
  with `dataset.json` (`{"labels": null}`) and `frames.json` (for each image its video frame,
  crop centre and side in video pixels; the skipped frames). `dataset_tool.py --source` and
  training read it directly.
- `--pose_output_path` (.zip): the crop-space poses, one single-frame `.pose` per image under the
  image's name with `.pose` (`00000/img00000000.pose`), header size `resolution` x `resolution`:
  x, y in crop pixels, z and confidences as in the input, world landmarks dropped.
- `--hand_crops`: also crops centred on each hand's MIDDLE_FINGER_MCP (side: `--hand_scale` x the
  shoulder width; default 1) into `--hands_output_path` (default `<output>_hands.zip`, same
  layout; left hand before right hand per frame, a hand that was not found is skipped). Their
  poses go to `hands/<name>.pose` in the pose archive, their renderings to `hands/<name>.png`.
- `--render_output_path` (.zip): drawings of the crop-space poses (same names, `.png`).

Input poses: MediaPipe Holistic (full or reduced, see `utils/pose_features.py`). Coordinates are
taken in the pose header's width x height and scaled to the video's size when the two differ
(e.g. a 1250x1250 pose of a 256x256 rendering). Frame i of the video goes with frame i of the pose;
when their frame counts differ the run stops with an error, unless `--allow_frame_mismatch` is
given, which uses the first min(video, pose) frames. Frames where the pose has no shoulders (no
person) are skipped and counted.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import sys
import zipfile
from collections.abc import Iterator
from typing import Any

if __name__ == "__main__" and not __package__:  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import click  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
from tqdm import tqdm  # noqa: E402

import dnnlib  # noqa: E402
from utils import pose_features, pose_render, video_io  # noqa: E402

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------
# Geometry.

def archive_name(idx: int, ext: str = ".png") -> str:
    """`NNNNN/imgNNNNNNNN.png`: 1000 images a folder (spec section 6)."""
    return f"{idx // 1000:05d}/img{idx:08d}{ext}"


def crop_square(frame: np.ndarray, cx: float, cy: float, side: float, resolution: int,
                pad: str = "edge") -> np.ndarray | None:
    """The square of `side` pixels centred at (cx, cy) of a `[H, W, 3]` uint8 frame, resized to
    `[resolution, resolution, 3]` uint8. Coordinates are continuous (pixel i spans [i, i+1]).
    Parts outside the frame repeat the edge (`pad='edge'`) or are black (`pad='black'`).
    Returns None when the square does not overlap the frame."""
    h, w = frame.shape[:2]
    x0, y0 = cx - side / 2, cy - side / 2
    ix0, iy0 = math.floor(x0) - 1, math.floor(y0) - 1
    ix1, iy1 = math.ceil(x0 + side) + 1, math.ceil(y0 + side) + 1
    if ix1 <= 0 or iy1 <= 0 or ix0 >= w or iy0 >= h:
        return None
    sub = frame[max(iy0, 0):min(iy1, h), max(ix0, 0):min(ix1, w)]
    pads = ((max(0, -iy0), max(0, iy1 - h)), (max(0, -ix0), max(0, ix1 - w)), (0, 0))
    if any(p for pair in pads for p in pair):
        sub = np.pad(sub, pads, mode="edge") if pad == "edge" else np.pad(sub, pads, mode="constant")
    box = (x0 - ix0, y0 - iy0, x0 - ix0 + side, y0 - iy0 + side)
    img = PIL.Image.fromarray(np.ascontiguousarray(sub)).resize((resolution, resolution), PIL.Image.LANCZOS, box=box)
    return np.asarray(img)


class _Crops:
    """Per-frame crop centres and sides from a pose, in video pixels.

    Only the points that place crops (the shoulders, each hand's MIDDLE_FINGER_MCP) are kept, in
    float64: all of them took 0.8 GB for a 20-minute Holistic pose at 50 fps."""

    def __init__(self, pose, video_size: tuple[int, int], crop_scale: float, hand_scale: float):
        h = pose.header
        src_w = float(h.dimensions.width or video_size[0])
        src_h = float(h.dimensions.height or video_size[1])
        self.scale = np.array([video_size[0] / src_w, video_size[1] / src_h], dtype=np.float64)
        if not np.allclose(self.scale, 1.0):
            log.info("Pose coordinates are for %dx%d; scaling them to the video's %dx%d",
                     src_w, src_h, video_size[0], video_size[1])
        points = [h.get_point_index(pose_features.BODY, "LEFT_SHOULDER"),
                  h.get_point_index(pose_features.BODY, "RIGHT_SHOULDER"),
                  h.get_point_index(pose_features.LEFT_HAND, "MIDDLE_FINGER_MCP"),
                  h.get_point_index(pose_features.RIGHT_HAND, "MIDDLE_FINGER_MCP")]
        self.ls, self.rs = 0, 1  # (indices into the points kept)
        self.hands = {"left": 2, "right": 3}
        self.xy = np.ma.getdata(pose.body.data)[:, 0, points, :2].astype(np.float64) * self.scale   # [T, 4, 2]
        self.conf = np.asarray(pose.body.confidence)[:, 0, points].astype(np.float64)              # [T, 4]
        self.crop_scale = crop_scale
        self.hand_scale = hand_scale
        self.reach = 4.0 * max(video_size)  # a point further than this outside the frame is a broken estimate

    def _found(self, i: int, p: int) -> bool:
        xy = self.xy[i, p]
        return bool(self.conf[i, p] > 0 and np.isfinite(xy).all() and (np.abs(xy) <= self.reach).all())

    def shoulder_width(self, i: int) -> float | None:
        if not (self._found(i, self.ls) and self._found(i, self.rs)):
            return None
        width = float(np.linalg.norm(self.xy[i, self.ls] - self.xy[i, self.rs]))
        return width if width >= 2.0 else None  # a degenerate estimate is no person

    def body(self, i: int) -> tuple[float, float, float] | None:
        width = self.shoulder_width(i)
        if width is None:
            return None
        cx, cy = (self.xy[i, self.ls] + self.xy[i, self.rs]) / 2
        return float(cx), float(cy), self.crop_scale * width

    def hand(self, i: int, which: str) -> tuple[float, float, float] | None:
        width = self.shoulder_width(i)
        p = self.hands[which]
        if width is None or not self._found(i, p):
            return None
        cx, cy = self.xy[i, p]
        return float(cx), float(cy), self.hand_scale * width


def _without_world(header) -> tuple[list, np.ndarray]:
    """The components of a pose `header` without its world landmarks (metres, not pixels: nothing to
    crop), and the indices of their points among the pose's points."""
    components, points, at = [], [], 0
    for c in header.components:
        if "WORLD" not in c.name:
            components.append(c)
            points.append(np.arange(at, at + len(c.points)))
        at += len(c.points)
    return components, np.concatenate(points)


def crop_pose_frame(pose, index: int, crop: tuple[float, float, float], video_scale: np.ndarray, resolution: int):
    """Frame `index` of `pose` as a one-frame Pose in the coordinates of a crop (cx, cy, side in
    video pixels) resized to `resolution`: header `resolution` x `resolution`, x, y in crop
    pixels, z and confidence unchanged, world landmarks dropped, points not found set to 0. (The
    points are picked from that frame by index: a whole pose without world landmarks would be a
    second copy of it, and pose-format's `get_components` on each frame took 0.6 ms a crop.)"""
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderDimensions

    components, points = _without_world(pose.header)
    data = np.ma.getdata(pose.body.data)[index:index + 1, :1, points].astype(np.float32)
    conf = np.asarray(pose.body.confidence)[index:index + 1, :1, points].astype(np.float32)
    cx, cy, side = crop
    k = resolution / side
    data[..., 0] = (data[..., 0] * video_scale[0] - (cx - side / 2)) * k
    data[..., 1] = (data[..., 1] * video_scale[1] - (cy - side / 2)) * k
    missing = (conf <= 0) | ~np.isfinite(data).all(-1)
    data[missing] = 0
    conf[missing] = 0
    dims = PoseHeaderDimensions(width=resolution, height=resolution, depth=int(pose.header.dimensions.depth or 0))
    header = PoseHeader(version=pose.header.version, dimensions=dims, components=components)
    return Pose(header, NumPyPoseBody(fps=pose.body.fps, data=data, confidence=conf))


def _pose_bytes(pose) -> bytes:
    buf = io.BytesIO()
    pose.write(buf)
    return buf.getvalue()


def _png_bytes(img: np.ndarray, compress_level: int) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(img).save(buf, format="png", compress_level=compress_level)
    return buf.getvalue()

#----------------------------------------------------------------------------
# Outputs.

def _check_zip_path(path: str, option: str) -> str:
    path = os.fspath(path)
    if not path.lower().endswith(".zip"):
        raise dnnlib.UserError(f"{option} {path}: give a .zip file name")
    if os.path.isdir(path):
        raise dnnlib.UserError(f"{option} {path} is a folder; give a .zip file name")
    return path


@contextlib.contextmanager
def _atomic_outputs(outputs: dict[str, str]) -> Iterator[dict[str, str]]:
    """Temporary paths (`atomic_path`) for the files `outputs` (path -> option), committed as one set:
    when the body has completed (its files closed), every one of the files that exists is removed
    first and then the temporaries are renamed in, so that a run killed between two renames leaves
    files missing, never files of two runs side by side. On an exception nothing is touched."""
    with contextlib.ExitStack() as stack:
        tmps = {}
        for path, option in outputs.items():  # (atomic_path removes a killed run's temporaries of `path`)
            tmps[path] = stack.enter_context(dnnlib.util.atomic_path(path, what=option))
        yield tmps
        for path, option in outputs.items():
            try:
                if os.path.lexists(path):
                    os.remove(path)
            except OSError as e:
                raise dnnlib.UserError(f"Cannot replace {option} {path}: {e.strerror or e}") from None
    # (the ExitStack has renamed the temporaries into place)

#----------------------------------------------------------------------------
# The conversion.

def find_clips(input_video: str, input_pose: str) -> list[tuple[str, str]]:
    """The (video, pose) pairs to crop: the two paths themselves, or, when both are folders, each
    video `<name>.<ext>` of `input_video` with `<name>.pose` of `input_pose` (sorted by name; videos
    without a pose are left out with a warning). Raises `dnnlib.UserError` when nothing pairs."""
    video_dir, pose_dir = os.path.isdir(input_video), os.path.isdir(input_pose)
    if not video_dir and not pose_dir:
        return [(input_video, input_pose)]
    if not (video_dir and pose_dir):
        raise dnnlib.UserError("--input_video and --input_pose must both be files, or both be folders "
                               f"(got {input_video} and {input_pose})")
    clips, missing = [], []
    for name, video in video_io.list_videos(input_video).items():
        pose_path = os.path.join(input_pose, name + ".pose")
        if os.path.isfile(pose_path):
            clips.append((video, pose_path))
        else:
            missing.append(os.path.basename(video))
    if missing:
        log.warning("%d videos have no pose in %s and are left out: %s%s", len(missing), input_pose,
                    ", ".join(missing[:5]), " ..." if len(missing) > 5 else "")
    if not clips:
        raise dnnlib.UserError(f"No video in {input_video} has a pose of the same name in {input_pose} "
                               f"(make them with utils/estimate_pose.py --video={input_video} --output={input_pose})")
    return clips


def video_to_images(input_video: str, input_pose: str, output_path: str, pose_output_path: str | None = None,
                    resolution: int = 256, hand_crops: bool = False, hands_output_path: str | None = None,
                    render_output_path: str | None = None, crop_scale: float = 3.0, hand_scale: float = 1.0,
                    pad: str = "edge", allow_frame_mismatch: bool = False, max_frames: int | None = None,
                    png_compression: int = 0, progress: bool | None = None) -> dict[str, Any]:
    """Write the crops of a video, or of every clip of a folder of videos and one of their poses,
    into one archive (see the module docstring). Returns counts: `frames` (frames looked at),
    `images`, `skipped_no_person`, `hand_images`, `hands_not_found`, `clips`."""
    from training.dataset import MIN_RESOLUTION, trainable_side  # (imports torch: not at the top, for a quick --help)
    if not trainable_side(resolution):
        raise dnnlib.UserError(f"--resolution {resolution}: training needs a power of two of at least "
                               f"{MIN_RESOLUTION} (e.g. 256)")
    if not 0 < crop_scale < math.inf or not 0 < hand_scale < math.inf:
        raise dnnlib.UserError("--crop_scale and --hand_scale must be positive numbers")
    if max_frames is not None and max_frames < 1:
        raise dnnlib.UserError(f"--max_frames {max_frames}: give at least 1 (or leave it out for every frame)")
    if pad not in ("edge", "black"):
        raise dnnlib.UserError(f"--pad {pad}: use edge or black")
    if not 0 <= png_compression <= 9:
        raise dnnlib.UserError(f"--png_compression {png_compression}: use 0 (none) .. 9")
    output_path = _check_zip_path(output_path, "--output_path")
    if pose_output_path is not None:
        pose_output_path = _check_zip_path(pose_output_path, "--pose_output_path")
    if render_output_path is not None:
        render_output_path = _check_zip_path(render_output_path, "--render_output_path")
    if hand_crops:
        hands_output_path = _check_zip_path(hands_output_path or os.path.splitext(output_path)[0] + "_hands.zip",
                                            "--hands_output_path")
    else:
        hands_output_path = None
    outputs = [p for p in (output_path, pose_output_path, render_output_path, hands_output_path) if p is not None]
    if len({os.path.abspath(p) for p in outputs}) != len(outputs):
        raise dnnlib.UserError("The output paths must differ from each other")

    # Every clip is checked before anything is cropped (the archives are written once, at the end); its
    # pose is read again when its turn comes, so that memory holds one clip's pose, not all of them.
    clips = []
    for video_path, pose_path in find_clips(input_video, input_pose):
        pose = pose_features.load_pose(pose_path, require_hands=False)  # crops need shoulders; rest clips count
        num_pose, pose_fps = pose.body.data.shape[0], pose.body.fps
        del pose  # (not beside the pose read for the crops)
        info = video_io.video_info(video_path)
        if info.num_frames == 0:
            raise dnnlib.UserError(f"Video {video_path} has no frames")
        if num_pose != info.num_frames:
            if not allow_frame_mismatch:
                raise dnnlib.UserError(f"Pose {pose_path} has {num_pose} frames but video {video_path} has "
                                       f"{info.num_frames}; they must describe the same frames (pass "
                                       f"--allow_frame_mismatch to use the first {min(num_pose, info.num_frames)})")
            log.warning("Pose %s has %d frames, video %d: using the first %d", pose_path, num_pose,
                        info.num_frames, min(num_pose, info.num_frames))
        if info.fps > 0 and pose_fps and abs(float(pose_fps) - info.fps) > 0.01:
            log.warning("Pose %s frame rate %.3g differs from the video's %.3g; pairing frames by index",
                        pose_path, float(pose_fps), info.fps)
        num = min(num_pose, info.num_frames)
        if max_frames is not None:
            num = min(num, max_frames)
        clips.append((video_path, pose_path, info, num))
    several = os.path.isdir(input_video)

    stats = {"frames": 0, "images": 0, "skipped_no_person": 0, "hand_images": 0, "hands_not_found": 0,
             "clips": len(clips)}
    index: dict[str, Any] = {"source_video": os.path.basename(os.path.normpath(input_video)),
                             "source_pose": os.path.basename(os.path.normpath(input_pose)),
                             "resolution": resolution, "crop": f"square, centre between the shoulders, side "
                             f"{crop_scale:g} x shoulder width", "images": [], "skipped_frames": []}
    if several:
        index["clips"] = [{"video": os.path.basename(v), "pose": os.path.basename(p), "frames": n}
                          for v, p, _info, n in clips]
    hand_index: dict[str, Any] = {**index, "crop": f"square, centre at MIDDLE_FINGER_MCP, side {hand_scale:g} x "
                                  f"shoulder width", "images": []}
    hand_index.pop("skipped_frames")

    options = {output_path: "--output_path", pose_output_path: "--pose_output_path",
               render_output_path: "--render_output_path", hands_output_path: "--hands_output_path"}
    with _atomic_outputs({p: o for p, o in options.items() if p is not None}) as tmps, \
            contextlib.ExitStack() as stack:  # the zips are closed (complete) before any is renamed in
        def zip_output(path: str | None, compression: int) -> zipfile.ZipFile | None:
            return None if path is None else stack.enter_context(zipfile.ZipFile(tmps[path], "w", compression))
        images = zip_output(output_path, zipfile.ZIP_STORED)
        poses = zip_output(pose_output_path, zipfile.ZIP_DEFLATED)
        renders = zip_output(render_output_path, zipfile.ZIP_STORED)
        hands = zip_output(hands_output_path, zipfile.ZIP_STORED)

        def emit(archive: zipfile.ZipFile, prefix: str, n: int, frame: np.ndarray, pose, scale: np.ndarray, i: int,
                 crop, entry: dict) -> bool:
            img = crop_square(frame, *crop, resolution, pad=pad)
            if img is None:
                return False
            name = archive_name(n)
            archive.writestr(name, _png_bytes(img, png_compression))
            if poses is not None or renders is not None:
                cpose = crop_pose_frame(pose, i, crop, scale, resolution)
                if poses is not None:
                    poses.writestr(prefix + archive_name(n, ".pose"), _pose_bytes(cpose))
                if renders is not None:
                    renders.writestr(prefix + name, _png_bytes(pose_render.render_pose_frame(cpose, 0), png_compression))
            entry.update(name=name, frame=i, center=[round(crop[0], 3), round(crop[1], 3)], side=round(crop[2], 3))
            return True

        bar = tqdm(total=sum(c[3] for c in clips), unit="frame", desc="crops",
                   disable=None if progress is None else not progress)
        with bar:
            for c, (video_path, pose_path, info, num) in enumerate(clips):
                pose = pose_features.load_pose(pose_path, require_hands=False)
                crops = _Crops(pose, (info.width, info.height), crop_scale, hand_scale)
                if poses is None and renders is None:
                    pose = None  # only the crops need it
                clip = {"clip": c} if several else {}
                for i, frame in enumerate(video_io.read_video(video_path, stop=num)):
                    bar.update(1)
                    stats["frames"] += 1
                    body = crops.body(i)
                    entry: dict[str, Any] = dict(clip)
                    if body is None or not emit(images, "", stats["images"], frame, pose, crops.scale, i, body,
                                                entry):
                        stats["skipped_no_person"] += 1
                        index["skipped_frames"].append([c, i] if several else i)
                        continue
                    index["images"].append(entry)
                    stats["images"] += 1
                    if hands is None:
                        continue
                    for which in ("left", "right"):
                        hand = crops.hand(i, which)
                        entry = {**clip, "hand": which}
                        if hand is None or not emit(hands, "hands/", stats["hand_images"], frame, pose, crops.scale,
                                                    i, hand, entry):
                            stats["hands_not_found"] += 1
                            continue
                        hand_index["images"].append(entry)
                        stats["hand_images"] += 1
                pose = crops = None  # (freed before the next clip's pose is read)

        if stats["images"] == 0:
            raise dnnlib.UserError(f"No person found in any of the {stats['frames']} frames of {input_video} "
                                   f"(the pose has no shoulders); nothing written")
        images.writestr("dataset.json", json.dumps({"labels": None}))
        images.writestr("frames.json", json.dumps(index))
        if hands is not None:
            hands.writestr("dataset.json", json.dumps({"labels": None}))
            hands.writestr("frames.json", json.dumps(hand_index))

    log.info("%d frames%s: %d crops written to %s, %d skipped (no person)%s", stats["frames"],
             f" of {len(clips)} clips" if several else "", stats["images"], output_path, stats["skipped_no_person"],
             f"; {stats['hand_images']} hand crops to {hands_output_path}, {stats['hands_not_found']} hands not found"
             if hand_crops else "")
    return stats

#----------------------------------------------------------------------------
# Command line.

@click.command()
@click.option("--input_video", required=True, metavar="PATH",
              help="Video of the signer, or a folder of videos (clips) of the signer")
@click.option("--input_pose", required=True, metavar="PATH",
              help="MediaPipe Holistic .pose of that video (one frame per video frame), or a folder of name.pose")
@click.option("--output_path", required=True, metavar="ZIP", help="Dataset archive of the crops (.zip)")
@click.option("--pose_output_path", metavar="ZIP", help="Crop-space poses: one .pose per image (.zip)")
@click.option("--resolution", type=int, default=256, show_default=True, help="Side of the square crops (power of two)")
@click.option("--hand_crops", is_flag=True, help="Also write crops centred on each hand")
@click.option("--hands_output_path", metavar="ZIP", help="Archive of the hand crops [default: <output>_hands.zip]")
@click.option("--render_output_path", metavar="ZIP", help="Drawings of the crop-space poses (.zip)")
@click.option("--crop_scale", type=dnnlib.util.finite_float(), default=3.0, show_default=True,
              help="Crop side in shoulder widths")
@click.option("--hand_scale", type=dnnlib.util.finite_float(), default=1.0, show_default=True,
              help="Hand crop side in shoulder widths")
@click.option("--pad", type=click.Choice(["edge", "black"]), default="edge", show_default=True,
              help="Fill for crop parts outside the video")
@click.option("--allow_frame_mismatch", is_flag=True, help="Use the first min(video, pose) frames when their counts differ")
@click.option("--max_frames", type=int, metavar="INT", help="Stop after this many video frames (of each clip)")
@click.option("--png_compression", type=int, default=0, show_default=True, help="PNG compression level 0..9")
@dnnlib.util.cli_main
def main(**kwargs) -> None:
    """Crop a signing video (or a folder of clips), guided by its pose, into a training archive of square images."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    video_to_images(**kwargs)


if __name__ == "__main__":
    main()

#----------------------------------------------------------------------------

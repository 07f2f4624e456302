"""Pose estimation: MediaPipe Holistic on RGB frames, through pose-format's holistic utilities.

- `estimate_frames_pose(frames, fps, width, height)`: frames (any iterable of `[H, W, 3]` uint8
  RGB) -> `pose_format.Pose` (full Holistic: 33 body, 468 face, 2x21 hand, 33 world points;
  x, y in pixels, confidence 0 where a component was not found).
- `estimate_video_pose(video_path, out_pose_path)`: the same for a video file, writing the
  `.pose` atomically and, with `skip_existing`, leaving outputs that already exist alone (so a
  long batch can be re-run after a crash).
- `estimate_folder_poses(video_dir, out_dir)`: a `.pose` for every video of a folder
  (`raise_for_failures` ends such a run whose videos did not all give a pose).

MediaPipe is imported and its model created only when a function here is first called. While it
runs, its native INFO and WARNING log lines are kept off stderr (`native_log_filter`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import threading
from typing import Iterable, Iterator

import numpy as np

import dnnlib
from utils import video_io

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------
# MediaPipe's native log lines.
#
# MediaPipe 0.10.21 logs through absl (and TFLite through its own logger) straight to file
# descriptor 2, about 11 lines for every estimate ("INFO: Created TensorFlow Lite XNNPACK delegate",
# "WARNING: All log messages before absl::InitializeLog()...", "W0000 ... inference_feedback_manager.cc
# ..."). Neither logger reads GLOG_minloglevel or TF_CPP_MIN_LOG_LEVEL (measured: the same 11 lines
# with either or both set before MediaPipe is imported), and the Python bindings have no setter. So while MediaPipe
# runs, descriptor 2 goes through a small filter process that drops those INFO and WARNING lines and
# passes everything else on as it comes: errors, tracebacks, progress bars, other output. A process,
# not a thread: what a crash writes last (a failed CHECK aborts the process) still reaches stderr.

_FILTER_SCRIPT = r"""
import os, re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the estimating process, not for its stderr
threshold = int(sys.argv[1])
native = re.compile(rb"([IW])\d{4,8} [\d:.]+ +\d+ [^ \]]+:\d+\] ")  # absl / glog: I0000 00:00:... file.cc:12]
tflite = re.compile(rb"INFO: |VERBOSE: |WARNING: All log messages before absl::InitializeLog\(\)")

def kept(line):
    m = native.match(line)
    if m:
        return {b"I": 0, b"W": 1}[m.group(1)] >= threshold
    return not tflite.match(line)

rest = b""
while True:
    try:
        chunk = os.read(0, 65536)
    except InterruptedError:
        continue
    if not chunk:
        break
    *lines, rest = (rest + chunk).split(b"\n")
    out = b"".join(line + b"\n" for line in lines if kept(line))
    if rest and rest[:1] not in b"IWV":  # cannot be a log line that is dropped: pass it on now
        out, rest = out + rest, b""
    if out:
        os.write(1, out)
if rest and kept(rest):
    os.write(1, rest)
"""

_filter_lock = threading.Lock()
_filter_state: dict = {"users": 0}


def _native_log_threshold() -> int:
    """The lowest native severity shown: `GLOG_minloglevel` when the user set it (0 INFO, 1 WARNING,
    2 ERROR), else 2."""
    value = os.environ.get("GLOG_minloglevel", "").strip()
    try:
        return int(value) if value else 2
    except ValueError:
        log.warning("GLOG_minloglevel=%r is not a number; showing MediaPipe's errors only", value)
        return 2


@contextlib.contextmanager
def native_log_filter() -> Iterator[None]:
    """Within the block, drop MediaPipe's native INFO and WARNING lines from stderr (file descriptor 2).

    ERROR and FATAL lines and anything else written to stderr pass through, at once and in order.
    `GLOG_minloglevel=0` (set by the user) shows everything, `1` also the warnings. Nestable and
    shared by threads (the filter stays while any of them is inside). Where stderr is not a file
    descriptor or no filter process can be started, nothing is filtered."""
    threshold = _native_log_threshold()
    if threshold <= 0:
        yield
        return
    with _filter_lock:
        if _filter_state["users"] == 0:
            _filter_state["saved"] = _start_filter(threshold)
        _filter_state["users"] += 1
    try:
        yield
    finally:
        with _filter_lock:
            _filter_state["users"] -= 1
            if _filter_state["users"] == 0:
                _stop_filter(_filter_state.pop("saved"))


def _start_filter(threshold: int):
    """Point descriptor 2 at a filter process (dropping native lines below `threshold`) that writes to
    the real stderr; return what `_stop_filter` needs to undo it (None when nothing was changed)."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    if not sys.executable:
        return None
    try:
        saved = os.dup(2)
    except OSError:
        return None  # no stderr
    try:
        read_end, write_end = os.pipe()
    except OSError:
        os.close(saved)
        return None
    try:
        child = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER_SCRIPT, str(threshold)],
                                 stdin=read_end, stdout=saved, stderr=saved)
    except OSError as e:
        for fd in (saved, read_end, write_end):
            os.close(fd)
        log.debug("No filter for MediaPipe's log lines: %s", e)
        return None
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    return saved, child


_lingering: list = []  # filter processes still passing on the output of programs started meanwhile


def _stop_filter(state) -> None:
    if state is None:
        return
    saved, child = state
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os.dup2(saved, 2)  # the filter sees the end of its input once no process writes to the pipe
    os.close(saved)
    try:
        child.wait(timeout=5)  # all passed on before what comes next
    except subprocess.TimeoutExpired:
        _lingering.append(child)  # a program started meanwhile still holds the pipe; it ends with it
    _lingering[:] = [p for p in _lingering if p.poll() is None]

#----------------------------------------------------------------------------

def _holistic_module():
    """Import pose-format's holistic utilities (which import MediaPipe) on first use."""
    try:
        import pose_format.utils.holistic as holistic
    except ImportError as e:
        raise dnnlib.UserError(f"Pose estimation needs MediaPipe ({e}); install the 'pose' extra: "
                               f"pip install 'mediapipe==0.10.21'") from None
    return holistic


def require_estimator() -> None:
    """Raise `dnnlib.UserError` now, with the install command, when MediaPipe cannot be imported:
    for commands that estimate poses only after long work (rendering, training). Loads no model."""
    _holistic_module()


def _can_refuse_reuse(holistic) -> bool:
    """Whether pose-format's `load_holistic` takes `reuse`. From 0.15 it keeps MediaPipe graphs in a
    pool and hands them to later calls, whose estimates then depend on what ran before (measured:
    the same 5 frames came out up to 8.5 px apart over 4 calls); a fresh graph per call (`reuse=False`,
    about 0.05 s) makes an estimate depend on its frames alone."""
    import inspect
    return "reuse" in inspect.signature(holistic.load_holistic).parameters


def _checked_frames(frames: Iterable[np.ndarray], width: int, height: int, progress: bool | None,
                    total: int | None, desc: str) -> Iterator[np.ndarray]:
    from tqdm import tqdm
    disable = None if progress is None else not progress  # None: only on a terminal
    for i, frame in enumerate(tqdm(frames, total=total, desc=desc, unit="frame", disable=disable, leave=False)):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"Pose estimation expects [H, W, 3] uint8 RGB frames; frame {i} is "
                             f"{frame.dtype} {frame.shape}")
        if frame.shape[:2] != (height, width):
            raise ValueError(f"Frame {i} is {frame.shape[1]}x{frame.shape[0]}, expected {width}x{height}")
        yield np.ascontiguousarray(frame)


def estimate_frames_pose(frames: Iterable[np.ndarray], fps: float, width: int, height: int, *,
                         num_frames: int | None = None, model_complexity: int = 1,
                         refine_face_landmarks: bool = False, static_image_mode: bool = False,
                         progress: bool | None = None, desc: str = "pose estimation"):
    """Estimate MediaPipe Holistic poses of RGB frames.

    Args:
        frames: iterable of `[height, width, 3]` uint8 RGB frames (a generator is fine; frames are
            processed one at a time, in order, with MediaPipe's tracking between them).
        fps, width, height: written to the pose header/body; x, y are in pixels of this size.
        num_frames: length of `frames` when known (for the progress bar only).
        model_complexity: MediaPipe pose model 0, 1 or 2.
        refine_face_landmarks: 478 face points (irises) instead of 468.
        static_image_mode: detect in every frame instead of tracking (for unrelated images).
        progress: tqdm progress bar; None shows it only on a terminal.

    Returns a `pose_format.Pose` with `T` frames and one person: body `data` `[T, 1, 576, 3]`
    (543 + 33 world points with refined faces: `[T, 1, 586, 3]`), `confidence` `[T, 1, points]`.
    Raises `dnnlib.UserError` when `frames` is empty."""
    holistic = _holistic_module()
    config = {"model_complexity": int(model_complexity), "refine_face_landmarks": bool(refine_face_landmarks),
              "static_image_mode": bool(static_image_mode)}
    checked = _checked_frames(frames, int(width), int(height), progress, num_frames, desc)
    fresh = {"reuse": False} if _can_refuse_reuse(holistic) else {}
    try:
        with native_log_filter():
            pose = holistic.load_holistic(checked, fps=float(fps), width=int(width), height=int(height),
                                          progress=False, additional_holistic_config=dict(config), **fresh)
    except ValueError as e:
        if "at least one array" in str(e):
            raise dnnlib.UserError("No frames to estimate poses from (the video or frame list is empty)") from None
        raise
    return pose


CHUNK_FRAMES = 2500  # a long video is estimated in parts of this many frames, each kept on disk when done


def estimate_video_pose(video_path: str | os.PathLike, out_pose_path: str | os.PathLike | None = None, *,
                        skip_existing: bool = False, progress: bool | None = None,
                        chunk_frames: int = CHUNK_FRAMES, **kwargs):
    """Estimate the Holistic pose of every frame of a video; write it to `out_pose_path` (atomic).

    With `skip_existing` and an existing `out_pose_path`, nothing is estimated: the existing file
    is read and returned (outputs are written atomically, so an existing file is complete).
    A video longer than `chunk_frames` is estimated in parts, each saved when done under
    `<out_pose_path>.partial/`; a stopped run continues from the last finished part, and the folder
    is removed when the whole pose is written. (MediaPipe starts tracking afresh at each part:
    the first frame of a part is detected, not tracked.) Other keyword arguments go to
    `estimate_frames_pose`. Returns the `pose_format.Pose` (of a video estimated in parts, as read back
    from them: float32, the values of the file).
    Raises `dnnlib.UserError` for a missing/unreadable video or an unwritable output."""
    if out_pose_path is not None and skip_existing and os.path.isfile(out_pose_path):
        from utils.pose_features import load_pose
        log.info("Pose %s exists; skipping %s", out_pose_path, video_path)
        _discard_parts(out_pose_path)
        return load_pose(out_pose_path, require_hands=False)  # checked: a file of another kind is refused
    if out_pose_path is not None:
        dnnlib.util.check_writable(out_pose_path, "pose")  # before the estimation, not after it
    info = video_io.video_info(video_path)
    if not info.fps > 0:
        log.warning("Video %s does not state its frame rate; writing the pose at 25 fps", video_path)
    fps = info.fps or 25.0
    frames = video_io.read_video(video_path)
    desc = f"pose {os.path.basename(os.fspath(video_path))}"
    if out_pose_path is None or info.num_frames <= chunk_frames:
        pose = estimate_frames_pose(frames, fps=fps, width=info.width, height=info.height,
                                    num_frames=info.num_frames, progress=progress, desc=desc, **kwargs)
    else:
        pose = _estimate_in_parts(video_path, frames, info, fps, os.fspath(out_pose_path), chunk_frames, progress,
                                  desc, kwargs)
    if out_pose_path is not None:
        write_pose(pose, out_pose_path)
        _discard_parts(out_pose_path)
    return pose


def _discard_parts(out_pose_path: str | os.PathLike) -> None:
    """Remove the parts of a pose that is complete (a run killed after writing it left them)."""
    shutil.rmtree(os.fspath(out_pose_path) + ".partial", ignore_errors=True)


def _counted(items: Iterable, bar) -> Iterator:
    for item in items:
        bar.update(1)
        yield item


def _estimate_in_parts(video_path, frames: Iterator[np.ndarray], info, fps: float, out_path: str, chunk: int,
                       progress: bool | None, desc: str, kwargs: dict):
    """The pose of a long video from parts of `chunk` frames, each written to `<out_path>.partial/`
    when done and reused by a later run of the same video and settings."""
    import itertools
    import json

    from tqdm import tqdm

    partial = out_path + ".partial"
    stat = os.stat(video_path)
    key = {"video": os.path.abspath(os.fspath(video_path)), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
           "frames": info.num_frames, "chunk": chunk, "settings": sorted((k, repr(v)) for k, v in kwargs.items())}
    key_path = os.path.join(partial, "source.json")
    try:
        with open(key_path) as f:
            same = json.load(f) == json.loads(json.dumps(key))
    except (OSError, ValueError):
        same = False
    if not same and os.path.isdir(partial):
        log.info("Discarding %s: it belongs to another video or other settings", partial)
        shutil.rmtree(partial)
    dnnlib.util.make_dirs(partial, "folder for the finished parts")
    if not same:
        dnnlib.util.write_json(key_path, key, "record of the video")

    part_paths = []
    bar = tqdm(total=info.num_frames, desc=desc, unit="frame", disable=None if progress is None else not progress)
    with bar:
        for start in range(0, info.num_frames, chunk):
            part_path = os.path.join(partial, f"{start:09d}.pose")
            part_paths.append(part_path)
            piece = _counted(itertools.islice(frames, chunk), bar)
            if os.path.isfile(part_path):
                for _ in piece:  # decoded only, to reach the next part
                    pass
                continue
            pose = estimate_frames_pose(piece, fps=fps, width=info.width, height=info.height, progress=False,
                                        desc=desc, **kwargs)
            write_pose(pose, part_path)
            del pose  # (before the next part is estimated)
    return _joined_parts(part_paths, fps, info.num_frames, f"Video {video_path}", partial)


def _joined_parts(part_paths: list[str], fps: float, num_frames: int, source: str, partial: str):
    """The pose of the part files `part_paths` (in order; `num_frames` frames in all, else a UserError
    naming `source`), read one at a time into float32 arrays made once for the whole pose (the files
    hold float32). Holding the parts as estimated (float64) and concatenating them peaked at 2.6 GB
    for a 20-minute video at 50 fps; this way, pose-format's writer included, at 1.5 GB."""
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody

    from utils.pose_features import load_pose

    header = data = confidence = None
    total = 0
    for part_path in part_paths:
        part = load_pose(part_path, require_hands=False)
        n = part.body.data.shape[0]
        if data is None:
            header = part.header
            data = np.empty((num_frames, *part.body.data.shape[1:]), np.float32)
            confidence = np.empty((num_frames, *part.body.confidence.shape[1:]), np.float32)
        if total + n <= num_frames:
            data[total:total + n] = np.ma.getdata(part.body.data)
            confidence[total:total + n] = part.body.confidence
        total += n
    if total != num_frames:
        raise dnnlib.UserError(f"{source} gave {total} frames, {num_frames} expected; delete {partial} and run again")
    return Pose(header, NumPyPoseBody(fps=fps, data=data, confidence=confidence))  # (masked where confidence is 0)


def estimate_folder_poses(video_dir: str, out_dir: str, progress: bool | None = None) -> dict:
    """A `<name>.pose` in `out_dir` for every video `<name>.<ext>` in `video_dir` (`video_io.list_videos`).

    Poses that exist are kept, so a stopped run continues. A video that cannot be read is logged and
    the others go on. Returns `{"written": [names], "kept": [names], "failed": [(video, reason)]}`.
    Raises `dnnlib.UserError` when the folder holds no video or MediaPipe is missing."""
    from tqdm import tqdm

    videos = video_io.list_videos(video_dir)
    require_estimator()
    result: dict = {"written": [], "kept": [], "failed": []}
    # An unwritable out_dir stops the run now (not once per video); the folder itself is made by the
    # first pose written, so a run in which every video fails leaves none.
    dnnlib.util.check_writable(os.path.join(out_dir, next(iter(videos)) + ".pose"), "pose")
    for name, video in tqdm(videos.items(), desc="videos", unit="video",
                            disable=None if progress is None else not progress):
        out = os.path.join(out_dir, name + ".pose")
        if os.path.isfile(out):
            _discard_parts(out)
            result["kept"].append(name)
            continue
        try:
            estimate_video_pose(video, out, progress=progress)
        except dnnlib.UserError as e:
            log.warning("No pose for %s: %s", video, e)
            result["failed"].append((video, str(e)))
            continue
        result["written"].append(name)
    return result


def raise_for_failures(result: dict) -> None:
    """The `UserError` that ends a folder run of `estimate_folder_poses` in which some videos failed
    (each was logged as it failed; the others have their poses)."""
    if result["failed"]:
        n, reason = len(result["failed"]), result["failed"][0][1]
        raise dnnlib.UserError(f"No pose for {n} video{'' if n == 1 else 's'} (logged above; the others have "
                               f"theirs); first: {reason}")


def write_pose(pose, path: str | os.PathLike) -> None:
    """Write a `pose_format.Pose` to `path` atomically (complete or not at all)."""
    try:
        with dnnlib.util.atomic_write(path, "wb", what="pose") as f:
            pose.write(f)
    except OSError as e:
        raise dnnlib.UserError(f"Cannot write pose {os.fspath(path)}: {e.strerror or e}") from None


#----------------------------------------------------------------------------

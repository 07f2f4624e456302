"""The one pose front end: read and validate `.pose` files, and turn poses into model features.

Used by training (the pose-to-latent LSTM), inference (`gen_video.py`) and the pose-consistency
metric alike, so that a pose is always reduced and normalized the same way:

1. `load_pose(path_or_bytes)` reads a pose-format file and checks that it is MediaPipe Holistic
   (full: 33 body, 468/478 face, 2x21 hand points, optional world landmarks; or reduced, as
   pose-format's `reduce_holistic` writes it: 8 body, 128 face-contour, 2x21 hand points).
2. `prepare_pose(pose)` keeps the components the model uses (`reduce_holistic`), moves the body
   wrists onto the hand wrists (`correct_wrists`) and normalizes with the shoulders
   (`pose_normalization_info`, `Pose.normalize`: centre = the sequence's mean shoulder
   midpoint, unit = its mean shoulder distance).
3. `features_from_pose(pose, spec)` lays the normalized points out as a `[T, F]` float32 array:
   x, y of every point (component by component, point by point), missing points as 0, then one
   presence flag per component (1 when any of its points was found in the frame), resampled to
   `spec.fps` when one is set. `make_feature_spec()` builds the spec a model is trained with;
   it is stored with the model (`spec.to_dict()`) and re-applied at inference.

Full and reduced inputs give arrays of the same width under the same spec.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import struct
from typing import Any, Sequence

import numpy as np

import dnnlib

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------
# What the front end expects of a pose.

BODY = "POSE_LANDMARKS"
FACE = "FACE_LANDMARKS"
LEFT_HAND = "LEFT_HAND_LANDMARKS"
RIGHT_HAND = "RIGHT_HAND_LANDMARKS"
WORLD = "POSE_WORLD_LANDMARKS"
COMPONENTS = (BODY, FACE, LEFT_HAND, RIGHT_HAND)

# MediaPipe's 21 hand landmarks (the names pose-format writes).
HAND_POINTS = (
    "WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP",
    "INDEX_FINGER_MCP", "INDEX_FINGER_PIP", "INDEX_FINGER_DIP", "INDEX_FINGER_TIP",
    "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP", "MIDDLE_FINGER_TIP",
    "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP",
    "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP",
)
# The body points `reduce_holistic` keeps (no face, hand or leg points).
BODY_POINTS = ("LEFT_SHOULDER", "RIGHT_SHOULDER", "LEFT_ELBOW", "RIGHT_ELBOW",
               "LEFT_WRIST", "RIGHT_WRIST", "LEFT_HIP", "RIGHT_HIP")

FORMAT_HELP = (f"need MediaPipe Holistic components {BODY} (with {', '.join(BODY_POINTS)}), "
               f"{FACE} (468/478 mesh points or the 128 contour points), "
               f"{LEFT_HAND} and {RIGHT_HAND} (21 points each), as written by pose-format's "
               f"MediaPipe estimation (full) or reduce_holistic (reduced); for such a pose of a video run "
               f"python utils/estimate_pose.py --video=VIDEO --output=POSE")


@functools.lru_cache(maxsize=None)
def face_contour_points() -> tuple[str, ...]:
    """The face-mesh points `reduce_holistic` keeps (the contours), in its order.

    Read off pose-format itself by reducing a blank full-holistic header, so this stays the
    library's definition (no MediaPipe import needed)."""
    from pose_format.utils.generic import reduce_holistic
    pose = _blank_pose({BODY: BODY_POINTS, FACE: tuple(str(i) for i in range(468)),
                        LEFT_HAND: HAND_POINTS, RIGHT_HAND: HAND_POINTS})
    reduced = reduce_holistic(pose)
    face = [c for c in reduced.header.components if c.name == FACE][0]
    return tuple(face.points)


def _blank_pose(components: dict[str, Sequence[str]], num_frames: int = 1, fps: float = 25.0):
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions
    comps = [PoseHeaderComponent(name=name, points=list(points), limbs=[], colors=[(255, 255, 255)],
                                 point_format="XYZC") for name, points in components.items()]
    header = PoseHeader(version=0.1, dimensions=PoseHeaderDimensions(width=1, height=1, depth=1), components=comps)
    n = header.total_points()
    body = NumPyPoseBody(fps=fps, data=np.zeros((num_frames, 1, n, 3), np.float32),
                         confidence=np.zeros((num_frames, 1, n), np.float32))
    return Pose(header, body)

#----------------------------------------------------------------------------
# Reading and validation.

def load_pose(path_or_bytes: str | os.PathLike | bytes, require_hands: bool = True):
    """Read a `.pose` file (path or its bytes) and check it is MediaPipe Holistic (full or reduced).

    Returns a `pose_format.Pose` with a NumPy body: `data` `[T, people, points, dims]` (masked
    where confidence is 0) and `confidence` `[T, people, points]`. Raises `dnnlib.UserError`
    naming the file when it is missing, not a pose file (corrupt or truncated), has zero frames,
    is another format, or (with `require_hands`) has no hand in any frame."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        name, data = "the given pose data", bytes(path_or_bytes)
    elif isinstance(path_or_bytes, (str, os.PathLike)):
        name = os.fspath(path_or_bytes)
        if not os.path.exists(name):
            raise dnnlib.UserError(f"Pose file not found: {name}")
        if not os.path.isfile(name):
            raise dnnlib.UserError(f"Not a pose file: {name} is a directory")
        try:
            with open(name, "rb") as f:
                data = f.read()
        except OSError as e:
            raise dnnlib.UserError(f"Cannot read pose file {name}: {e.strerror or e}") from None
    else:
        raise TypeError(f"load_pose expects a path or bytes, got {type(path_or_bytes).__name__}")
    pose = _parse_pose(data, name)
    check_pose(pose, name, require_hands=require_hands)
    if pose.body.data.shape[1] > 1:  # noted where the file is read (check_pose runs again on the way)
        log.info("Pose %s holds %d people; using the first", name, pose.body.data.shape[1])
    return pose


def _parse_pose(data: bytes, name: str):
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader
    from pose_format.utils.reader import BufferReader

    def corrupt(why: str) -> dnnlib.UserError:
        return dnnlib.UserError(f"Not a valid pose file: {name} ({why}); expected a pose-format .pose file")

    if len(data) == 0:
        raise corrupt("empty file")
    try:
        reader = BufferReader(data)
        header = PoseHeader.read(reader)
        body_start = reader.read_offset
        body = NumPyPoseBody.read(header, reader)
    except NotImplementedError as e:
        raise corrupt(str(e)) from None
    except Exception as e:  # struct/unicode/value errors from a file that is not a pose
        raise corrupt(f"{type(e).__name__}: {str(e)[:80]}") from None

    # A truncated v0.1/v0.2 body still parses (v0.1 derives the frame count from the size):
    # check that the body is exactly the size its own header and frame count say.
    try:
        version = round(float(header.version), 3)
        points = header.total_points()
        dims = header.num_dims()
        if version == 0.1:
            _fps, frames_short, people = struct.unpack_from("<HHH", data, body_start)
            rest = len(data) - body_start - 6
            unit = people * points * (dims + 1) * 4
            if unit > 0 and (rest % unit != 0 or (rest // unit) % 65536 != frames_short):
                raise corrupt("truncated or damaged body")
        elif version == 0.2:
            _fps, frames, people = struct.unpack_from("<fIH", data, body_start)
            rest = len(data) - body_start - 10
            if rest != frames * people * points * (dims + 1) * 4:
                raise corrupt("truncated or damaged body")
    except struct.error:
        raise corrupt("truncated body") from None
    return Pose(header, body)


def check_pose(pose, name: str = "pose", require_hands: bool = True) -> None:
    """Raise `dnnlib.UserError` unless `pose` is a usable MediaPipe Holistic pose (full or reduced)
    with at least one frame and one person (and, with `require_hands`, a hand in some frame)."""
    comps = {c.name: c for c in pose.header.components}
    missing = [c for c in COMPONENTS if c not in comps]
    if missing:
        raise dnnlib.UserError(f"Unsupported pose format in {name}: found components "
                               f"{', '.join(comps) or 'none'}, missing {', '.join(missing)}; {FORMAT_HELP}")
    problems = []
    absent = [p for p in BODY_POINTS if p not in comps[BODY].points]
    if absent:
        problems.append(f"{BODY} lacks {', '.join(absent)}")
    face_points = set(comps[FACE].points)
    if not set(face_contour_points()) <= face_points:
        problems.append(f"{FACE} has {len(comps[FACE].points)} points, not the mesh or its contour points")
    for hand in (LEFT_HAND, RIGHT_HAND):
        absent = [p for p in HAND_POINTS if p not in comps[hand].points]
        if absent:
            problems.append(f"{hand} lacks {', '.join(absent[:3])}{'...' if len(absent) > 3 else ''}")
    if len(comps[BODY].format) < 3:
        problems.append(f"points have no x, y (format {comps[BODY].format})")
    if problems:
        raise dnnlib.UserError(f"Unsupported pose format in {name}: {'; '.join(problems)}; {FORMAT_HELP}")

    shape = pose.body.data.shape
    if shape[0] == 0:
        raise dnnlib.UserError(f"Pose {name} has zero frames; nothing to render")
    if shape[1] == 0:
        raise dnnlib.UserError(f"Pose {name} has no person in any frame")
    if require_hands:
        conf = np.asarray(pose.body.confidence)[:, 0]
        hand_idx = [pose.header.get_point_index(h, p) for h in (LEFT_HAND, RIGHT_HAND) for p in HAND_POINTS]
        if not np.any(conf[:, hand_idx] > 0):
            raise dnnlib.UserError(f"Pose {name} has no hand in any of its {shape[0]} frames; "
                                   f"a signing pose needs {LEFT_HAND} or {RIGHT_HAND} in some frame")

#----------------------------------------------------------------------------
# Reduction and normalization (shared with the pose-consistency metric).

def prepare_pose(pose, normalize: bool = True, name: str = "pose", wrists: bool = True):
    """Reduce, correct and normalize a Holistic pose the project's one way.

    `reduce_holistic` (a no-op on reduced poses) keeps 8 body, 128 face-contour and 2x21 hand
    points and drops world landmarks; `correct_wrists` moves the body's wrists onto the hands'
    WRIST points where a hand was found (skipped with `wrists=False`); with `normalize`,
    `Pose.normalize(pose_normalization_info)` moves the sequence's mean shoulder midpoint to 0
    and scales its mean shoulder distance to 1.
    Returns a new Pose (the input is not changed). Raises `dnnlib.UserError` when the shoulders
    are never found or coincide."""
    from pose_format.utils.generic import correct_wrists, pose_normalization_info, reduce_holistic
    check_pose(pose, name, require_hands=False)
    try:
        reduced = reduce_holistic(pose)
    except ValueError as e:
        raise dnnlib.UserError(f"Unsupported pose format in {name}: {e}; {FORMAT_HELP}") from None
    if wrists:
        reduced = correct_wrists(reduced)
    if not normalize:
        return reduced
    info = pose_normalization_info(reduced.header)
    data = reduced.body.data[:, 0]
    conf = np.asarray(reduced.body.confidence)[:, 0]
    both = (conf[:, info.p1] > 0) & (conf[:, info.p2] > 0)
    if not both.any():
        raise dnnlib.UserError(f"Pose {name}: the shoulders are not found in any frame; cannot normalize")
    dist = np.linalg.norm(np.asarray(data[both, info.p1] - data[both, info.p2], dtype=np.float64), axis=-1).mean()
    if not np.isfinite(dist) or dist < 1e-6:
        raise dnnlib.UserError(f"Pose {name}: the shoulders coincide; cannot normalize")
    return reduced.normalize(info)

#----------------------------------------------------------------------------
# Feature specification.

SPEC_VERSION = 1


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """How poses become features; stored with a model (`to_dict()`) and re-applied at inference.

    Layout of one frame: for each component, for each point, `dims` (x, y), then one presence
    flag per component. `fps=None` keeps the pose's own frame rate."""
    components: tuple[tuple[str, tuple[str, ...]], ...]
    fps: float | None = None
    dims: tuple[str, ...] = ("x", "y")
    presence: bool = True
    normalization: str = "shoulders"
    version: int = SPEC_VERSION

    @property
    def num_coords(self) -> int:
        return sum(len(points) for _, points in self.components) * len(self.dims)

    @property
    def num_features(self) -> int:
        return self.num_coords + (len(self.components) if self.presence else 0)

    def feature_names(self) -> list[str]:
        """One name per column, e.g. 'POSE_LANDMARKS/LEFT_SHOULDER/x', 'present/FACE_LANDMARKS'."""
        names = [f"{c}/{p}/{d}" for c, points in self.components for p in points for d in self.dims]
        if self.presence:
            names += [f"present/{c}" for c, _ in self.components]
        return names

    def column_slices(self) -> dict[str, slice]:
        """Columns of each component's coordinates."""
        out, start = {}, 0
        for c, points in self.components:
            n = len(points) * len(self.dims)
            out[c] = slice(start, start + n)
            start += n
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (save it with the model)."""
        return {
            "version": self.version,
            "format": "mediapipe-holistic",
            "components": [{"name": c, "points": list(points)} for c, points in self.components],
            "dims": list(self.dims),
            "fps": self.fps,
            "normalization": self.normalization,
            "normalization_detail": "reduce_holistic, correct_wrists, Pose.normalize(pose_normalization_info): "
                                    "sequence mean shoulder midpoint -> 0, mean shoulder distance -> 1",
            "presence": self.presence,
            "missing": "missing points are 0; presence flag per component per frame (1 found, 0 not)",
            "layout": {"order": "component, point, dim; then presence flags",
                       "coords": [0, self.num_coords],
                       "presence": [self.num_coords, len(self.components) if self.presence else 0],
                       "num_features": self.num_features},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | "FeatureSpec") -> "FeatureSpec":
        """Inverse of `to_dict` (accepts a FeatureSpec as is). Raises `dnnlib.UserError` for a
        spec this code cannot apply (another version or format)."""
        if isinstance(d, FeatureSpec):
            return d
        try:
            version = int(d["version"])
            if version != SPEC_VERSION:
                raise dnnlib.UserError(f"Pose feature spec version {version} is not supported (this code applies "
                                       f"version {SPEC_VERSION}); use a matching version of the toolkit")
            if d.get("normalization", "shoulders") != "shoulders":
                raise dnnlib.UserError(f"Unknown pose normalization {d['normalization']!r} in feature spec")
            spec = cls(components=tuple((c["name"], tuple(c["points"])) for c in d["components"]),
                       fps=None if d.get("fps") is None else float(d["fps"]),
                       dims=tuple(d.get("dims", ("x", "y"))), presence=bool(d.get("presence", True)),
                       normalization="shoulders", version=version)
        except (KeyError, TypeError, ValueError) as e:
            raise dnnlib.UserError(f"Not a pose feature spec ({type(e).__name__}: {e})") from None
        if not set(spec.dims) <= {"x", "y", "z"} or len(spec.dims) == 0:
            raise dnnlib.UserError(f"Bad dims {spec.dims} in pose feature spec")
        layout = d.get("layout", {})
        if "num_features" in layout and int(layout["num_features"]) != spec.num_features:
            raise dnnlib.UserError("Inconsistent pose feature spec: layout.num_features does not match its points")
        return spec


def make_feature_spec(fps: float | None = None, components: Sequence[str] = COMPONENTS,
                      dims: Sequence[str] = ("x", "y")) -> FeatureSpec:
    """The spec used to train a model: the reduced Holistic points of `components` (default: body,
    face contour, both hands), coordinates `dims`, resampled to `fps` (None: keep the pose's rate)."""
    points = {BODY: BODY_POINTS, FACE: face_contour_points(), LEFT_HAND: HAND_POINTS, RIGHT_HAND: HAND_POINTS}
    unknown = [c for c in components if c not in points]
    if unknown:
        raise dnnlib.UserError(f"Unknown pose components {unknown}; choose from {', '.join(COMPONENTS)}")
    if fps is not None and not fps > 0:
        raise dnnlib.UserError(f"Bad feature frame rate {fps}; give a positive number or None")
    if not set(dims) <= {"x", "y", "z"} or len(dims) == 0:
        raise dnnlib.UserError(f"Bad dims {dims}; use a subset of x, y, z")
    return FeatureSpec(components=tuple((c, tuple(points[c])) for c in components),
                       fps=None if fps is None else float(fps), dims=tuple(dims))

#----------------------------------------------------------------------------
# Features.

def features_from_pose(pose, spec: FeatureSpec | dict[str, Any], name: str = "pose",
                       pose_fps: float | None = None) -> np.ndarray:
    """Features of a pose under a given spec: `[T', F]` float32, `F = spec.num_features`.

    Coordinates are in shoulder widths around the sequence's mean shoulder midpoint (typically
    within about +-3), missing points 0; presence flags are 0 or 1. `T'` is the pose's frame count,
    or `round(T * spec.fps / pose_fps)` when `spec.fps` is set (see `resample_features`).
    `pose_fps` overrides the frame rate in the pose's header (for poses that have none)."""
    spec = FeatureSpec.from_dict(spec)
    prepared = prepare_pose(pose, name=name)
    header = prepared.header
    dim_index = {"x": 0, "y": 1, "z": 2}
    dims = [dim_index[d] for d in spec.dims]
    if max(dims) >= header.num_dims():
        raise dnnlib.UserError(f"Pose {name} has {header.num_dims()} coordinates per point; the spec needs {spec.dims}")

    data = np.ma.getdata(prepared.body.data)[:, 0].astype(np.float32)       # [T, P, D]
    mask = np.ma.getmaskarray(prepared.body.data)[:, 0].any(-1)             # [T, P]
    conf = np.asarray(prepared.body.confidence, dtype=np.float32)[:, 0]     # [T, P]
    num_frames = data.shape[0]
    coords, flags = [], []
    for comp, points in spec.components:
        try:
            idx = [header.get_point_index(comp, p) for p in points]
        except ValueError:
            raise dnnlib.UserError(f"Pose {name} lacks points of {comp} that the model's feature spec needs; "
                                   f"{FORMAT_HELP}") from None
        xy = data[:, idx][:, :, dims]                                         # [T, n, len(dims)]
        found = (conf[:, idx] > 0) & ~mask[:, idx] & np.isfinite(xy).all(-1)  # [T, n]
        xy = np.where(found[..., None], xy, 0.0)
        coords.append(xy.reshape(num_frames, -1))
        flags.append(found.any(axis=1, keepdims=True).astype(np.float32))
    feats = np.concatenate(coords + (flags if spec.presence else []), axis=1).astype(np.float32)
    assert feats.shape[1] == spec.num_features

    if spec.fps is not None:
        fps_in = float(pose.body.fps if pose_fps is None else pose_fps)
        if not fps_in > 0:
            raise dnnlib.UserError(f"Pose {name} has frame rate {fps_in}; cannot resample it to {spec.fps} fps")
        feats = resample_features(feats, spec, fps_in, spec.fps)
    return feats


def extract_features(pose, fps: float | None = None, name: str = "pose") -> tuple[np.ndarray, FeatureSpec]:
    """`make_feature_spec(fps)` and `features_from_pose` in one call: `([T', F] float32, spec)`."""
    spec = make_feature_spec(fps=fps)
    return features_from_pose(pose, spec, name=name), spec


def resample_features(feats: np.ndarray, spec: FeatureSpec | dict[str, Any], fps_in: float, fps_out: float) -> np.ndarray:
    """Resample `[T, F]` features from `fps_in` to `fps_out`: `round(T * fps_out / fps_in)` frames
    (at least 1) at times `k / fps_out`. A component present in both neighbouring input frames is
    interpolated linearly; otherwise it takes the nearer frame's values and presence flag."""
    spec = FeatureSpec.from_dict(spec)
    if not (math.isfinite(fps_in) and math.isfinite(fps_out) and fps_in > 0 and fps_out > 0):
        raise ValueError(f"Frame rates must be positive and finite, got {fps_in} -> {fps_out}")
    feats = np.asarray(feats, dtype=np.float32)
    num_in = feats.shape[0]
    if abs(fps_in - fps_out) < 1e-9 * max(fps_in, 1.0) or num_in == 0:
        return feats.copy()
    num_out = max(1, int(round(num_in * fps_out / fps_in)))
    t = np.minimum(np.arange(num_out) * (fps_in / fps_out), num_in - 1)
    i0 = np.floor(t).astype(int)
    i1 = np.minimum(i0 + 1, num_in - 1)
    a = (t - i0).astype(np.float32)[:, None]
    nearest = np.where(a[:, 0] < 0.5, i0, i1)
    out = feats[nearest].copy()
    lerp = feats[i0] * (1 - a) + feats[i1] * a
    slices = spec.column_slices()
    for k, (comp, _points) in enumerate(spec.components):
        cols = slices[comp]
        if spec.presence:
            flag = spec.num_coords + k
            both = (feats[i0, flag] > 0) & (feats[i1, flag] > 0)
        else:
            both = np.ones(num_out, dtype=bool)
        out[both, cols] = lerp[both, cols]
    return out

#----------------------------------------------------------------------------

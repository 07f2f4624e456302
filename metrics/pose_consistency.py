"""Pose consistency: how faithfully a video follows the pose it was rendered from.

The definition of `shared/spec/interop.md`, section 9: estimate the pose of every frame of the
video with MediaPipe Holistic (pose-format's holistic utilities, `utils.pose_estimation`); reduce
the input and the estimate with `reduce_holistic`, apply `correct_wrists`, and normalize each
with `pose_normalization_info` (shoulders) -- the front end's `prepare_pose`. Then per component
(body, face, left hand, right hand):

- MAE: mean over frames and points present in both (confidence > 0) of |dx| + |dy|, in shoulder
  widths;
- detection rate: frames where the estimate has the component / frames where the input has it
  (a component is present in a frame when any of its points has confidence > 0).

Frames are paired by time (frame k of the estimate, at time k / fps, with the input frame on screen
then), which is frame by frame when both have the same rate; unpaired trailing frames are left out.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable

import numpy as np

import dnnlib
from utils import pose_features

log = logging.getLogger(__name__)

COMPONENT_KEYS = {
    pose_features.BODY: "body",
    pose_features.FACE: "face",
    pose_features.LEFT_HAND: "left_hand",
    pose_features.RIGHT_HAND: "right_hand",
}

#----------------------------------------------------------------------------

def _as_pose(pose_or_path: Any, name: str):
    if isinstance(pose_or_path, (str, os.PathLike, bytes, bytearray)):
        return pose_features.load_pose(pose_or_path, require_hands=False)
    return pose_or_path


def _component_arrays(prepared, comp: str, points: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """x, y `[T, n, 2]` and found `[T, n]` of the named points of one component."""
    idx = [prepared.header.get_point_index(comp, p) for p in points]
    xy = np.ma.getdata(prepared.body.data)[:, 0][:, idx, :2].astype(np.float64)
    found = np.asarray(prepared.body.confidence)[:, 0][:, idx] > 0
    found &= ~np.ma.getmaskarray(prepared.body.data)[:, 0][:, idx].any(-1)
    found &= np.isfinite(xy).all(-1)
    return xy, found


def pose_consistency(input_pose: Any, estimated_pose: Any, wrists: bool = True) -> dict[str, Any]:
    """Compare a video's estimated pose with the pose it should follow (spec section 9).

    Args:
        input_pose: the pose the video was rendered from (`pose_format.Pose`, path or bytes;
            full or reduced Holistic).
        estimated_pose: MediaPipe Holistic pose of the video's frames (Pose, path or bytes).
        wrists: apply `correct_wrists` (the definition; False reproduces figures computed without it).

    Returns a JSON-serialisable dict: `<key>_mae`, `<key>_detection` (the spec's rate: frames the
    estimate has the part / frames the input has it; above 1 when the estimate finds the part where
    the input has none) and `<key>_matched` (the share of the input's frames with the part where the
    estimate has it too, at most 1) for key in body, face, left_hand, right_hand (None when there is
    nothing to compare), `num_frames` (paired frames),
    `num_frames_input`, `num_frames_estimated`, per component details under `components`, and
    under `per_frame` for each key: `mae` (one value per paired frame: the mean error of the
    points found in both, None where there are none or no person was found) and `missed` (the
    paired frames where the input has the part and the estimate does not).
    """
    inp = _as_pose(input_pose, "input pose")
    est = _as_pose(estimated_pose, "estimated pose")
    a = pose_features.prepare_pose(inp, name="input pose", wrists=wrists)
    try:
        b = pose_features.prepare_pose(est, name="estimated pose", wrists=wrists)
        b_normalized = True
    except dnnlib.UserError as e:  # no person found in the video: nothing to measure but detection
        log.warning("Pose consistency: %s", e)
        b = pose_features.prepare_pose(est, name="estimated pose", wrists=wrists, normalize=False)
        b_normalized = False

    # Pair frames by time.
    fps_in, fps_est = float(inp.body.fps or 0), float(est.body.fps or 0)
    n_in, n_est = a.body.data.shape[0], b.body.data.shape[0]
    k = np.arange(n_est)
    if fps_in > 0 and fps_est > 0 and abs(fps_in - fps_est) > 1e-6:
        j = np.floor(k * fps_in / fps_est + 1e-6).astype(int)  # the input frame on screen at time k / fps_est
    else:
        j = k
    keep = j < n_in
    k, j = k[keep], j[keep]
    if n_in != n_est:
        log.warning("Pose consistency: the input has %d frames (%.3g fps), the estimate %d (%.3g fps); "
                    "comparing %d paired frames", n_in, fps_in, n_est, fps_est, len(k))

    spec = pose_features.make_feature_spec()
    result: dict[str, Any] = {"num_frames": int(len(k)), "num_frames_input": int(n_in),
                              "num_frames_estimated": int(n_est), "wrists_corrected": bool(wrists),
                              "components": {}, "per_frame": {}}
    for comp, points in spec.components:
        xa, fa = _component_arrays(a, comp, points)
        xb, fb = _component_arrays(b, comp, points)
        xa, fa, xb, fb = xa[j], fa[j], xb[k], fb[k]
        both = fa & fb
        in_frames = int(fa.any(1).sum())
        est_frames = int(fb.any(1).sum())
        mae = None
        frame_mae: list[float | None] = [None] * len(k)
        if b_normalized and both.any():
            err = np.where(both, np.abs(xa - xb).sum(-1), 0.0)
            mae = float(err[both].mean())
            counts = both.sum(1)
            frame_mae = [float(e / c) if c else None for e, c in zip(err.sum(1), counts)]
        both_frames = int((fa.any(1) & fb.any(1)).sum())
        detection = est_frames / in_frames if in_frames > 0 else None
        matched = both_frames / in_frames if in_frames > 0 else None
        key = COMPONENT_KEYS[comp]
        result[f"{key}_mae"] = mae
        result[f"{key}_detection"] = detection
        result[f"{key}_matched"] = matched
        result["per_frame"][key] = {"mae": frame_mae,
                                    "missed": np.flatnonzero(fa.any(1) & ~fb.any(1)).tolist()}
        result["components"][comp] = {"mae": mae, "detection_rate": detection, "frames_input": in_frames,
                                      "frames_estimated": est_frames,
                                      "frames_both": both_frames,
                                      "points_compared": int(both.sum())}
    return result


def video_pose_consistency(video_path_or_frames: str | os.PathLike | Iterable[np.ndarray], input_pose: Any, *,
                           fps: float | None = None, wrists: bool = True, progress: bool | None = None,
                           estimated_pose_path: str | os.PathLike | None = None,
                           **estimation_kwargs) -> dict[str, Any]:
    """Pose consistency of a video (file, or iterable of `[H, W, 3]` uint8 RGB frames) with the
    pose it was rendered from. The frames' pose is estimated with MediaPipe Holistic (see
    `utils.pose_estimation`); with `estimated_pose_path` it is also written there (atomic).
    `fps` is the frames' rate when frames are given (default: the input pose's). Returns the dict
    of `pose_consistency`."""
    from utils import pose_estimation
    inp = _as_pose(input_pose, "input pose")
    if isinstance(video_path_or_frames, (str, os.PathLike)):
        est = pose_estimation.estimate_video_pose(video_path_or_frames, None, progress=progress, **estimation_kwargs)
    else:
        it = iter(video_path_or_frames)
        try:
            first = np.asarray(next(it))
        except StopIteration:
            raise dnnlib.UserError("No frames to measure pose consistency on") from None

        def frames():
            yield first
            yield from it

        h, w = first.shape[:2]
        est = pose_estimation.estimate_frames_pose(frames(), fps=fps or float(inp.body.fps), width=w, height=h,
                                                   progress=progress, **estimation_kwargs)
    if estimated_pose_path is not None:
        pose_estimation.write_pose(est, estimated_pose_path)
    return pose_consistency(inp, est, wrists=wrists)

#----------------------------------------------------------------------------

def combine_consistency(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Pool the figures of several `pose_consistency` results (one per video) into one set, as if
    the videos were one: each MAE weighted by the points it compared, detection and matched rates
    from the summed frame counts. Returns the same keys (`<key>_mae`, `<key>_detection`,
    `<key>_matched`, `num_frames`, ..., `components`) plus `num_videos`."""
    results = list(results)
    out: dict[str, Any] = {"num_videos": len(results), "components": {}}
    for name in ("num_frames", "num_frames_input", "num_frames_estimated"):
        out[name] = int(sum(r.get(name, 0) for r in results))
    for comp, key in COMPONENT_KEYS.items():
        parts = [r["components"][comp] for r in results if comp in r.get("components", {})]
        frames_in = sum(p["frames_input"] for p in parts)
        frames_est = sum(p["frames_estimated"] for p in parts)
        frames_both = sum(p.get("frames_both", 0) for p in parts)
        measured = [p for p in parts if p["mae"] is not None and p["points_compared"] > 0]
        points = sum(p["points_compared"] for p in measured)
        mae = float(sum(p["mae"] * p["points_compared"] for p in measured) / points) if points else None
        detection = frames_est / frames_in if frames_in > 0 else None
        matched = frames_both / frames_in if frames_in > 0 else None
        out[f"{key}_mae"], out[f"{key}_detection"], out[f"{key}_matched"] = mae, detection, matched
        out["components"][comp] = {"mae": mae, "detection_rate": detection, "frames_input": frames_in,
                                   "frames_estimated": frames_est, "frames_both": frames_both,
                                   "points_compared": points}
    return out

#----------------------------------------------------------------------------

def plot_consistency(fig: dict[str, Any], path: str, title: str | None = None) -> None:
    """Draw the per-frame figures of one `pose_consistency` result as a PNG (atomic): for each part
    the input shows, its error per frame (shoulder widths) over time, with a tick under the plot at
    each frame where MediaPipe missed it."""
    import matplotlib.figure  # a Figure of its own, not pyplot: draws to the file, leaves the caller's backend alone

    per_frame = fig.get("per_frame") or {}
    names = {key: comp for comp, key in COMPONENT_KEYS.items()}
    parts = [key for key in COMPONENT_KEYS.values()
             if key in per_frame and fig.get(f"{key}_matched") is not None]  # parts the input shows
    figure = matplotlib.figure.Figure(figsize=(10, 1.0 + 1.2 * max(1, len(parts))), dpi=100)
    axes = figure.subplots(max(1, len(parts)), 1, sharex=True, squeeze=False)[:, 0]
    n = int(fig.get("num_frames", 0))
    for ax, key in zip(axes, parts):
        mae = np.array([np.nan if v is None else v for v in per_frame[key]["mae"]], dtype=np.float64)
        ax.plot(np.arange(len(mae)), mae, lw=1.2, marker=".", ms=4, color="tab:blue")  # dots: lone frames show
        missed = per_frame[key]["missed"]
        if missed:
            ax.plot(missed, np.zeros(len(missed)), "|", color="tab:red", ms=10, mew=1.5, clip_on=False)
        summary = fig.get(f"{key}_mae")
        n_in = fig.get("components", {}).get(names[key], {}).get("frames_input")
        shown = f"the {n_in} frames the input shows it" if n_in is not None else "the frames the input shows it"
        ax.set_ylabel(key.replace("_", " "), rotation=0, ha="right", va="center")
        ax.set_ylim(bottom=0, top=max(0.1, float(np.nanmax(mae)) * 1.1) if np.isfinite(mae).any() else 1.0)
        ax.text(1.0, 1.0, f"MAE {summary:.3f}, found in {fig[f'{key}_matched']:.0%} of {shown}"
                if summary is not None else f"not found in any of {shown}",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=8)
        ax.grid(alpha=0.3)
    if not parts:
        axes[0].text(0.5, 0.5, "the input shows no part to compare", ha="center", va="center")
    axes[-1].set_xlabel("frame" + (f" (of {n}; red ticks: part not found in the render)" if parts else ""))
    axes[-1].set_xlim(0, max(1, n - 1))
    figure.suptitle(title or "Pose consistency: error per frame, in shoulder widths", fontsize=10)
    figure.tight_layout()
    with dnnlib.util.atomic_write(path) as f:
        figure.savefig(f, format="png")

#----------------------------------------------------------------------------

"""Draw poses as RGB images with pose-format's `PoseVisualizer` (for side-by-side videos and
dataset previews).

`render_pose(pose, size=(W, H))` yields one `[H, W, 3]` uint8 RGB image per frame; the pose's
pixel coordinates (in its header's width x height) are scaled uniformly to fit `size` and
centred. World landmarks (metres, not pixels) are not drawn.
"""

from __future__ import annotations

import itertools
import math
from typing import Iterator

import numpy as np

#----------------------------------------------------------------------------

def _drawable_pose(pose, size: tuple[int, int] | None, start: int = 0, stop: int | None = None):
    """A copy of `pose` without world landmarks, frames [start, stop), coordinates fitted to `size`."""
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderDimensions

    keep = [c.name for c in pose.header.components if "WORLD" not in c.name]
    if len(keep) != len(pose.header.components):
        pose = pose.get_components(keep)
    data = np.ma.getdata(pose.body.data)[start:stop].astype(np.float32)
    conf = np.asarray(pose.body.confidence, dtype=np.float32)[start:stop]
    src_w = int(pose.header.dimensions.width) or 1
    src_h = int(pose.header.dimensions.height) or 1
    dst_w, dst_h = (src_w, src_h) if size is None else (int(size[0]), int(size[1]))
    scale = min(dst_w / src_w, dst_h / src_h)
    data = data.copy()
    data[..., 0] = data[..., 0] * scale + (dst_w - src_w * scale) / 2
    data[..., 1] = data[..., 1] * scale + (dst_h - src_h * scale) / 2
    data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    conf = np.where(np.isfinite(conf), conf, 0.0).astype(np.float32)
    dims = PoseHeaderDimensions(width=dst_w, height=dst_h, depth=int(getattr(pose.header.dimensions, "depth", 0) or 0))
    header = PoseHeader(version=pose.header.version, dimensions=dims, components=pose.header.components,
                        is_bbox=pose.header.is_bbox)
    return Pose(header, NumPyPoseBody(fps=pose.body.fps, data=data, confidence=conf))


def render_pose(pose, size: tuple[int, int] | None = None, background: tuple[int, int, int] = (255, 255, 255),
                thickness: int | None = None, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
    """Yield frames `start <= i < stop` of `pose` drawn as `[H, W, 3]` uint8 RGB images.

    Args:
        pose: a `pose_format.Pose` (x, y in pixels of its header's width x height).
        size: output (width, height); default the header's. The pose is scaled uniformly to fit
            and centred.
        background: RGB background colour.
        thickness: line thickness in pixels (default: sqrt(W * H) / 150, at least 1).
    Points with confidence 0 are not drawn; others fade into the background with low confidence.
    """
    from pose_format.pose_visualizer import PoseVisualizer

    drawable = _drawable_pose(pose, size, start, stop)
    if thickness is None:  # the visualizer's own default rounds to 0 (an OpenCV error) below 150 px
        dims = drawable.header.dimensions
        thickness = max(1, round(math.sqrt(dims.width * dims.height) / 150))
    vis = PoseVisualizer(drawable, thickness=thickness)
    bgr = tuple(int(c) for c in background[::-1])  # the visualizer draws in OpenCV's BGR order
    for img in vis.draw(background_color=bgr):
        yield np.ascontiguousarray(img[..., ::-1])


def render_pose_frame(pose, index: int, size: tuple[int, int] | None = None,
                      background: tuple[int, int, int] = (255, 255, 255), thickness: int | None = None) -> np.ndarray:
    """Frame `index` of `pose` drawn as one `[H, W, 3]` uint8 RGB image (see `render_pose`)."""
    num = pose.body.data.shape[0]
    if not -num <= index < num:
        raise IndexError(f"Pose frame {index} out of range (the pose has {num} frames)")
    index %= num
    return next(itertools.islice(render_pose(pose, size, background, thickness, start=index, stop=index + 1), 1))

#----------------------------------------------------------------------------

"""Cut a contact sheet (a grid of frames separated by uniform lines) into a short video.

The tiles become the frames of an mp4, so the rest of the data preparation treats them like any
other footage: `utils.pose_estimation.estimate_video_pose` estimates their poses and
`utils/video_to_images.py` crops them around the signer. The separator lines are found in the
image (rows and columns whose pixels all have the colour of the top-left pixel, within a
tolerance); tiles are cut to the size of the smallest one.

    python utils/grid_to_video.py --input=../shared/data/biu-mg-frames-grid.png --rows=4 --cols=4 --output=grid.mp4
"""

from __future__ import annotations

import logging
import os
import sys

import click
import numpy as np
import PIL.Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dnnlib  # noqa: E402
from utils.video_io import VideoWriter  # noqa: E402

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------

def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of the runs of False in a 1-D boolean mask (the spans between separators)."""
    spans, start = [], None
    for i, is_line in enumerate(mask):
        if not is_line and start is None:
            start = i
        if is_line and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(mask)))
    return spans


def split_grid(image: np.ndarray, rows: int, cols: int, tolerance: int = 8) -> list[np.ndarray]:
    """Tiles of a grid image [H, W, 3] uint8, row by row, all cut to the smallest tile's size.

    Separator lines are full rows/columns of the top-left pixel's colour (+- `tolerance`). Raises
    `dnnlib.UserError` when the grid does not split into `rows` x `cols` tiles."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise dnnlib.UserError(f"Expected an RGB image, got an array of shape {image.shape}")
    line_colour = image[0, 0].astype(int)
    is_line_pixel = (np.abs(image.astype(int) - line_colour) <= tolerance).all(axis=2)
    row_spans = _runs(is_line_pixel.all(axis=1))
    col_spans = _runs(is_line_pixel.all(axis=0))
    if len(row_spans) != rows or len(col_spans) != cols:
        raise dnnlib.UserError(f"The grid splits into {len(row_spans)} x {len(col_spans)} tiles along its separator "
                               f"lines, not {rows} x {cols}; check --rows/--cols")
    h = min(b - a for a, b in row_spans)
    w = min(b - a for a, b in col_spans)
    return [image[r0:r0 + h, c0:c0 + w] for r0, _ in row_spans for c0, _ in col_spans]

#----------------------------------------------------------------------------

@click.command()
@click.option("--input", "input_path", help="Grid image (PNG, JPEG, ...)", metavar="FILE", required=True)
@click.option("--rows", help="Tiles per column", type=click.IntRange(min=1), required=True)
@click.option("--cols", help="Tiles per row", type=click.IntRange(min=1), required=True)
@click.option("--output", help="Video to write (.mp4)", metavar="FILE", required=True)
@click.option("--fps", help="Frame rate of the video", type=dnnlib.util.finite_float(min=0, min_open=True),
              default=25.0,
              show_default=True)
@click.option("--crf", help="x264 quality (0 lossless .. 51)", type=click.IntRange(0, 51), default=10,
              show_default=True)
@dnnlib.util.cli_main
def main(input_path: str, rows: int, cols: int, output: str, fps: float, crf: int) -> None:
    """Cut a grid of frames into a video, one tile per frame."""
    if not os.path.isfile(input_path):
        raise dnnlib.UserError(f"Grid image not found: {input_path}")
    try:
        image = np.array(PIL.Image.open(input_path).convert("RGB"))
    except (OSError, PIL.UnidentifiedImageError) as e:
        raise dnnlib.UserError(f"Cannot read grid image {input_path}: {e}") from None
    tiles = split_grid(image, rows, cols)
    with VideoWriter(output, fps=fps, crf=crf) as writer:
        for tile in tiles:
            writer.write(tile)
    h, w = tiles[0].shape[:2]
    print(f"Wrote {len(tiles)} frames of {w}x{h} to {output}")


if __name__ == "__main__":
    main()

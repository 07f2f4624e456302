"""Cut a contact sheet (a grid of frames separated by uniform lines) into a short video.

The tiles become the frames of an mp4, so the rest of the data preparation treats them like any
other footage: `utils.pose_estimation.estimate_video_pose` estimates their poses and
`utils/video_to_images.py` crops them around the signer.

The separator lines are found in the image. First as rows and columns whose pixels all have the
colour of the top-left pixel (within a tolerance), the tiles cut to the size of the smallest one:
this is exact for a lossless sheet. A JPEG smears thin lines (chroma subsampling, ringing), so
when that does not give --rows x --cols clean tiles, the lines are inferred from the geometry:
equal tiles between evenly spaced lines of one width, with or without a border (the last tile may
be a line width short), whose rows and columns are the ones nearest the line colour and clearly
nearer it than any row or column of the tiles. The line colour is the top-left pixel's or, for a
sheet without a border, that of the most uniform rows and columns. A picture that is not such a
grid is refused.

    python utils/grid_to_video.py --input=../shared/data/biu-mg-frames-grid.png --rows=4 --cols=4 --output=grid.mp4
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator

import click
import numpy as np
import PIL.Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dnnlib  # noqa: E402
from utils.video_io import VideoWriter  # noqa: E402

log = logging.getLogger(__name__)

_MAX_LINE = 64  # the widest separator line or border (pixels) that the layout search considers
_GAP = 2  # every tile row and column is more than this many times farther from the line colour than the lines

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


def _layout(distance: np.ndarray, count: int, floor: float) -> tuple[int, int, int, float] | None:
    """(first tile's start, stride, tile size, farthest line row's distance) of `count` equal tiles along one
    axis, or None when no layout fits.

    `distance` [N] is each row's (or column's) mean distance to the line colour. The layouts: tiles of size t
    between lines of width g, a leading border of a and a trailing one of b pixels, N = a + count*t +
    (count-1)*g + b (b < 0: the last tile is short by -b <= g; the tiles are all cut to its size). A layout
    fits when its line and border rows are the rows nearest the line colour and every tile row is more than
    `_GAP` times farther than the farthest of them (and than `floor`, the distance that JPEG noise can reach).
    Of those, the one with the most line rows wins, so that the smeared edges of the lines stay out of the
    tiles."""
    n = len(distance)
    g, a, b = (x.ravel() for x in np.meshgrid(np.arange(1, _MAX_LINE + 1), np.arange(_MAX_LINE + 1),
                                              np.arange(-_MAX_LINE, _MAX_LINE + 1), indexing="ij"))
    t, rest = np.divmod(n - a - b - (count - 1) * g, count)
    keep = (b >= -g) & (rest == 0) & (t > g)
    g, a, b, t = g[keep], a[keep], b[keep], t[keep]
    trail = np.maximum(b, 0)
    # farthest[w, i]: the largest distance among rows i .. i+w-1 (-inf for w = 0).
    farthest = np.full((_MAX_LINE + 1, n), -np.inf)
    for w in range(1, min(_MAX_LINE, n) + 1):
        farthest[w, :n - w + 1] = np.maximum(farthest[w - 1, :n - w + 1], distance[w - 1:])
    k = np.arange(1, count)
    line_starts = a[:, None] + k * t[:, None] + (k - 1) * g[:, None]
    worst = np.maximum.reduce([farthest[g[:, None], line_starts].max(axis=1, initial=-np.inf), farthest[a, 0],
                               farthest[trail, np.where(trail > 0, n - trail, 0)]])
    num_lines = a + trail + (count - 1) * g
    nearest = np.sort(distance)
    fits = (worst <= nearest[np.maximum(num_lines - 1, 0)]) & (nearest[num_lines] > _GAP * np.maximum(worst, floor))
    if not fits.any():
        return None
    best = np.flatnonzero(fits)[np.argmax(num_lines[fits])]
    return int(a[best]), int(t[best] + g[best]), int(t[best] + min(b[best], 0)), float(worst[best])


def _line_colours(image: np.ndarray, corner: np.ndarray, tolerance: int) -> Iterator[np.ndarray]:
    """Candidate separator colours [3] int16: the top-left pixel, then the mean colours of the two most uniform
    rows or columns that differ from it and from each other by more than 4 * `tolerance` (the lines of a
    sheet without a border)."""
    yield corner
    x = image.astype(np.float32)
    means = [x.mean(axis=axis) for axis in (1, 0)]
    spreads = [np.sqrt(np.maximum((x * x).mean(axis=axis) - m * m, 0)).max(axis=1) for axis, m in zip((1, 0), means)]
    means, spreads = np.concatenate(means), np.concatenate(spreads)
    found = [corner]
    for i in np.argsort(spreads, kind="stable"):
        colour = np.round(means[i]).astype(np.int16)
        if all(np.abs(colour - c).max() > 4 * tolerance for c in found):
            yield colour
            found.append(colour)
            if len(found) == 3:
                return


def _clear_of_lines(distance: np.ndarray, starts: list[int], size: int, floor: float) -> bool:
    """Whether every row of the tiles [start, start + size) is more than `_GAP` * `floor` from the line colour
    (`distance` [N]: each row's mean distance)."""
    return all(distance[s:s + size].min() > _GAP * floor for s in starts)


def _trim(distance: np.ndarray, count: int, start: int, stride: int, size: int) -> tuple[int, int]:
    """(start, size) of the tiles without their first and/or last row when that row is, on average over the
    tiles, nearer the line colour than 3/4 of the median row (a line edge smeared into the tiles)."""
    starts = start + stride * np.arange(count)
    smeared = 0.75 * float(np.median(distance))
    if size > 2 and distance[starts + size - 1].mean() < smeared:
        size -= 1
    if size > 2 and distance[starts].mean() < smeared:
        start, size = start + 1, size - 1
    return start, size


def split_grid(image: np.ndarray, rows: int, cols: int, tolerance: int = 8) -> list[np.ndarray]:
    """Tiles of a grid image [H, W, 3] uint8, row by row, all of one size.

    First try: separator lines are full rows/columns of the top-left pixel's colour (+- `tolerance`), and the
    tiles are cut to the smallest tile's size. That is kept when it gives `rows` x `cols` tiles none of whose
    rows or columns comes, on average, within 4 * `tolerance` of the line colour (the smeared edge of a line
    in a JPEG would). Otherwise the lines are found from the geometry (`_layout`: equal tiles between evenly
    spaced lines whose rows and columns are clearly nearer the line colour than any of the tiles'), for the
    top-left pixel's colour, then for the colours of the most uniform rows and columns (a sheet without a
    border). Raises `dnnlib.UserError` when no `rows` x `cols` layout fits."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise dnnlib.UserError(f"Expected an RGB image, got an array of shape {image.shape}")
    corner = image[0, 0].astype(np.int16)
    distance = np.abs(image.astype(np.int16) - corner).max(axis=2)  # [H, W] 0 .. 255
    is_line_pixel = distance <= tolerance
    row_spans = _runs(is_line_pixel.all(axis=1))
    col_spans = _runs(is_line_pixel.all(axis=0))
    if len(row_spans) == rows and len(col_spans) == cols:
        h = min(b - a for a, b in row_spans)
        w = min(b - a for a, b in col_spans)
        ys, xs = [a for a, _ in row_spans], [a for a, _ in col_spans]
        if (_clear_of_lines(distance.mean(axis=1), ys, h, 2 * tolerance)
                and _clear_of_lines(distance.mean(axis=0), xs, w, 2 * tolerance)):
            return [image[y:y + h, x:x + w] for y in ys for x in xs]
    for colour in _line_colours(image, corner, tolerance):
        if colour is not corner:
            distance = np.abs(image.astype(np.int16) - colour).max(axis=2)
        profiles, floor = (distance.mean(axis=1), distance.mean(axis=0)), 2.0 * tolerance
        for _ in range(3):  # the lines of both axes set the bar for the tiles of both (a 1 x N sheet has no rows')
            layouts = [_layout(p, n, floor) for p, n in zip(profiles, (rows, cols))]
            if None in layouts:
                break
            (y0, dy, h, worst_y), (x0, dx, w, worst_x) = layouts
            if max(worst_y, worst_x) <= floor:
                y0, h = _trim(profiles[0], rows, y0, dy, h)
                x0, w = _trim(profiles[1], cols, x0, dx, w)
                log.info("Separator lines of colour %s found from the layout: %dx%d tiles every %d px down and %d "
                         "px across", tuple(colour.tolist()), w, h, dy, dx)
                return [image[y0 + r * dy:y0 + r * dy + h, x0 + c * dx:x0 + c * dx + w]
                        for r in range(rows) for c in range(cols)]
            floor = max(worst_y, worst_x)
    edges = " some with line-coloured edges" if (len(row_spans), len(col_spans)) == (rows, cols) else ""
    raise dnnlib.UserError(f"The grid does not split into {rows} x {cols} tiles: lines of its top-left pixel's "
                           f"colour cut it into {len(row_spans)} x {len(col_spans)} tiles{edges}, and no layout of "
                           f"equal tiles between evenly spaced lines fits; check --rows/--cols")

#----------------------------------------------------------------------------

@click.command()
@click.option("--input", "input_path", help="Grid image (PNG, JPEG, ...)", metavar="FILE", required=True)
@click.option("--rows", help="Rows of tiles in the grid", type=click.IntRange(min=1), required=True)
@click.option("--cols", help="Columns of tiles in the grid", type=click.IntRange(min=1), required=True)
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

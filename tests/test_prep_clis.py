"""utils/grid_to_video.py (a grid of frames becomes a video) and utils/estimate_pose.py (a video's pose)."""

import io
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

import dnnlib
from utils.grid_to_video import split_grid
from utils.video_io import read_video, video_info


def _grid(rows, cols, tile, line, last_short=0):
    """Tiles of distinct colours with white lines before each tile (like the BIU-MG sheet)."""
    h = rows * (tile + line) - last_short
    w = cols * (tile + line) - last_short
    img = np.full([h, w, 3], 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            y, x = line + r * (tile + line), line + c * (tile + line)
            img[y:y + tile, x:x + tile] = (20 * r + 10, 20 * c + 10, 100)
    return img


def test_split_finds_tiles_between_lines():
    tiles = split_grid(_grid(2, 3, tile=10, line=2, last_short=2), rows=2, cols=3)
    assert len(tiles) == 6
    assert all(t.shape == (8, 8, 3) for t in tiles)  # cut to the smallest (last row/column) tile
    assert [tuple(t[0, 0]) for t in tiles[:3]] == [(10, 10, 100), (10, 30, 100), (10, 50, 100)]
    assert tuple(tiles[3][0, 0]) == (30, 10, 100)


def test_wrong_counts_are_a_user_error():
    with pytest.raises(dnnlib.UserError, match="2 x 3 tiles"):
        split_grid(_grid(2, 3, tile=10, line=2), rows=3, cols=3)


# The BIU-MG sheet: a 2-px white line before each 512-px frame, the last row and column of frames 2 px short, so
# every tile is cut to 510 x 510 (what the exact first try of `split_grid` has always returned for the PNG).
_SHEET_TILES = [(y, x) for y in (2, 516, 1030, 1544) for x in (2, 516, 1030, 1544)]


@pytest.fixture(scope="module")
def sheet(data_dir):
    return np.array(PIL.Image.open(data_dir / "biu-mg-frames-grid.png").convert("RGB"))


def _jpeg(image, quality):
    """`image` after a round trip through JPEG (PIL's default 4:2:0 chroma subsampling)."""
    buf = io.BytesIO()
    PIL.Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return np.array(PIL.Image.open(buf).convert("RGB"))


def _mad(tile, ref, dy=0, dx=0, margin=4):
    """Mean absolute difference of `tile` and `ref` shifted by (dy, dx), away from the edges."""
    h, w = tile.shape[:2]
    a = tile[margin:h - margin, margin:w - margin].astype(int)
    return np.abs(a - ref[margin + dy:h - margin + dy, margin + dx:w - margin + dx]).mean()


def _sheet(rows, cols, tile_h, tile_w, line, colour, border):
    """A grid of wavy, distinct tiles (values 60 .. 235) between lines of `line` px of `colour`, with or without
    a border; returns the image and the top-left corner of each tile."""
    b = line if border else 0
    img = np.full([2 * b + rows * tile_h + (rows - 1) * line, 2 * b + cols * tile_w + (cols - 1) * line, 3], colour,
                  np.uint8)
    yy, xx = np.mgrid[0:tile_h, 0:tile_w]
    corners = []
    for r in range(rows):
        for c in range(cols):
            y, x = b + r * (tile_h + line), b + c * (tile_w + line)
            wave = 150 + 60 * np.sin(yy / 2) * np.cos(xx / 2)  # in the luma, which JPEG keeps best
            img[y:y + tile_h, x:x + tile_w] = np.stack([wave, wave, wave + 20 * r + 5 * c - 30], axis=2)
            corners.append((y, x))
    return img, corners


def _in_place(tiles, img, corners, by=1.0, margin=1):
    """Whether each tile matches `img` at its corner `by` times better than one pixel off in any direction."""
    padded = np.pad(img, [(1, 1), (1, 1), (0, 0)], mode="edge")
    for tile, (y, x) in zip(tiles, corners):
        h, w = tile.shape[:2]
        ref = padded[y:y + h + 2, x:x + w + 2]
        shifted = min(_mad(tile, ref, 1 + dy, 1 + dx, margin) for dy, dx in [(-1, 0), (1, 0), (0, -1), (0, 1)])
        if not _mad(tile, ref, 1, 1, margin) * by < shifted:
            return False
    return True


def test_png_grid_tiles_are_the_exact_split(sheet):
    tiles = split_grid(sheet, rows=4, cols=4)
    assert len(tiles) == 16
    for tile, (y, x) in zip(tiles, _SHEET_TILES):
        assert np.array_equal(tile, sheet[y:y + 510, x:x + 510])


@pytest.mark.parametrize("quality", [95, 75, 50])
def test_jpeg_grid_splits_like_the_png(sheet, quality):
    tiles = split_grid(_jpeg(sheet, quality), rows=4, cols=4)
    assert len(tiles) == 16 and all(t.shape == (510, 510, 3) for t in tiles)
    assert all(_mad(tile, sheet[y:y + 510, x:x + 510]) < 4 for tile, (y, x) in zip(tiles, _SHEET_TILES))
    assert _in_place(tiles, sheet, _SHEET_TILES, margin=4)  # a pixel off would show, even on the flat green screen


@pytest.mark.parametrize("border", [True, False])
def test_jpeg_grid_with_black_odd_width_lines(border):
    img, corners = _sheet(3, 4, 48, 40, line=3, colour=0, border=border)
    tiles = split_grid(_jpeg(img, 75), rows=3, cols=4)
    assert len(tiles) == 12 and all(t.shape == (48, 40, 3) for t in tiles)
    assert _in_place(tiles, img, corners, by=2.5)
    assert min(min(t[0].mean(), t[-1].mean(), t[:, 0].mean(), t[:, -1].mean()) for t in tiles) > 60  # no black line


def test_png_grid_without_a_border():
    img, corners = _sheet(2, 3, 30, 50, line=2, colour=255, border=False)  # the top-left pixel is a tile's
    tiles = split_grid(img, rows=2, cols=3)
    assert [t.shape for t in tiles] == [(30, 50, 3)] * 6
    assert all(np.array_equal(t, img[y:y + 30, x:x + 50]) for t, (y, x) in zip(tiles, corners))


def test_jpeg_grid_with_wrong_counts_is_refused(sheet):
    img = _jpeg(sheet[:1030, :1544], 75)  # 2 x 3 frames
    for rows, cols in [(2, 2), (1, 3), (4, 3), (2, 6), (3, 3)]:
        with pytest.raises(dnnlib.UserError, match=f"does not split into {rows} x {cols} tiles"):
            split_grid(img, rows=rows, cols=cols)
    assert len(split_grid(img, rows=2, cols=3)) == 6


@pytest.mark.parametrize("name", ["one frame", "noise"])
def test_a_picture_that_is_no_grid_is_refused(sheet, name):
    if name == "one frame":
        img = sheet[2:512, 2:512]
    else:
        img = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    for picture in (img, _jpeg(img, 75)):
        for rows, cols in [(2, 2), (4, 4), (1, 3)]:
            with pytest.raises(dnnlib.UserError, match="check --rows/--cols"):
                split_grid(picture, rows=rows, cols=cols)


def test_biu_mg_sheet_becomes_16_frames(tmp_path, data_dir, repo_dir):
    out = tmp_path / "grid.mp4"
    res = subprocess.run([sys.executable, "utils/grid_to_video.py", f"--input={data_dir / 'biu-mg-frames-grid.png'}",
                          "--rows=4", "--cols=4", f"--output={out}"], cwd=repo_dir, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    info = video_info(out)
    assert info.num_frames == 16 and (info.width, info.height) == (510, 510)
    first = next(read_video(out))
    sheet = np.array(PIL.Image.open(data_dir / "biu-mg-frames-grid.png").convert("RGB"))
    assert np.abs(first.astype(int) - sheet[2:512, 2:512].astype(int)).mean() < 4  # the first tile, no white line


def test_jpeg_grid_becomes_16_frames(tmp_path, sheet, repo_dir):
    grid = tmp_path / "grid.jpg"
    PIL.Image.fromarray(sheet).save(grid, "JPEG", quality=75)
    out = tmp_path / "grid.mp4"
    res = subprocess.run([sys.executable, "utils/grid_to_video.py", f"--input={grid}", "--rows=4", "--cols=4",
                          f"--output={out}"], cwd=repo_dir, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    info = video_info(out)
    assert info.num_frames == 16 and (info.width, info.height) == (510, 510)
    assert np.abs(next(read_video(out)).astype(int) - sheet[2:512, 2:512].astype(int)).mean() < 4


def test_missing_input_is_one_line(tmp_path, repo_dir):
    res = subprocess.run([sys.executable, "utils/grid_to_video.py", f"--input={tmp_path / 'no.png'}", "--rows=4",
                          "--cols=4", f"--output={tmp_path / 'o.mp4'}"], cwd=repo_dir, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 1 and res.stderr.strip().count("\n") == 0 and "not found" in res.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_estimate_pose_cli_on_grid_video(tmp_path, data_dir, repo_dir):
    video = tmp_path / "grid.mp4"
    subprocess.run([sys.executable, "utils/grid_to_video.py", f"--input={data_dir / 'biu-mg-frames-grid.png'}",
                    "--rows=4", "--cols=4", f"--output={video}"], cwd=repo_dir, check=True, capture_output=True,
                   timeout=120)
    pose_path = tmp_path / "grid.pose"
    res = subprocess.run([sys.executable, "utils/estimate_pose.py", f"--video={video}", f"--output={pose_path}"],
                         cwd=repo_dir, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    from utils.pose_features import load_pose
    pose = load_pose(str(pose_path))
    assert pose.body.data.shape[0] == 16
    assert (pose.body.confidence[:, 0, :33] > 0).any(axis=1).all()  # the signer's body is found in every tile

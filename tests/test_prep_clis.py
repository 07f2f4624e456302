"""utils/grid_to_video.py (a grid of frames becomes a video) and utils/estimate_pose.py (a video's pose)."""

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

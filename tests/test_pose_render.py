"""utils/pose_render.py: drawing poses to RGB images."""

import numpy as np
import pytest

from utils import pose_features, pose_render


@pytest.fixture(scope="module")
def original(data_dir):
    return pose_features.load_pose(data_dir / "testing-original.pose")


def _drawn(img):
    return np.any(img != 255, axis=-1)


def test_render_all_frames(original):
    frames = list(pose_render.render_pose(original, size=(128, 128), stop=5))
    assert len(frames) == 5
    for img in frames:
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        assert 0.01 < _drawn(img).mean() < 0.6
    # World landmarks (metres around 0) are not drawn into the top-left corner.
    assert not any(_drawn(img)[:8, :8].any() for img in frames)


def test_body_is_red_at_the_shoulders(original):
    h = original.header
    i = h.get_point_index("POSE_LANDMARKS", "LEFT_SHOULDER")
    x, y = np.ma.getdata(original.body.data)[10, 0, i, :2]
    img = pose_render.render_pose_frame(original, 10)  # header size 240x240
    assert img.shape == (240, 240, 3)
    patch = img[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3].reshape(-1, 3).astype(int)
    assert np.any((patch[:, 0] > 150) & (patch[:, 1] < 100) & (patch[:, 2] < 100))  # RGB red, not BGR


def test_fit_keeps_aspect_and_centres(original):
    img = pose_render.render_pose_frame(original, 10, size=(480, 240), background=(0, 0, 0))
    assert img.shape == (240, 480, 3)
    drawn = np.any(img != 0, axis=-1)
    cols = np.where(drawn.any(0))[0]
    # The 240x240 pose is centred in the 480 wide image (columns 120..360).
    assert cols.min() >= 110 and cols.max() <= 370
    with pytest.raises(IndexError):
        pose_render.render_pose_frame(original, 97)


def test_small_images(original):
    img = pose_render.render_pose_frame(original, 10, size=(32, 32))
    assert img.shape == (32, 32, 3) and _drawn(img).any()

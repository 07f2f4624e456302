"""utils/video_to_images.py: pose-guided square crops into a dataset archive."""

import io
import json
import math
import os
import subprocess
import sys
import zipfile

import numpy as np
import PIL.Image
import pytest
from pose_format import Pose
from pose_format.numpy import NumPyPoseBody

import dnnlib
from training.dataset import ImageFolderDataset
from utils import pose_estimation, pose_features, video_io
from utils.video_to_images import _Crops, _pose_bytes, archive_name, crop_pose_frame, crop_square, video_to_images

RES = 64


def _shoulders(pose, frame=0):
    h = pose.header
    xy = np.ma.getdata(pose.body.data)[frame, 0, :, :2]
    ls = xy[h.get_point_index("POSE_LANDMARKS", "LEFT_SHOULDER")]
    rs = xy[h.get_point_index("POSE_LANDMARKS", "RIGHT_SHOULDER")]
    return (ls + rs) / 2, float(np.linalg.norm(ls - rs))


def _read_png(z, name):
    return np.asarray(PIL.Image.open(io.BytesIO(z.read(name))))


@pytest.fixture(scope="module")
def clip(data_dir, tmp_path_factory):
    """Frames 40..45 of the pix2pix video and their MediaPipe pose (estimated here)."""
    folder = tmp_path_factory.mktemp("clip")
    video = folder / "clip.mp4"
    with video_io.VideoWriter(video, fps=25, crf=10) as w:
        for frame in video_io.read_video(data_dir / "signer-pix2pix-256.mp4", start=40, stop=46):
            w.write(frame)
    pose_path = folder / "clip.pose"
    pose_estimation.estimate_video_pose(video, pose_path, progress=False)
    return video, pose_path


def test_crop_square_geometry():
    frame = np.zeros((20, 30, 3), np.uint8)
    frame[5:15, 10:20] = 200  # a 10x10 block centred at (15, 10)
    crop = crop_square(frame, 15, 10, 10, 10)
    assert crop.shape == (10, 10, 3) and crop.min() > 190
    crop = crop_square(frame, 15, 10, 20, 20, pad="black")  # twice as large: block in the middle
    assert crop[5:15, 5:15].min() > 190 and crop[:4].max() == 0
    crop = crop_square(frame, 2, 2, 10, 10, pad="edge")  # partly outside: edge pixels repeated
    assert crop.shape == (10, 10, 3)
    assert crop_square(frame, -50, -50, 10, 10) is None


def test_estimated_pose_crops_centre_shoulders(clip, tmp_path):
    video, pose_path = clip
    out, poses = tmp_path / "frames.zip", tmp_path / "poses.zip"
    stats = video_to_images(str(video), str(pose_path), str(out), pose_output_path=str(poses), resolution=RES,
                            progress=False)
    assert stats["frames"] == 6 and stats["images"] == 6 and stats["skipped_no_person"] == 0
    with zipfile.ZipFile(out) as z, zipfile.ZipFile(poses) as zp:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        names = sorted(n for n in z.namelist() if n.endswith(".png"))
        assert names == [archive_name(i) for i in range(6)]
        assert json.loads(z.read("dataset.json")) == {"labels": None}
        index = json.loads(z.read("frames.json"))
        assert [e["frame"] for e in index["images"]] == list(range(6))
        crops = [_read_png(z, n) for n in names]
        assert all(c.shape == (RES, RES, 3) for c in crops)
        for n in names:
            cpose = pose_features.load_pose(zp.read(n.replace(".png", ".pose")), require_hands=False)
            assert (cpose.header.dimensions.width, cpose.header.dimensions.height) == (RES, RES)
            centre, width = _shoulders(cpose)
            np.testing.assert_allclose(centre, [RES / 2, RES / 2], atol=1e-3)
            assert width == pytest.approx(RES / 3, rel=1e-3)
    # The images agree with the poses: MediaPipe finds the shoulders centred in the crops themselves.
    est = pose_estimation.estimate_frames_pose(crops[:3], fps=25, width=RES, height=RES, static_image_mode=True,
                                               progress=False)
    for k in range(3):
        centre, width = _shoulders(est, k)
        np.testing.assert_allclose(centre, [RES / 2, RES / 2], atol=0.06 * RES)
        assert width == pytest.approx(RES / 3, rel=0.15)
    # training reads the archive directly
    ds = ImageFolderDataset(str(out))
    assert len(ds) == 6 and ds.resolution == RES


def test_reference_pose_with_hands_and_renders(data_dir, tmp_path):
    """testing-reduced.pose drove the pix2pix video (1250x1250 pose coordinates for 256x256 frames)."""
    out, poses, renders = tmp_path / "f.zip", tmp_path / "p.zip", tmp_path / "r.zip"
    stats = video_to_images(str(data_dir / "signer-pix2pix-256.mp4"), str(data_dir / "testing-reduced.pose"),
                            str(out), pose_output_path=str(poses), render_output_path=str(renders), resolution=RES,
                            hand_crops=True, max_frames=20, progress=False)
    assert stats["images"] == 20
    hands_zip = tmp_path / "f_hands.zip"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.zip", "f_hands.zip", "p.zip", "r.zip"]
    red = pose_features.load_pose(data_dir / "testing-reduced.pose")
    conf = np.asarray(red.body.confidence)[:20, 0]
    mcp = [red.header.get_point_index(h, "MIDDLE_FINGER_MCP") for h in (pose_features.LEFT_HAND, pose_features.RIGHT_HAND)]
    assert stats["hand_images"] == int((conf[:, mcp] > 0).sum())
    assert stats["hand_images"] + stats["hands_not_found"] == 40
    with zipfile.ZipFile(hands_zip) as zh, zipfile.ZipFile(poses) as zp, zipfile.ZipFile(renders) as zr:
        index = json.loads(zh.read("frames.json"))["images"]
        assert len(index) == stats["hand_images"] > 0
        first = index[0]
        cpose = pose_features.load_pose(zp.read("hands/" + first["name"].replace(".png", ".pose")),
                                        require_hands=False)
        hand = pose_features.LEFT_HAND if first["hand"] == "left" else pose_features.RIGHT_HAND
        xy = np.ma.getdata(cpose.body.data)[0, 0, cpose.header.get_point_index(hand, "MIDDLE_FINGER_MCP"), :2]
        np.testing.assert_allclose(xy, [RES / 2, RES / 2], atol=1e-3)
        render = _read_png(zr, archive_name(0))
        assert render.shape == (RES, RES, 3) and (render != 255).any()
        assert "hands/" + first["name"] in zr.namelist()


def test_frames_without_person_are_skipped(data_dir, tmp_path):
    red = pose_features.load_pose(data_dir / "testing-reduced.pose")
    conf = np.asarray(red.body.confidence).copy()
    ls = red.header.get_point_index("POSE_LANDMARKS", "LEFT_SHOULDER")
    conf[[1, 3], 0, ls] = 0
    data = np.ma.getdata(red.body.data).copy()
    data[4, 0, ls, :2] = 1e9  # a broken estimate far outside the frame: no person, not a 1e9-pixel crop
    pose_path = tmp_path / "gaps.pose"
    buf = io.BytesIO()
    Pose(red.header, NumPyPoseBody(fps=25, data=data, confidence=conf)).write(buf)
    pose_path.write_bytes(buf.getvalue())
    out = tmp_path / "f.zip"
    stats = video_to_images(str(data_dir / "signer-pix2pix-256.mp4"), str(pose_path), str(out), resolution=RES,
                            max_frames=8, progress=False)
    assert stats == {"frames": 8, "images": 5, "skipped_no_person": 3, "hand_images": 0, "hands_not_found": 0,
                     "clips": 1}
    with zipfile.ZipFile(out) as z:
        index = json.loads(z.read("frames.json"))
        assert index["skipped_frames"] == [1, 3, 4]
        assert [e["frame"] for e in index["images"]] == [0, 2, 5, 6, 7]


def _write_clip(data_dir, folder, name, frames, pose_frames=None):
    """Frames `frames` of the pix2pix video as `folder/videos/name.mp4` and the same frames of
    testing-reduced.pose (its pose) as `folder/poses/name.pose`."""
    (folder / "videos").mkdir(exist_ok=True)
    (folder / "poses").mkdir(exist_ok=True)
    with video_io.VideoWriter(folder / "videos" / f"{name}.mp4", fps=25, crf=10) as w:
        for frame in video_io.read_video(data_dir / "signer-pix2pix-256.mp4", start=frames.start, stop=frames.stop):
            w.write(frame)
    red = pose_features.load_pose(data_dir / "testing-reduced.pose")
    keep = list(pose_frames or frames)
    buf = io.BytesIO()
    Pose(red.header, NumPyPoseBody(fps=25, data=np.ma.getdata(red.body.data)[keep],
                                   confidence=np.asarray(red.body.confidence)[keep])).write(buf)
    (folder / "poses" / f"{name}.pose").write_bytes(buf.getvalue())


def test_folder_of_clips_into_one_archive(data_dir, tmp_path):
    _write_clip(data_dir, tmp_path, "a", range(0, 5))
    _write_clip(data_dir, tmp_path, "b", range(40, 46))
    with video_io.VideoWriter(tmp_path / "videos" / "c.mp4", fps=25) as w:  # a video without a pose
        w.write(np.zeros((64, 64, 3), np.uint8))
    out = tmp_path / "all.zip"
    stats = video_to_images(str(tmp_path / "videos"), str(tmp_path / "poses"), str(out), resolution=RES,
                            progress=False)
    assert stats["clips"] == 2 and stats["frames"] == 11 and stats["images"] == 11  # the signer is in every frame
    with zipfile.ZipFile(out) as z:
        index = json.loads(z.read("frames.json"))
        assert [c["video"] for c in index["clips"]] == ["a.mp4", "b.mp4"]
        assert [(e["clip"], e["frame"]) for e in index["images"]] == \
            [(0, i) for i in range(5)] + [(1, i) for i in range(6)]
        first_b = next(e["name"] for e in index["images"] if e["clip"] == 1)
        mixed = _read_png(z, first_b)
    assert len(ImageFolderDataset(str(out))) == stats["images"]
    # A clip's crops are the crops of that clip cut on its own.
    alone = tmp_path / "b.zip"
    video_to_images(str(tmp_path / "videos" / "b.mp4"), str(tmp_path / "poses" / "b.pose"), str(alone),
                    resolution=RES, progress=False)
    with zipfile.ZipFile(alone) as z:
        assert np.array_equal(_read_png(z, archive_name(0)), mixed)
    # Every clip is checked before anything is written: a pose of the wrong length stops the run.
    _write_clip(data_dir, tmp_path, "d", range(10, 14), pose_frames=range(10, 13))
    with pytest.raises(dnnlib.UserError, match="d.pose has 3 frames but video"):
        video_to_images(str(tmp_path / "videos"), str(tmp_path / "poses"), str(tmp_path / "x.zip"), resolution=RES)
    assert not (tmp_path / "x.zip").exists()
    with pytest.raises(dnnlib.UserError, match="both be folders"):
        video_to_images(str(tmp_path / "videos"), str(tmp_path / "poses" / "a.pose"), str(tmp_path / "x.zip"))
    (tmp_path / "no-poses").mkdir()
    with pytest.raises(dnnlib.UserError, match="No video in .* has a pose of the same name"):
        video_to_images(str(tmp_path / "videos"), str(tmp_path / "no-poses"), str(tmp_path / "x.zip"))
    with pytest.raises(dnnlib.UserError, match="No videos in"):
        video_to_images(str(tmp_path / "poses"), str(tmp_path / "poses"), str(tmp_path / "x.zip"))
    (tmp_path / "videos" / "a.mkv").write_bytes(b"")
    with pytest.raises(dnnlib.UserError, match="share a name"):
        video_to_images(str(tmp_path / "videos"), str(tmp_path / "poses"), str(tmp_path / "x.zip"))


def test_bad_inputs(data_dir, tmp_path):
    video = str(data_dir / "signer-pix2pix-256.mp4")
    out = str(tmp_path / "f.zip")
    with pytest.raises(dnnlib.UserError, match="Pose file not found"):
        video_to_images(video, str(tmp_path / "none.pose"), out)
    with pytest.raises(dnnlib.UserError, match="Video not found"):
        video_to_images(str(tmp_path / "none.mp4"), str(data_dir / "testing-reduced.pose"), out)
    with pytest.raises(dnnlib.UserError, match="has 97 frames but video .* has 91"):
        video_to_images(video, str(data_dir / "testing-original.pose"), out)
    with pytest.raises(dnnlib.UserError, match="power of two"):
        video_to_images(video, str(data_dir / "testing-reduced.pose"), out, resolution=100)
    with pytest.raises(dnnlib.UserError, match=".zip"):
        video_to_images(video, str(data_dir / "testing-reduced.pose"), str(tmp_path / "f.tar"))
    for kwargs in (dict(max_frames=0), dict(max_frames=-5), dict(crop_scale=math.inf)):
        with pytest.raises(dnnlib.UserError, match="--max_frames .*: give at least 1|must be positive numbers"):
            video_to_images(video, str(data_dir / "testing-reduced.pose"), out, **kwargs)
    assert list(tmp_path.iterdir()) == []
    # Allowed mismatch: the first min(97, 91) frames.
    stats = video_to_images(video, str(data_dir / "testing-original.pose"), out, resolution=RES,
                            allow_frame_mismatch=True, max_frames=3, progress=False)
    assert stats["images"] == 3


@pytest.mark.parametrize("resolution", [4, 2, 1])
def test_resolution_below_what_training_takes_is_refused(data_dir, tmp_path, resolution):
    # Powers of two below 8 were written, and train.py then failed on them (its discriminator ends in a 4x4 block).
    from click.testing import CliRunner

    from utils.video_to_images import main
    res = CliRunner().invoke(main, [f"--input_video={data_dir / 'signer-pix2pix-256.mp4'}",
                                    f"--input_pose={data_dir / 'testing-reduced.pose'}",
                                    f"--output_path={tmp_path / 'b.zip'}", f"--resolution={resolution}",
                                    "--max_frames=3"])
    assert res.exit_code == 1, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("Error: ") and "at least 8" in res.output, res.output
    assert list(tmp_path.iterdir()) == []


def test_cli_runs_as_script(repo_dir, data_dir, tmp_path):
    out = tmp_path / "f.zip"
    cmd = [sys.executable, "utils/video_to_images.py", f"--input_video={data_dir / 'signer-pix2pix-256.mp4'}",
           f"--input_pose={data_dir / 'testing-reduced.pose'}", f"--output_path={out}", "--resolution=32",
           "--max_frames=2"]
    res = subprocess.run(cmd, cwd=repo_dir, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert len([n for n in zipfile.ZipFile(out).namelist() if n.endswith(".png")]) == 2
    # A bad input: one line on stderr, exit status 1, nothing written.
    bad = tmp_path / "bad.pose"
    bad.write_bytes(b"garbage" * 50)
    cmd[3] = f"--input_pose={bad}"
    cmd[4] = f"--output_path={tmp_path / 'g.zip'}"
    res = subprocess.run(cmd, cwd=repo_dir, capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "Not a valid pose file" in res.stderr
    assert not (tmp_path / "g.zip").exists()


def _resolutions(folder):
    """{archive: its crops' resolution} for the archives of a run with every output (imgs.zip, its hands,
    poses, renders) that exist in `folder`."""
    found = {}
    for name in ("imgs.zip", "imgs_hands.zip", "poses.zip", "renders.zip"):
        if (folder / name).exists():
            with zipfile.ZipFile(folder / name) as z:
                if name == "poses.zip":
                    header = pose_features.load_pose(z.read(archive_name(0, ".pose")), require_hands=False).header
                    found[name] = header.dimensions.width
                elif name == "renders.zip":
                    found[name] = _read_png(z, archive_name(0)).shape[0]
                else:
                    found[name] = json.loads(z.read("frames.json"))["resolution"]
    return found


def test_killed_commit_never_mixes_two_runs(data_dir, tmp_path, monkeypatch):
    """The archives of a run are renamed in one after the other: a run killed between two renames left the
    new hand crops beside the images, poses and renders of the run before (of another resolution)."""
    def run(resolution):
        return video_to_images(str(data_dir / "signer-pix2pix-256.mp4"), str(data_dir / "testing-reduced.pose"),
                               str(tmp_path / "imgs.zip"), pose_output_path=str(tmp_path / "poses.zip"),
                               render_output_path=str(tmp_path / "renders.zip"), hand_crops=True,
                               resolution=resolution, max_frames=2, progress=False)
    run(16)
    assert _resolutions(tmp_path) == dict.fromkeys(["imgs.zip", "imgs_hands.zip", "poses.zip", "renders.zip"], 16)

    class Killed(BaseException):
        pass
    real_replace, renamed = os.replace, []

    def replace_then_die(src, dst):  # the process dies right after its first archive is renamed in
        if renamed:
            raise Killed
        real_replace(src, dst)
        renamed.append(dst)
    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(Killed):
        run(8)
    monkeypatch.undo()
    assert len(renamed) == 1
    assert set(_resolutions(tmp_path).values()) == {8}  # the new archive alone, no archive of the run before
    # A killed run also leaves its temporaries: the next run removes those of its own archives (not others').
    for name in (".imgs.k1ll3d_x.tmp.zip", ".imgs_hands.k1ll3d_x.tmp.zip", ".poses.k1ll3d_x.tmp.zip",
                 ".renders.k1ll3d_x.tmp.zip", ".other.k1ll3d_x.tmp.zip"):
        (tmp_path / name).write_bytes(b"partial")
    run(8)  # a plain re-run rebuilds the whole set
    assert _resolutions(tmp_path) == dict.fromkeys(["imgs.zip", "imgs_hands.zip", "poses.zip", "renders.zip"], 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        [".other.k1ll3d_x.tmp.zip", "imgs.zip", "imgs_hands.zip", "poses.zip", "renders.zip"]


def _broken(pose):
    """`pose` with some shoulders and hands not found (confidence 0), far outside the frame or NaN in frames
    21..25 (where testing-original and testing-reduced have both hands)."""
    h = pose.header
    data, conf = np.ma.getdata(pose.body.data).copy(), np.asarray(pose.body.confidence).copy()
    ls = h.get_point_index("POSE_LANDMARKS", "LEFT_SHOULDER")
    rs = h.get_point_index("POSE_LANDMARKS", "RIGHT_SHOULDER")
    lh = h.get_point_index(pose_features.LEFT_HAND, "MIDDLE_FINGER_MCP")
    conf[21, 0, ls] = conf[22, 0, lh] = 0
    data[23, 0, rs, :2] = 1e9
    data[24, 0, lh, 1] = np.nan
    data[25, 0, rs, :2] = data[25, 0, ls, :2] + 0.1  # shoulders (nearly) on each other: no person
    return Pose(h, NumPyPoseBody(fps=pose.body.fps, data=data, confidence=conf))


def _crops_from_all_points(pose, video_size, crop_scale, hand_scale):
    """(body, left hand, right hand) crops of each frame, computed in float64 from all the pose's points
    (as `_Crops` did before it kept only the points it uses)."""
    h = pose.header
    scale = np.array([video_size[0] / float(h.dimensions.width), video_size[1] / float(h.dimensions.height)])
    xy = np.ma.getdata(pose.body.data)[:, 0, :, :2].astype(np.float64) * scale
    conf = np.asarray(pose.body.confidence, dtype=np.float64)[:, 0]
    ls = h.get_point_index("POSE_LANDMARKS", "LEFT_SHOULDER")
    rs = h.get_point_index("POSE_LANDMARKS", "RIGHT_SHOULDER")
    mcp = [h.get_point_index(hand, "MIDDLE_FINGER_MCP") for hand in (pose_features.LEFT_HAND, pose_features.RIGHT_HAND)]
    reach = 4.0 * max(video_size)

    def found(i, p):
        return bool(conf[i, p] > 0 and np.isfinite(xy[i, p]).all() and (np.abs(xy[i, p]) <= reach).all())

    crops = []
    for i in range(len(xy)):
        width = float(np.linalg.norm(xy[i, ls] - xy[i, rs])) if found(i, ls) and found(i, rs) else None
        if width is None or width < 2.0:
            crops.append((None, None, None))
            continue
        cx, cy = (xy[i, ls] + xy[i, rs]) / 2
        crops.append(((float(cx), float(cy), crop_scale * width),
                      *[(float(xy[i, p, 0]), float(xy[i, p, 1]), hand_scale * width) if found(i, p) else None
                        for p in mcp]))
    return crops


def test_crops_are_those_of_all_points_in_float64(data_dir):
    """The crop centres and sides (body and hands) are bit for bit those computed from all points."""
    for name, video_size in (("testing-original", (256, 256)), ("testing-reduced", (256, 200))):
        pose = _broken(pose_features.load_pose(data_dir / f"{name}.pose", require_hands=False))
        crops = _Crops(pose, video_size, crop_scale=3.0, hand_scale=1.5)
        got = [(crops.body(i), crops.hand(i, "left"), crops.hand(i, "right")) for i in range(pose.body.data.shape[0])]
        expected = _crops_from_all_points(pose, video_size, 3.0, 1.5)
        assert got == expected, name
        assert [c[0] is None for c in got[20:27]] == [False, True, False, True, False, True, False]
        assert [c[1] is None for c in got[20:27]] == [False, True, True, True, True, True, False]


def test_crop_space_pose_drops_world_landmarks_as_pose_format_does(data_dir):
    """`crop_pose_frame` picks the points without world landmarks from the one frame it crops: the same
    pose (bytes) as from the whole pose without them (pose-format's `get_components`)."""
    pose = _broken(pose_features.load_pose(data_dir / "testing-original.pose", require_hands=False))
    assert any("WORLD" in c.name for c in pose.header.components)
    without = pose.get_components([c.name for c in pose.header.components if "WORLD" not in c.name])
    scale = np.array([256 / 240, 256 / 240])
    for i in range(pose.body.data.shape[0]):
        crop = (120.0 + i, 110.5, 97.25)
        assert _pose_bytes(crop_pose_frame(pose, i, crop, scale, RES)) == \
            _pose_bytes(crop_pose_frame(without, i, crop, scale, RES))


def test_a_long_pose_is_held_once(data_dir, tmp_path):
    """The tool holds one copy of a clip's pose, and of its points only those that place the crops in
    float64: its peak is that of reading the pose. (It held the checked pose beside the one it cropped
    with, that one's copy without world landmarks and all points in float64: 2.3 GB for 20 minutes at
    50 fps, where reading the pose takes 1.2 GB.)"""
    import tracemalloc

    original = pose_features.load_pose(data_dir / "testing-original.pose", require_hands=False)
    reps = 31  # 3007 frames
    long_pose = Pose(original.header, NumPyPoseBody(
        fps=25, data=np.tile(np.ma.getdata(original.body.data), (reps, 1, 1, 1)),
        confidence=np.tile(np.asarray(original.body.confidence), (reps, 1, 1))))
    path = tmp_path / "long.pose"
    path.write_bytes(_pose_bytes(long_pose))
    del original, long_pose
    tracemalloc.start()
    try:
        pose_features.load_pose(path, require_hands=False)
        reading = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        stats = video_to_images(str(data_dir / "signer-pix2pix-256.mp4"), str(path), str(tmp_path / "f.zip"),
                                pose_output_path=str(tmp_path / "p.zip"), hand_crops=True, resolution=RES,
                                allow_frame_mismatch=True, max_frames=10, progress=False)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert stats["images"] == 10
    assert peak < reading + 0.25 * path.stat().st_size, (peak, reading, path.stat().st_size)

"""utils/pose_estimation.py: MediaPipe Holistic via pose-format (a few frames only)."""

import subprocess
import sys

import numpy as np
import pytest

import dnnlib
from utils import pose_estimation, pose_features, video_io


@pytest.fixture(scope="module")
def short_video(data_dir, tmp_path_factory):
    """The first 4 frames of the shared pix2pix video."""
    path = tmp_path_factory.mktemp("video") / "short.mp4"
    with video_io.VideoWriter(path, fps=25, crf=12) as w:
        for frame in video_io.read_video(data_dir / "signer-pix2pix-256.mp4", stop=4):
            w.write(frame)
    return path


def test_import_is_light(repo_dir):
    code = "import sys, utils.pose_estimation; print('mediapipe' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=repo_dir, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_estimate_frames(data_dir):
    frames = list(video_io.read_video(data_dir / "signer-pix2pix-256.mp4", start=40, stop=43))
    pose = pose_estimation.estimate_frames_pose(iter(frames), fps=25, width=256, height=256, progress=False)
    assert pose.body.data.shape == (3, 1, 576, 3)
    assert pose.body.fps == 25
    assert (pose.header.dimensions.width, pose.header.dimensions.height) == (256, 256)
    pose_features.check_pose(pose, require_hands=False)
    # The signer is found in every frame, shoulders inside the image, left shoulder on the image's right.
    h = pose.header
    ls, rs = (h.get_point_index("POSE_LANDMARKS", p) for p in ("LEFT_SHOULDER", "RIGHT_SHOULDER"))
    conf = pose.body.confidence[:, 0]
    assert np.all(conf[:, [ls, rs]] > 0.5)
    xy = np.ma.getdata(pose.body.data)[:, 0, :, :2]
    assert np.all((xy[:, [ls, rs]] > 0) & (xy[:, [ls, rs]] < 256))
    assert np.all(xy[:, ls, 0] > xy[:, rs, 0])


def test_estimates_are_repeatable(data_dir):
    """The same frames give the same pose however often they are estimated in one process (pose-format's
    pool of reused MediaPipe graphs would carry tracking state from one call into the next)."""
    frames = list(video_io.read_video(data_dir / "signer-pix2pix-256.mp4", start=30, stop=35))
    runs = [pose_estimation.estimate_frames_pose(iter(frames), fps=25, width=256, height=256, progress=False)
            for _ in range(3)]
    for other in runs[1:]:
        np.testing.assert_array_equal(np.ma.getdata(other.body.data), np.ma.getdata(runs[0].body.data))
        np.testing.assert_array_equal(other.body.confidence, runs[0].body.confidence)


def test_estimate_video_writes_and_skips(short_video, tmp_path, monkeypatch):
    out = tmp_path / "out" / "short.pose"
    pose = pose_estimation.estimate_video_pose(short_video, out, progress=False)
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["short.pose"]
    again = pose_features.load_pose(out, require_hands=False)
    assert again.body.data.shape == pose.body.data.shape == (4, 1, 576, 3)
    assert again.body.fps == 25

    def fail(*args, **kwargs):
        raise AssertionError("estimation should have been skipped")

    monkeypatch.setattr(pose_estimation, "estimate_frames_pose", fail)
    skipped = pose_estimation.estimate_video_pose(short_video, out, skip_existing=True)
    np.testing.assert_array_equal(skipped.body.confidence, again.body.confidence)
    with pytest.raises(AssertionError, match="skipped"):
        pose_estimation.estimate_video_pose(short_video, out, skip_existing=False)


def test_bad_inputs(tmp_path):
    with pytest.raises(dnnlib.UserError, match="No frames"):
        pose_estimation.estimate_frames_pose(iter([]), fps=25, width=64, height=64, progress=False)
    with pytest.raises(ValueError, match="expected 64x64"):
        pose_estimation.estimate_frames_pose([np.zeros((32, 32, 3), np.uint8)], fps=25, width=64, height=64,
                                             progress=False)
    with pytest.raises(dnnlib.UserError, match="not found"):
        pose_estimation.estimate_video_pose(tmp_path / "none.mp4", tmp_path / "none.pose")
    assert list(tmp_path.iterdir()) == []


def test_estimate_pose_cli_output_names(short_video, tmp_path):
    from click.testing import CliRunner

    from utils import estimate_pose

    def run(*args):
        return CliRunner().invoke(estimate_pose.main, [f"--video={short_video}", *args], catch_exceptions=False)

    def refused(result, needle):
        lines = [s for s in result.output.splitlines() if s.strip()]
        assert result.exit_code == 1 and len(lines) == 1 and needle in lines[0], result.output

    before = short_video.read_bytes()
    refused(run(f"--output={short_video}"), "a pose file's name ends in .pose")
    video_copy = tmp_path / "v.pose"  # a video that is named like a pose
    video_copy.write_bytes(before)
    refused(run(f"--video={video_copy}", f"--output={video_copy}"), "is the video itself")
    assert short_video.read_bytes() == before == video_copy.read_bytes()
    refused(run(f"--output={tmp_path / 'p.txt'}"), "ends in .pose")
    # --skip-existing keeps a pose, but not a file of another kind under its name.
    (tmp_path / "not.pose").write_text("some notes")
    refused(run(f"--output={tmp_path / 'not.pose'}", "--skip-existing"), "not.pose")
    # A folder (existing, or named with a trailing separator) gets name.pose.
    r = run(f"--output={tmp_path / 'poses'}/")
    assert r.exit_code == 0 and (tmp_path / "poses" / "short.pose").is_file(), r.output
    r = run(f"--output={tmp_path / 'poses'}", "--skip-existing")
    assert r.exit_code == 0 and r.output.startswith("Kept 4 frames"), r.output
    with pytest.raises(dnnlib.UserError, match="names a folder"):
        dnnlib.util.check_writable(str(tmp_path / "new") + "/", "pose")


def test_estimate_pose_cli_on_a_folder(short_video, tmp_path, repo_dir):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mov"):
        (videos / name).write_bytes(short_video.read_bytes())
    (videos / "c.mp4").write_bytes(b"not a video" * 50)
    (videos / "notes.txt").write_text("not a video either")
    out = tmp_path / "poses"
    cmd = [sys.executable, "utils/estimate_pose.py", f"--video={videos}", f"--output={out}"]
    res = subprocess.run(cmd, cwd=repo_dir, capture_output=True, text=True, timeout=300)
    # The unreadable video does not stop the others; the run then fails in one line that names it.
    assert res.returncode == 1
    assert "wrote 2 poses, kept 0 from an earlier run, 1 failed" in res.stdout, res.stdout + res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: No pose for 1 video (logged above; the others have theirs); first:"), res.stderr
    assert "c.mp4" in last, res.stderr
    assert "Traceback" not in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.pose", "b.pose"]
    assert pose_features.load_pose(out / "b.pose", require_hands=False).body.data.shape[0] == 4
    # A second run keeps what exists.
    (videos / "c.mp4").unlink()
    res = subprocess.run(cmd, cwd=repo_dir, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "wrote 0 poses, kept 2 from an earlier run" in res.stdout, res.stderr
    # Refusals: a pose file as the output of a folder, a folder without videos, two videos of one name.
    res = subprocess.run([*cmd[:3], f"--output={tmp_path / 'x.pose'}"], cwd=repo_dir, capture_output=True, text=True)
    assert res.returncode == 1 and "must be a folder" in res.stderr
    (videos / "a.mkv").write_bytes(b"")
    with pytest.raises(dnnlib.UserError, match="several formats"):
        pose_estimation.estimate_folder_poses(str(videos), str(out))
    with pytest.raises(dnnlib.UserError, match="No videos"):
        pose_estimation.estimate_folder_poses(str(out), str(tmp_path / "o"))


@pytest.fixture(scope="module")
def twelve_frames(data_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("video12") / "twelve.mp4"
    with video_io.VideoWriter(path, fps=25, crf=12) as w:
        for frame in video_io.read_video(data_dir / "signer-pix2pix-256.mp4", start=30, stop=42):
            w.write(frame)
    return path


def test_long_video_is_estimated_in_parts_that_survive_a_crash(twelve_frames, tmp_path, monkeypatch, caplog):
    out = tmp_path / "twelve.pose"
    partial = tmp_path / "twelve.pose.partial"
    real = pose_estimation.estimate_frames_pose
    calls = []

    def crash_on_second_part(frames, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user stops the run during the second part
        return real(frames, **kw)

    monkeypatch.setattr(pose_estimation, "estimate_frames_pose", crash_on_second_part)
    with pytest.raises(KeyboardInterrupt):
        pose_estimation.estimate_video_pose(twelve_frames, out, chunk_frames=5, progress=False)
    assert not out.exists()
    assert sorted(p.name for p in partial.iterdir()) == ["000000000.pose", "source.json"]
    first = pose_features.load_pose(partial / "000000000.pose", require_hands=False)
    assert first.body.data.shape[0] == 5

    # The next run estimates only the parts not done, then writes the whole pose and removes the parts.
    calls.clear()
    def counted(frames, **kw):
        calls.append(1)
        return real(frames, **kw)

    monkeypatch.setattr(pose_estimation, "estimate_frames_pose", counted)
    pose = pose_estimation.estimate_video_pose(twelve_frames, out, chunk_frames=5, progress=False)
    assert len(calls) == 2 and not partial.exists()
    assert pose.body.data.shape[:2] == (12, 1) and pose.body.fps == 25
    again = pose_features.load_pose(out, require_hands=False)
    np.testing.assert_array_equal(again.body.confidence[:5], first.body.confidence)
    assert (again.body.confidence[:, 0, :33] > 0).any(axis=1).all()  # the signer's body in every frame
    # The first part is what a single pass over those frames gives: a fresh MediaPipe graph, the same frames.
    whole = real(video_io.read_video(twelve_frames, stop=5), fps=25, width=256, height=256, progress=False)
    np.testing.assert_array_equal(np.ma.getdata(whole.body.data), np.ma.getdata(first.body.data))

    # Parts left by another video (or other settings) are discarded, not mixed in.
    partial.mkdir()
    (partial / "source.json").write_text('{"video": "another.mp4"}')
    (partial / "000000000.pose").write_bytes(b"stale")
    calls.clear()
    out.unlink()
    import logging
    with caplog.at_level(logging.INFO, logger="utils.pose_estimation"):
        pose = pose_estimation.estimate_video_pose(twelve_frames, out, chunk_frames=5, progress=False)
    assert len(calls) == 3 and pose.body.data.shape[0] == 12 and not partial.exists()
    assert any("Discarding" in r.getMessage() for r in caplog.records)

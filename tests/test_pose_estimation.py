"""utils/pose_estimation.py: MediaPipe Holistic via pose-format (a few frames only)."""

import os
import re
import subprocess
import sys
import textwrap

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


# MediaPipe's native log lines: absl/glog ("W0000 00:00:1795557897.262667    7819 file.cc:114] ...") and TFLite's.
NATIVE_LOG_LINE = re.compile(r"^([IWEF]\d{4,8} [\d:.]+ +\d+ \S+:\d+\] |INFO: |WARNING: All log messages before)", re.M)


def _env(**extra):
    """The test's environment without the user's MediaPipe log settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("GLOG_minloglevel", "TF_CPP_MIN_LOG_LEVEL")}
    return {**env, **extra}


def test_estimate_pose_cli_keeps_mediapipe_log_lines_off_stderr(short_video, tmp_path, repo_dir):
    """MediaPipe 0.10.21 writes about 11 native INFO/WARNING lines per estimate, whatever GLOG_minloglevel
    or TF_CPP_MIN_LOG_LEVEL say; the user sees none of them (unless asking with GLOG_minloglevel=0)."""
    cmd = [sys.executable, "utils/estimate_pose.py", f"--video={short_video}", f"--output={tmp_path / 'x.pose'}"]
    res = subprocess.run(cmd, cwd=repo_dir, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.startswith("Wrote 4 frames"), res.stdout + res.stderr
    assert res.stderr == "", res.stderr
    res = subprocess.run(cmd, cwd=repo_dir, env=_env(GLOG_minloglevel="0"), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and len(NATIVE_LOG_LINE.findall(res.stderr)) >= 3, res.stderr


def test_native_log_filter_passes_errors_on_even_in_a_crash(repo_dir):
    """Only native INFO and WARNING lines are dropped; errors and other output pass, in order, and so does
    what a process writes just before it aborts (as a failed CHECK in MediaPipe does)."""
    code = textwrap.dedent(r"""
        import os, sys
        from utils.pose_estimation import native_log_filter
        with native_log_filter():
            os.write(2, b"I0000 00:00:1714668459.875897  381002 gl_context.cc:357] GL version: 3.2\n")
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
            os.write(2, b"W0000 00:00:1795557897.262667    7819 inference_feedback_manager.cc:114] Feedback\n")
            os.write(2, b"E0000 00:00:1795557897.300000    7819 calculator_graph.cc:928] a real error\n")
            with native_log_filter():  # nested: still filtered, and restored once, at the outer end
                print("from python", file=sys.stderr, flush=True)
                os.write(2, b"W0000 00:00:1795557897.3    7820 landmark_projection_calculator.cc:186] NORM_RECT\n")
            os.write(2, b"\rframes 50%")
        print("after", file=sys.stderr, flush=True)
        with native_log_filter():
            os.write(2, b"W0000 00:00:1795557897.4    7819 packet.cc:11] noise\n")
            os.write(2, b"F0000 00:00:1795557897.4    7819 packet.cc:12] Check failed: fatal\n")
            os.abort()
    """)
    res = subprocess.run([sys.executable, "-c", code], cwd=repo_dir, env=_env(), capture_output=True, timeout=60)
    assert res.returncode != 0
    assert res.stderr.decode().split("\n") == [
        "E0000 00:00:1795557897.300000    7819 calculator_graph.cc:928] a real error",
        "from python",
        "\rframes 50%after",
        "F0000 00:00:1795557897.4    7819 packet.cc:12] Check failed: fatal", ""], res.stderr
    res = subprocess.run([sys.executable, "-c", code], cwd=repo_dir, env=_env(GLOG_minloglevel="1"),
                         capture_output=True, timeout=60)
    assert len(NATIVE_LOG_LINE.findall(res.stderr.decode())) == 5, res.stderr  # warnings too, not INFO


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
    # The folders made for the output are removed again when there is no pose to put in them.
    with pytest.raises(dnnlib.UserError, match="not found"):
        pose_estimation.estimate_video_pose(tmp_path / "none.mp4", tmp_path / "new" / "deeper" / "none.pose")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 50)
    with pytest.raises(dnnlib.UserError, match="not a readable video"):
        pose_estimation.estimate_video_pose(bad, tmp_path / "new" / "bad.pose")
    assert list(tmp_path.iterdir()) == [bad]


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
    with pytest.raises(dnnlib.UserError, match="share a name"):
        pose_estimation.estimate_folder_poses(str(videos), str(out))
    with pytest.raises(dnnlib.UserError, match="No videos"):
        pose_estimation.estimate_folder_poses(str(out), str(tmp_path / "o"))


def test_a_folder_run_without_poses_leaves_no_folder_of_its_own(tmp_path, repo_dir):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "c.mp4").write_bytes(b"not a video" * 50)
    out = tmp_path / "poses" / "run1"
    cmd = [sys.executable, "utils/estimate_pose.py", f"--video={videos}", f"--output={out}"]
    res = subprocess.run(cmd, cwd=repo_dir, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "wrote 0 poses, kept 0 from an earlier run, 1 failed" in res.stdout, res.stderr
    assert "c.mp4" in res.stderr.strip().splitlines()[-1] and "Traceback" not in res.stderr, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["videos"]
    # A folder that was there before stays, empty as it was.
    out.mkdir(parents=True)
    res = pose_estimation.estimate_folder_poses(str(videos), str(out))
    assert [v for v, _ in res["failed"]] == [str(videos / "c.mp4")] and out.is_dir()


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
    estimated = []
    def counted(frames, **kw):
        calls.append(1)
        estimated.append(real(frames, **kw))
        return estimated[-1]

    monkeypatch.setattr(pose_estimation, "estimate_frames_pose", counted)
    pose = pose_estimation.estimate_video_pose(twelve_frames, out, chunk_frames=5, progress=False)
    assert len(calls) == 2 and not partial.exists()
    assert pose.body.data.shape[:2] == (12, 1) and pose.body.fps == 25
    assert out.read_bytes() == _concatenated_bytes([first, *estimated], fps=25)
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

    # Killed after the pose was written but before its parts were removed: a re-run that keeps the pose
    # removes them (single video with skip_existing, and a folder run).
    for again in (lambda: pose_estimation.estimate_video_pose(twelve_frames, out, skip_existing=True),
                  lambda: pose_estimation.estimate_folder_poses(str(twelve_frames.parent), str(tmp_path))):
        partial.mkdir()
        (partial / "000000000.pose").write_bytes(b"part")
        calls.clear()
        again()
        assert not calls and not partial.exists()


def _concatenated_bytes(parts, fps) -> bytes:
    """What pose-format writes for `parts` (Poses) joined in time under the first one's header: the file
    that a video estimated in these parts got while the parts were held and concatenated."""
    import io

    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody

    body = NumPyPoseBody(fps=fps, data=np.ma.concatenate([p.body.data for p in parts], axis=0),
                         confidence=np.concatenate([p.body.confidence for p in parts], axis=0))
    buf = io.BytesIO()
    Pose(parts[0].header, body).write(buf)
    return buf.getvalue()


def _stand_in_estimator(data_dir, estimated=None):
    """A stand-in for `estimate_frames_pose` that reads the frames and returns a random float64 Holistic
    pose (as pose-format's Holistic does; some points not found), appending each to the list `estimated`."""
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody

    header = pose_features.load_pose(data_dir / "testing-original.pose", require_hands=False).header
    rng = np.random.default_rng(0)

    def estimate(frames, fps, width, height, **kwargs):
        n = sum(1 for _ in frames)
        data = rng.normal(100, 50, (n, 1, header.total_points(), 3))
        confidence = rng.uniform(-0.5, 1, (n, 1, header.total_points())).clip(0)
        pose = Pose(header, NumPyPoseBody(fps=fps, data=data, confidence=confidence))
        if estimated is not None:
            estimated.append(pose)
        return pose
    return estimate


@pytest.fixture(scope="module")
def thousand_frames(tmp_path_factory):
    path = tmp_path_factory.mktemp("video1000") / "long.mp4"
    with video_io.VideoWriter(path, fps=25) as w:
        for i in range(1000):
            w.write(np.full((32, 32, 3), i % 256, np.uint8))
    return path


def test_parts_make_the_pose_their_concatenation_made(thousand_frames, data_dir, tmp_path, monkeypatch):
    """A long video's pose is joined from its part files, whether the parts were estimated in this run
    (float64) or read back from an earlier one: the file has the bytes pose-format writes for the parts
    concatenated (as it had when they were all held and concatenated)."""
    estimated = []
    monkeypatch.setattr(pose_estimation, "estimate_frames_pose", _stand_in_estimator(data_dir, estimated))
    out = tmp_path / "long.pose"
    pose_estimation.estimate_video_pose(thousand_frames, out, chunk_frames=300, progress=False)
    assert [p.body.data.shape[0] for p in estimated] == [300, 300, 300, 100]
    assert out.read_bytes() == _concatenated_bytes(estimated, fps=25)

    # A run stopped in its last part, whose third part is then lost: the next run reads two parts back and
    # estimates two.
    out.unlink()
    estimated.clear()
    estimate = _stand_in_estimator(data_dir, estimated)

    def stopped_in_the_last_part(frames, **kwargs):
        if len(estimated) == 3:
            raise KeyboardInterrupt
        return estimate(frames, **kwargs)

    monkeypatch.setattr(pose_estimation, "estimate_frames_pose", stopped_in_the_last_part)
    with pytest.raises(KeyboardInterrupt):
        pose_estimation.estimate_video_pose(thousand_frames, out, chunk_frames=300, progress=False)
    partial = tmp_path / "long.pose.partial"
    kept = [pose_features.load_pose(partial / f"{start:09d}.pose", require_hands=False) for start in (0, 300)]
    (partial / "000000600.pose").unlink()
    estimated.clear()
    monkeypatch.setattr(pose_estimation, "estimate_frames_pose", _stand_in_estimator(data_dir, estimated))
    pose_estimation.estimate_video_pose(thousand_frames, out, chunk_frames=300, progress=False)
    assert len(estimated) == 2 and not partial.exists()
    assert out.read_bytes() == _concatenated_bytes([*kept, *estimated], fps=25)


def test_parts_are_joined_in_little_more_memory_than_the_pose(thousand_frames, data_dir, tmp_path, monkeypatch):
    """The parts are not all held (float64, as estimated) and then concatenated: the peak is the joined
    pose, about one part, and the float32 copy and bytes that pose-format's writer makes of the body
    (about 2.8x the pose's arrays; holding the parts took 4.8x). The pose returned is the file's (float32)."""
    import tracemalloc

    monkeypatch.setattr(pose_estimation, "estimate_frames_pose", _stand_in_estimator(data_dir))
    out = tmp_path / "long.pose"
    tracemalloc.start()
    try:
        pose = pose_estimation.estimate_video_pose(thousand_frames, out, chunk_frames=100, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    arrays = 4 * (pose.body.data.size + pose.body.confidence.size)  # the pose in float32, as in its file
    assert pose.body.data.shape[0] == 1000 and peak < 3.5 * arrays, (peak, arrays)
    written = pose_features.load_pose(out, require_hands=False)
    assert pose.body.data.dtype == pose.body.confidence.dtype == np.float32
    np.testing.assert_array_equal(np.ma.getdata(pose.body.data), np.ma.getdata(written.body.data))
    np.testing.assert_array_equal(np.ma.getmaskarray(pose.body.data), np.ma.getmaskarray(written.body.data))
    np.testing.assert_array_equal(pose.body.confidence, written.body.confidence)


@pytest.mark.parametrize("extra", [-1, 1])
def test_parts_that_do_not_add_up_to_the_video_are_refused(thousand_frames, data_dir, tmp_path, monkeypatch, extra):
    """A video that decodes to another number of frames than it states (here: a part estimated with one
    frame less or more) gives a UserError naming the counts and the parts folder, not a pose of the wrong
    length (nor an IndexError while joining)."""
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody

    estimate = _stand_in_estimator(data_dir)

    def off_by_one(frames, **kwargs):
        pose = estimate(frames, **kwargs)
        n = pose.body.data.shape[0] + extra
        index = np.minimum(np.arange(n), pose.body.data.shape[0] - 1)
        return Pose(pose.header, NumPyPoseBody(fps=pose.body.fps, data=np.ma.getdata(pose.body.data)[index],
                                               confidence=pose.body.confidence[index]))

    monkeypatch.setattr(pose_estimation, "estimate_frames_pose", off_by_one)
    out = tmp_path / "long.pose"
    with pytest.raises(dnnlib.UserError, match=rf"gave {1000 + 4 * extra} frames, 1000 expected; delete .*partial"):
        pose_estimation.estimate_video_pose(thousand_frames, out, chunk_frames=300, progress=False)
    assert not out.exists()

"""gen_video.py: pose mode (frame count and rate of the written video, side-by-side, consistency
JSON, refusals that leave no output) and latent-walk mode (tiling the grid)."""

import json
import logging
import os
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from pose_video_helpers import (
    one_thread,
    pose_slice,
    pose_without_hands,
    save_snapshot,
    tiny_generator,
    tiny_lstm,
    write_pose,
)

import dnnlib
import gen_video
from utils.pose_features import load_pose
from utils.video_io import read_video, video_info

#----------------------------------------------------------------------------

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    G = tiny_generator(seed=0, resolution=16)
    other = tiny_generator(seed=1, resolution=16)
    return {
        "G": G,
        "network": save_snapshot(G, str(d / "G.pkl")),
        "other_network": save_snapshot(other, str(d / "G-other.pkl")),
        "lstm": tiny_lstm(G, str(d / "lstm.pt")),
        "other_lstm": tiny_lstm(other, str(d / "lstm-other.pt")),
    }


def run(args):
    result = CliRunner().invoke(gen_video.main, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def assert_refused(result, outdir, *words):
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for w in words:
        assert w in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert os.listdir(outdir) == [], os.listdir(outdir)

#----------------------------------------------------------------------------
# Pose mode.

def one_pose_folder(data_dir, tmp_path):
    """A folder `poses` holding `a.pose`: 4 frames of real signing."""
    poses = tmp_path / "poses"
    poses.mkdir()
    write_pose(pose_slice(load_pose(data_dir / "testing-original.pose"), range(30, 34)), str(poses / "a.pose"))
    return poses


def test_pose_video_matches_pose_frames_and_fps(models, data_dir, tmp_path):
    pose_path = data_dir / "testing-original.pose"
    pose = load_pose(pose_path)
    out = tmp_path / "out.mp4"
    result = run([f"--pose={pose_path}", f"--network={models['network']}", f"--lstm={models['lstm']}",
                  f"--output={out}", "--batch=8", "--device=cpu"])
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}" in result.output
    info = video_info(out)
    assert info.num_frames == pose.body.data.shape[0] == 97
    assert info.fps == pytest.approx(float(pose.body.fps))
    assert (info.width, info.height) == (16, 16)
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]


def test_pose_video_resampled_fps(models, data_dir, tmp_path):
    out = tmp_path / "half.mp4"
    result = run([f"--pose={data_dir / 'testing-reduced.pose'}", f"--network={models['network']}",
                  f"--lstm={models['lstm']}", f"--output={out}", "--fps=12.5", "--smooth=1.5", "--device=cpu"])
    assert result.exit_code == 0, result.output
    info = video_info(out)
    assert info.fps == pytest.approx(12.5)
    assert info.num_frames == round(91 * 12.5 / 25)


def _rendered_ws(monkeypatch, args):
    """Run gen_video with `args`; return the latents it rendered, `[T, num_ws, w_dim]`."""
    seen = []

    def recording(G, ws, **kwargs):
        def tee():
            for w in ws:
                seen.append(w.clone())
                yield w
        return real(G, tee(), **kwargs)

    real = gen_video.render_frames
    monkeypatch.setattr(gen_video, "render_frames", recording)
    result = run(args)
    assert result.exit_code == 0, result.output
    return torch.cat(seen)


def test_output_rate_changes_frame_rate_not_motion(models, data_dir, tmp_path, monkeypatch):
    # The LSTM runs at the pose's rate; its latents are interpolated to --fps. So at twice the rate
    # every other frame is a frame of the native-rate render, and in between lie the midpoints.
    common = [f"--pose={data_dir / 'testing-reduced.pose'}", f"--network={models['network']}",
              f"--lstm={models['lstm']}", "--device=cpu"]
    native = _rendered_ws(monkeypatch, common + [f"--output={tmp_path / 'a.mp4'}"])
    double = _rendered_ws(monkeypatch, common + [f"--output={tmp_path / 'b.mp4'}", "--fps=50"])
    assert native.shape[0] == 91 and double.shape[0] == 182 == video_info(tmp_path / "b.mp4").num_frames
    torch.testing.assert_close(double[0::2], native, rtol=0, atol=1e-6)
    torch.testing.assert_close(double[1:-1:2], (native[:-1] + native[1:]) / 2, rtol=0, atol=1e-5)
    assert (native[1:] - native[:-1]).abs().max() > 1e-3  # the latents do move


@pytest.fixture(scope="module")
def off_centre(tmp_path_factory):
    """A tiny G whose `w_avg` is not 0 (a random one's is), so truncation toward it differs from
    scaling W toward 0; with an LSTM (one layer, its weights tripled, a W per layer) whose output
    follows its input: `tiny_lstm`'s four random layers barely pass the pose through (its ws of a pose
    played backwards differ by about 6e-5), this one's by about 0.1."""
    from training import pose_lstm
    from utils.pose_features import make_feature_spec
    d = tmp_path_factory.mktemp("off-centre")
    G = tiny_generator(seed=2, resolution=16)
    G.mapping.w_avg.copy_(torch.linspace(-1.5, 1.0, G.w_dim))
    torch.manual_seed(0)
    spec = make_feature_spec()
    model = pose_lstm.PoseLSTM(spec.num_features, G.num_ws * G.w_dim, hidden=16, num_layers=1, w_dim=G.w_dim,
                               num_ws=G.num_ws, out_mode="ws")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)
    lstm = str(d / "lstm.pt")
    pose_lstm.save_checkpoint(lstm, pose_lstm.make_checkpoint(model, spec, pose_lstm.generator_identity(G)))
    return {"G": G, "network": save_snapshot(G, str(d / "G.pkl")), "lstm": lstm}


def _expected_ws(lstm_path, pose_path, w_avg, smooth, psi, backwards=False):
    """What pose mode should render, computed without gen_video: the LSTM's ws of the pose's features
    (the LSTM's spec keeps the pose's rate and so does the output: nothing to resample), smoothed
    over time (scipy, the documented equivalent of `pose_lstm.smooth_ws`, whose kernel radius is
    `int(3 sigma + 0.5)`: truncate=3), then lerped toward `w_avg` on every layer. float64 numpy;
    with the ws before smoothing and truncation. `backwards`: of the pose's features played backwards."""
    from scipy.ndimage import gaussian_filter1d

    from training import pose_lstm
    from utils.pose_features import features_from_pose
    model, spec, _ = pose_lstm.load_lstm(str(lstm_path))
    assert spec.fps is None
    pose = load_pose(pose_path)
    feats = features_from_pose(pose, spec, pose_fps=float(pose.body.fps))
    if backwards:
        feats = np.ascontiguousarray(feats[::-1])
    raw = pose_lstm.poses_to_ws(model, feats).numpy().astype(np.float64)
    ws = gaussian_filter1d(raw, smooth, axis=0, mode="nearest", truncate=3.0) if smooth > 0 else raw
    w_avg = w_avg.numpy().astype(np.float64)
    return w_avg + psi * (ws - w_avg), raw


def test_pose_latents_are_the_lstm_of_the_pose_smoothed_and_truncated(off_centre, data_dir, tmp_path, monkeypatch):
    # G(truncate(smooth(LSTM(features(pose))))): the rendered latents against an independent chain,
    # with --smooth and --trunc both in effect (and --batch splitting the stream across chunks).
    pose_path = write_pose(pose_slice(load_pose(data_dir / "testing-original.pose"), range(30, 50)),
                           str(tmp_path / "p.pose"))
    G = off_centre["G"]
    sigma, psi = 1.5, 0.6
    got = _rendered_ws(monkeypatch, [f"--pose={pose_path}", f"--network={off_centre['network']}",
                                     f"--lstm={off_centre['lstm']}", f"--output={tmp_path / 'o.mp4'}",
                                     f"--smooth={sigma}", f"--trunc={psi}", "--batch=3", "--device=cpu"])
    expected, raw = _expected_ws(off_centre["lstm"], pose_path, G.mapping.w_avg, sigma, psi)
    assert got.shape == (20, G.num_ws, G.w_dim) and got.dtype == torch.float32
    assert not torch.equal(got[:, 0], got[:, -1])  # a W per layer: the layers are told apart
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    # The comparison tells the chain from what a slip would render: each is far outside its tolerance.
    w_avg = G.mapping.w_avg.numpy().astype(np.float64)
    from scipy.ndimage import gaussian_filter1d
    smoothed = gaussian_filter1d(raw, sigma, axis=0, mode="nearest", truncate=3.0)
    for wrong in (raw,                                           # neither smoothed nor truncated
                  w_avg + psi * (raw - w_avg),                   # not smoothed
                  smoothed,                                      # not truncated
                  psi * smoothed):                               # truncated toward 0, not w_avg
        assert np.abs(wrong - expected).max() > 1e-3


def test_smoothing_lasts_the_same_time_at_any_output_rate(off_centre, data_dir, tmp_path, monkeypatch):
    # --smooth is in frames of the pose: at twice the pose's rate every other frame is the native
    # render's, smoothing included (a blur counted in output frames would last half as long).
    pose = pose_slice(load_pose(data_dir / "testing-original.pose"), range(30, 50))
    pose_path = write_pose(pose, str(tmp_path / "p.pose"))
    common = [f"--pose={pose_path}", f"--network={off_centre['network']}", f"--lstm={off_centre['lstm']}",
              "--smooth=2", "--device=cpu"]
    native = _rendered_ws(monkeypatch, common + [f"--output={tmp_path / 'a.mp4'}"])
    double = _rendered_ws(monkeypatch, common + [f"--output={tmp_path / 'b.mp4'}",
                                                 f"--fps={2 * float(pose.body.fps)}"])
    assert double.shape[0] == 2 * native.shape[0] == 40
    torch.testing.assert_close(double[0::2], native, rtol=0, atol=1e-6)
    unsmoothed = _rendered_ws(monkeypatch, [*common[:3], "--device=cpu", f"--output={tmp_path / 'c.mp4'}"])
    assert (unsmoothed - native).abs().max() > 1e-2  # the smoothing is in effect


def test_pose_latents_default_are_the_lstm_of_the_pose(off_centre, data_dir, tmp_path, monkeypatch):
    # Without --smooth and --trunc, frame k is LSTM(features(pose))[k] itself.
    pose_path = write_pose(pose_slice(load_pose(data_dir / "testing-original.pose"), range(30, 42)),
                           str(tmp_path / "p.pose"))
    got = _rendered_ws(monkeypatch, [f"--pose={pose_path}", f"--network={off_centre['network']}",
                                     f"--lstm={off_centre['lstm']}", f"--output={tmp_path / 'o.mp4'}", "--device=cpu"])
    expected, _ = _expected_ws(off_centre["lstm"], pose_path, off_centre["G"].mapping.w_avg, 0.0, 1.0)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    backwards, _ = _expected_ws(off_centre["lstm"], pose_path, off_centre["G"].mapping.w_avg, 0.0, 1.0, True)
    assert np.abs(backwards - expected).max() > 1e-2  # this LSTM's output shows the order of the poses


def _written_frames(monkeypatch, args):
    """Run gen_video with `args`; return the frames it handed to the video encoder, `[H, W, 3]` each."""
    written, depth = [], [0]
    real_write = gen_video.video_io.VideoWriter.write

    def recording(self, frame):
        if depth[0] == 0:  # a batch write goes on frame by frame through this same method
            written.extend(np.array(frame, copy=True).reshape(-1, *np.shape(frame)[-3:]))
        depth[0] += 1
        try:
            return real_write(self, frame)
        finally:
            depth[0] -= 1

    monkeypatch.setattr(gen_video.video_io.VideoWriter, "write", recording)
    result = run(args)
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    return written


@pytest.mark.parametrize("fps", [None, 50.0])
def test_side_by_side_left_half_is_the_pose_frame_on_screen(models, data_dir, tmp_path, monkeypatch, fps):
    # The frames handed to the encoder: the left half of frame k is the drawing of the pose frame shown
    # at time k / fps (k itself at the pose's rate, k // 2 at twice it), the right half the render.
    from utils.pose_render import render_pose_frame
    pose_path = write_pose(pose_slice(load_pose(data_dir / "testing-original.pose"), range(30, 36)),
                           str(tmp_path / "p.pose"))
    pose = load_pose(pose_path)
    out = tmp_path / "sbs.mp4"
    args = [f"--pose={pose_path}", f"--network={models['network']}", f"--lstm={models['lstm']}", "--batch=4",
            "--device=cpu"] + ([] if fps is None else [f"--fps={fps:g}"])
    written = _written_frames(monkeypatch, [*args, f"--output={out}", "--side-by-side"])
    alone = _written_frames(monkeypatch, [*args, f"--output={tmp_path / 'alone.mp4'}"])
    per_pose_frame = 1 if fps is None else 2
    drawings = [render_pose_frame(pose, i, (16, 16)) for i in range(6)]
    assert all(np.abs(drawings[i].astype(int) - drawings[i + 1]).sum() > 1000 for i in range(5))  # all differ
    assert len(written) == len(alone) == 6 * per_pose_frame == video_info(out).num_frames
    for k, (frame, render) in enumerate(zip(written, alone)):
        assert frame.shape == (16, 32, 3)
        np.testing.assert_array_equal(frame[:, :16], drawings[k // per_pose_frame], err_msg=f"frame {k}")
        np.testing.assert_array_equal(frame[:, 16:], render, err_msg=f"frame {k}")
    # The encoded video keeps the pairing (within what H.264 at 16 px changes: about 12-17 grey levels
    # on average here): each decoded left half is nearer the drawing of its own pose frame than that of
    # the frame half the clip away (about 5-10 levels farther).
    decoded = list(read_video(out))
    assert len(decoded) == len(written)
    for k, frame in enumerate(decoded):
        i = k // per_pose_frame
        own = np.abs(frame[:, :16].astype(int) - drawings[i]).mean()
        assert own < np.abs(frame[:, :16].astype(int) - drawings[(i + 3) % 6]).mean(), f"frame {k}"
        assert own < 25, f"frame {k}: {own}"


def test_pose_without_frame_rate(models, data_dir, tmp_path):
    pose = load_pose(data_dir / "testing-reduced.pose")
    pose.body.fps = 0
    path = write_pose(pose, str(tmp_path / "nofps.pose"))
    outdir = tmp_path / "out"
    outdir.mkdir()
    args = [f"--pose={path}", f"--network={models['network']}", f"--lstm={models['lstm']}", "--device=cpu",
            f"--output={outdir / 'o.mp4'}"]
    assert_refused(run(args), outdir, "no frame rate", "--fps")
    result = run(args + ["--fps=10"])  # the pose's rate, given by the user
    assert result.exit_code == 0, result.output
    info = video_info(outdir / "o.mp4")
    assert info.num_frames == 91 and info.fps == pytest.approx(10)


def test_side_by_side_and_consistency(models, data_dir, tmp_path):
    short = write_pose(pose_slice(load_pose(data_dir / "testing-original.pose"), range(30, 36)),
                       str(tmp_path / "short.pose"))
    out = tmp_path / "sbs.mp4"
    result = run([f"--pose={short}", f"--network={models['network']}", f"--lstm={models['lstm']}",
                  f"--output={out}", "--side-by-side", "--consistency", "--device=cpu"])
    assert result.exit_code == 0, result.output
    info = video_info(out)
    assert (info.num_frames, info.width, info.height) == (6, 32, 16)
    # The left half is the pose drawing on white: mostly bright; the right half is the render.
    first = next(read_video(out))
    assert first[:, :16].mean() > 150
    with open(tmp_path / "sbs.json") as f:
        doc = json.load(f)
    for key in ("body_mae", "face_mae", "left_hand_mae", "right_hand_mae", "body_detection", "left_hand_detection"):
        assert key in doc
    assert doc["video_frames"] == 6 and doc["num_frames_input"] == 6
    # A random 16x16 generator shows no person: MediaPipe finds no body in any frame.
    assert doc["body_detection"] == 0.0


def test_report_of_a_replaced_video_does_not_outlive_it(models, data_dir, tmp_path, monkeypatch):
    # Killed after a new video replaced the old one but before its report was written: the old report
    # (another --trunc) must be gone, so a folder re-run renders the pose again instead of keeping it.
    poses = one_pose_folder(data_dir, tmp_path)
    out = tmp_path / "renders"
    args = dict(fps=None, device="cpu", consistency=True, progress=False)
    gen_video.render_pose_folder(str(poses), models["network"], models["lstm"], str(out), **args)
    os.remove(out / "a.mp4")  # the user removes the videos, as the refusal of other settings advises
    real_write_json = dnnlib.util.write_json

    def killed(path, obj, what=""):
        if what == "consistency report":
            raise KeyboardInterrupt
        real_write_json(path, obj, what)
    monkeypatch.setattr(dnnlib.util, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        gen_video.render_pose_folder(str(poses), models["network"], models["lstm"], str(out), truncation_psi=0.5,
                                     **args)
    assert (out / "a.mp4").is_file() and not (out / "a.json").exists() and not (out / "a-consistency.png").exists()
    monkeypatch.setattr(dnnlib.util, "write_json", real_write_json)
    res = gen_video.render_pose_folder(str(poses), models["network"], models["lstm"], str(out), truncation_psi=0.5,
                                       **args)
    assert res["rendered"] == 1 and res["kept"] == 0
    with open(out / "a.json") as f:
        assert json.load(f)["truncation_psi"] == 0.5


def test_rendering_again_without_consistency_removes_the_old_report(models, data_dir, tmp_path):
    # A report (and chart) of out.mp4 left by an earlier --consistency run must not sit beside a new
    # out.mp4 it does not describe; another JSON file of the same name is the user's and stays.
    pose = one_pose_folder(data_dir, tmp_path) / "a.pose"
    out = tmp_path / "out.mp4"
    base = [f"--pose={pose}", f"--network={models['network']}", f"--lstm={models['lstm']}", "--device=cpu"]
    for video, kept in ((str(out), False), ("elsewhere/out.mp4", False), ("other.mp4", True)):
        (tmp_path / "out.json").write_text(json.dumps({"video": video, "body_mae": 0.1}))
        (tmp_path / "out-consistency.png").write_bytes(b"png")
        result = run([*base, f"--output={out}"])
        assert result.exit_code == 0, result.output
        assert (tmp_path / "out.json").exists() is kept and (tmp_path / "out-consistency.png").exists() is kept
        assert video_info(out).num_frames == 4
    (tmp_path / "out.json").write_text("notes of my own, not JSON")
    assert run([*base, f"--output={out}"]).exit_code == 0
    assert (tmp_path / "out.json").read_text() == "notes of my own, not JSON"


def test_two_processes_on_one_output_folder(models, data_dir, tmp_path):
    # The second is refused at once (they would mix settings and figures); the lock goes with the first.
    poses = one_pose_folder(data_dir, tmp_path)
    out = tmp_path / "renders"
    with dnnlib.util.writing_folder(out, "is busy"):
        (out / ".a.abcd1234.tmp.mp4").write_bytes(b"")  # another writer's temporary: kept while it runs
        result = run([f"--pose={poses}", f"--network={models['network']}", f"--lstm={models['lstm']}",
                      f"--output={out}", "--device=cpu"])
        assert result.exit_code == 1 and "is being written by another gen_video.py" in result.output, result.output
        assert (out / ".a.abcd1234.tmp.mp4").exists()
    result = run([f"--pose={poses}", f"--network={models['network']}", f"--lstm={models['lstm']}",
                  f"--output={out}", "--device=cpu"])
    assert result.exit_code == 0, result.output
    # The temporary, now of no running process, is removed once the folder is this run's.
    assert sorted(os.listdir(out)) == [".writing.lock", "a.mp4", "render-settings.json"]


def _bad_pose_files(data_dir, d):
    pose = load_pose(data_dir / "testing-original.pose")
    (d / "corrupt.pose").write_bytes(b"this is not a pose file at all" * 10)
    write_pose(pose_slice(pose, []), str(d / "empty.pose"))
    write_pose(pose_without_hands(pose_slice(pose, range(10))), str(d / "nohands.pose"))
    return {"missing": (d / "missing.pose", "not found"), "corrupt": (d / "corrupt.pose", "Not a valid pose"),
            "empty": (d / "empty.pose", "zero frames"), "nohands": (d / "nohands.pose", "no hand")}


@pytest.mark.parametrize("case", ["missing", "corrupt", "empty", "nohands"])
def test_bad_pose_refused(models, data_dir, tmp_path, case):
    inputs = tmp_path / "in"
    inputs.mkdir()
    path, words = _bad_pose_files(data_dir, inputs)[case]
    outdir = tmp_path / "out"
    outdir.mkdir()
    result = run([f"--pose={path}", f"--network={models['network']}", f"--lstm={models['lstm']}",
                  f"--output={outdir / 'out.mp4'}", "--consistency", "--device=cpu"])
    assert_refused(result, outdir, words)


def test_folder_of_poses(models, data_dir, tmp_path, caplog):
    poses = tmp_path / "poses"
    poses.mkdir()
    original = load_pose(data_dir / "testing-original.pose")
    write_pose(pose_slice(original, range(30, 36)), str(poses / "a.pose"))
    write_pose(pose_slice(original, range(50, 54)), str(poses / "b.POSE"))  # the extension in any case
    (poses / "c.pose").write_bytes(b"not a pose" * 20)
    (poses / ".d.x1y2.tmp.pose").write_bytes(b"half a pose")  # hidden: a killed writer's temporary file
    out = tmp_path / "renders"
    args = [f"--pose={poses}", f"--network={models['network']}", f"--lstm={models['lstm']}", f"--output={out}",
            "--consistency", "--device=cpu"]
    with caplog.at_level(logging.INFO):
        result = run(args)
    # How the frames are computed is logged once (not once per video) and recorded with the settings.
    render_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Rendering ")]
    assert len(render_lines) == 1, render_lines
    with open(out / "render-settings.json") as f:
        assert render_lines[0].startswith(json.load(f)["render_path"])
    # The bad pose does not stop the others; the run then fails in one line that names it.
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert "rendered 2 videos, kept 0 from an earlier run, 1 failed" in lines[0]
    assert lines[-1].startswith("Error: 1 pose could not be rendered") and "c.pose" in lines[-1], result.output
    assert "Traceback" not in result.output
    assert sorted(f for f in os.listdir(out) if f != ".writing.lock") == [
        "a-consistency.png", "a.json", "a.mp4", "b-consistency.png", "b.json", "b.mp4", "pose-consistency.json",
        "render-settings.json"]
    assert (video_info(out / "a.mp4").num_frames, video_info(out / "b.mp4").num_frames) == (6, 4)
    with open(out / "pose-consistency.json") as f:
        summary = json.load(f)
    assert summary["num_videos"] == 2 and summary["num_frames_input"] == 10
    with open(out / "b.json") as f:
        assert summary["videos"]["b"]["body_detection"] == json.load(f)["body_detection"]
    # A second run keeps what exists and renders only what is missing.
    (poses / "c.pose").unlink()
    os.remove(out / "b.json")
    stamp = os.stat(out / "a.mp4").st_mtime_ns
    result = run(args)
    assert result.exit_code == 0, result.output
    assert "rendered 1 video, kept 1 from an earlier run" in result.output
    assert os.stat(out / "a.mp4").st_mtime_ns == stamp
    with open(out / "pose-consistency.json") as f:
        assert json.load(f)["num_videos"] == 2


def test_folder_rerun_made_otherwise_is_refused(models, data_dir, tmp_path):
    # Videos kept from an earlier run must have been made as the new ones would be: a retrained LSTM
    # under the same file name, or another --trunc, would otherwise mix into the folder (and its figures).
    poses = one_pose_folder(data_dir, tmp_path)
    lstm = tmp_path / "lstm.pt"
    shutil.copy(models["lstm"], lstm)
    out = tmp_path / "renders"
    args = [f"--pose={poses}", f"--network={models['network']}", f"--lstm={lstm}", f"--output={out}", "--device=cpu"]
    assert run(args).exit_code == 0
    before = sorted(os.listdir(out))
    result = run([*args, "--trunc=0.5"])
    assert result.exit_code == 1 and "truncation_psi 1.0 there, 0.5 now" in result.output, result.output
    result = run([*args, "--fps=50"])
    assert result.exit_code == 1 and "fps \"each pose's own\" there, 50.0 now" in result.output, result.output
    tiny_lstm(models["G"], str(lstm), seed=1)  # retrained: same name, other weights
    result = run(args)
    assert result.exit_code == 1 and "holds videos rendered with other settings (lstm " in result.output, \
        result.output
    assert sorted(os.listdir(out)) == before
    shutil.copy(models["lstm"], lstm)  # the same weights again: the run continues
    result = run(args)
    assert result.exit_code == 0 and "kept 1 from an earlier run" in result.output, result.output


def test_folder_record_of_a_run_without_videos_is_disregarded(models, data_dir, tmp_path):
    # A first run that rendered nothing (its only pose fails) leaves a record of its settings; a re-run
    # with other settings and a good pose must not be refused for videos that do not exist.
    poses = one_pose_folder(data_dir, tmp_path)
    good = (poses / "a.pose").read_bytes()
    (poses / "a.pose").write_bytes(good[:40])  # unreadable
    out = tmp_path / "renders"
    args = [f"--pose={poses}", f"--network={models['network']}", f"--lstm={models['lstm']}", f"--output={out}",
            "--device=cpu"]
    result = run([*args, "--trunc=0.5"])
    assert result.exit_code == 1 and "1 pose could not be rendered" in result.output, result.output
    assert not list(out.glob("*.mp4"))
    (poses / "a.pose").write_bytes(good)
    result = run(args)
    assert result.exit_code == 0 and "rendered 1 video" in result.output, result.output
    with open(out / "render-settings.json") as f:
        assert json.load(f)["truncation_psi"] == 1.0


def test_folder_of_poses_sharing_a_name_refused(models, data_dir, tmp_path):
    poses = one_pose_folder(data_dir, tmp_path)
    shutil.copy(poses / "a.pose", poses / "a.POSE")  # both would be rendered to a.mp4
    out = tmp_path / "out"
    out.mkdir()
    result = run([f"--pose={poses}", f"--network={models['network']}", f"--lstm={models['lstm']}",
                  f"--output={out / 'r'}", "--device=cpu"])
    assert_refused(result, out, "share a name (a.POSE, a.pose)")


def test_folder_of_poses_refusals(models, data_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    base = [f"--network={models['network']}", f"--lstm={models['lstm']}", "--device=cpu"]
    assert_refused(run([f"--pose={empty}", f"--output={out / 'r'}", *base]), out, "No .pose files")
    write_pose(pose_slice(load_pose(data_dir / "testing-original.pose"), range(4)), str(empty / "x.pose"))
    assert_refused(run([f"--pose={empty}", f"--output={out / 'r.mp4'}", *base]), out, "must be a folder")
    (out / "file").write_bytes(b"")
    result = run([f"--pose={empty}", f"--output={out / 'file'}", *base])
    assert result.exit_code == 1 and "not a folder" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name, flags", [("render-settings", []), ("Render-Settings", []),
                                         ("POSE-consistency", ["--consistency"])])
def test_pose_named_like_the_folder_records_refused(models, data_dir, tmp_path, name, flags):
    # Its video's files would overwrite the settings record or the summary; on a case-insensitive
    # file system (Windows, macOS) also when the case differs.
    poses = tmp_path / "poses"
    poses.mkdir()
    write_pose(pose_slice(load_pose(data_dir / "testing-original.pose"), range(4)), str(poses / f"{name}.pose"))
    out = tmp_path / "out"
    out.mkdir()
    result = run([f"--pose={poses}", f"--output={out / 'r'}", f"--network={models['network']}",
                  f"--lstm={models['lstm']}", "--device=cpu", *flags])
    assert_refused(result, out, "would overwrite", "rename it")


def test_consistency_without_mediapipe_refused_before_rendering(models, data_dir, tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pose_format.utils.holistic", None)  # as if MediaPipe were not installed
    original = load_pose(data_dir / "testing-original.pose")
    short = write_pose(pose_slice(original, range(30, 34)), str(tmp_path / "p.pose"))
    out = tmp_path / "out"
    out.mkdir()
    base = [f"--network={models['network']}", f"--lstm={models['lstm']}", "--consistency", "--device=cpu"]
    assert_refused(run([f"--pose={short}", f"--output={out / 'v.mp4'}", *base]), out, "needs MediaPipe", "pip install")
    assert_refused(run([f"--pose={tmp_path}", f"--output={out / 'all'}", *base]), out, "needs MediaPipe")
    result = run([f"--pose={short}", f"--output={out / 'v.mp4'}", *base[:-2], "--device=cpu"])
    assert result.exit_code == 0, result.output  # without --consistency MediaPipe is not needed


def test_lstm_of_another_generator_refused(models, data_dir, tmp_path):
    result = run([f"--pose={data_dir / 'testing-reduced.pose'}", f"--network={models['network']}",
                  f"--lstm={models['other_lstm']}", f"--output={tmp_path / 'out.mp4'}", "--device=cpu"])
    assert_refused(result, tmp_path, "another generator")


def test_corrupt_lstm_refused(models, data_dir, tmp_path):
    outdir = tmp_path / "out"
    outdir.mkdir()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x04garbage")
    result = run([f"--pose={data_dir / 'testing-reduced.pose'}", f"--network={models['network']}",
                  f"--lstm={bad}", f"--output={outdir / 'out.mp4'}", "--device=cpu"])
    assert_refused(result, outdir, "LSTM checkpoint")


def test_unwritable_output_refused(models, data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    result = run([f"--pose={data_dir / 'testing-reduced.pose'}", f"--network={models['network']}",
                  f"--lstm={models['lstm']}", f"--output={blocker / 'out.mp4'}", "--device=cpu"])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Cannot write video" in lines[0], result.output
    assert sorted(os.listdir(tmp_path)) == ["file"]
    # The --consistency report's path is checked before any rendering too.
    (tmp_path / "out.json").mkdir()
    result = run([f"--pose={data_dir / 'testing-reduced.pose'}", f"--network={models['network']}",
                  f"--lstm={models['lstm']}", f"--output={tmp_path / 'out.mp4'}", "--device=cpu", "--consistency"])
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1, result.output
    assert "Cannot write consistency report" in lines[0] and "it is a folder" in lines[0], result.output
    assert sorted(os.listdir(tmp_path)) == ["file", "out.json"]


def test_mode_options_checked(models, tmp_path):
    result = run([f"--network={models['network']}", f"--output={tmp_path / 'x.mp4'}"])
    assert_refused(result, tmp_path, "--pose", "--seeds")
    result = run([f"--network={models['network']}", f"--output={tmp_path / 'x.mp4'}", "--pose=x.pose"])
    assert_refused(result, tmp_path, "--lstm")
    result = run([f"--network={models['network']}", f"--lstm={models['lstm']}", f"--output={tmp_path / 'x.mp4'}",
                  "--pose=x.pose", "--smooth=1e9"])  # a kernel of 6e9 frames: refused, not a MemoryError
    assert_refused(result, tmp_path, "--smooth must be from 0 to 100")

#----------------------------------------------------------------------------
# Latent walks.

def test_latent_walk_video(models, tmp_path):
    out = tmp_path / "walk.mp4"
    result = run([f"--network={models['network']}", "--seeds=0-3", "--grid=2x1", "--w-frames=3",
                  f"--output={out}", "--device=cpu"])
    assert result.exit_code == 0, result.output
    info = video_info(out)
    assert (info.num_frames, info.width, info.height) == (2 * 3, 32, 16)
    assert info.fps == pytest.approx(60)


def test_latent_walk_bad_seeds(models, tmp_path):
    result = run([f"--network={models['network']}", "--seeds=0-2", "--grid=2x1", f"--output={tmp_path / 'w.mp4'}"])
    assert_refused(result, tmp_path, "grid")
    result = run([f"--network={models['network']}", "--seeds=a-b", f"--output={tmp_path / 'w.mp4'}"])
    assert_refused(result, tmp_path, "--seeds")
    result = run([f"--network={models['network']}", "--seeds=0", "--grid=2y", f"--output={tmp_path / 'w.mp4'}"])
    assert_refused(result, tmp_path, "--grid")
    result = run([f"--network={models['network']}", "--seeds=4294967296", f"--output={tmp_path / 'w.mp4'}"])
    assert_refused(result, tmp_path, "--seeds", "too large")
    result = run([f"--network={models['network']}", "--seeds=0", "--fps=0", f"--output={tmp_path / 'w.mp4'}"])
    assert_refused(result, tmp_path, "--fps must be a frame rate")
    result = run([f"--network={models['network']}", "--seeds=0", "--fps=1e-6", f"--output={tmp_path / 'w.mp4'}"])
    assert_refused(result, tmp_path, "--fps must be a frame rate")
    # A grid wider than the encoder takes: refused before rendering (16 px cells: 1025 of them).
    result = run([f"--network={models['network']}", "--seeds=0-1024", "--grid=1025x1", "--w-frames=1",
                  f"--output={tmp_path / 'w.mp4'}", "--device=cpu"])
    assert_refused(result, tmp_path, "16400x16 pixels are too large", "smaller grid")


def test_tile_layout():
    frames = np.arange(6)[:, None, None, None] * np.ones((6, 2, 3, 1), np.uint8)
    img = gen_video.tile(frames, 3, 2)
    assert img.shape == (4, 9, 1)
    assert img[0, 0, 0] == 0 and img[0, 3, 0] == 1 and img[0, 6, 0] == 2 and img[2, 0, 0] == 3 and img[3, 8, 0] == 5

#----------------------------------------------------------------------------

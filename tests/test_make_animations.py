"""utils/make_animations.py: pairs of equal length (video, W, pose), smooth walks through the mapped
keys, resumable steps, pose estimation on a folder another tool filled, clear refusals."""

import copy
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from pose_video_helpers import one_thread, save_snapshot, tiny_generator

import dnnlib
from utils import make_animations
from utils.pose_features import load_pose
from utils.video_io import VideoWriter, read_video, video_info

#----------------------------------------------------------------------------

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    G = tiny_generator(seed=0, resolution=16)
    return G, save_snapshot(G, str(tmp_path_factory.mktemp("net") / "G.pkl"))


def run_script(*args, cwd):
    # Run as users do; `python utils/x.py` puts utils/, not the current folder, on sys.path.
    return subprocess.run([sys.executable, "utils/make_animations.py", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)

#----------------------------------------------------------------------------

def visible(folder) -> list[str]:
    """The files of a folder without the hidden ones (its lock file)."""
    return [f for f in os.listdir(folder) if not f.startswith(".")]


def frame_distances(G, video, ws) -> np.ndarray:
    """`[frame, render]`: the mean absolute difference (0..255) between frame i of `video` and G's
    render of `ws[j]` (`training.rendering.render_frames`, const noise: as make_animations renders)."""
    from training.rendering import render_frames
    frames = np.stack(list(read_video(video))).astype(np.float32)
    renders = np.concatenate(list(render_frames(G, [torch.from_numpy(np.ascontiguousarray(ws))], device="cpu")))
    assert frames.shape == renders.shape, (frames.shape, renders.shape)
    return np.abs(frames[:, None] - renders[None].astype(np.float32)).mean(axis=(2, 3, 4))


def assert_video_shows_walk(G, video, ws):
    """Frame k of `video` is G's render of `ws[k]`, its saved latents. H.264 (yuv420p) is lossy and
    the video rendered in bf16 where the CPU has it, so frames are compared by their mean absolute
    difference: each is close to its own render, and the walk's order fits clearly better than the
    reversed order or the order shifted by a frame (frames of a smooth walk look alike, and a walk
    can pass near a frame again, so no single frame need be closest to its own render)."""
    dist = frame_distances(G, video, ws)
    n = len(ws)
    own = np.diagonal(dist)
    assert own.max() < 5, own  # measured: at most 3.2 (16x16 frames, chroma at half resolution)
    other_orders = {"reversed": dist[np.arange(n), np.arange(n)[::-1]].mean(),
                    "a frame late": np.diagonal(dist, -1).mean(), "a frame early": np.diagonal(dist, 1).mean()}
    for order, d in other_orders.items():  # measured: 1.5x the walk's order or more
        assert own.mean() * 1.25 < d, (order, own.mean(), d, dist)


def test_pairs_have_equal_lengths(network, repo_dir, tmp_path):
    G, pkl = network
    out = tmp_path / "pairs"
    res = run_script(f"--network={pkl}", f"--outdir={out}", "--num=2", "--frames=4-7", "--keyframe-every=3",
                     "--device=cpu", cwd=repo_dir)
    assert res.returncode == 0, res.stderr
    names = sorted({os.path.splitext(f)[0] for f in visible(out) if f != "walks.json"})
    assert names == [make_animations.walk_name(0, 0), make_animations.walk_name(0, 1)]
    for name in names:
        ws = np.load(out / f"{name}.npy")
        info = video_info(out / f"{name}.mp4")
        pose = load_pose(out / f"{name}.pose", require_hands=False)
        assert ws.dtype == np.float32 and ws.shape[1:] == (G.num_ws, G.w_dim)
        assert 4 <= ws.shape[0] <= 7
        assert info.num_frames == ws.shape[0] == pose.body.data.shape[0]
        assert info.fps == pytest.approx(25) and float(pose.body.fps) == pytest.approx(25)
        assert (info.width, info.height) == (16, 16)
        assert (pose.header.dimensions.width, pose.header.dimensions.height) == (16, 16)
        assert_video_shows_walk(G, out / f"{name}.mp4", ws)  # the pair: frame k is the render of W k
    assert sorted(visible(out)) == sorted([f"{n}{e}" for n in names for e in (".mp4", ".npy", ".pose")]
                                             + ["walks.json"])
    settings = json.loads((out / "walks.json").read_text())
    assert settings["frames"] == [4, 7] and settings["keyframe_every"] == 3 and len(settings["generator"]) == 64


def test_walk_passes_through_mapped_keys(network):
    G, _ = network
    ws = make_animations.walk_ws(G, seed=3, index=5, frames=(10, 10), keyframe_every=4)
    assert ws.shape == (10, G.num_ws, G.w_dim)
    rng = np.random.default_rng([3, 5])
    assert int(rng.integers(10, 11)) == 10
    z = torch.from_numpy(rng.standard_normal((4, G.z_dim)).astype(np.float32))
    keys = G.mapping(z, None).numpy()
    np.testing.assert_allclose(ws[[0, 4, 8]], keys[:3], rtol=1e-5, atol=1e-5)
    # Smooth: steps between frames are small next to the distance between keys.
    assert np.abs(np.diff(ws, axis=0)).max() < np.abs(keys[1] - keys[0]).max()
    np.testing.assert_array_equal(ws, make_animations.walk_ws(G, seed=3, index=5, frames=(10, 10), keyframe_every=4))


def test_trunc_saves_truncated_latents_and_renders_them(network, tmp_path):
    """--trunc: the W saved are truncated (each key is `G.mapping(z, psi)`, pulled toward G's w_avg)
    and the video shows them, not the walk before truncation."""
    from click.testing import CliRunner
    G = copy.deepcopy(network[0])
    with torch.no_grad():  # w_avg as training leaves it (a new G's is 0, toward which truncation only scales W)
        z = torch.randn([64, G.z_dim], generator=torch.Generator().manual_seed(0))
        G.mapping.w_avg.copy_(G.mapping(z, None)[:, 0].mean(dim=0))
    pkl = save_snapshot(G, str(tmp_path / "G.pkl"))
    out = tmp_path / "pairs"
    result = CliRunner().invoke(make_animations.main, [f"--network={pkl}", f"--outdir={out}", "--num=1", "--frames=4",
                                                       "--keyframe-every=2", "--trunc=0.5", "--render-only",
                                                       "--device=cpu"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "walks.json").read_text())["truncation_psi"] == 0.5
    name = make_animations.walk_name(0, 0)
    ws = np.load(out / f"{name}.npy")
    rng = np.random.default_rng([0, 0])  # walk 0 of seed 0: its length, then its 3 keys
    assert int(rng.integers(4, 5)) == 4 and ws.shape == (4, G.num_ws, G.w_dim)
    z = torch.from_numpy(rng.standard_normal((3, G.z_dim)).astype(np.float32))
    keys, untruncated = G.mapping(z, None, truncation_psi=0.5).numpy(), G.mapping(z, None).numpy()
    np.testing.assert_allclose(ws[[0, 2]], keys[:2], rtol=1e-5, atol=1e-5)
    assert np.abs(ws[[0, 2]] - untruncated[:2]).max() > 0.1
    assert_video_shows_walk(G, out / f"{name}.mp4", ws)
    # The walk before truncation (the same z, psi 1) is visibly another video.
    before = make_animations.walk_ws(G, 0, 0, (4, 4), keyframe_every=2)
    np.testing.assert_allclose(before[[0, 2]], untruncated[:2], rtol=1e-5, atol=1e-5)
    shown, other = (np.diagonal(frame_distances(G, out / f"{name}.mp4", w)).mean() for w in (ws, before))
    assert other > 1.5 * shown, (other, shown)  # measured: 2.0x


def test_resumable_steps(network, tmp_path):
    _, pkl = network
    out = str(tmp_path)
    names = make_animations.render_walks(pkl, out, 2, frames=(3, 4), keyframe_every=2, device="cpu", progress=False)
    assert make_animations.estimate_poses(out, progress=False) == names
    stamps = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in visible(out)}
    # Everything exists: nothing is redone.
    make_animations.render_walks(pkl, out, 2, frames=(3, 4), keyframe_every=2, device="cpu", progress=False)
    assert make_animations.estimate_poses(out, progress=False) == []
    # A lost pose and a half-written walk (video without W) are made again, nothing else.
    os.remove(os.path.join(out, names[0] + ".pose"))
    os.remove(os.path.join(out, names[1] + ".npy"))
    make_animations.render_walks(pkl, out, 3, frames=(3, 4), keyframe_every=2, device="cpu", progress=False)
    assert make_animations.estimate_poses(out, progress=False) == [names[0], make_animations.walk_name(0, 2)]
    after = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in visible(out)}
    assert after[names[0] + ".mp4"] == stamps[names[0] + ".mp4"]
    assert after[names[1] + ".pose"] == stamps[names[1] + ".pose"]
    assert len(after) == 10 and "walks.json" in after  # 3 walks of 3 files, and their settings
    assert not any(f.startswith(".") for f in after)  # no temporary files left
    # An unreadable video does not stop the others; the run then fails in one line that names it.
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    os.remove(os.path.join(out, names[1] + ".pose"))
    with pytest.raises(dnnlib.UserError, match="No pose for 1 video .*broken.mp4"):
        make_animations.estimate_poses(out, progress=False)
    assert os.path.isfile(os.path.join(out, names[1] + ".pose"))


def test_walks_of_other_settings_are_not_mixed_in(network, tmp_path):
    _, pkl = network
    out = str(tmp_path)
    make_animations.render_walks(pkl, out, 1, frames=(3, 4), keyframe_every=2, device="cpu", progress=False)
    with pytest.raises(dnnlib.UserError, match="truncation_psi 1.0 there, 0.5 now"):
        make_animations.render_walks(pkl, out, 2, frames=(3, 4), keyframe_every=2, truncation_psi=0.5,
                                     device="cpu", progress=False)
    with pytest.raises(dnnlib.UserError, match="frames"):  # refused even when nothing is left to render
        make_animations.render_walks(pkl, out, 1, frames=(5, 6), keyframe_every=2, device="cpu", progress=False)
    other = save_snapshot(tiny_generator(seed=1, resolution=16), str(tmp_path / "G-other.pkl"))
    with pytest.raises(dnnlib.UserError, match="generator"):
        make_animations.render_walks(other, out, 2, frames=(3, 4), keyframe_every=2, device="cpu", progress=False)
    assert sorted(f for f in visible(out) if f.startswith("walk0")) == ["walk0000-00000.mp4", "walk0000-00000.npy"]
    # The same generator and settings add walks.
    make_animations.render_walks(pkl, out, 2, frames=(3, 4), keyframe_every=2, device="cpu", progress=False)
    assert os.path.isfile(os.path.join(out, "walk0000-00001.npy"))


def test_record_of_a_run_without_walks_is_disregarded(network, tmp_path):
    # A run stopped (or failed) before its first walk leaves walks.json only: it describes no walks, so
    # other settings are not refused and its settings are not taken as the folder's.
    _, pkl = network
    out = str(tmp_path / "pairs")
    os.makedirs(out)
    with open(os.path.join(out, "walks.json"), "w") as f:
        json.dump({"frames": [60, 240], "truncation_psi": 0.5, "fps": 1e-6, "keyframe_every": 30, "network": pkl}, f)
    make_animations.render_walks(pkl, out, 1, frames=(3, 4), keyframe_every=2, device="cpu", progress=False)
    with open(os.path.join(out, "walks.json")) as f:
        record = json.load(f)
    assert (record["frames"], record["truncation_psi"], record["fps"]) == ([3, 4], 1.0, 25.0)
    with pytest.raises(dnnlib.UserError, match="frames"):  # with a walk there, the record counts again
        make_animations.render_walks(pkl, out, 2, frames=(5, 6), keyframe_every=2, device="cpu", progress=False)


def test_two_processes_on_one_folder_of_walks(network, tmp_path, caplog):
    # A second process on the folder is refused at once: two runs started together would each pass the
    # settings check and mix walks of different settings. It says nothing of rendering before it stops.
    _, pkl = network
    out = str(tmp_path / "pairs")
    make_animations.render_walks(pkl, out, 1, frames=(3, 4), keyframe_every=2, device="cpu", progress=False)
    with dnnlib.util.writing_folder(out, "is busy"), caplog.at_level("INFO"):
        with pytest.raises(dnnlib.UserError, match="is being written by another make_animations.py"):
            make_animations.render_walks(pkl, out, 2, frames=(3, 4), keyframe_every=2, device="cpu", progress=False)
        assert not [r for r in caplog.records if "rendering the other" in r.getMessage()], caplog.text
        with pytest.raises(dnnlib.UserError, match="is being written by another make_animations.py"):
            make_animations.estimate_poses(out, progress=False)
    make_animations.render_walks(pkl, out, 1, frames=(3, 4), keyframe_every=2, device="cpu", progress=False)
    assert os.path.isfile(os.path.join(out, "walk0000-00000.npy"))


def test_adding_walks_takes_the_folders_settings(network, tmp_path):
    # A re-run that names only the folder and the count adds walks made as the first ones were (the
    # CLI's defaults are not mistaken for other settings), with the folder's generator.
    from click.testing import CliRunner
    G, pkl = network
    out = str(tmp_path / "pairs")
    make_animations.render_walks(pkl, out, 1, frames=(3, 4), keyframe_every=2, truncation_psi=0.7, fps=10,
                                 device="cpu", progress=False)
    result = CliRunner().invoke(make_animations.main, [f"--outdir={out}", "--num=3", "--render-only", "--device=cpu"])
    assert result.exit_code == 0, result.output
    assert f"3 walks of --seed=0 in {out} (3 in all)" in result.output
    result = CliRunner().invoke(make_animations.main, [f"--outdir={out}", "--num=1", "--seed=5", "--render-only",
                                                       "--device=cpu"])
    assert f"1 walk of --seed=5 in {out} (4 in all)" in result.output, result.output
    for i in (1, 2):
        ws = np.load(os.path.join(out, make_animations.walk_name(0, i) + ".npy"))
        expected = make_animations.walk_ws(G, 0, i, (3, 4), keyframe_every=2, truncation_psi=0.7)
        np.testing.assert_allclose(ws, expected, rtol=1e-5, atol=1e-6)
        assert_video_shows_walk(G, os.path.join(out, make_animations.walk_name(0, i) + ".mp4"), ws)
    assert video_info(os.path.join(out, make_animations.walk_name(0, 2) + ".mp4")).fps == 10
    # A setting given that differs is still refused; a folder without walks needs --network.
    result = CliRunner().invoke(make_animations.main, [f"--outdir={out}", "--num=4", "--render-only", "--fps=25",
                                                       "--device=cpu"])
    assert result.exit_code == 1 and "fps 10.0 there, 25.0 now" in result.output, result.output
    result = CliRunner().invoke(make_animations.main, [f"--outdir={tmp_path / 'new'}", "--num=1", "--render-only"])
    assert result.exit_code == 1 and "needs --network" in result.output, result.output


def test_render_walks_runs_the_prepared_generator(network, tmp_path, caplog):
    """G runs as `training.inference.prepare_generator` prepares it, named in one log line; a bad
    --precision is refused before anything is written."""
    from torch_utils.ops import cpu_kernels
    _, pkl = network
    out = tmp_path / "pairs"
    with caplog.at_level(logging.INFO):
        make_animations.render_walks(pkl, str(out), 1, frames=(2, 2), device="cpu", progress=False,
                                     precision="fp32")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Rendering ")]
    assert len(lines) == 1, caplog.text
    if cpu_kernels.load() is not None:  # built (or cached) by the render above
        assert "fast stylegan3 path" in lines[0] and "float32 convolutions" in lines[0]
    else:
        assert "unavailable" in lines[0]
    assert lines[0].endswith("batch 4")
    assert video_info(out / (make_animations.walk_name(0, 0) + ".mp4")).num_frames == 2
    with pytest.raises(dnnlib.UserError, match="precision"):
        make_animations.render_walks(pkl, str(tmp_path / "other"), 1, frames=(2, 2), device="cpu",
                                     progress=False, precision="fp16")
    assert not (tmp_path / "other").exists()


def test_estimate_only_on_foreign_folder(repo_dir, tmp_path):
    with VideoWriter(tmp_path / "clip.mp4", fps=10) as w:
        for i in range(3):
            w.write(np.full((32, 32, 3), 40 * i, np.uint8))
    res = run_script(f"--outdir={tmp_path}", "--estimate-only", cwd=repo_dir)
    assert res.returncode == 0, res.stderr
    pose = load_pose(tmp_path / "clip.pose", require_hands=False)
    assert pose.body.data.shape[0] == 3 and float(pose.body.fps) == pytest.approx(10)


@pytest.mark.parametrize("args,words", [
    (["--estimate-only"], "folder not found"),
    (["--num=2"], "--network"),
    (["--network=G.pkl", "--num=2", "--frames=9-3"], "--frames"),
])
def test_bad_input_is_one_line(repo_dir, tmp_path, args, words):
    res = run_script(f"--outdir={tmp_path / 'missing'}", *args, cwd=repo_dir)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and words in lines[0], res.stderr
    assert not (tmp_path / "missing").exists()


def test_no_mediapipe_refused_before_rendering(network, tmp_path, monkeypatch):
    from click.testing import CliRunner
    monkeypatch.setitem(sys.modules, "pose_format.utils.holistic", None)  # as if MediaPipe were not installed
    out = tmp_path / "pairs"
    args = [f"--network={network[1]}", f"--outdir={out}", "--num=1", "--frames=4-4", "--device=cpu"]
    result = CliRunner().invoke(make_animations.main, args)
    assert result.exit_code == 1 and "needs MediaPipe" in result.output, result.output
    assert not out.exists() or not visible(out)  # nothing rendered
    result = CliRunner().invoke(make_animations.main, [*args, "--render-only"])  # rendering alone needs none
    assert result.exit_code == 0, result.output
    assert sorted(os.path.splitext(f)[1] for f in visible(out)) == [".json", ".mp4", ".npy"]


def test_parse_frames():
    assert make_animations.parse_frames("60-240") == (60, 240)
    assert make_animations.parse_frames("90") == (90, 90)

#----------------------------------------------------------------------------

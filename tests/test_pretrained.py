"""The bundled demo models (pretrained/): they load with only torch_utils + dnnlib, belong together,
fit the size budget, and `make demo`'s command (read from the Makefile) renders the example pose to a
video of the pose beside the signer (one frame per pose frame, the green-screen background and dark
clothing of the training frames)."""

import os
import pickle
import shlex
import subprocess
import sys

import numpy as np
from click.testing import CliRunner
from pose_video_helpers import one_thread

import gen_video
import legacy
from training import pose_lstm
from utils.pose_features import load_pose
from utils.video_io import read_video, video_info

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETRAINED = os.path.join(ROOT, "pretrained")
G_PKL = os.path.join(PRETRAINED, "demo-G.pkl")
LSTM_PT = os.path.join(PRETRAINED, "demo-lstm.pt")
EXAMPLE = os.path.join(PRETRAINED, "example.pose")

#----------------------------------------------------------------------------

def test_bundle_within_budget():
    files = [os.path.join(PRETRAINED, name) for name in os.listdir(PRETRAINED)]
    for path in (G_PKL, LSTM_PT, EXAMPLE, os.path.join(PRETRAINED, "README.md")):
        assert path in files, f"{path} is missing"
    total = sum(os.path.getsize(p) for p in files if os.path.isfile(p))
    assert total <= 20 * 2**20, f"pretrained/ holds {total / 2**20:.1f} MiB (budget: 20 MiB)"


def test_generator_and_lstm_belong_together():
    with open(G_PKL, "rb") as f:
        G = legacy.load_network_pkl(f)["G_ema"]
    assert (G.img_resolution, G.img_channels, G.c_dim) == (64, 3, 0)
    assert "synthesis.input.transform" in dict(G.named_buffers())  # a StyleGAN3 generator
    model, spec, identity = pose_lstm.load_lstm(LSTM_PT)
    pose_lstm.check_generator(identity, pose_lstm.generator_identity(G))  # raises on a mismatch
    assert model.config()["w_dim"] == G.w_dim


def test_demo_pickle_needs_no_training_package():
    """The shipped pickle carries its sources: it unpickles where only torch_utils and dnnlib exist."""
    code = ("import sys, pickle; sys.modules['training'] = None; "
            f"G = pickle.load(open({G_PKL!r}, 'rb'))['G_ema']; print(type(G).__name__, G.img_resolution)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Generator", "64"]


def _make_demo_args() -> list[str]:
    """The options of the Makefile's demo command (`$(PY) gen_video.py ...`)."""
    with open(os.path.join(ROOT, "Makefile")) as f:
        lines = f.read().split("\ndemo:", 1)[1].splitlines()
    recipe = next(line.strip() for line in lines[1:] if line.startswith("\t"))
    words = shlex.split(recipe)
    assert words[:2] == ["$(PY)", "gen_video.py"], recipe
    return words[2:]


def test_make_demo_renders_the_signer(tmp_path, monkeypatch):
    out = tmp_path / "out.mp4"
    args = [a if not a.startswith("--output=") else f"--output={out}" for a in _make_demo_args()]
    assert f"--pose={os.path.relpath(EXAMPLE, ROOT)}" in args and "--side-by-side" in args
    monkeypatch.chdir(ROOT)  # the Makefile's paths are relative to the repository root
    with one_thread():
        result = CliRunner().invoke(gen_video.main, [*args, "--device=cpu"])
    assert result.exit_code == 0, result.output
    assert f"Wrote {out}" in result.output
    info = video_info(out)
    assert info.num_frames == load_pose(EXAMPLE).body.data.shape[0]
    assert (info.width, info.height) == (128, 64)
    both = np.stack(list(read_video(out))).astype(np.float32)  # [T, H, 2W, 3]
    # Left: the input pose drawn on white; right: the render.
    assert both[:, :, :64].mean() > 200
    frames = both[:, :, 64:]
    # The signer stands before a green screen in a black shirt: the border is green-dominant, the
    # torso (centre, lower half) dark. A random or collapsed generator fails both.
    border = np.concatenate([frames[:, :4].reshape(-1, 3), frames[:, :, :4].reshape(-1, 3),
                             frames[:, :, -4:].reshape(-1, 3)])
    r, g, b = border.mean(0)
    assert g > r + 40 and g > b + 40, (r, g, b)
    torso = frames[:, 40:56, 24:40]
    assert torso.mean() < 0.6 * border.mean(), (torso.mean(), border.mean())
    # The LSTM reads the pose: frames are not all the same W. (The demo signer moves only a little --
    # mean frame-to-frame change 0.15 of 255; pretrained/README.md measures and explains why -- while a
    # constant W gives identical frames, change 0.)
    assert np.abs(np.diff(frames, axis=0)).mean() > 0.05


def test_example_pose_is_the_shared_reduced_pose(data_dir):
    with open(EXAMPLE, "rb") as a, open(data_dir / "testing-reduced.pose", "rb") as b:
        assert a.read() == b.read()


def test_demo_pickle_holds_only_the_generator():
    with open(G_PKL, "rb") as f:
        data = pickle.load(f)
    assert sorted(data) == ["G_ema", "training_set_kwargs"]

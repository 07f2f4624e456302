"""Test helpers for the pose-to-video tests (make_animations, pose LSTM, gen_video): tiny random
generators saved as snapshot pickles, tiny LSTMs for them, synthetic (pose, W) pairs and bad poses."""

from __future__ import annotations

import contextlib
import os
import pickle

import numpy as np
import torch

#----------------------------------------------------------------------------
# Threads.

@contextlib.contextmanager
def one_thread():
    """Run torch on one thread: the tiny networks of these tests are dominated by thread
    synchronisation, which costs 10-100x on a loaded 2-core machine (measured: a 4-layer LSTM
    step 5 ms on one thread, 50-400 ms on two while other jobs run)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)

#----------------------------------------------------------------------------
# Generators.

def tiny_generator(seed: int = 0, resolution: int = 16, w_dim: int = 8) -> torch.nn.Module:
    """A random StyleGAN3 generator small enough to render a frame in milliseconds on a CPU."""
    from training.networks_stylegan3 import Generator
    torch.manual_seed(seed)
    G = Generator(z_dim=w_dim, c_dim=0, w_dim=w_dim, img_resolution=resolution, img_channels=3,
                  channel_base=256, channel_max=16, num_layers=4, num_fp16_res=0)
    return G.eval().requires_grad_(False)


def save_snapshot(G: torch.nn.Module, path: str) -> str:
    """Write `G` as a network snapshot pickle (`G`, `D`, `G_ema`), as train.py does."""
    with open(path, "wb") as f:
        pickle.dump({"G": G, "D": None, "G_ema": G, "augment_pipe": None, "training_set_kwargs": None}, f)
    return path

#----------------------------------------------------------------------------
# LSTMs.

def tiny_lstm(G: torch.nn.Module, path: str, hidden: int = 16, seed: int = 0, out_mode: str = "w") -> str:
    """An untrained pose LSTM for `G`, saved as a checkpoint `load_lstm` reads."""
    from training import pose_lstm
    from utils.pose_features import make_feature_spec
    torch.manual_seed(seed)
    spec = make_feature_spec()
    out = G.w_dim * (1 if out_mode == "w" else G.num_ws)
    model = pose_lstm.PoseLSTM(spec.num_features, out, hidden=hidden, w_dim=G.w_dim, num_ws=G.num_ws,
                               out_mode=out_mode)
    pose_lstm.save_checkpoint(path, pose_lstm.make_checkpoint(model, spec, pose_lstm.generator_identity(G)))
    return path

#----------------------------------------------------------------------------
# Poses.

def pose_slice(pose, frames):
    from pose_format import Pose
    return Pose(pose.header, pose.body.select_frames(list(frames)))


def write_pose(pose, path: str) -> str:
    from utils.pose_estimation import write_pose as write
    write(pose, path)
    return str(path)


def pose_without_hands(pose):
    """A copy of `pose` with both hands missing in every frame."""
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    conf = np.array(pose.body.confidence, copy=True)
    for comp in ("LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS"):
        start = pose.header.get_point_index(comp, "WRIST")  # a hand's 21 points follow its wrist
        conf[:, :, start:start + 21] = 0
    data = np.ma.array(np.ma.getdata(pose.body.data), mask=np.repeat((conf == 0)[..., None], 3, axis=-1))
    return Pose(pose.header, NumPyPoseBody(fps=pose.body.fps, data=data, confidence=conf))


def synthetic_pairs(outdir: str, sources: list[str], num: int, w_dim: int, num_ws: int, seed: int = 0) -> np.ndarray:
    """Write `num` pairs `p###.pose` + `p###.npy` whose W is a known function of the pose features:
    `W = tanh(A @ features)` with `A` reading the 8 body points (16 coordinates), the same W for
    every layer. Each pose is a random stretch (40..T frames, sometimes reversed) of one of the
    `sources` with pixel jitter. Returns `A` `[w_dim, F]`."""
    from pose_format import Pose

    from utils.pose_features import features_from_pose, load_pose, make_feature_spec
    rng = np.random.default_rng(seed)
    spec = make_feature_spec()
    A = np.zeros((w_dim, spec.num_features), np.float32)
    A[:, :16] = rng.standard_normal((w_dim, 16)) * 0.7
    os.makedirs(outdir, exist_ok=True)
    poses = [load_pose(s) for s in sources]
    for i in range(num):
        src = poses[i % len(poses)]
        length = src.body.data.shape[0]
        n = int(rng.integers(40, length))
        start = int(rng.integers(0, length - n + 1))
        idx = list(range(start, start + n))
        if rng.random() < 0.5:
            idx = idx[::-1]
        body = src.body.select_frames(idx)
        data = body.data.copy()
        data[..., :2] += rng.normal(0, 2.0, data[..., :2].shape).astype(np.float32)
        body.data = data
        pose = Pose(src.header, body)
        w = np.tanh(features_from_pose(pose, spec) @ A.T)
        write_pose(pose, os.path.join(outdir, f"p{i:03d}.pose"))
        np.save(os.path.join(outdir, f"p{i:03d}.npy"), np.repeat(w[:, None, :], num_ws, axis=1).astype(np.float32))
    return A

#----------------------------------------------------------------------------

"""The pose-to-latent LSTM: pose features in, generator W latents out, one per frame.

Pairs of a pose sequence and the W sequence that produced it come from `utils/make_animations.py`
(random smooth walks through W rendered by G, their poses estimated with MediaPipe). The model
learns pose -> W; at inference `gen_video.py` maps a user's pose to W and G renders it.

- `PoseLSTM`: Dense(hidden) -> 4 stacked LSTMs -> Dense(out). `out` is `w_dim` (one W, broadcast
  to all of G's `num_ws` layers; mode 'w') or `num_ws * w_dim` (one W per layer; mode 'ws').
- `load_pairs` / `sample_windows`: a folder of `name.pose` + `name.npy` pairs, cut into random
  windows padded to one length with a mask.
- `train_pose_lstm(TrainOptions)`: mean-absolute-error training with a validation split,
  TensorBoard logs, one-dict checkpoints that resume exactly and, with real validation poses,
  pose consistency of their renders (and, optionally, those renders as extra training pairs).
- Inference: `load_lstm(path) -> (model, spec, identity)`, `check_generator(identity, G)`,
  `iter_ws` / `poses_to_ws` (features -> W), `smooth_ws` (streaming temporal smoothing).

A checkpoint records the generator it was trained for (`generator_identity`: `w_dim`, `num_ws`
and a hash of its parameters and buffers); using it with another generator is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import logging
import math
import os
import re
import warnings
import zipfile
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

import dnnlib
from utils import pose_features

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "signstylegan-pose-lstm"
CHECKPOINT_VERSION = 1
OUT_MODES = ("w", "ws")

#----------------------------------------------------------------------------
# The model.

class PoseLSTM(torch.nn.Module):
    """Pose features `[N, T, in_features]` -> W latents `[N, T, out_features]`.

    Dense(hidden) with SiLU, `num_layers` stacked unidirectional LSTMs, Dense(out_features).
    The output layer predicts W in units of the training targets' per-dimension standard
    deviation around their mean (buffers `w_mean`, `w_std`, set from the training pairs), so a
    fresh model starts near the mean predictor. Unidirectional: a long sequence can be run in
    chunks, carrying the LSTM state (see `iter_ws`)."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 512, num_layers: int = 4,
                 w_dim: int | None = None, num_ws: int = 1, out_mode: str = "w"):
        super().__init__()
        if out_mode not in OUT_MODES:
            raise ValueError(f"out_mode must be one of {OUT_MODES}, got {out_mode!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.hidden = int(hidden)
        self.num_layers = int(num_layers)
        self.out_mode = out_mode
        self.num_ws = int(num_ws)
        self.w_dim = int(w_dim if w_dim is not None else out_features)
        expected = self.w_dim if out_mode == "w" else self.num_ws * self.w_dim
        if self.out_features != expected:
            raise ValueError(f"out_features={out_features} does not match out_mode={out_mode!r} "
                             f"(w_dim={self.w_dim}, num_ws={self.num_ws})")
        self.inp = torch.nn.Linear(self.in_features, self.hidden)
        self.lstm = torch.nn.LSTM(self.hidden, self.hidden, num_layers=self.num_layers, batch_first=True)
        self.out = torch.nn.Linear(self.hidden, self.out_features)
        self.register_buffer("w_mean", torch.zeros(self.out_features))
        self.register_buffer("w_std", torch.ones(self.out_features))

    def config(self) -> dict[str, Any]:
        return dict(in_features=self.in_features, out_features=self.out_features, hidden=self.hidden,
                    num_layers=self.num_layers, w_dim=self.w_dim, num_ws=self.num_ws, out_mode=self.out_mode)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x `[N, T, in_features]` float -> (W `[N, T, out_features]`, LSTM state to continue from)."""
        h = torch.nn.functional.silu(self.inp(x))
        h, state = self.lstm(h, state)
        return self.out(h) * self.w_std + self.w_mean, state

    def to_ws(self, y: torch.Tensor) -> torch.Tensor:
        """Model output `[..., out_features]` -> ws `[..., num_ws, w_dim]` (a broadcast view in mode 'w')."""
        if self.out_mode == "w":
            return y.unsqueeze(-2).expand(*y.shape[:-1], self.num_ws, self.w_dim)
        return y.reshape(*y.shape[:-1], self.num_ws, self.w_dim)

#----------------------------------------------------------------------------
# The generator a model belongs to.

def weights_hash(module: torch.nn.Module) -> str:
    """SHA-256 (hex) over the names, shapes, dtypes and values of a module's parameters and buffers."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def generator_identity(G: torch.nn.Module) -> dict[str, Any]:
    """What an LSTM checkpoint records about its generator: `w_dim`, `num_ws`, `img_resolution`
    and `hash` (`weights_hash`)."""
    return {"w_dim": int(G.w_dim), "num_ws": int(G.num_ws), "img_resolution": int(G.img_resolution),
            "hash": weights_hash(G)}


def check_generator(identity: dict[str, Any], G_identity: dict[str, Any], lstm_name: str = "the LSTM",
                    network_name: str = "the network") -> None:
    """Raise `dnnlib.UserError` unless an LSTM's recorded generator is `G_identity` (see `generator_identity`)."""
    for key in ("w_dim", "num_ws"):
        if int(identity.get(key, -1)) != int(G_identity[key]):
            raise dnnlib.UserError(f"{lstm_name} was trained for another generator ({key} {identity.get(key)}, "
                                   f"{network_name} has {G_identity[key]}); use the LSTM trained for this network "
                                   f"or train one with train_pose_lstm.py")
    if identity.get("hash") != G_identity["hash"]:
        raise dnnlib.UserError(f"{lstm_name} was trained for another generator (parameter hash "
                               f"{str(identity.get('hash'))[:12]}, {network_name} has {G_identity['hash'][:12]}); "
                               f"use the LSTM trained for this network or train one with train_pose_lstm.py")

#----------------------------------------------------------------------------
# Paired data: name.pose (MediaPipe Holistic of the render) + name.npy (W per frame).

@dataclasses.dataclass
class Pair:
    """One (pose, W) sequence. `feats` `[T, F]` float32; `ws` `[T, num_ws, w_dim]` (possibly a
    read-only memory map); `valid` `[T]` bool, frames where the pose has a body (the others are
    left out of the loss: there is no pose to learn from)."""
    name: str
    feats: np.ndarray
    ws: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return int(self.feats.shape[0])


def _body_presence_column(spec: pose_features.FeatureSpec) -> int | None:
    names = [c for c, _ in spec.components]
    if not spec.presence or pose_features.BODY not in names:
        return None
    return spec.num_coords + names.index(pose_features.BODY)


def make_pair(name: str, pose, ws: np.ndarray, spec: pose_features.FeatureSpec, w_dim: int, num_ws: int,
              where: str) -> Pair | None:
    """A Pair from a pose and its W sequence; None (logged) when the pose has no usable person.
    Raises `dnnlib.UserError` when the lengths or the W shape do not fit."""
    if ws.ndim != 3 or ws.shape[1:] != (num_ws, w_dim):
        raise dnnlib.UserError(f"{where}: W sequence has shape {list(ws.shape)}, but the generator needs "
                               f"[T, {num_ws}, {w_dim}]; these pairs were made with another generator")
    try:
        feats = pose_features.features_from_pose(pose, spec, name=where)
    except dnnlib.UserError as e:
        log.warning("Skipping pair %s: %s", name, e)
        return None
    if feats.shape[0] != ws.shape[0]:
        raise dnnlib.UserError(f"{where}: the pose has {feats.shape[0]} frames but the W sequence {ws.shape[0]}; "
                               f"re-create the pair (delete both files and re-run make_animations.py)")
    col = _body_presence_column(spec)
    valid = feats[:, col] > 0 if col is not None else np.ones(len(feats), bool)
    if not valid.any():
        log.warning("Skipping pair %s: no body found in any frame", name)
        return None
    return Pair(name=name, feats=feats, ws=ws, valid=valid)


def check_pairs_generator(dirname: str, generator_hash: str, network: str) -> None:
    """UserError when `dirname`'s record (`walks.json`) says its walks were rendered by another
    generator than the one whose weights hash to `generator_hash` (a folder without a record, of
    pairs made by another tool, is not checked)."""
    from utils.make_animations import SETTINGS_FILE as PAIRS_RECORD
    made_by = dnnlib.util.read_settings(os.path.join(dirname, PAIRS_RECORD)).get("generator")
    if made_by is not None and made_by != generator_hash:
        raise dnnlib.UserError(f"The pairs in {dirname} were rendered by another generator than {network} (parameter "
                               f"hash {str(made_by)[:12]} in {PAIRS_RECORD}, {network} has {generator_hash[:12]}): "
                               f"an LSTM learns the latents of the generator that rendered its pairs; pass that "
                               f"network, or make pairs with this one (utils/make_animations.py)")


def load_pairs(dirname: str, spec: pose_features.FeatureSpec, w_dim: int, num_ws: int,
               progress: bool | None = None) -> list[Pair]:
    """Every `name.pose` + `name.npy` in `dirname` (sorted by name) as Pairs.

    Pairs whose pose has no person (no shoulders in any frame) are skipped with a warning.
    Raises `dnnlib.UserError` when the folder is missing or holds no usable pair."""
    from tqdm import tqdm
    if not os.path.isdir(dirname):
        raise dnnlib.UserError(f"Pairs folder not found: {dirname}")
    npys = {os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(dirname, "*.npy"))}
    poses = {os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(dirname, "*.pose"))}
    names = sorted(npys & poses)
    if npys - poses:
        log.warning("%d W sequences in %s have no .pose yet (run utils/make_animations.py --estimate-only)",
                    len(npys - poses), dirname)
    if not names:
        raise dnnlib.UserError(f"No pairs in {dirname}: expected name.pose + name.npy files, as "
                               f"utils/make_animations.py writes them")
    pairs = []
    disable = None if progress is None else not progress
    for name in tqdm(names, desc="loading pairs", unit="pair", disable=disable, leave=False):
        pair = _read_pair(dirname, name, spec, w_dim, num_ws)
        if pair is not None:
            pairs.append(pair)
    if not pairs:
        raise dnnlib.UserError(f"None of the {len(names)} pairs in {dirname} has a person in its pose; "
                               f"the generator's renders must show the signer for MediaPipe to find")
    if len(pairs) < len(names):
        log.warning("Using %d of %d pairs in %s", len(pairs), len(names), dirname)
    return pairs


def _read_pair(dirname: str, name: str, spec: pose_features.FeatureSpec, w_dim: int, num_ws: int) -> Pair | None:
    npy_path = os.path.join(dirname, name + ".npy")
    try:
        ws = np.load(npy_path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise dnnlib.UserError(f"Cannot read W sequence {npy_path}: {e}") from None
    pose = pose_features.load_pose(os.path.join(dirname, name + ".pose"), require_hands=False)
    return make_pair(name, pose, ws, spec, w_dim, num_ws, where=os.path.join(dirname, name))


def _targets(ws: np.ndarray, out_mode: str) -> np.ndarray:
    """ws `[T, num_ws, w_dim]` -> training targets `[T, out_features]` float32. Mode 'w' learns the
    first layer's W (make_animations' walks have the same W in every layer)."""
    if out_mode == "w":
        return np.array(ws[:, 0], dtype=np.float32)
    return np.array(ws, dtype=np.float32).reshape(ws.shape[0], -1)


def split_pairs(pairs: Sequence[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """A seeded split by pair (never inside a sequence): about `val_fraction` of the pairs (at least
    one when the fraction is positive and there are two or more) go to validation."""
    if not 0 <= val_fraction < 1:
        raise dnnlib.UserError(f"Bad validation fraction {val_fraction}; use 0 <= fraction < 1")
    n = len(pairs)
    num_val = 0 if val_fraction == 0 else min(n - 1, max(1, int(round(n * val_fraction))))
    if val_fraction > 0 and num_val == 0:
        raise dnnlib.UserError(f"Only {n} pair: need at least 2 to hold one out for validation "
                               f"(or pass --val-fraction=0)")
    order = np.random.default_rng([seed, 1]).permutation(n)
    val_idx = set(order[:num_val].tolist())
    train = [p for i, p in enumerate(pairs) if i not in val_idx]
    val = [p for i, p in enumerate(pairs) if i in val_idx]
    return train, val


def sample_windows(pairs: Sequence[Pair], batch: int, window: int, out_mode: str, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of random windows: pairs drawn with probability proportional to their length, a
    start drawn uniformly; shorter sequences are zero-padded.

    Returns x `[batch, window, F]`, y `[batch, window, out_features]` (float32) and the loss
    mask `[batch, window]` (float32: 1 on real frames with a body, 0 on padding)."""
    lengths = np.array([len(p) for p in pairs], dtype=np.float64)
    choice = rng.choice(len(pairs), size=batch, p=lengths / lengths.sum())
    num_feats = pairs[0].feats.shape[1]
    out_dim = _targets(pairs[0].ws[:1], out_mode).shape[1]
    x = np.zeros((batch, window, num_feats), np.float32)
    y = np.zeros((batch, window, out_dim), np.float32)
    m = np.zeros((batch, window), np.float32)
    for b, i in enumerate(choice):
        p = pairs[i]
        start = int(rng.integers(0, max(1, len(p) - window + 1)))
        stop = min(len(p), start + window)
        n = stop - start
        x[b, :n] = p.feats[start:stop]
        y[b, :n] = _targets(p.ws[start:stop], out_mode)
        m[b, :n] = p.valid[start:stop]
    return x, y, m


def target_stats(pairs: Sequence[Pair], out_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation of the targets over the valid frames of `pairs`."""
    total, total_sq, count = 0.0, 0.0, 0
    for p in pairs:
        y = _targets(p.ws, out_mode)[p.valid].astype(np.float64)
        total = total + y.sum(0)
        total_sq = total_sq + np.square(y).sum(0)
        count += len(y)
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(total_sq / max(count, 1) - mean ** 2, 0))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)

#----------------------------------------------------------------------------
# Checkpoints: one dict, written atomically.

def make_checkpoint(model: PoseLSTM, spec: pose_features.FeatureSpec, identity: dict[str, Any],
                    **extra: Any) -> dict[str, Any]:
    """The checkpoint dict: model config and state (on the CPU), feature spec, generator identity,
    plus `extra` entries (training state: `step`, `config`, `optimizer`, `rng`, ...)."""
    ckpt = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model_config": model.config(),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "feature_spec": spec.to_dict(), "generator": dict(identity)}
    ckpt.update(extra)
    return ckpt


def save_checkpoint(path: str, ckpt: dict[str, Any]) -> None:
    """Write a checkpoint dict atomically (complete or not at all)."""
    try:
        with dnnlib.util.atomic_write(path, "wb") as f:
            torch.save(ckpt, f)
    except OSError as e:
        raise dnnlib.UserError(f"Cannot write LSTM checkpoint {path}: {e.strerror or e}") from None


def read_checkpoint(path: str) -> dict[str, Any]:
    """Read an LSTM checkpoint (tensors and plain data only: no code runs). Raises
    `dnnlib.UserError` when the file is missing or is not one."""
    if not os.path.isfile(path):
        raise dnnlib.UserError(f"LSTM checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):  # torch.save writes zip archives; anything else is another kind of file
        with open(path, "rb") as f:
            head = f.read(4)
        if head == b"PK\x03\x04":  # the start of a zip archive without its end
            raise dnnlib.UserError(f"{path} is damaged or truncated (an incomplete copy?); copy it again, or use "
                                   f"the run's lstm-best.pt")
        hint = " (it looks like a pickle: a network snapshot goes to --network)" if head[:1] == b"\x80" else ""
        raise dnnlib.UserError(f"{path} is not a pose-LSTM checkpoint{hint}; train one with train_pose_lstm.py")
    try:
        with warnings.catch_warnings():  # torch's remarks about the pickle protocol of a file that is not ours
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, a pickle with code, anything torch cannot read as data
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise dnnlib.UserError(f"Not a readable LSTM checkpoint: {path} ({first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise dnnlib.UserError(f"{path} is not a pose-LSTM checkpoint (train one with train_pose_lstm.py)")
    if int(ckpt.get("version", -1)) != CHECKPOINT_VERSION:
        raise dnnlib.UserError(f"{path} is a version {ckpt.get('version')} pose-LSTM checkpoint; this code "
                               f"reads version {CHECKPOINT_VERSION}")
    return ckpt


def build_model(ckpt: dict[str, Any], path: str = "the checkpoint") -> PoseLSTM:
    try:
        model = PoseLSTM(**ckpt["model_config"])
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise dnnlib.UserError(f"Damaged pose-LSTM checkpoint {path}: {type(e).__name__}: "
                               f"{str(e).splitlines()[0][:120]}") from None
    return model


def load_lstm(path: str, device: torch.device | str = "cpu"
              ) -> tuple[PoseLSTM, pose_features.FeatureSpec, dict[str, Any]]:
    """Load a trained pose LSTM for inference.

    Returns `(model, spec, identity)`: the model in eval mode on `device`, the pose feature spec
    it was trained with (apply it with `pose_features.features_from_pose`) and the identity of its
    generator (compare with `check_generator(identity, generator_identity(G))` before use)."""
    ckpt = read_checkpoint(path)
    model = build_model(ckpt, path).to(device).eval().requires_grad_(False)
    spec = pose_features.FeatureSpec.from_dict(ckpt["feature_spec"])
    if spec.num_features != model.in_features:
        raise dnnlib.UserError(f"Damaged pose-LSTM checkpoint {path}: its feature spec has {spec.num_features} "
                               f"features, its model {model.in_features}")
    return model, spec, dict(ckpt["generator"])

#----------------------------------------------------------------------------
# Inference: features -> W, streamed in chunks.

@torch.no_grad()
def iter_ws(model: PoseLSTM, features: np.ndarray | torch.Tensor, chunk: int = 256,
            device: torch.device | str | None = None) -> Iterator[torch.Tensor]:
    """Yield ws `[n, num_ws, w_dim]` float32 for consecutive chunks of `features` `[T, F]`,
    carrying the LSTM state between chunks (the result equals one pass over the whole sequence)."""
    device = next(model.parameters()).device if device is None else torch.device(device)
    feats = torch.as_tensor(np.asarray(features, dtype=np.float32) if not isinstance(features, torch.Tensor)
                            else features, dtype=torch.float32)
    if feats.ndim != 2 or feats.shape[1] != model.in_features:
        raise dnnlib.UserError(f"Pose features of shape {list(feats.shape)} do not fit the LSTM "
                               f"([T, {model.in_features}])")
    state = None
    for start in range(0, feats.shape[0], chunk):
        y, state = model(feats[start:start + chunk].to(device).unsqueeze(0), state)
        yield model.to_ws(y[0])


def poses_to_ws(model: PoseLSTM, features: np.ndarray | torch.Tensor, chunk: int = 256,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Pose features `[T, F]` -> ws `[T, num_ws, w_dim]` float32 (contiguous) on the model's device."""
    parts = [ws.contiguous() for ws in iter_ws(model, features, chunk, device)]
    if not parts:
        raise dnnlib.UserError("No pose frames to map to latents")
    return torch.cat(parts)


def gaussian_kernel(sigma: float) -> np.ndarray:
    radius = int(3 * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def smooth_ws(chunks: Iterable[torch.Tensor], sigma: float) -> Iterator[torch.Tensor]:
    """Gaussian smoothing over time of a stream of `[n, ...]` chunks: standard deviation `sigma`
    frames, kernel radius `int(3 sigma + 0.5)`, edges extended with the first/last frame (what
    `scipy.ndimage.gaussian_filter1d(mode='nearest', truncate=3.0)` computes on the whole sequence).
    Yields chunks of the same total length, holding back only the kernel radius. `sigma <= 0` passes
    through."""
    if sigma <= 0:
        yield from chunks
        return
    kernel = gaussian_kernel(sigma)
    r = (len(kernel) - 1) // 2
    left: torch.Tensor | None = None      # r frames of context before the first pending frame
    pending: torch.Tensor | None = None   # frames received but not yet emitted
    k = None

    def filt(x: torch.Tensor) -> torch.Tensor:  # 'valid' correlation along dim 0
        out = torch.zeros((x.shape[0] - 2 * r,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
        for i in range(2 * r + 1):
            out += k[i] * x[i:i + out.shape[0]]
        return out

    for chunk in chunks:
        if chunk.shape[0] == 0:
            continue
        if k is None:
            k = torch.as_tensor(kernel, dtype=chunk.dtype, device=chunk.device)
            left = chunk[:1].expand(r, *chunk.shape[1:])
        pending = chunk if pending is None else torch.cat([pending, chunk])
        ready = pending.shape[0] - r
        if ready > 0:
            x = torch.cat([left, pending])
            yield filt(x)
            left = x[ready:ready + r]
            pending = pending[ready:]
    if pending is not None and pending.shape[0] > 0:
        x = torch.cat([left, pending, pending[-1:].expand(r, *pending.shape[1:])])
        yield filt(x)

def resampled_length(num_in: int, fps_in: float, fps_out: float) -> int:
    """Frames of a `num_in`-frame sequence at `fps_in` once resampled to `fps_out` (`resample_ws`)."""
    if abs(fps_in - fps_out) < 1e-9 * max(fps_in, 1.0) or num_in == 0:
        return num_in
    return max(1, int(round(num_in * fps_out / fps_in)))


def resample_ws(chunks: Iterable[torch.Tensor], num_in: int, fps_in: float, fps_out: float) -> Iterator[torch.Tensor]:
    """A stream of `[n, ...]` chunks (`num_in` frames in all, at `fps_in`) resampled in time to
    `fps_out`: `max(1, round(num_in * fps_out / fps_in))` frames at times `k / fps_out`, each the
    linear interpolation of its two neighbouring input frames (the frame times of
    `utils.pose_features.resample_features`). Holds back at most one chunk. Equal rates pass through."""
    if abs(fps_in - fps_out) < 1e-9 * max(fps_in, 1.0) or num_in == 0:
        yield from chunks
        return
    num_out = resampled_length(num_in, fps_in, fps_out)
    t = np.minimum(np.arange(num_out) * (fps_in / fps_out), num_in - 1)
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, num_in - 1)
    alpha = (t - i0).astype(np.float32)
    k, base, buf = 0, 0, None  # next output frame; input index of buf[0]; input frames kept
    for chunk in chunks:
        buf = chunk if buf is None else torch.cat([buf, chunk])
        ready = int(np.searchsorted(i1, base + buf.shape[0]))  # outputs whose inputs have all arrived
        if ready > k:
            a = torch.from_numpy(alpha[k:ready]).to(buf.device, buf.dtype).reshape(-1, *([1] * (buf.ndim - 1)))
            lo = buf[torch.from_numpy(i0[k:ready] - base).to(buf.device)]
            hi = buf[torch.from_numpy(i1[k:ready] - base).to(buf.device)]
            yield torch.lerp(lo, hi, a)
            k = ready
        if k < num_out:  # drop what no later output needs
            keep_from = int(i0[k]) - base
            buf, base = buf[keep_from:], base + keep_from
    if k != num_out:
        raise ValueError(f"resample_ws: the stream held {base + (0 if buf is None else buf.shape[0])} frames, "
                         f"not {num_in}")

#----------------------------------------------------------------------------
# Training.

@dataclasses.dataclass
class TrainOptions:
    """Settings of a training run (saved in the checkpoint as `config`).

    `pairs` and `network` may be None when resuming: the run's own are used. `given` names the options
    the user set (None: all of them); on resume, the run options not given come from the checkpoint
    silently, and given ones that differ from it are kept from the checkpoint with a warning, except
    `best_by` (lstm-best.pt is then chosen afresh) and a moved `pairs`/`val` folder."""
    pairs: str | None
    network: str | None
    outdir: str
    steps: int = 20000
    batch: int = 32
    hidden: int = 512
    num_layers: int = 4
    window: int = 64
    lr: float = 1e-3
    grad_clip: float = 1.0
    out_mode: str = "w"
    val_fraction: float = 0.1
    val_every: int = 500
    val: str | None = None                 # folder of real poses (render + re-estimate + consistency)
    val_frames: int = 100                  # at most this many frames of each real pose
    augment_with_validation: bool = False
    best_by: str = "val_mae"               # what lstm-best.pt minimises: 'val_mae' or 'consistency' (needs val)
    render_batch: int = 4
    preview_frames: int = 8                # columns of preview-<step>.png (0: no pictures)
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    given: frozenset[str] | None = None

    # Options that define the run; on resume the checkpoint's values are kept.
    RUN_KEYS = ("pairs", "batch", "hidden", "num_layers", "window", "lr", "grad_clip", "out_mode", "val_fraction",
                "val_every", "val", "val_frames", "augment_with_validation", "best_by", "render_batch", "seed")
    # Options a resumed run takes anew when given, and otherwise keeps from the run (as train.py's --kimg).
    CONTINUE_KEYS = ("steps", "preview_frames")

    def check(self) -> None:
        for key in ("pairs", "network"):
            if not getattr(self, key):
                raise dnnlib.UserError(f"--{key} is needed (it may be left out only with --resume)")
        for key in ("steps", "batch", "hidden", "num_layers", "window", "val_every", "val_frames", "render_batch"):
            if int(getattr(self, key)) < 1:
                raise dnnlib.UserError(f"--{key.replace('_', '-')} must be at least 1, got {getattr(self, key)}")
        if int(self.preview_frames) < 0:
            raise dnnlib.UserError(f"--preview-frames must be 0 (no pictures) or more, got {self.preview_frames}")
        if self.out_mode not in OUT_MODES:
            raise dnnlib.UserError(f"Unknown output mode {self.out_mode!r}; use 'w' (one W for all layers) or 'ws'")
        if not self.lr > 0:
            raise dnnlib.UserError(f"--lr must be positive, got {self.lr}")
        if self.augment_with_validation and not self.val:
            raise dnnlib.UserError("--augment-with-validation needs --val=DIR of real poses")
        if self.best_by not in BEST_BY:
            raise dnnlib.UserError(f"Unknown --best-by={self.best_by!r}; use one of {', '.join(BEST_BY)}")
        if self.best_by == "consistency" and not self.val:
            raise dnnlib.UserError("--best-by=consistency needs --val=DIR of real poses to render and measure")
        if self.val and not os.path.isdir(self.val):
            raise dnnlib.UserError(f"Validation pose folder not found: {self.val}")


def _masked_mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the masked-in frames and all output dimensions."""
    err = (pred - target).abs().mean(-1)
    return (err * mask).sum() / mask.sum().clamp(min=1)


@torch.no_grad()
def evaluate_pairs(model: PoseLSTM, pairs: Sequence[Pair], device: torch.device) -> dict[str, float]:
    """MAE of the model on whole sequences (each from its first frame) and of the mean predictor
    (the training targets' mean, `model.w_mean`), over the valid frames of `pairs`."""
    was_training = model.training
    model.eval()
    err = base = 0.0
    count = 0
    for p in pairs:
        x = torch.from_numpy(p.feats).to(device).unsqueeze(0)
        y = torch.from_numpy(_targets(p.ws, model.out_mode)).to(device)
        m = torch.from_numpy(p.valid).to(device)
        pred, _ = model(x)
        err += float((pred[0] - y).abs().mean(-1)[m].sum())
        base += float((model.w_mean - y).abs().mean(-1)[m].sum())
        count += int(m.sum())
    model.train(was_training)
    return {"mae": err / max(count, 1), "mean_predictor_mae": base / max(count, 1), "frames": count}


def _rng_state(rng: np.random.Generator, device: torch.device) -> dict[str, Any]:
    state = {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(rng: np.random.Generator, state: dict[str, Any], device: torch.device) -> None:
    rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def _load_real_poses(dirname: str, spec: pose_features.FeatureSpec, max_frames: int) -> list[tuple[str, Any, np.ndarray]]:
    """(name, pose cut to `max_frames`, features) for every usable `.pose` in `dirname`."""
    from pose_format import Pose
    paths = sorted(glob.glob(os.path.join(dirname, "*.pose")))
    if not paths:
        raise dnnlib.UserError(f"No .pose files in the validation folder {dirname}")
    out = []
    for path in paths:
        pose = pose_features.load_pose(path)
        if pose.body.data.shape[0] > max_frames:
            pose = Pose(pose.header, pose.body.select_frames(list(range(max_frames))))
        feats = pose_features.features_from_pose(pose, spec, name=path)
        out.append((os.path.splitext(os.path.basename(path))[0], pose, feats))
    return out


BEST_BY = ("val_mae", "consistency")
MISSED_PART_ERROR = 1.0  # shoulder widths: what a frame whose part MediaPipe cannot find counts in the score


def consistency_score(fig: dict[str, Any]) -> float:
    """One number for the pose consistency of renders (lower is better): over the parts the real
    poses show, the mean of `matched * mae + (1 - matched) * MISSED_PART_ERROR`, where `matched` is
    the share of the real poses' frames with the part in which the render shows it too. A part that
    the renders never show scores MISSED_PART_ERROR (one shoulder width); parts found where the real
    pose has none earn nothing, so choosing by this score prefers checkpoints whose hands and face
    MediaPipe finds where they should be."""
    from metrics.pose_consistency import COMPONENT_KEYS
    terms = []
    for key in COMPONENT_KEYS.values():
        matched = fig.get(f"{key}_matched")
        if matched is None:  # the real poses never show this part
            continue
        mae = fig.get(f"{key}_mae")
        terms.append(matched * mae + (1.0 - matched) * MISSED_PART_ERROR if mae is not None else MISSED_PART_ERROR)
    return float(np.mean(terms)) if terms else math.inf


def validate_real_poses(G: torch.nn.Module, model: PoseLSTM, real: Sequence[tuple[str, Any, np.ndarray]],
                        device: torch.device, batch: int = 4, augment_dir: str | None = None, step: int = 0,
                        preview: dict[str, Any] | None = None, preview_frames: int = 8) -> dict[str, Any]:
    """Render real poses through the LSTM and G, re-estimate the renders' poses with MediaPipe and
    measure pose consistency against the real poses (`metrics.pose_consistency`).

    With `augment_dir`, each render's estimated pose and its W sequence are also written there as
    a pair `<step:06d>-<name>.pose/.npy` (atomic), for the training set. With a `preview` dict, the
    first pose's name, pose, estimated pose and up to `preview_frames` of its rendered frames
    (`frames`: {index: image}) are put in it, for `Preview.picture`. Returns the figures of all
    poses pooled (`metrics.pose_consistency.combine_consistency`: `<component>_mae`,
    `<component>_detection`, `<component>_matched`, where measured), `score` and `poses`."""
    from metrics.pose_consistency import combine_consistency, pose_consistency
    from training.rendering import render_frames
    from utils.pose_estimation import estimate_frames_pose, write_pose

    was_training = model.training
    model.eval()
    figs = []
    res = int(G.img_resolution)
    try:
        for name, pose, feats in real:
            ws = poses_to_ws(model, feats, device=device)
            frames = (f for b in render_frames(G, iter([ws]), batch=batch, device=device) for f in b)
            if preview is not None and not preview:
                keep = set(preview_indices(np.ones(len(ws), bool), preview_frames).tolist())
                preview.update(name=name, pose=pose, frames={})
                frames = _keep_frames(frames, keep, preview["frames"])
            est = estimate_frames_pose(frames, fps=float(pose.body.fps), width=res, height=res,
                                       num_frames=len(ws), desc=f"validation {name}")
            if preview is not None and preview.get("name") == name:
                preview["estimate"] = est
            figs.append(pose_consistency(pose, est))
            if augment_dir is not None:
                stem = os.path.join(augment_dir, f"{step:06d}-{name}")
                dnnlib.util.save_npy(stem + ".npy", ws.cpu().numpy().astype(np.float32), "latents")
                write_pose(est, stem + ".pose")
    finally:
        model.train(was_training)
    out: dict[str, Any] = {k: v for k, v in combine_consistency(figs).items()
                           if k.endswith(("_mae", "_detection", "_matched")) and v is not None}
    out["score"] = consistency_score(out)
    out["poses"] = len(real)
    return out


def _keep_frames(frames: Iterable[np.ndarray], keep: set[int], store: dict[int, np.ndarray]) -> Iterator[np.ndarray]:
    """Pass `frames` through, copying those whose index is in `keep` into `store`."""
    for i, f in enumerate(frames):
        if i in keep:
            store[i] = f.copy()
        yield f


#----------------------------------------------------------------------------
# Preview pictures: what the LSTM's latents look like, written with each validation.

PREVIEW_MIN_TILE = 64  # pixels: smaller generators' frames are enlarged (nearest neighbour) to this in previews


def preview_indices(valid: np.ndarray, k: int) -> np.ndarray:
    """Up to `k` frame indices spread evenly over the frames where `valid` `[T]` is True (sorted, unique)."""
    frames = np.flatnonzero(np.asarray(valid, bool))
    if len(frames) == 0 or k < 1:
        return np.zeros(0, np.int64)
    pick = np.unique(np.linspace(0, len(frames) - 1, min(k, len(frames))).round().astype(np.int64))
    return frames[pick]


def preview_sheet(sections: Sequence[tuple[str, Sequence[tuple[str, Sequence[np.ndarray]]]]]) -> np.ndarray:
    """Lay out labelled rows of `[H, W, 3]` uint8 images as one `[H', W', 3]` uint8 picture.

    `sections`: `(title, rows)`, each row `(label, images)`; a title line above each section, the row
    labels in a column on the left. All images have one size; tiles below `PREVIEW_MIN_TILE` pixels
    are enlarged by an integer factor so that the labels stay readable."""
    import PIL.Image
    import PIL.ImageDraw
    import PIL.ImageFont

    tiles = [img for _, rows in sections for _, imgs in rows for img in imgs]
    if not tiles:
        raise ValueError("preview_sheet: no images")
    h, w = tiles[0].shape[:2]
    zoom = max(1, math.ceil(PREVIEW_MIN_TILE / min(h, w)))
    th, tw = h * zoom, w * zoom
    try:
        font = PIL.ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = PIL.ImageFont.load_default()
    text_w = lambda t: int(math.ceil(font.getbbox(t)[2]))
    line_h = int(math.ceil(font.getbbox("Hg")[3])) + 6
    label_w = max(text_w(label) for _, rows in sections for label, _ in rows) + 10
    cols = max(len(imgs) for _, rows in sections for _, imgs in rows)
    width = max(label_w + cols * tw, max(text_w(title) for title, _ in sections) + 10)
    height = sum(line_h + len(rows) * th for _, rows in sections)
    sheet = PIL.Image.new("RGB", (width, height), (255, 255, 255))
    draw = PIL.ImageDraw.Draw(sheet)
    y = 0
    for title, rows in sections:
        draw.text((5, y + 3), title, fill=(0, 0, 0), font=font)
        y += line_h
        for label, imgs in rows:
            draw.text((5, y + (th - line_h) // 2 + 3), label, fill=(0, 0, 0), font=font)
            for i, img in enumerate(imgs):
                if img.shape[:2] != (h, w):
                    raise ValueError(f"preview_sheet: images of sizes {h}x{w} and {img.shape[0]}x{img.shape[1]}")
                tile = np.repeat(np.repeat(np.asarray(img, np.uint8)[..., :3], zoom, 0), zoom, 1)
                sheet.paste(PIL.Image.fromarray(np.ascontiguousarray(tile)), (label_w + i * tw, y))
            y += th
    return np.asarray(sheet)


def _render_ws(G: torch.nn.Module, ws: torch.Tensor, device: torch.device, batch: int) -> list[np.ndarray]:
    from training.rendering import render_frames
    return [f for b in render_frames(G, iter([ws]), batch=batch, device=device) for f in b]


class Preview:
    """The picture written with each validation (`preview-<step>.png`): for one held-out pair, its
    pose, G's render of the pair's own W and G's render of the LSTM's W at a few frames; with real
    validation poses, also the first one's input pose, its render and MediaPipe's reading of that
    render (see `validate_real_poses(preview=...)`)."""

    def __init__(self, G: torch.nn.Module, pair: Pair, pairs_dir: str, num_frames: int, device: torch.device,
                 batch: int, held_out: bool):
        from utils.pose_render import render_pose_frame
        self.G, self.pair, self.device, self.batch = G, pair, device, batch
        self.res = int(G.img_resolution)
        self.idx = preview_indices(pair.valid, num_frames)
        pose = pose_features.load_pose(os.path.join(pairs_dir, pair.name + ".pose"), require_hands=False)
        size = (self.res, self.res)
        self.pose_row = [render_pose_frame(pose, int(i), size) for i in self.idx]
        target = torch.from_numpy(np.asarray(pair.ws[self.idx], dtype=np.float32))
        self.target_row = _render_ws(G, target, device, batch)  # the pair's own W: the same every time
        kind = "held-out pair" if held_out else "training pair (none held out)"
        self.title = f"{kind} {pair.name}, frames {', '.join(str(int(i)) for i in self.idx)}"

    def picture(self, model: PoseLSTM, real: dict[str, Any] | None = None) -> np.ndarray:
        """The picture for `model` now; `real` as filled by `validate_real_poses(preview=...)`."""
        from utils.pose_render import render_pose_frame
        was_training = model.training
        model.eval()
        try:
            pred = poses_to_ws(model, self.pair.feats, device=self.device)[torch.from_numpy(self.idx)]
        finally:
            model.train(was_training)
        sections = [(self.title, [("pose", self.pose_row), ("G(pair's W)", self.target_row),
                                  ("G(LSTM's W)", _render_ws(self.G, pred, self.device, self.batch))])]
        if real and real.get("frames"):
            idx = sorted(real["frames"])
            size = (self.res, self.res)
            sections.append((f"real pose {real['name']}, frames {', '.join(str(i) for i in idx)}", [
                ("input pose", [render_pose_frame(real["pose"], i, size) for i in idx]),
                ("G(LSTM's W)", [real["frames"][i] for i in idx]),
                ("MediaPipe on it", [render_pose_frame(real["estimate"], i, size) for i in idx])]))
        return preview_sheet(sections)


def _augment_pairs(augment_dir: str, up_to_step: int, spec, w_dim: int, num_ws: int) -> list[Pair]:
    """The augmentation pairs written at validation steps <= `up_to_step`, in (step, name) order."""
    pairs = []
    for path in sorted(glob.glob(os.path.join(augment_dir, "*.npy"))):
        name = os.path.splitext(os.path.basename(path))[0]
        m = re.match(r"(\d{6})-", name)
        if m is None or int(m.group(1)) > up_to_step or not os.path.isfile(os.path.join(augment_dir, name + ".pose")):
            continue
        pair = _read_pair(augment_dir, name, spec, w_dim, num_ws)
        if pair is not None:
            pairs.append(pair)
    return pairs


def _merge_resume_config(opts: TrainOptions, saved: dict[str, Any]) -> TrainOptions:
    merged = dataclasses.replace(opts)
    if merged.network is None:
        merged.network = saved.get("network")
    for key in TrainOptions.CONTINUE_KEYS:
        if key in saved and ((opts.given is not None and key not in opts.given) or getattr(opts, key) is None):
            setattr(merged, key, saved[key])
    for key in TrainOptions.RUN_KEYS:
        if key not in saved:
            continue
        given = getattr(opts, key)
        if (opts.given is not None and key not in opts.given) or given is None:  # not set: the run's own
            setattr(merged, key, saved[key])
        elif saved[key] == given:
            continue
        elif key in ("pairs", "val") and saved[key] and not os.path.exists(saved[key]) and os.path.isdir(given):
            log.info("Resuming: the run's %s folder %s is now read from %s", key, saved[key], given)
        elif key == "best_by":
            log.info("Resuming: lstm-best.pt is chosen by %s from here on (the run chose it by %s)", given,
                     saved[key])
        else:
            log.warning("Resuming: keeping the checkpoint's %s=%r (given %r)", key, saved[key], given)
            setattr(merged, key, saved[key])
    return merged


def _check_run_inputs_are_there(opts: TrainOptions, given: TrainOptions) -> None:
    """On resume: UserError naming the option to give when a folder or file of the run (`opts`, merged
    from the checkpoint and the options `given`) is not there."""
    for key, what in (("pairs", "pairs folder"), ("val", "folder of real poses"), ("network", "network")):
        path = getattr(opts, key)
        if not path or (key == "network" and dnnlib.util.is_url(path)) or os.path.exists(path):
            continue
        theirs = getattr(given, key)
        also = f" (--{key}={theirs} is not there either)" if theirs and theirs != path else ""
        raise dnnlib.UserError(f"The run's {what} {path} is not there{also}; if it moved, pass "
                               f"--{key}=<its new place>")


def train_pose_lstm(opts: TrainOptions, progress: bool | None = None) -> dict[str, Any]:
    """Train (or, with `opts.resume`, continue training) a pose LSTM; see the module docstring.

    Writes `<outdir>/lstm.pt` (the latest state, for resuming and inference), `preview-<step>.png`
    with each validation (`Preview`; unless `preview_frames` is 0), `<outdir>/lstm-best.pt`
    (the model with the lowest validation MAE, or with `best_by='consistency'` the lowest
    `consistency_score` of the real poses' renders; without optimizer state), TensorBoard events and
    `stats.jsonl` (one line per validation) to `opts.outdir`. Returns the last validation's figures
    (`val_mae`, `val_mean_predictor_mae`, ...) and `step`; with `"nothing_to_do": True` when a resumed
    run is already at `opts.steps`."""
    with contextlib.ExitStack() as folder:  # holds the run folder's lock from when it is made (see _train)
        return _train(opts, progress, folder)


def _train(opts: TrainOptions, progress: bool | None, folder: contextlib.ExitStack) -> dict[str, Any]:
    from tqdm import tqdm

    from torch_utils import misc
    from training.rendering import load_generator
    from utils.video_io import save_png

    ckpt_path = os.path.join(opts.outdir, "lstm.pt")
    resumed = None
    if opts.resume:
        if not os.path.isfile(ckpt_path) and os.path.isdir(opts.outdir):
            raise dnnlib.UserError(f"{ckpt_path} not found: the run in {opts.outdir} stopped before its first "
                                   f"checkpoint (or never started there); start it again without --resume")
        resumed = read_checkpoint(ckpt_path)
        opts, given = _merge_resume_config(opts, resumed["config"]), opts
        _check_run_inputs_are_there(opts, given)
    opts.check()
    if resumed is not None and int(resumed["step"]) >= opts.steps:  # nothing to train: write nothing
        return {"step": int(resumed["step"]), "checkpoint": ckpt_path, "nothing_to_do": True}
    if resumed is None and os.path.exists(ckpt_path):
        raise dnnlib.UserError(f"{ckpt_path} exists; pass --resume to continue that run or choose another --outdir")
    device = misc.get_device(opts.device)

    log.info("Loading generator %s", opts.network)
    G = load_generator(opts.network, device)
    identity = generator_identity(G)
    if resumed is not None:
        check_generator(resumed["generator"], identity, ckpt_path, opts.network)
        spec = pose_features.FeatureSpec.from_dict(resumed["feature_spec"])
    else:
        spec = pose_features.make_feature_spec()

    check_pairs_generator(opts.pairs, identity["hash"], opts.network)
    pairs = load_pairs(opts.pairs, spec, identity["w_dim"], identity["num_ws"], progress=progress)
    train_pairs, val_pairs = split_pairs(pairs, opts.val_fraction, opts.seed)
    log.info("%d training pairs (%d frames), %d validation pairs", len(train_pairs),
             sum(len(p) for p in train_pairs), len(val_pairs))
    real = _load_real_poses(opts.val, spec, opts.val_frames) if opts.val else []
    if real:  # the first validation estimates poses: fail now rather than after val_every steps
        from utils.pose_estimation import require_estimator
        require_estimator()
    # After the checks (a refused run leaves no folder): one process at a time, and temporaries of a killed
    # run removed. A new run's folder may hold what a run killed before its first checkpoint wrote: not its own.
    folder.enter_context(dnnlib.util.writing_folder(opts.outdir, "is being trained by another process; wait for "
                                                                 "it to end, or use another --outdir"))
    if resumed is None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(opts.outdir, "lstm-best.pt"))
        _truncate_stats(os.path.join(opts.outdir, "stats.jsonl"), 0)
    if real or opts.preview_frames:  # G only renders from here on: the fastest correct inference path
        from training.inference import prepare_generator
        G, render_desc = prepare_generator(G, device, "auto")
        log.info("Validation and preview renders: %s", render_desc)
    preview = None
    if opts.preview_frames:
        shown = val_pairs[0] if val_pairs else train_pairs[0]
        preview = Preview(G, shown, opts.pairs, opts.preview_frames, device, opts.render_batch,
                          held_out=bool(val_pairs))
    augment_dir = os.path.join(opts.outdir, "augment") if opts.augment_with_validation else None

    torch.manual_seed(opts.seed)  # the initial weights come from the seed: a run repeats exactly
    model = PoseLSTM(spec.num_features, identity["w_dim"] * (1 if opts.out_mode == "w" else identity["num_ws"]),
                     hidden=opts.hidden, num_layers=opts.num_layers, w_dim=identity["w_dim"],
                     num_ws=identity["num_ws"], out_mode=opts.out_mode).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    rng = np.random.default_rng([opts.seed, 2])
    step, best = 0, math.inf
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        _set_rng_state(rng, resumed["rng"], device)
        step = int(resumed["step"])
        if resumed.get("best_by", "val_mae") == opts.best_by:  # else lstm-best.pt is chosen afresh from here on
            best = float(resumed.get("best_score", resumed.get("best_val_mae", math.inf)))
        if augment_dir is not None:
            train_pairs = train_pairs + _augment_pairs(augment_dir, step, spec, identity["w_dim"], identity["num_ws"])
        log.info("Resuming %s at step %d", ckpt_path, step)
    else:
        mean, std = target_stats(train_pairs, opts.out_mode)
        model.w_mean.copy_(torch.from_numpy(mean))
        model.w_std.copy_(torch.from_numpy(std))

    config = dataclasses.asdict(opts)
    config.pop("resume")
    config.pop("given")

    def checkpoint(with_optimizer: bool = True) -> dict[str, Any]:
        extra: dict[str, Any] = {"step": step, "config": config, "best_score": best, "best_by": opts.best_by}
        if with_optimizer:
            extra.update(optimizer=optimizer.state_dict(), rng=_rng_state(rng, device))
        return make_checkpoint(model, spec, identity, **extra)

    stats_path = os.path.join(opts.outdir, "stats.jsonl")
    if resumed is not None:
        _truncate_stats(stats_path, step)
    writer = _summary_writer(opts.outdir)
    result: dict[str, Any] = {"step": step}
    model.train()
    bar = tqdm(total=opts.steps, initial=step, desc="training", unit="step",
               disable=None if progress is None else not progress)
    try:
        while step < opts.steps:
            x, y, m = (torch.from_numpy(a).to(device) for a in sample_windows(train_pairs, opts.batch, opts.window,
                                                                           opts.out_mode, rng))
            pred, _ = model(x)
            loss = _masked_mae(pred, y, m)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if opts.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip)
            optimizer.step()
            step += 1
            bar.update(1)
            if writer is not None:
                writer.add_scalar("Loss/train_mae", loss.item(), step)
            if step % opts.val_every != 0 and step != opts.steps:
                continue

            # Validation, augmentation, checkpoint (in this order, so that a resume sees the same data).
            result = {"step": step, "train_mae": loss.item()}
            if val_pairs:
                ev = evaluate_pairs(model, val_pairs, device)
                result.update(val_mae=ev["mae"], val_mean_predictor_mae=ev["mean_predictor_mae"])
            real_preview: dict[str, Any] | None = {} if preview is not None else None
            if real:
                fig = validate_real_poses(G, model, real, device, batch=opts.render_batch,
                                          augment_dir=augment_dir, step=step, preview=real_preview,
                                          preview_frames=opts.preview_frames)
                result.update({f"consistency/{k}": v for k, v in fig.items()})
                if augment_dir is not None:
                    new = [p for p in _augment_pairs(augment_dir, step, spec, identity["w_dim"], identity["num_ws"])
                           if p.name.startswith(f"{step:06d}-")]
                    train_pairs = train_pairs + new
                    result["augment_pairs"] = len(new)
            log.info("step %d: %s", step, ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in result.items() if k != "step"))
            picture = preview.picture(model, real_preview) if preview is not None else None
            if picture is not None:
                save_png(picture, os.path.join(opts.outdir, f"preview-{step:06d}.png"), what="preview")
            if writer is not None:
                for k, v in result.items():
                    if k != "step" and isinstance(v, (int, float)):
                        writer.add_scalar(k if "/" in k else f"Val/{k}", v, step)
                if picture is not None:
                    writer.add_image("Preview", picture, step, dataformats="HWC")
                writer.flush()
            with open(stats_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(result) + "\n")
            score = result.get("val_mae" if opts.best_by == "val_mae" else "consistency/score")
            if score is not None and score < best:
                best = score
                save_checkpoint(os.path.join(opts.outdir, "lstm-best.pt"), checkpoint(with_optimizer=False))
            save_checkpoint(ckpt_path, checkpoint())
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    result["checkpoint"] = ckpt_path
    return result


def _truncate_stats(path: str, step: int) -> None:
    """Drop the lines of `stats.jsonl` written after `step` (by a run that stopped before its next
    checkpoint), and a torn last line (a run killed while writing it)."""
    if not os.path.isfile(path):
        return

    def step_of(line: str) -> float:
        try:
            return json.loads(line).get("step", 0)
        except ValueError:
            return math.inf  # not a whole line: dropped

    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    keep = [line for line in lines if step_of(line) <= step]
    if len(keep) != len(lines):
        with dnnlib.util.atomic_write(path, "w") as f:
            f.writelines(keep)


def _summary_writer(outdir: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        log.warning("TensorBoard logging is off (%s)", e)
        return None
    return SummaryWriter(outdir)

#----------------------------------------------------------------------------

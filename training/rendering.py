"""Rendering with a trained generator: loading it, placing its output, latents, frames.

- `load_generator(network, device)`: G_ema (else G) of a snapshot, ready for inference; wrap it in
  `training.inference.prepare_generator` for the fast path before rendering.
- `class_label`, `make_transform`, `set_input_transform`: the conditioning label and the StyleGAN3
  input transform (move and rotate the output).
- `render_frames(G, ws_chunks)`: the one place where G renders video frames (ws -> uint8 NHWC),
  with `describe_render_path` naming how; `truncate_ws` for streams of ws.
- `seeds_to_ws`, `zs_to_ws`, `make_walk`: latents from seeds and z, smooth walks through key latents.

Used by gen_images.py, gen_video.py, utils/make_animations.py and the pose LSTM's validation.
Pickles run code when loaded: use networks from trusted sources only.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np
import torch

import dnnlib
import legacy
from utils.video_io import to_uint8

#----------------------------------------------------------------------------
# Loading.

def load_generator(network: str, device: torch.device, rebuild: bool = True) -> torch.nn.Module:
    """G_ema (else G) of a snapshot, on `device`, in eval mode; rebuilt as our class when possible."""
    data = legacy.load_network_pkl(network)
    G = data["G_ema"] if data["G_ema"] is not None else data["G"]
    if G is None:
        raise dnnlib.UserError(f"{network} holds no generator (neither 'G_ema' nor 'G')")
    missing = [a for a in ("z_dim", "c_dim", "w_dim", "num_ws", "img_resolution", "mapping", "synthesis")
               if not hasattr(G, a)]
    if not isinstance(G, torch.nn.Module) or missing:
        raise dnnlib.UserError(f"{network}: its generator is a {type(G).__name__}, not a StyleGAN generator "
                               f"(it lacks {', '.join(missing) or 'torch.nn.Module'})")
    if rebuild and legacy.can_rebuild(G):
        G = legacy.rebuild_network(G)
    return G.eval().requires_grad_(False).to(device)


def class_label(G: torch.nn.Module, class_idx: int | None, device: torch.device) -> torch.Tensor | None:
    """One-hot label [1, c_dim] for a conditional G, None for an unconditional one."""
    if G.c_dim == 0:
        if class_idx is not None:
            raise dnnlib.UserError(f"--class={class_idx} given, but the network is unconditional; drop --class")
        return None
    if class_idx is None:
        raise dnnlib.UserError(f"The network is conditional ({G.c_dim} classes): pass --class=N with "
                               f"0 <= N < {G.c_dim}")
    if not 0 <= class_idx < G.c_dim:
        raise dnnlib.UserError(f"--class={class_idx} is out of range for a network with {G.c_dim} classes")
    c = torch.zeros([1, G.c_dim], device=device)
    c[:, class_idx] = 1
    return c

#----------------------------------------------------------------------------
# StyleGAN3 input transform.

def make_transform(translate: tuple[float, float], angle: float) -> np.ndarray:
    """3x3 matrix that rotates image content by `angle` degrees and then moves it by `translate`
    (in units of the image width/height; x right, y down). StyleGAN3's `synthesis.input.transform`
    maps output coordinates to input coordinates, so it takes the inverse of this matrix
    (see `set_input_transform`). Same convention as the published gen_images/gen_video tools."""
    rad = np.deg2rad(angle)
    c, s = np.cos(rad), np.sin(rad)
    return np.array([[c, s, translate[0]],
                     [-s, c, translate[1]],
                     [0, 0, 1]], dtype=np.float64)


def set_input_transform(G: torch.nn.Module, translate: tuple[float, float] = (0, 0), angle: float = 0) -> None:
    """Move and rotate the output of a StyleGAN3 generator (no effect on what it has learned)."""
    if not hasattr(getattr(G, "synthesis", None), "input") or not hasattr(G.synthesis.input, "transform"):
        raise dnnlib.UserError("--translate/--rotate need a StyleGAN3 generator (this network has no input transform)")
    m = np.linalg.inv(make_transform(translate, angle))
    with torch.no_grad():
        G.synthesis.input.transform.copy_(torch.from_numpy(m))

#----------------------------------------------------------------------------
# Rendering: ws -> uint8 frames (the one place where G runs for video).

def describe_render_path(G: torch.nn.Module, device: torch.device, batch: int, description: str | None = None) -> str:
    """One line naming how `render_frames` runs G on `device` (`description`: the one
    `training.inference.prepare_generator` returned, which is exact also when G comes back unchanged)."""
    if description:
        return f"{description}; batch {batch}"
    if getattr(G, "description", None):  # prepared by training.inference.prepare_generator
        return f"{G.description}; batch {batch}"
    res = int(G.img_resolution)
    return (f"Rendering {res}x{res} frames with {type(G.synthesis).__module__}.{type(G.synthesis).__name__} "
            f"on {device.type}: float32, reference PyTorch ops, batch {batch}")


@torch.no_grad()
def render_frames(G: torch.nn.Module, ws_iter: Iterable[torch.Tensor], batch: int = 4,
                  device: torch.device | str | None = None, noise_mode: str = "const") -> Iterator[np.ndarray]:
    """Render a stream of latents with `G.synthesis`.

    Args:
        G: generator (spec section 3 interface), on `device`, eval mode.
        ws_iter: chunks of ws `[n, num_ws, w_dim]` (any chunk sizes); re-batched to `batch`.
        batch: images per synthesis call.
        noise_mode: 'const' (deterministic), 'random' or 'none'.
    Yields `[b, H, W, C]` uint8 frames (0..255), `b <= batch`, in order; memory holds at most one
    batch of images."""
    device = torch.device(device) if device is not None else next(G.parameters()).device
    batch = max(1, int(batch))
    pending: list[torch.Tensor] = []
    count = 0
    for ws in ws_iter:
        if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
            raise ValueError(f"render_frames: ws of shape {list(ws.shape)}, expected [n, {G.num_ws}, {G.w_dim}]")
        pending.append(ws)
        count += ws.shape[0]
        while count >= batch:
            cat = torch.cat(pending)
            head, rest = cat[:batch], cat[batch:]
            pending, count = ([rest] if rest.shape[0] else []), rest.shape[0]
            yield to_uint8(G.synthesis(head.to(device, torch.float32).contiguous(), noise_mode=noise_mode))
    if count:
        yield to_uint8(G.synthesis(torch.cat(pending).to(device, torch.float32).contiguous(), noise_mode=noise_mode))


def truncate_ws(chunks: Iterable[torch.Tensor], w_avg: torch.Tensor, psi: float) -> Iterator[torch.Tensor]:
    """Lerp each W toward `w_avg` `[w_dim]`: `w_avg + psi * (w - w_avg)` (psi 1 passes through)."""
    for ws in chunks:
        yield ws if psi == 1 else torch.lerp(w_avg.to(ws), ws, psi)

#----------------------------------------------------------------------------
# Latents: seeds and z to W, walks through key latents.

def seeds_to_ws(G: torch.nn.Module, seeds: list[int], truncation_psi: float = 1.0,
                device: torch.device | str = "cpu") -> np.ndarray:
    """ws `[len(seeds), num_ws, w_dim]` float32 of the z of each seed (`RandomState(seed).randn(z_dim)`,
    the gen_images convention). Unconditional generators only."""
    if G.c_dim != 0:
        raise dnnlib.UserError(f"The network is conditional ({G.c_dim} classes); latent walks need an "
                               f"unconditional generator")
    z = np.stack([np.random.RandomState(seed).randn(G.z_dim) for seed in seeds])
    return zs_to_ws(G, z, truncation_psi, device)


@torch.no_grad()
def zs_to_ws(G: torch.nn.Module, z: np.ndarray, truncation_psi: float = 1.0,
             device: torch.device | str = "cpu") -> np.ndarray:
    """`G.mapping` of z `[n, z_dim]` -> ws `[n, num_ws, w_dim]` float32 (numpy)."""
    zt = torch.from_numpy(np.asarray(z, dtype=np.float32)).to(device)
    c = torch.zeros([zt.shape[0], G.c_dim], device=device)
    return G.mapping(zt, c, truncation_psi=truncation_psi).cpu().numpy().astype(np.float32)


def make_walk(keys: np.ndarray, kind: str = "cubic", loop: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """A smooth path through key latents `keys` `[K, ...]`, as a function of time in key units.

    `loop=False`: passes through key k at t = k, for 0 <= t <= K-1 (cubic: natural spline).
    `loop=True`: periodic with period K (after key K-1 it returns to key 0 at t = K).
    `kind`: 'cubic' (C2-smooth, scipy CubicSpline) or 'linear'. Returns f(t `[n]`) -> `[n, ...]` float32."""
    from scipy.interpolate import CubicSpline
    keys = np.asarray(keys, dtype=np.float64)
    if kind not in ("cubic", "linear"):
        raise dnnlib.UserError(f"Unknown interpolation {kind!r}; use cubic or linear")
    num = keys.shape[0]
    if num == 0:
        raise ValueError("make_walk needs at least one key")
    if num == 1:
        return lambda t: np.broadcast_to(keys[0], (len(np.atleast_1d(t)),) + keys.shape[1:]).astype(np.float32)
    flat = keys.reshape(num, -1)
    if loop:
        flat = np.concatenate([flat, flat[:1]])
    x = np.arange(flat.shape[0], dtype=np.float64)
    period = float(num)

    if kind == "cubic":
        spline = CubicSpline(x, flat, axis=0, bc_type="periodic" if loop else "natural")

        def interp(t: np.ndarray) -> np.ndarray:
            return spline(t)
    else:
        def interp(t: np.ndarray) -> np.ndarray:
            i0 = np.clip(np.floor(t).astype(int), 0, len(x) - 2)
            a = (t - i0)[:, None]
            return flat[i0] * (1 - a) + flat[i0 + 1] * a

    def f(t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        t = np.mod(t, period) if loop else np.clip(t, 0, num - 1)
        return interp(t).reshape((len(t),) + keys.shape[1:]).astype(np.float32)
    return f

#----------------------------------------------------------------------------

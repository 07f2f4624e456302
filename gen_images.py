"""Render images from a trained generator, one PNG per seed.

    python gen_images.py --network=network-snapshot.pkl --seeds=0-3,7 --trunc=0.7 --outdir=out

The seed picks the latent z (`numpy.random.RandomState(seed).randn(1, z_dim)`, as in the
published tools, so a seed gives the same image there and here). StyleGAN3 networks can be
translated and rotated through their input transform (`--translate`, `--rotate`).

The parsing helpers `parse_range`, `parse_vec2` and `make_transform` are importable
(`from gen_images import parse_range`) and shared with the other scripts (gen_video's `--seeds`).
Pickles run code when loaded: use networks from trusted sources only.
"""

from __future__ import annotations

import logging
import os
import re

import click
import numpy as np
import torch

import dnnlib
import legacy
from torch_utils import misc
from training.inference import prepare_generator

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------
# Parsing helpers (shared with other scripts).

def parse_range(s: str | int | list, name: str = '--seeds') -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]. Also accepts an int or a list of ints. Inclusive ranges,
    order kept, duplicates kept. Raises dnnlib.UserError on anything else."""
    if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
        return [int(s)]
    if isinstance(s, (list, tuple)):
        return [v for item in s for v in parse_range(item, name)]
    if not isinstance(s, str):
        raise dnnlib.UserError(f"{name}: expected a list like '0-3,7', got {s!r}")
    values = []
    for part in s.split(','):
        part = part.strip()
        m = re.fullmatch(r'(\d+)\s*(?:-\s*(\d+))?', part)
        if m is None:
            raise dnnlib.UserError(f"{name}: cannot read {part!r} in {s!r}; use non-negative integers and "
                                   f"ranges like '0-3,7'")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise dnnlib.UserError(f"{name}: range {part!r} runs backwards; write it as '{hi}-{lo}'")
        values.extend(range(lo, hi + 1))
    return values


def parse_vec2(s: str | tuple | list, name: str = '--translate') -> tuple[float, float]:
    """'0.1,-0.2' -> (0.1, -0.2). Raises dnnlib.UserError unless there are exactly two numbers."""
    if isinstance(s, (tuple, list)):
        parts = list(s)
    elif isinstance(s, str):
        parts = s.split(',')
    else:
        raise dnnlib.UserError(f"{name}: expected two numbers 'x,y', got {s!r}")
    try:
        values = [float(p) for p in parts]
    except (TypeError, ValueError):
        values = []
    if len(values) != 2 or not all(np.isfinite(values)):
        raise dnnlib.UserError(f"{name}: expected two numbers 'x,y', got {s!r}")
    return values[0], values[1]


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
    if not hasattr(getattr(G, 'synthesis', None), 'input') or not hasattr(G.synthesis.input, 'transform'):
        raise dnnlib.UserError("--translate/--rotate need a StyleGAN3 generator (this network has no input transform)")
    m = np.linalg.inv(make_transform(translate, angle))
    with torch.no_grad():
        G.synthesis.input.transform.copy_(torch.from_numpy(m))

#----------------------------------------------------------------------------

def load_generator(network: str, device: torch.device, rebuild: bool = True) -> torch.nn.Module:
    """G_ema (else G) of a snapshot, on `device`, in eval mode; rebuilt as our class when possible."""
    data = legacy.load_network_pkl(network)
    G = data['G_ema'] if data['G_ema'] is not None else data['G']
    if G is None:
        raise dnnlib.UserError(f"{network} holds no generator (neither 'G_ema' nor 'G')")
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


def to_uint8_hwc(img: torch.Tensor) -> np.ndarray:
    """[C, H, W] in about [-1, 1] -> [H, W, C] uint8."""
    return (img.permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()


def save_png(array: np.ndarray, path: str) -> None:
    import PIL.Image
    mode = 'L' if array.shape[2] == 1 else 'RGB'
    image = PIL.Image.fromarray(array[:, :, 0] if mode == 'L' else array, mode)
    with dnnlib.util.atomic_write(path) as f:
        image.save(f, format='PNG')

#----------------------------------------------------------------------------

@click.command()
@click.option('--network', 'network_pkl', required=True, metavar='PATH|URL', help='Network pickle (trusted files only)')
@click.option('--seeds', required=True, metavar='LIST', help="Seeds, e.g. '0-3,7'")
@click.option('--trunc', 'truncation_psi', type=float, default=1, show_default=True, help='Truncation psi')
@click.option('--class', 'class_idx', type=int, default=None, help='Class label (conditional networks only)')
@click.option('--noise-mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True,
              help='Noise inputs (StyleGAN2)')
@click.option('--translate', default='0,0', show_default=True, metavar='X,Y',
              help='Move the image (StyleGAN3), in image widths')
@click.option('--rotate', type=float, default=0, show_default=True, metavar='DEG', help='Rotate the image (StyleGAN3)')
@click.option('--outdir', required=True, metavar='DIR', help='Where to write seed%04d.png')
@click.option('--device', default='auto', show_default=True, help='auto, cpu or cuda')
@click.option('--precision', type=click.Choice(['auto', 'fp32', 'bf16']), default='auto', show_default=True,
              help='CPU rendering: bf16 convolutions where the CPU has bfloat16 units (auto), or fp32')
@dnnlib.util.cli_main
def generate_images(network_pkl: str, seeds: str, truncation_psi: float, class_idx: int | None, noise_mode: str,
                    translate: str, rotate: float, outdir: str, device: str, precision: str) -> None:
    """Render one image per seed with a StyleGAN2/StyleGAN3 generator.

    \b
    python gen_images.py --network=snapshot.pkl --seeds=0-3 --trunc=0.7 --outdir=out
    python gen_images.py --network=stylegan3-r.pkl --seeds=5 --translate=0.1,0 --rotate=10 --outdir=out"""
    seed_list = parse_range(seeds, '--seeds')
    if not seed_list:
        raise dnnlib.UserError("--seeds: no seeds given")
    bad = [s for s in seed_list if s >= 2 ** 32]
    if bad:
        raise dnnlib.UserError(f"--seeds: {bad[0]} is too large (seeds are 0 .. 2**32-1)")
    shift = parse_vec2(translate, '--translate')
    dev = misc.get_device(device)

    log.info('Loading %s', network_pkl)
    G, path = prepare_generator(load_generator(network_pkl, dev), dev, precision)
    log.info('%s', path)
    c = class_label(G, class_idx, dev)
    if shift != (0, 0) or rotate != 0:
        set_input_transform(G, shift, rotate)

    os.makedirs(outdir, exist_ok=True)
    for i, seed in enumerate(seed_list):
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).to(device=dev, dtype=torch.float32)
        with torch.no_grad():
            img = G(z, c, truncation_psi=truncation_psi, noise_mode=noise_mode)
        path = os.path.join(outdir, f'seed{seed:04d}.png')
        save_png(to_uint8_hwc(img[0]), path)
        click.echo(f'[{i + 1}/{len(seed_list)}] {path}')


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    generate_images()

#----------------------------------------------------------------------------

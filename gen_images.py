"""Render images from a trained generator, one PNG per seed.

    python gen_images.py --network=network-snapshot.pkl --seeds=0-3,7 --trunc=0.7 --outdir=out

The seed picks the latent z (`numpy.random.RandomState(seed).randn(1, z_dim)`, as in the
published tools, so a seed gives the same image there and here). StyleGAN3 networks can be
translated and rotated through their input transform (`--translate`, `--rotate`).

Loading, the class label and the input transform live in `training/rendering.py`; the option
parsers (`--seeds`, `--translate`) in `dnnlib.util`. Pickles run code when loaded: use networks
from trusted sources only.
"""

from __future__ import annotations

import logging
import os

import click
import numpy as np
import torch

import dnnlib
from dnnlib.util import parse_range, parse_vec2
from torch_utils import misc
from training.inference import prepare_generator
from training.rendering import class_label, load_generator, set_input_transform
from utils.video_io import save_png, to_uint8

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------

@click.command()
@click.option('--network', 'network_pkl', required=True, metavar='PATH|URL', help='Network pickle (trusted files only)')
@click.option('--seeds', required=True, metavar='LIST', help="Seeds, e.g. '0-3,7'")
@click.option('--trunc', 'truncation_psi', type=dnnlib.util.finite_float(), default=1, show_default=True,
              help='Truncation psi')
@click.option('--class', 'class_idx', type=int, default=None, help='Class label (conditional networks only)')
@click.option('--noise-mode', type=click.Choice(['const', 'random', 'none']), default='const', show_default=True,
              help='Noise inputs (StyleGAN2)')
@click.option('--translate', default='0,0', show_default=True, metavar='X,Y',
              help='Move the image (StyleGAN3), in image widths')
@click.option('--rotate', type=dnnlib.util.finite_float(), default=0, show_default=True, metavar='DEG',
              help='Rotate the image (StyleGAN3)')
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
    seed_list = list(dict.fromkeys(parse_range(seeds, '--seeds', max_value=2 ** 32 - 1)))  # each image once
    if not seed_list:
        raise dnnlib.UserError("--seeds: no seeds given")
    shift = parse_vec2(translate, '--translate')
    dev = misc.get_device(device)

    log.info('Loading %s', network_pkl)
    G = load_generator(network_pkl, dev)
    c = class_label(G, class_idx, dev)
    if shift != (0, 0) or rotate != 0:
        set_input_transform(G, shift, rotate)
    G, desc = prepare_generator(G, dev, precision)  # after the input transform: the inference network is final
    dnnlib.util.make_dirs(outdir, "output folder")  # after the checks: a bad option leaves no empty folder
    log.info('%s', desc)

    for i, seed in enumerate(seed_list):
        z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).to(device=dev, dtype=torch.float32)
        with torch.no_grad():
            img = G(z, c, truncation_psi=truncation_psi, noise_mode=noise_mode)
        path = os.path.join(outdir, f'seed{seed:04d}.png')
        save_png(to_uint8(img[0]), path)
        click.echo(f'[{i + 1}/{len(seed_list)}] {path}')


if __name__ == '__main__':
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    generate_images()

#----------------------------------------------------------------------------

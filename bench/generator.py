"""Time per 256x256 image of the generators as train.py builds them, random weights, on this machine.

    python bench/generator.py                      # all configurations, batch 1 and 8
    python bench/generator.py --cfgs=stylegan2 --batches=1 --reps=3

Configurations (z_dim = w_dim = 512, num_fp16_res=4, conv_clamp=256, channel_max 512):
stylegan3-t (cbase 32768), stylegan3-r at --cbase 16384 and 32768 (train.py doubles both for -r,
with 1x1 convolutions and radial filters), stylegan2 (cbase 32768). Each row: `reps` timed passes
(after one untimed warm-up pass at batch 1 on CUDA, or with --warmup), reported as seconds per
image (median of the passes divided by the batch size), as wall time and as CPU time of the
process, with the 1-minute load average of the machine. On the CPU a pass takes seconds to
minutes, so the default skips the warm-up there to keep the run short: the first pass at a batch
size then includes one-off set-up costs (allocation, convolution algorithm selection), which makes
the figures upper bounds. The results are relative to this machine: compare rows of one run, not runs on different machines.
"""

from __future__ import annotations

import os
import sys
import time

import click
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.machine import describe_machine, load_average  # noqa: E402
from training import networks_stylegan2, networks_stylegan3  # noqa: E402

CONFIGS = {
    'stylegan3-t': ('stylegan3-t', 32768),
    'stylegan3-r-cbase16384': ('stylegan3-r', 16384),
    'stylegan3-r-cbase32768': ('stylegan3-r', 32768),
    'stylegan2': ('stylegan2', 32768),
}


def build_generator(cfg: str, cbase: int, resolution: int = 256) -> torch.nn.Module:
    """G as train.py builds --cfg (spec section 3), random weights, eval mode."""
    common = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3, num_fp16_res=4,
                  conv_clamp=256)
    if cfg == 'stylegan2':
        G = networks_stylegan2.Generator(channel_base=cbase, channel_max=512, fused_modconv_default='inference_only',
                                         mapping_kwargs=dict(num_layers=8), **common)
    elif cfg == 'stylegan3-t':
        G = networks_stylegan3.Generator(channel_base=cbase, channel_max=512, magnitude_ema_beta=0.5 ** (32 / 20000),
                                         mapping_kwargs=dict(num_layers=2), **common)
    elif cfg == 'stylegan3-r':
        G = networks_stylegan3.Generator(channel_base=cbase * 2, channel_max=1024, conv_kernel=1,
                                         use_radial_filters=True, magnitude_ema_beta=0.5 ** (32 / 20000),
                                         mapping_kwargs=dict(num_layers=2), **common)
    else:
        raise ValueError(cfg)
    return G.eval().requires_grad_(False)


def time_generator(G: torch.nn.Module, batch: int, reps: int, device: torch.device) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds of this process) per image over `reps` passes of G(z).

    On a shared machine the wall time grows with other work; the CPU time (all threads of this
    process) much less, so both are reported."""
    walls, cpus = [], []
    for rep in range(reps):
        z = torch.from_numpy(np.random.RandomState(rep).randn(batch, G.z_dim)).float().to(device)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            G(z, None, noise_mode='const')
        if device.type == 'cuda':
            torch.cuda.synchronize()
        walls.append((time.perf_counter() - t0) / batch)
        cpus.append((time.process_time() - c0) / batch)
    return float(np.median(walls)), float(np.median(cpus))


@click.command()
@click.option('--cfgs', default=','.join(CONFIGS), show_default=True, help='Comma-separated configurations')
@click.option('--batches', default='1,8', show_default=True, help='Comma-separated batch sizes')
@click.option('--reps', type=int, default=1, show_default=True, help='Timed passes per row')
@click.option('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
@click.option('--device', default='cpu', show_default=True, help='cpu or cuda')
@click.option('--warmup/--no-warmup', default=None, help='Untimed pass first (default: on CUDA only)')
def main(cfgs: str, batches: str, reps: int, threads: int | None, device: str, warmup: bool | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    names = [c.strip() for c in cfgs.split(',') if c.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise click.BadParameter(f'unknown configuration {unknown[0]!r}; choose from {", ".join(CONFIGS)}')
    batch_sizes = [int(b) for b in batches.split(',')]
    if warmup is None:
        warmup = dev.type == 'cuda'

    print(f'Machine: {describe_machine()}')
    print(f'{"configuration":<26}{"params (M)":>11}{"batch":>7}{"s / image":>12}{"images / s":>12}{"CPU s / image":>15}{"load":>7}')
    for name in names:
        cfg, cbase = CONFIGS[name]
        torch.manual_seed(0)
        G = build_generator(cfg, cbase).to(dev)
        params = sum(p.numel() for p in G.parameters()) / 1e6
        if warmup:
            time_generator(G, 1, 1, dev)
        for batch in batch_sizes:
            sec, cpu_sec = time_generator(G, batch, reps, dev)
            print(f'{name:<26}{params:>11.1f}{batch:>7d}{sec:>12.2f}{1 / sec:>12.3f}{cpu_sec:>15.2f}'
                  f'{load_average():>7.1f}', flush=True)
        del G


if __name__ == '__main__':
    main()

"""CPU benchmark: our reference `upfirdn2d` and `filtered_lrelu` against the naive definition.

The naive definition (written here) zero-stuffs the image, pads it, convolves it with the full 2-D
outer-product filter in one depthwise convolution and keeps every `down`-th sample; the naive
`filtered_lrelu` chains two of those around the leaky ReLU. The layer is a StyleGAN3 synthesis
layer at 52x52 px: batch 1, 512 channels, 12-tap filters, 2x upsampling around the nonlinearity
and 2x downsampling back, padding from the StyleGAN3 layer formula. Repetitions of all variants
are interleaved in one run so that load changes hit them alike; the script prints the machine,
median times, ratios, and checks that both paths agree.

    python bench/ops_cpu.py [--reps 7] [--threads N]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import click
import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.machine import describe_machine, load_average  # noqa: E402
from torch_utils.ops import filtered_lrelu, upfirdn2d  # noqa: E402

#----------------------------------------------------------------------------
# The naive definition.

def naive_upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1, padding=(0, 0, 0, 0),
                    gain: float = 1) -> torch.Tensor:
    """Zero-stuffing + padding + one full 2-D depthwise convolution + decimation. `f` 1-D (outer product) or 2-D."""
    N, C, H, W = x.shape
    z = x.new_zeros([N, C, H * up, W * up])
    z[:, :, ::up, ::up] = x
    z = F.pad(z, list(padding))
    f2 = (torch.outer(f, f) if f.ndim == 1 else f) * gain
    z = F.conv2d(z, f2.flip([0, 1])[None, None].expand(C, 1, *f2.shape).contiguous(), groups=C)
    return z[:, :, ::down, ::down]


def naive_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    z = naive_upfirdn2d(x + b[None, :, None, None], fu, up=up, padding=padding, gain=up ** 2)
    z = (F.leaky_relu(z, slope) * gain).clamp(-clamp, clamp)
    return naive_upfirdn2d(z, fd, down=down)

#----------------------------------------------------------------------------
# Machine and timing.

def time_ms(fn) -> tuple[float, float]:
    """(wall-clock ms, process CPU ms) of one call. On a shared machine the CPU time is the steadier
    measure of the work done; the wall clock includes waiting for the cores."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def saved_bytes(fn) -> int:
    """Bytes that autograd keeps for the backward pass of `fn()` (tensors saved by autograd nodes,
    each storage once, plus the derivative codes our filtered_lrelu keeps on its node)."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn()
    extra = sum(c.numel() * c.element_size() for c in getattr(y.grad_fn, "codes", None) or [])
    return sum(storages.values()) + extra

#----------------------------------------------------------------------------

@click.command()
@click.option("--reps", default=7, show_default=True, help="Interleaved repetitions of every variant.")
@click.option("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
def main(reps: int, threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)

    # StyleGAN3 layer, 52 px in and out, 12-tap filters, 2x up / 2x down around the nonlinearity.
    C, size, up, down, taps = 512, 52, 2, 2, 12
    pad_total = (size - 1) * down + 1 - size * up + 2 * taps - 2
    pad_lo = (pad_total + up) // 2
    padding = [pad_lo, pad_total - pad_lo] * 2
    f = upfirdn2d.setup_filter(scipy.signal.firwin(taps, 1 / up), separable=True)
    x = torch.randn(1, C, size, size)
    b = torch.randn(C)
    z = torch.randn(1, C, size * up + pad_total - taps + 1, size * up + pad_total - taps + 1)
    gain, slope, clamp = float(np.sqrt(2)), 0.2, 256.0

    xg = x.clone().requires_grad_()
    dy = torch.randn(1, C, size, size)

    def flrelu_fwd_bwd(fn):
        def run():
            xg.grad = None
            fn(xg, f, f, b, up=up, down=down, padding=padding, gain=gain, slope=slope, clamp=clamp).backward(dy)
            return xg.grad
        return run

    variants = {  # name: (ours, naive)
        "upfirdn2d up 2x (52 -> 114 px)": (
            lambda: upfirdn2d.upfirdn2d(x, f, up=up, padding=padding, gain=up ** 2),
            lambda: naive_upfirdn2d(x, f, up=up, padding=padding, gain=up ** 2)),
        "upfirdn2d down 2x (114 -> 52 px)": (
            lambda: upfirdn2d.upfirdn2d(z, f, down=down),
            lambda: naive_upfirdn2d(z, f, down=down)),
        "filtered_lrelu forward": (
            lambda: filtered_lrelu.filtered_lrelu(x, f, f, b, up=up, down=down, padding=padding, gain=gain,
                                                  slope=slope, clamp=clamp),
            lambda: naive_filtered_lrelu(x, f, f, b, up, down, padding, gain, slope, clamp)),
        "filtered_lrelu forward+backward (dx)": (
            flrelu_fwd_bwd(filtered_lrelu.filtered_lrelu),
            flrelu_fwd_bwd(lambda x, fu, fd, b, **kw: naive_filtered_lrelu(x, fu, fd, b, **kw))),
    }

    print(f"machine: {describe_machine()}; load average {load_average():.1f} at start")
    print(f"layer: batch 1, {C} channels, {size}x{size} px, up {up}, down {down}, {taps}-tap separable filters, "
          f"padding {padding}, clamp {clamp:g}")

    # Agreement (and warm-up).
    with torch.no_grad():
        for name, (ours, naive) in list(variants.items())[:3]:
            err = rel_err(ours(), naive())
            assert err < 1e-4, (name, err)
            print(f"  check {name}: max relative difference {err:.1e}")
    err = rel_err(variants["filtered_lrelu forward+backward (dx)"][0]().clone(),
                  variants["filtered_lrelu forward+backward (dx)"][1]().clone())
    assert err < 1e-4, err
    print(f"  check filtered_lrelu gradient: max relative difference {err:.1e}")

    times = {name: ([], []) for name in variants}
    for r in range(reps):
        for name, (ours, naive) in variants.items():
            pair = [(0, ours), (1, naive)] if r % 2 == 0 else [(1, naive), (0, ours)]
            for k, fn in pair:
                if name.endswith("(dx)"):
                    times[name][k].append(time_ms(fn))
                else:
                    with torch.no_grad():
                        times[name][k].append(time_ms(fn))

    kw = dict(up=up, down=down, padding=padding, gain=gain, slope=slope, clamp=clamp)
    mib_ours = saved_bytes(lambda: filtered_lrelu.filtered_lrelu(xg, f, f, b, **kw)) / 2**20
    mib_naive = saved_bytes(lambda: naive_filtered_lrelu(xg, f, f, b, **kw)) / 2**20
    print(f"  kept for backward by filtered_lrelu: ours {mib_ours:.1f} MiB, naive {mib_naive:.1f} MiB")

    print(f"\nmedian of {reps} interleaved repetitions (load average {load_average():.1f} at the end); "
          "wall-clock ms and process CPU ms:")
    print(f"  {'op':38s} {'ours':>8s} {'naive':>8s} {'ratio':>7s}   {'ours CPU':>9s} {'naive CPU':>9s} {'ratio':>7s}")
    for name, (t_ours, t_naive) in times.items():
        wo, wn = (statistics.median(t[0] for t in ts) for ts in (t_ours, t_naive))
        co, cn = (statistics.median(t[1] for t in ts) for ts in (t_ours, t_naive))
        print(f"  {name:38s} {wo:8.1f} {wn:8.1f} {wn / wo:6.1f}x   {co:9.1f} {cn:9.1f} {cn / co:6.1f}x")
    print("  (ratio = naive / ours)")


if __name__ == "__main__":
    main()

#----------------------------------------------------------------------------

"""CPU rendering speed: the reference networks against the fast path of `training.inference`.

    python bench/cpu_render.py                        # all configurations, 5 rounds, batch 1
    python bench/cpu_render.py --cfgs=stylegan3-r-cbase16384 --rounds=3 --ref-rounds=1
    python bench/cpu_render.py --markdown             # also print the table for bench/RESULTS.md

Prints, in one run: the machine's float32 and bfloat16 matrix-multiply rates (GFLOP/s, measured
between the renders with the threads the renders use); then for each configuration (256x256, random
weights, built as train.py builds it; see bench/generator.py) and path (reference float32 ops,
fast float32, fast bfloat16): seconds per frame (median over rounds, wall clock, and the process CPU
time beside it), frames per second, the generator's FLOPs per frame (`training.inference.count_flops`),
the achieved GFLOP/s and its fraction of the matching matrix-multiply rate, and the PSNR of the
frame against the reference path (float, over the nominal [-1, 1] range; and of the 8-bit frames
that gen_video writes). Rounds interleave all paths and the matmul probes, so a change of load on
a shared machine hits them alike; the load average is printed at the start and at the end.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time

import click
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.generator import CONFIGS, build_generator  # noqa: E402
from bench.machine import describe_machine, load_average  # noqa: E402
from training import inference  # noqa: E402

DEFAULT_CFGS = ("stylegan3-r-cbase16384", "stylegan3-t", "stylegan2")
PATHS = ("ref-fp32", "fast-fp32", "fast-bf16")

#----------------------------------------------------------------------------
# Measurements.

MATMUL_SHAPES = ((1024, 1024, 8192), (2048, 2048, 4096), (512, 4096, 8192))


def matmul_rate(dtype: torch.dtype, reps: int = 2) -> float:
    """Best GFLOP/s of [n, k] x [k, m] products in `dtype` over a few shapes, through MKL (torch.mm) and
    oneDNN (with the second operand packed as its linear layer wants it): the machine's matmul rate."""
    best = 0.0
    for n, k, m in MATMUL_SHAPES:
        a = torch.randn(n, k).to(dtype)
        b = torch.randn(k, m).to(dtype)
        fns = [lambda: torch.mm(a, b)]
        if inference._linear_pointwise_ok():
            bt = b.t().contiguous()
            fns.append(lambda: torch.ops.mkldnn._linear_pointwise(a, bt, None, "none", [], ""))
        for fn in fns:
            fn()
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                best = max(best, 2 * n * k * m / (time.perf_counter() - t) / 1e9)
    return best


class KernelClock:
    """Wall time spent inside the C++ kernel calls of the fast path (the rest is mostly convolutions)."""

    def __init__(self):
        self.seconds = 0.0
        self._run = inference.cpu_kernels.run_filtered_lrelu

    def __enter__(self):
        def run(*args, **kwargs):
            t = time.perf_counter()
            try:
                return self._run(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t
        inference.cpu_kernels.run_filtered_lrelu = run
        return self

    def __exit__(self, *exc):
        inference.cpu_kernels.run_filtered_lrelu = self._run


def timed(fn) -> tuple[float, float, torch.Tensor]:
    """(wall seconds, process CPU seconds, result)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t, time.process_time() - c, out


def psnr(img: torch.Tensor, ref: torch.Tensor) -> float:
    """dB over the nominal range [-1, 1] (peak-to-peak 2), float images, no clipping."""
    mse = float((img.double() - ref.double()).square().mean())
    return 10 * math.log10(4 / mse) if mse > 0 else math.inf


def psnr8(img: torch.Tensor, ref: torch.Tensor) -> float:
    """dB of the 8-bit frames (as gen_video writes them) over 255."""
    from utils.video_io import to_uint8
    a, b = to_uint8(img).astype(np.float64), to_uint8(ref).astype(np.float64)
    mse = float(np.square(a - b).mean())
    return 10 * math.log10(255 ** 2 / mse) if mse > 0 else math.inf

#----------------------------------------------------------------------------

@click.command()
@click.option("--cfgs", default=",".join(DEFAULT_CFGS), show_default=True,
              help=f"Comma-separated configurations of bench/generator.py: {', '.join(CONFIGS)}")
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed rounds of the fast paths (medians reported)")
@click.option("--ref-rounds", type=click.IntRange(min=0), default=1, show_default=True,
              help="Of these, rounds that also time the reference (about 10-60 s a frame)")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Frames per synthesis call")
@click.option("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
@click.option("--markdown", is_flag=True, help="Also print a markdown table")
def main(cfgs: str, rounds: int, ref_rounds: int, batch: int, threads: int | None, markdown: bool) -> None:
    """Reference vs fast CPU rendering (see the module docstring)."""
    if threads:
        torch.set_num_threads(threads)
    names = [c.strip() for c in cfgs.split(",") if c.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise click.BadParameter(f"unknown configuration {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    ref_rounds = min(ref_rounds, rounds)
    print(f"Machine: {describe_machine()}")
    print(f"Load average at start: {load_average():.2f}")
    print(f"Batch {batch}; {rounds} rounds (reference timed in {ref_rounds}); medians")
    rates = {torch.float32: [], torch.bfloat16: []}
    rows = []
    for name in names:
        cfg, cbase = CONFIGS[name]
        torch.manual_seed(0)
        G = build_generator(cfg, cbase)
        counted = inference.count_flops(G)
        flops = counted["total"]
        z = torch.from_numpy(np.random.RandomState(0).randn(batch, G.z_dim)).float()
        with torch.no_grad():
            ws = G.mapping(z, None)
        fast = {}
        for prec in ("fp32", "bf16"):
            Gp, desc = inference.prepare_generator(G, "cpu", prec)
            fast[f"fast-{prec}"] = Gp.synthesis
            print(f"  {name} {prec}: {desc}")
        times = {p: [] for p in PATHS}
        cpu = {p: [] for p in PATHS}
        kernel = {p: [] for p in PATHS}
        imgs = {}
        with torch.no_grad():
            for syn in fast.values():  # warm-up: workspace allocation, oneDNN primitives, kernel build
                syn(ws, noise_mode="const")
            for r in range(rounds):
                for p in PATHS:
                    if p == "ref-fp32" and r >= ref_rounds:
                        continue
                    fn = (lambda: G.synthesis(ws, noise_mode="const")) if p == "ref-fp32" else \
                        (lambda syn=fast[p]: syn(ws, noise_mode="const"))
                    with KernelClock() as clock:
                        wall, proc, img = timed(fn)
                    kernel[p].append(clock.seconds / batch)
                    times[p].append(wall / batch)
                    cpu[p].append(proc / batch)
                    imgs[p] = img
                for dt in rates:
                    rates[dt].append(matmul_rate(dt))
        ref_img = imgs.get("ref-fp32")
        for p in PATHS:
            if not times[p]:
                continue
            sec = statistics.median(times[p])
            rows.append(dict(cfg=name, path=p, sec=sec, cpu=statistics.median(cpu[p]), fps=1 / sec,
                             gflop=flops / 1e9, gflops=flops / sec / 1e9, kernel=statistics.median(kernel[p]),
                             conv_gflop=counted["conv"] / 1e9, filter_gflop=counted["filter"] / 1e9,
                             dtype=torch.bfloat16 if p == "fast-bf16" else torch.float32,
                             psnr=psnr(imgs[p], ref_img) if ref_img is not None else float("nan"),
                             psnr8=psnr8(imgs[p], ref_img) if ref_img is not None else float("nan")))
        print(f"  {name}: done ({len(rows)} rows so far)", flush=True)
        G = fast = imgs = None  # free before the next configuration

    r32, r16 = statistics.median(rates[torch.float32]), statistics.median(rates[torch.bfloat16])
    shapes = ", ".join(f"{n}x{k} by {k}x{m}" for n, k, m in MATMUL_SHAPES)
    print(f"Matrix multiply ({shapes}; MKL and oneDNN; {torch.get_num_threads()} threads; median over the rounds "
          f"of the best): float32 {r32:.0f} GFLOP/s, bfloat16 {r16:.0f} GFLOP/s")
    print(f"Load average at end: {load_average():.2f}")
    header = (f"{'configuration':<24}{'path':<11}{'s/frame':>9}{'cpu s':>8}{'frames/s':>9}{'GFLOP':>8}"
              f"{'GFLOP/s':>9}{'of mm':>7}{'PSNR':>8}{'PSNR8':>8}")
    print(header)
    for row in rows:
        rate = r16 if row["dtype"] == torch.bfloat16 else r32
        row["frac"] = row["gflops"] / rate
        print(f"{row['cfg']:<24}{row['path']:<11}{row['sec']:>9.3f}{row['cpu']:>8.2f}{row['fps']:>9.2f}"
              f"{row['gflop']:>8.1f}{row['gflops']:>9.1f}{row['frac']:>7.0%}{row['psnr']:>8.1f}{row['psnr8']:>8.1f}")
    print("Fast paths, split: time in the C++ kernel (filtering, activation) and the rest (mostly the convolutions)")
    print(f"{'configuration':<24}{'path':<11}{'kernel s':>9}{'filter GFLOP':>13}{'GFLOP/s':>9}{'rest s':>8}"
          f"{'conv GFLOP':>11}{'GFLOP/s':>9}{'of mm':>7}")
    for row in rows:
        if row["path"] == "ref-fp32":
            continue
        rate = r16 if row["dtype"] == torch.bfloat16 else r32
        rest = row["sec"] - row["kernel"]
        row["kernel_gflops"] = row["filter_gflop"] / row["kernel"] if row["kernel"] > 0 else float("nan")
        row["rest"] = rest
        row["conv_gflops"] = row["conv_gflop"] / rest
        print(f"{row['cfg']:<24}{row['path']:<11}{row['kernel']:>9.3f}{row['filter_gflop']:>13.1f}"
              f"{row['kernel_gflops']:>9.1f}{rest:>8.3f}{row['conv_gflop']:>11.1f}{row['conv_gflops']:>9.1f}"
              f"{row['conv_gflops'] / rate:>7.0%}")
    if markdown:
        print()
        print(f"Matrix multiply: float32 {r32:.0f} GFLOP/s, bfloat16 {r16:.0f} GFLOP/s.")
        print()
        print("| configuration | path | s/frame | CPU s/frame | frames/s | GFLOP/frame | GFLOP/s | of matmul rate "
              "| PSNR (dB) | PSNR 8-bit (dB) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for row in rows:
            ps = "reference" if row["path"] == "ref-fp32" else f"{row['psnr']:.1f}"
            ps8 = "reference" if row["path"] == "ref-fp32" else f"{row['psnr8']:.1f}"
            print(f"| {row['cfg']} | {row['path']} | {row['sec']:.3f} | {row['cpu']:.2f} | {row['fps']:.2f} | "
                  f"{row['gflop']:.1f} | {row['gflops']:.1f} | {row['frac']:.0%} | {ps} | {ps8} |")
        print()
        print("| configuration | path | kernel s/frame | filter GFLOP | kernel GFLOP/s | rest s/frame | conv GFLOP "
              "| rest GFLOP/s (convolutions) | of matmul rate |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for row in rows:
            if row["path"] == "ref-fp32":
                continue
            rate = r16 if row["dtype"] == torch.bfloat16 else r32
            print(f"| {row['cfg']} | {row['path']} | {row['kernel']:.3f} | {row['filter_gflop']:.1f} | "
                  f"{row['kernel_gflops']:.0f} | {row['rest']:.3f} | {row['conv_gflop']:.1f} | {row['conv_gflops']:.0f} | "
                  f"{row['conv_gflops'] / rate:.0%} |")


if __name__ == "__main__":
    main()

#----------------------------------------------------------------------------

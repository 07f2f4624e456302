"""The CPU fast path: the C++ filtered_lrelu / upfirdn2d kernel against the golden fixtures and the
reference ops, and the fast generator path (`training.inference`) against the reference networks."""

import json
import math
import random

import numpy as np
import pytest
import torch

from torch_utils.ops import cpu_kernels, filtered_lrelu, upfirdn2d

needs_kernel = pytest.mark.skipif(cpu_kernels.plugin.unavailable_reason() is not None,
                                  reason="the CPU kernel cannot be built here (no C++ compiler, or disabled)")


def rel_err(a: torch.Tensor, b) -> float:
    """Max abs difference relative to the max magnitude of the reference `b`."""
    b = torch.as_tensor(b, dtype=torch.float32)
    assert a.shape == b.shape, (tuple(a.shape), tuple(b.shape))
    return float((a.float() - b).abs().max() / b.abs().max().clamp(min=1e-30))


@pytest.fixture(scope="module")
def kernel():
    mod = cpu_kernels.load()
    assert mod is not None, f"the CPU kernel did not build: {cpu_kernels.plugin.error}"
    return mod


@pytest.fixture(scope="module")
def golden(golden_dir):
    data = np.load(golden_dir / "golden_ops.npz")
    return json.loads(str(data["cases"])), data

#----------------------------------------------------------------------------
# The kernel through the op modules.

@needs_kernel
def test_kernel_reproduces_golden_ops(kernel, golden):
    cases, data = golden
    seen = set()
    for i, c in enumerate(cases):
        if c["op"] not in ("filtered_lrelu", "upfirdn2d"):
            continue
        x = torch.tensor(data[f"{i}/x"])
        with torch.no_grad(), cpu_kernels.kernels_enabled():
            if c["op"] == "upfirdn2d":
                fn = upfirdn2d._fast_impl(x, "cuda")
                y = upfirdn2d.upfirdn2d(x, torch.tensor(data[f"{i}/f"]), up=c["up"], down=c["down"],
                                        padding=c["padding"], flip_filter=c["flip_filter"], gain=c["gain"])
            else:
                fn = filtered_lrelu._fast_impl(x, "cuda")
                filt = {k: torch.tensor(data[f"{i}/{k}"]) if f"{i}/{k}" in data.files else None for k in ("fu", "fd")}
                y = filtered_lrelu.filtered_lrelu(x, filt["fu"], filt["fd"], torch.tensor(data[f"{i}/b"]), up=c["up"],
                                                  down=c["down"], padding=c["padding"], gain=c["gain"],
                                                  slope=c["slope"], clamp=c["clamp"], flip_filter=c["flip_filter"])
        assert isinstance(fn, __import__("functools").partial) and fn.args[0] is kernel, "kernel not dispatched"
        assert rel_err(y, data[f"{i}/y"]) < 1e-4, (i, c)
        seen.add(c["op"])
    assert seen == {"filtered_lrelu", "upfirdn2d"}


def _random_filter(rng: random.Random, kind: str | None):
    if kind is None:
        return None
    if kind == "sep":
        return torch.rand(rng.randint(1, 13)) + 0.1
    if kind == "sym2d":  # symmetric along x, as the radial filters of StyleGAN3-R (the kernel's fast path)
        f = torch.rand(rng.randint(1, 8), rng.randint(1, 8))
        return f + f.flip(1)
    return torch.randn(rng.randint(1, 8), rng.randint(1, 8))


@needs_kernel
def test_kernel_matches_reference_on_random_shapes(kernel):
    rng = random.Random(1)
    torch.manual_seed(1)
    checked = 0
    while checked < 120:
        up, down = rng.randint(1, 4), rng.randint(1, 4)
        fu = _random_filter(rng, rng.choice([None, "sep", "2d"]))
        fd = _random_filter(rng, rng.choice([None, "sep", "2d", "sym2d"]))
        x = torch.randn(rng.randint(1, 2), rng.randint(1, 5), rng.randint(1, 20), rng.randint(1, 20))
        b = torch.randn(x.shape[1]) if rng.random() < 0.7 else None
        pad = [rng.randint(-3, 10) for _ in range(4)]
        kw = dict(up=up, down=down, padding=pad, gain=rng.choice([1.0, math.sqrt(2)]), slope=rng.choice([0.2, 1.0]),
                  clamp=rng.choice([None, 0.5, 256.0]), flip_filter=rng.random() < 0.5)
        try:
            ref = filtered_lrelu.filtered_lrelu(x, fu, fd, b, impl="ref", **kw)
        except ValueError:
            continue
        with torch.no_grad(), cpu_kernels.kernels_enabled():
            y = filtered_lrelu.filtered_lrelu(x, fu, fd, b, **kw)
        assert rel_err(y, ref) < 1e-5, (up, down, pad, x.shape, kw)
        # upfirdn2d with the same up filter, square up/down only
        f = fu if fu is not None else fd
        try:
            ref = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=kw["flip_filter"], gain=2.5,
                                      impl="ref")
        except ValueError:
            continue
        with torch.no_grad(), cpu_kernels.kernels_enabled():
            y = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=kw["flip_filter"], gain=2.5)
        assert rel_err(y, ref) < 1e-5, (up, down, pad, x.shape)
        checked += 1


@needs_kernel
def test_kernel_stylegan3_layer_shapes(kernel):
    """Layers of StyleGAN3-R (radial 12x12 down filter) and -T (separable) at 2x and 4x upsampling."""
    from training.networks_stylegan3 import design_lowpass_filter
    torch.manual_seed(2)
    fu2 = design_lowpass_filter(12, cutoff=10, width=8, fs=64)
    fu4 = design_lowpass_filter(24, cutoff=10, width=8, fs=128)
    fd_r = design_lowpass_filter(12, cutoff=12, width=9, fs=64, radial=True)
    fd_t = design_lowpass_filter(12, cutoff=12, width=9, fs=64)
    for fu, up, fd, pad in [(fu2, 2, fd_r, [11, 10, 11, 10]), (fu4, 4, fd_r, [21, 20, 21, 20]),
                            (fu2, 2, fd_t, [11, 10, 11, 10])]:
        x = torch.randn(2, 24, 36, 36)
        b = torch.randn(24)
        kw = dict(up=up, down=2, padding=pad, gain=math.sqrt(2), slope=0.2, clamp=256.0)
        ref = filtered_lrelu.filtered_lrelu(x, fu, fd, b, impl="ref", **kw)
        with torch.no_grad(), cpu_kernels.kernels_enabled():
            y = filtered_lrelu.filtered_lrelu(x, fu, fd, b, **kw)
        assert rel_err(y, ref) < 1e-5


@needs_kernel
def test_kernel_extras_and_bfloat16(kernel):
    """in_scale / out_scale / b_post / noise equal the same steps done with torch; bfloat16 in and out
    agree with float32 to bfloat16 precision; `out` is written in place."""
    torch.manual_seed(3)
    N, C, H, W = 2, 5, 11, 9
    x = torch.randn(N, C, H, W)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    s_in, s_out, b2 = torch.rand(N, C) + 0.5, torch.rand(N, C) + 0.5, torch.randn(C)
    noise = torch.randn(1, H, W)
    # SG2-style: blur (up 1, 4x4 with padding), then bias + noise, lrelu, clamp.
    plan = cpu_kernels.prepare_filtered_lrelu(f, None, 1, 1, (2, 1, 2, 1), math.sqrt(2), 0.2, 1.0, False, (H, W))
    y = cpu_kernels.run_filtered_lrelu(kernel, x, plan, in_scale=s_in, out_scale=s_out, b_post=b2, noise=noise)
    z = upfirdn2d.upfirdn2d(x * s_in[:, :, None, None], f, padding=(2, 1, 2, 1), impl="ref")
    z = z + b2[None, :, None, None] + noise[:, None]
    ref = (torch.nn.functional.leaky_relu(z, 0.2) * math.sqrt(2)).clamp(-1, 1) * s_out[:, :, None, None]
    assert rel_err(y, ref) < 1e-5
    out = torch.empty_like(ref, dtype=torch.bfloat16)
    y16 = cpu_kernels.run_filtered_lrelu(kernel, x.to(torch.bfloat16), plan, in_scale=s_in, out_scale=s_out, b_post=b2,
                                         noise=noise, out_dtype=torch.bfloat16, out=out)
    assert y16.data_ptr() == out.data_ptr() and y16.dtype == torch.bfloat16
    assert rel_err(y16, ref) < 2e-2
    with pytest.raises(RuntimeError, match="out must be"):
        cpu_kernels.run_filtered_lrelu(kernel, x, plan, out=torch.empty(1))


@needs_kernel
def test_kernel_only_when_enabled_and_without_gradients(kernel):
    x = torch.randn(1, 3, 8, 8)
    assert filtered_lrelu._fast_impl(x, "cuda") is filtered_lrelu._filtered_lrelu_ref  # off by default
    assert upfirdn2d._fast_impl(x, "ref") is upfirdn2d._upfirdn2d_ref
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    xg = x.clone().requires_grad_(True)
    with cpu_kernels.kernels_enabled():
        y = upfirdn2d.upfirdn2d(xg, f, up=2, padding=[2, 1, 2, 1])  # needs a gradient: the reference runs
        assert y.grad_fn is not None
        y.sum().backward()
        assert xg.grad is not None and xg.grad.abs().sum() > 0
        assert filtered_lrelu._fast_impl(x.double(), "cuda") is filtered_lrelu._filtered_lrelu_ref  # float64


def test_build_targets_this_cpu():
    flags = cpu_kernels.plugin.build_kwargs["extra_cflags"]
    assert "-march=native" in flags
    assert f"-DSIGNSTYLEGAN_CPU={cpu_kernels.cpu_fingerprint()}" in flags

#----------------------------------------------------------------------------

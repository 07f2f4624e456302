"""The CPU fast path: the C++ filtered_lrelu / upfirdn2d kernel against the golden fixtures and the
reference ops, and the fast generator path (`training.inference`) against the reference networks."""

import copy
import json
import math
import os
import random
import shutil
import sys

import numpy as np
import pytest
import torch

from torch_utils import custom_ops
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


@pytest.mark.skipif(not hasattr(torch.cpu, "get_capabilities"), reason="torch before 2.9 has no get_capabilities")
def test_cpu_features_without_proc_cpuinfo(monkeypatch):
    """Off Linux there is no /proc/cpuinfo: the flags then come from torch's detection alone, in the
    Linux names, so `--precision=auto` still finds AVX512_BF16 and the log names the SIMD."""
    from training import inference
    caps = torch.cpu.get_capabilities()
    real_open = open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc)
    cpu_kernels.cpu_flags.cache_clear()
    try:
        flags = cpu_kernels.cpu_flags()
        assert ("avx512f" in flags) == bool(caps.get("avx512_f")) and ("avx2" in flags) == bool(caps.get("avx2"))
        assert ("asimd" in flags) == bool(caps.get("neon"))
        assert "avx512_f" not in flags and "neon" not in flags
        expect_isa = ("AVX-512" if caps.get("avx512_f") else "AVX2" if caps.get("avx2") else
                      "NEON" if caps.get("neon") else None)
        if expect_isa is not None:
            assert cpu_kernels.isa() == expect_isa
        native_bf16 = bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))
        assert inference.resolve_precision("auto", torch.device("cpu")) == ("bf16" if native_bf16 else "fp32")
    finally:
        cpu_kernels.cpu_flags.cache_clear()


def _clang() -> str | None:
    return next((c for c in ("clang++", *(f"clang++-{v}" for v in range(20, 10, -1))) if shutil.which(c)), None)


@needs_kernel
@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in compiler is a shell script")
@pytest.mark.parametrize("compiler", ["default", "clang"])
def test_portable_build_for_a_compiler_without_openmp(monkeypatch, caplog, compiler):
    """A compiler that refuses -fopenmp and -march=native (as Apple clang does): the plugin builds
    with its fallback settings (one log line), and that build, threaded by the kernel itself, equals
    the reference on a StyleGAN3 layer whose planes are split over two threads. With clang too (the
    compiler of macOS), where one is installed."""
    real = shutil.which(os.environ.get("CXX", "c++")) if compiler == "default" else _clang()
    if real is None:
        pytest.skip("needs clang (as on macOS); none is installed here")
    # The stand-in compiler lives in the build root under a fixed name, so that its build is cached
    # like any other (the compiler is part of a build's hash); the build takes minutes once.
    script = ("#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in -fopenmp|-march=native)\n"
              "  echo \"cxx: error: unsupported option '$a'\" >&2; exit 1;; esac; done\n"
              f"exec {real} \"$@\"\n")
    fake = os.path.join(custom_ops._build_root(), "cxx-without-openmp" + ("" if compiler == "default" else "-clang"))
    os.makedirs(os.path.dirname(fake), exist_ok=True)
    if not os.path.isfile(fake) or open(fake).read() != script:
        with open(fake + ".tmp", "w") as f:
            f.write(script)
        os.chmod(fake + ".tmp", 0o755)
        os.replace(fake + ".tmp", fake)
    monkeypatch.setenv("CXX", fake)
    monkeypatch.setattr(custom_ops, "_plugins", {})
    base = cpu_kernels.plugin
    plugin = custom_ops.Plugin(base.name, base.sources, source_dir=base.source_dir, kind="cpu",
                               fallback_kwargs=base.fallback_kwargs, **base.build_kwargs)
    with caplog.at_level("INFO", logger="torch_utils.custom_ops"):
        mod = plugin.load()
    assert mod is not None, plugin.error
    assert any("built with its fallback settings" in r.getMessage() for r in caplog.records), caplog.text
    assert "-fopenmp" not in str(plugin.fallback_kwargs)
    import scipy.signal
    f = torch.as_tensor(scipy.signal.firwin(12, 0.25), dtype=torch.float32)
    x = torch.randn([2, 5, 20, 20], generator=torch.Generator().manual_seed(4)) * 3
    plan = cpu_kernels.prepare_filtered_lrelu(f, f, 2, 2, (11, 11, 11, 11), math.sqrt(2), 0.2, 4.0, False, (20, 20))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        y = cpu_kernels.run_filtered_lrelu(mod, x, plan)
    finally:
        torch.set_num_threads(threads)
    ref = filtered_lrelu.filtered_lrelu(x, f, f, up=2, down=2, padding=11, gain=math.sqrt(2), slope=0.2, clamp=4.0,
                                        impl="ref")
    assert rel_err(y, ref) < 1e-5

#----------------------------------------------------------------------------
# The fast generator path (training.inference) on the golden networks.

from training import inference  # noqa: E402

GOLDEN_CFGS = ["stylegan2", "stylegan3-t", "stylegan3-r"]


def psnr(img: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB over the nominal image range [-1, 1] (peak-to-peak 2), no clipping."""
    mse = float((img.float() - ref.float()).square().mean())
    return 10 * math.log10(4 / mse) if mse > 0 else math.inf


@pytest.fixture(scope="module", params=GOLDEN_CFGS)
def golden_net(request, golden_dir):
    from test_networks import Golden  # how the golden networks are built and loaded
    g = Golden(golden_dir / f"golden_{request.param}_64.npz")
    G, _ = g.build()
    G.load_state_dict(g.state("G"), strict=True)
    return request.param, G.eval().requires_grad_(False), g.data


@needs_kernel
def test_fast_generator_fp32_matches_golden(golden_net):
    cfg, G, d = golden_net
    Gf, desc = inference.prepare_generator(G, "cpu", "fp32")
    assert isinstance(Gf, inference.PreparedGenerator) and f"fast {cfg[:9]} path" in desc and "float32" in desc
    z = torch.from_numpy(d["z"])
    with torch.no_grad():
        ws = Gf.mapping(z, None)
        assert rel_err(Gf.synthesis(ws, noise_mode="const"), d["img"]) < 1e-4
        assert rel_err(Gf(z, None, truncation_psi=0.7, noise_mode="const"), d["img_psi07"]) < 1e-4
        if cfg == "stylegan2":
            assert rel_err(Gf.synthesis(ws, noise_mode="none"), d["img_none"]) < 1e-4
            # With noise that shows: 'const' equals the reference, 'random' draws fresh noise each call.
            G2 = copy.deepcopy(G)
            for name, p in G2.named_parameters():
                if name.endswith("noise_strength"):
                    p.fill_(0.3)
            Gf2, _ = inference.prepare_generator(G2, "cpu", "fp32")
            ref = G2.synthesis(ws, noise_mode="const", force_fp32=True)
            assert rel_err(Gf2.synthesis(ws, noise_mode="const"), ref) < 1e-4
            a, b = Gf2.synthesis(ws, noise_mode="random"), Gf2.synthesis(ws, noise_mode="random")
            assert not torch.equal(a, b) and rel_err(a, ref) > 1e-3


@needs_kernel
def test_fast_generator_bf16_psnr(golden_net):
    cfg, G, d = golden_net
    Gf, desc = inference.prepare_generator(G, "cpu", "bf16")
    assert "bfloat16" in desc
    with torch.no_grad():
        ws = G.mapping(torch.from_numpy(d["z"]), None)
        img = Gf.synthesis(ws, noise_mode="const")
    assert img.dtype == torch.float32
    assert psnr(img, torch.from_numpy(d["img"])) >= 40, cfg


@needs_kernel
def test_prepared_generator_keeps_interface_and_training_semantics(golden_dir):
    from test_networks import Golden

    from training import pose_lstm
    g = Golden(golden_dir / "golden_stylegan3-r_64.npz")
    G, _ = g.build()
    G.load_state_dict(g.state("G"))
    G.eval().requires_grad_(False)
    Gf, _ = inference.prepare_generator(G, "cpu", "fp32")
    for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "num_ws"):
        assert getattr(Gf, name) == getattr(G, name)
    assert pose_lstm.generator_identity(Gf) == pose_lstm.generator_identity(G)
    ws = G.mapping(torch.from_numpy(g.data["z"]), None)
    # The input transform (gen_images --translate/--rotate) is read at every call.
    from training.rendering import set_input_transform
    set_input_transform(Gf, (0.1, -0.05), 20)
    with torch.no_grad():
        ref = G.synthesis(ws, noise_mode="const")
        assert rel_err(Gf.synthesis(ws, noise_mode="const"), ref) < 1e-4
    set_input_transform(G, (0, 0), 0)
    # update_emas (training) runs the reference network, moving its running statistics.
    layer = getattr(G.synthesis, G.synthesis.layer_names[0])
    before = layer.magnitude_ema.clone()
    with torch.no_grad():
        Gf.synthesis(ws, update_emas=True)
    assert not torch.equal(before, layer.magnitude_ema)
    with pytest.raises(inference.dnnlib.UserError, match="precision"):
        inference.prepare_generator(G, "cpu", "fp16")


@needs_kernel
def test_other_networks_run_their_own_code_with_the_kernels():
    """A StyleGAN2 'resnet' synthesis has no fast path: it runs its own code, upfirdn2d on the kernel."""
    from training import networks_stylegan2 as sg2
    torch.manual_seed(0)
    G = sg2.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, channel_base=256,
                      channel_max=32, architecture="resnet").eval().requires_grad_(False)
    Gf, desc = inference.prepare_generator(G, "cpu", "auto")
    assert "fast" not in desc and "kernel" in desc
    z = torch.randn(2, 16)
    with torch.no_grad():
        assert rel_err(Gf(z, None, noise_mode="const"), G(z, None, noise_mode="const")) < 1e-4


def test_without_the_kernel_the_reference_runs(monkeypatch):
    """No compiler / SIGNSTYLEGAN_NO_CUSTOM_OPS: prepare_generator hands back G itself and says why."""
    from training import networks_stylegan3 as sg3
    G = sg3.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=256,
                      channel_max=16, num_layers=4, num_critical=1).eval()
    monkeypatch.setattr(cpu_kernels, "load", lambda: None)
    Gp, desc = inference.prepare_generator(G, "cpu", "auto")
    assert Gp is G and "reference" in desc and "unavailable" in desc


def test_count_flops_counts_the_convolutions():
    from training import networks_stylegan3 as sg3
    G = sg3.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=256,
                      channel_max=16, num_layers=4, num_critical=1, conv_kernel=1)
    fl = inference.count_flops(G)
    conv = 0
    for name in G.synthesis.layer_names:
        L = getattr(G.synthesis, name)
        conv += 2 * L.in_channels * L.out_channels * int(L.in_size[0]) * int(L.in_size[1])
    inp = G.synthesis.input
    conv += 2 * inp.channels ** 2 * int(inp.size[0]) * int(inp.size[1])
    assert fl["conv"] == conv
    assert fl["total"] == fl["conv"] + fl["filter"] + fl["other"] and fl["filter"] > 0

#----------------------------------------------------------------------------
# gen_images / gen_video take the fast path by default and say so.

@needs_kernel
def test_gen_images_and_gen_video_use_the_fast_path(tmp_path, caplog):
    import io
    import logging
    import pickle

    import PIL.Image
    from click.testing import CliRunner

    import gen_images
    from training import networks_stylegan3 as sg3
    from training.rendering import describe_render_path
    torch.manual_seed(0)
    G = sg3.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3, channel_base=512,
                      channel_max=32, num_layers=4, num_critical=1).eval().requires_grad_(False)
    pkl = tmp_path / "net.pkl"
    buf = io.BytesIO()
    pickle.dump(dict(G=G, D=None, G_ema=G), buf)
    pkl.write_bytes(buf.getvalue())
    outs = {}
    for precision in ("auto", "fp32"):
        out = tmp_path / precision
        with caplog.at_level(logging.INFO):
            caplog.clear()
            res = CliRunner().invoke(gen_images.generate_images, [f"--network={pkl}", "--seeds=3", f"--outdir={out}",
                                                                  "--device=cpu", f"--precision={precision}"])
        assert res.exit_code == 0, res.output
        lines = [r.getMessage() for r in caplog.records if "fast stylegan3 path" in r.getMessage()]
        assert len(lines) == 1, caplog.text
        expect = "bfloat16" if precision == "auto" and inference.cpu_has_native_bf16() else "float32 convolutions"
        assert expect in lines[0]
        outs[precision] = np.asarray(PIL.Image.open(out / "seed0003.png"), dtype=np.int16)
    z = torch.from_numpy(np.random.RandomState(3).randn(1, 16)).float()
    with torch.no_grad():
        ref = (G(z, None, noise_mode="const")[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    assert np.abs(outs["fp32"] - ref.numpy()).max() <= 1
    res = CliRunner().invoke(gen_images.generate_images, [f"--network={pkl}", "--seeds=1", "--outdir=x",
                                                          "--precision=fp16"])
    assert res.exit_code != 0 and "fp16" in res.output
    Gf, _ = inference.prepare_generator(G, "cpu", "fp32")
    assert describe_render_path(Gf, torch.device("cpu"), 4).startswith(Gf.description)
    assert "batch 4" in describe_render_path(Gf, torch.device("cpu"), 4)

#----------------------------------------------------------------------------

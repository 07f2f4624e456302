"""The CUDA kernels of bias_act, upfirdn2d and filtered_lrelu (torch_utils/ops/*.cu) against the reference ops.

Three levels, so that a machine without a GPU checks what it can:

- compile: every `.cu` compiles with nvcc for sm_80 and sm_90 (needs nvcc; the kernel sources include
  no torch or ATen header, so a CPU-only torch suffices), and the torch bindings `*_cuda.cpp` compile
  against the torch and CUDA headers (needs g++ and the CUDA headers);
- emulated: the kernels compiled for the host against the stand-in runtime `tests/cuda_emu/cuda_runtime.h`
  run on CPU tensors through the real bindings and the autograd wrappers of `torch_utils.ops.cuda_kernels`
  (needs a C++ compiler; about a minute to build once);
- cuda: the same checks with the real plugins on a GPU, plus the public ops with `impl='cuda'` and full-size
  StyleGAN3 layers (skipped with "needs CUDA" elsewhere).

Accuracy: float32 results and gradients within a relative error (max |difference| / max |reference|)
of 1e-5; float16 within 2**-9 (two float16 steps at the largest magnitude) of the float32 reference
evaluated on the same float16 inputs. float16 cases use no clamp: at the clamp level float16 rounding
decides whether a sample is clamped, so kernel and reference may legitimately disagree there.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import random
import re
import shutil
import subprocess
import sys
import sysconfig
from typing import Any, Callable

import numpy as np
import pytest
import torch

from torch_utils import custom_ops
from torch_utils.ops import bias_act, cuda_kernels, filtered_lrelu, upfirdn2d

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPS_DIR = os.path.join(REPO, "torch_utils", "ops")
EMU_DIR = os.path.join(REPO, "tests", "cuda_emu")
OPS = ("bias_act", "upfirdn2d", "filtered_lrelu")
NVCC = custom_ops._find_nvcc()

FP32_TOL = 1e-5
FP16_TOL = 2.0 ** -9

TORCH_NVCC_FLAGS = ["-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
                    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__", "--expt-relaxed-constexpr"]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.numel() == 0:
        return 0.0
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


def assert_close(got: list, want: list, tol: float, what: str) -> None:
    errs = [rel_err(g, w) for g, w in zip(got, want)]
    assert max(errs) < tol, f"{what}: relative errors {['%.2e' % e for e in errs]} (tolerance {tol:.0e})"


def golden_cases(shared_dir, op: str):
    d = np.load(os.path.join(shared_dir, "fixtures", "nvidia-compat", "golden_ops.npz"))
    cases = json.loads(str(d["cases"]))
    return [(i, c, {k.split("/", 1)[1]: torch.from_numpy(d[k]) for k in d.files if k.startswith(f"{i}/")})
            for i, c in enumerate(cases) if c["op"] == op]

#----------------------------------------------------------------------------
# Compile checks.

def _includes(path: str) -> list[str]:
    with open(path) as f:
        return re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', f.read(), flags=re.M)


@pytest.mark.parametrize("name", ["bias_act.cu", "upfirdn2d.cu", "filtered_lrelu.cu", "bias_act.h", "upfirdn2d.h",
                                  "filtered_lrelu.h", "cuda_common.h"])
def test_kernel_sources_include_no_torch_headers(name):
    for inc in _includes(os.path.join(OPS_DIR, name)):
        if inc.startswith(("torch/", "ATen/", "c10/", "caffe2/")):
            assert inc == "c10/util/Half.h", f"{name} includes {inc}: kernels may use only CUDA and c10/util/Half.h"
        elif "/" not in inc and inc.endswith(".h") and os.path.exists(os.path.join(OPS_DIR, inc)):
            assert inc in ("bias_act.h", "upfirdn2d.h", "filtered_lrelu.h", "cuda_common.h"), inc


@pytest.mark.skipif(NVCC is None, reason="needs nvcc (the CUDA toolkit)")
@pytest.mark.parametrize("op", OPS)
def test_cu_compiles_with_nvcc(op, tmp_path):
    """Both C++ standards torch builds with (17 before torch 2.10, 20 since), sm_80 and sm_90."""
    torch_include = os.path.join(os.path.dirname(torch.__file__), "include")
    for std, arch in (("c++17", "80"), ("c++20", "90")):
        cmd = [NVCC, "-c", os.path.join(OPS_DIR, f"{op}.cu"), "-o", str(tmp_path / f"{op}_{arch}.o"), "-O3",
               f"-std={std}", f"-I{torch_include}", *TORCH_NVCC_FLAGS, f"-gencode=arch=compute_{arch},code=sm_{arch}"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout}\n{res.stderr}"
        ours = [line for line in (res.stdout + res.stderr).splitlines()
                if "warning" in line and re.search(r"(bias_act|upfirdn2d|filtered_lrelu|cuda_common)\.(cu|h)", line)]
        assert not ours, "\n".join(ours)


def _cuda_include_dir() -> str | None:
    """Where nvcc finds cuda_runtime_api.h (nvcc may be a wrapper script, so ask it)."""
    if NVCC is None:
        return None
    candidates = [os.path.join(os.environ[k], "include") for k in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(k)]
    try:
        dry = subprocess.run([NVCC, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
        candidates += re.findall(r'INCLUDES="-I([^"\s]+)', dry.stdout + dry.stderr)
    except (OSError, subprocess.SubprocessError):
        pass
    candidates.append(os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(NVCC))), "include"))
    return next((d for d in candidates if os.path.isfile(os.path.join(d, "cuda_runtime_api.h"))), None)


@pytest.mark.skipif(shutil.which("g++") is None or _cuda_include_dir() is None,
                    reason="needs g++ and the CUDA headers")
def test_bindings_compile_against_torch_and_cuda_headers(tmp_path):
    """The three bindings in one translation unit (the torch headers are parsed once)."""
    tu = tmp_path / "bindings.cpp"
    tu.write_text("".join(f'#define TORCH_EXTENSION_NAME check_{op}\n#include "{op}_cuda.cpp"\n'
                          f"#undef TORCH_EXTENSION_NAME\n" for op in OPS))
    torch_include = os.path.join(os.path.dirname(torch.__file__), "include")
    # Generated when torch is built with CUDA; CPU wheels lack it, and it only configures DLL exports.
    macros = "c10/cuda/impl/cuda_cmake_macros.h"
    if not os.path.exists(os.path.join(torch_include, macros)):
        (tmp_path / os.path.dirname(macros)).mkdir(parents=True)
        (tmp_path / macros).write_text("#pragma once\n")
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cmd = ["g++", "-std=c++20", "-fsyntax-only", "-Wall", "-Wno-unknown-pragmas", f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
           f"-I{OPS_DIR}", f"-I{torch_include}", f"-I{os.path.join(torch_include, 'torch', 'csrc', 'api', 'include')}",
           f"-I{tmp_path}", f"-I{sysconfig.get_paths()['include']}", f"-I{_cuda_include_dir()}", str(tu)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-5000:]
    ours = [line for line in res.stderr.splitlines() if "warning" in line and "_cuda.cpp" in line]
    assert not ours, "\n".join(ours)

#----------------------------------------------------------------------------
# Backends: the kernels emulated on the host, or the real plugins on a GPU.

class _Spy:
    """Counts the calls of a plugin module's functions (to tell the fused path from the generic one)."""

    def __init__(self, mod: Any):
        self._mod = mod
        self.calls: collections.Counter = collections.Counter()

    def __getattr__(self, name: str):
        fn = getattr(self._mod, name)

        def counted(*args, **kwargs):
            self.calls[name] += 1
            return fn(*args, **kwargs)
        return counted


@dataclasses.dataclass
class Backend:
    name: str
    device: torch.device
    ba: Any
    ufd: Any
    fl: Any

    def bias_act(self) -> Callable:
        return cuda_kernels.bias_act_fn(self.ba, bias_act._bias_act_ref)

    def upfirdn2d(self) -> Callable:
        return cuda_kernels.upfirdn2d_fn(self.ufd, upfirdn2d._upfirdn2d_ref)

    def filtered_lrelu(self) -> tuple[Callable, _Spy]:
        spy = _Spy(self.fl)
        return cuda_kernels.filtered_lrelu_fn(spy, self.ufd, filtered_lrelu._filtered_lrelu_ref), spy


def _build_emulation():
    srcs = [os.path.join(EMU_DIR, "ops_emu.cpp")] + [os.path.join(EMU_DIR, f"{op}_emu.cpp") for op in OPS]
    headers = [os.path.join(OPS_DIR, f) for op in OPS for f in (f"{op}.cu", f"{op}.h", f"{op}_cuda.cpp")]
    headers += [os.path.join(OPS_DIR, h) for h in ("cuda_common.h", "binding_common.h")]
    headers += [os.path.join(EMU_DIR, "cuda_runtime.h")]
    return custom_ops.get_plugin("ops_emu", sources=srcs, headers=headers,
                                 extra_cflags=["-O2", "-DOPS_HOST_EMULATION", f"-I{EMU_DIR}", f"-I{OPS_DIR}"])


@pytest.fixture(scope="module")
def emulated() -> Backend:
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("needs a C++ compiler")
    if sys.platform != "linux":
        pytest.skip("the host emulation uses ucontext fibers (Linux)")
    mod = _build_emulation()
    return Backend("emulated", torch.device("cpu"), mod.bias_act, mod.upfirdn2d, mod.filtered_lrelu)


@pytest.fixture(scope="module")
def cuda() -> Backend:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    mods = []
    for plugin in (cuda_kernels.bias_act_plugin, cuda_kernels.upfirdn2d_plugin, cuda_kernels.filtered_lrelu_plugin):
        mod = plugin.load()
        assert mod is not None, f"plugin {plugin.name} did not build: {plugin.error}"
        mods.append(mod)
    return Backend("cuda", torch.device("cuda"), *mods)


@pytest.fixture(params=["emulated", "cuda"])
def backend(request) -> Backend:
    return request.getfixturevalue(request.param)

#----------------------------------------------------------------------------
# bias_act

BIAS_ACT_SHAPES = [((3, 5, 7, 9), 1), ((4, 6), 1), ((5, 3, 2), 2), ((2, 7, 1, 1), 1), ((1, 33), 1), ((3, 1, 5), 1)]
BIAS_ACT_PARAMS = [(None, None, None), (0.3, 2.0, 1.5)]


def _bias_act_run(fn: Callable, x: torch.Tensor, b: torch.Tensor, dim: int, act: str, params, second: bool = True):
    rec = bias_act.activation_funcs[act]
    alpha, gain, clamp = params
    alpha = float(rec.def_alpha if alpha is None else alpha)
    gain = float(rec.def_gain if gain is None else gain)
    clamp = float(-1 if clamp is None else clamp)
    x = x.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    y = fn(x, b, dim, act, alpha, gain, clamp)
    gen = torch.Generator().manual_seed(1)
    dy = torch.randn(y.shape, generator=gen).to(y)
    dx, db = torch.autograd.grad(y, [x, b], dy, create_graph=second)
    out = [y, dx, db]
    if second:
        w = torch.randn(dx.shape, generator=gen).to(dx)
        loss = (dx * w).sum() + (db * torch.arange(db.numel()).to(db)).sum()
        if loss.requires_grad:
            ddx, ddb = torch.autograd.grad(loss, [x, b], allow_unused=True)
            out += [torch.zeros_like(x) if ddx is None else ddx, torch.zeros_like(b) if ddb is None else ddb]
        else:  # constant derivative (linear without clamp)
            out += [torch.zeros_like(x), torch.zeros_like(b)]
    return out


def test_act_index_matches_activation_records():
    assert {name: rec.cuda_idx for name, rec in bias_act.activation_funcs.items()} == cuda_kernels.ACT_INDEX


@pytest.mark.parametrize("act", list(bias_act.activation_funcs))
def test_bias_act_float32_and_second_derivatives(backend, act):
    fn = backend.bias_act()
    gen = torch.Generator().manual_seed(0)
    for params in BIAS_ACT_PARAMS:
        for shape, dim in BIAS_ACT_SHAPES:
            x = (torch.randn(shape, generator=gen) * 2).to(backend.device)
            b = torch.randn([shape[dim]], generator=gen).to(backend.device)
            got = _bias_act_run(fn, x, b, dim, act, params)
            want = _bias_act_run(bias_act._bias_act_ref, x, b, dim, act, params)
            assert_close(got, want, FP32_TOL, f"{act} {params} {shape} dim {dim}: y, dx, db, ddx, ddb")


def test_bias_act_memory_layouts(backend):
    fn = backend.bias_act()
    gen = torch.Generator().manual_seed(2)
    base = torch.randn([2, 5, 4, 3], generator=gen).to(backend.device)
    b = torch.randn([5], generator=gen).to(backend.device)
    layouts = {"channels_last": base.contiguous(memory_format=torch.channels_last),
               "permuted": base.transpose(2, 3).contiguous().transpose(2, 3),
               "strided": torch.randn([2, 5, 8, 3], generator=gen).to(backend.device)[:, :, ::2]}
    for name, x in layouts.items():
        for act in ("lrelu", "swish"):
            got = _bias_act_run(fn, x, b, 1, act, (None, None, 0.8))
            want = _bias_act_run(bias_act._bias_act_ref, x, b, 1, act, (None, None, 0.8))
            assert_close(got, want, FP32_TOL, f"{name} {act}")


@pytest.mark.parametrize("act", list(bias_act.activation_funcs))
def test_bias_act_float16(backend, act):
    fn = backend.bias_act()
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn([4, 8, 5, 7], generator=gen) * 2).half().to(backend.device)
    b = torch.randn([8], generator=gen).half().to(backend.device)
    got = _bias_act_run(fn, x, b, 1, act, (0.2, 1.0, None), second=False)
    want = _bias_act_run(bias_act._bias_act_ref, x.float(), b.float(), 1, act, (0.2, 1.0, None), second=False)
    assert all(t.dtype == torch.float16 for t in got)
    assert_close(got[:2], want[:2], FP16_TOL, f"{act} float16 y, dx")
    # db sums float16-rounded terms: compare against the rounding bound of that sum.
    bound = _bias_act_run(bias_act._bias_act_ref, x.float(), b.float(), 1, act, (0.2, 1.0, None), second=False)[1]
    bound = bound.abs().sum(dim=[0, 2, 3])
    assert ((got[2].float() - want[2]).abs() <= FP16_TOL * (bound + want[2].abs()) + 1e-6).all()


def test_bias_act_golden(backend, shared_dir):
    fn = backend.bias_act()
    for i, c, t in golden_cases(shared_dir, "bias_act"):
        x, b = t["x"].to(backend.device).requires_grad_(True), t["b"].to(backend.device).requires_grad_(True)
        rec = bias_act.activation_funcs[c["act"]]
        alpha = float(rec.def_alpha if c["alpha"] is None else c["alpha"])
        gain = float(rec.def_gain if c["gain"] is None else c["gain"])
        clamp = float(-1 if c["clamp"] is None else c["clamp"])
        y = fn(x, b, c["dim"], c["act"], alpha, gain, clamp)
        dx, db = torch.autograd.grad(y, [x, b], t["dy"].to(backend.device))
        assert_close([y, dx, db], [t["y"], t["dx"], t["db"]], FP32_TOL, f"golden case {i} ({c['act']})")


def test_bias_act_third_derivative_refuses(backend):
    """Only first and second derivatives exist; a third must fail loudly, not come out wrong."""
    fn = backend.bias_act()
    x = torch.randn([2, 3, 4], device=backend.device, requires_grad=True)
    b = torch.randn([3], device=backend.device, requires_grad=True)
    y = fn(x, b, 1, "tanh", 0.0, 1.0, -1.0)
    (dx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (ddx,) = torch.autograd.grad(dx.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(ddx.sum(), x)

#----------------------------------------------------------------------------
# upfirdn2d

def _upfirdn_run(fn: Callable, x, f, up, down, pad, flip, gain, second: bool = True):
    x = x.clone().requires_grad_(True)
    y = fn(x, f, up, down, pad, flip, gain)
    gen = torch.Generator().manual_seed(3)
    dy = torch.randn(y.shape, generator=gen).to(y)
    (dx,) = torch.autograd.grad(y, x, dy, create_graph=second)
    out = [y, dx]
    if second:
        w = torch.randn(dx.shape, generator=gen).to(dx)
        dy2 = dy.clone().requires_grad_(True)
        (dx2,) = torch.autograd.grad(fn(x, f, up, down, pad, flip, gain), x, dy2, create_graph=True)
        (ddy,) = torch.autograd.grad((dx2 * w).sum(), dy2)  # the transposed op, differentiated once more
        out.append(ddy)
    return out


def _random_upfirdn_configs(n: int, seed: int):
    rng = random.Random(seed)
    configs = [  # the specialised StyleGAN2 cases first, then anything
        ((1, 1), (1, 1), (4, 4), False, (1, 2, 1, 2)),
        ((2, 2), (1, 1), (4, 4), False, (2, 1, 2, 1)),
        ((1, 1), (2, 2), (4, 4), False, (1, 1, 1, 1)),
        ((2, 2), (1, 1), (12, 12), True, (6, 5, 6, 5)),
        ((1, 1), (2, 2), (12, 12), True, (5, 5, 5, 5)),
    ]
    while len(configs) < n:
        up, down = (rng.randint(1, 4), rng.randint(1, 4)), (rng.randint(1, 4), rng.randint(1, 4))
        sep = rng.random() < 0.4
        fw = rng.randint(1, 9)
        fh = fw if sep else rng.randint(1, 9)
        configs.append((up, down, (fw, fh), sep, tuple(rng.randint(-3, 6) for _ in range(4))))
    return configs


def test_upfirdn2d_float32_random_configs(backend):
    fn = backend.upfirdn2d()
    rng = random.Random(7)
    gen = torch.Generator().manual_seed(7)
    checked = 0
    for up, down, (fw, fh), sep, pad in _random_upfirdn_configs(40, seed=11):
        H, W = rng.randint(1, 13), rng.randint(1, 13)
        if (W * up[0] + pad[0] + pad[1] - fw) // down[0] < 0 or (H * up[1] + pad[2] + pad[3] - fh) // down[1] < 0:
            continue
        f = torch.randn([fw] if sep else [fh, fw], generator=gen).to(backend.device)
        x = torch.randn([2, 3, H, W], generator=gen).to(backend.device)
        flip, gain = rng.random() < 0.5, rng.choice([1.0, 4.0, 0.5])
        got = _upfirdn_run(fn, x, f, up, down, pad, flip, gain)
        want = _upfirdn_run(upfirdn2d._upfirdn2d_ref, x, f, up, down, pad, flip, gain)
        assert_close(got, want, FP32_TOL, f"up {up} down {down} filter {(fw, fh)} sep {sep} pad {pad} "
                                          f"input {(H, W)} flip {flip}: y, dx, ddy")
        checked += 1
    assert checked >= 25


def test_upfirdn2d_float16(backend):
    fn = backend.upfirdn2d()
    gen = torch.Generator().manual_seed(8)
    for up, down, f, pad in [((2, 2), (1, 1), upfirdn2d.setup_filter([1, 3, 3, 1]), (2, 1, 2, 1)),
                             ((1, 1), (2, 2), upfirdn2d.setup_filter([1, 3, 3, 1]), (1, 1, 1, 1)),
                             ((2, 2), (1, 1), upfirdn2d.setup_filter(torch.randn([12], generator=gen)), (6, 5, 6, 5)),
                             ((3, 1), (1, 2), torch.randn([5, 3], generator=gen), (2, 1, 0, 3))]:
        x = torch.randn([2, 3, 9, 11], generator=gen).half().to(backend.device)
        f = f.to(backend.device)
        got = _upfirdn_run(fn, x, f, up, down, pad, False, 1.0, second=False)
        want = _upfirdn_run(upfirdn2d._upfirdn2d_ref, x.float(), f, up, down, pad, False, 1.0, second=False)
        assert all(t.dtype == torch.float16 for t in got)
        assert_close(got, want, FP16_TOL, f"float16 up {up} down {down}: y, dx")


def test_upfirdn2d_golden(backend, shared_dir):
    fn = backend.upfirdn2d()
    for i, c, t in golden_cases(shared_dir, "upfirdn2d"):
        x = t["x"].to(backend.device).requires_grad_(True)
        up, down = upfirdn2d._parse_scaling(c["up"]), upfirdn2d._parse_scaling(c["down"])
        y = fn(x, t["f"].to(backend.device), up, down, upfirdn2d._parse_padding(c["padding"]), c["flip_filter"],
               float(c["gain"]))
        (dx,) = torch.autograd.grad(y, x, t["dy"].to(backend.device))
        assert_close([y, dx], [t["y"], t["dx"]], FP32_TOL, f"golden case {i}")


def test_upfirdn2d_without_filter(backend):
    fn = backend.upfirdn2d()
    x = torch.randn([2, 3, 5, 7], generator=torch.Generator().manual_seed(9)).to(backend.device)
    for up, down, pad in [((1, 1), (1, 1), (1, 2, -1, 0)), ((2, 3), (3, 1), (0, 1, 2, 0))]:
        got = _upfirdn_run(fn, x, None, up, down, pad, False, 3.0)
        want = _upfirdn_run(upfirdn2d._upfirdn2d_ref, x, None, up, down, pad, False, 3.0)
        assert_close(got, want, FP32_TOL, f"no filter, up {up} down {down} pad {pad}")


def test_upfirdn2d_filter_with_gradient_goes_to_reference(backend):
    fn = backend.upfirdn2d()
    f = torch.ones([3, 3], device=backend.device, requires_grad=True)
    with pytest.raises(ValueError, match="no gradient for filters"):
        fn(torch.ones([1, 1, 4, 4], device=backend.device), f, (1, 1), (1, 1), (1, 1, 1, 1), False, 1.0)

#----------------------------------------------------------------------------
# filtered_lrelu

def _flrelu_run(fn: Callable, x, fu, fd, b, up, down, pad, gain, slope, clamp, flip, second: bool = True):
    """[y, dx, db] and, with `second`, the derivative of (dx, db) with respect to dy."""
    x = x.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    y = fn(x, fu, fd, b, up, down, pad, gain, slope, clamp, flip)
    gen = torch.Generator().manual_seed(5)
    dy = torch.randn(y.shape, generator=gen).to(y).requires_grad_(second)
    dx, db = torch.autograd.grad(y, [x, b], dy, create_graph=second)
    out = [y, dx, db]
    if second:
        w = torch.randn(dx.shape, generator=gen).to(dx)
        (ddy,) = torch.autograd.grad((dx * w).sum() + (db * torch.arange(db.numel()).to(db)).sum(), dy)
        out.append(ddy)
    return out


def _stylegan3_layer_configs(cfg: str) -> list[dict]:
    """The distinct filtered_lrelu calls of a small StyleGAN3 synthesis network (64 px)."""
    from training import networks_stylegan3
    kwargs = dict(conv_kernel=1, use_radial_filters=True) if cfg == "r" else {}
    net = networks_stylegan3.SynthesisNetwork(w_dim=8, img_resolution=64, img_channels=3, channel_base=256,
                                              channel_max=8, **kwargs)
    seen, configs = set(), []
    for name in net.layer_names:
        layer = getattr(net, name)
        size = [int(s) + layer.conv_kernel - 1 for s in layer.in_size]
        key = (layer.up_factor, layer.down_factor, tuple(layer.padding), tuple(size), layer.is_torgb,
               None if layer.down_filter is None else tuple(layer.down_filter.shape))
        if key in seen:
            continue
        seen.add(key)
        configs.append(dict(name=name, fu=layer.up_filter, fd=layer.down_filter, up=layer.up_factor,
                            down=layer.down_factor, pad=tuple(layer.padding), size=size,
                            gain=1.0 if layer.is_torgb else 2 ** 0.5, slope=1.0 if layer.is_torgb else 0.2,
                            clamp=layer.conv_clamp))
    return configs


@pytest.mark.parametrize("cfg", ["r", "t"])
def test_filtered_lrelu_stylegan3_layers_fused(backend, cfg):
    """Every distinct layer of StyleGAN3-R / -T: the fused kernel runs forward, backward and double backward."""
    fn, spy = backend.filtered_lrelu()
    gen = torch.Generator().manual_seed(9)
    configs = _stylegan3_layer_configs(cfg)
    assert any(c["up"] == 4 for c in configs) and any(c["up"] == 2 for c in configs)
    for c in configs:
        x = (torch.randn([1, 2, c["size"][1], c["size"][0]], generator=gen) * 3).to(backend.device)
        b = torch.randn([2], generator=gen).to(backend.device)
        fu = None if c["fu"] is None else c["fu"].to(backend.device)
        fd = None if c["fd"] is None else c["fd"].to(backend.device)
        args = (fu, fd, b, c["up"], c["down"], c["pad"], c["gain"], c["slope"], 2.0, False)  # a clamp that bites
        spy.calls.clear()
        got = _flrelu_run(fn, x, *args)
        want = _flrelu_run(filtered_lrelu._filtered_lrelu_ref, x, *args)
        assert spy.calls["fused"] == 3 and spy.calls["act"] == 0, (c["name"], dict(spy.calls))
        assert_close(got, want, FP32_TOL, f"StyleGAN3-{cfg.upper()} layer {c['name']}: y, dx, db, ddy")


def test_filtered_lrelu_golden(backend, shared_dir):
    fn, _ = backend.filtered_lrelu()
    for i, c, t in golden_cases(shared_dir, "filtered_lrelu"):
        dev = backend.device
        x, b = t["x"].to(dev).requires_grad_(True), t["b"].to(dev).requires_grad_(True)
        fu = t["fu"].to(dev) if "fu" in t else None
        fd = t["fd"].to(dev) if "fd" in t else None
        y = fn(x, fu, fd, b, c["up"], c["down"], upfirdn2d._parse_padding(c["padding"]), float(c["gain"]),
               float(c["slope"]), None if c["clamp"] is None else float(c["clamp"]), c["flip_filter"])
        dx, db = torch.autograd.grad(y, [x, b], t["dy"].to(dev))
        assert_close([y, dx, db], [t["y"], t["dx"], t["db"]], FP32_TOL, f"golden case {i}")


def _lowpass(taps: int, cutoff: float) -> torch.Tensor:
    import scipy.signal
    return torch.as_tensor(scipy.signal.firwin(taps, cutoff), dtype=torch.float32)


def test_filtered_lrelu_random_fused_configs(backend):
    """The fused configurations with odd sizes, any padding (also cropping), flips, clamps, radial filters."""
    fn, spy = backend.filtered_lrelu()
    rng = random.Random(12)
    gen = torch.Generator().manual_seed(12)
    checked = 0
    for up, down, radial in [(1, 1, False), (2, 2, False), (2, 2, True), (4, 2, False), (4, 2, True)] * 2:
        fu = _lowpass(6 * up, 0.5 / up) if up > 1 else None
        fd = None
        if down > 1:
            fd = _lowpass(6 * down, 0.5 / down)
            if radial:
                fd = torch.outer(fd, fd) + 0.01 * torch.randn([6 * down, 6 * down], generator=gen)
        H, W = rng.randint(1, 45), rng.randint(1, 45)
        pad = tuple(rng.randint(-3, 14) for _ in range(4))
        fuw, fdw = 1 if fu is None else fu.shape[-1], 1 if fd is None else fd.shape[-1]
        if any(s * up + pad[2 * a] + pad[2 * a + 1] - fuw + 1 - fdw < 0 for a, s in enumerate((W, H))):
            continue
        x = torch.randn([2, 3, H, W], generator=gen).to(backend.device)
        b = torch.randn([3], generator=gen).to(backend.device)
        fu_d = None if fu is None else fu.to(backend.device)
        fd_d = None if fd is None else fd.to(backend.device)
        args = (fu_d, fd_d, b, up, down, pad, rng.choice([2 ** 0.5, 1.0]), rng.choice([0.2, 0.1]),
                rng.choice([None, 0.7]), rng.random() < 0.5)
        spy.calls.clear()
        got = _flrelu_run(fn, x, *args)
        want = _flrelu_run(filtered_lrelu._filtered_lrelu_ref, x, *args)
        assert spy.calls["fused"] == 3 and spy.calls["act"] == 0, dict(spy.calls)
        assert_close(got, want, FP32_TOL, f"up {up} down {down} radial {radial} input {(H, W)} pad {pad}")
        checked += 1
    assert checked >= 7


def test_filtered_lrelu_generic_path(backend):
    """Configurations without a fused kernel run on upfirdn2d + the activation kernel, with the same result."""
    fn, spy = backend.filtered_lrelu()
    gen = torch.Generator().manual_seed(13)
    cases = [  # up, down, fu, fd, padding
        (3, 2, _lowpass(9, 0.3), _lowpass(8, 0.4), (4, 3, 5, 2)),
        (2, 1, _lowpass(12, 0.25), None, (5, 5, 5, 5)),
        (1, 2, None, _lowpass(12, 0.25), (3, 2, 3, 2)),
        (2, 2, _lowpass(8, 0.25), _lowpass(8, 0.25), (4, 4, 4, 4)),     # other filter sizes
        (2, 2, torch.randn([6, 10], generator=gen), _lowpass(12, 0.25), (7, 6, 3, 2)),  # non-square 2-D filter
        (2, 4, _lowpass(12, 0.25), torch.randn([24, 24], generator=gen), (10, 11, 9, 12)),
    ]
    for up, down, fu, fd, pad in cases:
        x = torch.randn([2, 3, 11, 13], generator=gen).to(backend.device)
        b = torch.randn([3], generator=gen).to(backend.device)
        args = (None if fu is None else fu.to(backend.device), None if fd is None else fd.to(backend.device), b, up,
                down, pad, 2 ** 0.5, 0.2, 0.9, False)
        spy.calls.clear()
        got = _flrelu_run(fn, x, *args)
        want = _flrelu_run(filtered_lrelu._filtered_lrelu_ref, x, *args)
        assert spy.calls["act"] == 3, dict(spy.calls)
        assert_close(got, want, FP32_TOL, f"generic up {up} down {down} pad {pad}")


def test_filtered_lrelu_float16(backend):
    fn, spy = backend.filtered_lrelu()
    gen = torch.Generator().manual_seed(14)
    radial = torch.outer(_lowpass(12, 0.2), _lowpass(12, 0.2))
    for up, down, fu, fd, pad in [(2, 2, _lowpass(12, 0.25), radial, (11, 10, 11, 10)),
                                  (4, 2, _lowpass(24, 0.125), _lowpass(12, 0.25), (-2, -5, -2, -5)),
                                  (3, 2, _lowpass(9, 0.3), _lowpass(8, 0.4), (4, 3, 5, 2))]:
        x = (torch.randn([2, 3, 19, 17], generator=gen) * 3).half().to(backend.device)
        b = torch.randn([3], generator=gen).half().to(backend.device)
        args = (fu.to(backend.device), fd.to(backend.device), b, up, down, pad, 2 ** 0.5, 0.2, None, False)
        got = _flrelu_run(fn, x, *args, second=False)
        want = _flrelu_run(filtered_lrelu._filtered_lrelu_ref, x.float(), fu.to(backend.device),
                           fd.to(backend.device), b.float(), *args[3:], second=False)
        assert all(t.dtype == torch.float16 for t in got)
        assert_close(got[:2], want[:2], FP16_TOL, f"float16 up {up} down {down}: y, dx")

#----------------------------------------------------------------------------
# GPU only: the public ops and full-size layers.

def test_public_ops_run_the_kernels_on_cuda(cuda):
    gen = torch.Generator().manual_seed(15)
    x = torch.randn([2, 4, 16, 16], generator=gen).cuda()
    b = torch.randn([4], generator=gen).cuda()
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device="cuda")
    for run in (lambda impl: bias_act.bias_act(x, b, act="lrelu", clamp=256, impl=impl),
                lambda impl: upfirdn2d.upsample2d(x, f, impl=impl),
                lambda impl: upfirdn2d.downsample2d(x, f, impl=impl),
                lambda impl: filtered_lrelu.filtered_lrelu(x, _lowpass(12, 0.25).cuda(), _lowpass(12, 0.25).cuda(),
                                                           b, up=2, down=2, padding=11, clamp=256, impl=impl)):
        assert rel_err(run("cuda"), run("ref")) < FP32_TOL
    for plugin in (cuda_kernels.bias_act_plugin, cuda_kernels.upfirdn2d_plugin, cuda_kernels.filtered_lrelu_plugin):
        assert plugin._module is not None, plugin.error
    assert cuda_kernels.bias_act_impl(x, bias_act._bias_act_ref) is not None
    with cuda_kernels.kernels_enabled(False):  # the switch bench/ops_gpu.py uses for its reference timings
        assert cuda_kernels.bias_act_impl(x, bias_act._bias_act_ref) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_full_size_stylegan3_layer_on_cuda(cuda, dtype):
    """A 256x256 StyleGAN3-R layer (276 px with margins, radial down filter), forward and backward.

    With ~8e7 upsampled samples, a few land so close to zero that the two summation orders give them
    different signs, and their gradient takes the other slope: the output is continuous there, the
    gradient is not. So y must match everywhere, dx at all but a few samples (and db to 1e-4)."""
    fn, spy = cuda.filtered_lrelu()
    gen = torch.Generator().manual_seed(16)
    radial = torch.outer(_lowpass(12, 0.45), _lowpass(12, 0.45)).cuda()
    x = torch.randn([4, 64, 276, 276], generator=gen).to("cuda", dtype)
    b = torch.randn([64], generator=gen).to("cuda", dtype)
    args = (_lowpass(12, 0.25).cuda(), radial, b, 2, 2, (11, 10, 11, 10), 2 ** 0.5, 0.2, None, False)
    y, dx, db = _flrelu_run(fn, x, *args, second=False)
    y_ref, dx_ref, db_ref = _flrelu_run(filtered_lrelu._filtered_lrelu_ref, x.float(), *args[:2], b.float(),
                                        *args[3:], second=False)
    assert spy.calls["fused"] == 2
    tol = FP32_TOL if dtype == torch.float32 else FP16_TOL
    assert rel_err(y, y_ref) < tol
    bad = ((dx.float() - dx_ref).abs() > tol * dx_ref.abs().max()).sum().item()
    assert bad <= 1e-5 * dx.numel(), f"{bad} of {dx.numel()} gradient samples differ"
    assert rel_err(db, db_ref) < max(tol, 1e-4)

#----------------------------------------------------------------------------
# Dispatch without a GPU.

def test_cpu_tensors_never_touch_the_plugins():
    x = torch.randn([1, 2, 4, 4])
    assert cuda_kernels.bias_act_impl(x, bias_act._bias_act_ref) is None
    assert cuda_kernels.upfirdn2d_impl(x, upfirdn2d._upfirdn2d_ref) is None
    assert cuda_kernels.filtered_lrelu_impl(x, filtered_lrelu._filtered_lrelu_ref) is None
    y = filtered_lrelu.filtered_lrelu(x, up=2, down=2, fu=_lowpass(12, 0.25), fd=_lowpass(12, 0.25), padding=11,
                                      impl="cuda")
    assert y.shape == (1, 2, 4, 4)
    if not torch.cuda.is_available():
        for plugin in (cuda_kernels.bias_act_plugin, cuda_kernels.upfirdn2d_plugin,
                       cuda_kernels.filtered_lrelu_plugin):
            assert plugin._module is None and plugin.error is None  # never even tried


def test_plugin_that_cannot_launch_falls_back_once(caplog, monkeypatch):
    """A plugin built without code for this GPU: one warning, then the reference (no second probe)."""
    monkeypatch.setattr(cuda_kernels, "_runs_on", {})
    calls = []

    def probe(mod, device):
        calls.append(device)
        raise RuntimeError("bias_act: kernel launch failed: no kernel image is available for execution on the device")
    with caplog.at_level("WARNING", logger="torch_utils.ops.cuda_kernels"):
        for _ in range(3):
            assert not cuda_kernels._runs(cuda_kernels.bias_act_plugin, object(), torch.device("cpu"), probe)
    assert len(calls) == 1
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "no kernel image" in warnings[0] and "reference" in warnings[0]
    assert cuda_kernels._runs(cuda_kernels.upfirdn2d_plugin, object(), torch.device("cpu"), lambda m, d: None)


def test_probes_run_on_the_emulated_kernels(emulated):
    """The probe launches themselves are valid calls of the bindings."""
    cuda_kernels._probe_bias_act(emulated.ba, emulated.device)
    cuda_kernels._probe_upfirdn2d(emulated.ufd, emulated.device)
    cuda_kernels._probe_filtered_lrelu(emulated.fl, emulated.device)


#----------------------------------------------------------------------------
# First-use check: each configuration's first call compares the kernel with the reference.

class _Tampered:
    """A plugin module whose function `name` returns a wrong result (first output times 1.1) when its
    argument at `mode_arg` equals `mode`: a stand-in for a kernel that misbehaves on some GPU."""

    def __init__(self, mod: Any, name: str, mode_arg: int, mode: int):
        self._mod, self._name, self._mode_arg, self._mode = mod, name, mode_arg, mode

    def __getattr__(self, attr: str):
        fn = getattr(self._mod, attr)
        if attr != self._name:
            return fn

        def wrong(*args):
            out = fn(*args)
            if args[self._mode_arg] != self._mode:
                return out
            return (out[0] * 1.1, *out[1:]) if isinstance(out, tuple) else out * 1.1
        return wrong


@pytest.fixture
def fresh_checks(monkeypatch):
    monkeypatch.setattr(cuda_kernels, "_checked", {})
    monkeypatch.setattr(cuda_kernels, "_warned_ops", set())


class _CountedRef:
    def __init__(self, ref: Callable):
        self.ref, self.calls = ref, 0

    def __call__(self, *args):
        self.calls += 1
        return self.ref(*args)


def _sg3_call(batch: int, size: int = 12) -> tuple:
    gen = torch.Generator().manual_seed(batch)
    x = torch.randn([batch, 3, size, size], generator=gen) * 3
    f = _lowpass(12, 0.25)
    return (x, f, f, torch.randn([3], generator=gen), 2, 2, (11, 11, 11, 11), 2 ** 0.5, 0.2, 4.0, False)


def _checked_ops(ba: Any, ufd: Any, fl: Any) -> dict[str, tuple[Callable, _CountedRef, tuple]]:
    """op -> (checked kernel function, its counted reference, an argument tuple of the op)."""
    refs = {"bias_act": _CountedRef(bias_act._bias_act_ref), "upfirdn2d": _CountedRef(upfirdn2d._upfirdn2d_ref),
            "filtered_lrelu": _CountedRef(filtered_lrelu._filtered_lrelu_ref)}
    x = torch.randn([4, 5, 7, 9], generator=torch.Generator().manual_seed(3))
    calls = {"bias_act": (x, torch.randn([5]), 1, "lrelu", 0.2, 2 ** 0.5, 256.0),
             "upfirdn2d": (x, _lowpass(4, 0.5), (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0),
             "filtered_lrelu": _sg3_call(4)}
    fns = {"bias_act": cuda_kernels.bias_act_fn(ba, refs["bias_act"]),
           "upfirdn2d": cuda_kernels.upfirdn2d_fn(ufd, refs["upfirdn2d"]),
           "filtered_lrelu": cuda_kernels.filtered_lrelu_fn(fl, ufd, refs["filtered_lrelu"])}
    grad_args = {"bias_act": (0, 1), "upfirdn2d": (0,), "filtered_lrelu": (0, 3)}
    second = {"bias_act": True, "upfirdn2d": True, "filtered_lrelu": False}  # as cuda_kernels' *_impl ask
    return {op: (cuda_kernels.checked(op, fns[op], refs[op], grad_args[op], second[op]), refs[op], calls[op])
            for op in fns}


def test_first_use_check_keeps_matching_kernels(emulated, fresh_checks, caplog):
    """Kernels that equal the reference: the kernel's own result, the reference run once per
    configuration (in the check) and never again, no warning, the global random state untouched."""
    ops = _checked_ops(emulated.ba, emulated.ufd, emulated.fl)
    raw = _checked_ops(emulated.ba, emulated.ufd, emulated.fl)
    rng = torch.get_rng_state()
    with caplog.at_level("WARNING", logger="torch_utils.ops.cuda_kernels"):
        for op, (fn, ref, args) in ops.items():
            got = fn(*args)
            raw_fn = cuda_kernels.filtered_lrelu_fn(emulated.fl, emulated.ufd, ref.ref) if op == "filtered_lrelu" \
                else raw[op][0]
            assert torch.equal(got, raw_fn(*args)), op
            assert ref.calls == 1, op
            assert torch.equal(fn(args[0][:1], *args[1:]), got[:1]), op  # another batch size: no new check
            with torch.inference_mode():  # rendering: checked there too, no error
                fn(args[0] + 1, *args[1:])
            assert ref.calls == 1, op
    assert torch.equal(torch.get_rng_state(), rng)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert sorted(k[0] for k, ok in cuda_kernels._checked.items() if ok) == sorted(ops)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_first_use_check_passes_every_stylegan3_layer(backend, dtype):
    """No false alarm: the check passes the kernels on every distinct StyleGAN3-R / -T layer, float32
    and float16 (the network's clamp of 256 on activations of its size), and the lrelu bias_act of
    StyleGAN2 layers."""
    gen = torch.Generator().manual_seed(21)
    fl_ref, ba_ref = filtered_lrelu._filtered_lrelu_ref, bias_act._bias_act_ref
    fl_fn, _ = backend.filtered_lrelu()
    for c in _stylegan3_layer_configs("r") + _stylegan3_layer_configs("t"):
        x = (torch.randn([2, 4, c["size"][1], c["size"][0]], generator=gen) * 50).to(backend.device, dtype)
        b = torch.randn([4], generator=gen).to(backend.device, dtype)
        fu = None if c["fu"] is None else c["fu"].to(backend.device)
        fd = None if c["fd"] is None else c["fd"].to(backend.device)
        args = (x, fu, fd, b, c["up"], c["down"], c["pad"], c["gain"], c["slope"], 256.0, False)
        ok, why = cuda_kernels._compare("filtered_lrelu", fl_fn, fl_ref, args, (0, 3))
        assert ok, (c["name"], why)
    x = (torch.randn([3, 8, 9, 9], generator=gen) * 200).to(backend.device, dtype)
    args = (x, torch.randn([8], generator=gen).to(backend.device, dtype), 1, "lrelu", 0.2, 2 ** 0.5, 256.0)
    ok, why = cuda_kernels._compare("bias_act", backend.bias_act(), ba_ref, args, (0, 1), second_order=True)
    assert ok, why
    # D's downsampling (filter [1,3,3,1], as R1 takes it through upfirdn2d) and G's upsampling.
    f = torch.tensor([1.0, 3.0, 3.0, 1.0]).to(backend.device) / 8
    ufd_fn, ufd_ref = backend.upfirdn2d(), upfirdn2d._upfirdn2d_ref
    for up, down, pad in (((1, 1), (2, 2), (1, 1, 1, 1)), ((2, 2), (1, 1), (2, 1, 2, 1))):
        args = (x, f, up, down, pad, False, 4.0 if up[0] == 2 else 1.0)
        ok, why = cuda_kernels._compare("upfirdn2d", ufd_fn, ufd_ref, args, (0,), second_order=True)
        assert ok, (up, down, why)


@pytest.mark.parametrize("op,func,mode_arg,mode,what", [
    ("filtered_lrelu", "fused", -1, 0, "output is off"),               # the forward without autograd
    ("filtered_lrelu", "fused", -1, 2, "gradient of argument 0"),     # the backward pass only
    ("bias_act", "bias_act", 3, 1, "gradient of argument 0"),
    ("upfirdn2d", "upfirdn2d", 4, 2, "gradient of argument 0"),        # down 2 only: the backward of up 2
])
def test_first_use_check_catches_a_wrong_kernel(emulated, fresh_checks, caplog, op, func, mode_arg, mode, what):
    """A kernel that is wrong in one mode: one warning naming the op, and the reference's result for
    that configuration from the first call on, with no further check or warning."""
    mods = {"bias_act": emulated.ba, "upfirdn2d": emulated.ufd, "filtered_lrelu": emulated.fl}
    mods[op] = _Tampered(mods[op], func, mode_arg, mode)
    fn, ref, args = _checked_ops(mods["bias_act"], mods["upfirdn2d"], mods["filtered_lrelu"])[op]
    with caplog.at_level("WARNING", logger="torch_utils.ops.cuda_kernels"):
        x = args[0].clone().requires_grad_(True)
        got = fn(x, *args[1:])
        want = ref.ref(x, *args[1:])
        assert torch.equal(got, want)
        (dx_got,), (dx_want,) = torch.autograd.grad(got.sum(), [x]), torch.autograd.grad(want.sum(), [x])
        assert torch.equal(dx_got, dx_want)
        calls = ref.calls
        fn(args[0][:2], *args[1:])
        assert ref.calls == calls + 1  # the reference itself, not another check (which would call it twice)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and f"CUDA kernel of {op} differs" in warnings[0] and what in warnings[0], warnings
    assert "uses the reference" in warnings[0]


@pytest.mark.parametrize("act", ["elu", "lrelu"])
def test_first_use_check_catches_a_wrong_second_derivative(emulated, fresh_checks, caplog, act):
    """bias_act's second derivative (mode 2 of the kernel, taken by R1 and path-length regularization)
    wrong: caught where the activation has one (elu); lrelu's is zero and never computed."""
    x = torch.randn([4, 5, 7, 9], generator=torch.Generator().manual_seed(3))
    args = (x, torch.randn([5]), 1, act, 0.2, 2 ** 0.5, -1.0)
    ref = _CountedRef(bias_act._bias_act_ref)
    fn = cuda_kernels.checked("bias_act", cuda_kernels.bias_act_fn(_Tampered(emulated.ba, "bias_act", 3, 2), ref),
                              ref, (0, 1), second_order=True)
    with caplog.at_level("WARNING", logger="torch_utils.ops.cuda_kernels"):
        fn(*args)
    warnings = [r.getMessage() for r in caplog.records]
    if act == "lrelu":
        assert not warnings and all(cuda_kernels._checked.values())
    else:
        assert len(warnings) == 1 and "its second derivative of argument 0 is off" in warnings[0], warnings
        # Without the second-order check the same kernel passes: its outputs and gradients are right.
        assert cuda_kernels._compare("bias_act", cuda_kernels.bias_act_fn(_Tampered(emulated.ba, "bias_act", 3, 2),
                                                                          ref), ref, args, (0, 1)) == (True, "")


def test_first_use_check_of_a_kernel_that_fails(emulated, fresh_checks, caplog):
    class Failing:
        def __getattr__(self, attr):
            def fail(*args):
                raise RuntimeError("filtered_lrelu: kernel launch failed: too many resources requested for launch")
            return fail if attr == "fused" else getattr(emulated.fl, attr)
    fn, ref, args = _checked_ops(emulated.ba, emulated.ufd, Failing())["filtered_lrelu"]
    with caplog.at_level("WARNING", logger="torch_utils.ops.cuda_kernels"):
        assert torch.equal(fn(*args), ref.ref(*args))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "it failed: filtered_lrelu: kernel launch failed" in warnings[0], warnings


def test_first_use_check_on_non_finite_input_decides_nothing(emulated, fresh_checks, caplog):
    """Non-finite values (a diverged run) cannot tell a wrong kernel: the call runs the kernel and the
    configuration is checked again on its next call."""
    mod = _Tampered(emulated.ba, "bias_act", 3, 0)
    fn, ref, args = _checked_ops(mod, emulated.ufd, emulated.fl)["bias_act"]
    x = args[0].clone()
    x[0, 0, 0, 0] = float("nan")
    with caplog.at_level("WARNING", logger="torch_utils.ops.cuda_kernels"):
        fn(x, *args[1:])
        assert not cuda_kernels._checked.get(cuda_kernels._config_key("bias_act", (x, *args[1:])), False)
        assert not caplog.records
        fn(*args)  # finite: the wrong kernel is found
    assert len(caplog.records) == 1


def test_plugins_are_declared_for_the_prebuild():
    code = ("import sys; sys.path.insert(0, %r); from torch_utils import custom_ops; "
            "print(sorted((n, p.kind) for n, p in custom_ops.all_plugins().items()))" % REPO)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    for name in ("bias_act_cuda", "upfirdn2d_cuda", "filtered_lrelu_cuda"):
        assert f"('{name}', 'cuda')" in res.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_gpu_benchmark_without_cuda_says_so():
    res = subprocess.run([sys.executable, os.path.join(REPO, "bench", "ops_gpu.py")], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 1
    assert "needs a CUDA GPU" in res.stderr and "Traceback" not in res.stderr


def test_prebuild_cli_lists_the_plugins():
    res = subprocess.run([sys.executable, "-m", "torch_utils.custom_ops", "--list"], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr
    for name in ("bias_act_cuda", "upfirdn2d_cuda", "filtered_lrelu_cuda"):
        assert name in res.stdout

#----------------------------------------------------------------------------

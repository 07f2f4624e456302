"""Tests of `torch_utils.ops`: golden NVIDIA-compatible outputs and gradients, the definitions the
ops implement (checked against naive code written here), and gradients of first and second order."""

import json
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torch_utils.ops import (
    bias_act,
    conv2d_gradfix,
    conv2d_resample,
    filtered_lrelu,
    fma,
    grid_sample_gradfix,
    upfirdn2d,
)

IMPLS = ["ref", "cuda"]  # 'cuda' on CPU tensors must silently run the reference path

#----------------------------------------------------------------------------
# Helpers.

def rel_err(a: torch.Tensor, b) -> float:
    """Max abs difference relative to the max magnitude of the reference `b`."""
    b = torch.as_tensor(b, dtype=a.dtype).detach()
    assert a.shape == b.shape, (tuple(a.shape), tuple(b.shape))
    return float((a.detach() - b).abs().max() / b.abs().max().clamp(min=1e-30))


@pytest.fixture(scope="module")
def golden(golden_dir):
    data = np.load(golden_dir / "golden_ops.npz")
    cases = json.loads(str(data["cases"]))
    return cases, data


def golden_cases(golden, op):
    cases, data = golden
    found = [(i, c) for i, c in enumerate(cases) if c["op"] == op]
    assert found, f"no golden cases for {op}"
    return found, data


def naive_upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """The definition: zero-stuff, pad, one full 2-D convolution with the (outer-product) filter, decimate."""
    upx, upy = (up, up) if isinstance(up, int) else up
    dx, dy = (down, down) if isinstance(down, int) else down
    px0, px1, py0, py1 = upfirdn2d._parse_padding(padding)
    N, C, H, W = x.shape
    z = x.new_zeros([N, C, H * upy, W * upx])
    z[:, :, ::upy, ::upx] = x
    z = F.pad(z, [px0, px1, py0, py1])
    f = torch.ones([1, 1], dtype=x.dtype) if f is None else f.to(x.dtype)
    f = (torch.outer(f, f) if f.ndim == 1 else f) * gain
    if not flip_filter:
        f = f.flip([0, 1])
    z = F.conv2d(z, f[None, None].repeat(C, 1, 1, 1), groups=C)
    return z[:, :, ::dy, ::dx]

#----------------------------------------------------------------------------
# upfirdn2d.

@pytest.mark.parametrize("impl", IMPLS)
def test_upfirdn2d_golden(golden, impl):
    found, data = golden_cases(golden, "upfirdn2d")
    for i, c in found:
        x = torch.tensor(data[f"{i}/x"], requires_grad=True)
        y = upfirdn2d.upfirdn2d(x, torch.tensor(data[f"{i}/f"]), up=c["up"], down=c["down"], padding=c["padding"],
                                flip_filter=c["flip_filter"], gain=c["gain"], impl=impl)
        assert rel_err(y, data[f"{i}/y"]) < 1e-4, (i, c)
        y.backward(torch.tensor(data[f"{i}/dy"]))
        assert rel_err(x.grad, data[f"{i}/dx"]) < 1e-4, (i, c)


def test_upfirdn2d_matches_definition():
    """Random up/down/padding/filter kinds (none, separable, 2-D, rank-one 2-D) against the definition."""
    rng = random.Random(0)
    torch.manual_seed(0)
    checked = 0
    while checked < 150:
        up = (rng.randint(1, 4), rng.randint(1, 3))
        down = (rng.randint(1, 3), rng.randint(1, 4))
        kind = rng.choice(["none", "sep", "2d", "rank1"])
        kx, ky = rng.randint(1, 8), rng.randint(1, 8)
        f = {"none": None, "sep": torch.randn(kx, dtype=torch.float64),
             "2d": torch.randn(ky, kx, dtype=torch.float64),
             "rank1": torch.outer(torch.randn(ky, dtype=torch.float64), torch.randn(kx, dtype=torch.float64))}[kind]
        fw, fh = upfirdn2d._get_filter_size(f)
        H, W = rng.randint(1, 8), rng.randint(1, 8)
        pad = [rng.randint(-2, 7) for _ in range(4)]
        if W * up[0] + pad[0] + pad[1] < fw or H * up[1] + pad[2] + pad[3] < fh:
            continue
        if W * up[0] + min(pad[0], 0) + min(pad[1], 0) < 1 or H * up[1] + min(pad[2], 0) + min(pad[3], 0) < 1:
            continue
        x = torch.randn(2, 3, H, W, dtype=torch.float64)
        flip, gain = rng.random() < 0.5, rng.choice([1, 2.5])
        y = upfirdn2d.upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=gain)
        ref = naive_upfirdn2d(x, f, up, down, pad, flip, gain)
        assert rel_err(y, ref) < 1e-12, (up, down, pad, kind, H, W)
        checked += 1


def test_upfirdn2d_stylegan_layers_match_definition():
    """The shapes StyleGAN2/3 use, in float32: 12-tap separable up 2 / down 2, and [1,3,3,1] up/down."""
    torch.manual_seed(1)
    x = torch.randn(1, 8, 20, 20)
    f12 = upfirdn2d.setup_filter(torch.rand(12), separable=True)
    for kw in [dict(up=2, padding=[11, 10, 11, 10], gain=4), dict(down=2), dict(up=2, down=2, padding=3)]:
        assert rel_err(upfirdn2d.upfirdn2d(x, f12, **kw), naive_upfirdn2d(x, f12, **kw)) < 1e-5, kw
    f4 = upfirdn2d.setup_filter([1, 3, 3, 1])
    assert f4.ndim == 2 and upfirdn2d._split_rank1(f4) is not None  # runs as two 1-D passes
    assert rel_err(upfirdn2d.upsample2d(x, f4), naive_upfirdn2d(x, f4, up=2, padding=[2, 1, 2, 1], gain=4)) < 1e-5
    assert rel_err(upfirdn2d.downsample2d(x, f4), naive_upfirdn2d(x, f4, down=2, padding=1)) < 1e-5


def test_upfirdn2d_gradcheck():
    torch.manual_seed(2)
    x = torch.randn(1, 1, 4, 3, dtype=torch.float64, requires_grad=True)
    for f, kw in [(torch.randn(4, dtype=torch.float64), dict(up=2, down=1, padding=[2, 1, 1, 2])),
                  (torch.randn(3, 2, dtype=torch.float64), dict(up=[1, 3], down=[2, 2], padding=[1, 0, -1, 2])),
                  (None, dict(up=2, down=3, padding=1, gain=2))]:
        fn = lambda t: upfirdn2d.upfirdn2d(t, f, **kw)
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


def test_upfirdn2d_keeps_memory_format():
    """The passes run channels-last internally; results come back in the layout of the input."""
    f = upfirdn2d.setup_filter(torch.rand(12) + 0.1, separable=True)
    x = torch.randn(2, 5, 16, 14)
    for xin in (x, x.contiguous(memory_format=torch.channels_last)):
        for kw in [dict(up=2, padding=5), dict(down=2), dict(up=[1, 2], down=[2, 1], padding=[4, 5, 6, 7])]:
            y = upfirdn2d.upfirdn2d(xin, f, **kw)
            assert y.is_contiguous(memory_format=torch.channels_last if xin is not x else torch.contiguous_format), kw
            assert rel_err(y, naive_upfirdn2d(x, f, **kw)) < 1e-5, kw
    y = filtered_lrelu.filtered_lrelu(x, f, f, up=2, down=2, padding=[11, 10, 11, 10])
    assert y.is_contiguous()


def test_setup_filter():
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    assert torch.allclose(f, torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64)
    taps = torch.arange(1., 13.)
    f = upfirdn2d.setup_filter(taps)  # >= 8 taps: separable by default
    assert f.shape == (12,) and math.isclose(float(f.sum()), 1, rel_tol=1e-6)
    assert upfirdn2d.setup_filter(taps, separable=False).shape == (12, 12)
    assert torch.allclose(upfirdn2d.setup_filter(taps, flip_filter=True, gain=4), f.flip(0) * 2)
    assert torch.allclose(upfirdn2d.setup_filter([1, 2], normalize=False, gain=3), torch.tensor([[1., 2], [2, 4]]) * 3)
    assert upfirdn2d.setup_filter(None).tolist() == [[1.0]]
    assert upfirdn2d.setup_filter(2.0, normalize=False).tolist() == [[4.0]]  # a scalar is one tap per axis
    src = torch.tensor([1., 1.])
    upfirdn2d.setup_filter(src)
    assert src.tolist() == [1., 1.]  # the caller's tensor is not normalised in place
    with pytest.raises(ValueError, match="separable"):
        upfirdn2d.setup_filter(torch.ones(3, 3), separable=True)
    with pytest.raises(ValueError):
        upfirdn2d.setup_filter(torch.ones(2, 2, 2))


def test_resampling_helpers_keep_size_and_dc():
    """filter2d keeps the size, up/downsample2d scale it; a constant image stays constant inside
    (both filters have polyphase components of equal sum, so upsampling preserves DC)."""
    x = torch.full([1, 2, 32, 32], 3.0)
    taps12 = [1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2, 1]
    for f in [upfirdn2d.setup_filter([1, 3, 3, 1]), upfirdn2d.setup_filter(taps12)]:
        y = upfirdn2d.filter2d(x, f)
        assert y.shape == x.shape and torch.allclose(y[:, :, 8:24, 8:24], torch.tensor(3.0))
        y = upfirdn2d.upsample2d(x, f)
        assert y.shape == (1, 2, 64, 64) and torch.allclose(y[:, :, 16:48, 16:48], torch.tensor(3.0))
        y = upfirdn2d.downsample2d(x, f, padding=[1, 2])
        assert y.shape == (1, 2, 18, 17) and torch.allclose(y[:, :, 6:12, 6:11], torch.tensor(3.0))
    y = upfirdn2d.upsample2d(x, None, up=[2, 3])  # no filter: zero-stuffing with gain up_x * up_y
    assert y.shape == (1, 2, 96, 64) and float(y.sum()) == pytest.approx(float(x.sum()) * 6)
    assert torch.equal(y[:, :, 1::3, 1::2], x * 6) and float(y[:, :, 0::3].abs().sum()) == 0


def test_upfirdn2d_bad_arguments():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="4-D"):
        upfirdn2d.upfirdn2d(torch.zeros(4, 4), None)
    with pytest.raises(ValueError, match="impl"):
        upfirdn2d.upfirdn2d(x, None, impl="fast")
    with pytest.raises(ValueError, match="padding"):
        upfirdn2d.upfirdn2d(x, None, padding=[1, 2, 3])
    with pytest.raises(ValueError, match="up"):
        upfirdn2d.upfirdn2d(x, None, up=0)
    with pytest.raises(ValueError, match="empty"):
        upfirdn2d.upfirdn2d(x, torch.ones(6, 6))
    with pytest.raises(ValueError, match="gradient"):
        upfirdn2d.upfirdn2d(x, torch.ones(2, 2, requires_grad=True))

#----------------------------------------------------------------------------
# bias_act.

@pytest.mark.parametrize("impl", IMPLS)
def test_bias_act_golden(golden, impl):
    found, data = golden_cases(golden, "bias_act")
    assert {c["act"] for _, c in found} == set(bias_act.activation_funcs)
    for i, c in found:
        x = torch.tensor(data[f"{i}/x"], requires_grad=True)
        b = torch.tensor(data[f"{i}/b"], requires_grad=True)
        y = bias_act.bias_act(x, b, dim=c["dim"], act=c["act"], alpha=c["alpha"], gain=c["gain"], clamp=c["clamp"],
                              impl=impl)
        assert rel_err(y, data[f"{i}/y"]) < 1e-4, (i, c)
        y.backward(torch.tensor(data[f"{i}/dy"]))
        assert rel_err(x.grad, data[f"{i}/dx"]) < 1e-4, (i, c)
        assert rel_err(b.grad, data[f"{i}/db"]) < 1e-4, (i, c)


def test_bias_act_records():
    funcs = bias_act.activation_funcs
    assert funcs["lrelu"].def_alpha == 0.2 and funcs["lrelu"].def_gain == pytest.approx(math.sqrt(2))
    assert funcs["linear"].def_gain == 1 and funcs["swish"].def_gain == pytest.approx(math.sqrt(2))
    assert funcs["relu"]["def_gain"] == funcs["relu"].def_gain  # records allow key and attribute access
    assert sorted(r.cuda_idx for r in funcs.values()) == list(range(1, 10))


@pytest.mark.parametrize("act", ["linear", "lrelu", "tanh", "elu", "softplus", "swish"])
def test_bias_act_gradcheck(act):
    torch.manual_seed(3)
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: bias_act.bias_act(x, b, act=act, clamp=1.5)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_bias_act_dims_and_defaults():
    torch.manual_seed(4)
    x = torch.randn(4, 5)
    b = torch.randn(4)
    y = bias_act.bias_act(x, b, dim=0, act="lrelu")
    assert torch.allclose(y, F.leaky_relu(x + b[:, None], 0.2) * math.sqrt(2))
    assert torch.equal(bias_act.bias_act(x), x)
    assert float(bias_act.bias_act(x * 100, act="relu", clamp=2).max()) == 2.0
    assert torch.allclose(bias_act.bias_act(x, clamp=-1), x)  # negative clamp: none
    with pytest.raises(ValueError, match="unknown activation"):
        bias_act.bias_act(x, act="gelu")
    with pytest.raises(ValueError, match="bias must have shape"):
        bias_act.bias_act(x, torch.zeros(4))

#----------------------------------------------------------------------------
# filtered_lrelu.

def naive_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter=False):
    """The definition, composed from the naive resampling."""
    if b is not None:
        x = x + b[None, :, None, None]
    z = naive_upfirdn2d(x, fu, up=up, padding=padding, flip_filter=flip_filter, gain=up ** 2)
    z = F.leaky_relu(z, slope) * gain
    if clamp is not None:
        z = z.clamp(-clamp, clamp)
    return naive_upfirdn2d(z, fd, down=down, flip_filter=flip_filter)


@pytest.mark.parametrize("impl", IMPLS)
def test_filtered_lrelu_golden(golden, impl):
    found, data = golden_cases(golden, "filtered_lrelu")
    for i, c in found:
        get = lambda k: torch.tensor(data[f"{i}/{k}"]) if f"{i}/{k}" in data.files else None
        x, b = get("x").requires_grad_(), get("b").requires_grad_()
        y = filtered_lrelu.filtered_lrelu(x, get("fu"), get("fd"), b, up=c["up"], down=c["down"], padding=c["padding"],
                                          gain=c["gain"], slope=c["slope"], clamp=c["clamp"],
                                          flip_filter=c["flip_filter"], impl=impl)
        assert rel_err(y, data[f"{i}/y"]) < 1e-4, (i, c)
        y.backward(get("dy"))
        assert rel_err(x.grad, data[f"{i}/dx"]) < 1e-4, (i, c)
        assert rel_err(b.grad, data[f"{i}/db"]) < 1e-4, (i, c)


@pytest.mark.parametrize("block_bytes", [1, 1 << 30])
def test_filtered_lrelu_matches_definition(monkeypatch, block_bytes):
    """Forward and gradients against the naive composition, processing one channel at a time
    (block_bytes=1) or all at once; includes a 2-D (radial-style) down filter and batch > 1."""
    monkeypatch.setattr(filtered_lrelu, "_BLOCK_BYTES", block_bytes)
    torch.manual_seed(5)
    fu = upfirdn2d.setup_filter(torch.rand(8) + 0.1, separable=True)
    fd2 = upfirdn2d.setup_filter(torch.rand(5, 5) + 0.1)
    for fu_, fd, up, down, pad, clamp, flip in [(fu, fu, 2, 2, [7, 6, 7, 6], 0.8, False),
                                                (fu, fd2, 2, 1, [3, 4, 2, 5], None, True),
                                                (None, None, 1, 1, 0, 1.0, False),
                                                (None, fu, 1, 2, [-1, 2, 3, 0], None, False)]:
        x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
        b = torch.randn(3, dtype=torch.float64, requires_grad=True)
        dy = None
        outs = []
        for fn in (filtered_lrelu.filtered_lrelu, naive_filtered_lrelu):
            y = fn(x, fu_, fd, b, up=up, down=down, padding=pad, gain=1.7, slope=0.3, clamp=clamp, flip_filter=flip)
            dy = torch.randn_like(y) if dy is None else dy
            outs.append((y.detach(), *torch.autograd.grad(y, [x, b], dy)))
        for ours, ref in zip(*outs):
            assert rel_err(ours, ref) < 1e-12, (up, down, pad)


def test_filtered_lrelu_saves_one_byte_per_read_sample():
    """For the backward pass only a uint8 code of the intermediate is kept, and only the part of
    the intermediate that the down filter reads is computed (the far padding is trimmed)."""
    fu = upfirdn2d.setup_filter(torch.rand(12) + 0.1, separable=True)
    x = torch.randn(2, 3, 10, 10, requires_grad=True)
    y = filtered_lrelu.filtered_lrelu(x, fu, fu, up=2, down=2, padding=12, clamp=1.0)  # intermediate 33 px
    assert y.shape == (2, 3, 11, 11)
    code = torch.cat(y.grad_fn.codes, dim=1)  # per block of channels
    assert code.dtype == torch.uint8 and code.shape == (1, 6, 32, 32)  # (11 - 1) * 2 + 12 px are read
    assert len(y.grad_fn.saved_tensors) == 0
    with torch.no_grad():
        assert filtered_lrelu.filtered_lrelu(x, fu, fu, up=2, down=2, padding=12).grad_fn is None


def test_fast_impl_seam_falls_back_to_reference():
    """impl='cuda' on CPU tensors runs the reference, for every op with a fused-kernel seam."""
    x = torch.zeros(1)
    for mod, ref in [(upfirdn2d, upfirdn2d._upfirdn2d_ref), (bias_act, bias_act._bias_act_ref),
                     (filtered_lrelu, filtered_lrelu._filtered_lrelu_ref)]:
        assert mod._fast_impl(x, "cuda") is ref and mod._fast_impl(x, "ref") is ref


def test_filtered_lrelu_gradcheck():
    torch.manual_seed(6)
    fu = upfirdn2d.setup_filter(torch.rand(8) + 0.1, separable=True).double()
    x = torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    fn = lambda x, b: filtered_lrelu.filtered_lrelu(x, fu, fu, b, up=2, down=2, padding=[7, 6, 7, 6], clamp=0.7)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))  # second order: through the incoming gradient


def test_filtered_lrelu_bad_arguments():
    x = torch.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match="up must be an int"):
        filtered_lrelu.filtered_lrelu(x, up=[2, 2])
    with pytest.raises(ValueError, match="bias"):
        filtered_lrelu.filtered_lrelu(x, b=torch.zeros(3))
    with pytest.raises(ValueError, match="clamp"):
        filtered_lrelu.filtered_lrelu(x, clamp=-1)
    with pytest.raises(ValueError, match="empty"):
        filtered_lrelu.filtered_lrelu(x, fu=torch.ones(12), fd=torch.ones(12), up=2, down=2)
    with pytest.raises(ValueError, match="impl"):
        filtered_lrelu.filtered_lrelu(x, impl="triton")

#----------------------------------------------------------------------------
# conv2d_gradfix.

@pytest.fixture
def gradfix_on(monkeypatch):
    monkeypatch.setattr(conv2d_gradfix, "enabled", True)


CONV_CASES = [  # (transposed, in channels, out channels, kernel, kwargs)
    (False, 4, 6, 3, dict(stride=1, padding=1)),
    (False, 4, 6, 3, dict(stride=2, padding=[0, 1], dilation=[1, 2], groups=2)),
    (True, 4, 6, 3, dict(stride=2, padding=1, output_padding=1)),
    (True, 6, 4, 2, dict(stride=[2, 1], padding=0, groups=2, dilation=[2, 1])),
]


def _conv_args(transposed, cin, cout, k, groups, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, cin, 7, 6, dtype=dtype, generator=g, requires_grad=True)
    wshape = [cin, cout // groups, k, k] if transposed else [cout, cin // groups, k, k]
    w = torch.randn(wshape, dtype=dtype, generator=g, requires_grad=True)
    b = torch.randn(cout, dtype=dtype, generator=g, requires_grad=True)
    return x, w, b


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_gradfix_matches_functional(gradfix_on, case):
    """Outputs, first derivatives and R1-style second derivatives equal torch.nn.functional's."""
    transposed, cin, cout, k, kw = case
    ours_fn = conv2d_gradfix.conv_transpose2d if transposed else conv2d_gradfix.conv2d
    ref_fn = F.conv_transpose2d if transposed else F.conv2d
    x, w, b = _conv_args(transposed, cin, cout, k, kw.get("groups", 1), torch.float64, 7)
    results = []
    for fn in (ours_fn, ref_fn):
        y = fn(x, w, b, **kw)
        (dx,) = torch.autograd.grad((y * y.detach().cos()).sum(), [x], create_graph=True)
        penalty = dx.square().sum()  # as in R1: gradient of a gradient norm
        results.append((y, dx, *torch.autograd.grad(penalty, [x, w, b], allow_unused=True)))
    for ours, ref in zip(*results):
        if ref is None:
            assert ours is None or float(ours.abs().max()) == 0
        else:
            assert rel_err(ours, ref) < 1e-12


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_gradfix_gradcheck(gradfix_on, case):
    transposed, _, _, k, kw = case
    fn = conv2d_gradfix.conv_transpose2d if transposed else conv2d_gradfix.conv2d
    x, w, b = _conv_args(transposed, 2, 2, min(k, 2), kw.get("groups", 1), torch.float64, 8)
    x = x[:1, :, :4, :4].detach().requires_grad_()
    f = lambda x, w, b: fn(x, w, b, **kw)
    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


def test_no_weight_gradients(gradfix_on):
    x, w, b = _conv_args(False, 3, 4, 3, 1, torch.float32, 9)
    with conv2d_gradfix.no_weight_gradients():
        y = conv2d_gradfix.conv2d(x, w, b, padding=1)
        (dx,) = torch.autograd.grad(y.square().sum(), [x], create_graph=True)  # what path-length reg does
        y.sum().backward(retain_graph=True)
        with conv2d_gradfix.no_weight_gradients(disable=False):  # does not re-enable
            conv2d_gradfix.conv2d(x, w, b).sum().backward()
    assert w.grad is None and x.grad is not None and b.grad is not None
    assert conv2d_gradfix._weight_gradients_disabled is False  # restored on exit
    dx.square().sum().backward()  # outside the context: the weight gets its gradient again
    assert w.grad is not None and float(w.grad.abs().sum()) > 0


def test_conv2d_gradfix_disabled_is_functional(monkeypatch):
    monkeypatch.setattr(conv2d_gradfix, "enabled", False)
    x, w, b = _conv_args(False, 3, 4, 3, 1, torch.float32, 10)
    y = conv2d_gradfix.conv2d(x, w, b, padding="same")
    assert y.grad_fn.name().startswith("Convolution")  # the native op, not ours
    with conv2d_gradfix.no_weight_gradients():
        y.sum().backward()
    assert w.grad is not None  # only the custom op honours no_weight_gradients
    assert torch.equal(y, F.conv2d(x, w, b, padding="same"))

#----------------------------------------------------------------------------
# conv2d_resample.

def naive_conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter):
    """The definition: upsample + pad + filter, valid convolution, filter + downsample."""
    fw, fh = upfirdn2d._get_filter_size(f)
    px0, px1, py0, py1 = upfirdn2d._parse_padding(padding)
    if up > 1:
        px0, px1, py0, py1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1, py0, py1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2, py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    z = naive_upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], flip_filter=flip_filter, gain=up ** 2)
    z = F.conv2d(z, w if flip_weight else w.flip([2, 3]), groups=groups)
    return naive_upfirdn2d(z, f, down=down, flip_filter=flip_filter) if down > 1 else z


@pytest.mark.parametrize("gradfix", [False, True])
def test_conv2d_resample_matches_definition(monkeypatch, gradfix):
    monkeypatch.setattr(conv2d_gradfix, "enabled", gradfix)
    torch.manual_seed(11)
    f4 = upfirdn2d.setup_filter([1, 3, 3, 1]).double()
    f5 = upfirdn2d.setup_filter(torch.rand(5, 4) + 0.1).double()
    checked = 0
    for up, down in [(1, 1), (2, 1), (1, 2), (2, 2), (3, 2)]:
        for k in (1, 3, 2):
            for groups, padding, f, flip_w, flip_f in [(1, k // 2, f4, True, False), (2, [1, 0, 2, -1], f5, False, True),
                                                       (1, [0, 1], None, True, False)]:
                x = torch.randn(2, 4, 7, 6, dtype=torch.float64)
                w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64)
                args = (f, up, down, padding, groups, flip_w, flip_f)
                try:
                    ref = naive_conv2d_resample(x, w, *args)
                except RuntimeError:  # empty output for this combination
                    continue
                y = conv2d_resample.conv2d_resample(x, w, f=f, up=up, down=down, padding=padding, groups=groups,
                                                    flip_weight=flip_w, flip_filter=flip_f)
                assert rel_err(y, ref) < 1e-12, (up, down, k, groups, padding)
                checked += 1
    assert checked >= 40


def test_conv2d_resample_stylegan2_shapes_and_gradients(gradfix_on):
    """StyleGAN2 uses 3x3 kernels, padding 1 and [1,3,3,1]: resolution doubles or halves; the
    R1-style double backward reaches the weights."""
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    w = torch.randn(5, 4, 3, 3, requires_grad=True)
    assert conv2d_resample.conv2d_resample(x, w, f=f, up=2, padding=1).shape == (2, 5, 16, 16)
    y = conv2d_resample.conv2d_resample(x, w, f=f, down=2, padding=1)
    assert y.shape == (2, 5, 4, 4)
    (dx,) = torch.autograd.grad(y.square().sum(), [x], create_graph=True)
    dx.square().sum().backward()
    assert w.grad is not None and float(w.grad.abs().sum()) > 0


def test_conv2d_resample_bad_arguments():
    x = torch.zeros(1, 4, 8, 8)
    with pytest.raises(ValueError, match="channels"):
        conv2d_resample.conv2d_resample(x, torch.zeros(3, 3, 3, 3))
    with pytest.raises(ValueError, match="up must be"):
        conv2d_resample.conv2d_resample(x, torch.zeros(3, 4, 3, 3), up=[2, 2])

#----------------------------------------------------------------------------
# fma, grid_sample_gradfix.

def test_fma_broadcasts_and_differentiates():
    torch.manual_seed(12)
    a = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 3, 1, 1, dtype=torch.float64, requires_grad=True)
    c = torch.randn(1, 3, 1, 1, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(fma.fma(a, b, c), a * b + c)
    assert fma.fma(a, b, c).shape == a.shape
    assert torch.autograd.gradcheck(fma.fma, (a, b, c))
    assert torch.autograd.gradgradcheck(fma.fma, (a, b, c))


@pytest.mark.parametrize("enabled", [False, True])
def test_grid_sample_twice_differentiable(monkeypatch, enabled):
    monkeypatch.setattr(grid_sample_gradfix, "enabled", enabled)
    torch.manual_seed(13)
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    grid = (torch.rand(1, 3, 3, 2, dtype=torch.float64) * 2.2 - 1.1).requires_grad_()
    y = grid_sample_gradfix.grid_sample(x, grid)
    assert torch.equal(y, F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    assert torch.autograd.gradcheck(grid_sample_gradfix.grid_sample, (x, grid))
    assert torch.autograd.gradgradcheck(grid_sample_gradfix.grid_sample, (x, grid))  # R1 through augmentation

#----------------------------------------------------------------------------

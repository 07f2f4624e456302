"""training/augment.py: the ADA pipeline (identity at p=0, every transform, exact pixel blitting, geometry
conventions, color math, gradients, determinism, persistence) and the p controller."""

import io
import math
import pickle

import pytest
import torch

from training.augment import AdaController, AugmentPipe, _rotate2d, _translate2d

BGC = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
           brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
ALL = dict(BGC, imgfilter=1, noise=1, cutout=1)
TRANSFORMS = list(ALL)

#----------------------------------------------------------------------------
# Helpers.

def _images(n=8, c=3, size=16, seed=0) -> torch.Tensor:
    """Smooth but asymmetric color images in [-1, 1], different per sample."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    phase = torch.rand([n, c, 1, 1], generator=g) * 6
    freq = 1 + torch.rand([n, c, 1, 1], generator=g) * 2
    return 0.8 * torch.sin(freq * (x + 0.5 * y * y) * 2 + phase)


def _run(pipe, x, seed=0):
    torch.manual_seed(seed)
    return pipe(x)

#----------------------------------------------------------------------------
# Identity and per-transform behaviour.

def test_p0_is_exact_identity():
    pipe = AugmentPipe(**ALL)
    pipe.p.fill_(0)
    for c in (1, 3):
        x = _images(c=c)
        assert torch.equal(_run(pipe, x), x)


def test_published_constructor_names_and_p_buffer():
    pipe = AugmentPipe(**BGC)
    assert pipe.init_kwargs == BGC
    assert [name for name, _ in pipe.named_buffers() if name in pipe.state_dict()] == ["p"]
    assert pipe.p.shape == () and float(pipe.p) == 1.0


@pytest.mark.parametrize("name", TRANSFORMS)
def test_each_transform_at_p1_changes_images_sensibly(name):
    x = _images(n=8)
    pipe = AugmentPipe(**{name: 1})
    y = _run(pipe, x, seed=3)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
    changed = [not torch.allclose(y[i], x[i], atol=1e-3) for i in range(len(x))]
    assert sum(changed) >= 2, f"{name} changed only {sum(changed)} of 8 images"
    lo, hi = float(x.min()), float(x.max())
    if name in ("xflip", "rotate90", "xint", "cutout"):  # copies (or zeros)
        assert y.min() >= min(lo, 0) and y.max() <= max(hi, 0)
    elif name in ("scale", "rotate", "aniso", "xfrac"):  # resampled: slight ringing only
        assert y.min() >= lo - 0.1 and y.max() <= hi + 0.1
    else:  # color, filtering, noise: bounded
        assert y.abs().max() < 6


#----------------------------------------------------------------------------
# Default strengths, measured on images: the published AugmentPipe defaults (StyleGAN2-ADA, StyleGAN3) are
# xint_max=0.125, scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125, brightness_std=0.2,
# contrast_std=0.5, hue_max=1, saturation_std=1 (and noise_std=0.1, cutout_size=0.5).

_LUMA = torch.full([3], 1 / math.sqrt(3))


def _chroma(x):
    """Mean color of each image [N, 3, H, W] minus its gray (luma-axis) part -> [N, 3]."""
    c = x.mean((2, 3))
    return c - (c @ _LUMA)[:, None] * _LUMA


def _ramps(n, size):
    """Channel 0 = x, channel 1 = y of each pixel center (pixels from the image center), divided by size."""
    u = torch.arange(size) + 0.5 - size / 2
    uy, ux = torch.meshgrid(u, u, indexing="ij")
    return torch.stack([ux, uy])[None].repeat(n, 1, 1, 1) / size


def _fit_inverse(y, size, k=4):
    """Affine least-squares fit of the two ramp channels of `y` over the central k x k pixels: [N, 2, 3] such
    that output pixel u (pixels from the center) shows input point A @ [ux, uy, 1] (pixels)."""
    u = torch.arange(size) + 0.5 - size / 2
    uy, ux = torch.meshgrid(u, u, indexing="ij")
    s = slice(size // 2 - k // 2, size // 2 + k // 2)
    design = torch.stack([ux[s, s].flatten(), uy[s, s].flatten(), torch.ones(k * k)], 1)  # [k*k, 3]
    values = y[:, :, s, s].flatten(2) * size  # [N, 2, k*k], in input pixels
    return (torch.linalg.pinv(design) @ values.transpose(1, 2)).transpose(1, 2)


def _std_about(values, expected, rel=0.1):
    return float(values.std()) == pytest.approx(expected, rel=rel)


def test_default_color_strengths():
    g = torch.Generator().manual_seed(0)
    x = torch.rand([4096, 3, 4, 4], generator=g) * 1.6 - 0.8
    # brightness: one offset N(0, 0.2) added to every pixel of an image.
    y = _run(AugmentPipe(brightness=1), x, seed=1)
    offset = (y - x).mean((1, 2, 3))
    assert torch.allclose(y - x, offset[:, None, None, None].expand_as(x), atol=1e-5)
    assert _std_about(offset, 0.2) and abs(float(offset.mean())) < 0.02
    # contrast: every pixel scaled by 2**N(0, 0.5).
    y = _run(AugmentPipe(contrast=1), x, seed=2)
    log_gain = torch.log2(y.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1))
    assert torch.allclose(y, x * torch.exp2(log_gain)[:, None, None, None], atol=1e-5)
    assert _std_about(log_gain, 0.5) and abs(float(log_gain.mean())) < 0.05
    # hue: rotation around the luma axis by U(-pi, pi); saturation: chroma scaled by 2**N(0, 1).
    xc = x[:, :, :1, :1]  # one color per image
    a, b = _chroma(xc), _chroma(_run(AugmentPipe(hue=1), xc, seed=3))
    angle = torch.atan2(torch.linalg.cross(a, b) @ _LUMA, (a * b).sum(1))
    assert float(angle.abs().mean()) == pytest.approx(math.pi / 2, rel=0.1)  # uniform on the whole circle
    assert float(angle.abs().max()) > 0.95 * math.pi
    log_sat = torch.log2(_chroma(_run(AugmentPipe(saturation=1), xc, seed=4)).norm(dim=1) / a.norm(dim=1))
    assert _std_about(log_sat, 1.0) and abs(float(log_sat.mean())) < 0.1


def test_default_geometric_strengths():
    size, n = 16, 1024
    x = _ramps(n, size)
    eye = torch.eye(2)
    # scale: output u shows input u / s, s = 2**N(0, 0.2).
    inv = _fit_inverse(_run(AugmentPipe(scale=1), x, seed=1), size)
    assert torch.allclose(inv[:, 0, 0], inv[:, 1, 1], atol=1e-3) and inv[:, :, 2].abs().max() < 1e-3
    assert _std_about(-torch.log2(inv[:, 0, 0]), 0.2)
    # aniso: x scaled by s = 2**N(0, 0.2), y by 1 / s.
    inv = _fit_inverse(_run(AugmentPipe(aniso=1), x, seed=2), size)
    assert (torch.log2(inv[:, 0, 0]) + torch.log2(inv[:, 1, 1])).abs().max() < 0.01
    assert _std_about(-torch.log2(inv[:, 0, 0]), 0.2)
    # rotate: two rotations by U(-pi, pi) each, so the total angle is uniform on the circle.
    inv = _fit_inverse(_run(AugmentPipe(rotate=1), x, seed=3), size)
    assert (torch.linalg.det(inv[:, :, :2]) - 1).abs().max() < 1e-3
    angle = torch.atan2(inv[:, 1, 0], inv[:, 0, 0])
    assert float(angle.abs().mean()) == pytest.approx(math.pi / 2, rel=0.1)
    # xfrac: shift by N(0, 0.125) of the image size in x and y.
    inv = _fit_inverse(_run(AugmentPipe(xfrac=1), x, seed=4), size)
    shift = -inv[:, :, 2] / size
    assert _std_about(shift[:, 0], 0.125) and _std_about(shift[:, 1], 0.125)
    assert (inv[:, :, :2].median(0).values - eye).abs().max() < 0.01
    # xint: whole-pixel shifts of round(U(-0.125, 0.125) * size): up to 4 pixels at 32 px, all of them taken.
    size = 32
    inv = _fit_inverse(_run(AugmentPipe(xint=1), _ramps(256, size), seed=5), size)
    shift = -inv[:, :, 2]
    assert torch.allclose(shift, shift.round(), atol=1e-4) and torch.allclose(inv[:, :, :2], eye, atol=1e-4)
    for axis in (0, 1):
        assert set(shift[:, axis].round().int().tolist()) == set(range(-4, 5))


def test_default_corruption_strengths():
    g = torch.Generator().manual_seed(0)
    x = torch.rand([4096, 3, 4, 4], generator=g) * 1.6 - 0.8
    # noise: sigma = |N(0, 0.1)| per image, so the mean square of the added noise is 0.1**2.
    noise = _run(AugmentPipe(noise=1), x, seed=1) - x
    assert float(noise.square().mean().sqrt()) == pytest.approx(0.1, rel=0.1)
    # cutout: a square half the image size (8 x 8 pixels at 16 px) where it lies fully inside.
    y = _run(AugmentPipe(cutout=1), _images(n=64, size=16) + 2, seed=2)
    zero = (y == 0).all(1)
    rows, cols = zero.any(2).sum(1), zero.any(1).sum(1)
    assert rows.max() == 8 and cols.max() == 8 and (zero.flatten(1).sum(1) == rows * cols).all()


def test_xflip_is_exact_mirror_or_identity():
    x = _images(n=16)
    y = _run(AugmentPipe(xflip=1), x, seed=1)
    kinds = []
    for i in range(len(x)):
        if torch.equal(y[i], x[i]):
            kinds.append("same")
        else:
            assert torch.equal(y[i], x[i].flip(2))
            kinds.append("flip")
    assert set(kinds) == {"same", "flip"}


def test_rotate90_is_exact_rotation():
    x = _images(n=16)
    y = _run(AugmentPipe(rotate90=1), x, seed=2)
    ks = set()
    for i in range(len(x)):
        k = [k for k in range(4) if torch.equal(y[i], torch.rot90(x[i], k, dims=(1, 2)))]
        assert len(k) == 1
        ks.add(k[0])
    assert len(ks) >= 3


def test_xint_is_whole_pixel_shift_with_reflection():
    size = 16
    x = _images(n=8, size=size)
    y = _run(AugmentPipe(xint=1, xint_max=0.25), x, seed=4)
    shifts = set()
    for i in range(len(x)):
        found = None
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                # Content moves by (dx, dy); compare where no reflected pixels are involved.
                a = y[i, :, max(dy, 0):size + min(dy, 0), max(dx, 0):size + min(dx, 0)]
                b = x[i, :, max(-dy, 0):size + min(-dy, 0), max(-dx, 0):size + min(-dx, 0)]
                if torch.equal(a, b):
                    found = (dx, dy)
        assert found is not None
        shifts.add(found)
        # The border is filled by mirroring (edge pixel not repeated), so no value is invented.
        assert set(y[i].flatten().tolist()) <= set(x[i].flatten().tolist())
    assert len(shifts) >= 3


def test_general_path_follows_the_blit_conventions():
    """A 90-degree rotation and a 1-pixel shift through the resampling path match exact pixel copies
    (away from the borders, up to the low-pass filtering of smooth images)."""
    pipe = AugmentPipe()
    x = _images(n=2, size=32)
    for inv in (_rotate2d(torch.full([2], math.pi / 2), 2, "cpu"), _translate2d(-1.0, 2.0, 2, "cpu")):
        exact = pipe._blit(x, inv)
        smooth = pipe._resample(x, inv)
        assert (smooth - exact)[..., 4:-4, 4:-4].abs().max() < 0.02


def test_cutout_zeroes_one_square():
    x = _images(n=4, size=16) + 2  # no zeros in the input
    y = _run(AugmentPipe(cutout=1, cutout_size=0.5), x, seed=0)
    for i in range(4):
        zero = (y[i] == 0).all(0)
        assert torch.equal(y[i][:, ~zero], x[i][:, ~zero])
        rows, cols = zero.any(1).nonzero()[:, 0], zero.any(0).nonzero()[:, 0]
        assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 8
        assert zero[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # one filled rectangle

#----------------------------------------------------------------------------
# Color math.

def test_hue_and_saturation_keep_gray_and_luma():
    torch.manual_seed(0)
    rgb = _images(n=8)
    gray = rgb[:, :1].repeat(1, 3, 1, 1)
    for kw in (dict(hue=1), dict(saturation=1), dict(hue=1, saturation=1)):
        pipe = AugmentPipe(**kw)
        assert torch.allclose(_run(pipe, gray), gray, atol=1e-5)  # gray has no hue and no saturation
        y = _run(pipe, rgb)
        assert torch.allclose(y.mean(1), rgb.mean(1), atol=1e-5)  # the luma axis is kept
        assert not torch.allclose(y, rgb, atol=1e-3)


def test_grayscale_images_get_the_gray_part():
    x = _images(n=8, c=1)
    assert torch.allclose(_run(AugmentPipe(hue=1, saturation=1), x), x, atol=1e-5)
    y = _run(AugmentPipe(lumaflip=1), x, seed=5)
    for i in range(8):
        assert torch.allclose(y[i], x[i], atol=1e-6) or torch.allclose(y[i], -x[i], atol=1e-6)
    y = _run(AugmentPipe(brightness=1), x, seed=5)
    offsets = (y - x).flatten(1)
    assert torch.allclose(offsets, offsets[:, :1].expand_as(offsets), atol=1e-6)  # one offset per image
    with pytest.raises(ValueError, match="1 or 3 channels"):
        AugmentPipe(hue=1)(torch.zeros(2, 4, 8, 8))


def test_imgfilter_disabled_bands_and_dc():
    x = _images(n=8)
    assert torch.equal(_run(AugmentPipe(imgfilter=1, imgfilter_bands=[0, 0, 0, 0]), x), x)
    # Only the top band: smooth content (mostly low frequencies) barely moves, the mean is kept.
    y = _run(AugmentPipe(imgfilter=1, imgfilter_bands=[0, 0, 0, 1]), x, seed=1)
    assert not torch.equal(y, x)
    assert torch.allclose(y.mean((2, 3)), x.mean((2, 3)), atol=0.05)

#----------------------------------------------------------------------------
# Gradients, determinism, persistence.

def test_gradients_reach_the_input():
    x = _images(n=4).requires_grad_(True)
    pipe = AugmentPipe(**ALL)
    y = _run(pipe, x, seed=0)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # The geometric resampling's gradient matches finite differences along random directions.
    xs = _images(n=2, size=8).double().requires_grad_(True)
    inv = _rotate2d(torch.tensor([0.3, -1.2]), 2, "cpu").double() @ _translate2d(0.4, -0.7, 2, "cpu").double()
    pipe = pipe.double()
    w = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    (grad,) = torch.autograd.grad((pipe._resample(xs, inv) * w).sum(), xs)
    for _ in range(3):
        v = torch.randn_like(xs)
        with torch.no_grad():
            numeric = ((pipe._resample(xs + 1e-6 * v, inv) - pipe._resample(xs - 1e-6 * v, inv)) * w).sum() / 2e-6
        assert float((grad * v).sum()) == pytest.approx(float(numeric), rel=1e-6)


def test_deterministic_under_a_seed():
    x = _images(n=8)
    pipe = AugmentPipe(**ALL)
    pipe.p.fill_(0.5)
    a, b, c = _run(pipe, x, seed=7), _run(pipe, x, seed=7), _run(pipe, x, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pickle_round_trip_keeps_source_p_and_behaviour():
    pipe = AugmentPipe(**BGC, imgfilter=1)
    pipe.p.fill_(0.37)
    data = pickle.dumps(pipe)
    assert b"_reconstruct_persistent_obj" in data and b"class AugmentPipe" in data  # source travels along
    clone = pickle.load(io.BytesIO(data))
    assert type(clone).__name__ == "AugmentPipe" and clone.init_kwargs == dict(BGC, imgfilter=1)
    assert float(clone.p) == pytest.approx(0.37)
    x = _images(n=8)
    assert torch.equal(_run(clone, x, seed=3), _run(pipe, x, seed=3))
    assert list(clone.state_dict()) == ["p"]

#----------------------------------------------------------------------------
# ADA p controller.

def test_ada_controller_moves_p_toward_target():
    pipe = AugmentPipe(xflip=1)
    pipe.p.fill_(0)
    ada = AdaController(pipe, target=0.6, interval=4, kimg=500)
    step_size = 32 * 4 / 500_000
    # Overfitting discriminator (all real logits positive): p rises once per 4 steps.
    for step in range(8):
        ada.observe(torch.ones(32, 1))
        rt = ada.step(batch_size=32)
        assert (rt is None) == (step % 4 != 3)
    assert ada.last_rt == 1.0
    assert float(pipe.p) == pytest.approx(2 * step_size)
    # r_t below the target: p falls, and stops at 0.
    for _ in range(12):
        ada.observe(torch.tensor([1.0, -1.0, -1.0, 1.0]))  # r_t = 0
        ada.step(batch_size=32)
    assert float(pipe.p) == 0.0 and ada.last_rt == 0.0


def test_ada_controller_state_resumes_exactly():
    def run(interrupt: bool) -> float:
        pipe = AugmentPipe(xflip=1)
        pipe.p.fill_(0.1)
        ada = AdaController(pipe, interval=3)
        g = torch.Generator().manual_seed(0)
        for step in range(10):
            if interrupt and step == 5:  # half-way through an interval
                state, p = ada.state_dict(), pipe.p.clone()
                pipe = AugmentPipe(xflip=1)
                pipe.p.copy_(p)
                ada = AdaController(pipe, interval=3)
                ada.load_state_dict(state)
            ada.observe(torch.randn(16, generator=g) + 0.5)
            ada.step(batch_size=16)
        return float(pipe.p)
    assert run(True) == run(False) != 0.1

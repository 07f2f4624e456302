"""Equivariance metrics of StyleGAN3 (Karras et al. 2021, "Alias-free generative adversarial
networks", appendix on equivariance metrics): EQ-T (integer and fractional translation) and EQ-R
(rotation), each a peak signal-to-noise ratio in decibels,

    EQ = 10 log10(I_max^2 / MSE),  I_max = 2 (images span [-1, 1]),

where MSE is the mean, over random latents, random transforms, colour channels and the pixels of the
valid region, of the squared difference between (a) the image synthesised with the transform applied
to the generator's input (`G.synthesis.input.transform`) and (b) the untransformed image transformed
afterwards. Higher means more equivariant.

Coordinates: the output image spans [-0.5, 0.5] x [-0.5, 0.5] of the input's coordinate frame (x along
columns, y along rows), so a translation of t moves the content by t * resolution pixels. A content
transform M is realised by setting `input.transform = M^-1`. Translations are drawn uniformly from
[-1/8, 1/8] of the image size per axis (rounded to whole pixels for EQ-T int); rotation angles
uniformly from [-pi, pi]. One transform is drawn per group of `batch_size` latents.

Reference transforms of the untransformed image:
- integer translation: an exact pixel shift; valid where the source pixel lies inside the image;
- fractional translation: separable Lanczos (a = 3) interpolation, weights normalised to sum 1; valid
  where all taps lie inside the image;
- rotation: 4x band-limited up-sampling (Lanczos, a = 3), bilinear rotation on the 4x grid, Lanczos
  low-pass and 4x down-sampling; valid where the whole footprint of the pipeline lies inside the image.
"""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import torch

import dnnlib

from . import metric_utils

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------
# Transforms in the normalised frame (image = [-0.5, 0.5]^2, x = columns, y = rows).

def translation_matrix(tx: float, ty: float) -> np.ndarray:
    m = np.eye(3)
    m[0, 2], m[1, 2] = tx, ty
    return m


def rotation_matrix(angle: float) -> np.ndarray:
    """Rotation of the content by `angle` radians about the image centre (x toward y)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

#----------------------------------------------------------------------------
# Resampling of NCHW images.

def lanczos(x: np.ndarray | float, a: int) -> np.ndarray:
    """Lanczos window: sinc(x) sinc(x / a) for |x| < a, else 0."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.abs(x) < a, np.sinc(x) * np.sinc(x / a), 0.0)


def _sample_1d(x: torch.Tensor, dim: int, offset: float, a: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Values of `x` along `dim` at positions j + offset (Lanczos interpolation, zero outside), and the
    mask [len] of the positions whose taps all lie inside."""
    n = x.shape[dim]
    first = math.floor(offset) - a + 1  # tap o = first .. first + 2a - 1 relative to j
    taps = np.arange(first, first + 2 * a)
    w = lanczos(offset - taps, a)
    w = w / w.sum()
    pad = max(abs(first), abs(first + 2 * a - 1)) + 1
    shape = list(x.shape)
    shape[dim] = pad
    zeros = x.new_zeros(shape)
    xp = torch.cat([zeros, x, zeros], dim=dim)
    out = None
    for o, wo in zip(taps, w):
        part = xp.narrow(dim, pad + int(o), n) * float(wo)
        out = part if out is None else out + part
    j = torch.arange(n, device=x.device)
    mask = (j + first >= 0) & (j + first + 2 * a - 1 <= n - 1)
    return out, mask


def integer_translate(img: torch.Tensor, sx: int, sy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Content of NCHW `img` moved by (sx, sy) whole pixels (x = columns): (image, valid mask [H, W])."""
    _n, _c, h, w = img.shape
    out = torch.zeros_like(img)
    ys, yd = (slice(0, h - sy), slice(sy, h)) if sy >= 0 else (slice(-sy, h), slice(0, h + sy))
    xs, xd = (slice(0, w - sx), slice(sx, w)) if sx >= 0 else (slice(-sx, w), slice(0, w + sx))
    out[:, :, yd, xd] = img[:, :, ys, xs]
    mask = torch.zeros([h, w], dtype=torch.bool, device=img.device)
    mask[yd, xd] = True
    return out, mask


def fractional_translate(img: torch.Tensor, sx: float, sy: float, a: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Content of NCHW `img` moved by (sx, sy) pixels with separable Lanczos-a interpolation:
    (image, valid mask [H, W])."""
    out, mx = _sample_1d(img, 3, -sx, a)
    out, my = _sample_1d(out, 2, -sy, a)
    return out, my[:, None] & mx[None, :]


def _upsample_1d(x: torch.Tensor, dim: int, up: int, a: int) -> torch.Tensor:
    """Band-limited up-sampling by `up` along `dim`: sample k of the result sits at (k + 0.5) / up - 0.5
    input pixels (the pixel-centre grid of the larger image)."""
    phases = [_sample_1d(x, dim, (m + 0.5) / up - 0.5, a)[0] for m in range(up)]
    y = torch.stack(phases, dim=dim + 1)  # [..., n, up, ...]
    shape = list(x.shape)
    shape[dim] *= up
    return y.reshape(shape)


def _downsample_1d(x: torch.Tensor, dim: int, up: int, a: int) -> torch.Tensor:
    """Lanczos low-pass at the coarse Nyquist rate and decimation by `up` along `dim` (inverse grid of
    `_upsample_1d`; `up` even)."""
    assert up % 2 == 0
    size = 2 * a * up
    w = lanczos((np.arange(size) + 0.5) / up - a, a)
    w = torch.as_tensor(w / w.sum(), dtype=x.dtype, device=x.device)
    pad = a * up - up // 2
    shape = list(x.shape)
    shape[dim] = pad
    zeros = x.new_zeros(shape)
    xp = torch.cat([zeros, x, zeros], dim=dim)
    windows = xp.unfold(dim, size, up)  # [..., n, ..., size]
    out = (windows * w).sum(dim=-1)
    return out


def rotate(img: torch.Tensor, angle: float, a: int = 3, up: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Content of square NCHW `img` rotated by `angle` radians about its centre (`rotation_matrix`):
    (image, valid mask [H, W])."""
    n, _c, h, w = img.shape
    assert h == w, "rotation needs square images"
    big = _upsample_1d(_upsample_1d(img, 3, up, a), 2, up, a)
    inv = np.linalg.inv(rotation_matrix(angle))[:2, :2]
    theta = torch.zeros([n, 2, 3], dtype=img.dtype, device=img.device)
    theta[:, :, :2] = torch.as_tensor(inv, dtype=img.dtype, device=img.device)
    grid = torch.nn.functional.affine_grid(theta, list(big.shape), align_corners=False)
    big = torch.nn.functional.grid_sample(big, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = _downsample_1d(_downsample_1d(big, 3, up, a), 2, up, a)

    # Valid: the footprint of each output pixel in the source (down-sampling box of half-size a rotated,
    # bilinear reach 1/up, up-sampling taps a) lies inside the image.
    reach = a * math.sqrt(2) + 1 / up + a
    coords = (torch.arange(w, dtype=torch.float64) + 0.5) / w - 0.5
    py, px = torch.meshgrid(coords, coords, indexing="ij")
    inv64 = torch.as_tensor(inv)
    qx = (inv64[0, 0] * px + inv64[0, 1] * py + 0.5) * w - 0.5
    qy = (inv64[1, 0] * px + inv64[1, 1] * py + 0.5) * h - 0.5
    mask = (qx >= reach) & (qx <= w - 1 - reach) & (qy >= reach) & (qy <= h - 1 - reach)
    return out, mask.to(img.device)

#----------------------------------------------------------------------------
# The metric.

def _check_generator(G: torch.nn.Module) -> None:
    inp = getattr(getattr(G, "synthesis", None), "input", None)
    transform = getattr(inp, "transform", None)
    if not isinstance(transform, torch.Tensor) or tuple(transform.shape) != (3, 3):
        raise dnnlib.UserError("The equivariance metrics (eqt50k_int, eqt50k_frac, eqr50k) need a StyleGAN3 "
                               "generator: this network has no synthesis.input.transform")


class _GroupErrors:
    """Sum of squared errors and number of compared values per transform kind, for one group of latents."""

    def __init__(self, opts: metric_utils.MetricOptions, G: torch.nn.Module, labels: metric_utils.LabelSampler,
                 kinds: list[str], translate_max: float, rotate_max: float):
        self.opts, self.G, self.labels, self.kinds = opts, G, labels, kinds
        self.translate_max, self.rotate_max = translate_max, rotate_max
        self.identity = torch.eye(3, device=opts.device)

    def _synthesize(self, ws: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
        self.G.synthesis.input.transform.copy_(transform)
        return self.G.synthesis(ws, noise_mode="const", force_fp32=True).float()

    def __call__(self, indices: np.ndarray) -> torch.Tensor:
        opts, G = self.opts, self.G
        z = metric_utils.sample_normal(opts.seed, "eq-z", indices, [G.z_dim], opts.device)
        c = self.labels(indices, stream="eq-c")
        ws = G.mapping(z, c)
        base = self._synthesize(ws, self.identity)
        res = base.shape[3]
        sums = []
        for kind in self.kinds:
            u = metric_utils.sample_uniform(opts.seed, f"eq-{kind}", int(indices[0]), size=2) * 2 - 1
            if kind == "rot":
                angle = float(u[0]) * self.rotate_max * math.pi
                m = rotation_matrix(angle)
                ref, mask = rotate(base, angle)
            else:
                t = u * self.translate_max
                if kind == "int":
                    shift = np.round(t * res).astype(int)
                    m = translation_matrix(shift[0] / res, shift[1] / res)
                    ref, mask = integer_translate(base, int(shift[0]), int(shift[1]))
                else:
                    m = translation_matrix(float(t[0]), float(t[1]))
                    ref, mask = fractional_translate(base, float(t[0]) * res, float(t[1]) * res)
            inv = torch.as_tensor(np.linalg.inv(m), dtype=torch.float32, device=opts.device)
            img = self._synthesize(ws, inv)
            sq = (img.double() - ref.double()).square() * mask
            sums += [sq.sum(), mask.sum().double() * img.shape[0] * img.shape[1]]
        return torch.stack(sums).unsqueeze(0)


def compute_equivariance_metrics(opts: metric_utils.MetricOptions, num_samples: int, batch_size: int = 4,
                                 translate_max: float = 0.125, rotate_max: float = 1.0,
                                 compute_eqt_int: bool = False, compute_eqt_frac: bool = False,
                                 compute_eqr: bool = False) -> dict[str, float]:
    """PSNRs in dB keyed 'eqt_int', 'eqt_frac', 'eqr' (those asked for) over `num_samples` latents
    (rank 0 returns the values; the other ranks NaN)."""
    G = copy.deepcopy(metric_utils.require_generator(opts)).eval().requires_grad_(False).to(opts.device)
    _check_generator(G)
    kinds = [k for k, on in (("int", compute_eqt_int), ("frac", compute_eqt_frac), ("rot", compute_eqr)) if on]
    labels = metric_utils.LabelSampler(opts, G.c_dim)
    fn = _GroupErrors(opts, G, labels, kinds, translate_max, rotate_max)
    total = sum(rows.astype(np.float64).sum(axis=0) for rows in
                metric_utils.iter_generated(opts, num_samples, fn, group_size=batch_size, desc="equivariance"))
    names = {"int": "eqt_int", "frac": "eqt_frac", "rot": "eqr"}
    out = {}
    for i, kind in enumerate(kinds):
        sse, count = total[2 * i], total[2 * i + 1]
        if not opts.is_leader:
            out[names[kind]] = float("nan")
        elif count == 0:
            log.warning("%s: no pixel of the %dx%d images is valid after the transforms; the metric is undefined",
                        names[kind], G.img_resolution, G.img_resolution)
            out[names[kind]] = float("nan")
        else:
            mse = sse / count
            out[names[kind]] = float("inf") if mse == 0 else float(20 * np.log10(2) - 10 * np.log10(mse))
    return out

#----------------------------------------------------------------------------

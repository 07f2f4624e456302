"""ADA: adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data", appendix B) and the feedback loop that sets its probability p (section 2.3).

`AugmentPipe` sits in front of the discriminator, for reals and fakes alike, and is differentiable with
respect to the images (the generator's loss backpropagates through it). Every transform is applied to each
image independently with probability `p * strength`, in the paper's order:

1. pixel blitting: x-flip, 90-degree rotation, integer translation (exact copies of pixels);
2. general geometric: isotropic scale, rotation, anisotropic scale, rotation, fractional translation, composed
   into one matrix and resampled once (reflection padding, 2x up-sampling with a low-pass filter,
   bilinear `grid_sample`, 2x down-sampling with the same filter);
3. color: brightness, contrast, luma flip, hue rotation, saturation, composed into one 4x4 matrix;
4. image-space filtering: four frequency bands amplified or attenuated at random;
5. corruptions: additive Gaussian noise, cutout.

Images that draw no transform of a stage pass through it untouched, so `p = 0` is exactly the identity.
The constructor takes the published names and defaults (published pickles store them in `init_kwargs`);
`p` is a scalar buffer named `p`.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal
import torch

from torch_utils import persistence
from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix, upfirdn2d

#----------------------------------------------------------------------------
# Filters (our own designs; the paper's wavelet filters serve the same purpose).

def _lowpass(numtaps: int, cutoff: float, beta: float) -> np.ndarray:
    """Kaiser-windowed sinc low-pass; `cutoff` as a fraction of the Nyquist frequency."""
    return scipy.signal.firwin(numtaps, cutoff, window=("kaiser", beta))


# 2x up/down-sampling filter of the geometric stage: passes 0.998 at a quarter of the band, stops 0.002 at
# three quarters.
_GEOM_TAPS = 16

# Image-space filter bank: bands [0, pi/8], [pi/8, pi/4], [pi/4, pi/2], [pi/2, pi], made as differences of
# low-pass filters so that the four bands add up to the identity.
_FBANK_TAPS = 33
_FBANK_CUTOFFS = (1 / 8, 1 / 4, 1 / 2)

# Share of the image energy in each band, used to keep the expected energy of a filtered image unchanged.
# Measured along rows and columns of mean-free frames in [-1, 1] (signer video and BIU-MG grid, 64 and
# 256 px): 0.84-0.98, 0.011-0.089, 0.005-0.048, 0.002-0.024; we take values typical of 64-128 px.
_BAND_ENERGY = (0.88, 0.07, 0.035, 0.015)


def _filter_bank() -> np.ndarray:
    """[4, _FBANK_TAPS] float64, rows summing to a unit impulse."""
    lows = [_lowpass(_FBANK_TAPS, c, beta=4.0) for c in _FBANK_CUTOFFS]
    impulse = np.zeros(_FBANK_TAPS)
    impulse[_FBANK_TAPS // 2] = 1
    return np.stack([lows[0], lows[1] - lows[0], lows[2] - lows[1], impulse - lows[2]])

#----------------------------------------------------------------------------
# Batched homogeneous matrices: every entry a scalar or a [N] tensor.

def _matrix(rows: list[list], n: int, device: torch.device) -> torch.Tensor:
    entries = [torch.as_tensor(e, dtype=torch.float32, device=device).expand(n) for row in rows for e in row]
    return torch.stack(entries, dim=1).reshape(n, len(rows), len(rows[0]))


def _translate2d(tx, ty, n, device):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n, device)


def _scale2d(sx, sy, n, device):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n, device)


def _rotate2d(theta, n, device):
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], n, device)


def _color3(m3: torch.Tensor) -> torch.Tensor:
    """[N, 3, 3] linear color map -> [N, 4, 4] homogeneous."""
    out = torch.eye(4, device=m3.device).repeat(m3.shape[0], 1, 1)
    out[:, :3, :3] = m3
    return out


def _reflect_index(idx: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror integer indices into [0, size) without repeating the edge pixel (like 'reflect' padding),
    for any distance outside."""
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    idx = torch.remainder(idx, period)
    return torch.where(idx >= size, period - idx, idx)


def _reflect_pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """Reflection padding of [N, C, H, W] by any amount (mirrored repeatedly when wider than the image)."""
    _n, _c, h, w = x.shape
    if left or right:
        x = x.index_select(3, _reflect_index(torch.arange(-left, w + right, device=x.device), w))
    if top or bottom:
        x = x.index_select(2, _reflect_index(torch.arange(-top, h + bottom, device=x.device), h))
    return x

#----------------------------------------------------------------------------
# The pipeline.

@persistence.persistent_class
class AugmentPipe(torch.nn.Module):
    """ADA augmentation of images [N, C, H, W] in about [-1, 1] (float), returning the same shape and dtype.

    Each `strength` argument multiplies the probability `p` of its transform (0 disables it); the `_std`,
    `_max` and `_size` arguments set the parameter distributions of appendix B:

    - xflip: mirror x; rotate90: rotate by k*90 degrees (square images); xint: translate by whole pixels,
      up to `xint_max` of the image size in x and y.
    - scale: isotropic scale 2**N(0, scale_std); rotate: angle U(-1, 1)*pi*rotate_max, drawn twice (before
      and after anisotropic scaling) with probability 1 - sqrt(1 - p) each; aniso: scale x by 2**N(0,
      aniso_std) and y by its inverse; xfrac: translate by N(0, xfrac_std) of the image size.
    - brightness: add N(0, brightness_std); contrast: scale by 2**N(0, contrast_std); lumaflip: mirror
      colors along the luma axis; hue: rotate around the luma axis by U(-1, 1)*pi*hue_max; saturation: scale
      off-axis colors by 2**N(0, saturation_std). Gray images (C == 1) see the gray part of these.
    - imgfilter: gain 2**N(0, imgfilter_std) for each of 4 frequency bands enabled in `imgfilter_bands`,
      normalized to keep the expected energy.
    - noise: add N(0, sigma) with sigma = |N(0, noise_std)|; cutout: set a square of side `cutout_size` of
      the image, at a random center, to 0.

    `p` (buffer, scalar) starts at 1, so that used alone the strengths are the probabilities; the training
    loop sets it (`--p`, or 0 and then ADA's feedback through `AdaController`).
    """

    def __init__(self,
                 xflip=0, rotate90=0, xint=0, xint_max=0.125,
                 scale=0, rotate=0, aniso=0, xfrac=0, scale_std=0.2, rotate_max=1, aniso_std=0.2, xfrac_std=0.125,
                 brightness=0, contrast=0, lumaflip=0, hue=0, saturation=0, brightness_std=0.2, contrast_std=0.5,
                 hue_max=1, saturation_std=1,
                 imgfilter=0, imgfilter_bands=[1, 1, 1, 1], imgfilter_std=1,
                 noise=0, cutout=0, noise_std=0.1, cutout_size=0.5):
        super().__init__()
        self.register_buffer("p", torch.ones([]))

        # Probability multipliers.
        self.xflip, self.rotate90, self.xint = float(xflip), float(rotate90), float(xint)
        self.scale, self.rotate, self.aniso, self.xfrac = float(scale), float(rotate), float(aniso), float(xfrac)
        self.brightness, self.contrast, self.lumaflip = float(brightness), float(contrast), float(lumaflip)
        self.hue, self.saturation = float(hue), float(saturation)
        self.imgfilter, self.noise, self.cutout = float(imgfilter), float(noise), float(cutout)

        # Parameter distributions.
        self.xint_max = float(xint_max)
        self.scale_std, self.rotate_max = float(scale_std), float(rotate_max)
        self.aniso_std, self.xfrac_std = float(aniso_std), float(xfrac_std)
        self.brightness_std, self.contrast_std = float(brightness_std), float(contrast_std)
        self.hue_max, self.saturation_std = float(hue_max), float(saturation_std)
        self.imgfilter_bands = [float(b) for b in imgfilter_bands]
        assert len(self.imgfilter_bands) == 4, "imgfilter_bands has one entry per band (4)"
        self.imgfilter_std = float(imgfilter_std)
        self.noise_std, self.cutout_size = float(noise_std), float(cutout_size)

        # Filters (not in the state dict: they are constants of this code).
        geom = _lowpass(_GEOM_TAPS, 0.5, beta=6.0)
        self.register_buffer("geom_filter", upfirdn2d.setup_filter(geom), persistent=False)
        self.register_buffer("fbank", torch.as_tensor(_filter_bank(), dtype=torch.float32), persistent=False)
        self.register_buffer("band_energy", torch.as_tensor(_BAND_ENERGY, dtype=torch.float32), persistent=False)

    def extra_repr(self) -> str:
        names = ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
                 "lumaflip", "hue", "saturation", "imgfilter", "noise", "cutout"]
        return ", ".join(f"{k}={getattr(self, k):g}" for k in names if getattr(self, k) != 0)

    # Random draws: `_gate` says which images get a transform.

    def _gate(self, strength: float, n: int, device: torch.device) -> torch.Tensor:
        """[n] bool: True with probability p * strength."""
        return torch.rand([n], device=device) < self.p * strength

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] float, about [-1, 1] -> augmented images, same shape and dtype."""
        assert isinstance(images, torch.Tensor) and images.ndim == 4 and images.is_floating_point()
        x = images
        x = self._pixel_blitting(x)
        x = self._general_geometric(x)
        x = self._color(x)
        x = self._image_filtering(x)
        x = self._corruptions(x)
        return x

    # 1. Pixel blitting.

    def _pixel_blitting(self, x: torch.Tensor) -> torch.Tensor:
        if self.xflip == 0 and self.rotate90 == 0 and self.xint == 0:
            return x
        n, _c, h, w = x.shape
        dev = x.device
        inv = torch.eye(3, device=dev).repeat(n, 1, 1)  # output pixel -> input pixel, centered coordinates
        if self.xflip > 0:
            i = torch.randint(0, 2, [n], device=dev) * self._gate(self.xflip, n, dev)
            inv = inv @ _scale2d(1 - 2 * i, 1, n, dev)
        if self.rotate90 > 0:
            assert h == w, "rotate90 needs square images"
            i = torch.randint(0, 4, [n], device=dev) * self._gate(self.rotate90, n, dev)
            inv = inv @ _rotate2d(-math.pi / 2 * i, n, dev)
        if self.xint > 0:
            t = (torch.rand([n, 2], device=dev) * 2 - 1) * self.xint_max
            t = t * self._gate(self.xint, n, dev)[:, None]
            inv = inv @ _translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h), n, dev)
        if bool((inv == torch.eye(3, device=dev)).all()):
            return x
        return self._blit(x, inv)

    @staticmethod
    def _blit(x: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
        """Copy pixels: output pixel centers mapped by `inv` land on input pixel centers (mirrored at the
        borders)."""
        n, c, h, w = x.shape
        ux = (torch.arange(w, device=x.device) + 0.5 - w / 2)[None, None, :]
        uy = (torch.arange(h, device=x.device) + 0.5 - h / 2)[None, :, None]
        a = inv[:, :2, :, None, None]
        sx = a[:, 0, 0] * ux + a[:, 0, 1] * uy + a[:, 0, 2]  # [n, h, w]
        sy = a[:, 1, 0] * ux + a[:, 1, 1] * uy + a[:, 1, 2]
        ix = _reflect_index(torch.round(sx + w / 2 - 0.5).long(), w)
        iy = _reflect_index(torch.round(sy + h / 2 - 0.5).long(), h)
        index = (iy * w + ix).reshape(n, 1, h * w).expand(n, c, h * w)
        return x.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)

    # 2. General geometric transforms.

    def _general_geometric(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 0 and self.rotate == 0 and self.aniso == 0 and self.xfrac == 0:
            return x
        n, _c, h, w = x.shape
        dev = x.device
        inv = torch.eye(3, device=dev).repeat(n, 1, 1)
        if self.scale > 0:
            s = torch.exp2(torch.randn([n], device=dev) * self.scale_std)
            s = torch.where(self._gate(self.scale, n, dev), s, 1)
            inv = inv @ _scale2d(1 / s, 1 / s, n, dev)
        # Two rotations, each with probability 1 - sqrt(1 - p): one or both happen with probability p.
        p_rot = 1 - torch.sqrt(torch.clamp(1 - self.p * self.rotate, 0, 1))
        if self.rotate > 0:
            theta = (torch.rand([n], device=dev) * 2 - 1) * math.pi * self.rotate_max
            theta = theta * (torch.rand([n], device=dev) < p_rot)
            inv = inv @ _rotate2d(-theta, n, dev)
        if self.aniso > 0:
            s = torch.exp2(torch.randn([n], device=dev) * self.aniso_std)
            s = torch.where(self._gate(self.aniso, n, dev), s, 1)
            inv = inv @ _scale2d(1 / s, s, n, dev)
        if self.rotate > 0:
            theta = (torch.rand([n], device=dev) * 2 - 1) * math.pi * self.rotate_max
            theta = theta * (torch.rand([n], device=dev) < p_rot)
            inv = inv @ _rotate2d(-theta, n, dev)
        if self.xfrac > 0:
            t = torch.randn([n, 2], device=dev) * self.xfrac_std
            t = t * self._gate(self.xfrac, n, dev)[:, None]
            inv = inv @ _translate2d(-t[:, 0] * w, -t[:, 1] * h, n, dev)

        changed = (inv != torch.eye(3, device=dev)).flatten(1).any(1).nonzero()[:, 0]
        if len(changed) == 0:
            return x
        return x.index_copy(0, changed, self._resample(x[changed], inv[changed]))

    def _resample(self, x: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
        """Resample [n, C, H, W] so that output point u (pixels, from the image center) shows input point
        inv @ u: reflection padding, 2x up-sampling, bilinear sampling, 2x down-sampling."""
        n, c, h, w = x.shape
        f = self.geom_filter
        margin = (f.shape[0] + 3) // 4        # output pixels lost to the down-sampling filter at each border
        margin_in = margin + 1                 # input pixels the up-sampling filter and bilinear taps reach

        # Pad the input so that everything the (enlarged) output looks at comes from reflected image content.
        ox, oy = w / 2 + margin, h / 2 + margin
        corners = torch.tensor([[-ox, ox, ox, -ox], [-oy, -oy, oy, oy], [1, 1, 1, 1]], dtype=inv.dtype, device=x.device)
        src = inv @ corners  # [n, 3, 4]
        bounds = torch.stack([-w / 2 - src[:, 0].min(), src[:, 0].max() - w / 2,
                              -h / 2 - src[:, 1].min(), src[:, 1].max() - h / 2]).cpu().tolist()
        limits = [w, w, h, h]  # further out, grid_sample sees zeros
        pl, pr, pt, pb = [min(max(math.ceil(b), 0) + margin_in, lim) for b, lim in zip(bounds, limits)]
        x = _reflect_pad(x, pl, pr, pt, pb)
        wp, hp = w + pl + pr, h + pt + pb

        x = upfirdn2d.upsample2d(x, f, up=2)  # [n, C, 2 hp, 2 wp]

        # grid_sample (align_corners=False) works in normalized coordinates: map the normalized output grid
        # to centered output pixels, through inv, to normalized coordinates of the padded input.
        out_to_pixels = torch.diag(torch.tensor([w / 2 + margin, h / 2 + margin, 1.0], dtype=inv.dtype, device=x.device))
        pixels_to_in = torch.tensor([[2 / wp, 0, (pl - pr) / wp], [0, 2 / hp, (pt - pb) / hp], [0, 0, 1]],
                                    dtype=inv.dtype, device=x.device)
        theta = pixels_to_in @ inv @ out_to_pixels
        out_h, out_w = 2 * (h + 2 * margin), 2 * (w + 2 * margin)
        grid = torch.nn.functional.affine_grid(theta[:, :2, :].to(x.dtype), [n, c, out_h, out_w], align_corners=False)
        x = grid_sample_gradfix.grid_sample(x, grid)

        x = upfirdn2d.downsample2d(x, f, down=2)  # [n, C, h + 2 margin, w + 2 margin]
        return x[:, :, margin:margin + h, margin:margin + w]

    # 3. Color transforms.

    def _color(self, x: torch.Tensor) -> torch.Tensor:
        if self.brightness == 0 and self.contrast == 0 and self.lumaflip == 0 and self.hue == 0 and self.saturation == 0:
            return x
        n, c, h, w = x.shape
        dev = x.device
        mat = torch.eye(4, device=dev).repeat(n, 1, 1)  # acts on [r, g, b, 1]
        luma = torch.full([3], 1 / math.sqrt(3), device=dev)
        on_axis = torch.outer(luma, luma)  # projection onto the luma (gray) axis
        eye3 = torch.eye(3, device=dev)
        if self.brightness > 0:
            b = torch.randn([n], device=dev) * self.brightness_std * self._gate(self.brightness, n, dev)
            mat = _matrix([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]], n, dev) @ mat
        if self.contrast > 0:
            s = torch.exp2(torch.randn([n], device=dev) * self.contrast_std)
            s = torch.where(self._gate(self.contrast, n, dev), s, 1)
            mat = _color3(eye3 * s[:, None, None]) @ mat
        if self.lumaflip > 0:
            i = torch.randint(0, 2, [n], device=dev) * self._gate(self.lumaflip, n, dev)
            mat = _color3(eye3 - 2 * on_axis * i[:, None, None]) @ mat
        if self.hue > 0:
            theta = (torch.rand([n], device=dev) * 2 - 1) * math.pi * self.hue_max
            theta = (theta * self._gate(self.hue, n, dev))[:, None, None]
            cross = torch.tensor([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], device=dev) / math.sqrt(3)  # luma x (.)
            rot = torch.cos(theta) * eye3 + torch.sin(theta) * cross + (1 - torch.cos(theta)) * on_axis
            mat = _color3(rot) @ mat
        if self.saturation > 0:
            s = torch.exp2(torch.randn([n], device=dev) * self.saturation_std)
            s = torch.where(self._gate(self.saturation, n, dev), s, 1)[:, None, None]
            mat = _color3(on_axis + (eye3 - on_axis) * s) @ mat

        if c not in (1, 3):
            raise ValueError(f"AugmentPipe: color transforms need 1 or 3 channels, got {c}")
        if bool((mat == torch.eye(4, device=dev)).all()):
            return x
        mat = mat.to(x.dtype)
        if c == 3:
            # Written out instead of a matmul: an identity matrix then leaves the pixels bit-exact (no TF32).
            y = x.reshape(n, 3, h * w)
            y = mat[:, :3, 0:1] * y[:, 0:1] + mat[:, :3, 1:2] * y[:, 1:2] + mat[:, :3, 2:3] * y[:, 2:3] + mat[:, :3, 3:4]
            return y.reshape(n, 3, h, w)
        # c == 1: a gray pixel g is the color (g, g, g); the map keeps it gray. Read back its mean.
        gain = mat[:, :3, :3].sum(2).mean(1)
        offset = mat[:, :3, 3].mean(1)
        return x * gain[:, None, None, None] + offset[:, None, None, None]

    # 4. Image-space filtering.

    def _image_filtering(self, x: torch.Tensor) -> torch.Tensor:
        if self.imgfilter == 0:
            return x
        n = x.shape[0]
        dev = x.device
        gains = torch.ones([n, 4], device=dev)
        for band, enabled in enumerate(self.imgfilter_bands):
            if enabled > 0:
                g = torch.exp2(torch.randn([n], device=dev) * self.imgfilter_std)
                gains[:, band] = torch.where(self._gate(self.imgfilter * enabled, n, dev), g, 1)
        changed = (gains != 1).any(1).nonzero()[:, 0]
        if len(changed) == 0:
            return x
        gains = gains[changed]
        gains = gains / torch.sqrt((gains.square() * self.band_energy).sum(1, keepdim=True))
        taps = (gains @ self.fbank).to(x.dtype)  # [n', L] per-image filter
        return x.index_copy(0, changed, self._separable_filter(x[changed], taps))

    @staticmethod
    def _separable_filter(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
        """Filter each image [n, C, H, W] by its own symmetric 1-D filter taps[i] along x, then y."""
        n, c, h, w = x.shape
        r = taps.shape[1] // 2
        weight = taps.repeat_interleave(c, dim=0)  # [n*C, L]
        y = _reflect_pad(x, r, r, 0, 0).reshape(1, n * c, h, w + 2 * r)
        y = conv2d_gradfix.conv2d(input=y, weight=weight[:, None, None, :], groups=n * c)
        y = _reflect_pad(y.reshape(n, c, h, w), 0, 0, r, r).reshape(1, n * c, h + 2 * r, w)
        y = conv2d_gradfix.conv2d(input=y, weight=weight[:, None, :, None], groups=n * c)
        return y.reshape(n, c, h, w)

    # 5. Corruptions.

    def _corruptions(self, x: torch.Tensor) -> torch.Tensor:
        n, _c, h, w = x.shape
        dev = x.device
        if self.noise > 0:
            sigma = torch.randn([n], device=dev).abs() * self.noise_std * self._gate(self.noise, n, dev)
            x = x + torch.randn_like(x) * sigma[:, None, None, None].to(x.dtype)
        if self.cutout > 0:
            size = self.cutout_size * self._gate(self.cutout, n, dev).float()
            center = torch.rand([n, 2], device=dev)
            px = ((torch.arange(w, device=dev) + 0.5) / w)[None, None, :]
            py = ((torch.arange(h, device=dev) + 0.5) / h)[None, :, None]
            keep = ((px - center[:, 0, None, None]).abs() >= size[:, None, None] / 2) | \
                   ((py - center[:, 1, None, None]).abs() >= size[:, None, None] / 2)
            x = x * keep[:, None].to(x.dtype)
        return x

#----------------------------------------------------------------------------
# ADA's feedback loop.

class AdaController:
    """Adjusts `augment_pipe.p` so that the discriminator's overfitting heuristic r_t = E[sign(D(real))]
    stays near `target` (paper section 2.3).

    Every `interval` training steps, r_t is taken over the real logits observed since the last adjustment
    (summed over all ranks under torch.distributed), and p moves by sign(r_t - target) times
    batch_size * interval / (kimg * 1000): p can go from 0 to 1 in `kimg` thousand images. p never goes below 0.

    The training loop calls `observe(real_logits)` in each discriminator step on reals (the D main phase) and
    `step(batch_size)` once per training step (batch_size: images per step over all ranks; every rank calls
    it). `state_dict()` / `load_state_dict()` carry the step count and the partial sums, so a resumed run
    adjusts p exactly as an uninterrupted one (p itself is the pipe's buffer).
    """

    def __init__(self, augment_pipe: torch.nn.Module, target: float = 0.6, interval: int = 4, kimg: float = 500):
        assert interval >= 1 and kimg > 0
        self.augment_pipe = augment_pipe
        self.target = float(target)
        self.interval = int(interval)
        self.kimg = float(kimg)
        self.steps = 0
        self.last_rt: float | None = None  # r_t of the last adjustment
        self._sums = torch.zeros([2], dtype=torch.float64, device=augment_pipe.p.device)  # [sum of signs, count]

    def observe(self, real_logits: torch.Tensor) -> None:
        """Accumulate sign(D(real)) of a batch (no synchronisation)."""
        logits = real_logits.detach()
        self._sums[0] += torch.sign(logits).sum(dtype=torch.float64).to(self._sums.device)
        self._sums[1] += logits.numel()

    def step(self, batch_size: int) -> float | None:
        """Count one training step; on every `interval`-th, adjust p and return r_t (else None)."""
        self.steps += 1
        if self.steps % self.interval != 0:
            return None
        sums = self._sums.clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
        self._sums.zero_()
        total, count = sums.tolist()
        if count == 0:
            return None
        self.last_rt = total / count
        adjust = np.sign(self.last_rt - self.target) * batch_size * self.interval / (self.kimg * 1000)
        p = self.augment_pipe.p
        p.copy_(torch.clamp(p + adjust, min=0))
        return self.last_rt

    def state_dict(self) -> dict:
        return {"steps": self.steps, "sums": self._sums.cpu().tolist(), "last_rt": self.last_rt,
                "target": self.target, "interval": self.interval, "kimg": self.kimg}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        self._sums.copy_(torch.tensor(state["sums"], dtype=torch.float64))
        self.last_rt = state.get("last_rt")

#----------------------------------------------------------------------------

"""Perceptual path length (Karras et al. 2019, "A style-based generator architecture for generative
adversarial networks", section 3.2 / appendix): the LPIPS distance between the images at two latents
`epsilon` apart on an interpolation path, divided by epsilon^2, averaged over random paths after
discarding the lowest and highest 1% of the values.

`ppl2_wend`: paths in W (linear interpolation of mapped latents), evaluated at their end points
(t = 0), epsilon = 1e-4. The distance is the squared difference of the VGG16 detector's LPIPS-style
features (`return_lpips=True`), on images reduced to at most 256x256.

Face crop: the published FFHQ evaluation can crop the central face region before the distance. This
project's images are signers (upper body and hands), so the crop is off unless `ppl_crop=True`.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from . import metric_utils

#----------------------------------------------------------------------------

def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between the directions of a and b [N, D] at t [N, 1] (Z-space paths)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    cos = (a * b).sum(dim=-1, keepdim=True).clamp(-1, 1)
    omega = torch.acos(cos) * t
    c = b - cos * a
    c = c / c.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    d = a * torch.cos(omega) + c * torch.sin(omega)
    return d / d.norm(dim=-1, keepdim=True)


def crop_face(img: torch.Tensor) -> torch.Tensor:
    """The FFHQ face region of NCHW images: rows 3/8..7/8, columns 2/8..6/8 of the frame."""
    h, w = img.shape[2], img.shape[3]
    return img[:, :, h * 3 // 8:h * 7 // 8, w * 2 // 8:w * 6 // 8]


def reduce_to_256(img: torch.Tensor) -> torch.Tensor:
    """Box-filter NCHW images down by an integer factor so that the longer side is at most 256."""
    factor = max(img.shape[2], img.shape[3]) // 256
    if factor > 1:
        img = torch.nn.functional.avg_pool2d(img, kernel_size=factor, stride=factor)
    return img


class _PathDistance:
    """Distances of one group of paths; the generator copy has its noise buffers re-drawn per group."""

    def __init__(self, opts: metric_utils.MetricOptions, G: torch.nn.Module, vgg16: torch.nn.Module,
                 labels: metric_utils.LabelSampler, epsilon: float, space: str, sampling: str, crop: bool):
        self.opts, self.G, self.vgg16, self.labels = opts, G, vgg16, labels
        self.epsilon, self.space, self.sampling, self.crop = epsilon, space, sampling, crop
        self.noise_buffers = [buf for name, buf in G.synthesis.named_buffers() if name.endswith("noise_const")]

    def __call__(self, indices: np.ndarray) -> torch.Tensor:
        opts, G = self.opts, self.G
        n = len(indices)
        gen = torch.Generator().manual_seed(metric_utils.sample_seed(opts.seed, "ppl-noise", int(indices[0])))
        for buf in self.noise_buffers:  # same noise for both images of a path; new noise per group
            buf.copy_(torch.randn(buf.shape, generator=gen).to(buf.device))
        z0 = metric_utils.sample_normal(opts.seed, "ppl-z0", indices, [G.z_dim], opts.device)
        z1 = metric_utils.sample_normal(opts.seed, "ppl-z1", indices, [G.z_dim], opts.device)
        c = self.labels(indices, stream="ppl-c")
        if self.sampling == "full":
            t = torch.tensor([metric_utils.sample_uniform(opts.seed, "ppl-t", int(i))[0] for i in indices],
                             dtype=torch.float32, device=opts.device).unsqueeze(1)
        else:
            t = torch.zeros([n, 1], device=opts.device)
        if self.space == "w":
            w = G.mapping(torch.cat([z0, z1]), torch.cat([c, c]))
            w0, w1 = w[:n], w[n:]
            t3 = t.unsqueeze(2)
            wa = torch.lerp(w0, w1, t3)
            wb = torch.lerp(w0, w1, t3 + self.epsilon)
        else:
            za = slerp(z0, z1, t)
            zb = slerp(z0, z1, t + self.epsilon)
            w = G.mapping(torch.cat([za, zb]), torch.cat([c, c]))
            wa, wb = w[:n], w[n:]
        img = G.synthesis(torch.cat([wa, wb]), noise_mode="const", force_fp32=True)
        if self.crop:
            img = crop_face(img)
        img = reduce_to_256(img)
        img = (img + 1) * (255 / 2)  # uint8 range, as the detector expects
        if img.shape[1] == 1:
            img = img.repeat(1, 3, 1, 1)
        lpips = self.vgg16(img, resize_images=False, return_lpips=True)
        dist = (lpips[:n] - lpips[n:]).square().sum(dim=1) / self.epsilon ** 2
        return dist.unsqueeze(1)


def compute_ppl(opts: metric_utils.MetricOptions, num_samples: int, epsilon: float = 1e-4, space: str = "w",
                sampling: str = "end", crop: bool | None = None, batch_size: int = 2) -> float:
    """Mean path length over `num_samples` paths, ignoring values below the 1st and above the 99th
    percentile (rank 0 returns the value; the other ranks NaN)."""
    assert space in ("z", "w") and sampling in ("full", "end")
    G = copy.deepcopy(metric_utils.require_generator(opts)).eval().requires_grad_(False).to(opts.device)
    vgg16 = metric_utils.load_detector(opts.vgg16, opts, "--vgg16")
    labels = metric_utils.LabelSampler(opts, G.c_dim)
    crop = opts.ppl_crop if crop is None else crop
    fn = _PathDistance(opts, G, vgg16, labels, epsilon, space, sampling, crop)
    dist = np.concatenate(list(metric_utils.iter_generated(opts, num_samples, fn, group_size=batch_size,
                                                          desc="path lengths")))[:, 0].astype(np.float64)
    if not opts.is_leader:
        return float("nan")
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(dist[(dist >= lo) & (dist <= hi)].mean())

#----------------------------------------------------------------------------

"""Test material for the metrics: small TorchScript detectors that take the published calls, stand-in
generators with the spec's interface (section 3), and tiny PNG datasets in the archive layout (section 6).

The generators are persistent classes, so their snapshot pickles load in any process (calc_metrics.py
children included) without importing this file.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import warnings
import zipfile

import numpy as np
import PIL.Image
import torch

from torch_utils import persistence

#----------------------------------------------------------------------------
# Detectors: fixed random projections of downscaled images, scripted with the published keyword flags.

class ToyInception(torch.nn.Module):
    """Inception stand-in: images [N, 3, H, W] in uint8 range (any size) ->
    `return_features=True`: [N, dim] features; `no_output_bias=True`: [N, 1008] softmax probabilities."""

    def __init__(self, dim: int = 32, seed: int = 1):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.randn([3 * 8 * 8, dim], generator=g) / 8)
        self.register_buffer("bias", torch.randn([dim], generator=g) * 0.1)
        self.register_buffer("logits", torch.randn([dim, 1008], generator=g))
        self.register_buffer("logits_bias", torch.randn([1008], generator=g))

    def forward(self, img: torch.Tensor, return_features: bool = False, no_output_bias: bool = False) -> torch.Tensor:
        x = img.to(torch.float32) / 255
        x = torch.nn.functional.adaptive_avg_pool2d(x, [8, 8]).flatten(1)
        features = torch.tanh(x @ self.proj + self.bias) * 4
        if return_features:
            return features
        logits = features @ self.logits
        if not no_output_bias:
            logits = logits + self.logits_bias
        return torch.softmax(logits, dim=1)


class ToyVGG16(torch.nn.Module):
    """VGG16 stand-in: `return_features=True`: [N, 4096] features; `resize_images=False,
    return_lpips=True`: channel-normalised conv features, flattened, whose squared distance is LPIPS-like."""

    def __init__(self, seed: int = 2):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("w1", torch.randn([8, 3, 3, 3], generator=g) / 3)
        self.register_buffer("w2", torch.randn([16, 8, 3, 3], generator=g) / 8)
        self.register_buffer("proj", torch.randn([16 * 4 * 4, 4096], generator=g) / 16)

    def forward(self, img: torch.Tensor, return_features: bool = False, resize_images: bool = True,
                return_lpips: bool = False) -> torch.Tensor:
        x = img.to(torch.float32) / 127.5 - 1
        if resize_images:
            x = torch.nn.functional.interpolate(x, size=[32, 32], mode="bilinear", align_corners=False)
        f1 = torch.relu(torch.nn.functional.conv2d(x, self.w1, padding=1))
        f2 = torch.relu(torch.nn.functional.conv2d(torch.nn.functional.avg_pool2d(f1, 2), self.w2, padding=1))
        if return_lpips:
            parts = []
            for f in [f1, f2]:
                f = f / (f.square().sum(dim=1, keepdim=True) + 1e-10).sqrt()
                parts.append(f.flatten(1) / math.sqrt(f.shape[2] * f.shape[3]))
            return torch.cat(parts, dim=1)
        pooled = torch.nn.functional.adaptive_avg_pool2d(f2, [4, 4]).flatten(1)
        out = pooled @ self.proj
        if return_features:
            return out
        return out.sum(dim=1, keepdim=True)


@contextlib.contextmanager
def quiet_jit():
    """TorchScript is deprecated in recent torch but is the format of the published detectors."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
        yield


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with quiet_jit():
        return torch.jit.script(module.eval())


def save_jit(module: torch.nn.Module, path: str) -> str:
    """A `torch.jit.save` archive of the scripted module."""
    with quiet_jit():
        torch.jit.save(script(module), path)
    return path


def load_jit(path: str) -> torch.nn.Module:
    """A detector file in either format (a torch.jit.save archive or a pickle of a TorchScript module)."""
    with open(path, "rb") as f:
        data = f.read()
    with quiet_jit():
        return torch.jit.load(io.BytesIO(data)) if data[:2] == b"PK" else pickle.loads(data)


class _JitPickler(pickle.Pickler):
    """Pickles ScriptModules as `torch.jit.load(BytesIO(archive))`, a pickle of a TorchScript module like
    the published detector files."""

    def reducer_override(self, obj):
        if isinstance(obj, torch.jit.ScriptModule):
            buf = io.BytesIO()
            with quiet_jit():
                torch.jit.save(obj, buf)
            return torch.jit.load, (io.BytesIO(buf.getvalue()),)
        return NotImplemented


def save_jit_pickle(module: torch.nn.Module, path: str) -> str:
    with open(path, "wb") as f:
        _JitPickler(f).dump(script(module))
    return path

#----------------------------------------------------------------------------
# Stand-in generators (spec section 3 interface).

@persistence.persistent_class
class ToyMapping(torch.nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.weight = torch.nn.Parameter(torch.randn([z_dim, w_dim], generator=g) / math.sqrt(z_dim))
        self.c_weight = torch.nn.Parameter(torch.randn([max(c_dim, 1), w_dim], generator=g))
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        x = z / z.square().mean(dim=1, keepdim=True).add(1e-8).sqrt()
        w = x @ self.weight
        if self.c_dim > 0:
            w = w + c @ self.c_weight
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cut] = self.w_avg.lerp(ws[:, :cut], truncation_psi)
        return ws


@persistence.persistent_class
class ToyInput(torch.nn.Module):
    """Fourier features evaluated at `transform @ [x, y, 1]`, x and y the pixel centres in [-0.5, 0.5]:
    with transform = M^-1 the output is exactly the content moved by M (any translation or rotation)."""

    def __init__(self, w_dim: int, num_freqs: int, max_freq: float, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed + 1)
        radius = torch.rand([num_freqs], generator=g) * max_freq
        angle = torch.rand([num_freqs], generator=g) * 2 * math.pi
        self.register_buffer("freqs", torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1))
        self.phase = torch.nn.Parameter(torch.randn([w_dim, num_freqs], generator=g))
        self.register_buffer("transform", torch.eye(3))

    def forward(self, w: torch.Tensor, resolution: int, use_transform: bool = True) -> torch.Tensor:
        coords = (torch.arange(resolution, dtype=torch.float32, device=w.device) + 0.5) / resolution - 0.5
        y, x = torch.meshgrid(coords, coords, indexing="ij")
        p = torch.stack([x, y, torch.ones_like(x)], dim=0).reshape(3, -1)  # [3, H*W]
        if use_transform:
            p = self.transform.to(p.dtype) @ p
        arg = 2 * math.pi * (self.freqs @ p[:2])  # [F, H*W]
        phase = (w @ self.phase).unsqueeze(2)  # [N, F, 1]
        return torch.sin(arg.unsqueeze(0) + phase).reshape(w.shape[0], -1, resolution, resolution)


@persistence.persistent_class
class ToySynthesis(torch.nn.Module):
    def __init__(self, w_dim: int, num_ws: int, img_resolution: int, img_channels: int, equivariant: bool = True,
                 num_freqs: int = 12, max_freq: float | None = None, seed: int = 0):
        super().__init__()
        self.w_dim, self.num_ws = w_dim, num_ws
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.equivariant = equivariant
        max_freq = img_resolution / 8 if max_freq is None else max_freq  # cycles per image: a quarter of Nyquist
        self.input = ToyInput(w_dim, num_freqs, max_freq, seed=seed)
        g = torch.Generator().manual_seed(seed + 2)
        self.mix = torch.nn.Parameter(torch.randn([img_channels, num_freqs], generator=g) / math.sqrt(num_freqs))
        self.register_buffer("noise_const", torch.zeros([img_resolution, img_resolution]))

    def forward(self, ws, noise_mode="random", force_fp32=False, update_emas=False, **kwargs):
        feats = self.input(ws[:, 0], self.img_resolution, use_transform=self.equivariant)
        img = torch.einsum("cf,nfhw->nchw", self.mix, feats) * 0.7
        if noise_mode == "const":
            img = img + 0.01 * self.noise_const
        elif noise_mode == "random":
            img = img + 0.01 * torch.randn_like(img[:, :1])
        return img


@persistence.persistent_class
class ToyGenerator(torch.nn.Module):
    """Stand-in generator: z -> ws -> sum of Fourier features (transform-equivariant unless
    `equivariant=False`, which ignores `synthesis.input.transform`)."""

    def __init__(self, z_dim: int = 16, c_dim: int = 0, w_dim: int = 16, img_resolution: int = 32,
                 img_channels: int = 3, num_ws: int = 4, equivariant: bool = True, seed: int = 0, **synthesis_kwargs):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels, self.num_ws = img_resolution, img_channels, num_ws
        self.mapping = ToyMapping(z_dim, c_dim, w_dim, num_ws, seed=seed)
        self.synthesis = ToySynthesis(w_dim, num_ws, img_resolution, img_channels, equivariant=equivariant,
                                      seed=seed, **synthesis_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


@persistence.persistent_class
class ConstantSynthesis(torch.nn.Module):
    def __init__(self, img_resolution: int, img_channels: int):
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.register_buffer("image", torch.rand([1, img_channels, img_resolution, img_resolution], generator=g) * 2 - 1)

    def forward(self, ws, **kwargs):
        return self.image.repeat(ws.shape[0], 1, 1, 1)


@persistence.persistent_class
class ConstantGenerator(torch.nn.Module):
    """Every image the same (a fixed pattern), whatever z and w."""

    def __init__(self, img_resolution: int = 32, img_channels: int = 3):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = 8, 0, 8, 2
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.mapping = ToyMapping(8, 0, 8, 2)
        self.synthesis = ConstantSynthesis(img_resolution, img_channels)

    def forward(self, z, c, **kwargs):
        return self.synthesis(self.mapping(z, c))


class ReplayGenerator(torch.nn.Module):
    """Returns image k of a fixed set for the latent the metrics draw for sample k (looked up by value),
    so the generated set of the first N samples equals the given images exactly."""

    def __init__(self, images_uint8: np.ndarray, latents: torch.Tensor):
        super().__init__()
        n, h, w, c = images_uint8.shape
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = latents.shape[1], 0, 4, 1
        self.img_resolution, self.img_channels = h, c
        imgs = torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float()
        self.register_buffer("images", (imgs - 127.5) / 127.5)
        self.register_buffer("latents", latents.float())

    def forward(self, z, c, **kwargs):
        idx = torch.cdist(z.float(), self.latents).argmin(dim=1)
        return self.images[idx]

#----------------------------------------------------------------------------
# Datasets in the spec's archive layout.

def random_images(n: int, resolution: int = 32, channels: int = 3, seed: int = 0) -> np.ndarray:
    """[n, H, W, C] uint8 smooth random images (varied enough for features to differ)."""
    rng = np.random.RandomState(seed)
    small = rng.randint(0, 256, size=[n, 4, 4, channels]).astype(np.float32)
    imgs = torch.nn.functional.interpolate(torch.from_numpy(small).permute(0, 3, 1, 2), size=[resolution] * 2,
                                           mode="bilinear", align_corners=False)
    imgs = imgs + torch.from_numpy(rng.randn(n, channels, resolution, resolution).astype(np.float32)) * 10
    return imgs.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write_dataset(path: str, images: np.ndarray, labels: list | None = None) -> str:
    """Images [N, H, W, C] uint8 as `NNNNN/imgNNNNNNNN.png` (+ dataset.json) in a folder or, when `path`
    ends in .zip, an uncompressed zip."""
    entries = {}
    for i, img in enumerate(images):
        name = f"{i // 1000:05d}/img{i:08d}.png"
        buf = io.BytesIO()
        PIL.Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, format="png")
        entries[name] = buf.getvalue()
    meta = {"labels": [[f"{i // 1000:05d}/img{i:08d}.png", lab] for i, lab in enumerate(labels)]
            if labels is not None else None}
    entries["dataset.json"] = json.dumps(meta).encode()
    if path.endswith(".zip"):
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in entries.items():
                zf.writestr(name, data)
    else:
        for name, data in entries.items():
            os.makedirs(os.path.dirname(os.path.join(path, name)) or path, exist_ok=True)
            with open(os.path.join(path, name), "wb") as f:
                f.write(data)
    return path


def dataset_kwargs(path: str, **kwargs) -> dict:
    return dict(class_name="training.dataset.ImageFolderDataset", path=path, use_labels=False, max_size=None,
                xflip=False, **kwargs)

#----------------------------------------------------------------------------

"""Shared machinery of the metrics: options, feature detectors, and feature statistics of the
dataset (cached on disk) and of generated images, with the work sharded across torch.distributed ranks.

Sharding. Work is cut into fixed groups of global indices (`group_size` items each). Round `k` gives
group `k * num_gpus + rank` to each rank; the results of a round are gathered with `all_gather` and
concatenated in rank order, which is global index order. Random latents are drawn per global index
(`sample_seed`), so a metric gives the same value on 1 or N GPUs up to floating-point summation order.

Detectors. The published feature detectors are TorchScript networks (spec section 8). `load_detector`
opens a path or URL through `dnnlib.util.open_url` and accepts both a `torch.jit.save` archive and a
pickle of a TorchScript module. Loading a pickle runs code from it: pass only trusted files.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import pickle
import time
import warnings
from typing import Any, Callable, Iterator

import numpy as np
import torch

import dnnlib

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------
# Published detector locations (spec section 8) and their command-line overrides.

INCEPTION_URL = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics/inception-2015-12-05.pkl"
VGG16_URL = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/metrics/vgg16.pkl"

# Environment variables that replace the published URLs when no explicit override is given (useful for
# `train.py --metrics` on an offline machine).
INCEPTION_ENV = "SIGNSTYLEGAN_INCEPTION"
VGG16_ENV = "SIGNSTYLEGAN_VGG16"

#----------------------------------------------------------------------------
# Options shared by every metric.

class MetricOptions:
    """Everything a metric needs besides its own constants.

    Args:
        G:              Generator (spec section 3 interface), or None for dataset-only work.
        G_kwargs:       Extra keyword arguments for `G(z, c, **G_kwargs)` (e.g. `noise_mode`).
        dataset_kwargs: Keyword arguments of `dnnlib.util.construct_class_by_name` for the real images
                        (`class_name='training.dataset.ImageFolderDataset', path=...`), or None.
        num_gpus, rank: Process group size and this process's rank (the group must be initialised
                        when `num_gpus > 1`).
        device:         Torch device (default: CUDA when available, else CPU).
        progress:       Show a progress bar on rank 0 when attached to a terminal.
        cache:          Cache dataset statistics on disk (under `cache_dir`).
        cache_dir:      Folder of the statistics cache (default `make_cache_dir_path('gan-metrics')`).
        inception:      Path or URL of the Inception detector (default: $SIGNSTYLEGAN_INCEPTION, else the
                        published URL).
        vgg16:          Path or URL of the VGG16 detector (default: $SIGNSTYLEGAN_VGG16, else published).
        num:            Scale the metric down: use `num` images instead of the 50k of the metric's name
                        (generated images, samples, and the real-image cap of the non-"full" metrics).
                        For quick checks and tests; the values are not comparable with published ones.
        batch_size:     Images per generator / detector call on each rank.
        ppl_crop:       PPL only: crop the face region of FFHQ-like portraits before the distance. Off by
                        default: signer frames show a whole upper body, not a centred face.
        seed:           Seed of the random latents, labels and transforms.
        data_loader_kwargs: Extra `torch.utils.data.DataLoader` arguments for reading the dataset.
    """

    def __init__(self, G: torch.nn.Module | None = None, G_kwargs: dict | None = None,
                 dataset_kwargs: dict | None = None, num_gpus: int = 1, rank: int = 0,
                 device: torch.device | str | None = None, progress: bool = False, cache: bool = True,
                 cache_dir: str | None = None, inception: str | None = None, vgg16: str | None = None,
                 num: int | None = None, batch_size: int = 32, ppl_crop: bool = False, seed: int = 0,
                 data_loader_kwargs: dict | None = None):
        assert 0 <= rank < num_gpus
        if num is not None and int(num) < 1:
            raise dnnlib.UserError(f"The number of images must be at least 1 (got {num})")
        self.G = G
        self.G_kwargs = dnnlib.EasyDict(G_kwargs or {})
        self.dataset_kwargs = dnnlib.EasyDict(dataset_kwargs) if dataset_kwargs is not None else None
        self.num_gpus = int(num_gpus)
        self.rank = int(rank)
        if device is None:
            device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.progress = bool(progress)
        self.cache = bool(cache)
        self.cache_dir = cache_dir
        self.inception = inception or os.environ.get(INCEPTION_ENV) or INCEPTION_URL
        self.vgg16 = vgg16 or os.environ.get(VGG16_ENV) or VGG16_URL
        self.num = int(num) if num is not None else None
        self.batch_size = int(batch_size)
        self.ppl_crop = bool(ppl_crop)
        self.seed = int(seed)
        self.data_loader_kwargs = dict(data_loader_kwargs) if data_loader_kwargs is not None else None

    def scaled(self, count: int | None) -> int | None:
        """A metric's nominal image count (50000, 200000, ...) after the `num` scaling: a count of 50000 or
        more becomes `num * count / 50000` (so 200k real images for pr50k3_full become `4 * num`)."""
        if count is None or self.num is None:
            return count
        return max(1, int(round(self.num * count / 50000)))

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

#----------------------------------------------------------------------------
# Small distributed helpers (no-ops for one process).

def _all_gather(x: torch.Tensor, num_gpus: int) -> list[torch.Tensor]:
    if num_gpus == 1:
        return [x]
    out = [torch.empty_like(x) for _ in range(num_gpus)]
    torch.distributed.all_gather(out, x.contiguous())
    return out


def all_reduce_sum(x: torch.Tensor, num_gpus: int) -> torch.Tensor:
    """Sum of `x` over the ranks (returned; `x` is not modified)."""
    if num_gpus == 1:
        return x
    x = x.clone()
    torch.distributed.all_reduce(x, op=torch.distributed.ReduceOp.SUM)
    return x


def _leader_first(opts: MetricOptions, fn: Callable[[], Any], what: str) -> Any:
    """Run `fn` on rank 0 first (a download, a cache write), then on the other ranks. If rank 0 fails,
    the others raise too instead of waiting forever."""
    if opts.num_gpus == 1:
        return fn()
    flag = torch.zeros([1], device=opts.device)
    result = None
    error: BaseException | None = None
    if opts.rank == 0:
        try:
            result = fn()
            flag += 1
        except BaseException as e:  # noqa: BLE001 (re-raised below, after telling the other ranks)
            error = e
    torch.distributed.broadcast(flag, src=0)
    if opts.rank == 0:
        if error is not None:
            raise error
        return result
    if flag.item() == 0:
        raise dnnlib.UserError(f"{what} failed on rank 0 (see its message)")
    return fn()

#----------------------------------------------------------------------------
# Feature detectors.

_detector_cache: dict[tuple[str, str], torch.nn.Module] = {}


def _read_detector(url: str, device: torch.device, flag: str | None) -> torch.nn.Module:
    try:
        # Two tries of 15 s per network read at most: an offline machine fails fast (no DNS, no route), and
        # even a silently dropping firewall costs well under a minute before the message below.
        with dnnlib.util.open_url(url, verbose=False, num_attempts=2, timeout=15) as f:
            data = f.read()
    except dnnlib.UserError as e:
        remote = dnnlib.util.is_url(url) and not url.startswith("file://")
        # open_url's message for a URL already says to download it elsewhere; here the option to pass it with.
        hint = "" if not flag else f" ({flag}=PATH)" if remote else f"; give the detector's path with {flag}=PATH"
        raise dnnlib.UserError(f"Cannot load the feature detector {url}: {str(e).rstrip('.')}{hint}") from None
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated in recent torch, but it is the published format
            warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
            if data[:4] == b"PK\x03\x04":  # a torch.jit.save archive
                module = torch.jit.load(io.BytesIO(data), map_location=device)
            else:  # a pickle of a TorchScript module (the published files); trusted input only
                module = pickle.loads(data)
    except Exception as e:  # noqa: BLE001 (any decoding failure means a wrong file)
        raise dnnlib.UserError(f"{url} is not a TorchScript feature detector ({type(e).__name__}: {e})") from None
    if not isinstance(module, torch.nn.Module):
        raise dnnlib.UserError(f"{url} holds a {type(module).__name__}, not a TorchScript feature detector")
    return module.eval().to(device)


def load_detector(url: str, opts: MetricOptions, flag: str | None = None) -> torch.nn.Module:
    """The detector at `url` (path or URL) on `opts.device`, loaded once per process.

    `flag` names the command-line option that overrides it ('--inception', '--vgg16'), for the message
    given when the download fails (offline machines)."""
    key = (url, str(opts.device))
    if key not in _detector_cache:
        _detector_cache[key] = _leader_first(opts, lambda: _read_detector(url, opts.device, flag),
                                             f"Loading the detector {url}")
    return _detector_cache[key]


def to_detector_input(img: torch.Tensor) -> torch.Tensor:
    """Generator output NCHW float in about [-1, 1] -> NCHW uint8 RGB (gray images repeated to 3 channels)."""
    img = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    if img.shape[1] == 1:
        img = img.repeat(1, 3, 1, 1)
    return img

#----------------------------------------------------------------------------
# Accumulated features: all of them, their first two moments, or both.

class FeatureStatistics:
    """Features appended batch by batch (float32 [n, D]) up to `max_items`.

    `keep_all` stores every feature (KID, precision/recall, IS, PPL); `keep_moments` accumulates the
    sum and the sum of outer products in float64 (FID) without storing the features."""

    def __init__(self, keep_all: bool = False, keep_moments: bool = False, max_items: int | None = None):
        self.keep_all = keep_all
        self.keep_moments = keep_moments
        self.max_items = max_items
        self.num_items = 0
        self.num_features: int | None = None
        self._all: list[np.ndarray] = []
        self._sum: np.ndarray | None = None
        self._sum_outer: np.ndarray | None = None

    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    def append(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float32)
        assert x.ndim == 2
        if self.max_items is not None:
            x = x[:max(self.max_items - self.num_items, 0)]
        if self.num_features is None:
            self.num_features = x.shape[1]
            if self.keep_moments:
                self._sum = np.zeros([x.shape[1]], dtype=np.float64)
                self._sum_outer = np.zeros([x.shape[1], x.shape[1]], dtype=np.float64)
        assert x.shape[1] == self.num_features, (x.shape, self.num_features)
        if x.shape[0] == 0:
            return
        self.num_items += x.shape[0]
        if self.keep_all:
            self._all.append(x)
        if self.keep_moments:
            x64 = x.astype(np.float64)
            self._sum += x64.sum(axis=0)
            self._sum_outer += x64.T @ x64

    def get_all(self) -> np.ndarray:
        assert self.keep_all
        if not self._all:
            return np.zeros([0, self.num_features or 0], dtype=np.float32)
        if len(self._all) > 1:
            self._all = [np.concatenate(self._all, axis=0)]
        return self._all[0]

    def get_mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean [D] and covariance [D, D] (normalised by n - 1, as numpy.cov) of the features."""
        assert self.keep_moments and self.num_items >= 2, "need at least two images for a covariance"
        n = self.num_items
        mean = self._sum / n
        cov = (self._sum_outer - n * np.outer(mean, mean)) / (n - 1)
        return mean, cov

    def save(self, path: str) -> None:
        arrays: dict[str, np.ndarray] = dict(num_items=np.int64(self.num_items),
                                             num_features=np.int64(self.num_features or 0))
        if self.keep_all:
            arrays["all"] = self.get_all()
        if self.keep_moments and self._sum is not None:
            arrays["sum"] = self._sum
            arrays["sum_outer"] = self._sum_outer
        with dnnlib.util.atomic_write(path) as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str, keep_all: bool, keep_moments: bool, max_items: int | None) -> FeatureStatistics:
        stats = cls(keep_all=keep_all, keep_moments=keep_moments, max_items=max_items)
        with np.load(path, allow_pickle=False) as data:
            stats.num_items = int(data["num_items"])
            stats.num_features = int(data["num_features"]) or None
            if keep_all:
                stats._all = [data["all"]]
            if keep_moments and "sum" in data:
                stats._sum = data["sum"]
                stats._sum_outer = data["sum_outer"]
        return stats

#----------------------------------------------------------------------------
# Sharding plan: fixed groups of global indices, dealt round-robin to the ranks.

class ShardPlan:
    """Groups of `group_size` consecutive indices of `range(num_items)`; round `k` gives group
    `k * num_gpus + rank` to each rank. A rank without a group in the last round repeats group 0 (its
    result is dropped), so that every collective sees the same shapes on every rank."""

    def __init__(self, num_items: int, group_size: int, num_gpus: int, rank: int):
        assert group_size >= 1
        self.num_items = int(num_items)
        self.group_size = int(group_size)
        self.num_gpus = int(num_gpus)
        self.rank = int(rank)
        self.num_groups = math.ceil(self.num_items / self.group_size)
        self.num_rounds = math.ceil(self.num_groups / self.num_gpus)

    def group(self, gid: int) -> np.ndarray:
        return np.arange(gid * self.group_size, min((gid + 1) * self.group_size, self.num_items), dtype=np.int64)

    def local_groups(self) -> list[np.ndarray]:
        """This rank's group of every round (a stand-in group 0 where it has none)."""
        out = []
        for k in range(self.num_rounds):
            gid = k * self.num_gpus + self.rank
            out.append(self.group(gid if gid < self.num_groups else 0))
        return out

    def gather(self, k: int, local: torch.Tensor) -> np.ndarray:
        """Round `k`: every rank passes its result ([len(group), ...] rows); returns the rows of all
        ranks' real groups in global index order (float32 numpy, on every rank)."""
        if self.num_gpus == 1:
            return local.detach().float().cpu().numpy()
        pad = self.group_size - local.shape[0]
        if pad > 0:
            local = torch.cat([local, local[:1].expand(pad, *local.shape[1:])])
        parts = _all_gather(local.detach().float(), self.num_gpus)
        rows = []
        for r, part in enumerate(parts):
            gid = k * self.num_gpus + r
            if gid < self.num_groups:
                rows.append(part[:len(self.group(gid))])
        return torch.cat(rows).cpu().numpy()


def sample_seed(seed: int, stream: str, index: int) -> int:
    """A 63-bit seed for item `index` of the random stream `stream` ('z', 'c', 'transform', ...)."""
    h = hashlib.blake2b(f"{seed}/{stream}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def sample_normal(seed: int, stream: str, indices: np.ndarray, shape: list[int], device: torch.device) -> torch.Tensor:
    """One standard-normal tensor of `shape` per global index, stacked: [len(indices), *shape]."""
    out = [torch.randn(shape, generator=torch.Generator().manual_seed(sample_seed(seed, stream, int(i))))
           for i in indices]
    return torch.stack(out).to(device)


def sample_uniform(seed: int, stream: str, index: int, size: int = 1) -> np.ndarray:
    """`size` uniform numbers in [0, 1) for item `index` of `stream`."""
    return np.random.RandomState(sample_seed(seed, stream, index) % (1 << 32)).random_sample(size)

#----------------------------------------------------------------------------
# Progress.

def _progress(opts: MetricOptions, total: int, desc: str):
    from tqdm.auto import tqdm
    disable = True if (not opts.progress or not opts.is_leader) else None  # None: only on a terminal
    return tqdm(total=total, desc=desc, unit="img", disable=disable, leave=False, dynamic_ncols=True)

#----------------------------------------------------------------------------
# The dataset, built from its kwargs; random labels for conditional generators.

def make_dataset(opts: MetricOptions) -> torch.utils.data.Dataset:
    if opts.dataset_kwargs is None:
        raise dnnlib.UserError("This metric needs the real images (or their labels): pass the dataset "
                               "(calc_metrics.py --data=PATH)")
    return dnnlib.util.construct_class_by_name(**opts.dataset_kwargs)


class LabelSampler:
    """Random labels of the real data for a conditional generator (zero-width labels otherwise)."""

    def __init__(self, opts: MetricOptions, c_dim: int):
        self.opts = opts
        self.c_dim = int(c_dim)
        self.dataset = make_dataset(opts) if self.c_dim > 0 else None
        if self.dataset is not None and getattr(self.dataset, "label_dim", self.c_dim) != self.c_dim:
            raise dnnlib.UserError(f"The generator takes {self.c_dim} label values but the dataset has "
                                   f"{self.dataset.label_dim}; pass the dataset it was trained on (with labels)")

    def __call__(self, indices: np.ndarray, stream: str = "c") -> torch.Tensor:
        if self.dataset is None:
            return torch.zeros([len(indices), 0], device=self.opts.device)
        n = len(self.dataset)
        labels = []
        for i in indices:
            j = int(sample_uniform(self.opts.seed, stream, int(i))[0] * n)
            label = self.dataset.get_label(j) if hasattr(self.dataset, "get_label") else self.dataset[j][1]
            labels.append(np.asarray(label, dtype=np.float32))
        return torch.from_numpy(np.stack(labels)).to(self.opts.device)

#----------------------------------------------------------------------------
# Dataset statistics, cached on disk.

def _file_fingerprint(path: Any) -> Any:
    """Size and modification time of a local file (for a folder: number of files, total size and latest
    modification time of the files under it), so that a dataset or detector remade at the same path does
    not reuse stale statistics."""
    if not isinstance(path, str) or dnnlib.util.is_url(path) or not os.path.exists(path):
        return None
    if os.path.isdir(path):
        count = size = latest = 0
        for root, _dirs, files in os.walk(path):
            for name in files:
                st = os.stat(os.path.join(root, name))
                count, size, latest = count + 1, size + st.st_size, max(latest, st.st_mtime_ns)
        return [count, size, latest]
    st = os.stat(path)
    return [int(st.st_size), int(st.st_mtime_ns)]


def stats_cache_path(opts: MetricOptions, dataset_name: str, detector_url: str, detector_kwargs: dict,
                     options: dict) -> str:
    """Cache file of the statistics of one dataset x detector x options combination."""
    key = dict(dataset_kwargs=dict(sorted(opts.dataset_kwargs.items())),
               dataset_file=_file_fingerprint(opts.dataset_kwargs.get("path")),
               detector_url=detector_url, detector_file=_file_fingerprint(detector_url),
               detector_kwargs=dict(sorted(detector_kwargs.items())), options=dict(sorted(options.items())))
    digest = hashlib.md5(json.dumps(key, sort_keys=True, default=repr).encode()).hexdigest()
    detector_name = os.path.splitext(os.path.basename(detector_url.rstrip("/")))[0] or "detector"
    cache_dir = opts.cache_dir or dnnlib.make_cache_dir_path("gan-metrics")
    return os.path.join(cache_dir, f"{dataset_name}-{detector_name}-{digest}.npz")


def _default_loader_kwargs(opts: MetricOptions) -> dict:
    if opts.data_loader_kwargs is not None:
        return opts.data_loader_kwargs
    if opts.device.type == "cuda":
        return dict(num_workers=3, pin_memory=True, prefetch_factor=2)
    return dict(num_workers=0)


def _collate_images(batch: list) -> torch.Tensor:
    """Dataset items (CHW uint8 image, label) -> NCHW uint8 tensor of the images."""
    return torch.from_numpy(np.stack([np.asarray(item[0]) for item in batch]))


def dataset_features(opts: MetricOptions, detector_url: str, detector_kwargs: dict, max_items: int | None = None,
                     keep_all: bool = False, keep_moments: bool = False, flag: str | None = None,
                     desc: str = "real images") -> FeatureStatistics:
    """Features of the first `max_items` real images (all when None) under the detector at
    `detector_url`, called as `detector(images_uint8_nchw, **detector_kwargs)`.

    The result is cached under `opts.cache_dir`, keyed by the dataset (kwargs and file size/time), the
    detector and the options; rank 0 computes the key and writes the file atomically."""
    dataset = make_dataset(opts)
    num_items = len(dataset) if max_items is None else min(len(dataset), max_items)
    if num_items == 0:
        raise dnnlib.UserError(f"The dataset {opts.dataset_kwargs.get('path')} holds no images")
    options = dict(max_items=num_items, keep_all=keep_all, keep_moments=keep_moments)
    cache_file = None
    if opts.cache:
        name = getattr(dataset, "name", "dataset")
        cache_file = stats_cache_path(opts, name, detector_url, detector_kwargs, options)
        found = torch.tensor([float(os.path.isfile(cache_file)) if opts.is_leader else 0.0], device=opts.device)
        if opts.num_gpus > 1:
            torch.distributed.broadcast(found, src=0)
        if found.item() == 1:
            try:
                stats = FeatureStatistics.load(cache_file, keep_all=keep_all, keep_moments=keep_moments,
                                               max_items=num_items)
                log.info("Using cached dataset statistics %s", cache_file)
                return stats
            except (OSError, ValueError, KeyError) as e:  # unreadable: computed again and rewritten
                log.warning("Ignoring the unreadable statistics cache %s (%s)", cache_file, e)

    detector = load_detector(detector_url, opts, flag)
    stats = FeatureStatistics(keep_all=keep_all, keep_moments=keep_moments, max_items=num_items)
    plan = ShardPlan(num_items, opts.batch_size, opts.num_gpus, opts.rank)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=[g.tolist() for g in plan.local_groups()],
                                         collate_fn=_collate_images, **_default_loader_kwargs(opts))
    t0 = time.time()
    with _progress(opts, num_items, desc) as bar, torch.no_grad():
        for k, images in enumerate(loader):
            images = images.to(opts.device)
            if images.shape[1] == 1:
                images = images.repeat(1, 3, 1, 1)
            features = detector(images, **detector_kwargs)
            rows = plan.gather(k, features)
            stats.append(rows)
            bar.update(rows.shape[0])
    log.info("Features of %d real images in %s", stats.num_items, dnnlib.util.format_time(time.time() - t0))
    if cache_file is not None and opts.is_leader:
        stats.save(cache_file)
    return stats

#----------------------------------------------------------------------------
# Generated images.

def require_generator(opts: MetricOptions) -> torch.nn.Module:
    if opts.G is None:
        raise dnnlib.UserError("This metric needs a generator network")
    return opts.G


def generate_images(opts: MetricOptions, G: torch.nn.Module, labels: LabelSampler, indices: np.ndarray,
                    stream: str = "z") -> torch.Tensor:
    """Images of the global sample `indices` (latents seeded per index): NCHW float, about [-1, 1]."""
    z = sample_normal(opts.seed, stream, indices, [G.z_dim], opts.device)
    c = labels(indices)
    return G(z, c, **opts.G_kwargs)


def iter_generated(opts: MetricOptions, num_items: int, fn: Callable[[np.ndarray], torch.Tensor],
                   group_size: int | None = None, desc: str = "generated images") -> Iterator[np.ndarray]:
    """Apply `fn(global_indices) -> tensor [n, ...]` to every group of `range(num_items)`, sharded across the
    ranks; yields the gathered rows of each round, in global order, on every rank. `fn` runs without
    gradients, with torch's global RNG seeded by the group (so random noise inputs do not depend on the
    number of ranks either)."""
    plan = ShardPlan(num_items, group_size or opts.batch_size, opts.num_gpus, opts.rank)
    with _progress(opts, num_items, desc) as bar:
        for k, indices in enumerate(plan.local_groups()):
            # Torch's global RNG (the generator's noise inputs) seeded per group, the caller's state restored.
            with torch.no_grad(), torch.random.fork_rng(devices=[opts.device] if opts.device.type == "cuda" else []):
                torch.manual_seed(sample_seed(opts.seed, "torch", int(indices[0])))
                out = fn(indices)
            rows = plan.gather(k, out)
            bar.update(rows.shape[0])
            yield rows


def generator_features(opts: MetricOptions, detector_url: str, detector_kwargs: dict, num_gen: int,
                       keep_all: bool = False, keep_moments: bool = False, flag: str | None = None,
                       desc: str = "generated images") -> FeatureStatistics:
    """Features of `num_gen` generated images (random z per index, random real labels) under a detector."""
    G = require_generator(opts)
    detector = load_detector(detector_url, opts, flag)
    labels = LabelSampler(opts, G.c_dim)
    stats = FeatureStatistics(keep_all=keep_all, keep_moments=keep_moments, max_items=num_gen)

    def features(indices: np.ndarray) -> torch.Tensor:
        img = generate_images(opts, G, labels, indices)
        return detector(to_detector_input(img), **detector_kwargs)

    t0 = time.time()
    for rows in iter_generated(opts, num_gen, features, desc=desc):
        stats.append(rows)
    log.info("Features of %d generated images in %s", stats.num_items, dnnlib.util.format_time(time.time() - t0))
    return stats

#----------------------------------------------------------------------------

"""The GAN training loop: StyleGAN2/StyleGAN3 generator and discriminator, ADA, EMA, snapshots, resume.

`training_loop(rank=..., **options)` runs one process of a training run; `train.py` derives the
options from its command line (they are the keys of `training_options.json`, see `TrainingOptions`)
and starts one process per GPU. Under `torch.distributed` every rank holds a copy of the networks and
computes on its share of each batch; gradients are all-reduced once per phase.

How a step is cut up. The global batch of `batch_size` images is split into S = batch_size // batch_gpu
slots of `batch_gpu` images: slot s holds the images at positions s, s + S, s + 2S, ... of the batch.
Slot s runs on rank `s % num_gpus` in round `s // num_gpus`; the gradients of each round are taken
whole, summed over rounds and ranks, and divided by S. The data stream and the latents are drawn for
the whole batch from streams shared by all ranks, so a run computes the same thing however it is split
into processes: bit for bit for two slots, up to the order of float sums for more. The exception is
G's running statistics (w_avg, StyleGAN3 magnitude EMAs), which each rank updates on its own slots,
as published.

Files a run writes into `run_dir` (rank 0 only; spec section 7): `reals.png`, `fakes_init.png`,
`fakes<kimg:06d>.png`, `network-snapshot-<kimg:06d>.pkl` (the published snapshot dict), `stats.jsonl`
(one JSON object per tick), TensorBoard event files, `metric-<name>.jsonl`, and with every network
snapshot `training-state.pt`: everything needed to continue exactly (networks, optimizer states, ADA,
the loss's running means, progress counters, the data position and every random state of every rank),
written atomically. `training_loop(resume_state=<that file>)` continues the run as if it had never
stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import pickle
import random
import re
import time
from typing import Any, Callable

import numpy as np
import torch

import dnnlib
from torch_utils import distributed, misc, training_stats
from torch_utils.ops import conv2d_gradfix, cpu_kernels, grid_sample_gradfix
from utils.video_io import save_png

log = logging.getLogger(__name__)

STATE_FILE = 'training-state.pt'
STATE_FORMAT = 'signstylegan-training-state'
STATE_VERSION = 1

#----------------------------------------------------------------------------
# Options (the keys of training_options.json; names and defaults as published).

@dataclasses.dataclass
class TrainingOptions:
    run_dir: str = '.'                          # Output folder (rank 0 writes there).
    training_set_kwargs: dict = dataclasses.field(default_factory=dict)  # Dataset, built by class_name.
    data_loader_kwargs: dict = dataclasses.field(default_factory=dict)   # torch DataLoader options.
    G_kwargs: dict = dataclasses.field(default_factory=dict)             # Generator, built by class_name.
    D_kwargs: dict = dataclasses.field(default_factory=dict)             # Discriminator, built by class_name.
    G_opt_kwargs: dict = dataclasses.field(default_factory=dict)         # Generator optimizer.
    D_opt_kwargs: dict = dataclasses.field(default_factory=dict)         # Discriminator optimizer.
    augment_kwargs: dict | None = None          # Augmentation pipeline (None = no augmentation).
    loss_kwargs: dict = dataclasses.field(default_factory=dict)          # Loss, built by class_name.
    metrics: list = dataclasses.field(default_factory=list)              # Metrics evaluated at snapshots.
    metric_kwargs: dict = dataclasses.field(default_factory=dict)        # Extra calc_metric arguments (detectors).
    random_seed: int = 0                        # Global random seed.
    num_gpus: int = 1                           # Number of processes.
    batch_size: int = 4                         # Images per step over all processes.
    batch_gpu: int = 4                          # Images per process per round.
    ema_kimg: float = 10                        # Half-life of the G_ema average, in thousands of images.
    ema_rampup: float | None = 0.05             # Half-life at most cur_nimg * ema_rampup (None: off).
    G_reg_interval: int | None = None           # Lazy G regularisation interval (None: with the main loss).
    D_reg_interval: int | None = 16             # Lazy D regularisation interval (None: with the main loss).
    augment_p: float = 0                        # Initial augmentation probability.
    ada_target: float | None = None             # ADA target of E[sign(D(real))] (None: p stays fixed).
    ada_interval: int = 4                       # Steps between ADA adjustments.
    ada_kimg: float = 500                       # Thousands of images for p to move by 1.
    total_kimg: float = 25000                   # Length of the run, in thousands of images.
    kimg_per_tick: float = 4                    # Progress-line interval.
    image_snapshot_ticks: int | None = 50       # Ticks between image grids (None: never).
    network_snapshot_ticks: int | None = 50     # Ticks between network snapshots and states (None: never).
    resume_pkl: str | None = None               # Network pickle to fine-tune from (weights copied by name).
    resume_kimg: float = 0                      # Progress to start the counters at.
    cudnn_benchmark: bool = True                # torch.backends.cudnn.benchmark.
    resume_state: str | None = None             # training-state.pt to continue exactly (overrides resume_pkl).
    image_grid: list | None = None              # [width, height] of the image grids (None: fill ~7680x4320 px).

    @classmethod
    def from_dict(cls, d: dict) -> 'TrainingOptions':
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise TypeError(f'Unknown training options: {", ".join(unknown)}')
        return cls(**d)

#----------------------------------------------------------------------------
# Image grids.

def grid_shape(image_shape: list[int], image_grid: list | None = None, small: bool = False) -> tuple[int, int]:
    """(columns, rows) of a snapshot grid: about 7680x4320 pixels, 7..32 columns and 4..32 rows
    (published); with `small` (training on a CPU), about 1920x1080 pixels, 4..8 columns and rows."""
    if image_grid is not None:
        return int(image_grid[0]), int(image_grid[1])
    _c, h, w = image_shape
    if small:
        return int(np.clip(1920 // w, 4, 8)), int(np.clip(1080 // h, 4, 8))
    return int(np.clip(7680 // w, 7, 32)), int(np.clip(4320 // h, 4, 32))


def snapshot_grid(training_set, random_seed: int = 0, image_grid: list | None = None, small: bool = False
                  ) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """Pick the dataset items shown in `reals.png` (and whose labels condition the fakes).

    Without labels: a random sample (repeating when the dataset is small). With labels: one label
    per row (cycling through the sorted labels), random items of that label along the row.
    Returns ((gw, gh), images [gw*gh, C, H, W] uint8, labels [gw*gh, c_dim] float32)."""
    gw, gh = grid_shape(training_set.image_shape, image_grid, small=small)
    rnd = np.random.RandomState(random_seed)
    n = len(training_set)
    if not training_set.has_labels:
        order = rnd.permutation(n)
        indices = [int(order[i % n]) for i in range(gw * gh)]
    else:
        by_label: dict[tuple, list[int]] = {}
        for idx in range(n):
            key = tuple(np.asarray(training_set.get_details(idx).raw_label).ravel().tolist())
            by_label.setdefault(key, []).append(idx)
        keys = sorted(by_label)
        for key in keys:
            rnd.shuffle(by_label[key])
        used = {key: 0 for key in keys}
        indices = []
        for row in range(gh):
            key = keys[row % len(keys)]
            items = by_label[key]
            indices += [items[(used[key] + col) % len(items)] for col in range(gw)]
            used[key] += gw
    images, labels = zip(*[training_set[i] for i in indices])
    return (gw, gh), np.stack(images), np.stack(labels)


def grid_latents(num: int, z_dim: int, random_seed: int = 0) -> torch.Tensor:
    """The z [num, z_dim] of the fake grids: the same for every snapshot of a run (and after a resume)."""
    return torch.randn([num, z_dim], generator=torch.Generator().manual_seed(random_seed))


def save_image_grid(images: np.ndarray | torch.Tensor, path: str, drange: tuple[float, float],
                    grid_size: tuple[int, int]) -> None:
    """Tile images [gw*gh, C, H, W] (values in `drange`) into one PNG, written atomically."""
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    lo, hi = drange
    images = (images.astype(np.float32) - lo) * (255 / (hi - lo))
    images = np.rint(images).clip(0, 255).astype(np.uint8)
    gw, gh = grid_size
    _n, c, h, w = images.shape
    tiles = images.reshape(gh, gw, c, h, w).transpose(0, 3, 1, 4, 2).reshape(gh * h, gw * w, c)
    assert c in (1, 3), f'cannot write images with {c} channels'
    save_png(tiles, path)

#----------------------------------------------------------------------------
# Training phases, gradient synchronisation and the EMA of G.

@dataclasses.dataclass
class Phase:
    name: str                   # Loss phase: Gmain, Greg, Gboth, Dmain, Dreg or Dboth.
    module: torch.nn.Module     # Network the phase trains.
    opt: torch.optim.Optimizer  # Shared by the main and reg phases of one network.
    interval: int               # Runs on every interval-th step.
    seconds: float = 0.0        # Time spent since the last tick (CPU) ...
    events: list = dataclasses.field(default_factory=list)  # ... or CUDA event pairs.


def build_phases(prefix: str, module: torch.nn.Module, opt_kwargs: dict, reg_interval: int | None) -> list[Phase]:
    """The phases of one network. With lazy regularisation, Adam's learning rate and betas are
    adjusted so that a main step plus 1/interval of a reg step moves like one plain step
    (StyleGAN2 appendix B): lr *= c, beta ** c with c = interval / (interval + 1)."""
    opt_kwargs = dnnlib.EasyDict(copy.deepcopy(opt_kwargs))
    if 'betas' in opt_kwargs:
        opt_kwargs.betas = tuple(float(beta) for beta in opt_kwargs.betas)  # recent torch wants floats
    if reg_interval is None:
        opt = dnnlib.util.construct_class_by_name(params=module.parameters(), **opt_kwargs)
        return [Phase(prefix + 'both', module, opt, 1)]
    mb_ratio = reg_interval / (reg_interval + 1)
    opt_kwargs.lr = opt_kwargs.lr * mb_ratio
    opt_kwargs.betas = tuple(beta ** mb_ratio for beta in opt_kwargs.betas)
    opt = dnnlib.util.construct_class_by_name(params=module.parameters(), **opt_kwargs)
    return [Phase(prefix + 'main', module, opt, 1), Phase(prefix + 'reg', module, opt, reg_interval)]


def take_gradients(module: torch.nn.Module, total: dict | None) -> dict:
    """Move the gradients of one round out of `module` and add them to `total` ({param: grad}).

    Summing whole rounds (rather than letting autograd add every backward pass into .grad) adds the
    rounds of one process in the order an all-reduce adds the ranks, so that a batch split into rounds
    and the same batch split over processes give the same sums."""
    total = {} if total is None else total
    for param in module.parameters():
        if param.grad is not None:
            total[param] = param.grad if param not in total else total[param] + param.grad
            param.grad = None
    return total


def sync_gradients(module: torch.nn.Module, num_gpus: int, num_slots: int) -> None:
    """Average the gradients of `module` over the ranks and rounds: one all-reduce of the flattened
    gradients, divided by the number of slots (ranks x rounds; the loss of each slot is a mean over
    its images). Non-finite values become 0 / +-1e5, as published."""
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    if num_gpus > 1:
        torch.distributed.all_reduce(flat)
    if num_slots > 1:
        flat /= num_slots
    misc.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
    for param, grad in zip(params, flat.split([p.numel() for p in params])):
        param.grad = grad.reshape(param.shape)


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, batch_size: int, cur_nimg: int, ema_kimg: float,
               ema_rampup: float | None) -> float:
    """G_ema <- lerp(G, G_ema, beta): an exponential average with a half-life of `ema_kimg` thousand
    images (ramped up to cur_nimg * ema_rampup early in a run); buffers are copied. Returns beta."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    ema_beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8))
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, ema_beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)
    return ema_beta

#----------------------------------------------------------------------------
# Random states (saved with the training state so that a resumed run draws the same numbers).

def _numpy_state_to_dict(state: tuple) -> dict:
    name, keys, pos, has_gauss, cached = state
    return {'name': name, 'keys': torch.from_numpy(np.asarray(keys, dtype=np.int64)), 'pos': int(pos),
            'has_gauss': int(has_gauss), 'cached_gaussian': float(cached)}


def _numpy_state_from_dict(d: dict) -> tuple:
    return (d['name'], d['keys'].numpy().astype(np.uint32), d['pos'], d['has_gauss'], d['cached_gaussian'])


def capture_rng_state(device: torch.device) -> dict:
    """This process's global random states: torch (CPU and the CUDA device), numpy, python."""
    state = {'torch': torch.get_rng_state(), 'numpy': _numpy_state_to_dict(np.random.get_state()),
             'python': random.getstate()}
    if device.type == 'cuda':
        state['cuda'] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state['torch'])
    np.random.set_state(_numpy_state_from_dict(state['numpy']))
    random.setstate(_to_tuple(state['python']))
    if device.type == 'cuda' and 'cuda' in state:
        torch.cuda.set_rng_state(state['cuda'], device)


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


class BatchLatents:
    """The latents z and labels c of every step, drawn for the whole batch from streams shared by all
    ranks (a run's random numbers do not depend on how it is split into processes)."""

    def __init__(self, training_set, z_dim: int, random_seed: int):
        self.training_set = training_set
        self.z_dim = z_dim
        self.z_gen = torch.Generator().manual_seed(random_seed)
        self.c_rnd = np.random.RandomState(random_seed)

    def draw(self, num_phases: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """z [num_phases, batch_size, z_dim], c [num_phases, batch_size, c_dim] (CPU float32)."""
        z = torch.randn([num_phases, batch_size, self.z_dim], generator=self.z_gen)
        c_dim = self.training_set.label_dim
        if c_dim == 0:
            return z, torch.zeros([num_phases, batch_size, 0])
        idx = self.c_rnd.randint(len(self.training_set), size=num_phases * batch_size)
        c = np.stack([self.training_set.get_label(int(i)) for i in idx]).reshape(num_phases, batch_size, c_dim)
        return z, torch.from_numpy(c)

    def state_dict(self) -> dict:
        return {'z_gen': self.z_gen.get_state(), 'c_rnd': _numpy_state_to_dict(self.c_rnd.get_state())}

    def load_state_dict(self, state: dict) -> None:
        self.z_gen.set_state(state['z_gen'])
        self.c_rnd.set_state(_numpy_state_from_dict(state['c_rnd']))

#----------------------------------------------------------------------------
# Progress, logs and timings.

@dataclasses.dataclass
class Progress:
    cur_nimg: int = 0           # Images shown to D so far (the run's clock).
    cur_tick: int = 0
    batch_idx: int = 0          # Steps taken by this run (drives the lazy regularisation intervals).
    tick_start_nimg: int = 0
    data_pos: int = 0           # Items of the data stream consumed (all ranks together).
    elapsed: float = 0.0        # Training seconds before the current process started.


def _cpu_mem_gb() -> float:
    """Resident memory of this process (GiB)."""
    import psutil
    return psutil.Process().memory_info().rss / 2**30


class RunLog:
    """`stats.jsonl` and TensorBoard events of a run (rank 0; a no-op elsewhere).

    On resume the statistics file is cut back to its size at the saved state (ticks after it belong
    to work that is redone), and TensorBoard hides events from the redone steps (purge_step)."""

    def __init__(self, run_dir: str | None, truncate_stats_to: int | None = None, purge_step: int | None = None):
        self.stats_jsonl = None
        self.tfevents = None
        if run_dir is None:
            return
        path = os.path.join(run_dir, 'stats.jsonl')
        if truncate_stats_to is None:
            self.stats_jsonl = open(path, 'wt', encoding='utf-8')
        else:
            if os.path.exists(path):
                os.truncate(path, min(truncate_stats_to, os.path.getsize(path)))
            self.stats_jsonl = open(path, 'at', encoding='utf-8')
        try:
            from torch.utils import tensorboard
            self.tfevents = tensorboard.SummaryWriter(run_dir, purge_step=purge_step)
        except ImportError as e:
            log.warning('Skipping TensorBoard export: %s', e)

    def write(self, stats: dict, metrics: dict, cur_nimg: int, timestamp: float, walltime: float) -> None:
        if self.stats_jsonl is not None:
            self.stats_jsonl.write(json.dumps(dict(stats, timestamp=timestamp)) + '\n')
            self.stats_jsonl.flush()
        if self.tfevents is not None:
            step = int(cur_nimg / 1e3)
            for name, value in stats.items():
                self.tfevents.add_scalar(name, value.mean, global_step=step, walltime=walltime)
            for name, value in metrics.items():
                self.tfevents.add_scalar(f'Metrics/{name}', value, global_step=step, walltime=walltime)
            self.tfevents.flush()

    def stats_size(self) -> int:
        return os.fstat(self.stats_jsonl.fileno()).st_size if self.stats_jsonl is not None else 0

    def close(self) -> None:
        if self.stats_jsonl is not None:
            self.stats_jsonl.close()
        if self.tfevents is not None:
            self.tfevents.close()


class PhaseTimer:
    """Wall time of each phase: CUDA events on a GPU (no synchronisation in the loop), else the clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == 'cuda'

    def start(self, phase: Phase) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream())
            return event
        return time.perf_counter()

    def stop(self, phase: Phase, token: Any) -> None:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record(torch.cuda.current_stream())
            phase.events.append((token, end))
        else:
            phase.seconds += time.perf_counter() - token

    def report(self, phases: list[Phase]) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        for phase in phases:
            seconds = phase.seconds + sum(a.elapsed_time(b) / 1000 for a, b in phase.events)
            training_stats.report0('Timing/' + phase.name, seconds)
            phase.seconds, phase.events = 0.0, []

#----------------------------------------------------------------------------
# Checking that a network pickle fits the dataset.

def check_resume_compatible(resume_data: dict, training_set: Any, source: str) -> None:
    """UserError when the networks in `resume_data` cannot be fine-tuned on `training_set` (anything with
    the `resolution`, `num_channels` and `label_dim` of the dataset as the loop sees it)."""
    G = resume_data.get('G_ema') if resume_data.get('G_ema') is not None else resume_data.get('G')
    if G is None:
        raise dnnlib.UserError(f'{source} holds no generator to resume from')
    res = getattr(G, 'img_resolution', None)
    if res is not None and res != training_set.resolution:
        raise dnnlib.UserError(f'{source} is a {res}x{res} network but the dataset is '
                               f'{training_set.resolution}x{training_set.resolution}; make the dataset at {res}x{res} '
                               f'with dataset_tool.py --resolution={res}x{res}')
    channels = getattr(G, 'img_channels', None)
    if channels is not None and channels != training_set.num_channels:
        raise dnnlib.UserError(f'{source} makes images with {channels} channels but the dataset has '
                               f'{training_set.num_channels}')
    c_dim = getattr(G, 'c_dim', None)
    if c_dim is not None and c_dim != training_set.label_dim:
        raise dnnlib.UserError(f'{source} is conditioned on {c_dim} label dimensions but the training set has '
                               f'{training_set.label_dim} (check --cond)')

def copy_resume_weights(resume_data: dict, networks: dict[str, torch.nn.Module], source: str) -> None:
    """Copy parameters and buffers by name from the networks of a pickle into `networks` ({'G': ..., ...});
    names the source lacks keep their values (published behaviour), a shape that differs is a UserError."""
    for name, module in networks.items():
        if resume_data.get(name) is None:
            log.warning('%s has no %s; keeping the fresh initialisation', source, name)
            continue
        src = resume_data[name]
        if name in ('G', 'D', 'G_ema') and isinstance(src, torch.nn.Module):
            # Names missing from the source keep their values (a changed --map-depth, say), but a pickle
            # that shares few names is another architecture: fine-tuning it would train from scratch.
            have = {n for n, _ in misc.named_params_and_buffers(src)}
            want = [n for n, _ in misc.named_params_and_buffers(module)]
            shared = sum(n in have for n in want)
            if want and shared < len(want) / 2:
                raise dnnlib.UserError(f'{source}: its {name} ({type(src).__module__}) shares only {shared} of '
                                       f'{len(want)} tensors with the {type(module).__module__} network built from '
                                       f'the options: pass the options it was trained with (--cfg, --cbase, '
                                       f'--cmax, --map-depth)')
        try:
            misc.copy_params_and_buffers(src, module, require_all=False)
        except ValueError as e:
            raise dnnlib.UserError(f'{source}: its {name} does not fit the network built from the options '
                                   f'(--cfg, --cbase, --cmax, --map-depth): {e}') from None

def read_training_state(path: str, mmap: bool = False) -> dict:
    """The dict of a `training-state.pt`, checked (format and version). `UserError` when it is missing,
    damaged (a truncated copy, a disk error) or not one of ours."""
    try:
        state = torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise dnnlib.UserError(f'Training state not found: {path}') from None
    except Exception as e:
        raise dnnlib.UserError(f'Cannot read the training state {path} ({str(e).splitlines()[0] if str(e) else e!r}): '
                               f'it is damaged; continue from the run\'s last snapshot instead, as a new run with '
                               f'--resume=<network-snapshot-*.pkl>') from None
    if not isinstance(state, dict) or state.get('format') != STATE_FORMAT or 'progress' not in state:
        raise dnnlib.UserError(f'{path} is not a training state written by this training loop')
    if state['version'] > STATE_VERSION:
        raise dnnlib.UserError(f'{path} was written by a newer version of this code (format {state["version"]})')
    return state

#----------------------------------------------------------------------------
# The trainer.

class Trainer:
    """One process of a training run: set-up in `__init__`, then `run()`."""

    def __init__(self, opts: TrainingOptions, rank: int = 0, device: torch.device | None = None,
                 abort_fn: Callable[[], bool] | None = None,
                 progress_fn: Callable[[int, float], None] | None = None):
        self.opts = opts
        self.rank = rank
        self.num_gpus = opts.num_gpus
        self.device = device if device is not None else distributed.device_for_rank()
        self.abort_fn = abort_fn
        self.progress_fn = progress_fn
        self.run_dir = opts.run_dir if rank == 0 else None
        self.setup_start_time = self.start_time = time.time()
        assert opts.batch_size % (opts.batch_gpu * opts.num_gpus) == 0
        self.rounds = opts.batch_size // (opts.batch_gpu * opts.num_gpus)

        self._setup_torch()
        state = self._load_state() if opts.resume_state is not None else None
        self._build_dataset()
        self._build_networks()
        if state is None and opts.resume_pkl is not None and rank == 0:
            self._copy_from_pickle(opts.resume_pkl)
        if rank == 0:
            self._print_summaries()
        self._build_augment_pipe()
        self._build_loss_and_phases()
        self.latents = BatchLatents(self.training_set, self.G.z_dim, opts.random_seed)
        self.progress = Progress(cur_nimg=int(opts.resume_kimg * 1000), tick_start_nimg=int(opts.resume_kimg * 1000))
        if state is not None:
            self._restore(state)
        elif self.num_gpus > 1:
            for module in (self.G, self.D, self.G_ema, self.augment_pipe):
                if module is not None:
                    for tensor in misc.params_and_buffers(module):
                        torch.distributed.broadcast(tensor, src=0)
        self._build_data_iterator()
        self.timer = PhaseTimer(self.device)
        self.stats_collector = training_stats.Collector(regex='.*')
        self.stats_metrics: dict[str, float] = {}
        self.grid_size, self.grid_z, self.grid_c = None, None, None
        if rank == 0:
            self._export_grids(write_init=state is None)
            self.runlog = RunLog(self.run_dir, truncate_stats_to=state['stats_jsonl_size'] if state else None,
                                 purge_step=int(self.progress.cur_nimg / 1e3) + 1 if state else None)
            if state is not None and 'metric_jsonl_sizes' in state:
                _drop_rewritten_metric_lines(self.run_dir, opts.metrics, state['metric_jsonl_sizes'],
                                             self.progress.cur_nimg // 1000,
                                             _next_snapshot_nimg(opts, self.progress))
            if state is not None:  # under the run lock: nothing else writes here
                dnnlib.util.remove_stale_temporaries(self.run_dir)  # (each logged)
        else:
            self.runlog = RunLog(None)

    # Set-up.

    def _setup_torch(self) -> None:
        seed = self.opts.random_seed * self.num_gpus + self.rank
        np.random.seed(seed)
        torch.manual_seed(seed)
        random.seed(seed)
        torch.backends.cudnn.benchmark = self.opts.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = False  # exact float32 matmuls and convolutions
        torch.backends.cudnn.allow_tf32 = False
        conv2d_gradfix.enabled = True                   # double backward through convolutions (R1, PL)
        grid_sample_gradfix.enabled = True              # ... and through the augmentation's grid_sample
        if self.rank == 0 and self.device.type != 'cuda':
            log.info('CUDA is not available: training on the CPU, in float32 (slow; fine for tiny runs).')

    def _load_state(self) -> dict:
        path = self.opts.resume_state
        state = read_training_state(path)
        if state['num_gpus'] != self.num_gpus:
            raise dnnlib.UserError(f'{path} was written by a run on {state["num_gpus"]} processes; resume it with '
                                   f'--gpus={state["num_gpus"]}')
        return state

    def _build_dataset(self) -> None:
        opts = self.opts
        self.training_set = dnnlib.util.construct_class_by_name(**opts.training_set_kwargs)
        if self.rank == 0:
            log.info('Training set: %d images, shape %s, label shape %s', len(self.training_set),
                     self.training_set.image_shape, self.training_set.label_shape)

    def _build_networks(self) -> None:
        opts = self.opts
        common = dict(c_dim=self.training_set.label_dim, img_resolution=self.training_set.resolution,
                      img_channels=self.training_set.num_channels)
        self.G = dnnlib.util.construct_class_by_name(**opts.G_kwargs, **common).train().requires_grad_(False)
        self.D = dnnlib.util.construct_class_by_name(**opts.D_kwargs, **common).train().requires_grad_(False)
        self.G = self.G.to(self.device)
        self.D = self.D.to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()

    def _copy_from_pickle(self, resume_pkl: str) -> None:
        """Fine-tuning: copy parameters and buffers by name from a (published) network pickle."""
        import legacy
        log.info('Resuming from "%s"', resume_pkl)
        resume_data = legacy.load_network_pkl(resume_pkl)
        check_resume_compatible(resume_data, self.training_set, resume_pkl)
        copy_resume_weights(resume_data, {'G': self.G, 'D': self.D, 'G_ema': self.G_ema}, resume_pkl)

    def _print_summaries(self) -> None:
        z = torch.zeros([self.opts.batch_gpu, self.G.z_dim], device=self.device)
        c = torch.zeros([self.opts.batch_gpu, self.G.c_dim], device=self.device)
        img = misc.print_module_summary(self.G, [z, c])
        misc.print_module_summary(self.D, [img, c])

    def _build_augment_pipe(self) -> None:
        opts = self.opts
        self.augment_pipe = None
        self.ada = None
        if opts.augment_kwargs is None or (opts.augment_p <= 0 and opts.ada_target is None):
            return
        from training import augment
        self.augment_pipe = dnnlib.util.construct_class_by_name(**opts.augment_kwargs)
        self.augment_pipe = self.augment_pipe.train().requires_grad_(False).to(self.device)
        self.augment_pipe.p.copy_(torch.as_tensor(opts.augment_p))
        if opts.ada_target is not None:
            self.ada = augment.AdaController(self.augment_pipe, target=opts.ada_target, interval=opts.ada_interval,
                                             kimg=opts.ada_kimg)

    def _build_loss_and_phases(self) -> None:
        opts = self.opts
        observer = self.ada.observe if self.ada is not None else None
        self.loss = dnnlib.util.construct_class_by_name(device=self.device, G=self.G, D=self.D,
                                                        augment_pipe=self.augment_pipe,
                                                        real_logits_observer=observer, **opts.loss_kwargs)
        self.phases = (build_phases('G', self.G, opts.G_opt_kwargs, opts.G_reg_interval)
                       + build_phases('D', self.D, opts.D_opt_kwargs, opts.D_reg_interval))
        self.optimizers = {'G': self.phases[0].opt, 'D': self.phases[-1].opt}

    def _build_data_iterator(self) -> None:
        opts = self.opts
        sampler = misc.InfiniteSampler(dataset=self.training_set, rank=self.rank, num_replicas=self.num_gpus,
                                       seed=opts.random_seed, start=self.progress.data_pos)
        loader_kwargs = dict(opts.data_loader_kwargs)
        cpus = dnnlib.util.available_cpus()
        if loader_kwargs.get('num_workers', 0) > cpus:  # the published default of 3 on a 2-core laptop
            log.info('Loading data with %d worker processes, one per CPU (--workers=%d asks for more)', cpus,
                     loader_kwargs['num_workers'])
            loader_kwargs['num_workers'] = cpus  # the batches do not depend on it: the sampler orders them
        if loader_kwargs.get('num_workers', 0) == 0:
            loader_kwargs.pop('prefetch_factor', None)
        if self.device.type != 'cuda':
            loader_kwargs['pin_memory'] = False
        # Its own generator: making the iterator must not draw from the global RNG (restored on resume).
        loader = torch.utils.data.DataLoader(dataset=self.training_set, sampler=sampler,
                                             batch_size=opts.batch_size // self.num_gpus,
                                             generator=torch.Generator().manual_seed(opts.random_seed), **loader_kwargs)
        self.data_iter = iter(loader)

    def _export_grids(self, write_init: bool) -> None:
        opts = self.opts
        self.grid_size, images, labels = snapshot_grid(self.training_set, opts.random_seed, opts.image_grid,
                                                           small=self.device.type != 'cuda')
        self.grid_z = grid_latents(len(images), self.G.z_dim, opts.random_seed)
        self.grid_c = torch.from_numpy(labels)
        if self.run_dir is None:
            return
        if write_init or not os.path.exists(os.path.join(self.run_dir, 'reals.png')):
            save_image_grid(images, os.path.join(self.run_dir, 'reals.png'), drange=(0, 255), grid_size=self.grid_size)
        if write_init or not os.path.exists(os.path.join(self.run_dir, 'fakes_init.png')):
            self._save_fakes('fakes_init.png')

    @torch.no_grad()
    def render_grid(self) -> torch.Tensor:
        """G_ema's images of the grid latents (noise_mode='const'): [gw*gh, C, H, W] on the CPU."""
        out = []
        for z, c in zip(self.grid_z.split(self.opts.batch_gpu), self.grid_c.split(self.opts.batch_gpu)):
            out.append(self.G_ema(z=z.to(self.device), c=c.to(self.device), noise_mode='const').cpu())
        return torch.cat(out)

    def _save_fakes(self, name: str) -> None:
        save_image_grid(self.render_grid(), os.path.join(self.run_dir, name), drange=(-1, 1),
                        grid_size=self.grid_size)

    # The training state (everything needed to continue exactly).

    def _rank_state(self) -> dict:
        buffers = {name: {k: v.detach().cpu().clone() for k, v in module.named_buffers()}
                   for name, module in (('G', self.G), ('D', self.D), ('G_ema', self.G_ema))}
        return {'rng': capture_rng_state(self.device), 'loss': self.loss.state_dict(),
                'ada': self.ada.state_dict() if self.ada is not None else None, 'buffers': buffers}

    def save_state(self, snapshot_pkl: str | None) -> None:
        """Write `training-state.pt` atomically (collective: every rank must call it)."""
        rank_state = self._rank_state()
        if self.num_gpus > 1:
            gathered = [None] * self.num_gpus
            torch.distributed.all_gather_object(gathered, rank_state)
        else:
            gathered = [rank_state]
        if self.rank != 0:
            return
        state = {
            'format': STATE_FORMAT, 'version': STATE_VERSION, 'num_gpus': self.num_gpus,
            'progress': dataclasses.asdict(self.progress),
            'G': self.G.state_dict(), 'D': self.D.state_dict(), 'G_ema': self.G_ema.state_dict(),
            'augment_pipe': self.augment_pipe.state_dict() if self.augment_pipe is not None else None,
            'optimizers': {name: opt.state_dict() for name, opt in self.optimizers.items()},
            'latents': self.latents.state_dict(),
            'ranks': gathered,
            'snapshot_pkl': snapshot_pkl,
            'stats_jsonl_size': self.runlog.stats_size(),
            # Metric lines are appended before the state is saved: a resume cuts what a crash left after it.
            'metric_jsonl_sizes': {name: os.path.getsize(os.path.join(self.run_dir, name))
                                   for name in os.listdir(self.run_dir) if _METRIC_FILE.fullmatch(name)},
        }
        state = _to_cpu(state)
        with dnnlib.util.atomic_write(os.path.join(self.run_dir, STATE_FILE)) as f:
            torch.save(state, f)

    def _restore(self, state: dict) -> None:
        self.G.load_state_dict(state['G'])
        self.D.load_state_dict(state['D'])
        self.G_ema.load_state_dict(state['G_ema'])
        if (state['augment_pipe'] is None) != (self.augment_pipe is None):
            raise dnnlib.UserError(f'{self.opts.resume_state}: the augmentation settings differ from the run\'s')
        if self.augment_pipe is not None:
            self.augment_pipe.load_state_dict(state['augment_pipe'])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state['optimizers'][name])
        self.latents.load_state_dict(state['latents'])
        mine = state['ranks'][self.rank]
        for name, module in (('G', self.G), ('D', self.D), ('G_ema', self.G_ema)):
            own = dict(module.named_buffers())
            for key, value in mine['buffers'][name].items():
                own[key].copy_(value)
        self.loss.load_state_dict(mine['loss'])
        if self.ada is not None:
            self.ada.load_state_dict(mine['ada'])
        restore_rng_state(mine['rng'], self.device)
        self.progress = Progress(**state['progress'])
        self.start_time = time.time() - self.progress.elapsed
        if self.rank == 0:
            log.info('Continuing the run from %s: kimg %.1f, tick %d', self.opts.resume_state,
                     self.progress.cur_nimg / 1e3, self.progress.cur_tick)

    # The loop.

    def run(self) -> None:
        opts = self.opts
        p = self.progress
        total_nimg = opts.total_kimg * 1000
        if p.cur_nimg >= total_nimg:
            log.info('The run has already reached %g kimg; nothing to do (raise --kimg to train longer).',
                     opts.total_kimg)
            return
        log.info('Training for %g kimg...', opts.total_kimg)
        if self.progress_fn is not None:
            self.progress_fn(p.cur_nimg // 1000, opts.total_kimg)
        self.tick_start_time = time.time()
        self.maintenance_time = self.tick_start_time - self.setup_start_time
        while True:
            self.train_step()
            done = p.cur_nimg >= total_nimg
            if not done and p.cur_tick != 0 and p.cur_nimg < p.tick_start_nimg + opts.kimg_per_tick * 1000:
                continue
            if self.end_tick(done):
                break
        self.runlog.close()
        log.info('Exiting...')

    def train_step(self) -> None:
        """One step: every phase due at this step over the whole batch, then the EMA and ADA."""
        opts = self.opts
        p = self.progress
        with torch.autograd.profiler.record_function('data_fetch'):
            real_img, real_c = next(self.data_iter)
            real_img = real_img.to(self.device).to(torch.float32) / 127.5 - 1
            real_c = real_c.to(self.device)
            gen_z, gen_c = self.latents.draw(len(self.phases), opts.batch_size)
        num_slots = self.num_gpus * self.rounds
        for phase_idx, phase in enumerate(self.phases):
            if p.batch_idx % phase.interval != 0:
                continue
            token = self.timer.start(phase)
            phase.opt.zero_grad(set_to_none=True)
            phase.module.requires_grad_(True)
            grads = None
            for k in range(self.rounds):
                slot = self.rank + self.num_gpus * k
                self.loss.accumulate_gradients(
                    phase=phase.name, real_img=real_img[k::self.rounds], real_c=real_c[k::self.rounds],
                    gen_z=gen_z[phase_idx, slot::num_slots].to(self.device),
                    gen_c=gen_c[phase_idx, slot::num_slots].to(self.device),
                    gain=phase.interval, cur_nimg=p.cur_nimg)
                if self.rounds > 1:
                    grads = take_gradients(phase.module, grads)
            for param, grad in (grads or {}).items():
                param.grad = grad
            phase.module.requires_grad_(False)
            with torch.autograd.profiler.record_function(phase.name + '_opt'):
                sync_gradients(phase.module, self.num_gpus, num_slots)
                phase.opt.step()
            self.timer.stop(phase, token)

        with torch.autograd.profiler.record_function('Gema'):
            update_ema(self.G_ema, self.G, opts.batch_size, p.cur_nimg, opts.ema_kimg, opts.ema_rampup)
        p.cur_nimg += opts.batch_size
        p.data_pos += opts.batch_size
        p.batch_idx += 1
        if self.ada is not None:
            self.ada.step(opts.batch_size)

    def end_tick(self, done: bool) -> bool:
        """Progress line, snapshots, metrics, statistics and the training state. Returns True to stop."""
        opts = self.opts
        p = self.progress
        tick_end_time = time.time()
        total_sec = tick_end_time - self.start_time
        tick_sec = tick_end_time - self.tick_start_time
        sec_per_kimg = tick_sec / max(p.cur_nimg - p.tick_start_nimg, 1) * 1e3
        report0 = training_stats.report0
        gpu_mem = gpu_reserved = 0.0
        if self.device.type == 'cuda':
            gpu_mem = torch.cuda.max_memory_allocated(self.device) / 2**30
            gpu_reserved = torch.cuda.max_memory_reserved(self.device) / 2**30
            torch.cuda.reset_peak_memory_stats()
        augment_p = float(self.augment_pipe.p.cpu()) if self.augment_pipe is not None else 0.0
        fields = [
            f"tick {report0('Progress/tick', p.cur_tick):<5d}",
            f"kimg {report0('Progress/kimg', p.cur_nimg / 1e3):<8.1f}",
            f"time {dnnlib.util.format_time(report0('Timing/total_sec', total_sec)):<12s}",
            f"sec/tick {report0('Timing/sec_per_tick', tick_sec):<7.1f}",
            f"sec/kimg {report0('Timing/sec_per_kimg', sec_per_kimg):<7.2f}",
            f"maintenance {report0('Timing/maintenance_sec', self.maintenance_time):<6.1f}",
            f"cpumem {report0('Resources/cpu_mem_gb', _cpu_mem_gb()):<6.2f}",
            f"gpumem {report0('Resources/peak_gpu_mem_gb', gpu_mem):<6.2f}",
            f"reserved {report0('Resources/peak_gpu_mem_reserved_gb', gpu_reserved):<6.2f}",
            f"augment {report0('Progress/augment', augment_p):.3f}",
        ]
        report0('Timing/total_hours', total_sec / 3600)
        report0('Timing/total_days', total_sec / 86400)
        log.info(' '.join(fields))

        if not done and self.abort_fn is not None and self.abort_fn():
            done = True
            log.info('Aborting...')

        # Snapshots.
        if self.rank == 0 and opts.image_snapshot_ticks and (done or p.cur_tick % opts.image_snapshot_ticks == 0):
            self._save_fakes(f'fakes{p.cur_nimg // 1000:06d}.png')
        snapshot_pkl = snapshot = None
        if opts.network_snapshot_ticks and (done or p.cur_tick % opts.network_snapshot_ticks == 0):
            snapshot_pkl, snapshot = self._save_snapshot()
            self._evaluate_metrics(snapshot, snapshot_pkl)

        # Statistics.
        self.timer.report(self.phases)
        self.stats_collector.update()
        stats = self.stats_collector.as_dict()
        timestamp = time.time()
        self.runlog.write(stats, self.stats_metrics, p.cur_nimg, timestamp, timestamp - self.start_time)
        if self.progress_fn is not None:
            self.progress_fn(p.cur_nimg // 1000, opts.total_kimg)

        # Next tick (the state is saved as of its start).
        p.cur_tick += 1
        p.tick_start_nimg = p.cur_nimg
        p.elapsed = time.time() - self.start_time
        if snapshot is not None:
            self.save_state(snapshot_pkl)
        self.tick_start_time = time.time()
        self.maintenance_time = self.tick_start_time - tick_end_time
        return done

    def _save_snapshot(self) -> tuple[str | None, dict]:
        """The published snapshot dict (CPU copies, eval mode, no gradients); rank 0 writes it."""
        snapshot = {'training_set_kwargs': dict(self.opts.training_set_kwargs)}
        for name, module in (('G', self.G), ('D', self.D), ('G_ema', self.G_ema), ('augment_pipe', self.augment_pipe)):
            if module is not None:
                if self.num_gpus > 1:
                    misc.check_ddp_consistency(module, ignore_regex=r'.*\.[^.]+_(avg|ema)')
                module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
            snapshot[name] = module
        snapshot_pkl = None
        if self.rank == 0:
            snapshot_pkl = os.path.join(self.run_dir, f'network-snapshot-{self.progress.cur_nimg // 1000:06d}.pkl')
            with dnnlib.util.atomic_write(snapshot_pkl) as f:
                pickle.dump(snapshot, f)
        return snapshot_pkl, snapshot

    def _evaluate_metrics(self, snapshot: dict, snapshot_pkl: str | None) -> None:
        if not self.opts.metrics:
            return
        from metrics import metric_main
        if self.rank == 0:
            log.info('Evaluating metrics...')
        for metric in self.opts.metrics:
            result = metric_main.calc_metric(metric=metric, G=snapshot['G_ema'],
                                             dataset_kwargs=self.opts.training_set_kwargs,
                                             num_gpus=self.num_gpus, rank=self.rank, device=self.device,
                                             **self.opts.metric_kwargs)
            if self.rank == 0:
                metric_main.report_metric(result, run_dir=self.run_dir, snapshot_pkl=snapshot_pkl)
            self.stats_metrics.update(result.results)


_METRIC_FILE = re.compile(r'metric-[\w.-]+\.jsonl')
_SNAPSHOT_NAME = re.compile(r'network-snapshot-(\d+)\.pkl')


def _next_snapshot_nimg(opts: TrainingOptions, progress: Progress) -> int | None:
    """cur_nimg of the first network snapshot a run continued from `progress` writes (the tick and
    snapshot rules of `Trainer.run` and `end_tick`), or None when it writes none."""
    if not opts.network_snapshot_ticks:
        return None
    nimg, tick, tick_start = progress.cur_nimg, progress.cur_tick, progress.tick_start_nimg
    total_nimg, batch = opts.total_kimg * 1000, opts.batch_size
    if nimg >= total_nimg or batch <= 0:
        return None
    while True:  # a tick a pass: it ends at its first step that reaches its length or the total (tick 0: one step)
        steps = 1
        if tick != 0:
            target = min(tick_start + opts.kimg_per_tick * 1000, total_nimg)
            steps = max(1, math.ceil((target - nimg) / batch))
            while steps > 1 and nimg + (steps - 1) * batch >= target:
                steps -= 1
            while nimg + steps * batch < target:
                steps += 1
        nimg += steps * batch
        if nimg >= total_nimg or tick % opts.network_snapshot_ticks == 0:
            return nimg
        tick, tick_start = tick + 1, nimg


def _drop_rewritten_metric_lines(run_dir: str, metrics: list[str], sizes: dict[str, int], resume_kimg: int,
                                 next_snapshot_nimg: int | None) -> None:
    """On continuing a run from its state at `resume_kimg` (whole kimg), drop from the files of the
    run's `metrics` the lines of snapshots the continued run writes again (and evaluates again): a crash
    after a snapshot's metric line, before its state, would otherwise leave that line twice. Such a
    line names (`snapshot_pkl`) a snapshot of this folder, `network-snapshot-<kimg>.pkl`, with kimg >
    resume_kimg; or kimg == resume_kimg when the continued run's next snapshot (`next_snapshot_nimg`)
    has that name again (ticks under 1 kimg) and the line came after the state (beyond its size in
    `sizes`). Every other line is kept, wherever it is in the file (calc_metrics.py's lines for the
    snapshots that stay), and so are the files of other metrics (the continued run adds nothing to
    them). A line after the state that is not JSON (a write cut by the crash) goes too."""
    from metrics import metric_main
    same_name_again = next_snapshot_nimg is not None and next_snapshot_nimg // 1000 == resume_kimg
    for metric in metrics:
        name = f'metric-{metric}.jsonl'
        path = os.path.join(run_dir, name)
        if not _METRIC_FILE.fullmatch(name) or not os.path.isfile(path):
            continue
        with metric_main.metric_files_lock(run_dir):  # calc_metrics.py's appends wait: none is lost
            _drop_lines_of(run_dir, name, int(sizes.get(name, 0)), resume_kimg, same_name_again)


def _drop_lines_of(run_dir: str, name: str, known: int, resume_kimg: int, same_name_again: bool) -> None:
    """`_drop_rewritten_metric_lines` for the file `name`, `known` bytes of which were there at the state."""
    path, real_dir = os.path.join(run_dir, name), os.path.realpath(run_dir)
    with open(path, 'rb') as f:
        data = f.read()
    known = min(known, len(data))
    kept, dropped, offset = [], 0, 0
    for line in data.splitlines(keepends=True):
        after_state = offset >= known
        offset += len(line)
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            if after_state and line.strip():
                dropped += 1
            else:
                kept.append(line)
            continue
        snapshot = record.get('snapshot_pkl')
        m = _SNAPSHOT_NAME.fullmatch(os.path.basename(snapshot)) if isinstance(snapshot, str) else None
        if m is not None and os.path.realpath(os.path.join(run_dir, os.path.dirname(snapshot))) == real_dir:
            kimg = int(m.group(1))
            if kimg > resume_kimg or (kimg == resume_kimg and same_name_again and after_state):
                dropped += 1
                continue
        kept.append(line)
    if not dropped:
        return
    if kept and not kept[-1].endswith(b'\n'):
        kept[-1] += b'\n'
    with dnnlib.util.atomic_write(path, 'wb', 'metric file') as f:
        f.write(b''.join(kept))
    log.info('Removed %d line(s) of %s for snapshots the continued run writes again', dropped, name)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj

#----------------------------------------------------------------------------

def training_loop(rank: int = 0, abort_fn: Callable[[], bool] | None = None,
                  progress_fn: Callable[[int, float], None] | None = None, device: torch.device | None = None,
                  **options) -> None:
    """Run one process of a training run; `options` are the fields of `TrainingOptions` (the keys of
    training_options.json). Under torch.distributed (num_gpus > 1) the process group must be
    initialised and every rank must call this with the same options."""
    opts = TrainingOptions.from_dict(options)
    device = device if device is not None else distributed.device_for_rank()
    # On a CPU, the fused C++ kernel runs the passes that need no gradients (G in the D phases, the
    # image grids); everything that is differentiated keeps the reference ops.
    with cpu_kernels.kernels_enabled(device.type == 'cpu'):
        Trainer(opts, rank=rank, device=device, abort_fn=abort_fn, progress_fn=progress_fn).run()

#----------------------------------------------------------------------------

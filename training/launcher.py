"""From train.py's options to training processes: the config of a new run (`build_config`), the
checks before it starts, run folders, continuing a run in its folder (`continuation_config`), and
launching one process, `num_gpus` local processes or a torchrun rank (`launch`).

`train.py` is the command line over these; they raise `dnnlib.UserError` for a user's mistake.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time
import types
from typing import Any, Iterator

import torch

import dnnlib
from torch_utils import distributed, training_stats

log = logging.getLogger(__name__)

CONFIGS = ('stylegan3-t', 'stylegan3-r', 'stylegan2')
# Options a continued run may take anew (everything else comes from its training_options.json).
CONTINUE_OPTIONS = ('resume', 'kimg', 'workers', 'dry_run', 'inception', 'vgg16')
# Characters that cannot be in a folder name (on some system): --desc becomes part of the run folder's name.
BAD_DESC_CHARS = '/\\:*?"<>|'

#----------------------------------------------------------------------------
# The dataset and the options of a new run.

def open_dataset(path: str, use_labels: bool = True) -> tuple[dnnlib.EasyDict, str, Any]:
    """Dataset kwargs for training_options.json, its name and the dataset object (UserError on bad data)."""
    kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=path, use_labels=use_labels,
                             max_size=None, xflip=False)
    dataset = dnnlib.util.construct_class_by_name(**kwargs)
    kwargs.resolution = dataset.resolution
    kwargs.use_labels = dataset.has_labels
    kwargs.max_size = len(dataset)
    return kwargs, dataset.name, dataset


def parse_metrics(value: str | list) -> list[str]:
    if isinstance(value, list):
        return value
    if value is None or value.strip().lower() in ('', 'none'):
        return []
    return [m.strip() for m in value.split(',') if m.strip()]


def check_metrics(metrics: list[str]) -> None:
    if not metrics:
        return
    try:
        from metrics import metric_main
    except ImportError as e:
        raise dnnlib.UserError(f'Metrics are not available in this installation ({e}); use --metrics=none') from None
    metric_main.check_metrics(metrics)


def fetch_detectors(c: dnnlib.EasyDict, inception: str | None, vgg16: str | None) -> None:
    """Record the detectors given on the command line in `c.metric_kwargs`, and make sure the ones the
    metrics need are at hand before training starts, so that an offline machine fails now, with a
    clear message, rather than at the first snapshot."""
    if not c.metrics:
        return
    from metrics import metric_main, metric_utils
    kwargs = c.setdefault('metric_kwargs', dnnlib.EasyDict())
    for name, given in (('inception', inception), ('vgg16', vgg16)):
        if given is not None:
            kwargs[name] = given
    if int(os.environ.get('RANK', '0')) != 0:
        return
    defaults = {'inception': os.environ.get(metric_utils.INCEPTION_ENV) or metric_utils.INCEPTION_URL,
                'vgg16': os.environ.get(metric_utils.VGG16_ENV) or metric_utils.VGG16_URL}
    for name in sorted({d for m in c.metrics for d in metric_main.detectors_of(m)}):
        try:
            dnnlib.util.open_url(kwargs.get(name) or defaults[name], return_filename=True)
        except dnnlib.UserError as e:
            raise dnnlib.UserError(f'{e} (the {name} detector for --metrics={",".join(c.metrics)}: pass --{name}=FILE, '
                                   f'or train with --metrics=none and measure later with calc_metrics.py)') from None


def check_mbstd_group(group: int, batch_gpu: int, batch_gpu_given: bool) -> None:
    """UserError unless `group` divides `batch_gpu`: the discriminator's minibatch-stddev layer splits each
    GPU's batch into groups of min(group, batch_gpu) images (the published train.py also refuses a group
    larger than the batch)."""
    if batch_gpu % group == 0:
        return
    per_gpu = f'--batch-gpu={batch_gpu}' if batch_gpu_given else \
        f'{batch_gpu} image{"s" if batch_gpu > 1 else ""} per GPU (--batch / --gpus)'
    divisors = [str(d) for d in range(1, batch_gpu + 1) if batch_gpu % d == 0]
    choices = divisors[0] if len(divisors) == 1 else f'{", ".join(divisors[:-1])} or {divisors[-1]}'
    raise dnnlib.UserError(f'--mbstd-group={group} does not fit {per_gpu}: the discriminator\'s minibatch-stddev '
                           f'layer splits each GPU\'s images into groups of that size, which must divide {batch_gpu}; '
                           f'use --mbstd-group={choices}, or a batch per GPU that is a multiple of {group}')


def check_desc(desc: str) -> None:
    """UserError when --desc cannot be part of a folder name."""
    if not desc.strip():
        raise dnnlib.UserError('--desc is empty: give the text to append to the run folder\'s name, or leave it out')
    bad = sorted({ch for ch in desc if ch in BAD_DESC_CHARS or ord(ch) < 32})
    if bad:
        shown = ' '.join(repr(ch)[1:-1] if ord(ch) < 32 else ch for ch in bad)
        raise dnnlib.UserError(f'--desc={desc!r} has characters that cannot be in a folder name ({shown}); it is '
                               f'appended to the run folder\'s name: use e.g. letters, digits, - and _')


def build_config(opts: dnnlib.EasyDict) -> tuple[dnnlib.EasyDict, str, Any]:
    """training_options (see `training.training_loop.TrainingOptions`) from the command-line options,
    derived as the published train.py derives them. Returns (c, description, dataset)."""
    missing = [name for name in ('outdir', 'cfg', 'data', 'gpus', 'batch', 'gamma') if opts[name] is None]
    if missing:
        raise dnnlib.UserError(f'Missing option{"s" if len(missing) > 1 else ""} '
                               f'{", ".join("--" + m for m in missing)} (required for a new run; '
                               f'--resume=<run folder> alone continues a run)')
    check_processes(opts.gpus)  # first: under torchrun, a --gpus that disagrees explains what follows
    if opts.desc is not None:
        check_desc(opts.desc)
    c = dnnlib.EasyDict()
    c.G_kwargs = dnnlib.EasyDict(class_name=None, z_dim=512, w_dim=512, mapping_kwargs=dnnlib.EasyDict())
    c.D_kwargs = dnnlib.EasyDict(class_name='training.networks_stylegan2.Discriminator',
                                 block_kwargs=dnnlib.EasyDict(), mapping_kwargs=dnnlib.EasyDict(),
                                 epilogue_kwargs=dnnlib.EasyDict())
    c.G_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', betas=[0, 0.99], eps=1e-8)
    c.D_opt_kwargs = dnnlib.EasyDict(class_name='torch.optim.Adam', betas=[0, 0.99], eps=1e-8)
    c.loss_kwargs = dnnlib.EasyDict(class_name='training.loss.StyleGAN2Loss')
    c.data_loader_kwargs = dnnlib.EasyDict(pin_memory=True, prefetch_factor=2, num_workers=opts.workers)

    # Dataset.
    c.training_set_kwargs, dataset_name, dataset = open_dataset(opts.data)
    if opts.cond and not c.training_set_kwargs.use_labels:
        raise dnnlib.UserError(f'--cond=True needs labels, but {opts.data} has none (a dataset.json with "labels")')
    c.training_set_kwargs.use_labels = opts.cond
    c.training_set_kwargs.xflip = opts.mirror

    # Hyper-parameters.
    c.num_gpus = opts.gpus
    c.batch_size = opts.batch
    c.batch_gpu = opts.batch_gpu or opts.batch // opts.gpus
    c.G_kwargs.channel_base = c.D_kwargs.channel_base = opts.cbase
    c.G_kwargs.channel_max = c.D_kwargs.channel_max = opts.cmax
    c.G_kwargs.mapping_kwargs.num_layers = (8 if opts.cfg == 'stylegan2' else 2) if opts.map_depth is None \
        else opts.map_depth
    c.D_kwargs.block_kwargs.freeze_layers = opts.freezed
    c.D_kwargs.epilogue_kwargs.mbstd_group_size = opts.mbstd_group
    c.loss_kwargs.r1_gamma = opts.gamma
    c.G_opt_kwargs.lr = (0.002 if opts.cfg == 'stylegan2' else 0.0025) if opts.glr is None else opts.glr
    c.D_opt_kwargs.lr = opts.dlr
    c.metrics = opts.metrics
    c.total_kimg = opts.kimg
    c.kimg_per_tick = opts.tick
    c.image_snapshot_ticks = c.network_snapshot_ticks = opts.snap
    c.random_seed = c.training_set_kwargs.random_seed = opts.seed
    if opts.grid is not None:
        c.image_grid = opts.grid

    # Checks.
    if c.batch_size % c.num_gpus != 0:
        raise dnnlib.UserError(f'--batch={c.batch_size} is not a multiple of --gpus={c.num_gpus}')
    if c.batch_size % (c.num_gpus * c.batch_gpu) != 0:
        raise dnnlib.UserError(f'--batch={c.batch_size} is not a multiple of --gpus times --batch-gpu '
                               f'({c.num_gpus} x {c.batch_gpu})')
    check_mbstd_group(c.D_kwargs.epilogue_kwargs.mbstd_group_size, c.batch_gpu, opts.batch_gpu is not None)
    check_metrics(c.metrics)

    # Configuration.
    c.ema_kimg = c.batch_size * 10 / 32
    if opts.cfg == 'stylegan2':
        c.G_kwargs.class_name = 'training.networks_stylegan2.Generator'
        c.loss_kwargs.style_mixing_prob = 0.9
        c.loss_kwargs.pl_weight = 2
        c.G_reg_interval = 4
        c.G_kwargs.fused_modconv_default = 'inference_only'  # grouped convolutions only outside training
        c.loss_kwargs.pl_no_weight_grad = True
    else:
        c.G_kwargs.class_name = 'training.networks_stylegan3.Generator'
        c.G_kwargs.magnitude_ema_beta = 0.5 ** (c.batch_size / (20 * 1e3))
        if opts.cfg == 'stylegan3-r':
            c.G_kwargs.conv_kernel = 1
            c.G_kwargs.channel_base *= 2
            c.G_kwargs.channel_max *= 2
            c.G_kwargs.use_radial_filters = True
            c.loss_kwargs.blur_init_sigma = 10
            c.loss_kwargs.blur_fade_kimg = c.batch_size * 200 / 32

    # Augmentation.
    if opts.aug != 'noaug':
        c.augment_kwargs = dnnlib.EasyDict(class_name='training.augment.AugmentPipe', xflip=1, rotate90=1, xint=1,
                                           scale=1, rotate=1, aniso=1, xfrac=1, brightness=1, contrast=1,
                                           lumaflip=1, hue=1, saturation=1)
        if opts.aug == 'ada':
            c.ada_target = opts.target
        if opts.aug == 'fixed':
            c.augment_p = opts.p

    # Fine-tuning from a network pickle.
    if opts.resume is not None:
        c.resume_pkl = opts.resume
        c.ada_kimg = 100            # ADA reacts faster at the start of a fine-tuning run
        c.ema_rampup = None         # the EMA starts from trained weights
        c.loss_kwargs.blur_init_sigma = 0

    # Precision and speed.
    if opts.fp32:
        c.G_kwargs.num_fp16_res = c.D_kwargs.num_fp16_res = 0
        c.G_kwargs.conv_clamp = c.D_kwargs.conv_clamp = None
    else:
        c.G_kwargs.num_fp16_res = c.D_kwargs.num_fp16_res = 4
        c.G_kwargs.conv_clamp = c.D_kwargs.conv_clamp = 256
    if opts.nobench:
        c.cudnn_benchmark = False

    if c.get('image_grid') is not None:
        check_grid_pixels(c.image_grid, dataset.resolution)
    desc = f'{opts.cfg}-{dataset_name}-gpus{c.num_gpus}-batch{c.batch_size}-gamma{c.loss_kwargs.r1_gamma:g}'
    if opts.desc is not None:
        desc += f'-{opts.desc}'
    check_run_name(desc, opts.desc is not None)
    return c, desc, dataset


MAX_GRID_SIDE = 16384  # pixels a side of a snapshot grid: twice the width of the default grids (~7680x4320)
MAX_NAME_BYTES = 255   # of a file or folder name, on the common file systems (ext4, APFS, NTFS)


def check_grid_pixels(grid: list[int], resolution: int) -> None:
    """UserError when --grid makes snapshot PNGs over MAX_GRID_SIDE pixels a side."""
    cols, rows = grid
    if max(cols, rows) * resolution > MAX_GRID_SIDE:
        fit = max(1, MAX_GRID_SIDE // resolution)
        raise dnnlib.UserError(f'--grid={cols}x{rows} of {resolution}x{resolution} images makes snapshot PNGs of '
                               f'{cols * resolution}x{rows * resolution} pixels; at most {MAX_GRID_SIDE} a side: '
                               f'use at most {min(cols, fit)}x{min(rows, fit)}')


def check_run_name(desc: str, desc_given: bool) -> None:
    """UserError when the run folder's name ('<id>-<desc>') would be too long for the file system."""
    longest = f'{99999:05d}-{desc}'.encode()  # ids past 99999 take a digit more; nobody gets there
    if len(longest) > MAX_NAME_BYTES:
        cause = '--desc' if desc_given else "the dataset's name"
        raise dnnlib.UserError(f'The run folder\'s name would be {len(longest)} bytes long ({desc[:40]}...); '
                               f'at most {MAX_NAME_BYTES} fit a folder name: shorten {cause}')


def check_resume_pkl(c: dnnlib.EasyDict, dataset) -> None:
    """Load the network pickle once before starting, so that a bad file or networks that do not fit the
    dataset or the options stop the run before anything is written."""
    import legacy
    from training.training_loop import check_resume_compatible, copy_resume_weights
    resume_data = legacy.load_network_pkl(c.resume_pkl)
    label_dim = dataset.label_dim if c.training_set_kwargs.use_labels else 0  # as the loop will see it (--cond)
    shape = types.SimpleNamespace(resolution=dataset.resolution, num_channels=dataset.num_channels,
                                  label_dim=label_dim)
    check_resume_compatible(resume_data, shape, c.resume_pkl)
    common = dict(c_dim=label_dim, img_resolution=dataset.resolution, img_channels=dataset.num_channels)
    networks = {'G': dnnlib.util.construct_class_by_name(**c.G_kwargs, **common),
                'D': dnnlib.util.construct_class_by_name(**c.D_kwargs, **common)}
    copy_resume_weights(resume_data, networks, c.resume_pkl)


def next_run_dir(outdir: str, desc: str) -> str:
    """`<outdir>/<5-digit id>-<desc>`, the id one more than the largest in `outdir`."""
    ids = []
    if os.path.isdir(outdir):
        for name in os.listdir(outdir):
            m = re.match(r'^(\d+)', name)
            if m and os.path.isdir(os.path.join(outdir, name)):
                ids.append(int(m.group(1)))
    run_id = max(ids, default=-1) + 1
    return os.path.join(outdir, f'{run_id:05d}-{desc}')

#----------------------------------------------------------------------------
# Continuing a run in its own folder.

def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False
    return a == b


def continuation_config(opts: dnnlib.EasyDict, given: set[str]) -> dnnlib.EasyDict:
    """training_options of the run in folder `opts.resume`, set to continue from its saved state."""
    from training.training_loop import STATE_FILE
    run_dir = opts.resume
    options_path = os.path.join(run_dir, 'training_options.json')
    if not os.path.isfile(options_path):
        raise dnnlib.UserError(f'--resume={run_dir} is a folder but not a training run (no training_options.json); '
                               f'give a run folder or a network pickle')
    try:
        with open(options_path, encoding='utf-8') as f:
            c = json.load(f, object_hook=dnnlib.EasyDict)
    except ValueError as e:
        raise dnnlib.UserError(f'{options_path} is not valid JSON: {e}') from None
    cli = c.pop('cli_options', None)
    if cli is None:
        raise dnnlib.UserError(f'{options_path} was not written by this train.py; continue that run with the tool '
                               f'that started it, or fine-tune from one of its snapshots with --resume=<pickle>')
    moved = 'data' in given and not _same(opts.data, cli.get('data'))  # the run's dataset, at a new place
    for name in sorted(given - set(CONTINUE_OPTIONS) - ({'data'} if moved else set())):
        if not _same(opts[name], cli.get(name)):
            raise dnnlib.UserError(f'--{name.replace("_", "-")}={opts[name]} differs from the run\'s '
                                   f'{cli.get(name)}: a continued run keeps its options (only --kimg may be raised, '
                                   f'--workers changed and --data given if the dataset moved)')
    if 'kimg' in given:
        if opts.kimg < c.total_kimg:
            raise dnnlib.UserError(f'--kimg={opts.kimg} is less than the run\'s {c.total_kimg:g}; '
                                   f'--kimg can only be raised when continuing a run')
        c.total_kimg = cli['kimg'] = opts.kimg
    if 'workers' in given:
        c.data_loader_kwargs.num_workers = cli['workers'] = opts.workers
    c.run_dir = run_dir
    ds = c.training_set_kwargs
    if moved:
        new, _name, dataset = open_dataset(opts.data, use_labels=ds.use_labels)
        dataset.close()
        if (new.resolution, new.max_size) != (ds.resolution, ds.max_size):
            raise dnnlib.UserError(f'--data={opts.data} holds {new.max_size} images of '
                                   f'{new.resolution}x{new.resolution}, the run\'s dataset {ds.max_size} of '
                                   f'{ds.resolution}x{ds.resolution}: a continued run trains on its own dataset '
                                   f'(moved is fine); start a new run to change it')
        log.info('The run\'s dataset %s is now read from %s', ds.path, opts.data)
        ds.path = cli['data'] = opts.data
    elif not os.path.exists(ds.path):
        raise dnnlib.UserError(f'The run\'s dataset {ds.path} is not there; if it moved, continue with '
                               f'--resume={run_dir} --data=NEW_PATH')
    else:
        open_dataset(ds.path, use_labels=ds.use_labels)[2].close()
    state_path = os.path.join(run_dir, STATE_FILE)
    c.resume_state = state_path if os.path.isfile(state_path) else None
    c.cli_options = cli
    return c


LOCK_FILE = '.train.lock'


@contextlib.contextmanager
def lock_run_dir(run_dir: str) -> Iterator[None]:
    """Hold an exclusive lock on the run folder while training in it (a new run from when its folder is
    made, a continued one before it touches anything): a second train.py continuing the same run
    (which would write the same files) stops with a UserError. The lock goes with the process (a
    killed run leaves none)."""
    with dnnlib.util.exclusive_lock(os.path.join(run_dir, LOCK_FILE), f'{run_dir} is being trained by another '
                                    f'process; wait for it to end (or stop it) first'):
        yield


def run_is_complete(c: dnnlib.EasyDict) -> bool:
    """True when the saved state of a continued run has already reached its total_kimg."""
    if c.get('resume_state') is None:
        return False
    from training import training_loop
    state = training_loop.read_training_state(c.resume_state, mmap=True)
    return state['progress']['cur_nimg'] >= c.total_kimg * 1000


def describe(c: dnnlib.EasyDict, run_dir: str, new_run: bool) -> str:
    """The options and the main facts of a run, as printed at its start (and kept in log.txt)."""
    ds = c.training_set_kwargs
    return '\n'.join([
        '', 'Training options:', json.dumps(c, indent=2), '',
        f'{"Output directory:" if new_run else "Continuing run in:"}  {run_dir}',
        f'Processes (GPUs):    {c.num_gpus}',
        f'Batch size:          {c.batch_size} images',
        f'Training duration:   {c.total_kimg:g} kimg',
        f'Dataset path:        {ds.path}',
        f'Dataset size:        {ds.max_size} images',
        f'Dataset resolution:  {ds.resolution}',
        f'Dataset labels:      {ds.use_labels}',
        f'Dataset x-flips:     {ds.xflip}', ''])

#----------------------------------------------------------------------------
# Processes.

def _error_file(temp_dir: str, rank: int) -> str:
    return os.path.join(temp_dir, f'error-rank{rank}.txt')


def _exit_with(parent_pid: int, interval: float = 0.5) -> None:
    """End this process when `parent_pid` (the launcher) is gone: a spawned rank must not train on,
    writing into the run folder and holding its GPU, after the launcher was killed. (A daemon thread
    that polls the parent's id; the process exits as after SIGKILL, which atomic writes survive.)"""
    import threading

    import psutil

    def watch() -> None:
        while True:
            # Where a dead parent's process is re-parented (POSIX) the parent's id changes; on Windows it
            # does not, and the process is gone instead.
            if os.getppid() != parent_pid or not psutil.pid_exists(parent_pid):
                os._exit(1)
            time.sleep(interval)

    threading.Thread(target=watch, name='exit-with-launcher', daemon=True).start()


def _run_process(rank: int, c: dnnlib.EasyDict, temp_dir: str | None, parent_pid: int | None = None) -> None:
    """One training process: log file (rank 0), process group, statistics, the training loop.

    Spawned processes (temp_dir set) pass a user error to the launcher through a file in temp_dir,
    and end when the launcher (`parent_pid`) does."""
    if parent_pid is not None:
        _exit_with(parent_pid)
    logger = dnnlib.util.Logger(os.path.join(c.run_dir, 'log.txt'), file_mode='a') if rank == 0 else None
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format='%(message)s',
                        stream=sys.stdout, force=True)
    try:
        if temp_dir is not None:
            distributed.init(rank=rank, world_size=c.num_gpus,
                             init_file=os.path.join(temp_dir, '.torch_distributed_init'))
        else:
            distributed.init()
        if c.num_gpus > 1 and not torch.cuda.is_available():
            torch.set_num_threads(max(1, dnnlib.util.available_cpus() // c.num_gpus))
        sync_device = None
        if c.num_gpus > 1:
            sync_device = torch.device('cuda', torch.cuda.current_device()) if torch.cuda.is_available() \
                else torch.device('cpu')
        training_stats.init_multiprocessing(rank=rank, sync_device=sync_device)
        from training import training_loop
        options = {k: v for k, v in c.items() if k != 'cli_options'}
        training_loop.training_loop(rank=rank, **options)
        distributed.barrier()  # ranks leave together: none closes its connections while another still uses them
    except dnnlib.UserError as e:
        if temp_dir is None:
            raise
        with open(_error_file(temp_dir, rank), 'w', encoding='utf-8') as f:
            f.write(str(e))
        raise SystemExit(1) from None
    finally:
        distributed.deinit()
        if logger is not None:
            logger.close()


def launch(c: dnnlib.EasyDict) -> None:
    """Run the training processes: under torchrun this process is one of them; otherwise one process,
    or `num_gpus` spawned local processes (file:// rendezvous in a temporary folder)."""
    if 'RANK' in os.environ and 'WORLD_SIZE' in os.environ:
        _run_process(int(os.environ['RANK']), c, None)
    elif c.num_gpus == 1:
        _run_process(0, c, None)
    else:
        with tempfile.TemporaryDirectory() as temp_dir:
            try:
                torch.multiprocessing.spawn(fn=_run_process, args=(c, temp_dir, os.getpid()), nprocs=c.num_gpus)
            except torch.multiprocessing.ProcessExitedException:
                for rank in range(c.num_gpus):
                    if os.path.exists(_error_file(temp_dir, rank)):
                        with open(_error_file(temp_dir, rank), encoding='utf-8') as f:
                            raise dnnlib.UserError(f.read()) from None
                raise


def check_processes(num_gpus: int) -> None:
    """UserError when the processes asked for cannot be run here."""
    if 'RANK' in os.environ and 'WORLD_SIZE' in os.environ:
        world = int(os.environ['WORLD_SIZE'])
        if world != num_gpus:
            raise dnnlib.UserError(f'torchrun started {world} processes but --gpus={num_gpus}; they must agree')
        return
    if torch.cuda.is_available() and num_gpus > torch.cuda.device_count():
        raise dnnlib.UserError(f'--gpus={num_gpus} but this machine has {torch.cuda.device_count()} CUDA device(s)')

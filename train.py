"""Train a StyleGAN2 or StyleGAN3 generator (the options and defaults of the published `train.py`).

    # A new run (fine-tuning the published FFHQ-U StyleGAN3-R network on a signer dataset):
    python train.py --outdir=runs --cfg=stylegan3-r --data=signer-256.zip --gpus=1 --batch=32 --gamma=2 \\
        --cbase=16384 --mirror=1 --resume=https://.../stylegan3-r-ffhqu-256x256.pkl

    # A tiny run on the CPU:
    python train.py --outdir=runs --cfg=stylegan3-t --data=ds.zip --gpus=1 --batch=8 --gamma=0.5 \\
        --cbase=1024 --cmax=64 --kimg=2 --tick=1 --snap=1 --metrics=none --workers=0

    # Continue a stopped run exactly, in its own folder (optionally training longer):
    python train.py --resume=runs/00000-stylegan3-t-ds-gpus1-batch8-gamma0.5 [--kimg=4]

    # Several processes: --gpus=N starts N local processes; torchrun works on one machine or many:
    torchrun --nproc_per_node=8 --nnodes=2 ... train.py --gpus=16 ...

`--resume=<pickle or URL>` copies the weights by name into the networks built from the options
(fine-tuning; published pickles work). `--resume=<run folder>` continues that run from its last
saved training state with the options in its `training_options.json`: only `--kimg` (raised),
`--workers` and `--data` (the run's dataset at a new place) may be given anew. Loading a pickle
runs code stored in it: use trusted files only.
Multi-machine runs need the dataset on every machine (and, to continue a run, its folder).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys

import click

import dnnlib
from training.launcher import (
    CONFIGS,
    build_config,
    check_processes,
    check_resume_pkl,
    continuation_config,
    describe,
    fetch_detectors,
    launch,
    lock_run_dir,
    next_run_dir,
    parse_metrics,
    run_is_complete,
)

MAX_GRID = 32  # columns or rows of --grid: the published train.py's grids have at most 32 of each

#----------------------------------------------------------------------------

class CommaSeparatedList(click.ParamType):
    name = 'list'

    def convert(self, value, param, ctx):
        return parse_metrics(value)


class Kimg(click.ParamType):
    """A positive number of thousands of images; whole numbers stay ints (fractions make quick test runs)."""
    name = 'kimg'

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f'{value!r} is not a number', param, ctx)
        if not math.isfinite(v):
            self.fail(f'{value!r} is not a finite number', param, ctx)
        if not v > 0:
            self.fail(f'{value!r} must be positive', param, ctx)
        return int(v) if v.is_integer() else v


class GridSize(click.ParamType):
    """COLSxROWS, e.g. 8x4, each at most MAX_GRID (the largest grid the published train.py makes)."""
    name = 'grid'

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return list(value)
        m = re.fullmatch(r'\s*(\d+)\s*[xX]\s*(\d+)\s*', str(value))
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            self.fail(f'{value!r} is not COLSxROWS, e.g. 8x4', param, ctx)
        cols, rows = int(m.group(1)), int(m.group(2))
        if cols > MAX_GRID or rows > MAX_GRID:
            self.fail(f'{value!r} is too large: at most {MAX_GRID}x{MAX_GRID} images (each snapshot renders them all '
                      f'into one PNG)', param, ctx)
        return [cols, rows]


@click.command(epilog=__doc__.split('\n\n', 1)[1] if __doc__ else None)
@click.option('--outdir', help='Where to make the run folder', metavar='DIR', type=str)
@click.option('--cfg', help='Base configuration', type=click.Choice(CONFIGS))
@click.option('--data', help='Training data (zip or folder made by dataset_tool.py)', metavar='[ZIP|DIR]', type=str)
@click.option('--gpus', help='Number of GPUs (processes) to use', metavar='INT', type=click.IntRange(min=1))
@click.option('--batch', help='Total batch size', metavar='INT', type=click.IntRange(min=1))
@click.option('--gamma', help='R1 regularisation weight', metavar='FLOAT', type=dnnlib.util.finite_float(min=0))
@click.option('--cond', help='Train a conditional model (labels from dataset.json)', metavar='BOOL', type=bool,
              default=False, show_default=True)
@click.option('--mirror', help='Add x-flipped copies of the images', metavar='BOOL', type=bool, default=False,
              show_default=True)
@click.option('--aug', help='Augmentation mode', type=click.Choice(['noaug', 'ada', 'fixed']), default='ada',
              show_default=True)
@click.option('--resume', help='Network pickle or URL to fine-tune from, or a run folder to continue',
              metavar='[PATH|URL|DIR]', type=str)
@click.option('--freezed', help='Freeze the first layers of D', metavar='INT', type=click.IntRange(min=0), default=0,
              show_default=True)
@click.option('--p', help='Augmentation probability for --aug=fixed', metavar='FLOAT',
              type=dnnlib.util.finite_float(min=0, max=1), default=0.2, show_default=True)
@click.option('--target', help='ADA target value for --aug=ada',
              metavar='FLOAT', type=dnnlib.util.finite_float(min=0, max=1),
              default=0.6, show_default=True)
@click.option('--batch-gpu', help='Images per GPU per round (gradient accumulation below --batch/--gpus)',
              metavar='INT', type=click.IntRange(min=1))
@click.option('--cbase', help='Capacity multiplier', metavar='INT', type=click.IntRange(min=1), default=32768,
              show_default=True)
@click.option('--cmax', help='Max. feature maps', metavar='INT', type=click.IntRange(min=1), default=512,
              show_default=True)
@click.option('--glr', help='G learning rate  [default: 0.0025 for stylegan3, 0.002 for stylegan2]', metavar='FLOAT',
              type=dnnlib.util.finite_float(min=0))
@click.option('--dlr', help='D learning rate', metavar='FLOAT', type=dnnlib.util.finite_float(min=0), default=0.002,
              show_default=True)
@click.option('--map-depth', help='Mapping network depth  [default: 2 for stylegan3, 8 for stylegan2]', metavar='INT',
              type=click.IntRange(min=1))
@click.option('--mbstd-group', help='Minibatch std group size', metavar='INT', type=click.IntRange(min=1), default=4,
              show_default=True)
@click.option('--desc', help='String to append to the run folder name', metavar='STR', type=str)
@click.option('--metrics', help='Metrics for each snapshot, comma-separated, or none', type=CommaSeparatedList(),
              default='fid50k_full', show_default=True)
@click.option('--kimg', help='Train for this many thousand images', metavar='KIMG', type=Kimg(), default=25000,
              show_default=True)
@click.option('--tick', help='Progress line every this many thousand images', metavar='KIMG', type=Kimg(), default=4,
              show_default=True)
@click.option('--snap', help='Snapshot (and training state) every this many ticks', metavar='TICKS',
              type=click.IntRange(min=1), default=50, show_default=True)
@click.option('--seed', help='Random seed', metavar='INT', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--fp32', help='Disable mixed precision', metavar='BOOL', type=bool, default=False, show_default=True)
@click.option('--nobench', help='Disable cuDNN benchmarking', metavar='BOOL', type=bool, default=False,
              show_default=True)
@click.option('--workers', help='DataLoader worker processes', metavar='INT', type=click.IntRange(min=0), default=3,
              show_default=True)
@click.option('--grid', help=f'Image grid of the snapshots, at most {MAX_GRID}x{MAX_GRID}  '
              '[default: about 7680x4320 pixels; 1920x1080 on a CPU]', metavar='COLSxROWS', type=GridSize())
@click.option('--inception', help='Inception detector for the metrics (published pickle or torch.jit.save file)  '
              '[default: $SIGNSTYLEGAN_INCEPTION, else the published URL]', metavar='PATH|URL', type=str)
@click.option('--vgg16', help='VGG16 detector for the metrics  [default: $SIGNSTYLEGAN_VGG16, else the published URL]',
              metavar='PATH|URL', type=str)
@click.option('-n', '--dry-run', help='Print the training options and exit', is_flag=True)
@click.pass_context
@dnnlib.util.cli_main
def main(ctx: click.Context, **kwargs) -> None:
    """Train a StyleGAN2/StyleGAN3 generator (the options and defaults of the published train.py)."""
    opts = dnnlib.EasyDict(kwargs)
    if opts.resume is not None and not dnnlib.util.is_url(opts.resume) and not os.path.exists(opts.resume):
        raise dnnlib.UserError(f'--resume={opts.resume} not found: give a run folder to continue, or a network '
                               f'pickle (a path or URL) to fine-tune from')
    given = {name for name in kwargs
             if ctx.get_parameter_source(name) not in (click.core.ParameterSource.DEFAULT, None)}
    is_rank0 = int(os.environ.get('RANK', '0')) == 0

    with contextlib.ExitStack() as stack:
        if opts.resume is not None and os.path.isdir(opts.resume):
            c = continuation_config(opts, given)
            check_processes(c.num_gpus)
            run_dir, new_run = c.run_dir, False
            if is_rank0 and not opts.dry_run:
                stack.enter_context(lock_run_dir(run_dir))  # one process trains a run at a time
            if run_is_complete(c):
                print(f'{run_dir} has already reached {c.total_kimg:g} kimg; nothing to do '
                      f'(raise --kimg to train longer).')
                return
        else:
            c, desc, dataset = build_config(opts)
            if opts.resume is not None:
                check_resume_pkl(c, dataset)
            c.cli_options = {k: v for k, v in kwargs.items() if k != 'dry_run'}
            run_dir, new_run = next_run_dir(opts.outdir, desc), True
            c.run_dir = run_dir

        summary = describe(c, run_dir, new_run)
        if is_rank0:
            print(summary)
        if opts.dry_run:
            if is_rank0:
                print('Dry run; exiting.')
            return
        fetch_detectors(c, opts.inception, opts.vgg16)

        if is_rank0:
            if new_run:
                dnnlib.util.make_dirs(run_dir, 'run folder', exist_ok=False)
                stack.enter_context(lock_run_dir(run_dir))  # held like a continued run's, until the run ends
            dnnlib.util.write_json(os.path.join(run_dir, 'training_options.json'), c, 'training options')
            with open(os.path.join(run_dir, 'log.txt'), 'a', encoding='utf-8') as f:
                f.write(summary + '\n')
        launch(c)


if __name__ == '__main__':
    # What the options step logs (a moved dataset, a download) goes with the summary; each training
    # process sets up its own logging (and log.txt) when it starts.
    logging.basicConfig(level=logging.INFO if int(os.environ.get('RANK', '0')) == 0 else logging.WARNING,
                        format='%(message)s', stream=sys.stdout)
    main()

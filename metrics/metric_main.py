"""The metric registry: names of the StyleGAN3 README, how to compute them, and how results are recorded.

Recommended metrics: fid50k_full, kid50k_full, pr50k3_full, ppl2_wend, eqt50k_int, eqt50k_frac, eqr50k.
Legacy metrics: fid50k, kid50k, pr50k3, is50k.

"_full" metrics compare with the whole dataset without x-flips; the legacy ones with at most 50k real
images of the dataset as configured (x-flips included when the training used them).

Use (from `calc_metrics.py` and from the training loop, for every snapshot):

    result = metric_main.calc_metric('fid50k_full', G=G_ema, dataset_kwargs=training_set_kwargs,
                                     num_gpus=num_gpus, rank=rank, device=device)
    if rank == 0:
        metric_main.report_metric(result, run_dir=run_dir, snapshot_pkl=snapshot_pkl)

`calc_metric` takes the keyword arguments of `metric_utils.MetricOptions` (detector overrides
`inception=` / `vgg16=`, `num=` to scale the 50k down for quick checks, `progress=`, `cache=` ...).
Every rank of a process group must call it; only rank 0's result holds the values.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import time
from typing import Callable

import dnnlib

from . import (
    equivariance,
    frechet_inception_distance,
    inception_score,
    kernel_inception_distance,
    metric_utils,
    perceptual_path_length,
    precision_recall,
)

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------
# Registry.

_metric_dict: dict[str, Callable[[metric_utils.MetricOptions], dict]] = {}


def register_metric(fn: Callable[[metric_utils.MetricOptions], dict]) -> Callable:
    """Decorator: the function's name is the metric's name; it returns {result name: value}."""
    assert callable(fn)
    _metric_dict[fn.__name__] = fn
    return fn


def is_valid_metric(metric: str) -> bool:
    return metric in _metric_dict


def list_valid_metrics() -> list[str]:
    return list(_metric_dict.keys())


def check_metrics(metrics: list[str]) -> None:
    """UserError naming the valid metrics when one of `metrics` is unknown."""
    unknown = [m for m in metrics if not is_valid_metric(m)]
    if unknown:
        raise dnnlib.UserError(f"Unknown metric{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                               f"valid metrics: {', '.join(list_valid_metrics())}")


def needs_dataset(metric: str) -> bool:
    """True when the metric compares with real images (the others need the dataset only for labels)."""
    return metric.split("50k")[0] in ("fid", "kid", "pr")


def detectors_of(metric: str) -> list[str]:
    """The feature detectors a metric runs: 'inception' (FID, KID, IS), 'vgg16' (precision/recall, PPL)."""
    kind = metric.split("50k")[0]
    if kind in ("fid", "kid", "is"):
        return ["inception"]
    if kind == "pr" or metric.startswith("ppl"):
        return ["vgg16"]
    return []

#----------------------------------------------------------------------------
# Computing and recording.

def calc_metric(metric: str, **kwargs) -> dnnlib.EasyDict:
    """Compute one metric. Returns EasyDict(results={name: value}, metric, total_time, total_time_str,
    num_gpus), plus num_images when the computation was scaled down with `num=`."""
    check_metrics([metric])
    opts = metric_utils.MetricOptions(**kwargs)
    if opts.G is not None:  # a private copy on the metric's device (snapshots keep their networks on the CPU)
        opts.G = copy.deepcopy(opts.G).eval().requires_grad_(False).to(opts.device)
    start = time.time()
    results = _metric_dict[metric](opts)
    total_time = time.time() - start
    out = dnnlib.EasyDict(results=dnnlib.EasyDict(results), metric=metric, total_time=total_time,
                          total_time_str=dnnlib.util.format_time(total_time), num_gpus=opts.num_gpus)
    if opts.num is not None:
        out.num_images = opts.num
    return out


def report_metric(result_dict: dict, run_dir: str | None = None, snapshot_pkl: str | None = None) -> str:
    """Log the result and, with `run_dir`, append it as one JSON line to `<run_dir>/metric-<name>.jsonl`
    (spec section 7: results, metric, total_time, total_time_str, num_gpus, snapshot_pkl, timestamp).
    The line is written with a single append, so concurrent readers never see half a line. Returns it."""
    metric = result_dict["metric"]
    assert is_valid_metric(metric)
    if run_dir is not None and snapshot_pkl is not None:
        try:
            rel = os.path.relpath(snapshot_pkl, run_dir)
        except ValueError:  # another drive (Windows)
            rel = snapshot_pkl
        snapshot_pkl = rel if not rel.startswith("..") else snapshot_pkl
    record = dict(result_dict, snapshot_pkl=snapshot_pkl, timestamp=time.time())
    line = json.dumps(record)
    log.info("%s", line)
    if run_dir is not None and os.path.isdir(run_dir):
        path = os.path.join(run_dir, f"metric-{metric}.jsonl")
        with metric_files_lock(run_dir):  # not while a continued run rewrites the file (the line would be lost)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
            finally:
                os.close(fd)
    return line


METRIC_FILES_LOCK = ".metrics.lock"


def metric_files_lock(run_dir: str) -> contextlib.AbstractContextManager:
    """Held (waiting for it) while a process writes a run's `metric-*.jsonl`: appends (training,
    calc_metrics.py) and a continued run's rewrite, which would otherwise lose a line appended meanwhile."""
    return dnnlib.util.exclusive_lock(os.path.join(run_dir, METRIC_FILES_LOCK))

#----------------------------------------------------------------------------
# Helpers that adjust the dataset for a metric without touching the caller's options.

def _full_dataset(opts: metric_utils.MetricOptions) -> None:
    """The whole dataset, no x-flips."""
    if opts.dataset_kwargs is not None:
        opts.dataset_kwargs.update(max_size=None, xflip=False)


def _whole_dataset(opts: metric_utils.MetricOptions) -> None:
    """The whole dataset as configured (x-flips kept)."""
    if opts.dataset_kwargs is not None:
        opts.dataset_kwargs.update(max_size=None)

#----------------------------------------------------------------------------
# Recommended metrics.

@register_metric
def fid50k_full(opts):
    _full_dataset(opts)
    fid = frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=opts.scaled(50000))
    return dict(fid50k_full=fid)


@register_metric
def kid50k_full(opts):
    _full_dataset(opts)
    kid = kernel_inception_distance.compute_kid(opts, max_real=opts.scaled(1000000), num_gen=opts.scaled(50000),
                                                num_subsets=100, max_subset_size=1000)
    return dict(kid50k_full=kid)


@register_metric
def pr50k3_full(opts):
    _full_dataset(opts)
    precision, recall = precision_recall.compute_pr(opts, max_real=opts.scaled(200000), num_gen=opts.scaled(50000),
                                                    nhood_size=3, row_batch_size=10000, col_batch_size=10000)
    return dict(pr50k3_full_precision=precision, pr50k3_full_recall=recall)


@register_metric
def ppl2_wend(opts):
    ppl = perceptual_path_length.compute_ppl(opts, num_samples=opts.scaled(50000), epsilon=1e-4, space="w",
                                             sampling="end", batch_size=2)
    return dict(ppl2_wend=ppl)


@register_metric
def eqt50k_int(opts):
    psnr = equivariance.compute_equivariance_metrics(opts, num_samples=opts.scaled(50000), batch_size=4,
                                                     compute_eqt_int=True)
    return dict(eqt50k_int=psnr["eqt_int"])


@register_metric
def eqt50k_frac(opts):
    psnr = equivariance.compute_equivariance_metrics(opts, num_samples=opts.scaled(50000), batch_size=4,
                                                     compute_eqt_frac=True)
    return dict(eqt50k_frac=psnr["eqt_frac"])


@register_metric
def eqr50k(opts):
    psnr = equivariance.compute_equivariance_metrics(opts, num_samples=opts.scaled(50000), batch_size=4,
                                                     compute_eqr=True)
    return dict(eqr50k=psnr["eqr"])

#----------------------------------------------------------------------------
# Legacy metrics.

@register_metric
def fid50k(opts):
    _whole_dataset(opts)
    fid = frechet_inception_distance.compute_fid(opts, max_real=opts.scaled(50000), num_gen=opts.scaled(50000))
    return dict(fid50k=fid)


@register_metric
def kid50k(opts):
    _whole_dataset(opts)
    kid = kernel_inception_distance.compute_kid(opts, max_real=opts.scaled(50000), num_gen=opts.scaled(50000),
                                                num_subsets=100, max_subset_size=1000)
    return dict(kid50k=kid)


@register_metric
def pr50k3(opts):
    _whole_dataset(opts)
    precision, recall = precision_recall.compute_pr(opts, max_real=opts.scaled(50000), num_gen=opts.scaled(50000),
                                                    nhood_size=3, row_batch_size=10000, col_batch_size=10000)
    return dict(pr50k3_precision=precision, pr50k3_recall=recall)


@register_metric
def is50k(opts):
    mean, std = inception_score.compute_is(opts, num_gen=opts.scaled(50000), num_splits=10)
    return dict(is50k_mean=mean, is50k_std=std)

#----------------------------------------------------------------------------

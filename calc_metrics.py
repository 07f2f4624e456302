"""Compute quality metrics of a network snapshot (the metrics of the StyleGAN3 README).

Examples:

\b
  # Metrics of a snapshot in a training run folder; the dataset comes from the run's training options
  # and the results are appended to <run>/metric-<name>.jsonl.
  python calc_metrics.py --metrics=fid50k_full,kid50k_full,pr50k3_full \\
      --network=training-runs/00000-stylegan3-t-signer-gpus1-batch32-gamma2/network-snapshot-000400.pkl

\b
  # A published pickle measured against a dataset, on 2 GPUs.
  python calc_metrics.py --metrics=fid50k_full,eqt50k_int,eqr50k --gpus=2 \\
      --network=https://.../stylegan3-r-ffhqu-256x256.pkl --data=~/datasets/ffhqu-256x256.zip

\b
  # Offline: pass the feature detectors as local files (published pickles or torch.jit.save files).
  python calc_metrics.py --metrics=fid50k_full --network=snap.pkl --data=signer.zip \\
      --inception=inception-2015-12-05.pkl --vgg16=vgg16.pkl

Metrics: fid50k_full, kid50k_full, pr50k3_full, ppl2_wend, eqt50k_int, eqt50k_frac, eqr50k (recommended);
fid50k, kid50k, pr50k3, is50k (legacy). `--num=N` scales the 50k images of every metric down to N for
a quick look (values then differ from the 50k figures). PPL leaves out the FFHQ face crop unless
`--ppl-crop` is given (signer frames are not face portraits).

\b
  # Under torchrun (one process per GPU, one machine or several); --num is spelled --num-images here
  # because torchrun would take it for its own --numa-binding.
  torchrun --standalone --nproc_per_node=2 calc_metrics.py --metrics=fid50k_full --network=snap.pkl

Loading a network pickle runs code stored in it: measure only files from sources you trust.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import urllib.parse
import urllib.request

import click
import torch

import dnnlib
import legacy
from metrics import metric_main, metric_utils

log = logging.getLogger("calc_metrics")

#----------------------------------------------------------------------------
# Where the run and the dataset come from.

def find_run_dir(network_pkl: str) -> str | None:
    """The run folder of a local snapshot: its folder, when that holds training_options.json."""
    if network_pkl.startswith("file://"):
        path = urllib.request.url2pathname(urllib.parse.urlparse(network_pkl).path)
    elif re.match(r"^[a-z][a-z0-9+.-]*://", network_pkl):
        return None
    else:
        path = network_pkl
    folder = os.path.dirname(os.path.abspath(path))
    return folder if os.path.isfile(os.path.join(folder, "training_options.json")) else None


def _run_dataset_kwargs(run_dir: str | None) -> dict | None:
    if run_dir is None:
        return None
    path = os.path.join(run_dir, "training_options.json")
    try:
        with open(path, encoding="utf-8") as f:
            options = json.load(f)
    except (OSError, ValueError) as e:
        raise dnnlib.UserError(f"Cannot read {path}: {e}; pass the dataset with --data=PATH") from None
    kwargs = options.get("training_set_kwargs") if isinstance(options, dict) else None
    return dict(kwargs) if isinstance(kwargs, dict) else None


def resolve_dataset_kwargs(network_pkl: str, snapshot: dict, data: str | None, mirror: bool | None,
                           metrics: list[str]) -> dnnlib.EasyDict | None:
    """Dataset options: --data, else the run's training_options.json, else the pickle's
    training_set_kwargs. UserError when the metrics need a dataset and none is known or it is missing."""
    G = snapshot["G_ema"]
    if data is not None:
        kwargs, source = dict(class_name="training.dataset.ImageFolderDataset", path=data,
                              use_labels=G.c_dim > 0, max_size=None, xflip=False), "--data"
    else:
        kwargs, source = _run_dataset_kwargs(find_run_dir(network_pkl)), "training_options.json"
        if kwargs is None and isinstance(snapshot.get("training_set_kwargs"), dict):
            kwargs, source = dict(snapshot["training_set_kwargs"]), "the network pickle"
    needed = [m for m in metrics if metric_main.needs_dataset(m)]
    if kwargs is None:
        if needed or G.c_dim > 0:
            why = f"{', '.join(needed)} compare{'s' if len(needed) == 1 else ''} with real images" if needed \
                else "the generator is conditional (its labels come from the dataset)"
            raise dnnlib.UserError(f"No dataset information for {network_pkl} ({why}): pass --data=PATH, the dataset "
                                   f"zip or folder the network was trained on")
        return None
    kwargs = dnnlib.EasyDict(kwargs)
    kwargs.setdefault("class_name", "training.dataset.ImageFolderDataset")
    if mirror is not None:
        kwargs.xflip = bool(mirror)
    path = kwargs.get("path")
    if isinstance(path, str):
        kwargs.path = os.path.expanduser(path)
        if not dnnlib.util.is_url(kwargs.path) and not os.path.exists(kwargs.path):
            if source != "--data" and not needed and G.c_dim == 0:  # the metrics use G alone
                log.warning("Dataset %s (from %s) not found; %s need%s no dataset", kwargs.path, source,
                            ", ".join(metrics), "s" if len(metrics) == 1 else "")
                return None
            raise dnnlib.UserError(f"Dataset not found: {kwargs.path} (from {source}); pass --data=PATH")
    if isinstance(path, str) and not dnnlib.util.is_url(kwargs.path):
        # Open it now (names and the first image only): a bad dataset fails before detectors are fetched.
        dataset = dnnlib.util.construct_class_by_name(**kwargs)
        dataset.close()
        if dataset.resolution != G.img_resolution:
            log.warning("Dataset %s has %dx%d images, the generator makes %dx%d: the metrics compare them "
                        "after the detector's own resizing", kwargs.path, dataset.resolution, dataset.resolution,
                        G.img_resolution, G.img_resolution)
    return kwargs

#----------------------------------------------------------------------------
# One process (rank) of the computation.

def _setup_logging(verbose: bool, rank: int) -> None:
    level = logging.INFO if (verbose and rank == 0) else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", force=True)


def _device(name: str, local_rank: int) -> torch.device:
    """The device of the process with this local rank (its own GPU, or the CPU)."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise dnnlib.UserError(f"--device={name} asked for, but this machine has no CUDA GPU (use --device=cpu)")
    if local_rank >= torch.cuda.device_count():
        raise dnnlib.UserError(f"Process {local_rank} has no GPU: this machine has {torch.cuda.device_count()} "
                               f"(lower --gpus, or use --device=cpu)")
    return torch.device("cuda", local_rank)


def run_metrics(rank: int, args: dnnlib.EasyDict) -> None:
    """Compute every metric on this rank; rank 0 prints and records the results."""
    _setup_logging(args.verbose, rank)
    local_rank = int(os.environ.get("LOCAL_RANK", rank)) if args.torchrun else rank
    device = _device(args.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if args.num_gpus > 1:
        from torch_utils import distributed
        distributed.init(rank=None if args.torchrun else rank, world_size=args.num_gpus,
                         init_file=None if args.torchrun else args.init_file,
                         backend=distributed.default_backend(device.type))
        rank = distributed.get_rank()
    snapshot = legacy.load_network_pkl(args.network_pkl)
    G = snapshot["G_ema"].eval().requires_grad_(False).to(device)
    for metric in args.metrics:
        result = metric_main.calc_metric(metric, G=G, dataset_kwargs=args.dataset_kwargs, num_gpus=args.num_gpus,
                                         rank=rank, device=device, progress=args.verbose,
                                         inception=args.inception, vgg16=args.vgg16, num=args.num,
                                         ppl_crop=args.ppl_crop, cache=args.cache)
        if rank == 0:
            line = metric_main.report_metric(result, run_dir=args.run_dir, snapshot_pkl=args.network_name)
            click.echo(line)
    if args.num_gpus > 1:
        from torch_utils import distributed
        distributed.barrier()
        distributed.deinit()


def _spawned(rank: int, args: dnnlib.EasyDict) -> None:
    try:
        run_metrics(rank, args)
    except dnnlib.UserError as e:  # pass one line back to the parent
        raise RuntimeError(f"UserError: {e}") from None

#----------------------------------------------------------------------------
# Command line.

def _comma_list(ctx, param, value: str) -> list[str]:
    items = list(dict.fromkeys(s.strip() for s in (value or "").split(",") if s.strip()))  # each metric once
    if not items:
        raise click.BadParameter("give at least one metric")
    return items


@click.command(epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None)
@click.option("--network", "network_pkl", metavar="PKL|URL", required=True,
              help="Network snapshot pickle (path, file:// or http(s):// URL).")
@click.option("--metrics", metavar="LIST", default="fid50k_full", show_default=True, callback=_comma_list,
              help="Comma-separated metrics: " + ", ".join(metric_main.list_valid_metrics()))
@click.option("--data", metavar="ZIP|DIR", help="Dataset to compare with [default: the one the network was "
              "trained on, from training_options.json or the pickle]")
@click.option("--mirror", type=bool, metavar="BOOL", help="Add x-flipped real images [default: as trained]")
@click.option("--gpus", "num_gpus", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of processes (one GPU each; CPU processes when there is no GPU)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where to compute")
@click.option("--verbose", is_flag=True, help="Log progress (progress bars on a terminal)")
@click.option("--inception", metavar="PATH|URL", help="Inception detector (published pickle or torch.jit.save "
              f"file) [default: ${metric_utils.INCEPTION_ENV}, else the published URL]")
@click.option("--vgg16", metavar="PATH|URL", help="VGG16 detector (published pickle or torch.jit.save file) "
              f"[default: ${metric_utils.VGG16_ENV}, else the published URL]")
@click.option("--num", "--num-images", "num", type=click.IntRange(min=2), metavar="N",
              help="Use N images instead of 50k (quick look; spell it --num-images under torchrun)")
@click.option("--ppl-crop", is_flag=True, help="PPL: crop the FFHQ face region (face datasets only)")
@click.option("--cache/--no-cache", default=True, show_default=True, help="Cache dataset statistics on disk")
@dnnlib.util.cli_main
def main(network_pkl: str, metrics: list[str], data: str | None, mirror: bool | None, num_gpus: int, device: str,
         verbose: bool, inception: str | None, vgg16: str | None, num: int | None, ppl_crop: bool,
         cache: bool) -> None:
    """Compute quality metrics of a network snapshot; print them and, for a snapshot in a training run
    folder, append them to <run>/metric-<name>.jsonl."""
    torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if torchrun:
        num_gpus = int(os.environ["WORLD_SIZE"])
    rank0 = not torchrun or int(os.environ.get("RANK", "0")) == 0
    _setup_logging(verbose, 0 if rank0 else 1)
    metric_main.check_metrics(metrics)
    if not torchrun and num_gpus > 1 and device != "cpu" and torch.cuda.is_available() \
            and num_gpus > torch.cuda.device_count():
        raise dnnlib.UserError(f"--gpus={num_gpus}, but this machine has {torch.cuda.device_count()} GPU(s)")
    if data is not None and not re.match(r"^[a-z]+://", data) and not os.path.exists(os.path.expanduser(data)):
        raise dnnlib.UserError(f"Dataset not found: {data}")

    # Resolve (and download) the network once here; the worker processes read the cached file.
    network_name = network_pkl
    run_dir = find_run_dir(network_pkl)
    if dnnlib.util.is_url(network_pkl):
        network_pkl = dnnlib.util.open_url(network_pkl, return_filename=True)
    snapshot = legacy.load_network_pkl(network_pkl)
    if snapshot["G_ema"] is None:
        raise dnnlib.UserError(f"{network_pkl} holds no G_ema generator")
    dataset_kwargs = resolve_dataset_kwargs(network_pkl, snapshot, data, mirror, metrics)
    del snapshot

    # Fetch the detectors before starting workers: offline, this fails here with one clear line.
    probe = metric_utils.MetricOptions(device="cpu", inception=inception, vgg16=vgg16)
    for name in sorted({d for m in metrics for d in metric_main.detectors_of(m)}):
        metric_utils.load_detector(getattr(probe, name), probe, f"--{name}")

    args = dnnlib.EasyDict(network_pkl=network_pkl, metrics=metrics, dataset_kwargs=dataset_kwargs,
                           num_gpus=num_gpus, device=device, verbose=verbose, inception=probe.inception,
                           vgg16=probe.vgg16, num=num, ppl_crop=ppl_crop, cache=cache, torchrun=torchrun,
                           run_dir=run_dir, network_name=network_name, init_file=None)
    if num_gpus == 1 or torchrun:
        run_metrics(int(os.environ.get("RANK", "0")) if torchrun else 0, args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        args.init_file = os.path.join(tmp, ".torch_distributed_init")
        try:
            torch.multiprocessing.spawn(fn=_spawned, args=(args,), nprocs=num_gpus)
        except torch.multiprocessing.ProcessRaisedException as e:
            lines = [s for s in str(e).splitlines() if s.strip()]
            user = [s for s in lines if "UserError: " in s]
            if user:
                raise dnnlib.UserError(user[-1].split("UserError: ", 1)[1]) from None
            raise

#----------------------------------------------------------------------------

if __name__ == "__main__":
    main()

#----------------------------------------------------------------------------

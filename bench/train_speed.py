"""Training speed: seconds per thousand images (sec/kimg) of train.py configurations on this machine.

    python bench/train_speed.py                      # the tiny CPU configuration of issue 4, all three --cfg
    python bench/train_speed.py --seed-config        # the seed's run: stylegan3-r, 256x256, --cbase=16384, --batch=32

The dataset is made from `../shared/data/signer-pix2pix-256.mp4` with dataset_tool (center crop) into a
temporary folder; the options go through train.py's own config derivation (metrics off, no workers).
Each configuration takes `--warmup` untimed steps, then `--steps` timed ones (the loop's own
`train_step`, CUDA synchronised); maintenance (snapshots, grids, statistics) is not included.
Reported: sec/kimg (wall clock), CPU sec/kimg (CPU time of this process: on a shared machine, with
--threads=1, close to what an idle core would take), sec/step and the share of each training phase.
The figures are relative to this machine and its load: compare rows of one run.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time

import click
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import dataset_tool  # noqa: E402
import dnnlib  # noqa: E402
import train  # noqa: E402
from bench.machine import describe_machine, load_average  # noqa: E402
from training import launcher, training_loop  # noqa: E402

TINY = dict(resolution=32, batch=8, gamma=0.5, cbase=1024, cmax=64)
SEED = dict(resolution=256, batch=32, gamma=2, cbase=16384, cmax=512)


def measure(cfg: str, data: str, setting: dict, steps: int, warmup: int, run_dir: str) -> dict:
    args = ['--outdir', run_dir, f'--cfg={cfg}', f'--data={data}', '--gpus=1', f'--batch={setting["batch"]}',
            f'--gamma={setting["gamma"]}', f'--cbase={setting["cbase"]}', f'--cmax={setting["cmax"]}',
            '--metrics=none', '--workers=0', '--grid=2x1']
    opts = dnnlib.EasyDict(train.main.make_context('train.py', args).params)
    c, _desc, _dataset = launcher.build_config(opts)
    c.run_dir = os.path.join(run_dir, cfg)
    os.makedirs(c.run_dir, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):  # the loop prints module summaries
        trainer = training_loop.Trainer(training_loop.TrainingOptions.from_dict(c))
    for _ in range(warmup):
        trainer.train_step()
    for phase in trainer.phases:
        phase.seconds, phase.events = 0.0, []
    sync = torch.cuda.synchronize if trainer.device.type == 'cuda' else (lambda: None)
    sync()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        trainer.train_step()
    sync()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    phase_seconds = {p.name: p.seconds + sum(a.elapsed_time(b) / 1000 for a, b in p.events) for p in trainer.phases}
    return dict(sec_per_step=seconds / steps, sec_per_kimg=seconds / (steps * setting['batch']) * 1000,
                cpu_sec_per_kimg=cpu_seconds / (steps * setting['batch']) * 1000,
                phases={k: v / seconds for k, v in phase_seconds.items()})


@click.command()
@click.option('--cfgs', default='stylegan3-t,stylegan2,stylegan3-r', show_default=True, help='Configurations')
@click.option('--seed-config', is_flag=True, help="The seed's configuration (256x256, cbase 16384, batch 32)")
@click.option('--steps', type=int, default=16, show_default=True,
              help='Timed steps per configuration (16: one lazy D regularisation)')
@click.option('--warmup', type=int, default=1, show_default=True, help='Untimed steps first')
@click.option('--threads', type=int, help='torch threads (default: torch chooses)')
@click.option('--video', default=os.path.join(REPO, '..', 'shared', 'data', 'signer-pix2pix-256.mp4'),
              show_default=True, help='Source of the dataset')
def main(cfgs: str, seed_config: bool, steps: int, warmup: int, threads: int | None, video: str) -> None:
    if threads:
        torch.set_num_threads(threads)
    setting = SEED if seed_config else TINY
    cfg_list = ['stylegan3-r'] if seed_config else [c.strip() for c in cfgs.split(',') if c.strip()]
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    print(f'# train_speed  {describe_machine(device)}  (load average {load_average():.1f})')
    print(f'# {setting["resolution"]}x{setting["resolution"]}, batch {setting["batch"]}, cbase {setting["cbase"]}, '
          f'cmax {setting["cmax"]}; {warmup} warm-up + {steps} timed steps')
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, 'signer.zip')
        res = setting['resolution']
        dataset_tool.convert_dataset(video, data, max_images=max(setting['batch'], 32), transform='center-crop',
                                     resolution=(res, res), progress=False)
        for cfg in cfg_list:
            r = measure(cfg, data, setting, steps, warmup, os.path.join(tmp, 'runs'))
            phases = '  '.join(f'{name} {share:.0%}' for name, share in r['phases'].items())
            print(f'{cfg:<12s} sec/kimg {r["sec_per_kimg"]:8.1f}   CPU sec/kimg {r["cpu_sec_per_kimg"]:8.1f}   '
                  f'sec/step {r["sec_per_step"]:7.3f}   {phases}')


if __name__ == '__main__':
    main()

"""train.py and training/training_loop.py end to end: tiny CPU runs of every configuration, continuing
a run, an interrupted run against an uninterrupted one, two processes against one, fine-tuning from a
pickle of the golden weights, and bad input."""

import contextlib
import json
import os
import pathlib
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import PIL.Image
import pytest
import torch

import dataset_tool

REPO = pathlib.Path(__file__).resolve().parent.parent

# A tiny configuration: 16x16 images, 8 images a step, 4 steps a tick.
TINY = ['--gpus=1', '--batch=8', '--gamma=0.5', '--cbase=512', '--cmax=32', '--metrics=none', '--workers=0',
        '--grid=4x2', '--snap=1', '--tick=0.032']


def run_train(*args: str, cwd=REPO, check: bool = True, timeout: float = 600, env: dict | None = None):
    proc = subprocess.run([sys.executable, str(REPO / 'train.py'), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=_env(env))
    if check and proc.returncode != 0:
        pytest.fail(f'train.py {" ".join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}')
    return proc


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = str(REPO) + os.pathsep + env.get('PYTHONPATH', '')
    env['OMP_NUM_THREADS'] = '1'  # the CPU is shared: one thread each avoids spinning threads
    env.update(extra or {})
    return env


def only_run_dir(outdir: pathlib.Path) -> pathlib.Path:
    dirs = [p for p in outdir.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_stats(run_dir: pathlib.Path) -> list[dict]:
    with open(run_dir / 'stats.jsonl') as f:
        return [json.loads(line) for line in f]


def load_state(run_dir: pathlib.Path) -> dict:
    return torch.load(run_dir / 'training-state.pt', map_location='cpu', weights_only=True)

#----------------------------------------------------------------------------
# Shared data.

@pytest.fixture(scope='module')
def tiny_zip(tmp_path_factory, data_dir) -> pathlib.Path:
    dest = tmp_path_factory.mktemp('data') / 'signer16.zip'
    n = dataset_tool.convert_dataset(str(data_dir / 'signer-pix2pix-256.mp4'), str(dest), max_images=12,
                                     transform='center-crop', resolution=(16, 16), progress=False)
    assert n == 12
    return dest


@pytest.fixture(scope='module')
def signer64_zip(tmp_path_factory, data_dir) -> pathlib.Path:
    dest = tmp_path_factory.mktemp('data64') / 'signer64.zip'
    dataset_tool.convert_dataset(str(data_dir / 'signer-pix2pix-256.mp4'), str(dest), max_images=4,
                                 transform='center-crop', resolution=(64, 64), progress=False)
    return dest


@pytest.fixture(scope='module')
def sg3t_run(tmp_path_factory, tiny_zip) -> pathlib.Path:
    """A finished stylegan3-t run of 3 ticks (0.064 kimg)."""
    outdir = tmp_path_factory.mktemp('runs-sg3t')
    run_train(f'--outdir={outdir}', '--cfg=stylegan3-t', f'--data={tiny_zip}', *TINY, '--kimg=0.064', '--target=0')
    return only_run_dir(outdir)

#----------------------------------------------------------------------------
# Tiny runs of each configuration.

def _check_run_files(run_dir: pathlib.Path, cfg: str) -> list[dict]:
    assert re.fullmatch(rf'00000-{cfg}-signer16-gpus1-batch8-gamma0.5', run_dir.name), run_dir.name
    for name in ('training_options.json', 'log.txt', 'reals.png', 'fakes_init.png', 'fakes000000.png',
                 'network-snapshot-000000.pkl', 'stats.jsonl', 'training-state.pt'):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob('events.out.tfevents.*'))
    with PIL.Image.open(run_dir / 'reals.png') as img:
        assert img.size == (4 * 16, 2 * 16)
    with PIL.Image.open(run_dir / 'fakes000000.png') as img:
        assert img.size == (4 * 16, 2 * 16)
    options = json.loads((run_dir / 'training_options.json').read_text())
    assert options['run_dir'] == str(run_dir) or pathlib.Path(options['run_dir']).resolve() == run_dir.resolve()
    log_text = (run_dir / 'log.txt').read_text()
    assert 'training on the CPU' in log_text
    ticks = [line for line in log_text.splitlines() if line.startswith('tick ')]
    assert ticks and all(k in ticks[0] for k in ('kimg', 'time', 'sec/tick', 'sec/kimg', 'maintenance', 'cpumem',
                                                  'gpumem', 'augment'))
    stats = read_stats(run_dir)
    assert len(stats) == len(ticks)
    for record in stats:
        assert 'timestamp' in record
        for name, value in record.items():
            if name.startswith('Loss/'):
                assert np.isfinite(value['mean']), (name, value)
    assert {'Loss/G/loss', 'Loss/D/loss', 'Loss/scores/real', 'Loss/r1_penalty'} <= set(stats[-1])
    # The resident memory of the training process: a torch process holds some hundreds of MiB.
    assert 0.1 < stats[-1]['Resources/cpu_mem_gb']['mean'] < 24, stats[-1]['Resources/cpu_mem_gb']
    return stats


def test_tiny_stylegan3t_run_writes_the_run_files(sg3t_run):
    stats = _check_run_files(sg3t_run, 'stylegan3-t')
    assert [s["Progress/tick"]["mean"] for s in stats] == [0, 1, 2]
    assert stats[-1]['Progress/kimg']['mean'] == pytest.approx(0.064)
    # ADA (target 0) raises p as soon as D scores the reals positive.
    assert stats[-1]['Progress/augment']['mean'] > 0


@pytest.mark.parametrize('cfg', ['stylegan2', 'stylegan3-r'])
def test_tiny_runs_of_the_other_configurations(tmp_path, tiny_zip, cfg):
    run_train(f'--outdir={tmp_path}', f'--cfg={cfg}', f'--data={tiny_zip}', *TINY, '--kimg=0.032')
    stats = _check_run_files(only_run_dir(tmp_path), cfg)
    if cfg == 'stylegan2':
        assert 'Loss/pl_penalty' in stats[-1]  # lazy path-length regularisation ran (every 4th step)


def test_snapshot_loads_and_renders_in_a_fresh_process(sg3t_run, tmp_path):
    code = (
        'import pickle, sys, torch\n'
        'with open(sys.argv[1], "rb") as f:\n'
        '    data = pickle.load(f)\n'
        'assert set(data) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}, set(data)\n'
        'G = data["G_ema"]\n'
        'assert not any(p.requires_grad for p in G.parameters()) and not G.training\n'
        'assert all(p.device.type == "cpu" for p in G.parameters())\n'
        'img = G(torch.randn([2, G.z_dim]), torch.zeros([2, G.c_dim]), noise_mode="const")\n'
        'assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()\n'
        'print("p", float(data["augment_pipe"].p), data["training_set_kwargs"]["resolution"])\n')
    proc = subprocess.run([sys.executable, '-c', code, str(sg3t_run / 'network-snapshot-000000.pkl')],
                          cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == '16'

#----------------------------------------------------------------------------
# Continuing a run.

def test_resume_run_dir_continues_in_place(sg3t_run):
    before = read_stats(sg3t_run)
    state = load_state(sg3t_run)
    assert state['progress']['cur_nimg'] == 64 and state['progress']['cur_tick'] == 3
    (sg3t_run / '.training-state.pt.k3x_9q2a.tmp').write_bytes(b'half a state')  # a write killed mid-way
    (sg3t_run / 'notes.tmp').write_text('the user\'s')
    run_train(f'--resume={sg3t_run}', '--kimg=0.128')
    assert [p.name for p in sg3t_run.parent.iterdir()] == [sg3t_run.name]  # no new run folder
    assert not (sg3t_run / '.training-state.pt.k3x_9q2a.tmp').exists() and (sg3t_run / 'notes.tmp').exists()
    (sg3t_run / 'notes.tmp').unlink()
    after = read_stats(sg3t_run)
    assert after[:len(before)] == before  # appended, not rewritten
    ticks = [s['Progress/tick']['mean'] for s in after]
    kimgs = [s['Progress/kimg']['mean'] for s in after]
    assert ticks == list(range(len(after))) and len(after) == len(before) + 2
    assert kimgs[len(before)] == pytest.approx(0.096) and kimgs[-1] == pytest.approx(0.128)
    assert load_state(sg3t_run)['progress']['cur_nimg'] == 128
    log_text = (sg3t_run / 'log.txt').read_text()
    assert 'Continuing the run' in log_text and log_text.count('Training options:') == 2
    options = json.loads((sg3t_run / 'training_options.json').read_text())
    assert options['total_kimg'] == 0.128 and options['cli_options']['kimg'] == 0.128


def test_resume_run_dir_refuses_other_options(sg3t_run):
    result = invoke(f'--resume={sg3t_run}')
    assert result.exit_code == 0 and 'nothing to do' in result.output
    result = invoke(f'--resume={sg3t_run}', '--gamma=2')
    assert_one_line_error(result, '--gamma')
    result = invoke(f'--resume={sg3t_run}', '--kimg=0.01')
    assert_one_line_error(result, 'raised')
    result = invoke(f'--resume={sg3t_run.parent}')
    assert_one_line_error(result, 'training_options.json')
    # A run folder that is not there (a typo) is named as such, not taken for a new run missing options.
    result = invoke(f'--resume={sg3t_run}-typo/')
    assert_one_line_error(result, f'--resume={sg3t_run}-typo/ not found: give a run folder to continue')


def test_continue_a_run_whose_dataset_moved(sg3t_run, tiny_zip, signer64_zip, tmp_path):
    run = tmp_path / sg3t_run.name
    shutil.copytree(sg3t_run, run)
    options = json.loads((run / 'training_options.json').read_text())
    options['training_set_kwargs']['path'] = options['cli_options']['data'] = str(tmp_path / 'old-disk' / 'tiny.zip')
    (run / 'training_options.json').write_text(json.dumps(options))
    assert_one_line_error(invoke(f'--resume={run}'), 'if it moved, continue with')
    assert_one_line_error(invoke(f'--resume={run}', f'--data={signer64_zip}'), 'trains on its own dataset')
    moved = tmp_path / 'new-disk' / 'tiny.zip'
    moved.parent.mkdir()
    shutil.copy(tiny_zip, moved)
    before = load_state(run)['progress']['cur_nimg']
    proc = run_train(f'--resume={run}', f'--data={moved}', f'--kimg={options["total_kimg"] + 0.032}')
    assert f'is now read from {moved}' in proc.stdout
    options = json.loads((run / 'training_options.json').read_text())
    assert options['training_set_kwargs']['path'] == options['cli_options']['data'] == str(moved)
    assert load_state(run)['progress']['cur_nimg'] == before + 32


def test_a_run_is_continued_by_one_process_at_a_time(sg3t_run, tmp_path):
    from training.launcher import lock_run_dir
    run = tmp_path / sg3t_run.name
    shutil.copytree(sg3t_run, run)
    with lock_run_dir(str(run)):  # another train.py continuing the run holds this
        assert_one_line_error(invoke(f'--resume={run}', '--kimg=1'), 'is being trained by another process')
    assert invoke(f'--resume={run}', '--dry-run').exit_code == 0


def test_a_new_run_holds_the_lock_of_its_folder(tmp_path, tiny_zip, monkeypatch):
    import train
    outcomes = []

    def fake_launch(c):  # the new run "training": a --resume of its folder meanwhile must be refused
        if outcomes:
            outcomes.append('continued')
            return
        outcomes.append(invoke(f'--resume={c.run_dir}', '--kimg=1'))
    monkeypatch.setattr(train, 'launch', fake_launch)
    result = invoke(f'--outdir={tmp_path}', '--cfg=stylegan3-t', f'--data={tiny_zip}', *TINY, '--kimg=0.032')
    assert result.exit_code == 0, result.output
    assert len(outcomes) == 1, outcomes
    assert outcomes[0].exit_code == 1
    assert_one_line_error(outcomes[0], 'is being trained by another process')
    run = only_run_dir(tmp_path)
    assert invoke(f'--resume={run}', '--kimg=1').exit_code == 0 and outcomes[-1] == 'continued'  # released at its end


def test_damaged_training_state_is_one_line(sg3t_run, tmp_path):
    run = tmp_path / sg3t_run.name
    shutil.copytree(sg3t_run, run)
    state = run / 'training-state.pt'
    state.write_bytes(state.read_bytes()[:state.stat().st_size // 2])  # a truncated copy
    result = invoke(f'--resume={run}', '--kimg=1')
    assert_one_line_error(result, 'damaged')
    assert '--resume=<network-snapshot-*.pkl>' in result.stderr


def test_interrupted_run_ends_like_an_uninterrupted_one(tmp_path, tiny_zip):
    # stylegan2 uses every random stream: noise inputs, style mixing, path-length noise, ADA, lazy intervals.
    args = ['--cfg=stylegan2', f'--data={tiny_zip}', *TINY, '--kimg=0.128', '--snap=2', '--aug=fixed', '--p=0.5']
    run_train(f'--outdir={tmp_path / "whole"}', *args)
    whole = only_run_dir(tmp_path / 'whole')

    # The same run, killed (SIGKILL) once its first training state exists, then continued.
    outdir = tmp_path / 'cut'
    proc = subprocess.Popen([sys.executable, str(REPO / 'train.py'), f'--outdir={outdir}', *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    deadline = time.time() + 300
    while not list(outdir.glob('*/training-state.pt')) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cut = only_run_dir(outdir)
    killed_at = load_state(cut)['progress']['cur_nimg']
    assert killed_at < 128, 'the run finished before it could be interrupted'
    run_train(f'--resume={cut}')

    a, b = load_state(whole), load_state(cut)
    assert a['progress']['cur_nimg'] == b['progress']['cur_nimg'] == 128
    assert a['progress']['cur_tick'] == b['progress']['cur_tick']
    for net in ('G', 'D', 'G_ema', 'augment_pipe'):
        for name, value in a[net].items():
            assert torch.equal(value, b[net][name]), f'{net}.{name} differs'
    for net in ('G', 'D'):
        for idx, s in a['optimizers'][net]['state'].items():
            assert torch.equal(s['exp_avg'], b['optimizers'][net]['state'][idx]['exp_avg'])
    assert torch.equal(a['ranks'][0]['loss']['pl_mean'], b['ranks'][0]['loss']['pl_mean'])
    # The statistics file reads as one run: one line per tick.
    assert [s['Progress/tick']['mean'] for s in read_stats(cut)] == [s['Progress/tick']['mean'] for s in read_stats(whole)]

#----------------------------------------------------------------------------
# Two processes against one.

# train.py with G's running statistics frozen: they are the one thing ranks keep to themselves (each updates
# them on its own share of the batch, as published), so with them frozen one process and two must agree.
FROZEN_EMA_TRAIN = """
import sys
sys.path.insert(0, sys.argv.pop(1))
import os, dnnlib, train
from training import launcher
opts = dnnlib.EasyDict(train.main.make_context('train.py', sys.argv[1:]).params)
c, desc, _dataset = launcher.build_config(opts)
c.G_kwargs.magnitude_ema_beta = 1.0
c.run_dir = os.path.join(opts.outdir, 'run')
os.makedirs(c.run_dir, exist_ok=True)
launcher.launch(c)
"""


def test_two_process_gloo_run_matches_one_process(tmp_path, tiny_zip):
    script = tmp_path / 'frozen_ema_train.py'
    script.write_text(FROZEN_EMA_TRAIN)
    args = ['--cfg=stylegan3-t', f'--data={tiny_zip}', *TINY, '--kimg=0.024', '--aug=noaug', '--tick=1']
    one = [sys.executable, str(script), str(REPO), f'--outdir={tmp_path / "one"}', *args, '--batch-gpu=4']
    two = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(script), str(REPO),
           f'--outdir={tmp_path / "two"}', *[a.replace('--gpus=1', '--gpus=2') for a in args]]
    for cmd in (one, two):
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=_env(), timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    a, b = load_state(only_run_dir(tmp_path / 'one')), load_state(only_run_dir(tmp_path / 'two'))
    assert a['progress']['cur_nimg'] == b['progress']['cur_nimg'] == 24 and b['num_gpus'] == 2

    # Same data, latents and averaged gradients: the same three steps (Dreg ran in the first), bit for bit.
    # (w_avg, the average w for truncation, is a per-rank running statistic: rank 0 saw half the batch.)
    for net in ('G', 'D', 'G_ema'):
        for name, value in a[net].items():
            if not name.endswith('w_avg'):
                assert torch.equal(b[net][name], value), f'{net}.{name}'
    for net in ('G', 'D'):
        for idx, state in a['optimizers'][net]['state'].items():
            assert torch.equal(b['optimizers'][net]['state'][idx]['exp_avg_sq'], state['exp_avg_sq'])


def test_spawned_processes_train_and_write_once(tmp_path, tiny_zip):
    run_train(f'--outdir={tmp_path}', '--cfg=stylegan3-t', f'--data={tiny_zip}',
              *[a.replace('--gpus=1', '--gpus=2') for a in TINY], '--kimg=0.008')
    run_dir = only_run_dir(tmp_path)
    assert run_dir.name.endswith('-gpus2-batch8-gamma0.5')
    log_text = (run_dir / 'log.txt').read_text()
    assert log_text.count('tick 0 ') == 1  # only rank 0 logs
    assert (run_dir / 'network-snapshot-000000.pkl').is_file()
    assert len(load_state(run_dir)['ranks']) == 2


@pytest.mark.skipif(not os.path.isdir('/proc'), reason='lists child processes through /proc (Linux)')
def test_spawned_processes_end_with_a_killed_launcher(tmp_path, tiny_zip):
    # Started as `train.py ... &` from a script starts it: with SIGINT ignored, so the SIGINT that torch's
    # spawn asks the kernel to send the ranks when their parent dies does nothing.
    proc = subprocess.Popen([sys.executable, str(REPO / 'train.py'), f'--outdir={tmp_path}', '--cfg=stylegan3-t',
                             f'--data={tiny_zip}', *[a.replace('--gpus=1', '--gpus=2') for a in TINY], '--kimg=10'],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))

    def children(pid: int) -> set[int]:
        found = set()
        for task in pathlib.Path(f'/proc/{pid}/task').glob('*'):
            with contextlib.suppress(OSError):
                found |= {int(p) for p in (task / 'children').read_text().split()}
        return found

    ranks: set[int] = set()
    try:
        deadline = time.time() + 300
        while not list(tmp_path.glob('*/training-state.pt')) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, 'the run ended before the launcher could be killed'
        ranks = {c for c in children(proc.pid) if 'spawn' in pathlib.Path(f'/proc/{c}/cmdline').read_text()}
        assert len(ranks) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 30
        while any(pathlib.Path(f'/proc/{c}').exists() for c in ranks) and time.time() < deadline:
            time.sleep(0.2)
        alive = [c for c in ranks if pathlib.Path(f'/proc/{c}').exists()
                 and 'Z' not in pathlib.Path(f'/proc/{c}/stat').read_text().split()[2]]
        assert not alive, 'training processes outlived their launcher'
    finally:
        proc.kill()
        for c in ranks:  # whatever outlived the test
            with contextlib.suppress(OSError):
                os.kill(c, signal.SIGKILL)


#----------------------------------------------------------------------------
# Command-line checks (in process: they stop before any training).

def invoke(*args: str):
    from click.testing import CliRunner

    import train
    return CliRunner().invoke(train.main, list(args))


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code not in (0, None), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('Error:'), result.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope='module')
def golden_pkl(tmp_path_factory, golden_dir) -> pathlib.Path:
    """A snapshot pickle holding the golden stylegan3-r 64x64 weights (networks built from the file's meta as
    spec section 3 describes train.py building them)."""
    from training import networks_stylegan2, networks_stylegan3
    data = np.load(golden_dir / 'golden_stylegan3-r_64.npz')
    m = json.loads(str(data['meta']))
    common = dict(c_dim=m['c_dim'], img_resolution=m['img_resolution'], img_channels=3, num_fp16_res=4, conv_clamp=256)
    nets = {
        'G': networks_stylegan3.Generator(z_dim=m['z_dim'], w_dim=m['w_dim'], channel_base=2 * m['channel_base'],
                                          channel_max=2 * m['channel_max'], conv_kernel=1, use_radial_filters=True,
                                          magnitude_ema_beta=0.5 ** (32 / 20000),
                                          mapping_kwargs=dict(num_layers=m['mapping_layers']), **common),
        'D': networks_stylegan2.Discriminator(channel_base=m['channel_base'], channel_max=m['channel_max'],
                                              block_kwargs=dict(freeze_layers=0),
                                              epilogue_kwargs=dict(mbstd_group_size=4), **common),
    }
    for name, net in nets.items():
        prefix = f'state/{name}/'
        net.load_state_dict({k[len(prefix):]: torch.from_numpy(data[k]) for k in data.files if k.startswith(prefix)})
        net.eval().requires_grad_(False)
    path = tmp_path_factory.mktemp('golden') / 'golden-sg3r-64.pkl'
    with open(path, 'wb') as f:
        pickle.dump(dict(G=nets['G'], D=nets['D'], G_ema=nets['G'], augment_pipe=None, training_set_kwargs=None), f)
    return path


def _cli_defaults(**overrides) -> dict:
    import train
    defaults = dict(train.main.make_context('train.py', []).params)  # parsed defaults
    defaults.update(overrides)
    defaults['metrics'] = []
    return defaults


def _mixed_folder(root: pathlib.Path) -> pathlib.Path:
    folder = root / 'mixed'
    folder.mkdir()
    PIL.Image.new('RGB', (16, 16)).save(folder / 'a.png')
    PIL.Image.new('RGB', (32, 32)).save(folder / 'b.png')
    return folder


def _text_folder(root: pathlib.Path) -> pathlib.Path:
    folder = root / 'texts'
    folder.mkdir()
    (folder / 'notes.txt').write_text('not an image')
    return folder


@pytest.mark.parametrize('case, fragment', [
    ('missing dataset', 'not found'),
    ('not images', 'No images'),
    ('mixed sizes', 'differ'),
    ('resume resolution', '64x64'),
    ('resume shapes', 'does not fit'),
    ('resume architecture', 'pass the options it was trained with'),
    ('resume capacity', 'shares only 16 of 114 tensors'),
    ('batch vs gpus', 'multiple of --gpus'),
    ('cond without labels', 'labels'),
    ('unknown metric', 'nope'),
    ('missing detector', '--inception=FILE'),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, tiny_zip, signer64_zip, golden_pkl, case, fragment):
    outdir = tmp_path / 'runs'
    base = [f'--outdir={outdir}', '--cfg=stylegan3-t', '--gpus=1', '--batch=8', '--gamma=1', '--metrics=none']
    data = f'--data={tiny_zip}'
    args = {
        'missing dataset': [f'--data={tmp_path / "nope.zip"}'],
        'not images': [f'--data={_text_folder(tmp_path)}'],
        'mixed sizes': [f'--data={_mixed_folder(tmp_path)}'],
        'resume resolution': [data, f'--resume={golden_pkl}'],
        # The pickle's names, but z_dim 32 in the pickle and 512 here:
        'resume shapes': [f'--data={signer64_zip}', f'--resume={golden_pkl}', '--cfg=stylegan3-r', '--cbase=1024',
                          '--cmax=64', '--map-depth=2'],
        # StyleGAN3 layer names hold their channel counts: another --cbase shares few names, as another --cfg does.
        'resume architecture': [f'--data={signer64_zip}', f'--resume={golden_pkl}', '--cfg=stylegan2'],
        'resume capacity': [f'--data={signer64_zip}', f'--resume={golden_pkl}'],
        'batch vs gpus': [data, '--gpus=3'],
        'cond without labels': [data, '--cond=1'],
        'unknown metric': [data, '--metrics=fid50k_full,nope'],
        # FID needs the Inception detector: a missing file stops the run before it starts.
        'missing detector': [data, '--metrics=fid50k_full', f'--inception={tmp_path / "inception.pkl"}'],
    }[case]
    result = invoke(*base, *args)
    assert_one_line_error(result, fragment)
    assert not outdir.exists() or not any(p for p in outdir.iterdir() if p.name != 'log.txt')


def test_dry_run_prints_the_options_and_writes_nothing(tmp_path, tiny_zip):
    result = invoke(f'--outdir={tmp_path / "runs"}', '--cfg=stylegan3-r', f'--data={tiny_zip}', '--gpus=1',
                    '--batch=8', '--gamma=1', '--metrics=none', '-n')
    assert result.exit_code == 0, result.output
    assert 'Dry run' in result.output and '"blur_init_sigma": 10' in result.output
    assert not (tmp_path / 'runs').exists()


def _tiny4_zip(root: pathlib.Path, side: int = 4, name: str = 'tiny4.zip') -> pathlib.Path:
    """A dataset of four flat side x side images (written directly: dataset_tool.py refuses to make a 4x4 one)."""
    import io
    import zipfile
    path = root / name
    with zipfile.ZipFile(path, 'w') as z:
        for i in range(4):
            buf = io.BytesIO()
            PIL.Image.new('RGB', (side, side), (60 * i, 0, 0)).save(buf, format='png')
            z.writestr(f'00000/img{i:08d}.png', buf.getvalue())
        z.writestr('dataset.json', json.dumps({'labels': None}))
    return path


@pytest.mark.parametrize('case, fragment', [
    ('mbstd group', 'use --mbstd-group=1, 2 or 4, or a batch per GPU that is a multiple of 3'),
    ('mbstd group per gpu', '--mbstd-group=4 does not fit --batch-gpu=6'),
    ('4x4 dataset', 'not a power of two of at least 8'),
    ('desc with a slash', 'cannot be in a folder name (/)'),
    ('desc with a backslash', 'cannot be in a folder name (\\)'),
    ('empty desc', '--desc is empty'),
    ('desc too long', "at most 255 fit a folder name: shorten --desc"),
    ('grid of large images', 'makes snapshot PNGs of 32768x4096 pixels; at most 16384 a side: use at most 16x4'),
])
def test_refused_by_a_dry_run_before_any_folder(tmp_path, signer64_zip, case, fragment):
    # Each of these used to pass --dry-run (and the real run crashed in training, or made nested folders).
    outdir = tmp_path / 'runs'
    base = [f'--outdir={outdir}', '--cfg=stylegan3-t', '--gpus=1', '--gamma=1', '--metrics=none', '--cbase=512', '-n']
    data = f'--data={signer64_zip}'
    args = {
        'mbstd group': [data, '--batch=4', '--mbstd-group=3'],
        'mbstd group per gpu': [data, '--batch=12', '--batch-gpu=6'],
        '4x4 dataset': [f'--data={_tiny4_zip(tmp_path)}', '--batch=4'],
        'desc with a slash': [data, '--batch=4', '--desc=a/b'],
        'desc with a backslash': [data, '--batch=4', '--desc=a\\b'],
        'empty desc': [data, '--batch=4', '--desc= '],
        'desc too long': [data, '--batch=4', '--desc=' + 'x' * 220],  # the rest of the name is ~40 bytes
        'grid of large images': [f'--data={_tiny4_zip(tmp_path, 1024, "big.zip")}', '--batch=4', '--grid=32x4'],
    }[case]
    assert_one_line_error(invoke(*base, *args), fragment)
    assert not outdir.exists()


def test_torchrun_process_count_checked_first(tmp_path, signer64_zip, monkeypatch):
    # Under torchrun --gpus must match the processes started; checked before what depends on it
    # (the batch per GPU that --mbstd-group must divide), whose message would mislead.
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '2')
    result = invoke(f'--outdir={tmp_path / "runs"}', '--cfg=stylegan3-t', f'--data={signer64_zip}', '--gpus=1',
                    '--batch=4', '--gamma=1', '--metrics=none', '--mbstd-group=3', '-n')
    assert_one_line_error(result, 'torchrun started 2 processes but --gpus=1; they must agree')


def test_mbstd_group_dividing_the_batch_per_gpu_is_fine(tmp_path, signer64_zip):
    for args in (['--batch=4', '--mbstd-group=2'], ['--batch=12', '--batch-gpu=6', '--mbstd-group=3']):
        result = invoke(f'--outdir={tmp_path / "runs"}', '--cfg=stylegan3-t', f'--data={signer64_zip}', '--gpus=1',
                        '--gamma=1', '--metrics=none', '--desc=ok_1-b', '-n', *args)
        assert result.exit_code == 0, result.output
        assert '00000-stylegan3-t-signer64-gpus1' in result.output and '-ok_1-b\n' in result.output


@pytest.mark.parametrize('option, fragment', [
    ('--tick=inf', 'not a finite number'),
    ('--kimg=inf', 'not a finite number'),
    ('--kimg=1e999', 'not a finite number'),  # overflows to inf
    ('--grid=1000x1000', 'at most 32x32'),
    ('--grid=33x1', 'at most 32x32'),
])
def test_unbounded_options_refused_by_a_dry_run(tmp_path, tiny_zip, option, fragment):
    result = invoke(f'--outdir={tmp_path / "runs"}', '--cfg=stylegan3-t', f'--data={tiny_zip}', '--gpus=1',
                    '--batch=8', '--gamma=1', '--metrics=none', '-n', option)
    assert result.exit_code == 2 and f"Invalid value for '{option.split('=')[0]}'" in result.output, result.output
    assert fragment in result.output and 'Traceback' not in result.output, result.output
    assert not (tmp_path / 'runs').exists()
    assert invoke(f'--outdir={tmp_path / "runs"}', '--cfg=stylegan3-t', f'--data={tiny_zip}', '--gpus=1', '--batch=8',
                  '--gamma=1', '--metrics=none', '-n', '--grid=32x32').exit_code == 0

#----------------------------------------------------------------------------
# Config derivation (published train.py).

def test_config_derivation_follows_the_published_train_py(tiny_zip):
    import dnnlib
    from training import launcher

    def config(**kw):
        opts = dnnlib.EasyDict(_cli_defaults(**{**dict(data=str(tiny_zip), gpus=1, batch=32, gamma=2, outdir='x'), **kw}))
        return launcher.build_config(opts)[0]

    t = config(cfg='stylegan3-t')
    assert t.G_kwargs.class_name == 'training.networks_stylegan3.Generator'
    assert t.G_opt_kwargs.lr == 0.0025 and t.D_opt_kwargs.lr == 0.002
    assert t.G_kwargs.mapping_kwargs.num_layers == 2 and t.G_kwargs.channel_base == 32768
    assert t.G_kwargs.magnitude_ema_beta == 0.5 ** (32 / 20000) and t.ema_kimg == 10
    assert 'G_reg_interval' not in t and t.loss_kwargs == {'class_name': 'training.loss.StyleGAN2Loss', 'r1_gamma': 2}
    assert t.G_kwargs.num_fp16_res == 4 and t.G_kwargs.conv_clamp == 256 and t.ada_target == 0.6
    assert t.augment_kwargs.xflip == 1 and 'noise' not in t.augment_kwargs

    r = config(cfg='stylegan3-r', cbase=16384)
    assert r.G_kwargs.channel_base == 32768 and r.G_kwargs.channel_max == 1024 and r.D_kwargs.channel_base == 16384
    assert r.G_kwargs.conv_kernel == 1 and r.G_kwargs.use_radial_filters is True
    assert r.loss_kwargs.blur_init_sigma == 10 and r.loss_kwargs.blur_fade_kimg == 200

    s2 = config(cfg='stylegan2', batch=64, gpus=2, fp32=True)
    assert s2.G_kwargs.class_name == 'training.networks_stylegan2.Generator' and s2.G_opt_kwargs.lr == 0.002
    assert s2.G_kwargs.mapping_kwargs.num_layers == 8 and s2.G_reg_interval == 4 and s2.batch_gpu == 32
    assert s2.loss_kwargs.pl_weight == 2 and s2.loss_kwargs.style_mixing_prob == 0.9
    assert s2.loss_kwargs.pl_no_weight_grad is True and s2.G_kwargs.fused_modconv_default == 'inference_only'
    assert s2.G_kwargs.num_fp16_res == 0 and s2.G_kwargs.conv_clamp is None and s2.ema_kimg == 20

    fine = config(cfg='stylegan3-r', resume='x.pkl', aug='fixed', p=0.3)
    assert fine.resume_pkl == 'x.pkl' and fine.ada_kimg == 100 and fine.ema_rampup is None
    assert fine.loss_kwargs.blur_init_sigma == 0 and fine.augment_p == 0.3 and 'ada_target' not in fine

#----------------------------------------------------------------------------
# Fine-tuning from a published-format pickle.

def test_resume_from_golden_pickle_renders_its_fakes(tmp_path, signer64_zip, golden_dir, golden_pkl, one_thread):
    import dnnlib
    from training import launcher, training_loop
    ds64 = signer64_zip
    golden = np.load(golden_dir / 'golden_stylegan3-r_64.npz')
    meta = json.loads(str(golden['meta']))
    opts = dnnlib.EasyDict(_cli_defaults(cfg='stylegan3-r', cbase=meta['channel_base'], cmax=meta['channel_max'],
                                         data=str(ds64), gpus=1, batch=4, gamma=1, outdir=str(tmp_path),
                                         resume=str(golden_pkl), grid=[3, 2], workers=0))
    c, _desc, _ds = launcher.build_config(opts)
    c.G_kwargs.z_dim, c.G_kwargs.w_dim = meta['z_dim'], meta['w_dim']
    c.run_dir = str(tmp_path / 'run')
    os.makedirs(c.run_dir)
    trainer = training_loop.Trainer(training_loop.TrainingOptions.from_dict(c))

    # The weights arrived by name, and the network reproduces the published output.
    with open(golden_pkl, 'rb') as f:
        ref = pickle.load(f)
    for name, value in ref['G'].state_dict().items():
        assert torch.equal(trainer.G_ema.state_dict()[name], value), name
    img = trainer.G_ema(torch.from_numpy(golden['z']), torch.zeros([3, 0]), noise_mode='const', force_fp32=True)
    np.testing.assert_allclose(img.detach().numpy(), golden['img'], rtol=0, atol=1e-4 * np.abs(golden['img']).max())

    # fakes_init.png is that network's image of the grid latents.
    z = training_loop.grid_latents(6, meta['z_dim'], random_seed=0)
    expected = ref['G'](z, torch.zeros([6, 0]), noise_mode='const').numpy()
    expected = np.rint((expected + 1) * 127.5).clip(0, 255).astype(np.uint8)
    expected = expected.reshape(2, 3, 3, 64, 64).transpose(0, 3, 1, 4, 2).reshape(128, 192, 3)
    with PIL.Image.open(tmp_path / 'run' / 'fakes_init.png') as f:
        got = np.asarray(f)
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert (tmp_path / 'run' / 'reals.png').is_file()

"""The pieces of training/training_loop.py: optimizer phases, gradient averaging, EMA, image grids, random
streams, and the metric hook of a snapshot."""

import contextlib
import json
import os
import pathlib

import numpy as np
import PIL.Image
import pytest
import torch

import dnnlib
from training import training_loop as tl
from training.dataset import ImageFolderDataset

#----------------------------------------------------------------------------
# Phases and gradients.

def test_lazy_regularisation_adjusts_adam():
    net = torch.nn.Linear(3, 2)
    opt_kwargs = dict(class_name='torch.optim.Adam', lr=0.002, betas=[0, 0.99], eps=1e-8)
    main, reg = tl.build_phases('D', net, opt_kwargs, reg_interval=16)
    assert (main.name, main.interval, reg.name, reg.interval) == ('Dmain', 1, 'Dreg', 16)
    assert main.opt is reg.opt
    group = main.opt.param_groups[0]
    c = 16 / 17
    assert group['lr'] == pytest.approx(0.002 * c)
    assert group['betas'] == pytest.approx((0.0, 0.99 ** c))
    assert opt_kwargs['lr'] == 0.002  # the options are not modified

    (both,) = tl.build_phases('G', net, opt_kwargs, reg_interval=None)
    assert both.name == 'Gboth' and both.interval == 1
    assert both.opt.param_groups[0]['lr'] == 0.002 and both.opt.param_groups[0]['betas'] == (0.0, 0.99)


def test_gradients_are_averaged_over_slots_and_cleaned():
    net = torch.nn.Linear(2, 1, bias=False)
    total = None
    for value in ([1.0, 2.0], [3.0, float('nan')]):
        net.weight.grad = torch.tensor([value])
        total = tl.take_gradients(net, total)
        assert net.weight.grad is None
    net.weight.grad = total[net.weight]
    tl.sync_gradients(net, num_gpus=1, num_slots=2)
    assert net.weight.grad.tolist() == [[2.0, 0.0]]  # (1 + 3) / 2; NaN -> 0

    net.weight.grad = torch.tensor([[float('inf'), -float('inf')]])
    tl.sync_gradients(net, num_gpus=1, num_slots=1)
    assert net.weight.grad.tolist() == [[1e5, -1e5]]


def test_ema_half_life_and_rampup():
    G = torch.nn.Linear(1, 1, bias=False).requires_grad_(False)
    G.register_buffer('stat', torch.tensor([5.0]))
    G_ema = torch.nn.Linear(1, 1, bias=False).requires_grad_(False)
    G_ema.register_buffer('stat', torch.tensor([0.0]))
    with torch.no_grad():
        G.weight.fill_(1.0)
        G_ema.weight.fill_(0.0)
    # Half-life 10 kimg, batch 10000: beta = 0.5 -> halfway.
    beta = tl.update_ema(G_ema, G, batch_size=10_000, cur_nimg=10**9, ema_kimg=10, ema_rampup=0.05)
    assert beta == pytest.approx(0.5) and float(G_ema.weight) == pytest.approx(0.5)
    assert float(G_ema.stat) == 5.0  # buffers are copied
    # Early in a run the half-life is cur_nimg * rampup: at 0 images G_ema becomes G.
    beta = tl.update_ema(G_ema, G, batch_size=32, cur_nimg=0, ema_kimg=10, ema_rampup=0.05)
    assert beta == 0 and float(G_ema.weight) == 1.0
    beta = tl.update_ema(G_ema, G, batch_size=32, cur_nimg=0, ema_kimg=10, ema_rampup=None)
    assert beta == pytest.approx(0.5 ** (32 / 10_000))

#----------------------------------------------------------------------------
# Image grids.

def _labelled_folder(root: pathlib.Path, n: int = 6) -> pathlib.Path:
    folder = root / 'labelled'
    folder.mkdir()
    labels = []
    for i in range(n):
        name = f'img{i}.png'
        PIL.Image.fromarray(np.full([8, 8, 3], 30 * i, dtype=np.uint8)).save(folder / name)
        labels.append([name, i % 2])
    (folder / 'dataset.json').write_text(json.dumps({'labels': labels}))
    return folder


def test_grid_rows_follow_labels(tmp_path):
    ds = ImageFolderDataset(str(_labelled_folder(tmp_path)), use_labels=True)
    (gw, gh), images, labels = tl.snapshot_grid(ds, random_seed=3, image_grid=[3, 4])
    assert (gw, gh) == (3, 4) and images.shape == (12, 3, 8, 8) and labels.shape == (12, 2)
    rows = labels.argmax(1).reshape(4, 3)
    assert rows.tolist() == [[0, 0, 0], [1, 1, 1], [0, 0, 0], [1, 1, 1]]
    # Each image sits in the row of its own label (pixel value 30 * i, label i % 2).
    assert ((images[:, 0, 0, 0] // 30) % 2 == labels.argmax(1)).all()
    # The default grid fills about 7680x4320 pixels: 7..32 columns, 4..32 rows.
    assert tl.grid_shape([3, 8, 8]) == (32, 32)
    assert tl.grid_shape([3, 1024, 1024]) == (7, 4)
    assert tl.grid_shape([3, 256, 256]) == (30, 16)
    # On a CPU (small=True): about 1920x1080 pixels, 4..8 columns and rows.
    assert tl.grid_shape([3, 64, 64], small=True) == (8, 8)
    assert tl.grid_shape([3, 256, 256], small=True) == (7, 4)
    assert tl.grid_shape([3, 1024, 1024], small=True) == (4, 4)
    assert tl.grid_shape([3, 64, 64], image_grid=[2, 3], small=True) == (2, 3)


def test_image_grid_layout(tmp_path):
    images = np.zeros([6, 3, 2, 2], dtype=np.uint8)
    for k in range(6):
        images[k] = 10 * k
    path = tmp_path / 'grid.png'
    tl.save_image_grid(images, str(path), drange=(0, 255), grid_size=(3, 2))
    with PIL.Image.open(path) as img:
        grid = np.asarray(img)
    assert grid.shape == (4, 6, 3)
    for k in range(6):
        row, col = divmod(k, 3)
        assert (grid[2 * row:2 * row + 2, 2 * col:2 * col + 2] == 10 * k).all()
    # Float images in [-1, 1] map to [0, 255].
    tl.save_image_grid(torch.tensor([[[[-1.0]]], [[[1.0]]]]), str(path), drange=(-1, 1), grid_size=(2, 1))
    with PIL.Image.open(path) as img:
        assert np.asarray(img).tolist() == [[0, 255]]

#----------------------------------------------------------------------------
# Random streams.

def test_batch_latents_resume_and_are_shared(tmp_path):
    ds = ImageFolderDataset(str(_labelled_folder(tmp_path)), use_labels=True)
    a = tl.BatchLatents(ds, z_dim=4, random_seed=7)
    b = tl.BatchLatents(ds, z_dim=4, random_seed=7)
    z1, c1 = a.draw(3, 5)
    assert z1.shape == (3, 5, 4) and c1.shape == (3, 5, 2) and (c1.sum(-1) == 1).all()
    state = a.state_dict()
    z2, c2 = a.draw(3, 5)
    assert not torch.equal(z1, z2)
    b.load_state_dict(state)
    z3, c3 = b.draw(3, 5)
    assert torch.equal(z2, z3) and torch.equal(c2, c3)


def test_rng_states_round_trip():
    state = tl.capture_rng_state(torch.device('cpu'))
    draws = (torch.rand(3), np.random.rand(3), __import__('random').random())
    tl.restore_rng_state(state, torch.device('cpu'))
    again = (torch.rand(3), np.random.rand(3), __import__('random').random())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]

#----------------------------------------------------------------------------
# Metrics on snapshots (the metric computation itself is stubbed: 50k images are too many for a test).

def test_snapshot_metrics_are_recorded(tmp_path, data_dir, monkeypatch, one_thread):
    import dataset_tool
    import train
    from metrics import metric_main
    from training import launcher
    ds = tmp_path / 'ds.zip'
    dataset_tool.convert_dataset(str(data_dir / 'signer-pix2pix-256.mp4'), str(ds), max_images=4,
                                 transform='center-crop', resolution=(16, 16), progress=False)
    calls = []

    def fake_calc_metric(metric, **kwargs):
        calls.append((metric, kwargs))
        return dnnlib.EasyDict(results=dnnlib.EasyDict({metric: 12.5}), metric=metric, total_time=0.1,
                               total_time_str='0s', num_gpus=kwargs['num_gpus'])
    monkeypatch.setattr(metric_main, 'calc_metric', fake_calc_metric)

    opts = dnnlib.EasyDict(train.main.make_context('train.py', [
        '--outdir', str(tmp_path), '--cfg=stylegan3-t', f'--data={ds}', '--gpus=1', '--batch=4', '--gamma=1',
        '--cbase=256', '--cmax=16', '--kimg=0.004', '--metrics=fid50k_full', '--workers=0', '--grid=2x1']).params)
    c, _desc, _ds = launcher.build_config(opts)
    c.run_dir = str(tmp_path / 'run')
    pathlib.Path(c.run_dir).mkdir()
    tl.training_loop(**c)

    assert [m for m, _kw in calls] == ['fid50k_full']
    kwargs = calls[0][1]
    assert kwargs['dataset_kwargs']['path'] == str(ds) and kwargs['num_gpus'] == 1 and kwargs['rank'] == 0
    assert not kwargs['G'].training and next(kwargs['G'].parameters()).device.type == 'cpu'
    metric_file = tmp_path / 'run' / 'metric-fid50k_full.jsonl'
    line = json.loads(metric_file.read_text().splitlines()[-1])
    assert line['results'] == {'fid50k_full': 12.5} and line['snapshot_pkl'] == 'network-snapshot-000000.pkl'

    # A crash after a snapshot's metric line, before its state: the continued run writes that line again,
    # and the leftover goes. A metric file the state did not know (calc_metrics.py's) is kept.
    first = metric_file.read_text()
    with open(metric_file, 'a') as f:
        f.write(first.replace('12.5', '99.0'))
    other = tmp_path / 'run' / 'metric-kid50k_full.jsonl'
    other.write_text('{"metric": "kid50k_full"}\n')
    tl.training_loop(**dict(c, resume_state=str(tmp_path / 'run' / 'training-state.pt'), total_kimg=0.008))
    lines = [json.loads(s) for s in metric_file.read_text().splitlines()]
    assert [x['results']['fid50k_full'] for x in lines] == [12.5, 12.5] and len(calls) == 2
    assert other.read_text() == '{"metric": "kid50k_full"}\n'


def test_continuing_drops_only_the_metric_lines_of_snapshots_made_again(tmp_path):
    def line(kimg, value, snapshot=None):
        snapshot = snapshot or f'network-snapshot-{kimg:06d}.pkl'
        return json.dumps({'results': {'fid50k_full': value}, 'metric': 'fid50k_full', 'snapshot_pkl': snapshot,
                           'timestamp': 0}) + '\n'
    run = tmp_path / 'run'
    run.mkdir()
    at_state = line(0, 1.0) + line(4, 2.0) + line(8, 3.0)  # the file when the state at kimg 8 was saved
    after = [
        line(12, 4.0),                                        # a crash after snapshot 12's metric, before its state
        line(0, 5.0, str(run / 'network-snapshot-000000.pkl')),  # calc_metrics.py, while the run was stopped
        line(8, 6.0),                                         # ... on the state's own snapshot
        line(16, 7.0, f'{run}/network-snapshot-000016.pkl'),  # ... on a snapshot the run makes again
        line(4, 8.0),
        line(20, 9.0, str(tmp_path / 'other-run' / 'network-snapshot-000020.pkl')),  # another run's snapshot
        '{"metric": "fid50k_full", "resul',                   # a write cut by the crash
    ]
    metric_file = run / 'metric-fid50k_full.jsonl'
    metric_file.write_text(at_state + ''.join(after))
    other = run / 'metric-kid50k_full.jsonl'  # a metric the run does not compute: the run adds nothing to it
    other.write_text(line(12, 1.0).replace('fid50k_full', 'kid50k_full'))
    sizes = {metric_file.name: len(at_state), other.name: 0}
    tl._drop_rewritten_metric_lines(str(run), ['fid50k_full'], sizes, 8, next_snapshot_nimg=12000)
    values = [json.loads(s)['results']['fid50k_full'] for s in metric_file.read_text().splitlines()]
    assert values == [1.0, 2.0, 3.0, 5.0, 6.0, 8.0, 9.0]
    assert metric_file.read_text().endswith('\n')
    assert json.loads(other.read_text())['snapshot_pkl'] == 'network-snapshot-000012.pkl'

    # Ticks of less than 1 kimg: the next snapshot has the state's name again; its lines after the state go.
    metric_file.write_text(at_state + line(8, 6.0) + line(4, 8.0))
    tl._drop_rewritten_metric_lines(str(run), ['fid50k_full'], sizes, 8, next_snapshot_nimg=8500)
    values = [json.loads(s)['results']['fid50k_full'] for s in metric_file.read_text().splitlines()]
    assert values == [1.0, 2.0, 3.0, 8.0]


def test_a_metric_line_appended_during_the_rewrite_is_kept(tmp_path, monkeypatch):
    # calc_metrics.py appends while a continued run rewrites the file: the append waits for the rewrite
    # instead of going to the file that the rewrite then replaces.
    import threading

    from metrics import metric_main
    run = tmp_path / 'run'
    run.mkdir()
    metric_file = run / 'metric-fid50k_full.jsonl'

    def line(kimg):
        return json.dumps({'results': {'fid50k_full': 1.0}, 'metric': 'fid50k_full', 'timestamp': 0,
                           'snapshot_pkl': f'network-snapshot-{kimg:06d}.pkl'}) + '\n'
    metric_file.write_text(line(0) + line(4) + line(8))
    rewriting, go_on = threading.Event(), threading.Event()
    real_atomic_write = dnnlib.util.atomic_write

    @contextlib.contextmanager
    def slow_atomic_write(path, mode='wb', what=''):
        rewriting.set()
        go_on.wait(timeout=30)
        with real_atomic_write(path, mode, what) as f:
            yield f
    monkeypatch.setattr(dnnlib.util, 'atomic_write', slow_atomic_write)
    rewrite = threading.Thread(target=tl._drop_rewritten_metric_lines,
                               args=(str(run), ['fid50k_full'], {metric_file.name: len(line(0))}, 0, None))
    rewrite.start()
    assert rewriting.wait(timeout=30)
    result = {'metric': 'fid50k_full', 'results': {'fid50k_full': 2.0}}
    append = threading.Thread(target=metric_main.report_metric,
                              args=(result, str(run), str(run / 'network-snapshot-000000.pkl')))
    append.start()
    append.join(timeout=0.5)
    assert append.is_alive()  # waiting for the rewrite
    go_on.set()
    rewrite.join(timeout=30)
    append.join(timeout=30)
    values = [json.loads(s)['results']['fid50k_full'] for s in metric_file.read_text().splitlines()]
    assert values == [1.0, 2.0]  # snapshots 4 and 8 dropped (the run resumes at 0); calc_metrics.py's line kept


def test_continuing_keeps_the_metric_lines_calc_metrics_added(tmp_path, data_dir, monkeypatch, one_thread):
    import dataset_tool
    import train
    from metrics import metric_main
    from training import launcher
    ds = tmp_path / 'ds.zip'
    dataset_tool.convert_dataset(str(data_dir / 'signer-pix2pix-256.mp4'), str(ds), max_images=4,
                                 transform='center-crop', resolution=(16, 16), progress=False)
    monkeypatch.setattr(metric_main, 'calc_metric', lambda metric, **kwargs: dnnlib.EasyDict(
        results=dnnlib.EasyDict({metric: 12.5}), metric=metric, total_time=0.1, total_time_str='0s', num_gpus=1))
    opts = dnnlib.EasyDict(train.main.make_context('train.py', [
        '--outdir', str(tmp_path), '--cfg=stylegan3-t', f'--data={ds}', '--gpus=1', '--batch=4', '--gamma=1',
        '--cbase=256', '--cmax=16', '--kimg=2.004', '--metrics=fid50k_full', '--workers=0', '--grid=2x1']).params)
    c, _desc, _ds = launcher.build_config(opts)
    c.run_dir = str(tmp_path / 'run')
    c.resume_kimg = 2  # the counters start at kimg 2: the snapshot is network-snapshot-000002.pkl, state at 2004
    pathlib.Path(c.run_dir).mkdir()
    tl.training_loop(**c)
    metric_file = tmp_path / 'run' / 'metric-fid50k_full.jsonl'
    first = metric_file.read_text()
    assert json.loads(first)['snapshot_pkl'] == 'network-snapshot-000002.pkl'

    # While the run is stopped: calc_metrics.py on an older snapshot (after the newer one's line), and a line
    # of a newer snapshot that the continued run makes again (left by a crash before that snapshot's state).
    user = first.replace('12.5', '7.0').replace('000002', '000000')
    with open(metric_file, 'a') as f:
        f.write(user + first.replace('12.5', '99.0').replace('000002', '000003'))
    tl.training_loop(**dict(c, resume_state=str(tmp_path / 'run' / 'training-state.pt'), total_kimg=2.008))
    lines = [json.loads(s) for s in metric_file.read_text().splitlines()]
    assert [(x['snapshot_pkl'], x['results']['fid50k_full']) for x in lines] == [
        ('network-snapshot-000002.pkl', 12.5), ('network-snapshot-000000.pkl', 7.0),
        ('network-snapshot-000002.pkl', 12.5)]


def test_conditional_training_uses_the_labels(tmp_path, one_thread, monkeypatch):
    import pickle

    import train
    from training import launcher
    from training.loss import StyleGAN2Loss
    calls = []
    original = StyleGAN2Loss.accumulate_gradients

    def recording(self, phase, real_img, real_c, gen_z, gen_c, gain, cur_nimg):
        calls.append((phase, real_img.detach().cpu().clone(), real_c.detach().cpu().clone(),
                      gen_c.detach().cpu().clone()))
        return original(self, phase=phase, real_img=real_img, real_c=real_c, gen_z=gen_z, gen_c=gen_c, gain=gain,
                        cur_nimg=cur_nimg)

    monkeypatch.setattr(StyleGAN2Loss, 'accumulate_gradients', recording)
    folder = _labelled_folder(tmp_path, n=8)
    opts = dnnlib.EasyDict(train.main.make_context('train.py', [
        '--outdir', str(tmp_path), '--cfg=stylegan2', f'--data={folder}', '--cond=1', '--gpus=1', '--batch=4',
        '--gamma=1', '--cbase=256', '--cmax=16', '--kimg=0.008', '--metrics=none', '--workers=0', '--grid=2x2',
        '--snap=10']).params)
    c, _desc, _ds = launcher.build_config(opts)
    assert c.training_set_kwargs.use_labels is True
    c.run_dir = str(tmp_path / 'run')
    pathlib.Path(c.run_dir).mkdir()
    tl.training_loop(**c)
    with open(tmp_path / 'run' / 'network-snapshot-000000.pkl', 'rb') as f:
        snapshot = pickle.load(f)
    assert snapshot['G'].c_dim == 2 and snapshot['D'].c_dim == 2
    stats = [json.loads(line) for line in (tmp_path / 'run' / 'stats.jsonl').read_text().splitlines()]
    assert stats[-1]['Progress/kimg']['mean'] == pytest.approx(0.008)

    # What the loss saw: each real image with its own one-hot label (image i of the folder has pixel value
    # 30 * i and label i % 2), and generator labels that are one-hot labels of the dataset.
    assert {phase for phase, *_ in calls} >= {'Gmain', 'Dmain'} and len(calls) >= 4
    eye = torch.eye(2)
    real_classes, gen_classes = set(), set()
    for phase, real_img, real_c, gen_c in calls:
        assert real_c.shape == gen_c.shape == (len(real_img), 2)
        index = torch.round((real_img[:, 0, 0, 0] + 1) * 127.5 / 30).long()
        assert torch.allclose(real_img, (30 * index.float() / 127.5 - 1)[:, None, None, None].expand_as(real_img),
                              atol=1e-5)  # whole, unaugmented images of the folder
        assert torch.equal(real_c.float(), eye[index % 2]), phase
        assert ((gen_c == 0) | (gen_c == 1)).all() and (gen_c.sum(1) == 1).all(), phase
        real_classes.update((index % 2).tolist())
        gen_classes.update(gen_c.argmax(1).tolist())
    assert real_classes == gen_classes == {0, 1}


def test_more_workers_than_cpus_are_capped(tmp_path, one_thread, monkeypatch, caplog):
    # The published default, --workers=3, on a machine with fewer CPUs (here: 1): one worker per CPU,
    # without torch's warning about too many worker processes.
    import warnings

    import train
    from training import launcher
    folder = _labelled_folder(tmp_path, n=8)
    opts = dnnlib.EasyDict(train.main.make_context('train.py', [
        '--outdir', str(tmp_path), '--cfg=stylegan2', f'--data={folder}', '--gpus=1', '--batch=4', '--gamma=1',
        '--cbase=256', '--cmax=16', '--kimg=0.004', '--metrics=none', '--grid=2x2', '--snap=10']).params)
    c, _desc, _ds = launcher.build_config(opts)
    assert c.data_loader_kwargs.num_workers == 3
    c.run_dir = str(tmp_path / 'run')
    pathlib.Path(c.run_dir).mkdir()
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0}, raising=False)
    with warnings.catch_warnings(), caplog.at_level('INFO', logger='training.training_loop'):
        warnings.filterwarnings('error', message='.*worker')
        tl.training_loop(**c)
    assert 'Loading data with 1 worker processes, one per CPU (--workers=3 asks for more)' in caplog.text
    assert (tmp_path / 'run' / 'network-snapshot-000000.pkl').is_file()

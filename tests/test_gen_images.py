"""gen_images.py: the PNGs it writes, and one-line errors for bad input."""

import io
import pickle
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import gen_images
from training import networks_stylegan2 as sg2
from training import networks_stylegan3 as sg3
from utils.video_io import to_uint8

#----------------------------------------------------------------------------
# The command.

def write_pickle(path, G, **extra):
    buf = io.BytesIO()
    pickle.dump(dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=None, **extra), buf)
    path.write_bytes(buf.getvalue())
    return str(path)


@pytest.fixture(scope='module')
def networks(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp('nets')
    sg3_G = sg3.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=256,
                          channel_max=16, mapping_kwargs=dict(num_layers=2)).eval()
    sg2_cond = sg2.Generator(z_dim=8, c_dim=3, w_dim=8, img_resolution=8, img_channels=1, channel_base=64,
                             channel_max=8).eval()
    return dict(sg3=write_pickle(root / 'sg3.pkl', sg3_G), sg2_cond=write_pickle(root / 'sg2c.pkl', sg2_cond),
                sg3_G=sg3_G, sg2_cond_G=sg2_cond, root=root)


def run(args):
    return CliRunner().invoke(gen_images.generate_images, args)


def test_writes_expected_pngs(networks, tmp_path):
    out = tmp_path / 'out'
    result = run(['--network', networks['sg3'], '--seeds', '0-1,7,1', '--trunc', '0.7', '--outdir', str(out),
                  '--device', 'cpu'])
    assert result.exit_code == 0, result.output
    assert result.output.count('seed0001.png') == 1  # a repeated seed is rendered once
    assert sorted(p.name for p in out.iterdir()) == ['seed0000.png', 'seed0001.png', 'seed0007.png']
    img = np.asarray(PIL.Image.open(out / 'seed0007.png'))
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8
    # Same seed -> same z as the published tools -> this image.
    G = networks['sg3_G']
    z = torch.from_numpy(np.random.RandomState(7).randn(1, 8)).float()
    with torch.no_grad():
        ref = to_uint8(G(z, None, truncation_psi=0.7, noise_mode='const')[0])
    assert np.abs(img.astype(int) - ref.astype(int)).max() <= 1

    # Translation through the StyleGAN3 input transform changes the image.
    out2 = tmp_path / 'moved'
    result = run(['--network', networks['sg3'], '--seeds', '7', '--trunc', '0.7', '--translate', '0.3,0',
                  '--rotate', '20', '--outdir', str(out2)])
    assert result.exit_code == 0, result.output
    assert not np.array_equal(np.asarray(PIL.Image.open(out2 / 'seed0007.png')), img)


def test_conditional_grayscale(networks, tmp_path):
    result = run(['--network', networks['sg2_cond'], '--seeds', '3', '--class', '2', '--noise-mode', 'none',
                  '--outdir', str(tmp_path)])
    assert result.exit_code == 0, result.output
    img = np.asarray(PIL.Image.open(tmp_path / 'seed0003.png'))
    assert img.shape == (8, 8) and img.dtype == np.uint8
    # The image is G(z of seed 3, one-hot class 2), rendered independently here.
    G = networks['sg2_cond_G']
    z = torch.from_numpy(np.random.RandomState(3).randn(1, 8)).float()
    refs = {}
    with torch.no_grad():
        for k in range(3):
            c = torch.nn.functional.one_hot(torch.tensor([k]), 3).float()
            refs[k] = to_uint8(G(z, c, noise_mode='none')[0])[..., 0].astype(int)
    assert np.abs(img.astype(int) - refs[2]).max() <= 1
    assert all(np.abs(refs[2] - refs[k]).max() >= 4 for k in (0, 1))  # the class shows in this network's output

    # Another --class gives that class's image.
    other = tmp_path / 'class0'
    result = run(['--network', networks['sg2_cond'], '--seeds', '3', '--class', '0', '--noise-mode', 'none',
                  '--outdir', str(other)])
    assert result.exit_code == 0, result.output
    img0 = np.asarray(PIL.Image.open(other / 'seed0003.png')).astype(int)
    assert np.abs(img0 - refs[0]).max() <= 1 and not np.array_equal(img0, img)


def assert_one_line_error(result, *needles):
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('Error:'), result.output
    assert 'Traceback' not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_input_gives_one_clear_line(networks, tmp_path):
    out = str(tmp_path / 'out')
    assert_one_line_error(run(['--network', str(tmp_path / 'missing.pkl'), '--seeds', '0', '--outdir', out]),
                          'not found')
    empty = tmp_path / 'empty.pkl'
    empty.write_bytes(pickle.dumps({'G': None, 'training_set_kwargs': {}}))
    assert_one_line_error(run(['--network', str(empty), '--seeds', '0', '--outdir', out]), 'holds no networks')
    linear = tmp_path / 'linear.pkl'
    linear.write_bytes(pickle.dumps({'G_ema': torch.nn.Linear(2, 2)}))
    assert_one_line_error(run(['--network', str(linear), '--seeds', '0', '--outdir', out]),
                          'its generator is a Linear, not a StyleGAN generator', 'z_dim')
    assert_one_line_error(run(['--network', networks['sg3'], '--seeds', '4294967296', '--outdir', out]),
                          '--seeds', 'too large')
    r = run(['--network', networks['sg3'], '--seeds', '0', '--trunc', 'nan', '--outdir', out])  # click's usage error
    assert r.exit_code == 2 and "Error: Invalid value for '--trunc': 'nan' is not a finite number" in r.output
    assert_one_line_error(run(['--network', networks['sg3'], '--seeds', '1-x', '--outdir', out]), '--seeds')
    assert_one_line_error(run(['--network', networks['sg3'], '--seeds', '0', '--class', '1', '--outdir', out]),
                          'unconditional')
    assert_one_line_error(run(['--network', networks['sg2_cond'], '--seeds', '0', '--outdir', out]), '--class')
    assert_one_line_error(run(['--network', networks['sg2_cond'], '--seeds', '0', '--class', '3', '--outdir', out]),
                          'out of range')
    assert_one_line_error(run(['--network', networks['sg2_cond'], '--seeds', '0', '--class', '0',
                               '--translate', '0.1,0', '--outdir', out]), 'StyleGAN3')
    assert_one_line_error(run(['--network', networks['sg3'], '--seeds', '0', '--translate', '1', '--outdir', out]),
                          '--translate')
    assert not (tmp_path / 'out').exists()  # no empty folder left by a refused run
    lstm_like = tmp_path / 'lstm.pt'
    torch.save({'model': {}}, lstm_like)
    assert_one_line_error(run(['--network', str(lstm_like), '--seeds', '0', '--outdir', out]),
                          'PyTorch checkpoint')
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    assert_one_line_error(run(['--network', networks['sg3'], '--seeds', '0', '--outdir', str(a_file)]),
                          'is a file, not a folder')


def test_command_line_process(networks, tmp_path, repo_dir):
    """The script itself: exit status and stderr of a real process."""
    proc = subprocess.run([sys.executable, str(repo_dir / 'gen_images.py'), '--network', networks['sg3'],
                           '--seeds', '3-1', '--outdir', str(tmp_path)], capture_output=True, text=True,
                          cwd=repo_dir, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip().count('\n') == 0 and 'runs backwards' in proc.stderr

#----------------------------------------------------------------------------

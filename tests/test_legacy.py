"""legacy.py: loading snapshots, refusing non-network files, rebuilding networks as our classes,
and pickles that load where only torch_utils and dnnlib are importable."""

import io
import os
import pickle
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest
import torch

import dnnlib
import legacy
from training import networks_stylegan2 as sg2
from training import networks_stylegan3 as sg3


def tiny_networks(kind: str = 'stylegan3', num_fp16_res: int = 4):
    torch.manual_seed(1)
    if kind == 'stylegan3':
        G = sg3.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=256,
                          channel_max=16, num_fp16_res=num_fp16_res, mapping_kwargs=dict(num_layers=2))
    else:
        G = sg2.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=256,
                          channel_max=16, num_fp16_res=num_fp16_res)
    D = sg2.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=16,
                          num_fp16_res=num_fp16_res)
    for net in (G, D):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.1)  # away from the initial values
        net.eval().requires_grad_(False)
    return G, D


def snapshot_bytes(**data) -> bytes:
    buf = io.BytesIO()
    pickle.dump(data, buf)
    return buf.getvalue()

#----------------------------------------------------------------------------

def test_load_fills_missing_keys(tmp_path):
    G, D = tiny_networks()
    path = tmp_path / 'old.pkl'
    path.write_bytes(snapshot_bytes(G=G, D=D, G_ema=G))  # no augment_pipe / training_set_kwargs
    data = legacy.load_network_pkl(str(path))
    assert data['augment_pipe'] is None and data['training_set_kwargs'] is None
    z = torch.randn([2, 8])
    with torch.no_grad():
        assert torch.equal(data['G_ema'](z, None), G(z, None))
    with open(path, 'rb') as f:  # open file objects work too
        assert legacy.load_network_pkl(f)['D'] is not None


@pytest.mark.parametrize('content, message', [
    (b'this is not a pickle', 'not a readable network pickle'),
    (b'', 'not a readable network pickle'),
    (pickle.dumps({'foo': 1}), 'holds no networks'),
    (pickle.dumps([1, 2, 3]), 'holds no networks'),
    (pickle.dumps({'G_ema': 'text'}), 'holds no networks'),
])
def test_load_refuses_non_network_files(tmp_path, content, message):
    path = tmp_path / 'bad.pkl'
    path.write_bytes(content)
    with pytest.raises(dnnlib.UserError, match=message):
        legacy.load_network_pkl(str(path))


def test_load_names_a_torch_checkpoint_given_as_network(tmp_path):
    path = tmp_path / 'lstm.pt'
    torch.save({'model': {'w': torch.zeros(2)}}, path)
    with pytest.raises(dnnlib.UserError, match='PyTorch checkpoint.*--lstm'):
        legacy.load_network_pkl(str(path))


def test_load_missing_file_is_user_error(tmp_path):
    with pytest.raises(dnnlib.UserError, match='not found'):
        legacy.load_network_pkl(str(tmp_path / 'missing.pkl'))


def test_tensorflow_pickles_are_refused_clearly(tmp_path, monkeypatch):
    # A pickle as the TF releases wrote it: a tuple (G, D, Gs) of dnnlib.tflib.network.Network.
    module = types.ModuleType('dnnlib.tflib.network')

    class Network:
        def __setstate__(self, state):
            self.__dict__.update(state)
    Network.__module__ = 'dnnlib.tflib.network'
    Network.__qualname__ = 'Network'
    module.Network = Network
    monkeypatch.setitem(sys.modules, 'dnnlib.tflib', types.ModuleType('dnnlib.tflib'))
    monkeypatch.setitem(sys.modules, 'dnnlib.tflib.network', module)
    content = pickle.dumps((Network(), Network(), Network()))
    monkeypatch.delitem(sys.modules, 'dnnlib.tflib.network')
    monkeypatch.delitem(sys.modules, 'dnnlib.tflib')
    path = tmp_path / 'tf.pkl'
    path.write_bytes(content)
    with pytest.raises(dnnlib.UserError, match='TensorFlow-format .* not supported'):
        legacy.load_network_pkl(str(path))


@pytest.mark.parametrize('kind', ['stylegan2', 'stylegan3'])
def test_force_fp16_rebuilds_with_same_weights(tmp_path, kind):
    G, D = tiny_networks(kind, num_fp16_res=0)
    path = tmp_path / 'net.pkl'
    path.write_bytes(snapshot_bytes(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs=None))
    data = legacy.load_network_pkl(str(path), force_fp16=True)
    for key in ('G', 'G_ema', 'D'):
        net = data[key]
        assert net.init_kwargs.num_fp16_res == 4 and net.init_kwargs.conv_clamp == 256
        assert not net.training and not any(p.requires_grad for p in net.parameters())
    z = torch.randn([2, 8])
    with torch.no_grad():  # on the CPU fp16 settings change nothing
        img = data['G_ema'](z, None, noise_mode='const')
        assert torch.equal(img, G(z, None, noise_mode='const'))
        assert torch.equal(data['D'](img, None), D(img, None))


def published_class_copy(net: torch.nn.Module, module_file: str) -> torch.nn.Module:
    """The same network as an instance of a class compiled from a different source text, as a
    pickle written by the published code unpickles: a foreign module named _imported_module_*."""
    from torch_utils import persistence
    src = open(module_file).read() + '\n# published copy\n'
    module = persistence._src_to_module_get(src)
    cls = persistence.persistent_class(getattr(module, type(net).__name__))
    other = cls(*net.init_args, **net.init_kwargs)
    other.load_state_dict(net.state_dict())
    return other.eval().requires_grad_(False)


@pytest.mark.parametrize('kind', ['stylegan2', 'stylegan3'])
def test_rebuild_network_as_our_class(kind, repo_dir):
    G, D = tiny_networks(kind)
    module_file = str(repo_dir / 'training' / f'networks_{kind}.py')
    pub_G = published_class_copy(G, module_file)
    pub_D = published_class_copy(D, str(repo_dir / 'training' / 'networks_stylegan2.py'))
    assert type(pub_G).__module__.startswith('_imported_module_')
    ours_G = legacy.rebuild_network(pub_G)
    ours_D = legacy.rebuild_network(pub_D)
    assert type(ours_G).__module__ == f'training.networks_{kind}' and type(ours_G).__name__ == 'Generator'
    assert type(ours_D).__module__ == 'training.networks_stylegan2'
    assert not ours_G.training and not any(p.requires_grad for p in ours_G.parameters())
    z = torch.randn([2, 8])
    with torch.no_grad():
        img = pub_G(z, None, truncation_psi=0.6, noise_mode='const')
        assert torch.equal(ours_G(z, None, truncation_psi=0.6, noise_mode='const'), img)
        assert torch.equal(ours_D(img, None), pub_D(img, None))
    # Overrides reach the synthesis settings.
    assert legacy.rebuild_network(pub_G, num_fp16_res=2).synthesis.num_fp16_res == 2


def test_rebuild_accepts_stylegan2_ada_argument_layout():
    """StyleGAN2-ADA-PyTorch generators stored their synthesis settings as one dict."""
    G, _ = tiny_networks('stylegan2')
    G._init_kwargs = dnnlib.EasyDict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                                     mapping_kwargs={}, synthesis_kwargs=dict(channel_base=256, channel_max=16))
    G.mapping.w_avg_beta = 0.995  # the ADA default, not stored in the arguments
    new = legacy.rebuild_network(G)
    assert new.mapping.w_avg_beta == 0.995
    z = torch.randn([1, 8])
    with torch.no_grad():
        assert torch.equal(new(z, None, noise_mode='const'), G(z, None, noise_mode='const'))


def test_rebuild_refuses_unknown_networks():
    with pytest.raises(dnnlib.UserError, match='Cannot rebuild'):
        legacy.rebuild_network(torch.nn.Linear(2, 2))


def test_convert_cli(tmp_path):
    from click.testing import CliRunner
    G, D = tiny_networks()
    src = tmp_path / 'src.pkl'
    src.write_bytes(snapshot_bytes(G=G, D=D, G_ema=G, augment_pipe=None, training_set_kwargs={'path': 'x.zip'}))
    dest = tmp_path / 'dest.pkl'
    result = CliRunner().invoke(legacy.convert_network_pickle, ['--source', str(src), '--dest', str(dest)])
    assert result.exit_code == 0, result.output
    data = legacy.load_network_pkl(str(dest))
    assert data['training_set_kwargs'] == {'path': 'x.zip'}
    result = CliRunner().invoke(legacy.convert_network_pickle, ['--source', str(tmp_path / 'nope.pkl'),
                                                                '--dest', str(dest)])
    assert result.exit_code != 0 and 'not found' in result.output and 'Traceback' not in result.output
    before = src.read_bytes()
    result = CliRunner().invoke(legacy.convert_network_pickle, ['--source', str(src), '--dest', str(src)])
    assert result.exit_code == 1 and '--dest is --source' in result.output, result.output
    assert src.read_bytes() == before

#----------------------------------------------------------------------------
# Persistence acceptance: a snapshot written here loads and renders identically in a process that
# can import only torch_utils and dnnlib (no training/, no legacy.py), using the README snippet.

SNIPPET = textwrap.dedent("""
    import pickle, sys
    import numpy as np
    import torch
    assert 'training' not in sys.modules
    try:
        import training  # noqa: F401
        raise SystemExit('training/ must not be importable here')
    except ImportError:
        pass
    with open('network.pkl', 'rb') as f:
        G = pickle.load(f)['G_ema']  # torch.nn.Module
    z = torch.randn([1, G.z_dim])    # latent codes
    c = None                         # class labels (not used in this example)
    img = G(z, c)                    # NCHW, float32, dynamic range [-1, +1], no truncation
    assert img.shape == (1, G.img_channels, G.img_resolution, G.img_resolution)
    with open('network.pkl', 'rb') as f:
        data = pickle.load(f)
    z = torch.from_numpy(np.load('z.npy'))
    with torch.no_grad():
        out = data['G_ema'](z, None, truncation_psi=0.7, noise_mode='const')
        logits = data['D'](out, None)
    np.save('out.npy', out.numpy())
    np.save('logits.npy', logits.numpy())
    print(type(data['G_ema']).__module__)
""")


@pytest.mark.parametrize('kind', ['stylegan2', 'stylegan3'])
def test_snapshot_loads_with_only_torch_utils_and_dnnlib(tmp_path, repo_dir, kind):
    G, D = tiny_networks(kind)
    libdir = tmp_path / 'lib'
    libdir.mkdir()
    for name in ('torch_utils', 'dnnlib'):
        os.symlink(repo_dir / name, libdir / name)
    workdir = tmp_path / 'work'
    workdir.mkdir()
    (workdir / 'network.pkl').write_bytes(snapshot_bytes(G=G, D=D, G_ema=G, augment_pipe=None,
                                                         training_set_kwargs=dnnlib.EasyDict(resolution=16)))
    z = torch.randn([2, 8])
    np.save(workdir / 'z.npy', z.numpy())
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['PYTHONPATH'] = str(libdir)
    proc = subprocess.run([sys.executable, '-c', SNIPPET], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().startswith('_imported_module_')  # rebuilt from the embedded source
    with torch.no_grad():
        out = G(z, None, truncation_psi=0.7, noise_mode='const')
        logits = D(out, None)
    assert np.array_equal(np.load(workdir / 'out.npy'), out.numpy())
    assert np.array_equal(np.load(workdir / 'logits.npy'), logits.numpy())

#----------------------------------------------------------------------------

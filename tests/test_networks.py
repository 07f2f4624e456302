"""StyleGAN2 / StyleGAN3 networks: published parameter names, golden forward passes, interface.

Golden files: shared/fixtures/nvidia-compat (spec sections 4-5)."""

import ast
import inspect
import json
import pathlib

import numpy as np
import pytest
import torch

from torch_utils import persistence
from training import networks_stylegan2 as sg2
from training import networks_stylegan3 as sg3

GOLDEN_CFGS = ['stylegan2', 'stylegan3-t', 'stylegan3-r']
REPO = pathlib.Path(__file__).resolve().parent.parent

#----------------------------------------------------------------------------
# Builders: networks as train.py builds each --cfg (spec section 3).

def build_G(cfg: str, *, img_resolution: int, channel_base: int, channel_max: int = 512, z_dim: int = 512,
            w_dim: int = 512, c_dim: int = 0, mapping_layers: int | None = None, **extra) -> torch.nn.Module:
    common = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution, img_channels=3,
                  num_fp16_res=4, conv_clamp=256)
    if cfg == 'stylegan2':
        return sg2.Generator(channel_base=channel_base, channel_max=channel_max, fused_modconv_default='inference_only',
                             mapping_kwargs=dict(num_layers=mapping_layers or 8), **common, **extra)
    assert cfg in ('stylegan3-t', 'stylegan3-r')
    if cfg == 'stylegan3-r':
        channel_base, channel_max = channel_base * 2, channel_max * 2
        extra = dict(conv_kernel=1, use_radial_filters=True, **extra)
    return sg3.Generator(channel_base=channel_base, channel_max=channel_max, magnitude_ema_beta=0.5 ** (32 / 20000),
                         mapping_kwargs=dict(num_layers=mapping_layers or 2), **common, **extra)


def build_D(*, img_resolution: int, channel_base: int, channel_max: int = 512, c_dim: int = 0) -> torch.nn.Module:
    return sg2.Discriminator(c_dim=c_dim, img_resolution=img_resolution, img_channels=3, channel_base=channel_base,
                             channel_max=channel_max, num_fp16_res=4, conv_clamp=256,
                             block_kwargs=dict(freeze_layers=0), epilogue_kwargs=dict(mbstd_group_size=4))


def rel_err(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def names_and_shapes(net: torch.nn.Module) -> list:
    return [[name, list(t.shape)] for name, t in list(net.named_parameters()) + list(net.named_buffers())]

#----------------------------------------------------------------------------
# Published names and shapes (the --resume contract).

@pytest.fixture(scope='module')
def param_names(golden_dir):
    return json.loads((golden_dir / 'param_names.json').read_text())


@pytest.mark.parametrize('key', ['stylegan3-t-256-cbase32768', 'stylegan3-t-256-cbase16384',
                                 'stylegan3-r-256-cbase32768', 'stylegan3-r-256-cbase16384',
                                 'stylegan2-256-cbase32768', 'stylegan2-256-cbase16384'])
def test_param_names_match_published(param_names, key):
    cfg, res, cbase = key.rsplit('-', 2)
    ref = param_names[key]
    G = build_G(cfg, img_resolution=int(res), channel_base=int(cbase.removeprefix('cbase')))
    D = build_D(img_resolution=int(res), channel_base=int(cbase.removeprefix('cbase')))
    assert names_and_shapes(G) == ref['G']
    assert names_and_shapes(D) == ref['D']
    assert G.num_ws == ref['num_ws']

#----------------------------------------------------------------------------
# Golden forward passes.

class Golden:
    def __init__(self, path: pathlib.Path):
        self.data = np.load(path)
        self.meta = json.loads(str(self.data['meta']))

    def state(self, net: str) -> dict:
        prefix = f'state/{net}/'
        return {k[len(prefix):]: torch.from_numpy(self.data[k]) for k in self.data.files if k.startswith(prefix)}

    def build(self):
        m = self.meta
        G = build_G(m['cfg'], img_resolution=m['img_resolution'], channel_base=m['channel_base'],
                    channel_max=m['channel_max'], z_dim=m['z_dim'], w_dim=m['w_dim'], c_dim=m['c_dim'],
                    mapping_layers=m['mapping_layers'])
        D = build_D(img_resolution=m['img_resolution'], channel_base=m['channel_base'], channel_max=m['channel_max'],
                    c_dim=m['c_dim'])
        return G, D


@pytest.fixture(scope='module', params=GOLDEN_CFGS)
def golden(request, golden_dir):
    return Golden(golden_dir / f'golden_{request.param}_64.npz')


def test_fresh_deterministic_buffers_equal_golden(golden):
    """Filters a new network designs for itself equal the published ones bit for bit."""
    G, D = golden.build()
    for net, tag in [(G, 'G'), (D, 'D')]:
        ref = golden.state(tag)
        fresh = net.state_dict()
        assert list(fresh) == list(ref)
        checked = [k for k in fresh if k.endswith(('up_filter', 'down_filter', 'resample_filter'))]
        assert checked
        for k in checked:
            assert torch.equal(fresh[k], ref[k]), k
    assert G.num_ws == golden.meta['num_ws']


def test_golden_outputs(golden):
    G, D = golden.build()
    G.load_state_dict(golden.state('G'), strict=True)
    D.load_state_dict(golden.state('D'), strict=True)
    G.eval()
    D.eval()
    d = golden.data

    acts = {}
    hooks = []
    for prefix, parent in [('G.synthesis', G.synthesis), ('D', D)]:
        for name, child in parent.named_children():
            def hook(_mod, _inp, out, key=f'{prefix}.{name}'):
                if key not in acts:  # first pass only (img at psi 1, then d_logits)
                    acts[key] = (out[0] if isinstance(out, tuple) else out)[:1].detach().numpy()
            hooks.append(child.register_forward_hook(hook))

    z = torch.from_numpy(d['z'])
    with torch.no_grad():
        out = {
            'ws': G.mapping(z, None),
            'ws_psi07': G.mapping(z, None, truncation_psi=0.7),
            'ws_psi05_cut4': G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=4),
        }
        out['img'] = G.synthesis(out['ws'], noise_mode='const', force_fp32=True)
        out['d_logits'] = D(out['img'], None)
        # Through G itself: mapping with truncation, then synthesis.
        out['img_psi07'] = G(z, None, truncation_psi=0.7, noise_mode='const', force_fp32=True)
        if 'img_none' in d.files:
            out['img_none'] = G.synthesis(out['ws'], noise_mode='none', force_fp32=True)
    for h in hooks:
        h.remove()

    # Intermediate activations first: a failure names the first module that diverges.
    act_keys = [k for k in d.files if k.startswith('act/')]
    assert act_keys
    for k in act_keys:
        assert rel_err(acts[k[4:]], d[k].astype(np.float32)) < 1e-2, f'first divergence at {k}'
    expected = ['ws', 'ws_psi07', 'ws_psi05_cut4', 'img', 'img_psi07', 'd_logits']
    if golden.meta['cfg'] == 'stylegan2':
        expected.append('img_none')
    for k in expected:
        assert out[k].dtype == torch.float32
        assert rel_err(out[k].numpy(), d[k]) < 1e-4, k

#----------------------------------------------------------------------------
# Constructor keywords and defaults (spec section 3): published pickles store `init_kwargs` and train.py
# builds networks from them, so the classes take the same names with the same defaults. The table holds
# the spec's facts only; REQUIRED: no default in the spec's signature; STATED: named, default not stated.

REQUIRED, STATED = object(), object()
BLUR = [1, 3, 3, 1]
SG_G = dict(z_dim=REQUIRED, c_dim=REQUIRED, w_dim=REQUIRED, img_resolution=REQUIRED, img_channels=REQUIRED,
            mapping_kwargs={})

# (class, {keyword: default}, form): form 'keywords': the listed keywords, anywhere in the signature; 'signature':
# the spec's whole signature, its parameters leading in this order; 'signature+**': and it takes **kwargs.
SPEC_CONSTRUCTORS = [
    (sg3.Generator, SG_G, 'signature+**'),
    (sg3.MappingNetwork, dict(num_layers=2, lr_multiplier=0.01, w_avg_beta=0.998), 'keywords'),
    (sg3.SynthesisNetwork, dict(channel_base=32768, channel_max=512, num_layers=14, num_critical=2, first_cutoff=2,
                                first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3, margin_size=10,
                                output_scale=0.25, num_fp16_res=4), 'keywords'),
    (sg3.SynthesisLayer, dict(conv_kernel=3, filter_size=6, lrelu_upsampling=2, use_radial_filters=False,
                              conv_clamp=256, magnitude_ema_beta=0.999), 'keywords'),
    (sg2.Generator, SG_G, 'signature+**'),
    (sg2.MappingNetwork, dict(num_layers=8, embed_features=None, layer_features=None, activation='lrelu',
                              lr_multiplier=0.01, w_avg_beta=0.998), 'keywords'),
    (sg2.SynthesisNetwork, dict(channel_base=32768, channel_max=512, num_fp16_res=4), 'keywords'),
    (sg2.SynthesisBlock, dict(architecture='skip', resample_filter=BLUR, conv_clamp=256, use_fp16=STATED,
                              fp16_channels_last=False, fused_modconv_default=True), 'keywords'),
    (sg2.SynthesisLayer, dict(kernel_size=3, use_noise=True, activation='lrelu', channels_last=False), 'keywords'),
    (sg2.Discriminator, dict(c_dim=REQUIRED, img_resolution=REQUIRED, img_channels=REQUIRED, architecture='resnet',
                             channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256, cmap_dim=None,
                             block_kwargs={}, mapping_kwargs={}, epilogue_kwargs={}), 'signature'),
    (sg2.DiscriminatorBlock, dict(activation='lrelu', resample_filter=BLUR, fp16_channels_last=False,
                                  freeze_layers=0), 'keywords'),
    (sg2.DiscriminatorEpilogue, dict(mbstd_group_size=4, mbstd_num_channels=1, activation='lrelu'), 'keywords'),
]


def constructor_parameters(cls: type) -> dict:
    """The constructor's parameters (past the persistence wrapper, which takes *args, **kwargs)."""
    assert persistence.is_persistent(cls), f'{cls.__name__} must be a persistent class (spec section 2)'
    params = dict(inspect.signature(cls.__bases__[0].__init__).parameters)
    params.pop('self')
    return params


@pytest.mark.parametrize('cls, expected, form', SPEC_CONSTRUCTORS,
                         ids=[f'{c.__module__.rsplit(".", 1)[-1]}.{c.__name__}' for c, _, _ in SPEC_CONSTRUCTORS])
def test_constructor_keywords_and_defaults_match_spec(cls, expected, form):
    params = constructor_parameters(cls)
    for name, default in expected.items():
        assert name in params, f'{cls.__name__} has no keyword {name!r}'
        p = params[name]
        assert p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY), (name, p.kind)
        if default is REQUIRED:
            assert p.default is p.empty, f'{cls.__name__}({name}) must be required, not default {p.default!r}'
        elif default is not STATED:
            same = p.default == (pytest.approx(default, rel=1e-12) if isinstance(default, float) else default)
            assert same, f'{cls.__name__}({name}={p.default!r}): the spec says {default!r}'
    if form.startswith('signature'):
        assert list(params)[:len(expected)] == list(expected)
    if form == 'signature+**':
        assert any(p.kind is p.VAR_KEYWORD for p in params.values()), f'{cls.__name__} must take **kwargs'


def test_defaults_reach_the_built_networks():
    """Built from the required arguments only (small widths), the EMA decays are the published defaults."""
    G3 = sg3.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=256, channel_max=16)
    G2 = sg2.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3, channel_base=256, channel_max=16)
    assert G3.mapping.w_avg_beta == 0.998 and G2.mapping.w_avg_beta == 0.998
    assert [getattr(G3.synthesis, n).magnitude_ema_beta for n in G3.synthesis.layer_names] == \
        [0.999] * len(G3.synthesis.layer_names)

#----------------------------------------------------------------------------
# Interface and behaviour on small random networks.

def tiny_G(cfg: str, c_dim: int = 0, **extra) -> torch.nn.Module:
    return build_G(cfg, img_resolution=16, channel_base=256, channel_max=16, z_dim=8, w_dim=8, c_dim=c_dim,
                   **extra).eval()


@pytest.mark.parametrize('cfg', GOLDEN_CFGS)
def test_update_emas(cfg):
    torch.manual_seed(0)
    G = tiny_G(cfg)
    z = torch.randn([4, G.z_dim])
    w_avg = G.mapping.w_avg.clone()
    emas = {n: b.clone() for n, b in G.named_buffers() if n.endswith('magnitude_ema')}
    with torch.no_grad():
        G(z, None)
        assert torch.equal(G.mapping.w_avg, w_avg), 'w_avg must not move without update_emas'
        G(z, None, update_emas=True)
        w = G.mapping(z, None)[:, 0]
    beta = 0.998  # the published default of mapping.w_avg_beta (spec section 3); tiny_G does not set it
    assert G.mapping.w_avg_beta == beta
    assert torch.allclose(G.mapping.w_avg, w.mean(0) + beta * (w_avg - w.mean(0)), atol=1e-6)
    if cfg != 'stylegan2':
        assert emas
        moved = [n for n, b in G.named_buffers() if n.endswith('magnitude_ema') and not torch.equal(b, emas[n])]
        assert sorted(moved) == sorted(emas)
        # The input layer's EMA follows the mean square of its input exactly.
        layer = getattr(G.synthesis, G.synthesis.layer_names[0])
        with torch.no_grad():
            x = G.synthesis.input(G.mapping(z, None)[:, 0])
        ms = x.square().mean()
        assert layer.magnitude_ema_beta == 0.5 ** (32 / 20000)  # as build_G passes it
        expected = ms + 0.5 ** (32 / 20000) * (emas[f'synthesis.{G.synthesis.layer_names[0]}.magnitude_ema'] - ms)
        assert torch.allclose(layer.magnitude_ema, expected, rtol=1e-5)


@pytest.mark.parametrize('cfg', GOLDEN_CFGS)
def test_conditional_networks(cfg):
    torch.manual_seed(0)
    G = tiny_G(cfg, c_dim=5)
    D = build_D(img_resolution=16, channel_base=256, channel_max=16, c_dim=5).eval()
    assert hasattr(G.mapping, 'embed') and hasattr(D, 'mapping')
    z = torch.randn([2, G.z_dim])
    c = torch.nn.functional.one_hot(torch.tensor([1, 3]), 5).float()
    with torch.no_grad():
        img = G(z, c, noise_mode='const')
        img_other = G(z, torch.nn.functional.one_hot(torch.tensor([2, 0]), 5).float(), noise_mode='const')
        logits = D(img, c)
    assert img.shape == (2, 3, 16, 16) and logits.shape == (2, 1)
    assert not torch.allclose(img, img_other), 'the label must change the image'
    assert torch.isfinite(logits).all()


def test_stylegan2_modes_agree():
    """Fused and unfused modulated convolutions, random/const/none noise, fp16 flags on CPU."""
    torch.manual_seed(0)
    G = tiny_G('stylegan2')
    for block in G.synthesis.children():
        for layer in block.children():
            if hasattr(layer, 'noise_strength'):
                layer.noise_strength.data.fill_(0.3)
    ws = G.mapping(torch.randn([3, G.z_dim]), None).detach()
    with torch.no_grad():
        fused = G.synthesis(ws, noise_mode='const', fused_modconv=True)
        unfused = G.synthesis(ws, noise_mode='const', fused_modconv=False)
        default = G.synthesis(ws, noise_mode='const')  # CPU: fp32 even without force_fp32
        fp32 = G.synthesis(ws, noise_mode='const', force_fp32=True)
        none = G.synthesis(ws, noise_mode='none')
        rnd1 = G.synthesis(ws, noise_mode='random')
        rnd2 = G.synthesis(ws, noise_mode='random')
    assert rel_err(unfused, fused) < 1e-5
    assert torch.equal(default, fp32)
    assert not torch.allclose(none, fused) and not torch.allclose(rnd1, rnd2)
    G.train()  # 'inference_only': unfused while training, same result
    with torch.no_grad():
        assert rel_err(G.synthesis(ws, noise_mode='const'), fused) < 1e-5


@pytest.mark.parametrize('architecture', ['orig', 'skip', 'resnet'])
def test_stylegan2_architectures(architecture):
    torch.manual_seed(0)
    G = sg2.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=1, channel_base=128,
                      channel_max=16, architecture=architecture)
    D = sg2.Discriminator(c_dim=0, img_resolution=16, img_channels=1, channel_base=128, channel_max=16,
                          architecture=architecture, epilogue_kwargs=dict(mbstd_group_size=2))
    img = G(torch.randn([4, 8]), None)
    logits = D(img, None)
    assert img.shape == (4, 1, 16, 16) and logits.shape == (4, 1)
    logits.sum().backward()
    assert all(p.grad is not None for p in G.synthesis.parameters())
    assert hasattr(G.synthesis.b8, 'skip') == (architecture == 'resnet')
    assert hasattr(G.synthesis.b8, 'torgb') == (architecture == 'skip')
    assert hasattr(D.b16, 'fromrgb') and hasattr(D.b8, 'fromrgb') == (architecture == 'skip')


def test_discriminator_freeze_layers_and_mbstd():
    torch.manual_seed(0)
    D = sg2.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=128, channel_max=16,
                          block_kwargs=dict(freeze_layers=5))
    # b16: fromrgb, conv0, conv1, skip (layers 0-3); b8: conv0 (4) frozen, conv1 (5) trainable.
    frozen = {n for n, _ in D.named_buffers() if n.endswith(('weight', 'bias'))}
    assert frozen == {'b16.fromrgb.weight', 'b16.fromrgb.bias', 'b16.conv0.weight', 'b16.conv0.bias',
                      'b16.conv1.weight', 'b16.conv1.bias', 'b16.skip.weight', 'b8.conv0.weight', 'b8.conv0.bias'}
    assert 'b8.conv1.weight' in dict(D.named_parameters())
    assert D.state_dict().keys() == build_D(img_resolution=16, channel_base=128, channel_max=16).state_dict().keys()

    mbstd = sg2.MinibatchStdLayer(group_size=2)
    x = torch.randn([4, 6, 3, 3])
    y = mbstd(x)
    # Groups pair sample n with n + N/G; the extra channel is the mean std within the group.
    pair = torch.stack([x[0], x[2]])
    expected = (pair.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    assert y.shape == (4, 7, 3, 3)
    assert torch.allclose(y[0, 6], expected.expand(3, 3)) and torch.allclose(y[2, 6], expected.expand(3, 3))


def test_stylegan3_input_transform_is_honoured():
    """The user transform maps output to input coordinates: a shift by one sample moves the
    Fourier features by exactly one column."""
    torch.manual_seed(0)
    G = tiny_G('stylegan3-t')
    inp = G.synthesis.input
    w = torch.randn([2, G.w_dim])
    with torch.no_grad():
        base = inp(w)
        inp.transform.copy_(torch.tensor([[1, 0, 1 / inp.sampling_rate], [0, 1, 0], [0, 0, 1]]))
        shifted = inp(w)
        img_shifted = G(torch.randn([1, G.z_dim]), None)
        inp.transform.copy_(torch.eye(3))
    assert base.shape == (2, inp.channels, int(inp.size[1]), int(inp.size[0]))
    assert torch.allclose(shifted[..., :-1], base[..., 1:], atol=1e-5)
    assert not torch.allclose(shifted, base)
    assert torch.isfinite(img_shifted).all()


def test_stylegan3_schedule_and_filters():
    sched = sg3.layer_schedule(256)
    assert sched['sampling_rates'][0] == 16 and sched['sampling_rates'][-1] == 256
    assert np.all(np.diff(sched['cutoffs']) >= 0) and sched['cutoffs'][-1] == 128
    f = sg3.design_lowpass_filter(numtaps=12, cutoff=4, width=4, fs=32)
    assert f.shape == (12,) and abs(float(f.sum()) - 1) < 1e-6
    r = sg3.design_lowpass_filter(numtaps=13, cutoff=4, width=4, fs=32, radial=True)  # odd: centre tap r=0
    assert r.shape == (13, 13) and torch.isfinite(r).all() and abs(float(r.sum()) - 1) < 1e-6
    assert torch.allclose(r, r.t()) and torch.allclose(r, r.flip(0))
    assert sg3.design_lowpass_filter(numtaps=1, cutoff=4, width=4, fs=32) is None


@pytest.mark.parametrize('cfg', ['stylegan3-t', 'stylegan3-r'])
def test_stylegan3_backward_and_fp16_flag_on_cpu(cfg):
    torch.manual_seed(0)
    G = tiny_G(cfg).train()
    assert any(getattr(G.synthesis, n).use_fp16 for n in G.synthesis.layer_names)
    z = torch.randn([2, G.z_dim])
    img = G(z, None)
    assert img.dtype == torch.float32  # fp16 layers stay fp32 on the CPU
    img.square().mean().backward()
    assert all(p.grad is not None for p in G.parameters() if p.requires_grad and p.dim() > 0)
    with torch.no_grad():
        assert torch.equal(G(z, None), G(z, None, force_fp32=True))

@pytest.mark.parametrize('cfg', GOLDEN_CFGS)
def test_float16_layers_as_on_a_gpu(cfg, monkeypatch):
    """The float16 path every GPU run takes (num_fp16_res=4, conv_clamp=256), run on the CPU: the
    layers compute in float16, G's image and D's logits stay within float16 precision of float32, and
    G's backward and D's R1 double backward give finite gradients (dtype plumbing checked without a GPU)."""
    monkeypatch.setattr(sg2, 'FP16_DEVICE_TYPES', ('cuda', 'cpu'))
    monkeypatch.setattr(sg3, 'FP16_DEVICE_TYPES', ('cuda', 'cpu'))
    torch.manual_seed(0)
    G = tiny_G(cfg).train()
    D = build_D(img_resolution=16, channel_base=256, channel_max=16)
    dtypes = set()
    hooks = [m.register_forward_hook(lambda m, i, o: dtypes.add((o[0] if isinstance(o, tuple) else o).dtype))
             for m in list(G.synthesis.children()) + list(D.children()) if not isinstance(m, torch.nn.ModuleList)]
    z = torch.randn([2, G.z_dim])
    ws = G.mapping(z, None)
    img = G.synthesis(ws, noise_mode='const')
    for h in hooks:
        h.remove()
    assert torch.float16 in dtypes and img.dtype == torch.float32
    with torch.no_grad():
        img32 = G.synthesis(ws, noise_mode='const', force_fp32=True)
        assert rel_err(img.detach(), img32) < 2e-2, rel_err(img.detach(), img32)
        assert rel_err(D(img32, None), D(img32, None, force_fp32=True)) < 2e-2
    img.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)
    reals = img32.detach().requires_grad_(True)
    logits = D(reals, None)
    assert logits.dtype == torch.float32
    (grad,) = torch.autograd.grad(logits.sum(), reals, create_graph=True)
    (grad.square().sum() + logits.sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in D.parameters() if p.requires_grad)

#----------------------------------------------------------------------------
# The module source travels inside pickles: it may import only what published modules import.

ALLOWED_IMPORTS = {'numpy', 'scipy.signal', 'scipy.optimize', 'torch', 'torch_utils.misc', 'torch_utils.persistence',
                   'torch_utils.ops.bias_act', 'torch_utils.ops.conv2d_gradfix', 'torch_utils.ops.conv2d_resample',
                   'torch_utils.ops.filtered_lrelu', 'torch_utils.ops.fma', 'torch_utils.ops.upfirdn2d'}


@pytest.mark.parametrize('module', ['training/networks_stylegan2.py', 'training/networks_stylegan3.py'])
def test_network_modules_import_only_published_dependencies(module):
    tree = ast.parse((REPO / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.update(f'{node.module}.{alias.name}' for alias in node.names)
    assert imported and imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS

#----------------------------------------------------------------------------

"""Loading network pickles: the published StyleGAN2-ADA-PyTorch and StyleGAN3 snapshots, and ours.

Every script loads networks through `load_network_pkl`. A snapshot is a pickled dict with the
networks `G`, `D`, `G_ema`, the `augment_pipe` and `training_set_kwargs`
(`shared/spec/interop.md`, section 1); keys missing from older files come back as None.

The networks inside a pickle are instances of the classes whose source the pickle carries.
`rebuild_network` turns such a network into an instance of *our* class of the same kind
(`training.networks_stylegan2` / `training.networks_stylegan3`), built from its stored
constructor arguments with every parameter and buffer copied by name, so published weights run
through our code paths (and any speed-ups made there).

The old TensorFlow-format pickles (StyleGAN / StyleGAN2 TF releases) are not supported: they are
recognised and refused with a clear message.

Loading a pickle runs the code stored in it: open only files from sources you trust.

Command line: `python legacy.py --source=published.pkl --dest=ours.pkl` rewrites a snapshot with
its networks rebuilt as our classes.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import pickle
from typing import Any, BinaryIO

import click
import torch

import dnnlib
from torch_utils import misc

log = logging.getLogger(__name__)

NETWORK_KEYS = ('G', 'D', 'G_ema')
SNAPSHOT_KEYS = NETWORK_KEYS + ('augment_pipe', 'training_set_kwargs')

#----------------------------------------------------------------------------
# Unpickling.

class _TFNetworkStub:
    """Stands in for `dnnlib.tflib.network.Network` so that TF-format pickles can be recognised."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _SnapshotUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith('dnnlib.tflib'):
            return _TFNetworkStub
        return super().find_class(module, name)


def _describe(f: Any) -> str:
    name = getattr(f, 'name', None)
    return str(name) if isinstance(name, (str, os.PathLike)) else 'the network pickle'


def _starts_with(f: BinaryIO, magic: bytes) -> bool:
    """Whether the seekable file `f` begins with `magic` (False when it cannot be rewound)."""
    try:
        f.seek(0)
        return f.read(len(magic)) == magic
    except (OSError, AttributeError, ValueError):
        return False


def load_network_pkl(f: BinaryIO | str | os.PathLike, force_fp16: bool = False) -> dict:
    """Read a network snapshot.

    f: an open binary file, or a path / file:// / http(s):// URL (opened with dnnlib.util.open_url).
    force_fp16: rebuild G, D and G_ema with float16 for the top 4 resolutions and conv_clamp=256
        (takes effect on CUDA only) when their stored settings differ.

    Returns a dict with keys G, D, G_ema (torch.nn.Module or None), augment_pipe (Module or None)
    and training_set_kwargs (dict or None), plus any other keys the file holds.
    Raises dnnlib.UserError when the file is not a network pickle or holds no networks."""
    if isinstance(f, (str, os.PathLike)):
        with dnnlib.util.open_url(os.fspath(f)) as fp:
            return load_network_pkl(fp, force_fp16=force_fp16)

    what = _describe(f)
    try:
        data = _SnapshotUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, UnicodeDecodeError) as e:
        if _starts_with(f, b'PK\x03\x04'):
            raise dnnlib.UserError(f"{what} is a PyTorch checkpoint (torch.save), not a network pickle; a pose-LSTM "
                                   f"checkpoint goes to --lstm, a generator snapshot to --network") from None
        raise dnnlib.UserError(f"{what} is not a readable network pickle ({type(e).__name__}: {e})") from None
    except (ImportError, AttributeError) as e:
        raise dnnlib.UserError(f"{what} refers to code that is not available here ({type(e).__name__}: {e}); "
                               f"it is not a network snapshot this project can read") from None

    if isinstance(data, tuple) and len(data) == 3 and all(isinstance(x, _TFNetworkStub) for x in data):
        raise dnnlib.UserError(f"{what} is a TensorFlow-format StyleGAN/StyleGAN2 pickle, which is not supported; "
                               f"use a PyTorch snapshot (StyleGAN2-ADA-PyTorch or StyleGAN3 release)")
    if not isinstance(data, dict) or not any(isinstance(data.get(k), torch.nn.Module) for k in NETWORK_KEYS):
        kind = f"a dict with keys {sorted(map(str, data))[:8]}" if isinstance(data, dict) else type(data).__name__
        raise dnnlib.UserError(f"{what} holds no networks ({kind}); expected a snapshot dict with 'G', 'D' "
                               f"and 'G_ema'")

    data = dict(data)
    for key in SNAPSHOT_KEYS:
        data.setdefault(key, None)
    for key in NETWORK_KEYS:
        if data[key] is not None and not isinstance(data[key], torch.nn.Module):
            raise dnnlib.UserError(f"{what}: '{key}' is a {type(data[key]).__name__}, not a network")

    if force_fp16:
        for key in NETWORK_KEYS:
            if data[key] is not None and can_rebuild(data[key]):
                data[key] = _with_fp16(data[key])
    return data


def _with_fp16(net: torch.nn.Module) -> torch.nn.Module:
    kwargs = _flat_init_kwargs(net)
    if kwargs.get('num_fp16_res') == 4 and kwargs.get('conv_clamp') == 256:
        return net
    return rebuild_network(net, num_fp16_res=4, conv_clamp=256)

#----------------------------------------------------------------------------
# Rebuilding loaded networks as our classes.

_OUR_CLASSES = {
    ('stylegan2', 'Generator'): 'training.networks_stylegan2.Generator',
    ('stylegan3', 'Generator'): 'training.networks_stylegan3.Generator',
    ('stylegan2', 'Discriminator'): 'training.networks_stylegan2.Discriminator',
}


def network_kind(net: torch.nn.Module) -> tuple[str, str] | None:
    """('stylegan2' | 'stylegan3', 'Generator' | 'Discriminator') for a known network, else None.

    Recognises the class by name and module tree, whichever file it came from (ours, the
    StyleGAN2-ADA-PyTorch `training.networks` or the StyleGAN3 `training.networks_stylegan*`)."""
    name = type(net).__name__
    if name == 'Generator' and hasattr(net, 'synthesis') and hasattr(net, 'mapping'):
        if hasattr(net.synthesis, 'input') and hasattr(net.synthesis, 'layer_names'):
            return ('stylegan3', 'Generator')
        if hasattr(net.synthesis, 'block_resolutions'):
            return ('stylegan2', 'Generator')
    if name == 'Discriminator' and hasattr(net, 'b4') and hasattr(net, 'block_resolutions'):
        return ('stylegan2', 'Discriminator')
    return None


def can_rebuild(net: Any) -> bool:
    return isinstance(net, torch.nn.Module) and network_kind(net) is not None and hasattr(net, '_init_kwargs')


def _flat_init_kwargs(net: torch.nn.Module) -> dict:
    """Constructor keywords of a persistent network. StyleGAN2-ADA-PyTorch generators took the
    synthesis settings as one `synthesis_kwargs` dict; ours take them as keywords."""
    kwargs = copy.deepcopy(dict(getattr(net, '_init_kwargs', None) or {}))
    nested = kwargs.pop('synthesis_kwargs', None)
    if nested:
        kwargs.update(nested)
    return kwargs


def rebuild_network(net: torch.nn.Module, **overrides) -> torch.nn.Module:
    """Build our class of the same kind as `net` from its stored constructor arguments (updated
    with `overrides`, given as keywords of the top-level constructor or of the synthesis
    network), copy every parameter and buffer by name, and match device, train/eval mode and
    requires_grad. The result computes what `net` computes (exactly, for equal settings).

    Raises dnnlib.UserError for networks of an unknown kind or without stored arguments."""
    kind = network_kind(net)
    if kind is None or not hasattr(net, '_init_kwargs'):
        raise dnnlib.UserError(f"Cannot rebuild a {type(net).__module__}.{type(net).__name__}: only StyleGAN2/StyleGAN3 "
                               f"generators and StyleGAN2 discriminators from persistent pickles are supported")
    args = tuple(getattr(net, '_init_args', ()) or ())
    kwargs = _flat_init_kwargs(net)
    kwargs.update(overrides)

    cls = dnnlib.util.get_obj_by_name(_OUR_CLASSES[kind])
    new = cls(*args, **kwargs)
    # Settings that older releases defaulted differently and did not store in the arguments.
    if hasattr(net, 'mapping') and hasattr(new, 'mapping') and hasattr(net.mapping, 'w_avg_beta'):
        new.mapping.w_avg_beta = net.mapping.w_avg_beta

    ref = next(iter(misc.params_and_buffers(net)), None)
    if ref is not None:
        new = new.to(ref.device)
    try:
        misc.copy_params_and_buffers(net, new, require_all=True)
    except (KeyError, ValueError) as e:
        raise dnnlib.UserError(f"Rebuilt {kind[0]} {kind[1]} does not match the stored network: {e}") from None
    requires_grad = dict(net.named_parameters())
    for name, param in new.named_parameters():
        param.requires_grad_(requires_grad[name].requires_grad if name in requires_grad else False)
    new.train(net.training)
    return new


def rebuild_snapshot(data: dict) -> dict:
    """A copy of a loaded snapshot with G, D and G_ema rebuilt as our classes (others as they are)."""
    out = dict(data)
    for key in NETWORK_KEYS:
        if out.get(key) is not None and can_rebuild(out[key]):
            out[key] = rebuild_network(out[key])
    return out

#----------------------------------------------------------------------------
# Command line: convert a snapshot to our classes.

@click.command()
@click.option('--source', required=True, metavar='PATH|URL', help='Network pickle to read (trusted files only)')
@click.option('--dest', required=True, metavar='PATH', help='Pickle to write')
@click.option('--force-fp16', is_flag=True, help='Also set num_fp16_res=4, conv_clamp=256')
@dnnlib.util.cli_main
def convert_network_pickle(source: str, dest: str, force_fp16: bool) -> None:
    """Rewrite a StyleGAN2-ADA-PyTorch / StyleGAN3 snapshot with its networks as our classes.

    \b
    Example: python legacy.py --source=stylegan3-r-ffhqu-256x256.pkl --dest=ffhqu-256-ours.pkl"""
    if os.path.isfile(source) and os.path.isfile(dest) and os.path.samefile(source, dest):
        raise dnnlib.UserError(f"--dest is --source ({dest}); write the converted pickle to another file, so "
                               f"that the original is kept")
    data = load_network_pkl(source, force_fp16=force_fp16)
    data = rebuild_snapshot(data)
    buf = io.BytesIO()
    pickle.dump(data, buf)
    with dnnlib.util.atomic_write(dest) as f:
        f.write(buf.getvalue())
    click.echo(f'Wrote {dest}')


if __name__ == '__main__':
    convert_network_pickle()

#----------------------------------------------------------------------------

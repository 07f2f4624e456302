"""torch_utils.persistence: pickles carry their module source and load where it cannot be imported."""

import os
import pickle
import pickletools
import subprocess
import sys
import textwrap

import pytest
import torch

import dnnlib
from torch_utils import persistence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODULE_SRC = textwrap.dedent('''
    import torch
    from torch_utils import persistence

    @persistence.persistent_class
    class Scale(torch.nn.Module):
        def __init__(self, channels, factor=2.0):
            super().__init__()
            self.factor = factor
            self.weight = torch.nn.Parameter(torch.arange(channels, dtype=torch.float32))
            self.register_buffer("offset", torch.ones([channels]))

        def forward(self, x):
            return x * self.weight * self.factor + self.offset
''')


def _run(code: str, pythonpath: list[str], cwd: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath))
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_round_trip_in_process_without_defining_module(tmp_path):
    moddir = tmp_path / "mods"
    moddir.mkdir()
    (moddir / "scalemod.py").write_text(MODULE_SRC)
    pkl = tmp_path / "obj.pkl"
    _run(f'''
        import pickle, torch, scalemod
        m = scalemod.Scale(4, factor=3.0)
        with open({str(pkl)!r}, "wb") as f:
            pickle.dump(m, f)
        print(m(torch.ones(4)).tolist())
    ''', [str(moddir), REPO], cwd=str(tmp_path))

    # A fresh process where `scalemod` cannot be imported.
    out = _run(f'''
        import pickle, torch
        try:
            import scalemod
            raise SystemExit("scalemod should not be importable here")
        except ImportError:
            pass
        with open({str(pkl)!r}, "rb") as f:
            m = pickle.load(f)
        from torch_utils import persistence
        assert persistence.is_persistent(m)
        assert m.init_args == (4,) and m.init_kwargs == dict(factor=3.0)
        print(m(torch.ones(4)).tolist())
        print(type(m).__module__)
    ''', [REPO], cwd=str(tmp_path))
    values, module_name = out.strip().splitlines()
    assert eval(values) == [1.0, 4.0, 7.0, 10.0]
    assert module_name.startswith("_imported_module_")


def test_pickle_layout_is_the_published_one(tmp_path):
    moddir = tmp_path / "mods"
    moddir.mkdir()
    (moddir / "scalemod2.py").write_text(MODULE_SRC)
    sys.path.insert(0, str(moddir))
    try:
        import scalemod2
        m = scalemod2.Scale(3)
    finally:
        sys.path.remove(str(moddir))
    fn, args, state = m.__reduce__()[:3]
    assert fn is persistence._reconstruct_persistent_obj and state is None
    meta = args[0]
    assert meta["type"] == "class" and meta["version"] == 6 and meta["class_name"] == "Scale"
    assert meta["module_src"] == MODULE_SRC
    assert isinstance(meta["state"]["_init_kwargs"], dnnlib.EasyDict)
    # The stream names the function a published loader calls, by module and name.
    strings = {arg for op, arg, pos in pickletools.genops(pickle.dumps(m)) if isinstance(arg, str)}
    assert {"torch_utils.persistence", "_reconstruct_persistent_obj"} <= strings, strings
    # deepcopy goes through the same path and keeps the class
    clone = __import__("copy").deepcopy(m)
    assert type(clone) is type(m) and torch.equal(clone.weight, m.weight)


class _HandBuilt:
    """Pickles as a published persistent object with a given meta dict."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (persistence._reconstruct_persistent_obj, (self.meta,))


def test_hand_built_published_meta_uses_our_ops():
    src = textwrap.dedent('''
        import numpy as np
        import torch
        from torch_utils import misc
        from torch_utils import persistence
        from torch_utils.ops import bias_act
        from torch_utils.ops import upfirdn2d

        @persistence.persistent_class
        class Block(torch.nn.Module):
            def __init__(self, channels):
                super().__init__()
                self.bias = torch.nn.Parameter(torch.zeros([channels]))
                self.register_buffer("resample_filter", upfirdn2d.setup_filter([1, 3, 3, 1]))

            def forward(self, x):
                misc.assert_shape(x, [None, self.bias.shape[0], None, None])
                x = upfirdn2d.upsample2d(x, self.resample_filter)
                return bias_act.bias_act(x, self.bias, act="lrelu")
    ''')
    # The state a published pickle would hold: the nn.Module __dict__ plus constructor arguments.
    template = torch.nn.Module()
    template.bias = torch.nn.Parameter(torch.full([2], 0.5))
    template.register_buffer("resample_filter", torch.ones([4, 4]) / 16)
    state = template.__getstate__()
    state["_init_args"] = (2,)
    state["_init_kwargs"] = dnnlib.EasyDict()
    meta = dict(type="class", version=6, module_src=src, class_name="Block", state=state)
    obj = pickle.loads(pickle.dumps(_HandBuilt(meta)))
    assert type(obj).__name__ == "Block" and persistence.is_persistent(obj)
    x = torch.ones([1, 2, 3, 3])
    y = obj(x)
    assert y.shape == (1, 2, 6, 6)
    # Interior pixels: upsampled ones stay one (filter sums to 4 per 2x2 phase with gain 4), +0.5, lrelu gain sqrt(2).
    assert torch.allclose(y[0, 0, 2:4, 2:4], torch.full([2, 2], 1.5 * 2 ** 0.5), atol=1e-5)


def test_import_hook_can_patch_source():
    src = textwrap.dedent('''
        import torch
        from torch_utils import persistence

        @persistence.persistent_class
        class Answer(torch.nn.Module):
            def forward(self):
                return 41
    ''')
    state = torch.nn.Module().__getstate__()
    state["_init_args"] = ()
    state["_init_kwargs"] = dnnlib.EasyDict()
    meta = dict(type="class", version=6, module_src=src, class_name="Answer", state=state)

    def hook(meta):
        if "return 41" in meta.module_src:
            meta.module_src = meta.module_src.replace("return 41", "return 42")
        return meta
    persistence.import_hook(hook)
    try:
        obj = pickle.loads(pickle.dumps(_HandBuilt(meta)))
    finally:
        persistence._import_hooks.remove(hook)
    assert obj() == 42


def test_wrong_version_is_refused():
    meta = dict(type="class", version=5, module_src="", class_name="X", state={})
    with pytest.raises(pickle.UnpicklingError, match="version"):
        pickle.loads(pickle.dumps(_HandBuilt(meta)))

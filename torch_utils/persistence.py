"""Persistent classes: pickles that carry the source code of the classes they instantiate.

A class decorated with `@persistent_class` records the full source text of the module that defines
it. Pickling an instance stores that text with the object's state, so the pickle can be loaded
later, by a process that cannot import the defining module (or has a newer version of it): the
source is compiled into a fresh module and the object is rebuilt from it.

The pickle format is the one of the published StyleGAN2-ADA / StyleGAN3 networks: `__reduce__`
returns `(torch_utils.persistence._reconstruct_persistent_obj, (meta,), None)` with
`meta = {type: 'class', version: 6, module_src, class_name, state}`. Loading a pickle executes
the code inside it: load pickles from trusted sources only.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import io
import pickle
import sys
import types
from typing import Any, Callable

import dnnlib

#----------------------------------------------------------------------------

_version = 6                    # Version of the pickle format; must match to load.
_decorators: set[type] = set()  # Persistent classes made by `persistent_class`.
_import_hooks: list[Callable] = []  # Functions `meta -> meta` applied before reconstruction.
_module_to_src: dict[types.ModuleType, str] = {}  # Module -> its source text.
_src_to_module: dict[str, types.ModuleType] = {}  # Source text -> the module compiled from it.

#----------------------------------------------------------------------------
# Decorator.

def persistent_class(orig_class: type) -> type:
    """Make `orig_class` persistent: instances remember their constructor arguments
    (`init_args`, `init_kwargs`) and pickle together with the source of their module.

    The class must be defined at the top level of its module, and that module's source must be
    self-contained apart from imports that will be importable where the pickle is loaded."""
    assert isinstance(orig_class, type)
    if is_persistent(orig_class):
        return orig_class

    module = sys.modules[orig_class.__module__]
    assert "<locals>" not in orig_class.__qualname__, "persistent classes must be defined at module top level"
    src = _module_source(module)

    class Decorator(orig_class):
        _orig_module_src: str = src
        _orig_class_name: str = orig_class.__name__

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = dnnlib.EasyDict(copy.deepcopy(kwargs))
            _check_pickleable((self._init_args, self._init_kwargs))

        @property
        def init_args(self) -> tuple:
            return copy.deepcopy(self._init_args)

        @property
        def init_kwargs(self) -> dnnlib.EasyDict:
            return dnnlib.EasyDict(copy.deepcopy(self._init_kwargs))

        def __reduce__(self):
            fields = list(super().__reduce__())
            fields += [None] * max(3 - len(fields), 0)
            if fields[0] is not _reconstruct_persistent_obj:
                meta = dict(type="class", version=_version, module_src=self._orig_module_src,
                            class_name=self._orig_class_name, state=fields[2])
                fields[0] = _reconstruct_persistent_obj
                fields[1] = (meta,)
                fields[2] = None
            return tuple(fields)

    Decorator.__name__ = orig_class.__name__
    Decorator.__qualname__ = orig_class.__qualname__
    Decorator.__module__ = orig_class.__module__
    Decorator.__doc__ = orig_class.__doc__
    _decorators.add(Decorator)
    return Decorator


def is_persistent(obj: Any) -> bool:
    """True for a persistent class or an instance of one."""
    try:
        if obj in _decorators:
            return True
    except TypeError:  # unhashable
        pass
    return type(obj) in _decorators


def import_hook(hook: Callable[[dnnlib.EasyDict], dnnlib.EasyDict | None]) -> None:
    """Register `hook(meta) -> meta` to run on every persistent object before it is rebuilt.

    A hook may edit `meta.module_src` (for example to patch old code), `meta.class_name` or
    `meta.state`, and return the (possibly new) meta; returning None keeps the edited one."""
    assert callable(hook)
    _import_hooks.append(hook)

#----------------------------------------------------------------------------
# Reconstruction.

def _reconstruct_persistent_obj(meta: dict) -> Any:
    """Rebuild a persistent object from the `meta` dict stored in its pickle."""
    meta = dnnlib.EasyDict(meta)
    meta.state = dnnlib.EasyDict(meta.state) if meta.state is not None else None
    for hook in _import_hooks:
        result = hook(meta)
        if result is not None:
            meta = result
    if meta.get("version") != _version:
        raise pickle.UnpicklingError(f"Unsupported persistent-object format version {meta.get('version')} "
                                     f"(this code reads version {_version})")
    if meta.type != "class":
        raise pickle.UnpicklingError(f"Unsupported persistent-object type {meta.type!r}")

    module = _src_to_module_get(meta.module_src)
    try:
        orig_class = module.__dict__[meta.class_name]
    except KeyError:
        raise pickle.UnpicklingError(f"Class {meta.class_name!r} not found in the module source stored in the pickle") from None
    decorator_class = persistent_class(orig_class)
    obj = decorator_class.__new__(decorator_class)
    state = meta.state if meta.state is not None else {}
    setstate = getattr(obj, "__setstate__", None)
    if callable(setstate):
        setstate(state)
    else:
        obj.__dict__.update(state)
    return obj


def _module_source(module: types.ModuleType) -> str:
    """Source text of a module, also for modules we compiled from text ourselves."""
    src = _module_to_src.get(module)
    if src is None:
        src = inspect.getsource(module)
        _module_to_src[module] = src
        _src_to_module.setdefault(src, module)
    return src


def _src_to_module_get(src: str) -> types.ModuleType:
    """The module compiled from `src`, compiling it once (cached by the text itself)."""
    module = _src_to_module.get(src)
    if module is None:
        digest = hashlib.sha256(src.encode("utf-8")).hexdigest()[:16]
        module_name = "_imported_module_" + digest
        module = types.ModuleType(module_name)
        module.__file__ = f"<persistent source {digest}>"
        sys.modules[module_name] = module  # lets pickle find helper classes defined in the source
        _module_to_src[module] = src
        _src_to_module[src] = module
        try:
            exec(compile(src, module.__file__, "exec"), module.__dict__)  # noqa: S102 (trusted pickles only)
        except BaseException:
            del sys.modules[module_name]
            del _module_to_src[module]
            del _src_to_module[src]
            raise
    return module

#----------------------------------------------------------------------------
# Pickleability check of constructor arguments.

def _check_pickleable(obj: Any) -> None:
    """Raise TypeError if `obj` holds something that would not pickle cleanly.

    Tensors and arrays are replaced by placeholders first: they pickle fine and can be large."""
    def strip(x):
        if isinstance(x, (list, tuple, set)):
            return [strip(v) for v in x]
        if isinstance(x, dict):
            return [[strip(k), strip(v)] for k, v in x.items()]
        if isinstance(x, (str, int, float, bool, bytes, bytearray, type(None))):
            return None
        if f"{type(x).__module__}.{type(x).__name__}" in ("numpy.ndarray", "torch.Tensor", "torch.nn.parameter.Parameter"):
            return None
        if is_persistent(x):
            return None
        return x
    try:
        with io.BytesIO() as f:
            pickle.dump(strip(obj), f)
    except Exception as e:
        raise TypeError(f"Constructor arguments of a persistent class must be pickleable: {e}") from e

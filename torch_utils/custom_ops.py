"""Lazy builds of the C++/CUDA op kernels with ninja, and a fallback when they cannot be built.

Each op module declares its kernel once at import time with `Plugin(...)` (cheap: nothing is
built, nothing is probed). The first call that wants the fast path calls `plugin.load()`, which
compiles the sources through `torch.utils.cpp_extension` into a folder under
`TORCH_EXTENSIONS_DIR` named by a hash of the sources and flags, and imports the result. If the
build fails (no compiler, no nvcc, a version mismatch), `load()` logs one warning and returns None,
and the op uses its reference path; it does not try again in that process.

Robustness:
- Ranks and processes that build the same plugin at once share one build: an OS file lock
  (released by the kernel when a process dies) serialises them; the others then import the result.
- A stale `lock` file left in the build folder by a killed torch build would make torch wait
  forever; we remove it while holding our own lock, so nothing ever hangs on it.
- `python -m torch_utils.custom_ops --build` pre-builds every plugin that applies here
  (the Dockerfile runs it).

Environment: `TORCH_EXTENSIONS_DIR` (cache root), `TORCH_CUDA_ARCH_LIST` (defaults to the GPUs
present), `SIGNSTYLEGAN_NO_CUSTOM_OPS=1` (never build or use kernels: reference paths only).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import importlib
import logging
import os
import shutil
import sys
import types
from typing import Any, Sequence

import torch

import dnnlib

log = logging.getLogger(__name__)

verbosity = "brief"  # 'none', 'brief' (one line per build) or 'full' (compiler output)

_plugins: dict[str, "Plugin"] = {}  # every declared plugin, by name

#----------------------------------------------------------------------------

def custom_ops_disabled() -> bool:
    """True when the user asked for reference paths only (SIGNSTYLEGAN_NO_CUSTOM_OPS=1)."""
    return os.environ.get("SIGNSTYLEGAN_NO_CUSTOM_OPS", "0").lower() not in ("", "0", "false", "no")


def _build_root() -> str:
    from torch.utils.cpp_extension import get_default_build_root
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
    cuda = f"cu{torch.version.cuda.replace('.', '')}" if torch.version.cuda else "cpu"
    tag = f"py{sys.version_info.major}{sys.version_info.minor}_torch{torch.__version__.split('+')[0]}_{cuda}"
    return os.path.join(root, tag)


def _find_nvcc() -> str | None:
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    exe = "nvcc.exe" if sys.platform == "win32" else "nvcc"
    if cuda_home and os.path.isfile(os.path.join(cuda_home, "bin", exe)):
        return os.path.join(cuda_home, "bin", exe)
    return shutil.which("nvcc")


def _default_cuda_arch_list() -> str | None:
    """Compute capabilities of the GPUs present, e.g. '8.0;9.0' (None without a GPU)."""
    if not torch.cuda.is_available():
        return None
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    return ";".join(f"{major}.{minor}" for major, minor in caps)


#----------------------------------------------------------------------------

def get_plugin(module_name: str, sources: Sequence[str], headers: Sequence[str] | None = None,
               source_dir: str | None = None, **build_kwargs) -> types.ModuleType:
    """Build (if needed) and import an extension module from C++/CUDA `sources`.

    `sources` and `headers` are file names relative to `source_dir`. `build_kwargs` go to
    `torch.utils.cpp_extension.load` (extra_cflags, extra_cuda_cflags, extra_ldflags, with_cuda...).
    The build folder's name carries a hash of the sources, headers, flags and compiler, so any change
    rebuilds and identical requests share a build. Raises on failure."""
    from torch.utils import cpp_extension

    headers = list(headers or [])
    if source_dir is not None:
        sources = [os.path.join(source_dir, s) for s in sources]
        headers = [os.path.join(source_dir, h) for h in headers]
    sources = [os.path.abspath(s) for s in sources]
    headers = [os.path.abspath(h) for h in headers]
    if any(s.endswith(".cu") for s in sources) and "TORCH_CUDA_ARCH_LIST" not in os.environ:
        arch = _default_cuda_arch_list()
        if arch is not None:
            os.environ["TORCH_CUDA_ARCH_LIST"] = arch

    h = hashlib.sha256()
    for path in sorted(sources + headers):
        h.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    h.update(repr(sorted((k, repr(v)) for k, v in build_kwargs.items())).encode())
    h.update(os.environ.get("TORCH_CUDA_ARCH_LIST", "").encode())
    h.update(os.environ.get("CXX", "").encode())  # another compiler: another build
    digest = h.hexdigest()[:12]
    build_dir = os.path.join(_build_root(), f"{module_name}_{digest}")
    ext_name = f"{module_name}_{digest}"

    verbose = verbosity == "full"
    os.makedirs(os.path.dirname(build_dir), exist_ok=True)
    with dnnlib.util.exclusive_lock(build_dir + ".flock"):  # concurrent ranks: one builds, the others wait
        os.makedirs(build_dir, exist_ok=True)
        stale = os.path.join(build_dir, "lock")
        if os.path.exists(stale):  # left by a killed torch build; we hold the only lock
            os.remove(stale)
        for path in sources + headers:  # a self-contained copy: later edits do not affect this build
            dst = os.path.join(build_dir, os.path.basename(path))
            if not os.path.isfile(dst):
                shutil.copyfile(path, dst + ".tmp")
                os.replace(dst + ".tmp", dst)
        copied = [os.path.join(build_dir, os.path.basename(s)) for s in sources]
        if verbosity != "none" and not glob.glob(os.path.join(build_dir, f"{ext_name}*.so")) \
                and not glob.glob(os.path.join(build_dir, f"{ext_name}*.pyd")):
            log.info("Building custom op '%s' (once; cached in %s)...", module_name, build_dir)
        module = cpp_extension.load(name=ext_name, sources=copied, build_directory=build_dir,
                                    verbose=verbose, **build_kwargs)
    return module


class Plugin:
    """A kernel module declared by an op, built and imported on first `load()`.

    kind: 'cuda' (needs CUDA tensors, a CUDA build of torch and nvcc) or 'cpu' (needs a C++
    compiler; used for CPU tensors). `fallback_kwargs`: build settings tried when the build with
    `build_kwargs` fails (e.g. without -fopenmp and -march=native, which some compilers lack)."""

    def __init__(self, name: str, sources: Sequence[str], headers: Sequence[str] = (), source_dir: str | None = None,
                 kind: str = "cuda", fallback_kwargs: dict[str, Any] | None = None, **build_kwargs):
        assert kind in ("cuda", "cpu")
        self.name = name
        self.sources = list(sources)
        self.headers = list(headers)
        self.source_dir = source_dir
        self.kind = kind
        self.build_kwargs = build_kwargs
        self.fallback_kwargs = fallback_kwargs
        self._module: types.ModuleType | None = None
        self._error: str | None = None
        _plugins[name] = self

    def unavailable_reason(self) -> str | None:
        """Why this plugin cannot be built here (None if it can be tried)."""
        if custom_ops_disabled():
            return "disabled by SIGNSTYLEGAN_NO_CUSTOM_OPS"
        if self.kind == "cuda":
            if torch.version.cuda is None:
                return "this torch build has no CUDA"
            if _find_nvcc() is None:
                return "nvcc not found (install the CUDA toolkit or set CUDA_HOME)"
        else:
            if sys.platform == "win32":  # torch builds with MSVC there, which lacks the vector extensions used
                return "the CPU kernels need GCC or clang, which torch does not build with on Windows"
            cxx = os.environ.get("CXX", "c++")
            if shutil.which(cxx) is None:
                return f"no C++ compiler ({cxx}) found"
        return None

    def load(self) -> types.ModuleType | None:
        """The compiled module, or None (after one warning) when it cannot be built."""
        if self._module is not None:
            return self._module
        if self._error is not None:
            return None
        reason = self.unavailable_reason()
        if reason is None:
            for kwargs in (self.build_kwargs, self.fallback_kwargs):
                if kwargs is None:
                    continue
                try:
                    self._module = get_plugin(self.name, self.sources, self.headers, self.source_dir, **kwargs)
                except Exception as e:  # noqa: BLE001 - any build failure means: try the fallback, then the reference
                    last_line = str(e).strip().splitlines()[-1] if str(e).strip() else ""
                    reason = reason or f"{type(e).__name__}: {last_line}"  # the first build's failure is told
                    continue
                if kwargs is not self.build_kwargs:
                    log.info("Custom op '%s' built with its fallback settings (the first build failed: %s).",
                             self.name, reason)
                return self._module
        self._error = reason
        if not custom_ops_disabled():
            log.warning("Custom op '%s' unavailable (%s); using the reference implementation.", self.name, reason)
        return None

    @property
    def error(self) -> str | None:
        return self._error


def all_plugins() -> dict[str, Plugin]:
    """Every plugin declared by the op modules (imports them first)."""
    for mod in ("bias_act", "upfirdn2d", "filtered_lrelu"):
        with contextlib.suppress(ImportError):
            importlib.import_module(f"torch_utils.ops.{mod}")
    return dict(_plugins)

#----------------------------------------------------------------------------

def _main(argv: Sequence[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m torch_utils.custom_ops",
                                     description="Pre-build the custom op kernels into TORCH_EXTENSIONS_DIR.")
    parser.add_argument("--build", action="store_true", help="build every plugin that applies on this machine")
    parser.add_argument("--list", action="store_true", help="list plugins and whether they can be built")
    parser.add_argument("--verbose", action="store_true", help="show compiler output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Run as `python -m`, this file is `__main__`; the op modules register their plugins in the
    # imported `torch_utils.custom_ops`, so ask that module (and set its verbosity).
    registry = importlib.import_module("torch_utils.custom_ops")
    if args.verbose:
        registry.verbosity = "full"
    plugins = registry.all_plugins()
    if args.list or not args.build:
        for name, plugin in plugins.items():
            print(f"{name:28s} {plugin.kind:5s} {plugin.unavailable_reason() or 'buildable'}")
        return 0
    failed = 0
    for name, plugin in plugins.items():
        reason = plugin.unavailable_reason()
        if reason is not None:
            print(f"{name}: skipped ({reason})")
            continue
        module = plugin.load()
        print(f"{name}: {'built' if module is not None else 'FAILED: ' + str(plugin.error)}")
        failed += module is None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main())

"""torch_utils.custom_ops: lazy ninja builds, shared builds, stale locks, and the fallback on failure."""

import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from torch_utils import custom_ops

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GOOD_SRC = textwrap.dedent('''
    #include <torch/extension.h>
    torch::Tensor add_one(torch::Tensor x) { return x + 1; }
    PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("add_one", &add_one); }
''')

needs_cxx = pytest.mark.skipif(custom_ops.Plugin("_probe", ["x.cpp"], kind="cpu").unavailable_reason() is not None,
                               reason="needs a C++ compiler")


@pytest.fixture(scope="module")
def ext_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("torch_extensions")


@pytest.fixture(scope="module")
def src_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("src")
    (d / "good.cpp").write_text(GOOD_SRC)
    (d / "bad.cpp").write_text("#include <torch/extension.h>\nthis is not C++;\n")
    return d


def _build_in_subprocess(ext_dir, src_dir, name="good_op", timeout=300):
    code = textwrap.dedent(f'''
        import sys, torch
        sys.path.insert(0, {REPO!r})
        from torch_utils import custom_ops
        p = custom_ops.Plugin({name!r}, ["good.cpp"], source_dir={str(src_dir)!r}, kind="cpu")
        m = p.load()
        assert m is not None, p.error
        print(m.add_one(torch.zeros(3)).tolist())
    ''')
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(ext_dir))
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@needs_cxx
def test_concurrent_builds_share_one_build(ext_dir, src_dir):
    procs = [_build_in_subprocess(ext_dir, src_dir) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        assert out.strip() == "[1.0, 1.0, 1.0]"
    builds = [d for d in os.listdir(custom_ops_root(ext_dir)) if d.startswith("good_op_") and not d.endswith(".flock")]
    assert len(builds) == 1


def custom_ops_root(ext_dir):
    roots = [os.path.join(ext_dir, d) for d in os.listdir(ext_dir)]
    assert len(roots) == 1
    return roots[0]


@needs_cxx
def test_stale_lock_does_not_hang(ext_dir, src_dir):
    # Build once (shared with the test above when run together), then leave a stale torch lock.
    p = _build_in_subprocess(ext_dir, src_dir)
    assert p.wait(timeout=600) == 0
    build = [d for d in os.listdir(custom_ops_root(ext_dir)) if d.startswith("good_op_") and not d.endswith(".flock")][0]
    lock = os.path.join(custom_ops_root(ext_dir), build, "lock")
    open(lock, "w").close()
    # torch takes its `lock` file on every load, so a stale one would make this wait forever.
    p = _build_in_subprocess(ext_dir, src_dir)
    out, err = p.communicate(timeout=300)  # would hang forever without the stale-lock removal
    assert p.returncode == 0, err


@needs_cxx
def test_failed_build_warns_once_and_returns_none(ext_dir, src_dir, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(ext_dir))
    plugin = custom_ops.Plugin("bad_op", ["bad.cpp"], source_dir=str(src_dir), kind="cpu")
    with caplog.at_level(logging.WARNING, logger="torch_utils.custom_ops"):
        assert plugin.load() is None
        assert plugin.load() is None  # no second attempt, no second warning
    warnings = [r for r in caplog.records if "bad_op" in r.getMessage()]
    assert len(warnings) == 1 and "reference" in warnings[0].getMessage()


def test_disabled_by_environment(monkeypatch, src_dir):
    monkeypatch.setenv("SIGNSTYLEGAN_NO_CUSTOM_OPS", "1")
    plugin = custom_ops.Plugin("never_built", ["good.cpp"], source_dir=str(src_dir), kind="cpu")
    assert plugin.load() is None and "disabled" in plugin.error


def test_cuda_plugin_without_cuda_is_unavailable(src_dir):
    if torch.version.cuda is not None:
        pytest.skip("this torch build has CUDA")
    plugin = custom_ops.Plugin("cuda_only", ["good.cpp"], source_dir=str(src_dir), kind="cuda")
    assert "CUDA" in plugin.unavailable_reason()


def test_cpu_plugin_on_windows_says_why_it_is_unavailable(monkeypatch, src_dir, caplog):
    # torch builds with MSVC on Windows, which has none of the GCC/clang vector extensions the kernel
    # uses: one plain reason, no build tried (not "no C++ compiler (c++) found").
    monkeypatch.setattr(sys, "platform", "win32")
    plugin = custom_ops.Plugin("windows_cpu", ["good.cpp"], source_dir=str(src_dir), kind="cpu")
    with caplog.at_level("WARNING", logger="torch_utils.custom_ops"):
        assert plugin.load() is None
    assert plugin.error == "the CPU kernels need GCC or clang, which torch does not build with on Windows"
    assert len(caplog.records) == 1


def test_import_builds_nothing():
    code = ("import sys; sys.path.insert(0, %r); import torch_utils.custom_ops as c; "
            "import torch_utils.ops; print(all(p._module is None for p in c._plugins.values()))" % REPO)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "True", res.stderr

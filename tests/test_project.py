"""Project files: the CI entry calls the README's test command; the Dockerfile has its essential steps; the GPU
session kit stages what a device machine needs.

No Docker engine runs on the CI machine, so the Dockerfile is checked by parsing it, not by building it."""

import os
import pathlib
import re
import subprocess
import sys

import pytest


def _dockerfile_instructions(text):
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_ci_runs_the_readme_test_command(repo_dir):
    readme = (repo_dir / "README.md").read_text()
    ci = (repo_dir / ".ci" / "run").read_text()
    assert "make test" in readme
    assert re.search(r"^\s*make test\s*$", ci, re.M)


def test_dockerfile_base_install_and_prebuild(repo_dir):
    inst = _dockerfile_instructions((repo_dir / "Dockerfile").read_text())
    froms = [args for name, args in inst if name == "FROM"]
    assert len(froms) == 1 and froms[0].startswith("nvcr.io/nvidia/pytorch:")
    runs = [args for name, args in inst if name == "RUN"]
    install = [r for r in runs if "pip install" in r]
    assert install and any(".[pose]" in r for r in install), "installs the project's dependencies"
    assert any("torch-constraint" in r for r in install), "keeps the base image's torch"
    prebuild = [i for i, r in enumerate(runs) if "torch_utils.custom_ops --build" in r]
    assert prebuild and prebuild[0] > runs.index(install[0]), "pre-builds the custom ops after installing"
    env = " ".join(args for name, args in inst if name == "ENV")
    for var in ("TORCH_EXTENSIONS_DIR", "DNNLIB_CACHE_DIR", "TORCH_CUDA_ARCH_LIST"):
        assert var in env
    copies = [args for name, args in inst if name == "COPY"]
    assert any(c.startswith(". ") for c in copies), "copies the sources so the ops can be built"


def test_makefile_pins_torch(repo_dir):
    makefile = (repo_dir / "Makefile").read_text()
    assert re.search(r"TORCH_SPEC \?= torch==\d+\.\d+\.\d+", makefile)
    # torch is installed (pinned) before the dependencies, so pip never resolves an unpinned torch
    setup = makefile[makefile.index("$(STAMP):"):]
    assert setup.index("$(TORCH_SPEC)") < setup.index('".[pose,dev]"')


def _installed_record() -> list[str] | None:
    """The files `pip install .` put into site-packages for this project (its RECORD), or None when it
    is not installed there. (Not `importlib.metadata.distribution`: from the repository root it finds
    the build's `signstylegan.egg-info` first, whose file list is the source tree.)"""
    import importlib.metadata
    import site
    paths = [*site.getsitepackages(), site.getusersitepackages()]
    for dist in importlib.metadata.distributions(path=paths):
        if (dist.metadata["Name"] or "").lower() == "signstylegan":
            return [str(f) for f in dist.files or []]
    return None


@pytest.mark.skipif(_installed_record() is None, reason="the project is not pip-installed here (make test installs it)")
def test_packages_not_installed_into_site_packages(repo_dir):
    """`pip install .` installs the dependencies only: `training`, `utils`, `metrics` are generic
    names that would shadow (or be shadowed by) other projects' packages in site-packages."""
    ours = {"dnnlib", "torch_utils", "training", "metrics", "utils", "tests", "bench", "pretrained"}
    ours |= {p.stem for p in repo_dir.glob("*.py")}
    installed = {f.replace("\\", "/").split("/")[0].removesuffix(".py") for f in _installed_record()}
    assert not installed & ours, sorted(installed & ours)


def test_gpu_session_kit_stages_what_the_device_needs(repo_dir, shared_dir, tmp_path):
    """bench/gpu_session.sh stage: the golden op fixtures and a 256x256 dataset, for a device machine
    that gets the repository only (the `tests` and `bench` steps need a GPU)."""
    from training.dataset import ImageFolderDataset
    stage = tmp_path / "stage"
    env = dict(os.environ, DEVICE_STAGE=str(stage), PYTHON=sys.executable, SIGNSTYLEGAN_SHARED=str(shared_dir))
    res = subprocess.run(["bash", "bench/gpu_session.sh", "stage"], cwd=repo_dir, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (stage / "shared" / "fixtures" / "nvidia-compat" / "golden_ops.npz").is_file()
    ds = ImageFolderDataset(str(stage / "signer-256.zip"))
    assert len(ds) == 64 and ds.image_shape == [3, 256, 256]
    res = subprocess.run(["bash", "bench/gpu_session.sh"], cwd=repo_dir, capture_output=True, text=True)
    assert res.returncode == 2 and "usage" in res.stderr


@pytest.mark.parametrize("module", ["utils.make_animations", "utils.grid_to_video", "utils.estimate_pose",
                                    "utils.video_to_images", "utils.video_io", "utils.pose_features"])
def test_data_preparation_modules_import_without_torch(module):
    # Their --help answers at once (0.1 s; torch alone takes about a second to import here): torch and the
    # training code are imported inside the functions that render.
    code = f"import sys; sys.path.insert(0, {str(pathlib.Path(__file__).parent.parent)!r}); import {module}; " \
           "print(sorted(m for m in ('torch', 'training') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out

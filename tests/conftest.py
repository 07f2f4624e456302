"""Shared pytest fixtures: the location of `../shared` and a deterministic torch set-up."""

import os
import pathlib
import shutil
import tempfile

import pytest

REPO_DIR = pathlib.Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """Keep the tests' downloads and metric caches out of the user's cache (subprocesses inherit it)."""
    config._dnnlib_test_cache = tempfile.mkdtemp(prefix="dnnlib-test-cache-")
    os.environ["DNNLIB_CACHE_DIR"] = config._dnnlib_test_cache


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_dnnlib_test_cache", ""), ignore_errors=True)


def _shared_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("SIGNSTYLEGAN_SHARED", REPO_DIR.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> pathlib.Path:
    """`../shared` (or $SIGNSTYLEGAN_SHARED): spec, golden fixtures and real signing data."""
    path = _shared_dir()
    assert path.is_dir(), f"shared material not found at {path}; set SIGNSTYLEGAN_SHARED"
    return path


@pytest.fixture(scope="session")
def golden_dir(shared_dir) -> pathlib.Path:
    return shared_dir / "fixtures" / "nvidia-compat"


@pytest.fixture(scope="session")
def data_dir(shared_dir) -> pathlib.Path:
    return shared_dir / "data"


@pytest.fixture(scope="session")
def repo_dir() -> pathlib.Path:
    return REPO_DIR


@pytest.fixture
def one_thread():
    """In-process network work on one torch thread (see `pose_video_helpers.one_thread`)."""
    from pose_video_helpers import one_thread as single_thread
    with single_thread():
        yield

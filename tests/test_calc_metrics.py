"""calc_metrics.py (issue 5): results printed and appended to the run's metric-<name>.jsonl, the dataset
taken from the run, --data / --mirror, one-line errors, several processes, and a real tiny network."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
import time

import metrics_helpers as H
import pytest
from click.testing import CliRunner

import calc_metrics

#----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """Toy detectors, a tiny dataset, and a run folder holding a snapshot of a stand-in generator."""
    root = tmp_path_factory.mktemp("calc")
    data = H.write_dataset(str(root / "tiny.zip"), H.random_images(16, seed=11))
    run = root / "00000-stylegan3-t-tiny-gpus1-batch4-gamma1"
    run.mkdir()
    (run / "training_options.json").write_text(json.dumps(dict(training_set_kwargs=H.dataset_kwargs(data,
                                                                                                    resolution=32))))
    G = H.ToyGenerator()
    snapshot = str(run / "network-snapshot-000000.pkl")
    with open(snapshot, "wb") as f:
        pickle.dump(dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=None), f)
    return dict(root=root, data=data, run=run, snapshot=snapshot,
                inception=H.save_jit(H.ToyInception(), str(root / "inception.pt")),
                vgg16=H.save_jit_pickle(H.ToyVGG16(), str(root / "vgg16.pkl")))


def write_snapshot(path, G, training_set_kwargs=None) -> str:
    with open(path, "wb") as f:
        pickle.dump(dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=training_set_kwargs), f)
    return str(path)


def invoke(*args, env=None):
    return CliRunner().invoke(calc_metrics.main, list(args), env=env, catch_exceptions=False)


def one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    lines = [s for s in result.output.splitlines() if s.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]

#----------------------------------------------------------------------------

def test_writes_the_jsonl_line_of_a_run_snapshot(material, tmp_path):
    r = invoke("--metrics=fid50k_full,kid50k_full", f"--inception={material['inception']}",
               f"--network={material['snapshot']}", "--num=16", env={"DNNLIB_CACHE_DIR": str(tmp_path)})
    assert r.exit_code == 0, r.output
    printed = [json.loads(s) for s in r.output.splitlines() if s.startswith("{")]
    assert [p["metric"] for p in printed] == ["fid50k_full", "kid50k_full"]
    for p in printed:
        lines = (material["run"] / f"metric-{p['metric']}.jsonl").read_text().splitlines()
        assert json.loads(lines[-1]) == p
        assert p["snapshot_pkl"] == "network-snapshot-000000.pkl" and p["num_gpus"] == 1
        assert all(math.isfinite(v) for v in p["results"].values())
    # The dataset came from training_options.json: the statistics cache is named after it.
    assert any(name.startswith("tiny-inception-") for name in os.listdir(tmp_path / "gan-metrics"))


def test_snapshot_outside_a_run(material, tmp_path):
    G = H.ToyGenerator()
    with_kwargs = write_snapshot(tmp_path / "with.pkl", G, H.dataset_kwargs(material["data"]))
    r = invoke("--metrics=fid50k_full", f"--inception={material['inception']}", f"--network={with_kwargs}",
               "--num=8", "--no-cache")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["results"]["fid50k_full"] > 0
    assert not list(tmp_path.glob("metric-*.jsonl"))  # not a run folder: printed only

    bare = write_snapshot(tmp_path / "bare.pkl", G)
    one_line_error(invoke("--metrics=fid50k_full", f"--network={bare}", f"--inception={material['inception']}"),
                   "--data=PATH", "fid50k_full")
    # Metrics that do not compare with real images need no dataset, nor the one the pickle names.
    r = invoke("--metrics=eqt50k_int,is50k", f"--network={bare}", f"--inception={material['inception']}", "--num=10")
    assert r.exit_code == 0, r.output
    moved = write_snapshot(tmp_path / "moved.pkl", G, H.dataset_kwargs(str(tmp_path / "gone.zip")))
    r = invoke("--metrics=eqt50k_int", f"--network={moved}", "--num=10")
    assert r.exit_code == 0, r.output
    assert "gone.zip" in r.output and "needs no dataset" in r.output  # said, not hidden
    one_line_error(invoke("--metrics=eqt50k_int,fid50k_full", f"--network={moved}"), "gone.zip", "--data=PATH")
    # --data supplies it; --mirror adds flipped images (a different dataset: other statistics).
    fids = []
    for mirror in ("0", "1"):
        r = invoke("--metrics=fid50k", f"--network={bare}", f"--data={material['data']}", f"--mirror={mirror}",
                   f"--inception={material['inception']}", "--num=32", "--no-cache")
        assert r.exit_code == 0, r.output
        fids.append(json.loads(r.output.strip().splitlines()[-1])["results"]["fid50k"])
    assert fids[0] != fids[1]


def test_user_errors_are_one_line(material, tmp_path, monkeypatch):
    one_line_error(invoke("--metrics=fid50k_full,fid10k", f"--network={material['snapshot']}"),
                   "fid10k", "valid metrics:", "eqt50k_frac", "is50k")
    one_line_error(invoke(f"--network={tmp_path / 'missing.pkl'}"), "missing.pkl")
    one_line_error(invoke(f"--network={material['snapshot']}", f"--data={tmp_path / 'nodata.zip'}"), "nodata.zip")
    # A dataset that is not one fails before the (unreachable) detector is fetched.
    (tmp_path / "clip.mp4").write_bytes(b"not a dataset")
    one_line_error(invoke(f"--network={material['snapshot']}", f"--data={tmp_path / 'clip.mp4'}",
                          "--inception=https://detector.invalid/inception.pkl"), "neither a folder nor a zip")
    # Offline: a detector that cannot be downloaded says which option to pass, within seconds.
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "dl"))
    start = time.time()
    one_line_error(invoke(f"--network={material['snapshot']}", "--inception=https://detector.invalid/inception.pkl"),
                   "--inception=PATH")
    one_line_error(invoke(f"--network={material['snapshot']}", "--metrics=pr50k3_full",
                          "--vgg16=https://detector.invalid/vgg16.pkl"), "--vgg16=PATH")
    assert time.time() - start < 20


def test_two_processes_give_the_same_values(material, tmp_path, repo_dir):
    """--gpus=2 on a CPU-only machine runs two gloo processes; sharding must not change the results."""
    values = {}
    for gpus in (1, 2):
        cmd = [sys.executable, str(repo_dir / "calc_metrics.py"), "--metrics=fid50k_full,pr50k3_full,eqt50k_frac",
               f"--network={material['snapshot']}", f"--inception={material['inception']}",
               f"--vgg16={material['vgg16']}", "--num=12", f"--gpus={gpus}", "--no-cache", "--device=cpu"]
        env = dict(os.environ, DNNLIB_CACHE_DIR=str(tmp_path), OMP_NUM_THREADS="1")
        out = subprocess.run(cmd, cwd=repo_dir, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        values[gpus] = {k: v for s in out.stdout.splitlines() if s.startswith("{")
                        for k, v in json.loads(s)["results"].items()}
    assert values[1].keys() == values[2].keys() and len(values[1]) == 4
    for k in values[1]:
        assert values[2][k] == pytest.approx(values[1][k], rel=1e-4, abs=1e-6), k
    lines = (material["run"] / "metric-eqt50k_frac.jsonl").read_text().splitlines()
    assert [json.loads(s)["num_gpus"] for s in lines[-2:]] == [1, 2]


def test_real_tiny_stylegan3(material, tmp_path):
    """A real (untrained) StyleGAN3 generator through the whole command: FID and EQ-T."""
    import torch

    from training import networks_stylegan3 as networks
    torch.manual_seed(0)
    G = networks.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, channel_base=256,
                           channel_max=16, num_layers=4, magnitude_ema_beta=0.5 ** (32 / 20000)).eval()
    snapshot = write_snapshot(tmp_path / "sg3.pkl", G, H.dataset_kwargs(material["data"]))
    data16 = H.write_dataset(str(tmp_path / "tiny16.zip"), H.random_images(8, resolution=16, seed=2))
    r = invoke("--metrics=fid50k_full,eqt50k_int,eqt50k_frac", f"--network={snapshot}", f"--data={data16}",
               f"--inception={material['inception']}", "--num=8", "--no-cache")
    assert r.exit_code == 0, r.output
    results = {k: v for s in r.output.splitlines() if s.startswith("{") for k, v in json.loads(s)["results"].items()}
    # An untrained StyleGAN3-T is translation-equivariant already: this pins the transform convention.
    assert results["fid50k_full"] > 0 and results["eqt50k_int"] > 60 and results["eqt50k_frac"] > 45

#----------------------------------------------------------------------------


def test_metrics_list_parsing():
    assert calc_metrics._comma_list(None, None, " fid50k_full, kid50k_full,fid50k_full ,") == ["fid50k_full",
                                                                                           "kid50k_full"]

"""Metrics (issue 5): registry, detectors, cached dataset statistics, and every metric against a direct
computation or a known value, with small TorchScript detectors and tiny PNG datasets."""

from __future__ import annotations

import io
import json
import math
import os
import time
import zipfile

import metrics_helpers as H
import numpy as np
import PIL.Image
import pytest
import scipy.linalg
import torch

import dnnlib
from metrics import equivariance, metric_main, metric_utils

N = 40  # images in the test dataset and generated images per metric

ELEVEN = ["fid50k_full", "kid50k_full", "pr50k3_full", "ppl2_wend", "eqt50k_int", "eqt50k_frac", "eqr50k",
          "fid50k", "kid50k", "pr50k3", "is50k"]

#----------------------------------------------------------------------------
# Fixtures.

@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    d = tmp_path_factory.mktemp("detectors")
    return dnnlib.EasyDict(inception=H.save_jit(H.ToyInception(), str(d / "inception.pt")),
                           inception_pkl=H.save_jit_pickle(H.ToyInception(), str(d / "inception.pkl")),
                           vgg16=H.save_jit_pickle(H.ToyVGG16(), str(d / "vgg16.pkl")))


@pytest.fixture(scope="module")
def images():
    return H.random_images(N, resolution=32, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, images):
    return H.write_dataset(str(tmp_path_factory.mktemp("data") / "tiny.zip"), images)


@pytest.fixture
def opts(detectors, dataset, tmp_path):
    """calc_metric keyword arguments: toy detectors, the tiny dataset, a private cache, 40 images."""
    return dict(dataset_kwargs=H.dataset_kwargs(dataset), inception=detectors.inception, vgg16=detectors.vgg16,
                num=N, cache_dir=str(tmp_path / "cache"), batch_size=16)


def replay_generator(images: np.ndarray, seed: int = 0) -> H.ReplayGenerator:
    """A generator whose first N samples are exactly `images` (latents as the metrics draw them)."""
    z = metric_utils.sample_normal(seed, "z", np.arange(len(images)), [8], torch.device("cpu"))
    return H.ReplayGenerator(images, z)


def read_zip_images(path: str) -> torch.Tensor:
    """The dataset's images read straight from the archive: NCHW uint8."""
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".png"))
        arrays = [np.asarray(PIL.Image.open(io.BytesIO(zf.read(n))).convert("RGB")) for n in names]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def generated_uint8(G: torch.nn.Module, n: int, seed: int = 0, **G_kwargs) -> torch.Tensor:
    z = metric_utils.sample_normal(seed, "z", np.arange(n), [G.z_dim], torch.device("cpu"))
    with torch.no_grad():
        img = G(z, torch.zeros([n, 0]), **G_kwargs)
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)

#----------------------------------------------------------------------------
# Registry and reporting.

def test_registry_has_the_eleven_metrics():
    assert sorted(metric_main.list_valid_metrics()) == sorted(ELEVEN)
    assert all(metric_main.is_valid_metric(m) for m in ELEVEN)
    assert not metric_main.is_valid_metric("fid10k")


def test_unknown_metric_lists_the_valid_names():
    with pytest.raises(dnnlib.UserError) as e:
        metric_main.calc_metric("fid10k", G=H.ToyGenerator())
    assert "fid10k" in str(e.value) and all(m in str(e.value) for m in ELEVEN)


def test_report_metric_appends_spec_lines(tmp_path):
    result = dnnlib.EasyDict(results=dict(fid50k_full=1.5), metric="fid50k_full", total_time=2.0,
                             total_time_str="2s", num_gpus=1)
    snapshot = str(tmp_path / "network-snapshot-000004.pkl")
    metric_main.report_metric(result, run_dir=str(tmp_path), snapshot_pkl=snapshot)
    metric_main.report_metric(result, run_dir=str(tmp_path), snapshot_pkl=snapshot)
    lines = (tmp_path / "metric-fid50k_full.jsonl").read_text().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert list(record) == ["results", "metric", "total_time", "total_time_str", "num_gpus", "snapshot_pkl",
                            "timestamp"]
    assert record["results"] == {"fid50k_full": 1.5}
    assert record["snapshot_pkl"] == "network-snapshot-000004.pkl"
    assert abs(record["timestamp"] - time.time()) < 60


def test_calc_metric_result_dict_and_no_side_effects(opts):
    kwargs = dict(opts["dataset_kwargs"], xflip=True, max_size=10)
    before = dict(kwargs)
    result = metric_main.calc_metric("fid50k_full", G=H.ToyGenerator(), **dict(opts, dataset_kwargs=kwargs))
    assert set(result) == {"results", "metric", "total_time", "total_time_str", "num_gpus", "num_images"}
    assert result.metric == "fid50k_full" and result.num_gpus == 1 and result.num_images == N
    assert math.isfinite(result.results.fid50k_full) and result.results.fid50k_full > 0
    assert kwargs == before  # the caller's dataset options are not modified

#----------------------------------------------------------------------------
# Detectors.

def test_detector_formats_load_and_agree(detectors):
    cpu = metric_utils.MetricOptions(device="cpu")
    a = metric_utils.load_detector(detectors.inception, cpu)
    b = metric_utils.load_detector(detectors.inception_pkl, cpu)
    x = torch.randint(0, 256, [2, 3, 20, 20], dtype=torch.uint8)
    fa, fb = a(x, return_features=True), b(x, return_features=True)
    assert fa.shape == (2, 32) and torch.equal(fa, fb)
    p = b(x, no_output_bias=True)
    assert p.shape == (2, 1008) and torch.allclose(p.sum(dim=1), torch.ones(2))


def test_detector_errors_name_the_option(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "dl"))
    cpu = metric_utils.MetricOptions(device="cpu")
    with pytest.raises(dnnlib.UserError, match="--inception=PATH"):
        metric_utils.load_detector(str(tmp_path / "missing.pkl"), cpu, "--inception")
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a detector")
    with pytest.raises(dnnlib.UserError, match="not a TorchScript feature detector"):
        metric_utils.load_detector(str(bad), cpu, "--vgg16")
    # Offline (an unresolvable host): a quick one-line error that says which option to pass.
    start = time.time()
    with pytest.raises(dnnlib.UserError, match="--vgg16=PATH"):
        metric_utils.load_detector("https://detector.invalid/metrics/vgg16.pkl", cpu, "--vgg16")
    assert time.time() - start < 10


def test_published_urls_are_the_defaults(monkeypatch):
    monkeypatch.delenv(metric_utils.INCEPTION_ENV, raising=False)
    monkeypatch.delenv(metric_utils.VGG16_ENV, raising=False)
    o = metric_utils.MetricOptions()
    assert o.inception.endswith("/stylegan3/versions/1/files/metrics/inception-2015-12-05.pkl")
    assert o.vgg16.endswith("/stylegan3/versions/1/files/metrics/vgg16.pkl")
    monkeypatch.setenv(metric_utils.INCEPTION_ENV, "/data/inception.pkl")
    assert metric_utils.MetricOptions().inception == "/data/inception.pkl"
    assert metric_utils.MetricOptions(inception="/x.pt").inception == "/x.pt"

#----------------------------------------------------------------------------
# Dataset statistics: the data path, the cache and sharding.

def test_dataset_features_equal_direct_detector_output(opts, dataset, detectors):
    o = metric_utils.MetricOptions(**opts)
    stats = metric_utils.dataset_features(o, detectors.inception, dict(return_features=True), keep_all=True,
                                          keep_moments=True)
    detector = H.load_jit(detectors.inception)
    direct = detector(read_zip_images(dataset), return_features=True).numpy()
    assert stats.num_items == N
    np.testing.assert_allclose(stats.get_all(), direct, rtol=1e-5, atol=1e-5)
    mean, cov = stats.get_mean_cov()
    np.testing.assert_allclose(mean, direct.mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(cov, np.cov(direct, rowvar=False), rtol=1e-5, atol=1e-6)


def test_dataset_statistics_are_cached(opts, detectors, tmp_path, monkeypatch):
    path = H.write_dataset(str(tmp_path / "cached.zip"), H.random_images(12, seed=5))
    o = metric_utils.MetricOptions(**dict(opts, dataset_kwargs=H.dataset_kwargs(path)))
    kw = dict(return_features=True)
    first = metric_utils.dataset_features(o, detectors.inception, kw, keep_moments=True)
    files = os.listdir(o.cache_dir)
    assert len(files) == 1 and files[0].startswith("cached-inception-") and files[0].endswith(".npz")

    def no_detector(*args, **kwargs):
        raise AssertionError("the detector must not run on a cache hit")
    monkeypatch.setattr(metric_utils, "load_detector", no_detector)
    second = metric_utils.dataset_features(o, detectors.inception, kw, keep_moments=True)
    for a, b in zip(first.get_mean_cov(), second.get_mean_cov()):
        np.testing.assert_array_equal(a, b)

    # Other options, or a dataset remade at the same path, are not served from the cache.
    with pytest.raises(AssertionError, match="cache hit"):
        metric_utils.dataset_features(o, detectors.inception, kw, keep_moments=True, max_items=5)
    time.sleep(0.01)
    H.write_dataset(path, H.random_images(12, seed=6))
    with pytest.raises(AssertionError, match="cache hit"):
        metric_utils.dataset_features(o, detectors.inception, kw, keep_moments=True)
    # Likewise for a folder whose images are rewritten in place (its own modification time stays).
    folder = H.write_dataset(str(tmp_path / "folder"), H.random_images(12, seed=5))
    of = metric_utils.MetricOptions(**dict(opts, dataset_kwargs=H.dataset_kwargs(folder)))
    monkeypatch.undo()
    metric_utils.dataset_features(of, detectors.inception, kw, keep_moments=True)
    monkeypatch.setattr(metric_utils, "load_detector", no_detector)
    metric_utils.dataset_features(of, detectors.inception, kw, keep_moments=True)  # a hit
    time.sleep(0.01)
    H.write_dataset(folder, H.random_images(12, seed=6))
    with pytest.raises(AssertionError, match="cache hit"):
        metric_utils.dataset_features(of, detectors.inception, kw, keep_moments=True)
    # A damaged cache file is ignored (computed again), not an error.
    monkeypatch.undo()
    for name in os.listdir(o.cache_dir):
        (tmp_path / "cache" / name).write_bytes(b"damaged")
    again = metric_utils.dataset_features(of, detectors.inception, kw, keep_moments=True)
    assert again.num_items == 12


def test_shard_plan_covers_every_index_once():
    for n, group, gpus in [(10, 3, 1), (10, 3, 3), (7, 4, 4), (1, 8, 2), (64, 16, 2)]:
        seen = []
        for rank in range(gpus):
            plan = metric_utils.ShardPlan(n, group, gpus, rank)
            for k, g in enumerate(plan.local_groups()):
                if k * gpus + rank < plan.num_groups:
                    seen += g.tolist()
                else:  # a stand-in group in the last round, dropped when gathered
                    assert k == plan.num_rounds - 1
        assert sorted(seen) == list(range(n))


def test_latents_do_not_depend_on_the_batch():
    a = metric_utils.sample_normal(0, "z", np.arange(6), [4], torch.device("cpu"))
    b = metric_utils.sample_normal(0, "z", np.arange(3, 6), [4], torch.device("cpu"))
    assert torch.equal(a[3:], b)
    assert not torch.equal(a[0], metric_utils.sample_normal(1, "z", np.arange(1), [4], torch.device("cpu"))[0])

#----------------------------------------------------------------------------
# FID, KID, precision/recall, IS.

def test_fid_of_a_set_with_itself_is_zero(opts, images):
    fid = metric_main.calc_metric("fid50k_full", G=replay_generator(images), **opts).results.fid50k_full
    assert abs(fid) < 1e-6
    # A different set is far away.
    fid_other = metric_main.calc_metric("fid50k_full", G=H.ToyGenerator(), **opts).results.fid50k_full
    assert fid_other > 1


def test_fid_and_kid_equal_direct_computation(opts, dataset, detectors):
    G = H.ToyGenerator()
    G_kwargs = dict(noise_mode="const")
    fid = metric_main.calc_metric("fid50k_full", G=G, G_kwargs=G_kwargs, **opts).results.fid50k_full
    kid = metric_main.calc_metric("kid50k_full", G=G, G_kwargs=G_kwargs, **opts).results.kid50k_full

    detector = H.load_jit(detectors.inception)
    real = detector(read_zip_images(dataset), return_features=True).double().numpy()
    gen = detector(generated_uint8(G, N, **G_kwargs), return_features=True).double().numpy()

    # FID: Frechet distance of the fitted Gaussians, matrix square root by scipy.
    mu_r, mu_g = real.mean(0), gen.mean(0)
    s_r, s_g = np.cov(real, rowvar=False), np.cov(gen, rowvar=False)
    root = scipy.linalg.sqrtm(s_r @ s_g).real
    expected_fid = np.sum((mu_r - mu_g) ** 2) + np.trace(s_r + s_g - 2 * root)
    assert fid == pytest.approx(expected_fid, rel=1e-5)

    # KID: with 40 real and 40 generated images every subset is the whole set (m = 40), so the mean over
    # subsets is the unbiased MMD^2 of the two sets under k(x, y) = (x.y / d + 1)^3.
    d = real.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3
    off = ~np.eye(N, dtype=bool)
    expected_kid = (k(gen, gen)[off].mean() + k(real, real)[off].mean() - 2 * k(gen, real).mean())
    assert kid == pytest.approx(expected_kid, rel=1e-6)


def test_precision_and_recall_of_a_set_against_itself_are_one(opts, images):
    res = metric_main.calc_metric("pr50k3_full", G=replay_generator(images), **opts).results
    assert res.pr50k3_full_precision == 1.0 and res.pr50k3_full_recall == 1.0
    # A generator that makes one image only covers none of the real images (recall 0).
    res = metric_main.calc_metric("pr50k3", G=H.ConstantGenerator(), **opts).results
    assert res.pr50k3_recall == 0.0


def test_precision_recall_radii_follow_the_definition():
    from metrics import precision_recall
    real = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])  # 1-D, radii with k = 1: 1, 1, 2, 3, 4
    gen = np.array([[0.5], [8.5], [14.5], [20.0]])
    p, r = precision_recall.precision_recall_from_features(real, gen, nhood_size=1, row_batch_size=2,
                                                           col_batch_size=3)
    assert p == pytest.approx(2 / 4)  # 0.5 (ball of 0) and 8.5 (ball of 10, radius 4) are inside
    # gen radii with k = 1: 8, 6, 5.5, 5.5; real points inside a generated ball: 0, 1, 3, 6, 10 -> all 5.
    assert r == pytest.approx(1.0)


def test_inception_score_equals_direct_computation(opts, detectors):
    G = H.ToyGenerator()
    res = metric_main.calc_metric("is50k", G=G, G_kwargs=dict(noise_mode="const"), **opts).results
    detector = H.load_jit(detectors.inception)
    probs = detector(generated_uint8(G, N, noise_mode="const"), no_output_bias=True).double().numpy()
    scores = []
    for part in np.split(probs, 10):
        py = part.mean(axis=0)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), axis=1))))
    assert res.is50k_mean == pytest.approx(np.mean(scores), rel=1e-5)
    assert res.is50k_std == pytest.approx(np.std(scores), rel=1e-4)
    assert res.is50k_mean >= 1


def test_metrics_without_a_dataset(opts):
    G = H.ToyGenerator()
    no_data = dict(opts, dataset_kwargs=None)
    with pytest.raises(dnnlib.UserError, match="--data"):
        metric_main.calc_metric("fid50k_full", G=G, **no_data)
    assert math.isfinite(metric_main.calc_metric("is50k", G=G, **no_data).results.is50k_mean)


def test_conditional_and_grayscale_generators(tmp_path, detectors):
    labels = [i % 3 for i in range(12)]
    gray = H.write_dataset(str(tmp_path / "gray.zip"), H.random_images(12, channels=1, seed=7), labels=labels)
    kw = dict(inception=detectors.inception, vgg16=detectors.vgg16, num=12, cache_dir=str(tmp_path / "c"))
    G = H.ToyGenerator(c_dim=3, img_channels=1)
    with_labels = dict(H.dataset_kwargs(gray), use_labels=True)
    res = metric_main.calc_metric("fid50k_full", G=G, dataset_kwargs=with_labels, **kw)
    assert math.isfinite(res.results.fid50k_full)
    with pytest.raises(dnnlib.UserError, match="label"):
        metric_main.calc_metric("fid50k_full", G=G, dataset_kwargs=H.dataset_kwargs(gray), **kw)

#----------------------------------------------------------------------------
# Perceptual path length.

def test_ppl_equals_direct_computation(opts, detectors):
    G = H.ToyGenerator()
    n, eps = 6, 1e-4
    o = dict(opts, num=n)
    ppl = metric_main.calc_metric("ppl2_wend", G=G, **o).results.ppl2_wend

    vgg = H.load_jit(detectors.vgg16)  # the pickled-TorchScript format of the published detectors
    dist = []
    for group in np.split(np.arange(n), n // 2):  # pairs of paths share one draw of the noise buffer
        gen = torch.Generator().manual_seed(metric_utils.sample_seed(0, "ppl-noise", int(group[0])))
        noise = torch.randn(G.synthesis.noise_const.shape, generator=gen)
        for i in group:
            z0 = metric_utils.sample_normal(0, "ppl-z0", [i], [G.z_dim], torch.device("cpu"))
            z1 = metric_utils.sample_normal(0, "ppl-z1", [i], [G.z_dim], torch.device("cpu"))
            with torch.no_grad():
                w0, w1 = G.mapping(z0, torch.zeros([1, 0])), G.mapping(z1, torch.zeros([1, 0]))
                G.synthesis.noise_const.copy_(noise)
                a = G.synthesis(w0, noise_mode="const")  # t = 0 (path end points)
                b = G.synthesis(w0 + eps * (w1 - w0), noise_mode="const")
                fa = vgg((a + 1) * 127.5, resize_images=False, return_lpips=True)
                fb = vgg((b + 1) * 127.5, resize_images=False, return_lpips=True)
            dist.append(float((fa - fb).square().sum()) / eps ** 2)
    dist = np.array(dist)
    keep = (dist >= np.percentile(dist, 1, method="lower")) & (dist <= np.percentile(dist, 99, method="higher"))
    assert ppl == pytest.approx(dist[keep].mean(), rel=1e-3)


def test_ppl_of_a_constant_generator_is_zero_and_crop_is_an_option(opts):
    assert metric_main.calc_metric("ppl2_wend", G=H.ConstantGenerator(), **opts).results.ppl2_wend == 0
    G = H.ToyGenerator(img_resolution=64)
    full = metric_main.calc_metric("ppl2_wend", G=G, **opts).results.ppl2_wend
    cropped = metric_main.calc_metric("ppl2_wend", G=G, ppl_crop=True, **opts).results.ppl2_wend
    assert full > 0 and cropped > 0 and full != cropped
    assert G.synthesis.noise_const.abs().sum() == 0  # the caller's generator is not modified

#----------------------------------------------------------------------------
# Equivariance.

def test_equivariance_of_an_equivariant_and_a_non_equivariant_network(opts):
    names = ["eqt50k_int", "eqt50k_frac", "eqr50k"]
    eq = {m: metric_main.calc_metric(m, G=H.ToyGenerator(equivariant=True), **dict(opts, num=16)).results[m]
          for m in names}
    non = {m: metric_main.calc_metric(m, G=H.ToyGenerator(equivariant=False), **dict(opts, num=16)).results[m]
           for m in names}
    assert eq["eqt50k_int"] > 100  # an exact pixel shift (float rounding at most)
    assert eq["eqt50k_frac"] > 45 and eq["eqr50k"] > 45  # limited by the Lanczos reference resampling
    assert all(v < 20 for v in non.values()), non


def test_eqt_int_equals_direct_psnr(opts):
    """EQ-T (integer) against a direct computation of its definition: PSNR = 10 log10(2^2 / MSE) in dB
    (images span [-1, 1]), MSE over the pixels whose source lies inside the image. The generator is
    equivariant except for a fixed pattern (its const noise) that does not move with the input transform,
    so the value is finite and set by that pattern."""
    G = H.ToyGenerator()
    G.synthesis.noise_const.copy_(torch.randn(G.synthesis.noise_const.shape, generator=torch.Generator().manual_seed(4)))
    n, group, res, cpu = 12, 4, G.img_resolution, torch.device("cpu")
    eq = metric_main.calc_metric("eqt50k_int", G=G, **dict(opts, num=n)).results.eqt50k_int

    def synthesize(ws, transform):
        G.synthesis.input.transform.copy_(torch.tensor(transform, dtype=torch.float32))
        return G.synthesis(ws, noise_mode="const", force_fp32=True).double()

    sse, count, sse_noise, shifts = 0.0, 0, 0.0, []
    for start in range(0, n, group):  # one translation per group of 4 latents
        indices = np.arange(start, start + group)
        z = metric_utils.sample_normal(0, "eq-z", indices, [G.z_dim], cpu)
        u = metric_utils.sample_uniform(0, "eq-int", start, size=2)
        sx, sy = (int(v) for v in np.round((2 * u - 1) * 0.125 * res))  # up to 1/8 of the image, whole pixels
        shifts.append((sx, sy))
        with torch.no_grad():
            ws = G.mapping(z, torch.zeros([group, 0]))
            base = synthesize(ws, np.eye(3))
            moved = synthesize(ws, [[1, 0, -sx / res], [0, 1, -sy / res], [0, 0, 1]])  # input transform = M^-1
        G.synthesis.input.transform.copy_(torch.eye(3))
        # Reference: the untransformed image moved by (sx, sy) pixels; out[y, x] = base[y - sy, x - sx].
        src_y, src_x = np.arange(res) - sy, np.arange(res) - sx
        ok_y, ok_x = (src_y >= 0) & (src_y < res), (src_x >= 0) & (src_x < res)
        out = moved[:, :, ok_y][:, :, :, ok_x]
        ref = base[:, :, src_y[ok_y]][:, :, :, src_x[ok_x]]
        sse += float((out - ref).square().sum())
        count += out.numel()
        noise = G.synthesis.noise_const.double()
        sse_noise += float((0.01 * (noise[ok_y][:, ok_x] - noise[src_y[ok_y]][:, src_x[ok_x]])).square().sum()) \
            * group * G.img_channels
    assert any(s != (0, 0) for s in shifts), shifts
    mse = sse / count
    assert eq == pytest.approx(10 * math.log10(2 ** 2 / mse), rel=1e-5)
    # The error is the fixed pattern's alone (the Fourier content moved exactly): the metric is not near a bound.
    assert mse == pytest.approx(sse_noise / count, rel=1e-3)
    assert 20 < eq < 60


def test_equivariance_needs_the_input_transform(opts, images):
    with pytest.raises(dnnlib.UserError, match="synthesis.input.transform"):
        metric_main.calc_metric("eqt50k_int", G=replay_generator(images), **opts)


def test_equivariance_of_real_stylegan3_networks():
    """Untrained StyleGAN3-R is rotation-equivariant, StyleGAN3-T much less so: the metric's rotation
    convention agrees with the network's input transform."""
    from training import networks_stylegan3 as networks
    eqr = {}
    for cfg, kw in [("r", dict(conv_kernel=1, use_radial_filters=True)), ("t", {})]:
        torch.manual_seed(0)
        G = networks.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=32, img_channels=3, channel_base=256,
                               channel_max=16, num_layers=4, magnitude_ema_beta=0.5 ** (32 / 20000), **kw).eval()
        eqr[cfg] = metric_main.calc_metric("eqr50k", G=G, num=4, device="cpu").results.eqr50k
    assert eqr["r"] > 55 and eqr["t"] < eqr["r"] - 15, eqr


def _bandlimited(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, callable]:
    """Images [1, 2, size, size] sampled from a sum of low-frequency cosines, and the continuous function
    f(x, y) (pixel units, x = column) they were sampled from."""
    rng = np.random.RandomState(seed)
    freqs = rng.uniform(-0.12, 0.12, size=[n, 2])  # cycles per pixel (Nyquist 0.5)
    phases = rng.uniform(0, 2 * np.pi, size=[n, 2])

    def f(x, y):
        return np.stack([sum(np.cos(2 * np.pi * (fx * x + fy * y) + ph[c]) for (fx, fy), ph in zip(freqs, phases))
                         / n for c in range(2)])
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return torch.from_numpy(f(x, y)[None]).float(), f


def test_resampling_matches_the_continuous_signal():
    size = 48
    img, f = _bandlimited(6, size)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)

    out, mask = equivariance.integer_translate(img, 3, -2)
    expected = img.roll(shifts=(-2, 3), dims=(2, 3))
    assert mask.sum() == (size - 3) * (size - 2)
    assert torch.equal(out[..., mask], expected[..., mask])

    out, mask = equivariance.fractional_translate(img, 2.3, -1.6)
    err = (out[0].numpy() - f(x - 2.3, y + 1.6))[:, mask.numpy()]
    assert 0.5 * size ** 2 < mask.sum() < size ** 2 and np.abs(err).max() < 0.02

    angle = 0.7
    out, mask = equivariance.rotate(img, angle)
    c, s = np.cos(angle), np.sin(angle)
    cx = (size - 1) / 2  # rotation about the image centre; content moves by the rotation (x toward y)
    sx = c * (x - cx) + s * (y - cx) + cx
    sy = -s * (x - cx) + c * (y - cx) + cx
    err = (out[0].numpy() - f(sx, sy))[:, mask.numpy()]
    assert mask.sum() > 0.2 * size ** 2 and np.abs(err).max() < 0.02

    # A quarter turn is a pure permutation of pixels: out[r, c] = in[W - 1 - c, r].
    out, mask = equivariance.rotate(img, np.pi / 2)
    expected = img[0].numpy()[:, ::-1, :].transpose(0, 2, 1)
    assert np.abs(out[0].numpy() - expected)[:, mask.numpy()].max() < 0.02

#----------------------------------------------------------------------------

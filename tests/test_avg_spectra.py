"""avg_spectra.py (issue 5): stats, spectra of datasets and networks, heatmap and slice figures."""

from __future__ import annotations

import pickle

import metrics_helpers as H
import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import avg_spectra

SIZE = 32


def sinusoid_images(n: int, kx: int, ky: int, channels: int = 3) -> np.ndarray:
    """[n, SIZE, SIZE, C] uint8 images of cos(2 pi (kx x + ky y) / SIZE) with random phases."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    rng = np.random.RandomState(0)
    imgs = [128 + 100 * np.cos(2 * np.pi * (kx * x + ky * y) / SIZE + rng.uniform(0, 2 * np.pi)) for _ in range(n)]
    return np.repeat(np.round(np.stack(imgs))[..., None], channels, axis=3).astype(np.uint8)


def run(*args):
    result = CliRunner().invoke(avg_spectra.main, list(args), catch_exceptions=False)
    return result


def test_spectrum_of_a_sinusoid_peaks_at_its_frequency(tmp_path):
    kx, ky, interp = 5, 3, 4
    data = H.write_dataset(str(tmp_path / "sine.zip"), sinusoid_images(6, kx, ky))
    mean, std, n = avg_spectra.image_stats(avg_spectra.iter_images(data, None, torch.device("cpu")))
    assert n == 6 and abs(mean) < 0.05 and std == pytest.approx(100 / 127.5 / np.sqrt(2), rel=0.05)
    spectrum, size, n = avg_spectra.average_spectrum(avg_spectra.iter_images(data, None, torch.device("cpu")),
                                                     mean=mean, std=std, interp=interp)
    assert size == SIZE and n == 6 and spectrum.shape == (SIZE * interp, SIZE * interp)
    c = SIZE * interp // 2
    peak = np.unravel_index(np.argmax(spectrum), spectrum.shape)
    assert peak in [(c + ky * interp, c + kx * interp), (c - ky * interp, c - kx * interp)]
    # The two mirror peaks hold the power; far from them the spectrum is > 60 dB lower.
    assert spectrum[c + ky * interp, c + kx * interp] == pytest.approx(spectrum[c - ky * interp, c - kx * interp])
    assert spectrum[c + 8 * interp, c - 8 * interp] < spectrum.max() * 1e-6


def test_white_noise_has_a_flat_unit_spectrum():
    gen = torch.Generator().manual_seed(0)
    noise = [torch.randn([8, 3, SIZE, SIZE], generator=gen) * 2 + 0.5 for _ in range(4)]
    spectrum, _, n = avg_spectra.average_spectrum(iter(noise), mean=0.5, std=2, interp=2)
    assert n == 32
    assert spectrum.mean() == pytest.approx(1.0, rel=0.05)
    assert 0.5 < np.median(spectrum) < 1.5


def test_command_line_dataset_and_network(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    data = H.write_dataset(str(tmp_path / "tiny"), H.random_images(10, resolution=SIZE, seed=1))
    snapshot = tmp_path / "network-snapshot-000000.pkl"
    G = H.ToyGenerator(img_resolution=SIZE)
    with open(snapshot, "wb") as f:
        pickle.dump(dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=None), f)

    r = run("stats", f"--source={data}")
    assert r.exit_code == 0 and "10 images: --mean=" in r.output, r.output
    mean, std = (float(v.split("=")[1]) for v in r.output.split()[-2:])

    real, fake = str(tmp_path / "real.npz"), str(tmp_path / "fake.npz")
    r = run("calc", f"--source={data}", f"--dest={real}", f"--mean={mean}", f"--std={std}")
    assert r.exit_code == 0, r.output
    r = run("calc", f"--source={snapshot}", f"--dest={fake}", "--num=6", f"--mean={mean}", f"--std={std}",
            "--interp=2")
    assert r.exit_code == 0, r.output
    with np.load(fake) as f:
        assert f["spectrum"].shape == (SIZE * 2, SIZE * 2) and int(f["image_size"]) == SIZE
        assert int(f["num_images"]) == 6

    r = run("heatmap", real, f"--save={tmp_path / 'heat.png'}")
    assert r.exit_code == 0, r.output
    r = run("heatmap", fake)  # no display: written next to the .npz
    assert r.exit_code == 0 and (tmp_path / "fake-heatmap.png").is_file(), r.output
    r = run("slices", real, fake, f"--save={tmp_path / 'slices.png'}", "--smooth=1")
    assert r.exit_code == 0, r.output
    r = run("heatmap", real, f"--save={tmp_path / 'heat.jpg'}")  # the format follows the extension
    assert r.exit_code == 0, r.output
    for name in ("heat.png", "fake-heatmap.png", "slices.png", "heat.jpg"):
        with PIL.Image.open(tmp_path / name) as img:
            assert img.format == ("JPEG" if name.endswith(".jpg") else "PNG") and img.size[0] > 300
    r = run("heatmap", real, f"--save={tmp_path / 'heat.doc'}")
    assert r.exit_code == 1 and "cannot write .doc files" in r.output and not (tmp_path / "heat.doc").exists()


def test_one_line_errors(tmp_path):
    for args, needle in [(["stats", f"--source={tmp_path / 'none.zip'}"], "Source not found"),
                         (["calc", f"--source={tmp_path}", "--dest=x.png"], ".npz"),
                         (["heatmap", str(tmp_path / "missing.npz")], "avg_spectra.py calc")]:
        r = run(*args)
        lines = [s for s in r.output.splitlines() if s.strip()]
        assert r.exit_code == 1 and len(lines) == 1 and needle in lines[0], r.output


def assert_one_line_error(r, *needles):
    lines = [s for s in r.output.splitlines() if s.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), r.output
    for needle in needles:
        assert needle in lines[0], (needle, r.output)


def write_spectrum(path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def test_plots_refuse_files_that_are_not_spectra(tmp_path):
    good = np.ones([SIZE * 2, SIZE * 2])
    npy = tmp_path / "some.npy"
    np.save(npy, good)
    text = tmp_path / "notes.txt"
    text.write_text("not a spectrum\n")
    bad = {"some.npy": str(npy), "notes.txt": str(text), "missing.npz": str(tmp_path / "missing.npz"),
           "keys.npz": write_spectrum(tmp_path / "keys.npz", a=good),
           "flat.npz": write_spectrum(tmp_path / "flat.npz", spectrum=np.ones(SIZE), image_size=SIZE),
           "size.npz": write_spectrum(tmp_path / "size.npz", spectrum=good, image_size=0),
           "nan.npz": write_spectrum(tmp_path / "nan.npz", spectrum=good * np.nan, image_size=SIZE),
           "folder": str(tmp_path)}
    for name, path in bad.items():
        for cmd in ("heatmap", "slices"):
            r = run(cmd, path, f"--save={tmp_path / 'out.png'}")
            assert_one_line_error(r, path, "avg_spectra.py calc")
            assert not (tmp_path / "out.png").exists(), name
    ok = write_spectrum(tmp_path / "ok.npz", spectrum=good, image_size=SIZE)
    r = run("slices", ok, bad["some.npy"], f"--save={tmp_path / 'out.png'}")  # any bad file fails, before plotting
    assert_one_line_error(r, bad["some.npy"])
    assert avg_spectra.load_spectrum(ok)[1] == SIZE


def test_calc_refuses_a_beta_whose_window_is_not_finite(tmp_path):
    data = H.write_dataset(str(tmp_path / "tiny.zip"), H.random_images(2, resolution=SIZE, seed=1))
    dest = tmp_path / "s.npz"
    for beta in ("1e6", "1000", "-1"):
        r = run("calc", f"--source={data}", f"--dest={dest}", f"--beta={beta}")
        assert_one_line_error(r, "--beta", "0 (a box) to 100")
        assert not dest.exists()
    r = run("calc", f"--source={data}", f"--dest={dest}", "--beta=100", "--interp=1")  # the top of the range works
    assert r.exit_code == 0 and np.isfinite(np.load(dest)["spectrum"]).all(), r.output


def test_a_spectrum_with_non_finite_values_is_never_saved(tmp_path):
    images = torch.zeros([2, 3, SIZE, SIZE])
    images[0, 0, 3, 4] = float("nan")
    with pytest.raises(avg_spectra.dnnlib.UserError, match="non-finite"):
        avg_spectra.average_spectrum(iter([images]), interp=1)
    dest = tmp_path / "s.npz"
    with pytest.raises(avg_spectra.dnnlib.UserError, match="non-finite"):
        avg_spectra.save_spectrum(str(dest), np.full([SIZE, SIZE], np.inf), SIZE)
    assert not dest.exists()
    data = H.write_dataset(str(tmp_path / "tiny.zip"), H.random_images(2, resolution=SIZE, seed=1))
    r = run("calc", f"--source={data}", f"--dest={dest}", "--std=1e-300", "--interp=1")  # power overflows to inf
    assert_one_line_error(r, "non-finite")
    assert not dest.exists()


def test_smooth_and_interp_are_bounded(tmp_path):
    npz = write_spectrum(tmp_path / "s.npz", spectrum=np.ones([SIZE * 2, SIZE * 2]), image_size=SIZE)
    for smooth in ("-1", "1e9", str(SIZE + 1)):
        for cmd in ("heatmap", "slices"):
            r = run(cmd, npz, f"--save={tmp_path / 'out.png'}", f"--smooth={smooth}")
            assert_one_line_error(r, "--smooth", f"to the spectrum's width, {SIZE}")
            assert not (tmp_path / "out.png").exists()
    r = run("heatmap", npz, f"--save={tmp_path / 'out.png'}", f"--smooth={SIZE}")
    assert r.exit_code == 0, r.output

    data = H.write_dataset(str(tmp_path / "tiny.zip"), H.random_images(2, resolution=SIZE, seed=1))
    r = run("calc", f"--source={data}", f"--dest={tmp_path / 'i.npz'}", "--interp=1000")
    assert_one_line_error(r, "--interp=1000", "32000x32000", "45.8 GiB", "or less")
    assert not (tmp_path / "i.npz").exists()


def test_fft_chunks_do_not_change_the_spectrum(monkeypatch):
    gen = torch.Generator().manual_seed(1)
    images = [torch.randn([3, 3, SIZE, SIZE], generator=gen) for _ in range(2)]
    whole, _, _ = avg_spectra.average_spectrum(iter(images), interp=2)
    monkeypatch.setattr(avg_spectra, "_FFT_CHUNK_BYTES", 1)  # one image channel at a time
    chunked, _, n = avg_spectra.average_spectrum(iter(images), interp=2)
    assert n == 6 and np.allclose(whole, chunked, rtol=1e-12)


def test_stats_and_calc_show_progress(tmp_path, monkeypatch):
    import tqdm
    bars = []

    class Recorder(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})
            self.total_asked, self.done = kwargs.get("total"), 0
            bars.append(self)

        def update(self, n=1):
            self.done += n
            return super().update(n)

    monkeypatch.setattr(tqdm, "tqdm", Recorder)
    snapshot = tmp_path / "network-snapshot-000000.pkl"
    G = H.ToyGenerator(img_resolution=SIZE)
    with open(snapshot, "wb") as f:
        pickle.dump(dict(G=G, D=None, G_ema=G, augment_pipe=None, training_set_kwargs=None), f)
    data = H.write_dataset(str(tmp_path / "tiny"), H.random_images(5, resolution=SIZE, seed=1))
    for args, total in [(["stats", f"--source={snapshot}", "--num=7"], 7), (["stats", f"--source={data}"], 5),
                        (["calc", f"--source={snapshot}", "--num=7", "--batch=3", f"--dest={tmp_path / 'f.npz'}"], 7)]:
        bars.clear()
        r = run(*args)
        assert r.exit_code == 0, r.output
        assert [(b.total_asked, b.done) for b in bars] == [(total, total)], args

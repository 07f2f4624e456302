"""Average power spectra of real or generated images, and their plots (the StyleGAN3 analysis tool).

The spectrum of one image is |FFT2(window * (x - mean) / std)|^2, with a separable Kaiser window
(`--beta`) and zero padding to `--interp` times the image size for a finer frequency grid; power is
normalised by the window's energy, so white noise of unit variance has a flat spectrum of 1 (0 dB).
The spectra of all colour channels and images are averaged. Pixel values are taken in [-1, 1]
(dataset images as x / 127.5 - 1, generator output as is).

\b
Workflow:
  python avg_spectra.py stats --source=signer.zip                      # prints --mean and --std
  python avg_spectra.py calc --source=signer.zip --dest=real.npz --mean=M --std=S
  python avg_spectra.py calc --source=network-snapshot.pkl --dest=fake.npz --mean=M --std=S
  python avg_spectra.py heatmap real.npz --save=real.png
  python avg_spectra.py slices real.npz fake.npz --save=slices.png

Use the same --mean and --std for every source you compare (those of the dataset). Without --save and
without a display the figures are written next to the first .npz file.
"""

from __future__ import annotations

import logging
import math
import os
import re
import zipfile
import zlib
from typing import Iterator

import click
import numpy as np
import torch

import dnnlib

log = logging.getLogger("avg_spectra")

#----------------------------------------------------------------------------
# Image sources: a dataset (folder or zip) or a network pickle.

def is_network_source(source: str) -> bool:
    return source.lower().endswith(".pkl") or bool(re.match(r"^[a-z]+://", source))


def iter_images(source: str, num: int | None, device: torch.device, seed: int = 0, batch: int = 16,
                truncation_psi: float = 1.0, progress: bool | None = None) -> Iterator[torch.Tensor]:
    """Batches of NCHW float images in [-1, 1] (about, for a generator): up to `num` dataset images (a
    random subset drawn with `seed` when the dataset is larger; all when None), or `num` generated images
    for seeds seed, seed + 1, ... (`num` defaults to 1000 for a network). `progress`: a tqdm bar on
    stderr (None: only on a terminal)."""
    from tqdm import tqdm
    disable = None if progress is None else not progress
    if is_network_source(source):
        import legacy
        G = legacy.load_network_pkl(source)["G_ema"]
        if G is None:
            raise dnnlib.UserError(f"{source} holds no G_ema generator")
        G = G.eval().requires_grad_(False).to(device)
        num = 1000 if num is None else num
        labels = None
        with tqdm(total=num, desc="generating", unit="img", disable=disable, leave=False, dynamic_ncols=True) as bar:
            for start in range(0, num, batch):
                seeds = range(seed + start, seed + min(start + batch, num))
                z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(G.z_dim) for s in seeds])).float()
                if G.c_dim > 0:
                    if labels is None:
                        log.warning("Conditional generator: spectra are averaged over uniformly random classes")
                        labels = True
                    cls = [np.random.RandomState(s + (1 << 31)).randint(G.c_dim) for s in seeds]
                    c = torch.nn.functional.one_hot(torch.tensor(cls), G.c_dim).float()
                else:
                    c = torch.zeros([len(seeds), 0])
                with torch.no_grad():
                    img = G(z.to(device), c.to(device), truncation_psi=truncation_psi, noise_mode="const").float()
                bar.update(len(seeds))
                yield img
        return

    if not os.path.exists(source):
        raise dnnlib.UserError(f"Source not found: {source} (give a dataset folder or zip, or a network .pkl)")
    dataset = dnnlib.util.construct_class_by_name(class_name="training.dataset.ImageFolderDataset", path=source,
                                                  max_size=num, random_seed=seed, use_labels=False, xflip=False)
    with tqdm(total=len(dataset), desc="reading", unit="img", disable=disable, leave=False,
              dynamic_ncols=True) as bar:
        for start in range(0, len(dataset), batch):
            images = np.stack([dataset[i][0] for i in range(start, min(start + batch, len(dataset)))])
            bar.update(len(images))
            yield torch.from_numpy(images).to(device).float() / 127.5 - 1

#----------------------------------------------------------------------------
# Statistics and spectra.

def image_stats(images: Iterator[torch.Tensor]) -> tuple[float, float, int]:
    """(mean, std, number of images) of all pixel values of the images."""
    total = total_sq = 0.0
    count = num = 0
    for x in images:
        x = x.double()
        total += float(x.sum())
        total_sq += float(x.square().sum())
        count += x.numel()
        num += x.shape[0]
    if count == 0:
        raise dnnlib.UserError("The source holds no images")
    mean = total / count
    return mean, float(np.sqrt(max(total_sq / count - mean ** 2, 0.0))), num


BETA_RANGE = (0.0, 100.0)  # Kaiser window shapes: 0 is a plain box; far beyond 100 the window is not finite


def check_beta(beta: float) -> None:
    """UserError unless `beta` is a Kaiser window shape in BETA_RANGE."""
    lo, hi = BETA_RANGE
    if not (math.isfinite(beta) and lo <= beta <= hi):
        raise dnnlib.UserError(f"--beta={beta:g} is out of range: the Kaiser window shape goes from {lo:g} (a box) "
                               f"to {hi:g} (a very narrow window); the usual value is 8")


def kaiser_window(size: int, beta: float) -> np.ndarray:
    """2-D separable Kaiser window [size, size], scaled to unit mean energy (mean of w^2 = 1)."""
    check_beta(beta)  # within BETA_RANGE the window is finite
    w1 = np.kaiser(size, beta)
    w = np.outer(w1, w1)
    return w / np.sqrt(np.mean(w ** 2))


_FFT_BYTES = 48  # memory per FFT bin and image channel: padded input, complex output, power, accumulator
_FFT_CHUNK_BYTES = 1 << 28  # image channels are transformed in chunks of about this many bytes of output


def _memory_limit(device: torch.device) -> int:
    """Bytes an FFT may use: half of the device's memory (GPU memory, or RAM), at most 4 GiB."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        import psutil
        total = psutil.virtual_memory().total
    return min(total // 2, 4 << 30)


def check_interp(interp: int, size: int, device: torch.device) -> None:
    """UserError when the zero-padded FFT of `size` x `size` images would need more memory than allowed."""
    if interp < 1:
        raise dnnlib.UserError(f"--interp must be at least 1 (got {interp})")
    s = size * interp
    need, limit = s * s * _FFT_BYTES, _memory_limit(device)
    if need > limit:
        best = max(int(math.isqrt(limit // _FFT_BYTES)) // size, 0)
        hint = f"use --interp={best} or less" if best >= 1 else "these images are too large for this machine"
        raise dnnlib.UserError(f"--interp={interp} is too large for {size}x{size} images: the spectrum would be "
                               f"{s}x{s} and its FFT needs about {need / 2**30:.1f} GiB of memory (the limit here "
                               f"is {limit / 2**30:.1f} GiB); {hint}")


def average_spectrum(images: Iterator[torch.Tensor], mean: float = 0.0, std: float = 1.0, beta: float = 8.0,
                     interp: int = 4) -> tuple[np.ndarray, int, int]:
    """Mean power spectrum of square images: (spectrum [S, S] with S = size * interp, zero frequency at
    the centre [S // 2, S // 2], rows = vertical frequency; image size; number of images)."""
    if std <= 0:
        raise dnnlib.UserError(f"--std must be positive (got {std})")
    check_beta(beta)
    acc = None
    num = 0
    window = None
    for x in images:
        n, c, h, w = x.shape
        if h != w:
            raise dnnlib.UserError(f"Spectra need square images (got {w}x{h})")
        if window is None:
            check_interp(interp, h, x.device)
            window = torch.as_tensor(kaiser_window(h, beta), dtype=torch.float64, device=x.device)
            size = h
            chunk = max(1, _FFT_CHUNK_BYTES // (16 * (h * interp) ** 2))
        elif h != size:
            raise dnnlib.UserError(f"Images of different sizes in one source ({size} and {h})")
        xw = ((x.double() - mean) / std * window).reshape(n * c, h, w)
        for part in xw.split(chunk):
            spec = torch.fft.fft2(part, s=[h * interp, w * interp]).abs().square_().sum(dim=0) / (h * w)
            acc = spec if acc is None else acc.add_(spec)
        num += n * c
    if acc is None:
        raise dnnlib.UserError("The source holds no images")
    spectrum = torch.fft.fftshift(acc / num).cpu().numpy()
    check_finite_spectrum(spectrum)
    return spectrum, size, num // c


def check_finite_spectrum(spectrum: np.ndarray) -> None:
    """UserError when the spectrum holds NaN or infinite values (nothing such is ever saved)."""
    if not np.isfinite(spectrum).all():
        raise dnnlib.UserError("The spectrum has non-finite values (NaN or inf), so it was not saved: check that "
                               "--mean, --std and --beta are sensible and that the source's images are finite")


def save_spectrum(dest: str, spectrum: np.ndarray, image_size: int, **meta) -> None:
    check_finite_spectrum(spectrum)
    dnnlib.util.save_npz(dest, "spectrum", spectrum=spectrum.astype(np.float64), image_size=np.int64(image_size),
                         **{k: np.asarray(v) for k, v in meta.items()})


def load_spectrum(path: str) -> tuple[np.ndarray, int]:
    """(spectrum, image size) of a spectrum .npz written by 'calc'; UserError for any other file."""
    expected = "expected a spectrum .npz made by 'avg_spectra.py calc'"
    if not os.path.exists(path):
        raise dnnlib.UserError(f"Spectrum file not found: {path} ({expected})")
    if not os.path.isfile(path):
        raise dnnlib.UserError(f"{path} is not a file ({expected})")
    try:
        data = np.load(path, allow_pickle=False)
    except PermissionError:
        raise dnnlib.UserError(f"Cannot read {path}: permission denied") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        raise dnnlib.UserError(f"{path} is not a spectrum file: {expected}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        what = f"a .npy array of shape {data.shape}" if isinstance(data, np.ndarray) else "not an .npz archive"
        raise dnnlib.UserError(f"{path} is {what}, not a spectrum file: {expected}")
    with data:
        missing = [k for k in ("spectrum", "image_size") if k not in data.files]
        if missing:
            raise dnnlib.UserError(f"{path} is not a spectrum file: it has no {' or '.join(missing)} "
                                   f"(it holds {', '.join(data.files) or 'nothing'}); {expected}")
        try:
            spectrum, image_size = data["spectrum"], data["image_size"]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise dnnlib.UserError(f"{path} is damaged ({e}): {expected}") from None
    if image_size.shape != () or not np.issubdtype(image_size.dtype, np.integer) or int(image_size) < 1:
        raise dnnlib.UserError(f"{path}: image_size is not a positive integer; {expected}")
    size = int(image_size)
    s = spectrum.shape[0] if spectrum.ndim == 2 else 0
    if (spectrum.ndim != 2 or spectrum.shape[1] != s or s < size or s % size
            or not np.issubdtype(spectrum.dtype, np.floating)):
        raise dnnlib.UserError(f"{path}: the spectrum is not a square float array whose side is a multiple of the "
                               f"image size {size} (got {spectrum.dtype} {list(spectrum.shape)}); {expected}")
    if not np.isfinite(spectrum).all():
        raise dnnlib.UserError(f"{path}: the spectrum has non-finite values (NaN or inf); compute it again with "
                               f"'avg_spectra.py calc'")
    return spectrum, size


def check_smooth(smooth: float, size: int, path: str) -> None:
    """UserError unless 0 <= `smooth` <= the image size (a wider Gaussian than the spectrum is pointless)."""
    if not (math.isfinite(smooth) and 0 <= smooth <= size):
        raise dnnlib.UserError(f"--smooth={smooth:g} is out of range for {path}: it is in cycles per image and goes "
                               f"from 0 (none) to the spectrum's width, {size}")

#----------------------------------------------------------------------------
# Plots.

def _pyplot(save: str | None):
    """matplotlib.pyplot, on the Agg back end when saving or when there is no display."""
    import matplotlib
    if save is not None or not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _has_display() -> bool:
    if os.name == "nt" or os.uname().sysname == "Darwin":
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _smooth(spectrum: np.ndarray, sigma: float) -> np.ndarray:
    """Periodic Gaussian smoothing; `sigma` in bins, at most the spectrum's side (callers check)."""
    if sigma <= 0:
        return spectrum
    import scipy.ndimage
    return scipy.ndimage.gaussian_filter(spectrum, sigma=sigma, mode="wrap")


def _finish(plt, fig, save: str | None, default: str) -> str | None:
    if save is None and _has_display():
        plt.show()
        return None
    path = save or default
    fmt = os.path.splitext(path)[1].lower().lstrip(".") or "png"
    if fmt not in fig.canvas.get_supported_filetypes():
        plt.close(fig)
        raise dnnlib.UserError(f"--save={path}: matplotlib cannot write .{fmt} files; use .png, .pdf or .svg")
    with dnnlib.util.atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=100)
    plt.close(fig)
    return path


def plot_heatmap(npz: str, save: str | None = None, smooth: float = 1.25, range_db: float = 80.0) -> str | None:
    """2-D heatmap of a spectrum in dB; returns the PNG written (None when shown on a display)."""
    spectrum, size = load_spectrum(npz)
    check_smooth(smooth, size, npz)
    interp = spectrum.shape[0] // size
    db = 10 * np.log10(np.maximum(_smooth(spectrum, smooth * interp), 1e-30))
    plt = _pyplot(save)
    fig, ax = plt.subplots(figsize=(6, 5))
    c = spectrum.shape[0] // 2
    lo, hi = (-c - 0.5) / interp, (spectrum.shape[0] - c - 0.5) / interp  # bin i at frequency (i - c) / interp
    im = ax.imshow(db, extent=[lo, hi, hi, lo], cmap="inferno", vmin=db.max() - range_db, vmax=db.max())
    ax.set_xlabel("horizontal frequency (cycles per image)")
    ax.set_ylabel("vertical frequency (cycles per image)")
    ax.set_title(os.path.basename(npz))
    fig.colorbar(im, ax=ax, label="power (dB)")
    fig.tight_layout()
    return _finish(plt, fig, save, os.path.splitext(npz)[0] + "-heatmap.png")


def spectrum_slices(spectrum: np.ndarray, size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Radial slices from zero frequency: 'horizontal' (along columns) and 'diagonal'; each (frequency in
    cycles per image, power)."""
    s = spectrum.shape[0]
    interp = s // size
    centre = s // 2
    k = np.arange(0, s - centre)
    return {"horizontal": (k / interp, spectrum[centre, centre + k]),
            "diagonal": (k * np.sqrt(2) / interp, spectrum[centre + k, centre + k])}


def plot_slices(npzs: list[str], save: str | None = None, smooth: float = 0.0) -> str | None:
    """Horizontal and diagonal slices of one or more spectra; returns the PNG written (None when shown)."""
    spectra = [load_spectrum(npz) for npz in npzs]
    for npz, (_, size) in zip(npzs, spectra):
        check_smooth(smooth, size, npz)
    plt = _pyplot(save)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for npz, (spectrum, size) in zip(npzs, spectra):
        interp = spectrum.shape[0] // size
        slices = spectrum_slices(_smooth(spectrum, smooth * interp), size)
        for ax, (name, (freq, power)) in zip(axes, slices.items()):
            ax.plot(freq, 10 * np.log10(np.maximum(power, 1e-30)), label=os.path.splitext(os.path.basename(npz))[0])
            ax.set_title(f"{name} slice")
            ax.set_xlabel("frequency (cycles per image)")
            ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("power (dB)")
    axes[1].legend()
    fig.tight_layout()
    return _finish(plt, fig, save, os.path.splitext(npzs[0])[0] + "-slices.png")

#----------------------------------------------------------------------------
# Command line.

def _device(name: str) -> torch.device:
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise dnnlib.UserError("--device=cuda asked for, but this machine has no CUDA GPU")
    return torch.device("cuda")


@click.group(epilog=__doc__.split("\n\n", 1)[1])
def main() -> None:
    """Average power spectra of real and generated images (StyleGAN3 analysis)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")


@main.command()
@click.option("--source", required=True, metavar="PATH", help="Dataset folder or zip, or network .pkl / URL")
@click.option("--num", type=click.IntRange(min=1), metavar="N", help="Number of images [default: all / 1000]")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (subset / latents)")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@dnnlib.util.cli_main
def stats(source: str, num: int | None, seed: int, device: str) -> None:
    """Mean and standard deviation of the pixel values (pass them to 'calc')."""
    mean, std, n = image_stats(iter_images(source, num, _device(device), seed=seed))
    click.echo(f"{n} images: --mean={mean:.6g} --std={std:.6g}")


@main.command()
@click.option("--source", required=True, metavar="PATH", help="Dataset folder or zip, or network .pkl / URL")
@click.option("--dest", required=True, metavar="NPZ", help="Where to save the spectrum (.npz)")
@click.option("--num", type=click.IntRange(min=1), metavar="N", help="Number of images [default: all / 1000]")
@click.option("--mean", type=dnnlib.util.finite_float(), default=0.0, show_default=True,
              help="Pixel mean to subtract (from 'stats')")
@click.option("--std", type=dnnlib.util.finite_float(), default=1.0, show_default=True,
              help="Pixel std to divide by (from 'stats')")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (subset / latents)")
@click.option("--beta", type=dnnlib.util.finite_float(), default=8.0, show_default=True,
              help=f"Kaiser window shape, {BETA_RANGE[0]:g} to {BETA_RANGE[1]:g}")
@click.option("--interp", type=click.IntRange(min=1), default=4, show_default=True,
              help="Zero-padding factor (multiplies the FFT size)")
@click.option("--trunc", "truncation_psi", type=dnnlib.util.finite_float(), default=1.0, show_default=True,
              help="Truncation psi (network sources)")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True, help="Images per batch")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@dnnlib.util.cli_main
def calc(source: str, dest: str, num: int | None, mean: float, std: float, seed: int, beta: float, interp: int,
         truncation_psi: float, batch: int, device: str) -> None:
    """Compute the average power spectrum of a dataset or a network and save it as .npz."""
    if not dest.lower().endswith(".npz"):
        raise dnnlib.UserError(f"--dest must be an .npz file (got {dest})")
    dnnlib.util.check_writable(dest, "spectrum")
    images = iter_images(source, num, _device(device), seed=seed, batch=batch, truncation_psi=truncation_psi)
    spectrum, size, n = average_spectrum(images, mean=mean, std=std, beta=beta, interp=interp)
    save_spectrum(dest, spectrum, size, num_images=n, mean=mean, std=std, beta=beta, interp=interp, source=source)
    click.echo(f"Saved the average spectrum of {n} images ({size}x{size}) to {dest}")


@main.command()
@click.argument("npz_file", metavar="NPZ")
@click.option("--save", metavar="PNG", help="Save the figure here [default: show it, or NPZ stem + -heatmap.png]")
@click.option("--smooth", type=dnnlib.util.finite_float(), default=1.25, show_default=True,
              help="Gaussian smoothing in cycles per image, 0 to the image size")
@dnnlib.util.cli_main
def heatmap(npz_file: str, save: str | None, smooth: float) -> None:
    """Plot a spectrum as a 2-D heatmap (dB)."""
    path = plot_heatmap(npz_file, save=save, smooth=smooth)
    if path:
        click.echo(f"Saved {path}")


@main.command()
@click.argument("npz_files", metavar="NPZ...", nargs=-1, required=True)
@click.option("--save", metavar="PNG", help="Save the figure here [default: show it, or first NPZ stem + -slices.png]")
@click.option("--smooth", type=dnnlib.util.finite_float(), default=0.0, show_default=True,
              help="Gaussian smoothing in cycles per image, 0 to the image size")
@dnnlib.util.cli_main
def slices(npz_files: tuple[str, ...], save: str | None, smooth: float) -> None:
    """Plot horizontal and diagonal slices of one or more spectra (dB)."""
    path = plot_slices(list(npz_files), save=save, smooth=smooth)
    if path:
        click.echo(f"Saved {path}")

#----------------------------------------------------------------------------

if __name__ == "__main__":
    main()

#----------------------------------------------------------------------------

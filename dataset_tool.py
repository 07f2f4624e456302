"""Make a training dataset archive (spec section 6) from a folder of images, a zip of images or a video.

    python dataset_tool.py --source=../shared/data/signer-pix2pix-256.mp4 --dest=ds.zip \\
        --resolution=256x256 --transform=center-crop
    python dataset_tool.py --source=frames/ --dest=ds/ --max-images=1000

The archive holds same-size square power-of-two PNGs named `NNNNN/imgNNNNNNNN.png` (1000 a folder) and
`dataset.json` with the labels found in the source's own `dataset.json` (or `{"labels": null}`). It is
written under a temporary name next to `--dest` and renamed when complete, so an interrupted run leaves
no half-written archive behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import zipfile
from typing import Any, Callable, Iterator

import click
import numpy as np
import PIL.Image
from tqdm import tqdm

import dnnlib
from training.dataset import MIN_RESOLUTION, image_extensions, parse_labels, trainable_side
from utils.video_io import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

PNG_COMPRESS_LEVEL = 1  # about 4x smaller than level 0 for a third more decode time; higher levels gain little
# Archive kinds a --dest might name that this tool does not write (it writes a .zip or a folder).
OTHER_ARCHIVE_EXTENSIONS = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tar", ".tgz", ".tbz", ".tbz2", ".txz",
                            ".tzst", ".gz", ".bz2", ".xz", ".zst", ".lz", ".lzma", ".7z", ".rar")

#----------------------------------------------------------------------------
# Sources: (number of images, iterator of (name, PIL image), labels by name or None).

def _load_image(data: io.IOBase | str, name: str) -> PIL.Image.Image:
    try:
        with PIL.Image.open(data) as img:
            return img.copy()  # decoded; the file can close
    except PIL.UnidentifiedImageError:
        raise dnnlib.UserError(f"Cannot read image {name}: not an image file (or a damaged one)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise dnnlib.UserError(f"Cannot read image {name}: {e}") from None


def _labels_from_json(read: Callable[[], bytes], source: str) -> dict[str, Any] | None:
    try:
        data = json.loads(read())
    except (ValueError, UnicodeDecodeError) as e:
        raise dnnlib.UserError(f"{source} is not valid JSON: {e}") from None
    return parse_labels(data, source)


def _folder_source(path: str, max_images: int | None):
    def unreadable(e: OSError) -> None:  # a subfolder left out silently would shrink the dataset unseen
        raise dnnlib.UserError(f"Cannot read folder {e.filename}: {e.strerror or e}")

    names = sorted(os.path.relpath(os.path.join(root, f), path).replace(os.sep, "/")
                   for root, _dirs, files in os.walk(path, onerror=unreadable) for f in files)
    labels = None
    if "dataset.json" in names:
        json_path = os.path.join(path, "dataset.json")
        with open(json_path, "rb") as f:
            labels = _labels_from_json(f.read, json_path)
    exts = image_extensions()
    names = [n for n in names if os.path.splitext(n)[1].lower() in exts and not dnnlib.util.is_hidden(n)][:max_images]

    def iterate() -> Iterator[tuple[str, PIL.Image.Image]]:
        for name in names:
            yield name, _load_image(os.path.join(path, name), f"{path}/{name}")
    return len(names), iterate(), labels


def _zip_source(path: str, max_images: int | None):
    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if not n.endswith("/"))
        labels = None
        if "dataset.json" in names:
            labels = _labels_from_json(lambda: z.read("dataset.json"), f"{path}/dataset.json")
    exts = image_extensions()
    names = [n for n in names if os.path.splitext(n)[1].lower() in exts and not dnnlib.util.is_hidden(n)][:max_images]

    def iterate() -> Iterator[tuple[str, PIL.Image.Image]]:
        with zipfile.ZipFile(path) as z:
            for name in names:
                with z.open(name) as f:
                    yield name, _load_image(f, f"{path}/{name}")
    return len(names), iterate(), labels


def _video_source(path: str, max_images: int | None):
    from utils.video_io import read_video, video_info
    num_frames = video_info(path).num_frames
    if max_images is not None:
        num_frames = min(num_frames, max_images)
    frames = read_video(path, stop=max_images)

    def iterate() -> Iterator[tuple[str, PIL.Image.Image]]:
        for i, frame in enumerate(frames):
            yield f"frame{i:08d}", PIL.Image.fromarray(frame)
    return num_frames, iterate(), None


def open_source(source: str, max_images: int | None = None):
    """`(count, images, labels)` of a folder (searched recursively, sorted by relative path), a zip or a
    video file: `images` yields `(name, PIL image)`, `labels` maps names to labels (None without)."""
    if os.path.isdir(source):
        return _folder_source(source, max_images)
    if not os.path.isfile(source):
        raise dnnlib.UserError(f"Source not found: {source}")
    if zipfile.is_zipfile(source):
        return _zip_source(source, max_images)
    if os.path.splitext(source)[1].lower() in VIDEO_EXTENSIONS:
        return _video_source(source, max_images)
    raise dnnlib.UserError(f"Unsupported source {source}: give a folder of images, a .zip of images or a video file "
                           f"({', '.join(sorted(VIDEO_EXTENSIONS))})")

#----------------------------------------------------------------------------
# Transforms: PIL image -> PIL image of the output size.

def _center_crop(img: PIL.Image.Image, aspect: float) -> PIL.Image.Image:
    """The largest centered crop with width / height = aspect."""
    w, h = img.size
    cw, ch = (w, round(w / aspect)) if w / h <= aspect else (round(h * aspect), h)
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


def make_transform(transform: str | None, resolution: tuple[int, int] | None) -> Callable[[PIL.Image.Image], PIL.Image.Image]:
    """Image transform for `--transform` and `--resolution=(width, height)`:

    - none: resize to the resolution when given (aspect ratio not kept), else keep the image;
    - center-crop: the largest centered square, resized to the resolution when given;
    - center-crop-wide: the largest centered crop of the resolution's aspect ratio, resized to it and
      placed in the middle of a black square of side max(width, height) (for wide-screen video).
    """
    def resize(img: PIL.Image.Image, size: tuple[int, int]) -> PIL.Image.Image:
        return img if img.size == size else img.resize(size, PIL.Image.LANCZOS)

    if transform is None:
        return (lambda img: img) if resolution is None else (lambda img: resize(img, resolution))
    if transform == "center-crop":
        if resolution is None:
            return lambda img: _center_crop(img, 1.0)
        return lambda img: resize(_center_crop(img, 1.0), resolution)
    if transform == "center-crop-wide":
        if resolution is None:
            raise dnnlib.UserError("--transform=center-crop-wide needs --resolution=WxH (the crop's aspect ratio)")
        width, height = resolution
        side = max(width, height)

        def crop_wide(img: PIL.Image.Image) -> PIL.Image.Image:
            img = resize(_center_crop(img, width / height), resolution)
            canvas = PIL.Image.new(img.mode, (side, side))
            canvas.paste(img, ((side - width) // 2, (side - height) // 2))
            return canvas
        return crop_wide
    raise dnnlib.UserError(f"Unknown --transform {transform!r}: use center-crop or center-crop-wide")


def _to_array(img: PIL.Image.Image) -> np.ndarray:
    """HWC uint8: grayscale modes -> 1 channel, everything else (palette, RGBA, CMYK, ...) -> RGB."""
    mode = "L" if img.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
    array = np.asarray(img if img.mode == mode else img.convert(mode))
    return array[:, :, np.newaxis] if array.ndim == 2 else array

#----------------------------------------------------------------------------
# Destinations: a zip or a folder, written under a temporary name and renamed when complete.

def check_dest(source: str, dest: str) -> None:
    """UserError for a destination that is another kind of archive than .zip, or that lies inside the
    source folder (a later run would read its own output as images)."""
    path = dest.rstrip("/\\") or dest
    ext = next((e for e in OTHER_ARCHIVE_EXTENSIONS if os.path.basename(path).lower().endswith(e)), None)
    if ext is not None:
        raise dnnlib.UserError(f"--dest {dest}: this tool does not write {ext} archives; the destination is a .zip "
                               f"or a folder (e.g. --dest={path[:len(path) - len(ext)]}.zip)")
    if os.path.isfile(source) and os.path.isfile(dest) and os.path.samefile(source, dest):
        raise dnnlib.UserError(f"--dest {dest} is the source: write the dataset to another file, so that the source "
                               f"is kept")
    if os.path.isdir(source):
        src, out = os.path.realpath(source), os.path.realpath(dest)
        try:
            inside = os.path.commonpath([src, out]) == src
        except ValueError:  # on another drive (Windows)
            inside = False
        if inside:
            where = "is the source folder" if out == src else f"is inside the source folder {source}"
            raise dnnlib.UserError(f"--dest {dest} {where}: a later run would read the dataset as source images; "
                                   f"write it elsewhere")


def check_output_size(width: int, height: int) -> None:
    """UserError unless images of `width` x `height` can be trained on: square, with a power-of-two side of
    at least MIN_RESOLUTION."""
    if width != height or not trainable_side(width):
        raise dnnlib.UserError(
            f"Output images would be {width}x{height}; the dataset needs square images with a power-of-two side of "
            f"at least {MIN_RESOLUTION}: add e.g. --resolution=256x256 --transform=center-crop")


@contextlib.contextmanager
def open_dest(dest: str) -> Iterator[Callable[[str, bytes], None]]:
    """Yield `write(relative_name, data)`; the archive appears at `dest` only if the block succeeds.

    A `.zip` destination is replaced if it exists; a folder destination must not exist or be empty."""
    if dest.lower().endswith(".zip"):
        if os.path.isdir(dest):
            raise dnnlib.UserError(f"--dest {dest} is a folder; give a .zip file name or a folder without .zip")
        if os.path.exists(dest):
            log.info("Replacing %s", dest)
        with dnnlib.util.atomic_path(dest) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
                yield z.writestr
        return

    if os.path.isfile(dest):
        raise dnnlib.UserError(f"--dest {dest} is an existing file; give a folder or a .zip name")
    if os.path.isdir(dest) and os.listdir(dest):
        raise dnnlib.UserError(f"--dest folder {dest} is not empty; remove it or choose another")
    with dnnlib.util.atomic_path(dest.rstrip("/\\") or dest) as tmp:
        os.remove(tmp)  # atomic_path reserves a file name; the archive is a folder
        os.mkdir(tmp)
        try:
            def write(name: str, data: bytes) -> None:
                path = os.path.join(tmp, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
            yield write
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

#----------------------------------------------------------------------------
# Conversion.

def archive_name(idx: int) -> str:
    return f"{idx // 1000:05d}/img{idx:08d}.png"


def convert_dataset(source: str, dest: str, max_images: int | None = None, transform: str | None = None,
                    resolution: tuple[int, int] | None = None, progress: bool | None = None) -> int:
    """Write the images of `source` (see `open_source`) to the archive `dest`; return how many.

    Args:
        max_images: Stop after this many images.
        transform:  None, 'center-crop' or 'center-crop-wide' (see `make_transform`).
        resolution: (width, height) of the output before the square canvas of center-crop-wide.
        progress:   Show a progress bar (None: when on a terminal).

    Raises `UserError` for an unreadable or empty source, images of mixed size or channel count (without
    a resolution to bring them to one size), output that is not square with a power-of-two side of at
    least MIN_RESOLUTION, images without a label in a labelled source, and an unusable destination (another
    archive kind than .zip, a place inside the source folder; checked before anything is read).
    """
    if max_images is not None and max_images < 1:
        raise dnnlib.UserError("--max-images must be at least 1")
    if resolution is not None and (resolution[0] < 1 or resolution[1] < 1):
        raise dnnlib.UserError(f"--resolution {resolution[0]}x{resolution[1]} must be positive")
    if resolution is not None:  # the output size is known before any image is read
        side = max(resolution) if transform == "center-crop-wide" else None
        check_output_size(*((side, side) if side else resolution))
    check_dest(source, dest)
    transform_fn = make_transform(transform, resolution)
    count, images, labels = open_source(source, max_images)
    if count == 0:
        raise dnnlib.UserError(f"No images found in {source}")

    out_labels: list[list[Any]] = []
    first: tuple[str, tuple[int, ...]] | None = None
    written = 0
    with contextlib.closing(images), open_dest(dest) as write:
        for name, img in tqdm(images, total=count, unit="img", disable=(None if progress is None else not progress)):
            array = _to_array(transform_fn(img))
            if first is None:
                first = (name, array.shape)
                h, w, c = array.shape
                check_output_size(w, h)
                log.info("Writing %d images of %dx%d with %d channel(s) to %s", count, w, h, c, dest)
            elif array.shape != first[1]:
                (h0, w0, c0), (h, w, c) = first[1], array.shape
                remedy = ("use --resolution=WxH (and --transform=center-crop) to bring them to one size"
                          if (h, w) != (h0, w0) else
                          "some are grayscale, some colour: convert them to one kind (e.g. all to RGB) first")
                raise dnnlib.UserError(
                    f"Images differ: {first[0]} gives {w0}x{h0} with {c0} channel(s), {name} gives {w}x{h} with {c}; "
                    f"{remedy}")
            out_name = archive_name(written)
            if labels is not None:
                if name not in labels:
                    raise dnnlib.UserError(f"{source}: dataset.json has no label for {name}")
                out_labels.append([out_name, labels[name]])
            buf = io.BytesIO()
            PIL.Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(
                buf, format="png", compress_level=PNG_COMPRESS_LEVEL)
            write(out_name, buf.getvalue())
            written += 1
        if written == 0:
            raise dnnlib.UserError(f"No images found in {source}")
        write("dataset.json", json.dumps({"labels": out_labels if labels is not None else None}).encode())
    return written

#----------------------------------------------------------------------------
# Command line.

def parse_resolution(_ctx: Any, _param: Any, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise click.BadParameter(f"{value!r} is not WxH, e.g. 256x256")
    return int(parts[0]), int(parts[1])


@click.command()
@click.option("--source", required=True, metavar="PATH", help="Folder of images (recursive), zip of images, or video file")
@click.option("--dest", required=True, metavar="PATH", help="Output archive: a .zip or a folder (new or empty)")
@click.option("--max-images", type=int, metavar="INT", help="Stop after this many images")
@click.option("--transform", type=click.Choice(["center-crop", "center-crop-wide"]), help="Crop before resizing")
@click.option("--resolution", callback=parse_resolution, metavar="WxH", help="Output resolution, e.g. 256x256")
@dnnlib.util.cli_main
def main(source: str, dest: str, max_images: int | None, transform: str | None,
         resolution: tuple[int, int] | None) -> None:
    """Make a training dataset (PNG archive with dataset.json) from images or a video."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    n = convert_dataset(source, dest, max_images=max_images, transform=transform, resolution=resolution)
    log.info("Wrote %d images to %s", n, dest)


if __name__ == "__main__":
    main()

#----------------------------------------------------------------------------

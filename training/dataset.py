"""Image datasets for training and metrics: a folder or zip archive of same-size square images.

The training loop and the metrics build the dataset by name, as the published pickles record it in
`training_set_kwargs`:

    dnnlib.util.construct_class_by_name(class_name='training.dataset.ImageFolderDataset',
                                        path=..., use_labels=..., max_size=..., xflip=..., resolution=...)

An item is `(image, label)`: `image` is a CHW uint8 numpy array, `label` a float32 vector (one-hot for
integer labels, the vector itself for vector labels, shape [0] without labels). The archive format
(spec section 6) is what `dataset_tool.py` writes: `NNNNN/imgNNNNNNNN.png` plus an optional
`dataset.json` at the root holding `{"labels": [[relative_name, label], ...]}` or `{"labels": null}`.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from typing import Any, BinaryIO

import numpy as np
import PIL.Image
import torch

import dnnlib

log = logging.getLogger(__name__)

# The smallest image side the networks train on: the discriminator (training.networks_stylegan2.Discriminator,
# for every --cfg) ends in a 4x4 block fed by the blocks above it, so it needs at least one block of 8x8 (the
# generators would go down to 4x4). The datasets, dataset_tool.py and utils/video_to_images.py hold to it.
MIN_RESOLUTION = 8


def trainable_side(side: int) -> bool:
    """Whether square images of this side can be trained on: a power of two, at least MIN_RESOLUTION."""
    return side >= MIN_RESOLUTION and (side & (side - 1)) == 0

#----------------------------------------------------------------------------
# Base class: indexing, labels, x-flip mirroring and the max_size subset.

class Dataset(torch.utils.data.Dataset):
    """Abstract image dataset. Subclasses implement `_load_raw_image(raw_idx)` (CHW uint8 numpy) and
    `_load_raw_labels()` (None, int64 [N] or float32 [N, D]).

    Args:
        name:        Short name of the dataset (used in run names).
        raw_shape:   [N, C, H, W] of the stored images.
        max_size:    Keep at most this many images, a subset drawn with `random_seed` (sorted by index).
        use_labels:  Return the stored labels; otherwise every label has shape [0].
        xflip:       Append a mirrored copy of every image (the dataset doubles; the second half is flipped).
        random_seed: Seed of the `max_size` subset.
    """

    def __init__(self, name: str, raw_shape: list[int] | tuple[int, ...], max_size: int | None = None,
                 use_labels: bool = False, xflip: bool = False, random_seed: int = 0):
        self._name = name
        self._raw_shape = [int(v) for v in raw_shape]
        self._use_labels = bool(use_labels)
        self._raw_labels: np.ndarray | None = None
        self._label_shape: list[int] | None = None

        # Which stored images the dataset shows, in order.
        num_raw = self._raw_shape[0]
        raw_idx = np.arange(num_raw, dtype=np.int64)
        if max_size is not None and num_raw > max_size:
            keep = np.random.RandomState(random_seed).permutation(num_raw)[:max_size]
            raw_idx = np.sort(raw_idx[keep])
        flipped = np.zeros(len(raw_idx), dtype=np.uint8)
        if xflip:
            raw_idx = np.concatenate([raw_idx, raw_idx])
            flipped = np.concatenate([flipped, np.ones_like(flipped)])
        self._raw_idx = raw_idx
        self._xflip = flipped

    # Subclass interface.

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        raise NotImplementedError

    def _load_raw_labels(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release open files (subclasses); the dataset reopens them when read again."""

    # Labels.

    def _get_raw_labels(self) -> np.ndarray:
        if self._raw_labels is None:
            labels = self._load_raw_labels() if self._use_labels else None
            if labels is None:
                labels = np.zeros([self._raw_shape[0], 0], dtype=np.float32)
            labels = np.asarray(labels)
            assert labels.shape[0] == self._raw_shape[0]
            assert labels.dtype in (np.float32, np.int64)
            if labels.dtype == np.int64:
                assert labels.ndim == 1 and np.all(labels >= 0)
            self._raw_labels = labels
        return self._raw_labels

    # torch Dataset protocol.

    def __len__(self) -> int:
        return len(self._raw_idx)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (image CHW uint8, label float32 [label_dim])."""
        image = self._load_raw_image(int(self._raw_idx[idx]))
        assert isinstance(image, np.ndarray) and image.dtype == np.uint8
        assert list(image.shape) == self.image_shape, (image.shape, self.image_shape)
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return np.ascontiguousarray(image), self.get_label(idx)

    def get_label(self, idx: int) -> np.ndarray:
        """Label of item `idx` as float32: one-hot for integer labels, else the stored vector."""
        label = self._get_raw_labels()[self._raw_idx[idx]]
        if label.dtype == np.int64:
            onehot = np.zeros(self.label_shape, dtype=np.float32)
            onehot[label] = 1
            return onehot
        return label.copy()

    def get_details(self, idx: int) -> dnnlib.EasyDict:
        """Where item `idx` comes from: raw_idx (stored image), xflip (mirrored?), raw_label (as stored)."""
        return dnnlib.EasyDict(raw_idx=int(self._raw_idx[idx]), xflip=bool(self._xflip[idx]),
                               raw_label=self._get_raw_labels()[self._raw_idx[idx]].copy())

    # Properties.

    @property
    def name(self) -> str:
        return self._name

    @property
    def image_shape(self) -> list[int]:
        """[C, H, W]."""
        return list(self._raw_shape[1:])

    @property
    def num_channels(self) -> int:
        return self.image_shape[0]

    @property
    def resolution(self) -> int:
        assert self.image_shape[1] == self.image_shape[2]
        return self.image_shape[1]

    @property
    def label_shape(self) -> list[int]:
        if self._label_shape is None:
            raw_labels = self._get_raw_labels()
            if raw_labels.dtype == np.int64:
                self._label_shape = [int(raw_labels.max()) + 1 if raw_labels.size else 0]
            else:
                self._label_shape = list(raw_labels.shape[1:])
        return list(self._label_shape)

    @property
    def label_dim(self) -> int:
        assert len(self.label_shape) == 1
        return self.label_shape[0]

    @property
    def has_labels(self) -> bool:
        return any(v != 0 for v in self.label_shape)

    @property
    def has_onehot_labels(self) -> bool:
        return self._get_raw_labels().dtype == np.int64

#----------------------------------------------------------------------------
# Images in a folder (searched recursively) or in a zip archive.

def image_extensions() -> set[str]:
    PIL.Image.init()
    return {ext.lower() for ext in PIL.Image.EXTENSION}


def _pil_to_array(img: PIL.Image.Image) -> np.ndarray:
    """HWC uint8 array of a PIL image: grayscale stays 1 channel, RGB(A) keeps its channels (a dataset
    refuses RGBA when it opens), other modes (palette, CMYK, 16-bit, ...) are converted to RGB or L."""
    if img.mode not in ("L", "RGB", "RGBA"):
        img = img.convert("L" if img.mode in ("1", "I", "I;16", "F", "LA") else "RGB")
    array = np.asarray(img)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    return array


def _mode_channels(mode: str) -> int:
    if mode in ("1", "L", "I", "I;16", "F", "LA"):
        return 1
    return 4 if mode == "RGBA" else 3


def parse_labels(data: Any, source: str) -> dict[str, Any] | None:
    """The label table of a parsed `dataset.json`: {relative name: int or list of floats}, or None.

    Raises `UserError` naming `source` when the file does not follow the spec."""
    if not isinstance(data, dict) or "labels" not in data:
        raise dnnlib.UserError(f'{source}: expected an object {{"labels": [[name, label], ...]}} or {{"labels": null}}')
    labels = data["labels"]
    if labels is None:
        return None
    if not isinstance(labels, list) or not all(isinstance(e, (list, tuple)) and len(e) == 2 for e in labels):
        raise dnnlib.UserError(f'{source}: "labels" must be a list of [name, label] pairs or null')
    return {str(name).replace("\\", "/"): label for name, label in labels}


def labels_to_array(labels: list[Any], source: str) -> np.ndarray:
    """Stack labels: all non-negative ints -> int64 [N]; all equal-length number lists -> float32 [N, D]."""
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels):
        array = np.asarray(labels, dtype=np.int64).reshape(len(labels))
        if np.any(array < 0):
            raise dnnlib.UserError(f"{source}: integer labels must be >= 0")
        return array
    try:
        array = np.asarray(labels, dtype=np.float32)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim != 2 or array.shape[0] != len(labels):
        raise dnnlib.UserError(f"{source}: labels must be all integers (classes) or all lists of numbers of one length")
    return array


class ImageFolderDataset(Dataset):
    """Same-size, square, power-of-two images in a folder (recursively) or a zip archive (stored or
    deflated), labels from `dataset.json` at the root. Images are sorted by their relative path.

    Args:
        path:       Folder or `.zip` file.
        resolution: Expected side length; a dataset of another resolution is an error.
        **kwargs:   `Dataset` arguments (max_size, use_labels, xflip, random_seed).

    The zip is opened lazily, once per process: a dataset pickled into DataLoader workers carries no open
    file handle.
    """

    def __init__(self, path: str, resolution: int | None = None, **kwargs):
        self._path = os.fspath(path)
        self._zipfile: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None

        if os.path.isdir(self._path):
            self._type = "dir"
            self._all_fnames = sorted(
                os.path.relpath(os.path.join(root, fname), start=self._path).replace(os.sep, "/")
                for root, _dirs, files in os.walk(self._path) for fname in files)
        elif os.path.isfile(self._path):
            if not zipfile.is_zipfile(self._path):
                raise dnnlib.UserError(f"Dataset {self._path} is neither a folder nor a zip archive; "
                                       f"make one with dataset_tool.py")
            self._type = "zip"
            self._all_fnames = sorted(n for n in self._get_zipfile().namelist() if not n.endswith("/"))
        else:
            raise dnnlib.UserError(f"Dataset not found: {self._path} (give a folder or a .zip made by dataset_tool.py)")

        extensions = image_extensions()
        self._image_fnames = [f for f in self._all_fnames
                              if os.path.splitext(f)[1].lower() in extensions and not dnnlib.util.is_hidden(f)]
        if not self._image_fnames:
            raise dnnlib.UserError(f"No images found in {self._path}")

        name = os.path.splitext(os.path.basename(self._path.rstrip("/\\")))[0]
        raw_shape = [len(self._image_fnames)] + self._scan_image_shape()
        super().__init__(name=name, raw_shape=raw_shape, **kwargs)

        _c, h, w = raw_shape[1:]
        if h != w:
            raise dnnlib.UserError(f"Dataset {self._path}: images are {w}x{h}; training needs square images "
                                   f"(remake the dataset with dataset_tool.py --resolution=NxN --transform=center-crop)")
        if not trainable_side(h):
            raise dnnlib.UserError(f"Dataset {self._path}: image side {h} is not a power of two of at least "
                                   f"{MIN_RESOLUTION} (remake the dataset with dataset_tool.py --resolution=NxN, "
                                   f"e.g. 256x256)")
        if resolution is not None and int(resolution) != h:
            raise dnnlib.UserError(f"Dataset {self._path} has resolution {h}, but {resolution} was expected")
        if self._use_labels:
            self._get_raw_labels()  # a broken dataset.json fails here, not in a DataLoader worker

    # File access.

    def _get_zipfile(self) -> zipfile.ZipFile:
        assert self._type == "zip"
        if self._zipfile is None or self._zip_pid != os.getpid():
            self._zipfile = zipfile.ZipFile(self._path)  # a forked worker opens its own handle
            self._zip_pid = os.getpid()
        return self._zipfile

    def _open_file(self, fname: str) -> BinaryIO:
        if self._type == "dir":
            return open(os.path.join(self._path, fname), "rb")
        return self._get_zipfile().open(fname, "r")

    def close(self) -> None:
        try:
            if self._zipfile is not None and self._zip_pid == os.getpid():
                self._zipfile.close()
        finally:
            self._zipfile = None
            self._zip_pid = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zipfile"] = None
        state["_zip_pid"] = None
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # Reading.

    def _scan_image_shape(self) -> list[int]:
        """[C, H, W] shared by every image (read from the headers only); UserError when they differ."""
        first: tuple[str, int, int, int] | None = None
        for fname in self._image_fnames:
            try:
                with self._open_file(fname) as f, PIL.Image.open(f) as img:
                    w, h = img.size
                    c = _mode_channels(img.mode)
            except (OSError, SyntaxError, ValueError) as e:
                raise dnnlib.UserError(f"Dataset {self._path}: cannot read image {fname}: {e}") from None
            if first is None:
                first = (fname, c, h, w)
            elif (c, h, w) != first[1:]:
                raise dnnlib.UserError(
                    f"Dataset {self._path}: images differ in size or channels ({first[0]} is {first[3]}x{first[2]} "
                    f"with {first[1]} channels, {fname} is {w}x{h} with {c}); remake it with dataset_tool.py --resolution")
        assert first is not None
        if first[1] not in (1, 3):  # the networks, grids and metrics take grayscale or RGB
            raise dnnlib.UserError(f"Dataset {self._path}: images have {first[1]} channels (RGBA); training takes RGB "
                                   f"or grayscale: remake it with dataset_tool.py, which drops the alpha channel")
        return list(first[1:])

    def _load_raw_image(self, raw_idx: int) -> np.ndarray:
        fname = self._image_fnames[raw_idx]
        with self._open_file(fname) as f, PIL.Image.open(f) as img:
            image = _pil_to_array(img)
        return image.transpose(2, 0, 1)  # HWC -> CHW

    def _load_raw_labels(self) -> np.ndarray | None:
        fname = "dataset.json"
        if fname not in self._all_fnames:
            return None
        source = f"{self._path}/{fname}"
        try:
            with self._open_file(fname) as f:
                data = json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            raise dnnlib.UserError(f"{source} is not valid JSON: {e}") from None
        table = parse_labels(data, source)
        if table is None:
            return None
        missing = [f for f in self._image_fnames if f not in table]
        if missing:
            raise dnnlib.UserError(f"{source} has no label for {len(missing)} image(s), e.g. {missing[0]}")
        return labels_to_array([table[f] for f in self._image_fnames], source)

#----------------------------------------------------------------------------

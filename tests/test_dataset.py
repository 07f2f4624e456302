"""training/dataset.py: folder and zip datasets, labels, x-flip, max_size subsets, worker safety, errors."""

import json
import pickle
import zipfile

import numpy as np
import PIL.Image
import pytest
import torch

import dnnlib
from training.dataset import ImageFolderDataset

#----------------------------------------------------------------------------
# Helpers.

def _image(i: int, size: int = 8, channels: int = 3) -> np.ndarray:
    """A deterministic HWC uint8 image that is not left-right symmetric and differs per i."""
    rng = np.random.RandomState(i)
    return rng.randint(0, 256, size=(size, size, channels), dtype=np.uint8)


def _save(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)


def _make_folder(root, n=5, size=8, channels=3, labels=None):
    arrays = []
    for i in range(n):
        array = _image(i, size, channels)
        _save(root / f"{i // 3:05d}" / f"img{i:08d}.png", array)
        arrays.append(array)
    if labels is not None:
        entries = [[f"{i // 3:05d}/img{i:08d}.png", labels[i]] for i in range(n)]
        (root / "dataset.json").write_text(json.dumps({"labels": entries}))
    return arrays


def _zip_folder(folder, zip_path, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(zip_path, "w", compression=compression) as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(folder).as_posix())
    return zip_path


def _by_name(**kwargs):
    return dnnlib.util.construct_class_by_name(class_name="training.dataset.ImageFolderDataset", **kwargs)

#----------------------------------------------------------------------------
# Reading.

@pytest.mark.parametrize("kind", ["dir", "zip-stored", "zip-deflated"])
def test_reads_images_in_order_chw_uint8(tmp_path, kind):
    arrays = _make_folder(tmp_path / "src", n=5)
    path = tmp_path / "src"
    if kind != "dir":
        comp = zipfile.ZIP_STORED if kind == "zip-stored" else zipfile.ZIP_DEFLATED
        path = _zip_folder(path, tmp_path / "ds.zip", comp)
    ds = _by_name(path=str(path), use_labels=False, max_size=None, xflip=False, resolution=8)
    assert len(ds) == 5
    assert ds.image_shape == [3, 8, 8] and ds.num_channels == 3 and ds.resolution == 8
    assert ds.name == ("src" if kind == "dir" else "ds")
    for i in range(5):
        image, label = ds[i]
        assert image.dtype == np.uint8 and image.shape == (3, 8, 8)
        np.testing.assert_array_equal(image, arrays[i].transpose(2, 0, 1))
        assert label.dtype == np.float32 and label.shape == (0,)
    assert not ds.has_labels and ds.label_shape == [0]


def test_grayscale_has_one_channel(tmp_path):
    arrays = _make_folder(tmp_path, n=2, channels=1)
    ds = ImageFolderDataset(str(tmp_path))
    assert ds.image_shape == [1, 8, 8]
    np.testing.assert_array_equal(ds[1][0][0], arrays[1][:, :, 0])


def test_int_labels_are_one_hot(tmp_path):
    _make_folder(tmp_path, n=4, labels=[0, 2, 1, 2])
    ds = ImageFolderDataset(str(tmp_path), use_labels=True)
    assert ds.has_labels and ds.has_onehot_labels
    assert ds.label_shape == [3] and ds.label_dim == 3
    np.testing.assert_array_equal(ds[1][1], np.array([0, 0, 1], dtype=np.float32))
    np.testing.assert_array_equal(ds.get_label(2), np.array([0, 1, 0], dtype=np.float32))
    assert ds.get_details(3).raw_label == 2
    # use_labels=False ignores dataset.json.
    plain = ImageFolderDataset(str(tmp_path), use_labels=False)
    assert not plain.has_labels and plain[1][1].shape == (0,)


def test_vector_labels(tmp_path):
    vectors = [[0.5, -1.0], [1.0, 2.0], [3.0, 4.0]]
    _make_folder(tmp_path, n=3, labels=vectors)
    ds = ImageFolderDataset(str(_zip_folder(tmp_path, tmp_path.parent / "v.zip")), use_labels=True)
    assert ds.has_labels and not ds.has_onehot_labels and ds.label_shape == [2]
    np.testing.assert_array_equal(ds[2][1], np.array([3.0, 4.0], dtype=np.float32))


def test_null_labels(tmp_path):
    _make_folder(tmp_path, n=2)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": None}))
    ds = ImageFolderDataset(str(tmp_path), use_labels=True)
    assert not ds.has_labels and ds[0][1].shape == (0,)


def test_xflip_doubles_with_mirrored_second_half(tmp_path):
    arrays = _make_folder(tmp_path, n=3, labels=[0, 1, 0])
    ds = ImageFolderDataset(str(tmp_path), xflip=True, use_labels=True)
    assert len(ds) == 6
    for i in range(3):
        a, la = ds[i]
        b, lb = ds[i + 3]
        np.testing.assert_array_equal(a, arrays[i].transpose(2, 0, 1))
        np.testing.assert_array_equal(b, a[:, :, ::-1])
        assert not np.array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
        assert ds.get_details(i + 3).xflip and not ds.get_details(i).xflip
        assert b.flags.c_contiguous and torch.from_numpy(b).shape == (3, 8, 8)


def test_max_size_subset_depends_on_seed(tmp_path):
    _make_folder(tmp_path, n=12)
    picks = {}
    for seed in (0, 1):
        ds = ImageFolderDataset(str(tmp_path), max_size=5, random_seed=seed)
        assert len(ds) == 5
        raw = [ds.get_details(i).raw_idx for i in range(5)]
        assert raw == sorted(raw) and len(set(raw)) == 5 and all(0 <= r < 12 for r in raw)
        again = ImageFolderDataset(str(tmp_path), max_size=5, random_seed=seed)
        assert raw == [again.get_details(i).raw_idx for i in range(5)]
        picks[seed] = raw
    assert picks[0] != picks[1]
    # max_size then xflip: the same subset, mirrored.
    ds = ImageFolderDataset(str(tmp_path), max_size=5, xflip=True)
    assert len(ds) == 10 and [ds.get_details(i).raw_idx for i in range(5, 10)] == picks[0]
    # A max_size at least the dataset size keeps everything.
    assert len(ImageFolderDataset(str(tmp_path), max_size=50)) == 12

#----------------------------------------------------------------------------
# Workers: no open zip handle travels with the dataset.

def test_zip_dataset_pickles_without_handle_and_works_in_workers(tmp_path):
    arrays = _make_folder(tmp_path / "src", n=6)
    ds = ImageFolderDataset(str(_zip_folder(tmp_path / "src", tmp_path / "ds.zip")))
    ds[0]  # opens the zip in this process
    assert ds._zipfile is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._zipfile is None
    np.testing.assert_array_equal(clone[4][0], arrays[4].transpose(2, 0, 1))

    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    images = torch.cat([batch[0] for batch in loader])
    assert images.shape == (6, 3, 8, 8) and images.dtype == torch.uint8
    np.testing.assert_array_equal(images.numpy(), np.stack([a.transpose(2, 0, 1) for a in arrays]))
    ds.close()
    assert ds._zipfile is None
    np.testing.assert_array_equal(ds[5][0], arrays[5].transpose(2, 0, 1))  # reopens on demand

#----------------------------------------------------------------------------
# Errors: one clear UserError each.

def test_missing_path(tmp_path):
    with pytest.raises(dnnlib.UserError, match="not found"):
        ImageFolderDataset(str(tmp_path / "nope.zip"))


def test_no_images(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(dnnlib.UserError, match="No images"):
        ImageFolderDataset(str(tmp_path))


def test_not_a_zip(tmp_path):
    (tmp_path / "x.zip").write_text("not a zip")
    with pytest.raises(dnnlib.UserError, match="neither a folder nor a zip"):
        ImageFolderDataset(str(tmp_path / "x.zip"))


def test_mixed_sizes(tmp_path):
    _make_folder(tmp_path, n=2, size=8)
    _save(tmp_path / "zz.png", _image(9, size=16))
    with pytest.raises(dnnlib.UserError, match="differ"):
        ImageFolderDataset(str(tmp_path))


def test_mixed_channels(tmp_path):
    _make_folder(tmp_path, n=2, size=8)
    _save(tmp_path / "zz.png", _image(9, size=8, channels=1))
    with pytest.raises(dnnlib.UserError, match="differ"):
        ImageFolderDataset(str(tmp_path))


def test_rgba_is_refused_with_the_remedy(tmp_path):
    _save(tmp_path / "a.png", np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(dnnlib.UserError, match="4 channels .RGBA.*dataset_tool.py"):
        ImageFolderDataset(str(tmp_path))


def test_non_square(tmp_path):
    _save(tmp_path / "a.png", np.zeros((8, 16, 3), np.uint8))
    with pytest.raises(dnnlib.UserError, match="square"):
        ImageFolderDataset(str(tmp_path))


def test_non_power_of_two(tmp_path):
    _save(tmp_path / "a.png", np.zeros((12, 12, 3), np.uint8))
    with pytest.raises(dnnlib.UserError, match="power of two"):
        ImageFolderDataset(str(tmp_path))


def test_resolution_mismatch(tmp_path):
    _make_folder(tmp_path, n=1, size=8)
    with pytest.raises(dnnlib.UserError, match="resolution 8, but 16"):
        ImageFolderDataset(str(tmp_path), resolution=16)


def test_corrupt_image(tmp_path):
    _make_folder(tmp_path, n=1)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(dnnlib.UserError, match="cannot read image broken.png"):
        ImageFolderDataset(str(tmp_path))


@pytest.mark.parametrize("content, match", [
    ('{"labels": [["00000/img00000000.png", 0]]}', "no label for 1"),
    ('{"labels": [["00000/img00000000.png", 0], ["00000/img00000001.png", "cat"]]}', "all integers"),
    ('{"labels": [["00000/img00000000.png", -1], ["00000/img00000001.png", 0]]}', ">= 0"),
    ('{"classes": []}', "expected an object"),
    ("{oops", "not valid JSON"),
])
def test_bad_labels(tmp_path, content, match):
    _make_folder(tmp_path, n=2)
    (tmp_path / "dataset.json").write_text(content)
    with pytest.raises(dnnlib.UserError, match=match):
        ImageFolderDataset(str(tmp_path), use_labels=True)
    assert len(ImageFolderDataset(str(tmp_path), use_labels=False)) == 2  # labels are not read

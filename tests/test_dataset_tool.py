"""dataset_tool.py: video, folder and zip sources; transforms; labels; refusals; atomic output."""

import json
import os
import stat
import subprocess
import sys
import zipfile

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import dataset_tool
import dnnlib
from training.dataset import ImageFolderDataset
from utils.video_io import read_video

#----------------------------------------------------------------------------
# Helpers.

def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array).save(path)


def _make_images(root, n=4, size=(8, 8), channels=3, seed=0):
    rng = np.random.RandomState(seed)
    arrays = []
    for i in range(n):
        array = rng.randint(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
        _save(root / f"sub{i % 2}" / f"frame{i:03d}.png", array)
        arrays.append(array)
    return arrays


def _archive_images(path):
    ds = ImageFolderDataset(str(path), use_labels=True)
    return ds, [ds[i][0] for i in range(len(ds))]


def _leftovers(folder):
    return [p for p in os.listdir(folder) if p.startswith(".")]


def _assert_frames_in_order(images, video, size):
    """Image k is frame k of `video` (read with `utils.video_io.read_video`) as dataset_tool makes it: a
    square video's centre crop is the whole frame, then a Lanczos resize to `size`. The same decoder and
    resize give the same pixels (1 level of slack); other frames lie well apart (measured at 32x32: a mean
    absolute difference of 1.3 or more between any two frames of the signer video), so each image
    is also the closest to its own frame."""
    frames = list(read_video(video, stop=len(images)))
    assert len(frames) == len(images) and frames[0].shape[0] == frames[0].shape[1]
    expected = np.stack([np.asarray(PIL.Image.fromarray(f).resize(size, PIL.Image.LANCZOS)) for f in frames])
    got = np.stack(images).transpose(0, 2, 3, 1).astype(np.int16)
    assert np.abs(got - expected).max() <= 1
    dist = np.abs(got[:, None] - expected[None]).mean(axis=(2, 3, 4))  # [image, frame]
    np.testing.assert_array_equal(dist.argmin(axis=1), np.arange(len(images)))

#----------------------------------------------------------------------------
# Sources.

def test_video_acceptance_cli(repo_dir, shared_dir, tmp_path):
    """The issue's acceptance command: 91 frames of the signer video at 32x32."""
    video = shared_dir / "data" / "signer-pix2pix-256.mp4"
    dest = tmp_path / "ds.zip"
    res = subprocess.run([sys.executable, "dataset_tool.py", f"--source={video}", f"--dest={dest}",
                          "--resolution=32x32", "--transform=center-crop"],
                         cwd=repo_dir, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    with zipfile.ZipFile(dest) as z:
        names = z.namelist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        assert json.loads(z.read("dataset.json")) == {"labels": None}
    pngs = sorted(n for n in names if n.endswith(".png"))
    assert len(pngs) == 91 and pngs[0] == "00000/img00000000.png" and pngs[-1] == "00000/img00000090.png"
    ds, images = _archive_images(dest)
    assert len(ds) == 91 and ds.image_shape == [3, 32, 32]
    assert np.std(images[0]) > 10  # real frame content, not a blank image
    _assert_frames_in_order(images, video, (32, 32))
    assert _leftovers(tmp_path) == []


def test_video_max_images_to_folder(shared_dir, tmp_path):
    video = str(shared_dir / "data" / "signer-pix2pix-256.mp4")
    n = dataset_tool.convert_dataset(video, str(tmp_path / "out"), max_images=5, resolution=(16, 16), progress=False)
    assert n == 5
    assert sorted(os.listdir(tmp_path / "out" / "00000")) == [f"img{i:08d}.png" for i in range(5)]
    ds, images = _archive_images(tmp_path / "out")
    assert len(ds) == 5 and ds.resolution == 16
    _assert_frames_in_order(images, video, (16, 16))  # the first 5 frames, in order
    # The archive folder has the mode of a folder made with mkdir (its x bits let other users in).
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == 0o777 & ~umask
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "00000").st_mode) == 0o777 & ~umask


def test_folder_source_is_lossless_and_keeps_labels(tmp_path):
    arrays = _make_images(tmp_path / "src", n=5)
    names = sorted(f"sub{i % 2}/frame{i:03d}.png" for i in range(5))
    labels = {name: k % 3 for k, name in enumerate(names)}
    (tmp_path / "src" / "dataset.json").write_text(json.dumps({"labels": [[n, l] for n, l in labels.items()]}))
    (tmp_path / "src" / "notes.txt").write_text("not an image")

    n = dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "ds.zip"), progress=False)
    assert n == 5
    ds, images = _archive_images(tmp_path / "ds.zip")
    # Sorted by relative path: sub0/frame000, sub0/frame002, sub0/frame004, sub1/frame001, sub1/frame003.
    order = [0, 2, 4, 1, 3]
    for k, i in enumerate(order):
        np.testing.assert_array_equal(images[k], arrays[i].transpose(2, 0, 1))
        assert ds.get_details(k).raw_label == labels[f"sub{i % 2}/frame{i:03d}.png"]
    assert ds.has_onehot_labels and ds.label_dim == 3


def test_zip_source_to_folder_round_trip(tmp_path):
    arrays = _make_images(tmp_path / "src", n=3, channels=1)
    first = tmp_path / "a.zip"
    dataset_tool.convert_dataset(str(tmp_path / "src"), str(first), progress=False)
    dataset_tool.convert_dataset(str(first), str(tmp_path / "b"), progress=False)
    ds, images = _archive_images(tmp_path / "b")
    assert ds.image_shape == [1, 8, 8]  # grayscale stays one channel
    np.testing.assert_array_equal(images[0][0], arrays[0][:, :, 0])
    assert json.loads((tmp_path / "b" / "dataset.json").read_text()) == {"labels": None}


def test_hidden_files_are_not_images(tmp_path):
    # A zip made on a Mac holds __MACOSX/._name twins (resource forks, not images); folders hold .name files.
    _make_images(tmp_path / "src", n=2)
    src = tmp_path / "mac.zip"
    with zipfile.ZipFile(src, "w") as z:
        for name in ("sub0/frame000.png", "sub1/frame001.png"):
            z.write(tmp_path / "src" / name, f"frames/{name}")
            z.writestr(f"__MACOSX/frames/{os.path.dirname(name)}/._{os.path.basename(name)}", b"\x00\x05\x16\x07")
        z.writestr("frames/.hidden.png", b"not an image")
    assert dataset_tool.convert_dataset(str(src), str(tmp_path / "a.zip"), progress=False) == 2
    (tmp_path / "src" / "sub0" / "._frame000.png").write_bytes(b"resource fork")
    assert dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "b.zip"), progress=False) == 2
    assert len(ImageFolderDataset(str(src))) == 2  # training reads such a zip the same way
    assert [dnnlib.util.is_hidden(n) for n in ("a/b.png", ".a.png", "x/._a.png", "__MACOSX/a.png", "./a.png")] == \
        [False, True, True, True, False]


def test_vector_labels_carried_from_zip(tmp_path):
    _make_images(tmp_path / "src", n=2)
    entries = [["sub0/frame000.png", [1.0, 2.0]], ["sub1/frame001.png", [3.0, 4.0]]]
    (tmp_path / "src" / "dataset.json").write_text(json.dumps({"labels": entries}))
    with zipfile.ZipFile(tmp_path / "src.zip", "w", compression=zipfile.ZIP_DEFLATED) as z:
        for p in (tmp_path / "src").rglob("*"):
            if p.is_file():
                z.write(p, p.relative_to(tmp_path / "src").as_posix())
    dataset_tool.convert_dataset(str(tmp_path / "src.zip"), str(tmp_path / "ds.zip"), progress=False)
    with zipfile.ZipFile(tmp_path / "ds.zip") as z:
        assert json.loads(z.read("dataset.json")) == {"labels": [["00000/img00000000.png", [1.0, 2.0]],
                                                                 ["00000/img00000001.png", [3.0, 4.0]]]}

#----------------------------------------------------------------------------
# Transforms.

def test_mixed_sizes_need_a_resolution(tmp_path):
    _make_images(tmp_path / "src", n=2, size=(8, 8))
    _save(tmp_path / "src" / "zz.png", np.zeros((24, 40, 3), np.uint8))
    with pytest.raises(dnnlib.UserError, match="Images differ"):
        dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "ds.zip"), progress=False)
    assert not (tmp_path / "ds.zip").exists() and _leftovers(tmp_path) == []
    dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "ds.zip"), transform="center-crop",
                                 resolution=(16, 16), progress=False)
    ds, _ = _archive_images(tmp_path / "ds.zip")
    assert len(ds) == 3 and ds.image_shape == [3, 16, 16]


def test_center_crop_takes_the_middle_square(tmp_path):
    img = np.zeros((16, 32, 3), np.uint8)
    img[:, 8:24] = 200  # the centered 16x16 square is bright, the sides black
    _save(tmp_path / "src" / "a.png", img)
    dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "ds"), transform="center-crop", progress=False)
    _, images = _archive_images(tmp_path / "ds")
    assert images[0].shape == (3, 16, 16) and np.all(images[0] == 200)


def test_center_crop_wide_letterboxes(tmp_path):
    _save(tmp_path / "src" / "a.png", np.full((90, 160, 3), 255, np.uint8))
    dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "ds"), transform="center-crop-wide",
                                 resolution=(32, 16), progress=False)
    _, images = _archive_images(tmp_path / "ds")
    image = images[0]
    assert image.shape == (3, 32, 32)
    assert np.all(image[:, :8] == 0) and np.all(image[:, 24:] == 0)  # black bars above and below
    assert np.all(image[:, 9:23] > 250)


@pytest.mark.parametrize("resolution, transform, match", [
    (None, None, "12x12"),                   # source side is not a power of two
    ((32, 16), None, "32x16"),               # non-square output
    ((48, 48), "center-crop", "48x48"),
    ((4, 4), "center-crop", "power-of-two side of at least 8"),  # the networks train on 8x8 or more
    ((4, 2), "center-crop-wide", "4x4"),
])
def test_refuses_bad_output_size(tmp_path, resolution, transform, match):
    _save(tmp_path / "src" / "a.png", np.zeros((12, 12, 3), np.uint8))
    with pytest.raises(dnnlib.UserError, match=match):
        dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "ds.zip"), transform=transform,
                                     resolution=resolution, progress=False)
    assert not (tmp_path / "ds.zip").exists()


def test_refuses_small_images_from_the_source(tmp_path):
    _save(tmp_path / "src" / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(dnnlib.UserError, match="Output images would be 4x4; .* at least 8"):
        dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "ds.zip"), progress=False)
    assert not (tmp_path / "ds.zip").exists()


def test_center_crop_wide_needs_resolution(tmp_path):
    _make_images(tmp_path / "src", n=1)
    with pytest.raises(dnnlib.UserError, match="needs --resolution"):
        dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "ds.zip"), transform="center-crop-wide")

#----------------------------------------------------------------------------
# Destinations and errors.

def test_refuses_non_empty_dest_folder(tmp_path):
    _make_images(tmp_path / "src", n=1)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("mine")
    with pytest.raises(dnnlib.UserError, match="not empty"):
        dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "ds"), progress=False)
    assert os.listdir(tmp_path / "ds") == ["keep.txt"]
    # An existing empty folder is fine.
    (tmp_path / "empty").mkdir()
    assert dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "empty"), progress=False) == 1


def test_failure_leaves_no_folder_archive(tmp_path):
    _make_images(tmp_path / "src", n=3)
    _save(tmp_path / "src" / "zz.png", np.zeros((8, 8, 1), np.uint8))  # channel count differs, comes last
    with pytest.raises(dnnlib.UserError, match="channel.*some are grayscale, some colour"):
        dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "ds"), progress=False)
    assert not (tmp_path / "ds").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("dest", ["src/out.zip", "src/sub0/out", "src", "src/../src/again.zip"])
def test_refuses_dest_inside_the_source_folder(tmp_path, dest):
    # A second run would read the first one's output as source images.
    _make_images(tmp_path / "src", n=2)
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "src").rglob("*"))
    res = CliRunner().invoke(dataset_tool.main, [f"--source={tmp_path / 'src'}", f"--dest={tmp_path / dest}"])
    assert res.exit_code == 1, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("Error: ") and "source folder" in res.output, \
        res.output
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "src").rglob("*")) == before
    # Next to the source is fine, and so is a source zip next to its dataset.
    assert dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "srcds.zip"), progress=False) == 2
    assert dataset_tool.convert_dataset(str(tmp_path / "srcds.zip"), str(tmp_path / "again.zip"), progress=False) == 2
    # A zip converted onto itself would lose the source.
    before = (tmp_path / "again.zip").read_bytes()
    with pytest.raises(dnnlib.UserError, match="is the source"):
        dataset_tool.convert_dataset(str(tmp_path / "again.zip"), str(tmp_path / "again.zip"), progress=False)
    assert (tmp_path / "again.zip").read_bytes() == before


@pytest.mark.parametrize("name", ["out.tar", "out.tar.gz", "out.tgz", "out.7z", "OUT.RAR", "out.tar/"])
def test_refuses_other_archive_kinds(tmp_path, name):
    _make_images(tmp_path / "src", n=1)
    dest = str(tmp_path / name)
    res = CliRunner().invoke(dataset_tool.main, [f"--source={tmp_path / 'src'}", f"--dest={dest}"])
    assert res.exit_code == 1, res.output
    assert res.output.count("\n") == 1 and "the destination is a .zip or a folder" in res.output, res.output
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_zip_dest_is_replaced_atomically(tmp_path):
    _make_images(tmp_path / "src", n=2)
    dest = tmp_path / "ds.zip"
    dest.write_bytes(b"old")
    assert dataset_tool.convert_dataset(str(tmp_path / "src"), str(dest), progress=False) == 2
    assert zipfile.is_zipfile(dest) and _leftovers(tmp_path) == []


def test_missing_label_is_an_error(tmp_path):
    _make_images(tmp_path / "src", n=2)
    (tmp_path / "src" / "dataset.json").write_text(json.dumps({"labels": [["sub0/frame000.png", 1]]}))
    with pytest.raises(dnnlib.UserError, match="no label for sub1/frame001.png"):
        dataset_tool.convert_dataset(str(tmp_path / "src"), str(tmp_path / "ds.zip"), progress=False)


@pytest.mark.parametrize("setup, match", [
    ("missing", "Source not found"),
    ("empty", "No images found"),
    ("text", "Unsupported source"),
    ("badimage", "Cannot read image"),
    ("badvideo", "Cannot read video"),
])
def test_cli_errors_are_one_line(tmp_path, setup, match):
    source = tmp_path / "src"
    if setup == "empty":
        source.mkdir()
    elif setup == "text":
        source = tmp_path / "a.txt"
        source.write_text("hello")
    elif setup == "badimage":
        source.mkdir()
        (source / "a.png").write_bytes(b"\x89PNG broken")
    elif setup == "badvideo":
        source = tmp_path / "broken.mp4"
        source.write_bytes(b"not a video at all")
    res = CliRunner().invoke(dataset_tool.main, [f"--source={source}", f"--dest={tmp_path / 'ds.zip'}"])
    assert res.exit_code == 1, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("Error: ") and match in res.output, res.output
    assert not (tmp_path / "ds.zip").exists()


def test_cli_bad_resolution_option(tmp_path):
    res = CliRunner().invoke(dataset_tool.main, ["--source=x", "--dest=y.zip", "--resolution=256"])
    assert res.exit_code == 2 and "WxH" in res.output


@pytest.mark.skipif(sys.platform == "win32", reason="sets a file-size limit with resource.setrlimit (POSIX)")
def test_file_too_large_is_one_line(repo_dir, data_dir, tmp_path):
    # A destination that cannot hold a file this big (FAT32's 4 GiB, or here `ulimit -f`) is the user's to
    # mend: one line with what to do, no traceback, no partial archive.
    import resource
    import signal

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as Python does: past the limit, writes fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    dest = tmp_path / "ds.zip"
    res = subprocess.run([sys.executable, "dataset_tool.py", f"--source={data_dir / 'signer-pix2pix-256.mp4'}",
                          f"--dest={dest}"], cwd=repo_dir, capture_output=True, text=True, timeout=120,
                         preexec_fn=limit)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("Error: File too large; the file system or a file-size"), \
        res.stderr
    assert _leftovers(tmp_path) == []

"""utils/video_io.py: reading, streaming atomic H.264 writing, uint8 conversion."""

import errno
import os
import pathlib
import sys

import click
import imageio_ffmpeg
import numpy as np
import pytest
import torch

import dnnlib
from utils import video_io


def _frames(n, h=64, w=48):
    """Smooth test frames whose content identifies the frame index (mean brightness)."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        r = (xx * 255 // max(w - 1, 1))
        g = (yy * 255 // max(h - 1, 1))
        b = np.full_like(xx, 20 + 20 * i)
        out.append(np.stack([r, g, b], -1).astype(np.uint8))
    return np.stack(out)


def test_round_trip(tmp_path):
    path = tmp_path / "sub" / "v.mp4"
    frames = _frames(7)
    with video_io.VideoWriter(path, fps=25) as w:
        w.write(frames[0])
        w.write(frames[1:])  # a batch
        assert not path.exists()  # still under its temporary name
        assert len(list(path.parent.iterdir())) == 1
    assert path.is_file()
    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    gen.close()
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert [p.name for p in path.parent.iterdir()] == ["v.mp4"]  # no temporary left
    info = video_io.video_info(path)
    assert info == video_io.VideoInfo(fps=25.0, num_frames=7, width=48, height=64)
    got = np.stack(list(video_io.read_video(path)))
    assert got.shape == (7, 64, 48, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(float) - frames).mean() < 3.0  # crf 18 is close to lossless
    # The blue channel identifies the frame: order is preserved.
    assert np.all(np.diff(got[..., 2].mean(axis=(1, 2))) > 10)


def test_read_range_and_fractional_fps(tmp_path):
    path = tmp_path / "v.mp4"
    with video_io.VideoWriter(path, fps=29.97, crf=10) as w:
        w.write(_frames(6, 32, 32))
    info = video_io.video_info(path)
    assert info.num_frames == 6 and abs(info.fps - 29.97) < 1e-6
    part = list(video_io.read_video(path, start=2, stop=4))
    assert len(part) == 2
    full = list(video_io.read_video(path))
    np.testing.assert_array_equal(part[0], full[2])
    np.testing.assert_array_equal(part[1], full[3])


def test_odd_size_is_padded(tmp_path):
    path = tmp_path / "odd.mp4"
    with video_io.VideoWriter(path, fps=10) as w:
        w.write(_frames(3, 33, 17))
    info = video_io.video_info(path)
    assert (info.width, info.height, info.num_frames) == (18, 34, 3)


def test_exception_leaves_no_output(tmp_path):
    path = tmp_path / "v.mp4"
    with pytest.raises(KeyError):
        with video_io.VideoWriter(path, fps=25) as w:
            w.write(_frames(2))
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_survives_failed_rewrite(tmp_path):
    path = tmp_path / "v.mp4"
    path.write_bytes(b"old")
    with pytest.raises(ValueError):
        with video_io.VideoWriter(path, fps=25) as w:
            w.write(_frames(1, 32, 32))
            w.write(_frames(1, 16, 16))  # size change
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_full_disk_while_encoding_is_a_disk_error(tmp_path, monkeypatch):
    # ffmpeg on a full disk reports the OS message and exits; the writer raises the OSError the
    # CLIs turn into one line (dnnlib.util.cli_main), and leaves no file. A stand-in ffmpeg that
    # reads its input, then fails as ffmpeg does, plays the full disk.
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\ncat > /dev/null\n"
                    "echo '[out#0/mp4] Error writing trailer: No space left on device' >&2\nexit 228\n")
    fake.chmod(0o755)
    monkeypatch.setattr(video_io, "_ffmpeg_exe", lambda: str(fake))
    out = tmp_path / "out" / "o.mp4"
    w = video_io.VideoWriter(out, fps=25)
    w.write(np.zeros((3, 16, 16, 3), np.uint8))
    with pytest.raises(OSError) as e:
        w.close()
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(out)
    assert os.listdir(out.parent) == []

    @dnnlib.util.cli_main
    def command():
        with video_io.VideoWriter(out, fps=25) as w:
            w.write(np.zeros((16, 16, 3), np.uint8))

    with pytest.raises(click.ClickException, match=f"No space left on device while writing {out}; free some space"):
        command()


def test_no_frames_is_an_error_and_leaves_nothing(tmp_path):
    path = tmp_path / "v.mp4"
    with pytest.raises(ValueError, match="No frames"):
        with video_io.VideoWriter(path, fps=25):
            pass
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_rejected(tmp_path):
    with video_io.VideoWriter(tmp_path / "v.mp4", fps=25) as w:
        with pytest.raises(TypeError):
            w.write(np.zeros((8, 8, 3), np.float32))
        with pytest.raises(ValueError):
            w.write(np.zeros((8, 8, 4), np.uint8))
        w.write(np.zeros((8, 8), np.uint8))  # grayscale is accepted
    assert video_io.video_info(tmp_path / "v.mp4").num_frames == 1


@pytest.mark.skipif(sys.platform == "win32", reason="Windows folders have no POSIX write permission to take away")
def test_unwritable_output_is_user_error(tmp_path):
    # Root writes into read-only folders; sysfs takes no new files from anyone.
    as_root = os.geteuid() == 0
    ro = pathlib.Path("/sys") if as_root else tmp_path / "ro"
    if not as_root:
        ro.mkdir()
        ro.chmod(0o500)
    try:
        with pytest.raises(dnnlib.UserError, match="Cannot write video"):
            video_io.VideoWriter(ro / "v.mp4", fps=25)
        assert not (ro / "v.mp4").exists()
    finally:
        if not as_root:
            ro.chmod(0o700)


def test_frame_rate_and_size_limits(tmp_path):
    # A rate that ffmpeg's exact fraction would round to 0 (or an absurd one), and frames wider than the
    # encoder takes, are user errors before ffmpeg runs; nothing is left behind.
    for fps in (1e-6, 0, -25, 1e5, float("nan")):
        with pytest.raises(dnnlib.UserError, match="frame rate from 0.001 to 1000"):
            video_io.VideoWriter(tmp_path / "v.mp4", fps=fps)
    with pytest.raises(dnnlib.UserError, match="at most 16384 pixels a side"):
        with video_io.VideoWriter(tmp_path / "v.mp4", fps=25) as w:
            w.write(np.zeros((2, video_io.MAX_SIDE + 2, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
    with video_io.VideoWriter(tmp_path / "v.mp4", fps=0.001) as w:
        w.write(np.zeros((2, 2, 3), np.uint8))
    assert video_io.video_info(tmp_path / "v.mp4").num_frames == 1


def test_output_path_checks(tmp_path):
    with pytest.raises(dnnlib.UserError, match="directory"):
        video_io.VideoWriter(tmp_path, fps=25)
    with pytest.raises(dnnlib.UserError, match="extensions"):
        video_io.VideoWriter(tmp_path / "v.txt", fps=25)
    with pytest.raises(dnnlib.UserError, match="frame rate"):
        video_io.VideoWriter(tmp_path / "v.mp4", fps=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(dnnlib.UserError, match="Cannot write video"):
        video_io.VideoWriter(tmp_path / "file" / "v.mp4", fps=25)  # parent is a file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_missing_and_corrupt_input(tmp_path):
    with pytest.raises(dnnlib.UserError, match="not found.*nope.mp4"):
        video_io.video_info(tmp_path / "nope.mp4")
    with pytest.raises(dnnlib.UserError, match="not found"):
        video_io.read_video(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(dnnlib.UserError, match="bad.mp4"):
        video_io.video_info(bad)
    with pytest.raises(dnnlib.UserError, match="bad.mp4"):
        video_io.read_video(bad)


def test_shared_video(data_dir):
    path = data_dir / "signer-pix2pix-256.mp4"
    info = video_io.video_info(path)
    assert info == video_io.VideoInfo(fps=25.0, num_frames=91, width=256, height=256)
    first = next(iter(video_io.read_video(path, start=90)))
    assert first.shape == (256, 256, 3)
    assert len(list(video_io.read_video(path, start=88))) == 3


def test_to_uint8():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0, -3.0]).reshape(1, 1, 1, 5).repeat(2, 3, 1, 1)
    y = video_io.to_uint8(x)
    assert y.shape == (2, 1, 5, 3) and y.dtype == np.uint8
    np.testing.assert_array_equal(y[0, 0, :, 0], [0, 128, 255, 255, 0])
    chw = video_io.to_uint8(x[0].numpy())
    assert chw.shape == (1, 5, 3)
    np.testing.assert_array_equal(chw, y[0])


def test_save_png_and_list_videos(tmp_path):
    import PIL.Image
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    video_io.save_png(rgb, tmp_path / "rgb.png")
    video_io.save_png(rgb[:, :, :1], tmp_path / "grey.png")
    with PIL.Image.open(tmp_path / "rgb.png") as a, PIL.Image.open(tmp_path / "grey.png") as b:
        assert a.mode == "RGB" and np.array_equal(np.asarray(a), rgb)
        assert b.mode == "L" and np.array_equal(np.asarray(b), rgb[:, :, 0])
    with pytest.raises(ValueError, match="uint8"):
        video_io.save_png(rgb.astype(np.float32), tmp_path / "f.png")
    assert sorted(os.listdir(tmp_path)) == ["grey.png", "rgb.png"]
    # Videos of a folder, by name; two of one name are refused.
    # Hidden files are not videos: a killed run's temporary file, macOS's resource forks.
    for name in ("b.MOV", "a.mp4", "notes.txt", ".c.x1y2.tmp.mp4", "._a.mp4"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "d.mp4").mkdir()
    assert video_io.list_videos(tmp_path) == {"a": str(tmp_path / "a.mp4"), "b": str(tmp_path / "b.MOV")}
    (tmp_path / "a.mkv").write_bytes(b"")
    with pytest.raises(dnnlib.UserError, match="share a name"):
        video_io.list_videos(tmp_path)
    with pytest.raises(dnnlib.UserError, match="not found"):
        video_io.list_videos(tmp_path / "none")

"""The project's one video reader and writer, on the ffmpeg binary shipped with imageio-ffmpeg.

- `video_info(path)`: frame rate, exact frame count and frame size of a video file.
- `read_video(path, start, stop)`: iterate over HxWx3 uint8 RGB frames, streaming from ffmpeg.
- `VideoWriter(path, fps)`: stream HxWx3 uint8 RGB frames into an H.264 (yuv420p) mp4. The file is
  written under a temporary name next to `path` and renamed on a successful close, so it appears
  complete or not at all.
- `to_uint8(img)`: NCHW float images in [-1, 1] (generator output) to NHWC uint8 arrays.
- `save_png(image, path)`: one `[H, W, 1 or 3]` (or `[H, W]`) uint8 image as a PNG, atomically.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import os
import subprocess
import tempfile
from fractions import Fraction
from typing import Any, Iterator

import numpy as np

import dnnlib
from dnnlib.util import NO_ROOM_ERRNOS, atomic_path, atomic_write

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------
# Reading.

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv"}  # ffmpeg reads


def list_videos(folder: str | os.PathLike) -> dict[str, str]:
    """The videos of `folder` (files with a `VIDEO_EXTENSIONS` suffix, not hidden: see
    `dnnlib.util.list_files`) by name without extension, sorted.
    Raises `dnnlib.UserError` when the folder is missing or holds no video, or two videos share a name
    (a.mp4 and a.mkv: what is made from them, named after them, would collide)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise dnnlib.UserError(f"Video folder not found: {folder}")
    videos = dnnlib.util.files_by_name(folder, VIDEO_EXTENSIONS, "Videos")
    if not videos:
        raise dnnlib.UserError(f"No videos in {folder} ({', '.join(sorted(VIDEO_EXTENSIONS))})")
    return videos


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a video holds: frames per second, number of frames, frame width and height (pixels)."""
    fps: float
    num_frames: int
    width: int
    height: int


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def _check_input(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise dnnlib.UserError(f"Video not found: {path}")
    if not os.path.isfile(path):
        raise dnnlib.UserError(f"Not a video file: {path} (it is a directory or special file)")
    if not os.access(path, os.R_OK):
        raise dnnlib.UserError(f"Video not readable: {path} (check its permissions)")
    return path


def _open_reader(path: str) -> tuple[Any, dict]:
    """Start ffmpeg decoding `path` to raw RGB; return the frame generator and its metadata."""
    import imageio_ffmpeg
    gen = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    try:
        meta = next(gen)
        width, height = meta["size"]
    except Exception as e:  # ffmpeg could not open the file or found no video stream in it
        gen.close()
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise dnnlib.UserError(f"Cannot read video {path}: not a readable video file ({first_line})") from None
    return gen, meta


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, exact number of frames (counted by decoding) and frame size of a video.

    Raises `dnnlib.UserError` naming the path when it is missing or not a readable video."""
    import imageio_ffmpeg
    path = _check_input(path)
    gen, meta = _open_reader(path)
    gen.close()
    try:
        num_frames, _secs = imageio_ffmpeg.count_frames_and_secs(path)
    except RuntimeError as e:
        raise dnnlib.UserError(f"Cannot count the frames of video {path}: {str(e).splitlines()[0]}") from None
    width, height = meta["size"]
    return VideoInfo(fps=float(meta.get("fps") or 0.0), num_frames=int(num_frames), width=int(width),
                     height=int(height))


def read_video(path: str | os.PathLike, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames `start <= i < stop` of a video as `[H, W, 3]` uint8 RGB arrays (0..255).

    Frames are decoded one at a time (memory does not grow with the length of the video).
    The file is checked when this function is called, before the first frame is asked for;
    `dnnlib.UserError` names the path when it is missing or not a readable video."""
    if start < 0 or (stop is not None and stop < start):
        raise ValueError(f"read_video: bad frame range start={start}, stop={stop}")
    path = _check_input(path)
    gen, meta = _open_reader(path)
    return _iter_frames(gen, meta, start, stop)


def _iter_frames(gen: Any, meta: dict, start: int, stop: int | None) -> Iterator[np.ndarray]:
    width, height = meta["size"]
    try:
        for i, buf in enumerate(gen):
            if stop is not None and i >= stop:
                break
            if i < start:
                continue
            yield np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3).copy()
    finally:
        gen.close()  # stops ffmpeg when the caller leaves early

#----------------------------------------------------------------------------
# Writing.

_CONTAINERS = (".mp4", ".m4v", ".mov", ".mkv")
FPS_RANGE = (0.001, 1000.0)  # frame rates a video is written at (ffmpeg takes them as exact fractions)
MAX_SIDE = 16384             # libx264's largest frame width or height


def check_fps(fps: float, what: str = "--fps") -> None:
    """Raise `dnnlib.UserError` unless `fps` is a frame rate a video can be written at (`FPS_RANGE`)."""
    lo, hi = FPS_RANGE
    if not (isinstance(fps, numbers.Real) and not isinstance(fps, bool) and lo <= fps <= hi):
        raise dnnlib.UserError(f"{what} must be a frame rate from {lo:g} to {hi:g} frames per second, got {fps!r}")


def check_frame_size(width: int, height: int, path: str | os.PathLike = "the video") -> None:
    """Raise `dnnlib.UserError` when frames of `width` x `height` pixels are too large to encode."""
    if max(width, height) > MAX_SIDE:
        raise dnnlib.UserError(f"Frames of {width}x{height} pixels are too large for {os.fspath(path)}: the video "
                               f"encoder takes at most {MAX_SIDE} pixels a side; use a smaller grid or resolution")


class VideoWriter:
    """Stream RGB frames into an H.264 video (yuv420p, constant rate factor `crf`).

    Usage::

        with VideoWriter("out.mp4", fps=25) as w:
            for frame in frames:      # [H, W, 3] or [N, H, W, 3] uint8
                w.write(frame)

    Frames go straight to an ffmpeg process (memory does not grow with the length). The video
    is written to a temporary file next to `path` and renamed to `path` on a successful
    `close()`; when the block raises (or `abort()` is called) the temporary file is removed and
    no output appears. yuv420p needs even frame sizes: an odd width or height is padded by
    repeating the last column/row (logged), so a 255x255 input reads back as 256x256.

    Args:
        path:     output file (.mp4, .m4v, .mov or .mkv); its folder is created if needed.
        fps:      frames per second (float; passed to ffmpeg as an exact fraction).
        crf:      x264 constant rate factor, 0 (lossless) .. 51 (worst); 18 is visually lossless.
        preset:   x264 speed/size trade-off ('ultrafast' .. 'veryslow').
        codec:    ffmpeg video encoder.
        pix_fmt:  output pixel format; yuv420p plays everywhere.
        ffmpeg_log_level: ffmpeg's own log level (its messages go to the error report on failure).
    """

    def __init__(self, path: str | os.PathLike, fps: float, crf: int = 18, preset: str = "medium",
                 codec: str = "libx264", pix_fmt: str = "yuv420p", ffmpeg_log_level: str = "error"):
        self.path = os.fspath(path)
        check_fps(fps, f"The frame rate of {self.path}")
        if not 0 <= int(crf) <= 51:
            raise dnnlib.UserError(f"Bad crf {crf} for {self.path}; give 0 (lossless) .. 51 (worst)")
        if os.path.isdir(self.path):
            raise dnnlib.UserError(f"Cannot write video {self.path}: it is a directory")
        if os.path.splitext(self.path)[1].lower() not in _CONTAINERS:
            raise dnnlib.UserError(f"Cannot write video {self.path}: use one of the extensions {', '.join(_CONTAINERS)}")
        self.fps = Fraction(fps).limit_denominator(100000)
        self.crf = int(crf)
        self.preset = preset
        self.codec = codec
        self.pix_fmt = pix_fmt
        self.ffmpeg_log_level = ffmpeg_log_level
        self.num_frames = 0
        self.size: tuple[int, int] | None = None      # (width, height) of the incoming frames
        self._pad: tuple[int, int] = (0, 0)          # rows, columns added to make the size even
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._closed = False

        # Claim the temporary file now: an unwritable destination fails here, before any work.
        self._atomic = atomic_path(self.path, what="video")
        self._tmp_path = self._atomic.__enter__()

    # -- context manager

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):
        # Never leave a temporary file behind, even when the writer was not closed.
        if not getattr(self, "_closed", True):
            try:
                self.abort()
            except Exception:
                pass

    # -- frames

    def write(self, frame: np.ndarray) -> None:
        """Append one `[H, W, 3]` frame or a batch `[N, H, W, 3]` (uint8 RGB, 0..255).

        Grayscale `[H, W]` / `[H, W, 1]` frames are repeated to RGB. Every frame must have the
        size of the first."""
        if self._closed:
            raise RuntimeError(f"VideoWriter for {self.path} is already closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise TypeError(f"VideoWriter.write expects uint8 frames (0..255), got {frame.dtype}; "
                            f"convert generator output with to_uint8()")
        if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[-1] == 1):
            frame = frame.reshape(frame.shape[0], frame.shape[1], 1).repeat(3, axis=2)
        if frame.ndim == 4:
            for f in frame:
                self.write(f)
            return
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"VideoWriter.write expects [H, W, 3] or [N, H, W, 3] frames, got shape {frame.shape}")
        h, w = frame.shape[:2]
        if self.size is None:
            self._start(w, h)
        elif (w, h) != self.size:
            raise ValueError(f"Frame size {w}x{h} differs from the first frame's {self.size[0]}x{self.size[1]} "
                             f"in {self.path}")
        if self._pad != (0, 0):
            frame = np.pad(frame, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except (BrokenPipeError, OSError):
            self._fail("ffmpeg stopped accepting frames")
        self.num_frames += 1

    def _start(self, w: int, h: int) -> None:
        check_frame_size(w, h, self.path)
        self.size = (w, h)
        self._pad = (h % 2, w % 2)
        if self._pad != (0, 0):
            log.info("Padding %dx%d frames to %dx%d for %s (yuv420p needs even sizes)", w, h,
                     w + self._pad[1], h + self._pad[0], self.path)
        ext = os.path.splitext(self.path)[1].lower()
        cmd = [_ffmpeg_exe(), "-y", "-nostdin", "-hide_banner", "-loglevel", self.ffmpeg_log_level,
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w + self._pad[1]}x{h + self._pad[0]}",
               "-framerate", str(self.fps), "-i", "pipe:0", "-an",
               "-c:v", self.codec, "-pix_fmt", self.pix_fmt]
        if self.codec.startswith("libx264"):
            cmd += ["-crf", str(self.crf), "-preset", self.preset]
        if ext in (".mp4", ".m4v", ".mov"):
            cmd += ["-movflags", "+faststart"]
        cmd += ["-r", str(self.fps), self._tmp_path]
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)

    def _ffmpeg_message(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return text[-2000:]

    def _fail(self, what: str) -> None:
        msg = self._ffmpeg_message()
        self.abort()
        for code in NO_ROOM_ERRNOS:  # a full disk is the user's to mend: OSError, which the CLIs report in one line
            if os.strerror(code) in msg:
                raise OSError(code, os.strerror(code), self.path)
        raise RuntimeError(f"Writing video {self.path} failed: {what}" + (f"\nffmpeg said:\n{msg}" if msg else ""))

    # -- finishing

    def close(self) -> None:
        """Finish encoding and move the video to `path`. Raises when no frame was written
        (an empty video is not a valid file; nothing is left behind)."""
        if self._closed:
            return
        if self._proc is None:
            self.abort()
            raise ValueError(f"No frames were written to {self.path}; no video was created")
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        code = self._proc.wait()
        if code != 0:
            self._fail(f"ffmpeg exited with status {code}")
        self._closed = True
        self._atomic.__exit__(None, None, None)  # rename the temporary file to path
        self._stderr.close()
        log.debug("Wrote %d frames to %s", self.num_frames, self.path)

    def abort(self) -> None:
        """Stop ffmpeg and remove the temporary file; `path` is left untouched."""
        if self._closed:
            return
        self._closed = True
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            self._proc.wait()
        if self._stderr is not None:
            self._stderr.close()
        err = _Aborted()
        self._atomic.__exit__(_Aborted, err, None)  # removes the temporary file


class _Aborted(Exception):
    pass

#----------------------------------------------------------------------------
# Conversion of generator output.

def to_uint8(img: Any) -> np.ndarray:
    """Images in the generator's range to displayable uint8 arrays.

    `img`: torch tensor or numpy array, `[N, C, H, W]` (or `[C, H, W]`), float, dynamic range
    about [-1, 1]. Returns `[N, H, W, C]` (or `[H, W, C]`) uint8, 0..255, on the CPU, mapping
    -1 -> 0 and +1 -> 255 (x * 127.5 + 128, rounded down, clipped)."""
    if isinstance(img, np.ndarray):
        x = img.astype(np.float32) * 127.5 + 128
        x = np.clip(x, 0, 255).astype(np.uint8)
    else:
        import torch
        if not isinstance(img, torch.Tensor):
            raise TypeError(f"to_uint8 expects a torch tensor or numpy array, got {type(img).__name__}")
        x = (img.detach().to(torch.float32) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    if x.ndim == 3:
        return np.ascontiguousarray(x.transpose(1, 2, 0))
    raise ValueError(f"to_uint8 expects [N, C, H, W] or [C, H, W] images, got shape {tuple(x.shape)}")

#----------------------------------------------------------------------------
# Still images.

def save_png(image: np.ndarray, path: str | os.PathLike, what: str = "image") -> None:
    """Write a `[H, W]`, `[H, W, 1]` or `[H, W, 3]` uint8 image as a PNG, atomically."""
    import PIL.Image
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"save_png: expected [H, W(, 1 or 3)] uint8, got {image.dtype} {list(image.shape)}")
    with atomic_write(path, "wb", what=what) as f:
        PIL.Image.fromarray(image, "L" if image.ndim == 2 else "RGB").save(f, format="PNG")

#----------------------------------------------------------------------------

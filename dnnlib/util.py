"""Generic helpers: EasyDict, open_url with a download cache, objects by dotted name, a tee
Logger, atomic file writes, the user-error convention for command-line tools and the parsers of
command-line values the scripts share (`parse_range`, `parse_vec2`, `parse_grid`).

Names and behaviour of `EasyDict`, `open_url`, `construct_class_by_name`, `call_func_by_name`,
`get_obj_by_name`, `format_time` and `Logger` follow the interface the published StyleGAN
pickles and scripts expect (they pickle `dnnlib.util.EasyDict` by this import path).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import importlib
import io
import logging
import math
import numbers
import os
import re
import shutil
import sys
import tempfile
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Iterable, Iterator

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------
# Attribute-style dictionary.

class EasyDict(dict):
    """A dict whose keys are also attributes: `d.key` is `d['key']`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

#----------------------------------------------------------------------------
# User errors: a mistake in the user's input, reported as one line by the CLIs.

class UserError(Exception):
    """An error caused by the user's input (bad path, bad option, wrong file format).

    Libraries raise it with a message that says what is wrong and what to do; command-line
    tools turn it into one line on stderr and a non-zero exit (see `cli_main`)."""


def cli_main(fn: Callable) -> Callable:
    """Decorator for click command functions: `UserError` becomes a one-line click error
    (exit status 1) instead of a traceback, and so do a storage that cannot take the output (a full
    disk, a quota, a file too large for the file system) and running out of memory (settings too
    large for the machine), which no code can mend. Other exceptions are real bugs and propagate.
    SIGTERM (`kill`, `timeout`, a batch scheduler's stop) ends the command as Ctrl-C does: the stack
    unwinds, so partial outputs are removed, and the exit status is 143 (128 + SIGTERM)."""
    import click

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with _terminate_as_exit():
                return fn(*args, **kwargs)
        except UserError as e:
            raise click.ClickException(str(e)) from None
        except (MemoryError, RuntimeError) as e:
            if not is_out_of_memory(e):
                raise
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise click.ClickException(f"Out of memory ({first}); use smaller settings (batch, resolution, "
                                       f"sizes) or a machine with more memory") from None
        except OSError as e:
            if e.errno not in NO_ROOM_ERRNOS:
                raise
            where = f" while writing {e.filename}" if e.filename else ""
            raise click.ClickException(f"{e.strerror or os.strerror(e.errno)}{where}; "
                                       f"{NO_ROOM_ERRNOS[e.errno]}") from None
    return wrapper


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) in the main thread for the block (where SIGTERM was left to its
    default, which kills the process without unwinding); the earlier handler comes back after it."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def is_out_of_memory(e: BaseException) -> bool:
    """Whether `e` says that memory ran out: MemoryError (numpy's too), torch's OutOfMemoryError (GPU)
    or its CPU allocator's failure."""
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or (
        isinstance(e, RuntimeError) and "can't allocate memory" in str(e))


_FREE_SPACE = "free some space (or choose another location) and run again"
# Storage that cannot take what is written: the user's to mend, not a bug. errno -> what to do.
NO_ROOM_ERRNOS = {getattr(errno, name): advice for name, advice in (
    ("ENOSPC", _FREE_SPACE), ("EDQUOT", _FREE_SPACE),
    ("EFBIG", "the file system or a file-size limit (ulimit -f) does not allow a file this big (FAT32 holds "
              "at most 4 GiB); choose another location and run again"),
) if hasattr(errno, name)}

#----------------------------------------------------------------------------
# Atomic writes: a file appears complete under its final name, or not at all.

def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _default_file_mode() -> int:
    """Mode a newly created file would get (0666 minus the umask); mkstemp files start as 0600."""
    return 0o666 & ~_umask()


def available_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS tells it, as under taskset or a batch
    scheduler's allocation; else all of the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def list_files(folder: str | os.PathLike, extensions: Iterable[str]) -> list[str]:
    """Paths of the files in `folder` (not its subfolders) whose extension is one of `extensions`
    (compared in lower case: '.pose' takes a.POSE too), sorted by name. Hidden files are left out:
    the temporary files of interrupted atomic writes (`.name.*.tmp.ext`) and macOS's `._name`."""
    exts = {e.lower() for e in extensions}
    folder = os.fspath(folder)
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))
            if not is_hidden(f) and os.path.splitext(f)[1].lower() in exts and os.path.isfile(os.path.join(folder, f))]


def files_by_name(folder: str | os.PathLike, extensions: Iterable[str], what: str = "Files") -> dict[str, str]:
    """`list_files(folder, extensions)` by name without extension. Raises `UserError` when two files
    share a name (a.pose and a.POSE, a.mp4 and a.mkv): what is made from them, named after them,
    would collide."""
    files: dict[str, list[str]] = {}
    for path in list_files(folder, extensions):
        files.setdefault(os.path.splitext(os.path.basename(path))[0], []).append(path)
    twins = [", ".join(os.path.basename(p) for p in paths) for paths in files.values() if len(paths) > 1]
    if twins:
        raise UserError(f"{what} in {os.fspath(folder)} share a name ({'; '.join(twins)}): what is made from them "
                        f"would too; keep one of each")
    return {name: paths[0] for name, paths in files.items()}


def is_hidden(name: str) -> bool:
    """True for a relative path ('a/b.png') with a hidden part ('.x', macOS's '._x') or under macOS's
    '__MACOSX' folder of zip files: never data, often a broken twin of a real file."""
    parts = name.replace("\\", "/").split("/")
    return any(p.startswith(".") and p not in (".", "..") or p == "__MACOSX" for p in parts)


def make_dirs(path: str | os.PathLike, what: str = "folder", exist_ok: bool = True) -> None:
    """os.makedirs(path), with a `UserError` that names `what` when it cannot be made."""
    try:
        os.makedirs(path, exist_ok=exist_ok)
    except OSError as e:
        raise UserError(f"Cannot create {what} {os.fspath(path)}: {_reason(os.fspath(path), e)}; "
                        f"choose a writable location") from None


def _reason(path: str, e: OSError) -> str:
    """Why `path` could not be made, in words (makedirs says 'File exists' for a file on the way)."""
    if isinstance(e, (FileExistsError, NotADirectoryError)):
        head = os.path.abspath(path)
        while head and not os.path.exists(head):
            head = os.path.dirname(head)
        if head and not os.path.isdir(head):
            return f"{head} is a file, not a folder"
    return str(e.strerror or e)


def _cannot_write(what: str, path: str, e: OSError) -> UserError:
    return UserError(f"Cannot write {what + ' ' if what else ''}{path}: {_reason(path, e)}; "
                     f"choose a writable location")


def check_writable(path: str | os.PathLike, what: str = "") -> None:
    """Raise `UserError` now, before long work, if `path` cannot be written atomically later
    (its folder cannot be made or written, or `path` is a folder). Leaves nothing behind: the
    folders it had to make for the test are removed again (the writer makes them when it writes),
    so work that fails after the check leaves no empty folder."""
    path = os.fspath(path)
    made, head = [], os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(head) and os.path.dirname(head) != head:
        made.append(head)
        head = os.path.dirname(head)
    try:
        fd, tmp = _claim_temp(path, what, keep_suffix=False, file_only=True)
        os.close(fd)
        os.remove(tmp)
    finally:
        for folder in made:  # the deepest first
            with contextlib.suppress(OSError):
                os.rmdir(folder)


# Temporary files of the atomic writers (`_claim_temp`): '.<name>.<mkstemp's 8 random characters>.tmp[<ext>]'.
_TEMPORARY_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\.\w+)?")


WRITING_LOCK = ".writing.lock"


@contextlib.contextmanager
def writing_folder(folder: str | os.PathLike, busy: str) -> Iterator[None]:
    """Make `folder` and hold an exclusive lock on it while a job writes its outputs there; a second
    process on the same folder gets `UserError("<folder> <busy>")` at once (e.g. busy = "is being
    written by another gen_video.py; wait for it to end, or use another --output"). While the lock is
    held nothing else writes there, so the temporaries of an earlier, killed job are removed. The lock
    goes with the process (a killed job leaves none)."""
    make_dirs(folder, "output folder")
    with exclusive_lock(os.path.join(folder, WRITING_LOCK), f"{os.fspath(folder)} {busy}"):
        remove_stale_temporaries(folder)
        yield


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, busy: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (made if missing) for the block. When another process
    holds it: with `busy`, `UserError(busy)` at once; without, wait for it. The lock goes with the
    process (the OS drops a killed holder's). Processes, not threads: one process must not take a lock
    it holds."""
    with open(path, "a+") as f:
        if busy is None:
            _lock_fd(f.fileno(), wait=True)
        elif not _lock_fd(f.fileno(), wait=False):
            raise UserError(busy)
        try:
            yield
        finally:
            _unlock_fd(f.fileno())


if sys.platform == "win32":
    import msvcrt

    def _lock_fd(fd: int, wait: bool) -> bool:
        """Lock the first byte of the file (a byte past its end can be locked too); True when taken."""
        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not wait:
                    return False
                time.sleep(0.1)  # LK_LOCK would give up after 10 s; a build can take minutes

    def _unlock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock_fd(fd: int, wait: bool) -> bool:
        """flock the whole file; True when taken."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            return True
        except OSError as e:
            if wait or e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            return False

    def _unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def remove_stale_temporaries(folder: str | os.PathLike, stem: str | None = None, ext: str = "") -> list[str]:
    """Remove from `folder` the temporaries of atomic writes that were killed mid-way (files, or folders
    a writer made at its temporary path; each removal is logged): all of them, or with `stem` only those
    of one file (`_claim_temp`'s '.<stem>.XXXXXXXX.tmp<ext>'). A process still writing there would lose
    its temporary: call this only where nothing else writes (that file, with `stem`). Returns the names
    removed."""
    if stem is None:
        pattern = _TEMPORARY_NAME
    else:
        pattern = re.compile(re.escape(f".{stem}.") + r"[a-z0-9_]{8}\.tmp" + re.escape(ext))
    try:
        names = [n for n in os.listdir(folder) if pattern.fullmatch(n)]
    except OSError:
        return []
    removed = []
    for name in names:
        stale = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if os.path.isdir(stale) and not os.path.islink(stale):
                shutil.rmtree(stale)
            else:
                os.remove(stale)
            removed.append(name)
            log.info("Removed %s, left by an interrupted write", stale)
    return removed


def _claim_temp(path: str, what: str, keep_suffix: bool, file_only: bool = False) -> tuple[int, str]:
    """Create the folder of `path` and a temporary file beside it (named after `path`, with its
    extension at the end when `keep_suffix`); an unwritable destination (missing permission, a file
    where a folder should be, with `file_only` a folder at `path`) is a `UserError` naming `what`."""
    if file_only and os.path.isdir(path):
        raise _cannot_write(what, path, IsADirectoryError(errno.EISDIR, "it is a folder"))
    if path.endswith(("/", os.sep)):  # 'poses/': a folder's name, where a file name belongs
        raise _cannot_write(what, path, IsADirectoryError(errno.EISDIR, "it names a folder, not a file"))
    dirname = os.path.dirname(os.path.abspath(path))
    stem, ext = os.path.splitext(os.path.basename(path)) if keep_suffix else (os.path.basename(path), "")
    remove_stale_temporaries(dirname, stem, ext)  # those a killed writer of the same file left
    try:
        os.makedirs(dirname, exist_ok=True)
        return tempfile.mkstemp(prefix="." + stem + ".", suffix=".tmp" + ext, dir=dirname)
    except OSError as e:
        raise _cannot_write(what, path, e) from None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", what: str = "") -> Iterator[io.IOBase]:
    """Open a temporary file next to `path` for writing; rename it to `path` on success.

    On an exception the temporary file is removed and `path` is left untouched. A destination that
    cannot be written raises `UserError` ("Cannot write <what> <path>: ...") before any work."""
    path = os.fspath(path)
    fd, tmp = _claim_temp(path, what, keep_suffix=False, file_only=True)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_file_mode())
        _replace(tmp, path, what)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def save_npy(path: str | os.PathLike, array: Any, what: str = "array") -> None:
    """`numpy.save` to `path`, atomically (see `_save_numpy`)."""
    import numpy as np
    _save_numpy(path, what, lambda f: np.save(f, array))


def save_npz(path: str | os.PathLike, what: str = "arrays", **arrays: Any) -> None:
    """`numpy.savez` of `arrays` to `path`, atomically (see `_save_numpy`)."""
    import numpy as np
    _save_numpy(path, what, lambda f: np.savez(f, **arrays))


def _save_numpy(path: str | os.PathLike, what: str, write: Callable[[io.BytesIO], None]) -> None:
    """The file is built in memory, then written in one call: numpy writes arrays to files with
    `tofile`, whose short writes (a full disk, a size limit) raise an OSError without an errno, and
    `savez` on a failing file leaves its zip writer half-open."""
    buf = io.BytesIO()
    write(buf)
    with atomic_write(path, "wb", what) as f:
        f.write(buf.getbuffer())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, what: str = "") -> Iterator[str]:
    """Yield a temporary path next to `path` for a writer that needs a file name (zip, ffmpeg);
    rename it to `path` on success, remove it on failure. The suffix is kept so that tools that
    look at the extension still work. Unwritable destinations raise `UserError` as in atomic_write."""
    path = os.fspath(path)
    fd, tmp = _claim_temp(path, what, keep_suffix=True)
    os.close(fd)
    try:
        yield tmp
        is_dir = os.path.isdir(tmp)
        if not is_dir:  # on disk before the rename, as atomic_write's (a power cut leaves the old file or the new)
            _fsync_file(tmp)
        # The mode a new file (or, when the writer made a folder there, a new folder) would get.
        os.chmod(tmp, (0o777 if is_dir else 0o666) & ~_umask())
        if is_dir and sys.platform == "win32" and os.path.isdir(path):
            with contextlib.suppress(OSError):  # Windows renames no folder onto another; an empty one can go
                os.rmdir(path)
        _replace(tmp, path, what)
    except BaseException:
        with contextlib.suppress(OSError):
            if os.path.isdir(tmp) and not os.path.islink(tmp):
                shutil.rmtree(tmp)
            else:
                os.remove(tmp)
        raise


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems (and Windows, read-only handles) cannot: the rename still makes it whole
        pass
    finally:
        os.close(fd)


def _replace(tmp: str, path: str, what: str) -> None:
    try:
        os.replace(tmp, path)
    except OSError as e:
        raise _cannot_write(what, path, e) from None

#----------------------------------------------------------------------------
# Settings records: a folder that a re-run fills further (skipping what exists) records how its
# contents were made, so that a re-run made otherwise cannot mix in silently.

def read_settings(path: str | os.PathLike, outputs: bool = True) -> dict[str, Any]:
    """The JSON object of settings recorded at `path` (by `write_json`), or {} when there is none.
    `outputs=False` says that the folder holds nothing the record describes (a run that failed or was
    stopped before its first output): the record is disregarded, {}."""
    import json
    if not outputs or not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise UserError(f"Cannot read {path}: {e}; remove it if the files beside it are yours") from None
    return record


def check_settings(path: str | os.PathLike, settings: dict[str, Any], made: str, remedy: str,
                   outputs: bool = True) -> None:
    """Raise `UserError` if the record at `path` holds another value for a key of `settings`:
    "<folder> holds <made> with other settings (<key> <there>, <now>); <remedy>". Keys missing from
    either side (a hash not known yet) are not compared; long hashes are shown by their first 12 digits.
    `outputs`: whether the folder holds anything the record describes (see `read_settings`)."""
    before = read_settings(path, outputs)
    differ = [k for k in settings if k in before and before[k] != settings[k]]
    if differ:
        def show(v: Any) -> str:
            return repr(v[:12] + "...") if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{40,}", v) else repr(v)
        what = "; ".join(f"{k} {show(before[k])} there, {show(settings[k])} now" for k in differ)
        raise UserError(f"{os.path.dirname(path) or '.'} holds {made} with other settings ({what}); {remedy}")


def write_json(path: str | os.PathLike, obj: Any, what: str = "") -> None:
    """Write `obj` as indented JSON to `path`, atomically (records, reports, options)."""
    import json
    with atomic_write(path, "w", what=what) as f:
        json.dump(obj, f, indent=2)

#----------------------------------------------------------------------------
# Formatting.

def format_time(seconds: float | int) -> str:
    """Human-readable duration: '12s', '3m 04s', '2h 05m 07s', '1d 02h 03m'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 60 * 60:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 24 * 60 * 60:
        return f"{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h {(s // 60) % 60:02d}m"


def format_time_brief(seconds: float | int) -> str:
    """Shorter duration: '12s', '3m 04s', '2h 05m', '1d 02h'."""
    s = int(round(seconds))
    if s < 60 * 60:
        return format_time(s)
    if s < 24 * 60 * 60:
        return f"{s // 3600}h {(s // 60) % 60:02d}m"
    return f"{s // 86400}d {(s // 3600) % 24:02d}h"


def ask_yes_no(question: str) -> bool:
    while True:
        answer = input(f"{question} [y/n] ").strip().lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no"):
            return False

#----------------------------------------------------------------------------
# Parsing command-line values (shared by the scripts; errors name the option).

def finite_float(min: float | None = None, max: float | None = None, min_open: bool = False,
                 max_open: bool = False) -> Any:
    """A click parameter type for a finite float (click's own float takes 'nan' and 'inf'), within
    the optional bounds, as in `click.FloatRange`."""
    import click

    bounded = min is not None or max is not None
    base = click.FloatRange if bounded else click.types.FloatParamType

    class FiniteFloat(base):
        def convert(self, value, param, ctx):
            v = super().convert(value, param, ctx)
            if not math.isfinite(v):
                self.fail(f"{value!r} is not a finite number", param, ctx)
            return v

    return FiniteFloat(min, max, min_open, max_open) if bounded else FiniteFloat()


def parse_range(s: str | int | list, name: str = "--seeds", max_value: int | None = None) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]. Also accepts an int or a list of ints. Inclusive ranges,
    order kept, duplicates kept. Raises UserError on anything else, and on values above
    `max_value` (checked before a range is expanded)."""
    if isinstance(s, numbers.Integral) and not isinstance(s, bool):
        if max_value is not None and s > max_value:
            raise UserError(f"{name}: {s} is too large; values go up to {max_value}")
        return [int(s)]
    if isinstance(s, (list, tuple)):
        return [v for item in s for v in parse_range(item, name, max_value)]
    if not isinstance(s, str):
        raise UserError(f"{name}: expected a list like '0-3,7', got {s!r}")
    values = []
    for part in s.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?", part)
        if m is None:
            raise UserError(f"{name}: cannot read {part!r} in {s!r}; use non-negative integers and "
                            f"ranges like '0-3,7'")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise UserError(f"{name}: range {part!r} runs backwards; write it as '{hi}-{lo}'")
        if max_value is not None and hi > max_value:
            raise UserError(f"{name}: {hi} is too large; values go up to {max_value}")
        values.extend(range(lo, hi + 1))
    return values


def parse_vec2(s: str | tuple | list, name: str = "--translate") -> tuple[float, float]:
    """'0.1,-0.2' -> (0.1, -0.2). Raises UserError unless there are exactly two finite numbers."""
    if isinstance(s, (tuple, list)):
        parts = list(s)
    elif isinstance(s, str):
        parts = s.split(",")
    else:
        raise UserError(f"{name}: expected two numbers 'x,y', got {s!r}")
    try:
        values = [float(p) for p in parts]
    except (TypeError, ValueError):
        values = []
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise UserError(f"{name}: expected two numbers 'x,y', got {s!r}")
    return values[0], values[1]


def parse_grid(s: str, name: str = "--grid") -> tuple[int, int]:
    """'4x2' -> (4, 2) (columns, rows). Raises UserError unless both are positive integers."""
    parts = s.lower().split("x")
    try:
        gw, gh = (int(p) for p in parts)
    except ValueError:
        gw = gh = 0
    if len(parts) != 2 or gw < 1 or gh < 1:
        raise UserError(f"{name}: expected COLUMNSxROWS like 4x2, got {s!r}")
    return gw, gh

#----------------------------------------------------------------------------
# Objects by dotted name.

def _split_obj_name(name: str) -> tuple[types.ModuleType, str]:
    parts = name.split(".")
    # Longest importable module prefix wins: 'a.b.C' imports 'a.b' and looks up 'C'.
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
                continue  # this prefix does not exist; try a shorter one
            raise  # the module exists but one of its own imports is missing
        return module, ".".join(parts[i:])
    # A bare name: look in builtins.
    return importlib.import_module("builtins"), name


def get_obj_from_module(module: types.ModuleType, obj_name: str) -> Any:
    obj = module
    for part in obj_name.split("."):
        obj = getattr(obj, part)
    return obj


def get_obj_by_name(name: str) -> Any:
    """Resolve 'package.module.attr' to the object it names."""
    module, obj_name = _split_obj_name(name)
    try:
        return get_obj_from_module(module, obj_name)
    except AttributeError:
        raise ImportError(f"Cannot find '{obj_name}' in module '{module.__name__}' (from '{name}')") from None


def call_func_by_name(*args, func_name: str | None = None, **kwargs) -> Any:
    """Call the function named by `func_name` with the remaining arguments."""
    assert func_name is not None
    func = get_obj_by_name(func_name)
    if not callable(func):
        raise TypeError(f"'{func_name}' is not callable")
    return func(*args, **kwargs)


def construct_class_by_name(*args, class_name: str | None = None, **kwargs) -> Any:
    """Instantiate the class named by `class_name` with the remaining arguments."""
    return call_func_by_name(*args, func_name=class_name, **kwargs)


def get_module_dir_by_obj_name(obj_name: str) -> str:
    module, _ = _split_obj_name(obj_name)
    return os.path.dirname(os.path.abspath(module.__file__))


def is_top_level_function(obj: Any) -> bool:
    return callable(obj) and getattr(obj, "__name__", None) in sys.modules[obj.__module__].__dict__


def get_top_level_function_name(obj: Any) -> str:
    assert is_top_level_function(obj)
    module = obj.__module__
    if module == "__main__":
        module = os.path.splitext(os.path.basename(sys.modules[module].__file__))[0]
    return module + "." + obj.__name__

#----------------------------------------------------------------------------
# Logger: tee stdout/stderr to a file.

class Logger:
    """Redirect `sys.stdout` and `sys.stderr` to themselves and to a file (append or write).

    Use as a context manager or call `close()`. Python `logging` handlers that write to the
    streams see the tee as well, so everything the run prints lands in `file_name`."""

    def __init__(self, file_name: str | None = None, file_mode: str = "w", should_flush: bool = True):
        self.file = open(file_name, file_mode, encoding="utf-8") if file_name is not None else None
        self.should_flush = should_flush
        self.stdout = sys.stdout
        self.stderr = sys.stderr
        sys.stdout = self
        sys.stderr = self

    def __enter__(self) -> "Logger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, text: str | bytes) -> None:
        if isinstance(text, bytes):
            text = text.decode()
        if not text:
            return
        if self.file is not None:
            self.file.write(text)
        self.stdout.write(text)
        if self.should_flush:
            self.flush()

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()
        self.stdout.flush()

    def isatty(self) -> bool:
        return getattr(self.stdout, "isatty", lambda: False)()

    def fileno(self) -> int:
        return self.stdout.fileno()

    def close(self) -> None:
        self.flush()
        if sys.stdout is self:
            sys.stdout = self.stdout
        if sys.stderr is self:
            sys.stderr = self.stderr
        if self.file is not None:
            self.file.close()
            self.file = None

#----------------------------------------------------------------------------
# Cache directory and URL opening.

_dnnlib_cache_dir: str | None = None


def set_cache_dir(path: str | None) -> None:
    global _dnnlib_cache_dir
    _dnnlib_cache_dir = path


def make_cache_dir_path(*paths: str) -> str:
    """Path under the download cache: `DNNLIB_CACHE_DIR`, else `$XDG_CACHE_HOME/dnnlib`,
    else `~/.cache/dnnlib`."""
    if _dnnlib_cache_dir is not None:
        return os.path.join(_dnnlib_cache_dir, *paths)
    if "DNNLIB_CACHE_DIR" in os.environ:
        return os.path.join(os.environ["DNNLIB_CACHE_DIR"], *paths)
    if "XDG_CACHE_HOME" in os.environ:
        return os.path.join(os.environ["XDG_CACHE_HOME"], "dnnlib", *paths)
    if "HOME" in os.environ:
        return os.path.join(os.environ["HOME"], ".cache", "dnnlib", *paths)
    if "USERPROFILE" in os.environ:
        return os.path.join(os.environ["USERPROFILE"], ".cache", "dnnlib", *paths)
    return os.path.join(tempfile.gettempdir(), ".cache", "dnnlib", *paths)


def is_url(obj: Any, allow_file_urls: bool = False) -> bool:
    """True for 'http(s)://host/...' (and 'file://...' when allowed)."""
    if not isinstance(obj, str) or "://" not in obj:
        return False
    if allow_file_urls and obj.startswith("file://"):
        return True
    try:
        res = urllib.parse.urlparse(obj)
    except ValueError:
        return False
    return res.scheme in ("http", "https") and bool(res.netloc)


def _file_url_to_path(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    path = urllib.request.url2pathname(parsed.path)
    if parsed.netloc and parsed.netloc != "localhost":
        path = "//" + parsed.netloc + path  # UNC-style host part
    return path


def _cache_key(url: str) -> str:
    return hashlib.md5(url.encode("utf-8")).hexdigest()


def _safe_name(url: str) -> str:
    name = os.path.basename(urllib.parse.urlparse(url).path) or "download"
    name = re.sub(r"[^0-9a-zA-Z_.-]+", "_", name)
    return name[:100]


def _cache_paths(cache_dir: str, url: str) -> tuple[str, str]:
    """The cached file and its completion marker, which records size and sha256."""
    key = _cache_key(url)
    data = os.path.join(cache_dir, f"{key}_{_safe_name(url)}")
    return data, data + ".ok"


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _valid_cache_entry(data_path: str, ok_path: str) -> bool:
    """A cache entry counts only when its marker exists and size and hash still match."""
    try:
        with open(ok_path, encoding="utf-8") as f:
            size_str, digest = f.read().split()
        return os.path.getsize(data_path) == int(size_str) and _sha256_file(data_path) == digest
    except (OSError, ValueError):
        return False


def _download(url: str, timeout: float, num_attempts: int, verbose: bool) -> bytes:
    """Fetch `url` fully into memory; raise UserError naming it on failure."""
    last_error: Exception | None = None
    for attempt in range(num_attempts):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "signstylegan"})
            with urllib.request.urlopen(req, timeout=timeout) as res:
                expected = res.headers.get("Content-Length")
                chunks = []
                while True:
                    chunk = res.read(1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
                data = b"".join(chunks)
                if expected is not None and len(data) != int(expected):
                    raise OSError(f"incomplete download ({len(data)} of {expected} bytes)")
                if len(data) == 0:
                    raise OSError("empty response")
                return data
        except urllib.error.HTTPError as e:
            last_error = e
            if 400 <= e.code < 500 and e.code not in (408, 429):
                break  # a client error will not go away by retrying
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            last_error = e
            reason = getattr(e, "reason", e)
            # An offline machine (no route, name not resolved, refused) fails the same way again.
            if isinstance(reason, OSError) and not isinstance(reason, TimeoutError):
                break
        if verbose:
            log.warning("Download of %s failed (%s); retrying", url, last_error)
        time.sleep(min(2.0 ** attempt, 4.0) * 0.5)
    raise UserError(f"Could not download {url}: {last_error}. If this machine is offline, download the file "
                    f"elsewhere and pass its local path instead.")


def open_url(url: str, cache_dir: str | None = None, num_attempts: int = 3, verbose: bool = True,
             return_filename: bool = False, cache: bool = True, timeout: float = 30.0) -> Any:
    """Open a local path, a `file://` URL or an `http(s)://` URL as a binary file object.

    Downloads are cached under `cache_dir` (default `make_cache_dir_path('downloads')`). A download
    becomes a cache entry only once it is complete, and an entry whose size or checksum no longer
    matches is fetched again, never returned. With `return_filename=True` the path of a local or
    cached file is returned instead of an open file (requires `cache=True` for URLs).

    Raises `UserError` naming the path or URL when it cannot be opened."""
    if not isinstance(url, (str, os.PathLike)):
        raise TypeError(f"open_url expects a path or URL, got {type(url).__name__}")
    url = os.fspath(url)
    assert num_attempts >= 1
    assert not (return_filename and not cache)

    # Local files.
    if not re.match(r"^[a-z][a-z0-9+.-]*://", url):
        if not os.path.isfile(url):
            raise UserError(f"{url} is a folder, not a file" if os.path.isdir(url) else f"File not found: {url}")
        return url if return_filename else open(url, "rb")
    if url.startswith("file://"):
        path = _file_url_to_path(url)
        if not os.path.isfile(path):
            raise UserError(f"File not found: {url} (local path {path})")
        return path if return_filename else open(path, "rb")
    if not is_url(url):
        raise UserError(f"Unsupported URL: {url} (use a local path, file:// or http(s)://)")

    # Remote files, possibly cached.
    if cache_dir is None:
        cache_dir = make_cache_dir_path("downloads")
    data_path, ok_path = _cache_paths(cache_dir, url)
    if cache and _valid_cache_entry(data_path, ok_path):
        return data_path if return_filename else open(data_path, "rb")

    if verbose:
        log.info("Downloading %s ...", url)
    data = _download(url, timeout=timeout, num_attempts=num_attempts, verbose=verbose)
    if not cache:
        return io.BytesIO(data)

    # Write data then marker, each atomically; a crash in between leaves no valid entry.
    os.makedirs(cache_dir, exist_ok=True)
    with contextlib.suppress(OSError):
        os.remove(ok_path)
    with atomic_write(data_path) as f:
        f.write(data)
    with atomic_write(ok_path, "w") as f:
        f.write(f"{len(data)} {hashlib.sha256(data).hexdigest()}\n")
    return data_path if return_filename else open(data_path, "rb")

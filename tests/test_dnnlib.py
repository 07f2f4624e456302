"""dnnlib: EasyDict, objects by name, time formatting, Logger, command-line value parsers, open_url and its
download cache."""

import errno
import http.server
import os
import pickle
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import dnnlib
from dnnlib import util


def test_easydict_attributes_and_pickle_path():
    d = dnnlib.EasyDict(a=1)
    d.b = 2
    assert d["b"] == 2 and d.a == 1
    del d.a
    assert "a" not in d
    with pytest.raises(AttributeError):
        _ = d.missing
    assert dnnlib.EasyDict is util.EasyDict
    data = pickle.dumps(d)
    assert b"dnnlib.util" in data and b"EasyDict" in data  # published pickles refer to this path
    assert pickle.loads(data) == {"b": 2}


def test_objects_by_name():
    assert util.get_obj_by_name("os.path.join") is os.path.join
    assert util.call_func_by_name("a", "b", func_name="os.path.join") == os.path.join("a", "b")
    d = util.construct_class_by_name(class_name="dnnlib.util.EasyDict", x=3)
    assert isinstance(d, dnnlib.EasyDict) and d.x == 3
    with pytest.raises(ImportError):
        util.get_obj_by_name("os.path.no_such_function")


def test_format_time():
    assert util.format_time(5) == "5s"
    assert util.format_time(65) == "1m 05s"
    assert util.format_time(3 * 3600 + 61) == "3h 01m 01s"
    assert util.format_time(2 * 86400 + 3 * 3600) == "2d 03h 00m"


def test_logger_tees_to_file(tmp_path):
    path = tmp_path / "log.txt"
    with util.Logger(str(path), "w"):
        print("hello from stdout")
        print("hello from stderr", file=sys.stderr)
    assert sys.stdout is not None and not isinstance(sys.stdout, util.Logger)
    text = path.read_text()
    assert "hello from stdout" in text and "hello from stderr" in text


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with util.atomic_write(target) as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with util.atomic_write(target) as f:
        f.write(b"complete")
    assert target.read_bytes() == b"complete"
    umask = os.umask(0)
    os.umask(umask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)  # not mkstemp's 0600
    with util.atomic_path(tmp_path / "other.zip") as tmp:
        assert tmp.endswith(".zip")
        open(tmp, "wb").close()
    assert ((tmp_path / "other.zip").stat().st_mode & 0o777) == (0o666 & ~umask)


def test_unwritable_destinations_are_user_errors_before_any_work(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    folder = tmp_path / "folder"
    folder.mkdir()
    calls = []
    for open_it in (lambda p: util.atomic_write(p, what="report"), lambda p: util.atomic_path(p, what="report")):
        with pytest.raises(util.UserError, match=r"Cannot write report .*a_file is a file, not a folder"):
            with open_it(a_file / "sub" / "out.bin"):
                calls.append("body ran")
    assert calls == []
    with pytest.raises(util.UserError, match="Cannot write .*folder: it is a folder"):
        with util.atomic_write(folder):
            calls.append("body ran")
    assert calls == []
    with pytest.raises(util.UserError, match="it is a folder"):
        util.check_writable(folder, "pose")
    with pytest.raises(util.UserError, match="Cannot create output folder .*a_file is a file, not a folder"):
        util.make_dirs(a_file / "x", "output folder")
    with pytest.raises(util.UserError, match="Cannot create run folder"):
        util.make_dirs(folder, "run folder", exist_ok=False)
    util.check_writable(tmp_path / "new" / "deep" / "x.pose")  # nothing is left behind, not even the folders
    assert not (tmp_path / "new").exists() and a_file.read_text() == "keep"


def test_atomic_writes_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    # The new content is flushed to the disk before it takes the final name: after a power cut the
    # name holds the old file or the whole new one, never an empty one.
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.fstat(fd).st_size))
                        or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", os.path.basename(b))) or real_replace(a, b))
    with util.atomic_write(tmp_path / "a.bin") as f:
        f.write(b"12345")
    with util.atomic_path(tmp_path / "b.zip") as tmp:
        with open(tmp, "wb") as f:
            f.write(b"1234567")
    assert events == [("fsync", 5), ("replace", "a.bin"), ("fsync", 7), ("replace", "b.zip")]


def test_atomic_path_moves_a_folder_onto_an_empty_folder(tmp_path):
    dest = tmp_path / "dataset"
    dest.mkdir()
    with util.atomic_path(dest) as tmp:  # dataset_tool writes folder datasets this way
        os.remove(tmp)
        os.mkdir(tmp)
        open(os.path.join(tmp, "img.png"), "wb").close()
    assert os.listdir(dest) == ["img.png"]
    # A writer that made its folder and then failed leaves nothing (the folder is removed, contents and all).
    with pytest.raises(RuntimeError):
        with util.atomic_path(tmp_path / "other") as tmp:
            os.remove(tmp)
            os.mkdir(tmp)
            open(os.path.join(tmp, "img.png"), "wb").close()
            raise RuntimeError("the conversion failed")
    assert sorted(os.listdir(tmp_path)) == ["dataset"]


def test_cli_main_turns_user_error_into_click_error():
    import click
    from click.testing import CliRunner

    @click.command()
    @util.cli_main
    def cmd():
        raise dnnlib.UserError("bad input: do this instead")

    result = CliRunner().invoke(cmd, [])
    assert result.exit_code == 1
    assert "bad input: do this instead" in result.output
    assert "Traceback" not in result.output


_SHORT_WRITES = """
import os, resource, signal, sys
import numpy as np
from dnnlib import util
tmp = sys.argv[1]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, writes are short, then fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
big = np.zeros(1 << 20, np.float32)
f = open(os.path.join(tmp, "plain.npy"), "wb")
try:
    np.save(f, big)
except OSError as e:
    print("plain", e.errno)
try:
    util.save_npy(os.path.join(tmp, "ours.npy"), big)
except OSError as e:
    print("ours", e.errno)
"""


def test_save_npy_round_trip(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    util.save_npy(tmp_path / "a.npy", a)
    util.save_npz(tmp_path / "b.npz", x=a, n=np.int64(3))
    assert np.array_equal(np.load(tmp_path / "a.npy"), a)
    with np.load(tmp_path / "b.npz") as z:
        assert np.array_equal(z["x"], a) and int(z["n"]) == 3
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.npz"]


@pytest.mark.skipif(sys.platform == "win32", reason="sets a file-size limit with resource.setrlimit (POSIX)")
def test_save_npy_short_writes_keep_their_errno(tmp_path, repo_dir):
    # numpy writing to a file that takes only part of a write (a full disk, a size limit) raises an
    # OSError without an errno, which no CLI can tell from a bug; save_npy's writes keep the OS's errno.
    out = tmp_path / "out"
    out.mkdir()
    res = subprocess.run([sys.executable, "-c", _SHORT_WRITES, str(out)], cwd=repo_dir, capture_output=True,
                         text=True, timeout=60)
    assert res.stdout.split("\n")[:2] == ["plain None", f"ours {errno.EFBIG}"], res.stdout + res.stderr
    assert sorted(os.listdir(out)) == ["plain.npy"]  # no file, no temporary left by save_npy


def test_atomic_writes_remove_a_killed_writers_temporaries(tmp_path):
    # A writer killed mid-way leaves its temporary; the next write of the same file removes it (file or
    # folder), and leaves other files' temporaries alone.
    (tmp_path / ".x.json.abcd1234.tmp").write_text("torn")
    (tmp_path / ".d.zz_99xyz.tmp.zip").mkdir()  # a writer that made a folder at its temporary path
    (tmp_path / ".d.zz_99xyz.tmp.zip" / "part").write_text("torn")
    (tmp_path / ".y.json.abcd1234.tmp").write_text("another file's")
    with util.atomic_write(tmp_path / "x.json", "w") as f:
        f.write("{}")
    with util.atomic_path(tmp_path / "d.zip") as tmp:
        with open(tmp, "wb") as f:
            f.write(b"zip")
    assert sorted(os.listdir(tmp_path)) == [".y.json.abcd1234.tmp", "d.zip", "x.json"]


def test_remove_stale_temporaries(tmp_path):
    fd, tmp = util._claim_temp(str(tmp_path / "training-state.pt"), "state", keep_suffix=False)
    os.close(fd)
    fd, tmp2 = util._claim_temp(str(tmp_path / "fakes000000.png"), "grid", keep_suffix=True)
    os.close(fd)
    for name in ("notes.tmp", ".hidden", "training-state.pt"):
        (tmp_path / name).write_text("kept")
    assert sorted(util.remove_stale_temporaries(tmp_path)) == sorted(os.path.basename(t) for t in (tmp, tmp2))
    assert sorted(os.listdir(tmp_path)) == [".hidden", "notes.tmp", "training-state.pt"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device whose writes fail: disk full)")
def test_cli_main_reports_a_full_disk_in_one_line():
    import click
    from click.testing import CliRunner

    @click.command()
    @util.cli_main
    def cmd():
        with open("/dev/full", "wb") as f:  # every write fails with ENOSPC, as on a full disk
            f.write(b"x" * 100)
            f.flush()

    result = CliRunner().invoke(cmd, [])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "free some space" in lines[0], result.output

    @click.command()
    @util.cli_main
    def bug():
        open("/nonexistent-folder/x", "rb")

    result = CliRunner().invoke(bug, [])  # other OS errors are bugs of ours: they keep their traceback
    assert isinstance(result.exception, FileNotFoundError)

def test_cli_main_reports_running_out_of_memory_in_one_line():
    """Settings too large for the machine (numpy's and torch's allocators) are one line; other runtime
    errors keep their traceback."""
    import click
    import torch
    from click.testing import CliRunner

    sizes = {"numpy": lambda: np.empty(1 << 62, np.uint8), "torch": lambda: torch.empty(1 << 62, dtype=torch.uint8)}
    for name, alloc in sizes.items():
        @click.command()
        @util.cli_main
        def cmd():
            alloc()
        result = CliRunner().invoke(cmd, [])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1, (name, result.output, result.exception)
        assert lines[0].startswith("Error: Out of memory (") and "smaller settings" in lines[0], (name, lines)

    @click.command()
    @util.cli_main
    def bug():
        raise RuntimeError("shape '[3, -1]' is invalid for input of size 8")
    result = CliRunner().invoke(bug, [])
    assert isinstance(result.exception, RuntimeError)


def test_files_by_name_refuses_twins(tmp_path):
    for name in ("a.pose", "b.pose", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert util.files_by_name(tmp_path, [".pose"]) == {"a": str(tmp_path / "a.pose"), "b": str(tmp_path / "b.pose")}
    (tmp_path / "a.POSE").write_bytes(b"")
    with pytest.raises(dnnlib.UserError, match=r"Poses in .* share a name \(a.POSE, a.pose\)"):
        util.files_by_name(tmp_path, [".pose"], "Poses")

#----------------------------------------------------------------------------
# Parsing command-line values.

def test_parse_range():
    assert util.parse_range("0-3,7") == [0, 1, 2, 3, 7]
    assert util.parse_range(" 5 ") == [5]
    assert util.parse_range("2-2,10-11") == [2, 10, 11]
    assert util.parse_range(4) == [4]
    assert util.parse_range(np.int64(6)) == [6]
    assert util.parse_range([1, "3-4"]) == [1, 3, 4]
    for bad in ["", "a", "1,,2", "3-1", "-2", "1-", "1.5", "0-3;7", True, 2.0, None]:
        with pytest.raises(dnnlib.UserError, match="--seeds"):
            util.parse_range(bad)
    with pytest.raises(dnnlib.UserError, match="--frames: range '9-3' runs backwards"):
        util.parse_range("9-3", "--frames")
    assert util.parse_range("0-2,9", max_value=9) == [0, 1, 2, 9]
    for big in ["10", "0-4294967296", [3, 10], 10]:  # refused before a range is expanded
        with pytest.raises(dnnlib.UserError, match="--seeds: .* too large; values go up to 9"):
            util.parse_range(big, max_value=9)


def test_finite_float_option():
    import click
    from click.testing import CliRunner

    @click.command()
    @click.option("--x", type=util.finite_float())
    @click.option("--y", type=util.finite_float(min=0, min_open=True), default=1.0)
    def cmd(x, y):
        click.echo(f"{x} {y}")

    assert CliRunner().invoke(cmd, ["--x=-2.5", "--y=3"]).output == "-2.5 3.0\n"
    for args, needle in [(["--x=nan"], "'nan' is not a finite number"), (["--x=-inf"], "not a finite number"),
                         (["--x=abc"], "not a valid float"), (["--y=inf"], "'inf' is not a finite number"),
                         (["--y=0"], "x>0")]:
        r = CliRunner().invoke(cmd, args)
        assert r.exit_code == 2 and needle in r.output, (args, r.output)


def test_parse_vec2():
    assert util.parse_vec2("0.1,-2") == (0.1, -2.0)
    assert util.parse_vec2((1, 2)) == (1.0, 2.0)
    for bad in ["1", "1,2,3", "a,b", "nan,0", "inf,1", "", None]:
        with pytest.raises(dnnlib.UserError, match="--translate"):
            util.parse_vec2(bad)


def test_parse_grid():
    assert util.parse_grid("4x2") == (4, 2)
    assert util.parse_grid("1X3") == (1, 3)
    for bad in ("4", "0x2", "axb", "1x2x3", "2x-1"):
        with pytest.raises(dnnlib.UserError, match="--grid"):
            util.parse_grid(bad)

#----------------------------------------------------------------------------
# open_url against a local HTTP server.

class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    hits: dict = {}

    def do_GET(self):  # noqa: N802
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        body = self.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        if self.path.startswith("/truncated"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 100))  # promise more than we send
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.files = {"/net.pkl": b"network bytes" * 1000, "/truncated.pkl": b"x" * 5000}
    _Handler.hits = {}
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_open_url_local_and_file_url(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"abc")
    with util.open_url(str(p)) as f:
        assert f.read() == b"abc"
    with util.open_url(p.as_uri()) as f:
        assert f.read() == b"abc"
    assert util.open_url(str(p), return_filename=True) == str(p)


def test_open_url_missing_path_names_it(tmp_path):
    missing = str(tmp_path / "nope.pkl")
    with pytest.raises(dnnlib.UserError, match="nope.pkl"):
        util.open_url(missing)
    with pytest.raises(dnnlib.UserError, match="nope.pkl"):
        util.open_url("file://" + missing)


def test_open_url_downloads_and_caches(http_server, tmp_path):
    url = http_server + "/net.pkl"
    with util.open_url(url, cache_dir=str(tmp_path)) as f:
        assert f.read() == b"network bytes" * 1000
    with util.open_url(url, cache_dir=str(tmp_path)) as f:
        assert f.read() == b"network bytes" * 1000
    assert _Handler.hits["/net.pkl"] == 1  # second open came from the cache


def test_open_url_refetches_corrupt_cache_entry(http_server, tmp_path):
    url = http_server + "/net.pkl"
    path = util.open_url(url, cache_dir=str(tmp_path), return_filename=True)
    with open(path, "r+b") as f:  # corrupt the entry in place (same size)
        f.write(b"XXXX")
    with util.open_url(url, cache_dir=str(tmp_path)) as f:
        assert f.read() == b"network bytes" * 1000
    assert _Handler.hits["/net.pkl"] == 2


def test_open_url_truncated_download_is_not_cached(http_server, tmp_path):
    url = http_server + "/truncated.pkl"
    with pytest.raises(dnnlib.UserError, match="truncated.pkl"):
        util.open_url(url, cache_dir=str(tmp_path), num_attempts=2)
    assert [p for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


def test_open_url_http_404_names_url(http_server, tmp_path):
    with pytest.raises(dnnlib.UserError, match="missing.pkl"):
        util.open_url(http_server + "/missing.pkl", cache_dir=str(tmp_path))


def test_open_url_unreachable_fails_fast(tmp_path):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for url in (f"http://127.0.0.1:{port}/net.pkl", "https://no-such-host.invalid/net.pkl"):
        t0 = time.time()
        with pytest.raises(dnnlib.UserError) as info:
            util.open_url(url, cache_dir=str(tmp_path))
        assert url in str(info.value)
        assert time.time() - t0 < 15


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path))
    assert util.make_cache_dir_path("downloads") == os.path.join(str(tmp_path), "downloads")


def test_exclusive_lock_refuses_or_waits(tmp_path):
    # Another process holds the lock for a while: with `busy` the request is refused at once, without it
    # waits until the holder lets go. A killed holder's lock is gone.
    lock = tmp_path / "x.lock"
    hold = ("import sys, time; sys.path.insert(0, sys.argv[1]); from dnnlib import util\n"
            "with util.exclusive_lock(sys.argv[2], 'busy'):\n"
            "    print('held', flush=True); time.sleep(float(sys.argv[3]))\n"
            "    open(sys.argv[2] + '.released', 'w').close()\n")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    holder = subprocess.Popen([sys.executable, "-c", hold, repo, str(lock), "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(dnnlib.UserError, match="^the folder is busy$"):
            with util.exclusive_lock(lock, "the folder is busy"):
                pass
        with util.exclusive_lock(lock):  # waits for the holder
            assert os.path.exists(str(lock) + ".released")
    finally:
        holder.wait(timeout=60)
    killed = subprocess.Popen([sys.executable, "-c", hold, repo, str(lock), "600"], stdout=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "held"
    killed.kill()
    killed.wait(timeout=60)
    with util.exclusive_lock(lock, "busy"):
        pass


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be caught on Windows")
def test_sigterm_removes_the_partial_output(tmp_path):
    # `kill`, `timeout` and batch schedulers stop a job with SIGTERM: the command unwinds as after Ctrl-C,
    # so the atomic writer's temporary goes and the final name never appears.
    script = ("import sys, time, click; sys.path.insert(0, sys.argv[1]); from dnnlib import util\n"
              "@click.command()\n@util.cli_main\ndef main():\n"
              "    with util.atomic_path(sys.argv[2]) as tmp:\n"
              "        open(tmp, 'wb').write(b'partial'); print('writing', flush=True); time.sleep(60)\n"
              "main(sys.argv[3:])\n")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", script, repo, str(tmp_path / "out.mp4")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert len(os.listdir(tmp_path)) == 1  # the temporary
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert os.listdir(tmp_path) == []

"""torch_utils.misc and torch_utils.training_stats (single process and gloo across 2 processes)."""

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import dnnlib
from torch_utils import misc, training_stats

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_constant_is_cached_and_broadcast():
    a = misc.constant([1, 2, 3], shape=[2, 3], dtype=torch.float32)
    b = misc.constant([1, 2, 3], shape=[2, 3], dtype=torch.float32)
    assert a is b and a.shape == (2, 3) and a[1].tolist() == [1, 2, 3]
    assert misc.constant(0.5).dtype == torch.get_default_dtype()


def test_assert_shape():
    x = torch.zeros([2, 3, 4])
    misc.assert_shape(x, [2, None, 4])
    with pytest.raises(AssertionError):
        misc.assert_shape(x, [2, 3])
    with pytest.raises(AssertionError):
        misc.assert_shape(x, [2, 5, None])


def test_copy_params_and_buffers_by_name():
    src = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    dst = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    with torch.no_grad():
        src[0].weight.fill_(0.25)
        src[1].running_mean.fill_(3.0)
    misc.copy_params_and_buffers(src, dst)
    assert torch.all(dst[0].weight == 0.25) and torch.all(dst[1].running_mean == 3.0)
    assert dst[0].weight.requires_grad
    with pytest.raises(KeyError):
        misc.copy_params_and_buffers(src, dst, require_all=True)


def test_infinite_sampler_ranks_partition_one_stream():
    data = list(range(10))
    single = misc.InfiniteSampler(data, seed=3)
    it = iter(single)
    stream = [next(it) for _ in range(40)]
    plain = iter(misc.InfiniteSampler(data, shuffle=False))
    assert [next(plain) for _ in range(20)] == data + data
    assert stream[:10] != data  # seed 3 gives a shuffled order
    r0 = iter(misc.InfiniteSampler(data, rank=0, num_replicas=2, seed=3))
    r1 = iter(misc.InfiniteSampler(data, rank=1, num_replicas=2, seed=3))
    merged = [v for pair in zip([next(r0) for _ in range(20)], [next(r1) for _ in range(20)]) for v in pair]
    assert merged == stream
    # `start` continues the same stream (exact resume of the data order)
    resumed = iter(misc.InfiniteSampler(data, seed=3, start=17))
    assert [next(resumed) for _ in range(23)] == stream[17:]
    # ... also far into it (many passes, past a block of pre-drawn swaps), on every rank
    data = list(range(37))
    stream = list(itertools.islice(iter(misc.InfiniteSampler(data, seed=5)), 70_100))
    for rank in (0, 2):
        resumed = iter(misc.InfiniteSampler(data, rank=rank, num_replicas=3, seed=5, start=70_000))
        mine = [v for k, v in enumerate(stream) if k >= 70_000 and k % 3 == rank]
        assert [next(resumed) for _ in range(30)] == mine[:30]
    data = list(range(10))
    # every item appears in the first pass when the window is zero
    it = iter(misc.InfiniteSampler(data, seed=1, window_size=0))
    assert sorted(next(it) for _ in range(10)) == data


def test_print_module_summary(capsys):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    out = misc.print_module_summary(net, [torch.zeros([5, 3])])
    assert out.shape == (5, 2)
    text = capsys.readouterr().out
    assert "Total" in text and str(3 * 4 + 4 + 4 * 2 + 2) in text and "[5, 2]" in text


def test_get_device():
    assert misc.get_device("cpu").type == "cpu"
    assert misc.get_device("auto").type in ("cpu", "cuda")
    with pytest.raises(dnnlib.UserError):
        misc.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(dnnlib.UserError, match="no CUDA"):
            misc.get_device("cuda")


def test_training_stats_collector_intervals():
    training_stats.report("Test/a", torch.tensor([1.0, 2.0, 3.0]))
    training_stats.report("Other/x", 5.0)
    collector = training_stats.Collector(regex="Test/.*", keep_previous=False)
    training_stats.report("Test/a", torch.tensor([2.0, 4.0]))
    training_stats.report0("Test/b", 7.0)
    collector.update()
    stats = collector.as_dict()
    assert set(stats) == {"Test/a", "Test/b"}
    assert stats["Test/a"].num == 2 and stats["Test/a"].mean == pytest.approx(3.0)
    assert stats["Test/a"].std == pytest.approx(1.0)
    assert collector["Test/b"] == pytest.approx(7.0)
    collector.update()  # nothing new
    assert collector.num("Test/a") == 0 and np.isnan(collector.mean("Test/a"))


def test_training_stats_reduce_across_gloo_ranks(tmp_path):
    code = textwrap.dedent(f'''
        import sys, torch, torch.multiprocessing as mp
        sys.path.insert(0, {REPO!r})

        def worker(rank, init_file, out):
            from torch_utils import distributed, training_stats
            distributed.init(rank=rank, world_size=2, init_file=init_file, backend="gloo")
            training_stats.init_multiprocessing(rank=rank, sync_device=torch.device("cpu"))
            collector = training_stats.Collector(regex="L/.*")
            training_stats.report("L/loss", torch.full([rank + 1], float(rank + 1)))  # rank0: [1], rank1: [2, 2]
            training_stats.report0("L/only0", 10.0 + rank)
            collector.update()
            if rank == 0:
                d = collector.as_dict()
                with open(out, "w") as f:
                    f.write(f"{{d['L/loss'].num}} {{d['L/loss'].mean}} {{d['L/only0'].num}} {{d['L/only0'].mean}}")
            distributed.deinit()

        if __name__ == "__main__":
            mp.spawn(worker, args=({str(tmp_path / 'init')!r}, {str(tmp_path / 'out.txt')!r}), nprocs=2)
    ''')
    script = tmp_path / "run.py"
    script.write_text(code)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    num, mean, num0, mean0 = (tmp_path / "out.txt").read_text().split()
    assert int(num) == 3 and float(mean) == pytest.approx(5.0 / 3.0)
    assert int(num0) == 1 and float(mean0) == pytest.approx(10.0)

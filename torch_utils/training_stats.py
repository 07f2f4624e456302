"""Statistics reported from anywhere in the code and collected periodically, across ranks.

`report(name, value)` adds the elements of `value` to running moments (count, sum, sum of
squares) kept per name. A `Collector` turns the moments accumulated since its previous `update()`
into count/mean/std per name; under `torch.distributed` the moments of all ranks are summed first
(call `init_multiprocessing` once per process). Reporting is cheap and never synchronises.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

import dnnlib

#----------------------------------------------------------------------------

_num_moments = 3              # [count, sum, sum of squares]
_reduce_dtype = torch.float32  # dtype of the values before accumulation
_counter_dtype = torch.float64  # dtype of the accumulators
_rank = 0
_sync_device: torch.device | None = None  # device for all_reduce; None = single process
_sync_called = False
_counters: dict[str, dict[torch.device, torch.Tensor]] = {}  # name -> device -> moments
_cumulative: dict[str, torch.Tensor] = {}                     # name -> moments summed over devices


def init_multiprocessing(rank: int, sync_device: torch.device | None) -> None:
    """Declare this process's rank and the device used to sum statistics across ranks
    (CUDA device for NCCL, CPU for gloo; None for a single process). Call before any update."""
    global _rank, _sync_device
    assert not _sync_called, "init_multiprocessing must be called before the first Collector.update()"
    _rank = rank
    _sync_device = sync_device


def report(name: str, value: Any) -> Any:
    """Accumulate the elements of `value` (scalar, array or tensor) under `name`; returns `value`.

    Non-finite elements are counted as they are, so a NaN loss shows up as a NaN mean."""
    if name not in _counters:
        _counters[name] = {}
    elems = torch.as_tensor(value)
    if elems.numel() == 0:
        return value
    elems = elems.detach().flatten().to(_reduce_dtype)
    moments = torch.stack([
        torch.ones_like(elems).sum(),
        elems.sum(),
        elems.square().sum(),
    ]).to(_counter_dtype)
    device = moments.device
    if device not in _counters[name]:
        _counters[name][device] = torch.zeros_like(moments)
    _counters[name][device].add_(moments)
    return value


def report0(name: str, value: Any) -> Any:
    """Like `report`, but only rank 0's value counts (other ranks register the name only)."""
    report(name, value if _rank == 0 else [])
    return value

#----------------------------------------------------------------------------

class Collector:
    """Collects the statistics reported since the previous `update()`.

    regex:         only names that fully match it are collected.
    keep_previous: a name with no new reports keeps its previous value instead of disappearing.
    Under torch.distributed every rank must call `update()` together."""

    def __init__(self, regex: str = ".*", keep_previous: bool = True):
        self._regex = re.compile(regex)
        self._keep_previous = keep_previous
        self._cumulative: dict[str, torch.Tensor] = {}
        self._moments: dict[str, torch.Tensor] = {}
        self.update()
        self._moments.clear()

    def names(self) -> list[str]:
        """Names currently reported that match the regex (sorted: ranks must agree on the order)."""
        return sorted(name for name in _counters if self._regex.fullmatch(name))

    def update(self) -> None:
        """Capture the moments reported since the last call (summed across ranks)."""
        if not self._keep_previous:
            self._moments.clear()
        for name, cumulative in _sync(self.names()):
            if name not in self._cumulative:
                self._cumulative[name] = torch.zeros([_num_moments], dtype=_counter_dtype)
            delta = cumulative - self._cumulative[name]
            self._cumulative[name].copy_(cumulative)
            if float(delta[0]) != 0:
                self._moments[name] = delta

    def _get_delta(self, name: str) -> torch.Tensor:
        assert self._regex.fullmatch(name)
        if name not in self._moments:
            self._moments[name] = torch.zeros([_num_moments], dtype=_counter_dtype)
        return self._moments[name]

    def num(self, name: str) -> int:
        """Number of scalars reported under `name` in the last interval."""
        return int(self._get_delta(name)[0])

    def mean(self, name: str) -> float:
        """Mean of the scalars reported under `name` in the last interval (NaN when none)."""
        delta = self._get_delta(name)
        if int(delta[0]) == 0:
            return float("nan")
        return float(delta[1] / delta[0])

    def std(self, name: str) -> float:
        """Standard deviation in the last interval (NaN when none; 0 for one scalar)."""
        delta = self._get_delta(name)
        if int(delta[0]) == 0 or not np.isfinite(float(delta[1])):
            return float("nan")
        if int(delta[0]) == 1:
            return 0.0
        mean = float(delta[1] / delta[0])
        raw_var = float(delta[2] / delta[0])
        return float(np.sqrt(max(raw_var - mean * mean, 0.0)))

    def as_dict(self) -> dnnlib.EasyDict:
        """`{name: {num, mean, std}}` for every collected name (the stats.jsonl record)."""
        stats = dnnlib.EasyDict()
        for name in self.names():
            stats[name] = dnnlib.EasyDict(num=self.num(name), mean=self.mean(name), std=self.std(name))
        return stats

    def __getitem__(self, name: str) -> float:
        return self.mean(name)

#----------------------------------------------------------------------------

def _sync(names: list[str]) -> list[tuple[str, torch.Tensor]]:
    """Cumulative moments for `names`, summed over devices and (if initialised) over ranks."""
    global _sync_called
    if len(names) == 0:
        return []
    _sync_called = True

    device = _sync_device if _sync_device is not None else torch.device("cpu")
    deltas = []
    for name in names:
        delta = torch.zeros([_num_moments], dtype=_counter_dtype, device=device)
        for counter in _counters[name].values():
            delta.add_(counter.to(device))
            counter.zero_()
        deltas.append(delta)
    deltas = torch.stack(deltas)

    if _sync_device is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(deltas)

    deltas = deltas.cpu()
    for idx, name in enumerate(names):
        if name not in _cumulative:
            _cumulative[name] = torch.zeros([_num_moments], dtype=_counter_dtype)
        _cumulative[name].add_(deltas[idx])
    return [(name, _cumulative[name]) for name in names]

"""Improved precision and recall (Kynkaanniemi et al. 2019, "Improved precision and recall metric for
assessing generative models") in VGG16 feature space.

Each feature set approximates its manifold by balls around its samples, each ball's radius the distance
to the sample's k-th nearest neighbour in the same set (k = `nhood_size`, itself not counted).
Precision is the fraction of generated samples inside the real manifold; recall the fraction of real
samples inside the generated manifold. Distances are Euclidean, computed in row x column blocks
(`row_batch_size` x `col_batch_size`) so memory stays bounded; rows are shared out across the ranks.
"""

from __future__ import annotations

import numpy as np
import torch

from . import metric_utils

#----------------------------------------------------------------------------

def _row_blocks(n: int, row_batch_size: int, num_gpus: int, rank: int) -> list[tuple[int, int]]:
    blocks = [(i, min(i + row_batch_size, n)) for i in range(0, n, row_batch_size)]
    return blocks[rank::num_gpus]


def knn_radii(features: torch.Tensor, nhood_size: int, row_batch_size: int, col_batch_size: int,
              num_gpus: int = 1, rank: int = 0) -> torch.Tensor:
    """Distance from every row of `features` [n, D] to its `nhood_size`-th nearest other row: [n]."""
    n = features.shape[0]
    k = min(nhood_size + 1, n)  # the sample itself is its own nearest neighbour at distance 0
    radii = torch.zeros([n], dtype=torch.float32, device=features.device)
    for lo, hi in _row_blocks(n, row_batch_size, num_gpus, rank):
        best = None  # the k smallest distances seen so far, per row
        for c in range(0, n, col_batch_size):
            d = torch.cdist(features[lo:hi], features[c:c + col_batch_size])
            best = d if best is None else torch.cat([best, d], dim=1)
            best = torch.topk(best, min(k, best.shape[1]), dim=1, largest=False).values
        radii[lo:hi] = best[:, -1]
    return metric_utils.all_reduce_sum(radii, num_gpus)


def manifold_coverage(manifold: torch.Tensor, radii: torch.Tensor, probes: torch.Tensor, row_batch_size: int,
                      col_batch_size: int, num_gpus: int = 1, rank: int = 0) -> float:
    """Fraction of `probes` [m, D] within distance radii[j] of some manifold[j] ([n, D], radii [n])."""
    m = probes.shape[0]
    inside = torch.zeros([m], dtype=torch.float32, device=probes.device)
    for lo, hi in _row_blocks(m, row_batch_size, num_gpus, rank):
        hit = torch.zeros([hi - lo], dtype=torch.bool, device=probes.device)
        for c in range(0, manifold.shape[0], col_batch_size):
            d = torch.cdist(probes[lo:hi], manifold[c:c + col_batch_size])
            hit |= (d <= radii[c:c + col_batch_size].unsqueeze(0)).any(dim=1)
        inside[lo:hi] = hit.float()
    inside = metric_utils.all_reduce_sum(inside, num_gpus)
    return float(inside.mean().item())


def precision_recall_from_features(real: np.ndarray, gen: np.ndarray, nhood_size: int = 3,
                                   row_batch_size: int = 10000, col_batch_size: int = 10000,
                                   device: torch.device | str = "cpu", num_gpus: int = 1,
                                   rank: int = 0) -> tuple[float, float]:
    """(precision, recall) of generated features `gen` [m, D] against real features `real` [n, D]."""
    real_t = torch.as_tensor(np.asarray(real, np.float32), device=device)
    gen_t = torch.as_tensor(np.asarray(gen, np.float32), device=device)
    args = dict(row_batch_size=row_batch_size, col_batch_size=col_batch_size, num_gpus=num_gpus, rank=rank)
    real_radii = knn_radii(real_t, nhood_size, **args)
    gen_radii = knn_radii(gen_t, nhood_size, **args)
    precision = manifold_coverage(real_t, real_radii, gen_t, **args)
    recall = manifold_coverage(gen_t, gen_radii, real_t, **args)
    return precision, recall


def compute_pr(opts: metric_utils.MetricOptions, max_real: int | None, num_gen: int, nhood_size: int = 3,
               row_batch_size: int = 10000, col_batch_size: int = 10000) -> tuple[float, float]:
    """Precision and recall of `num_gen` generated images against `max_real` real ones (VGG16 features)."""
    url = opts.vgg16
    kwargs = dict(return_features=True)
    real = metric_utils.dataset_features(opts, url, kwargs, max_items=max_real, keep_all=True, flag="--vgg16")
    gen = metric_utils.generator_features(opts, url, kwargs, num_gen=num_gen, keep_all=True, flag="--vgg16")
    return precision_recall_from_features(real.get_all(), gen.get_all(), nhood_size=nhood_size,
                                          row_batch_size=row_batch_size, col_batch_size=col_batch_size,
                                          device=opts.device, num_gpus=opts.num_gpus, rank=opts.rank)

#----------------------------------------------------------------------------

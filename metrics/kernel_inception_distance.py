"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased estimate of
the squared maximum mean discrepancy between real and generated Inception features under the cubic
polynomial kernel k(x, y) = (x . y / D + 1)^3, averaged over random subsets.

Published protocol: 100 subsets of m = min(#real, #generated, 1000) features drawn without replacement
from each set; the metric is the mean of the per-subset estimates.
"""

from __future__ import annotations

import numpy as np

from . import metric_utils

#----------------------------------------------------------------------------

def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x_i, y_j) = (x_i . y_j / D + 1)^3 for x [n, D], y [m, D] -> [n, m] (float64)."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD of two equal-size samples x, y [m, D] under `polynomial_kernel`:
    mean of k over distinct pairs within x and within y, minus twice the mean of k across x and y."""
    m = x.shape[0]
    assert y.shape[0] == m and m >= 2
    kxx = polynomial_kernel(x, x)
    kyy = polynomial_kernel(y, y)
    kxy = polynomial_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2 * kxy.mean())


def kid_from_features(real: np.ndarray, gen: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000,
                      seed: int = 0) -> float:
    """KID of feature sets real [n_r, D] and gen [n_g, D]: the mean unbiased MMD^2 over `num_subsets`
    subsets of size min(n_r, n_g, max_subset_size), each drawn without replacement."""
    real = np.asarray(real, np.float64)
    gen = np.asarray(gen, np.float64)
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least two real and two generated images")
    rng = np.random.RandomState(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        total += mmd2_unbiased(x, y)
    return total / num_subsets


def compute_kid(opts: metric_utils.MetricOptions, max_real: int | None, num_gen: int, num_subsets: int = 100,
                max_subset_size: int = 1000) -> float:
    """KID between real and generated Inception features (rank 0 returns the value; others NaN)."""
    url = opts.inception
    kwargs = dict(return_features=True)
    real = metric_utils.dataset_features(opts, url, kwargs, max_items=max_real, keep_all=True, flag="--inception")
    gen = metric_utils.generator_features(opts, url, kwargs, num_gen=num_gen, keep_all=True, flag="--inception")
    if not opts.is_leader:
        return float("nan")
    return kid_from_features(real.get_all(), gen.get_all(), num_subsets=num_subsets,
                             max_subset_size=max_subset_size, seed=opts.seed)

#----------------------------------------------------------------------------

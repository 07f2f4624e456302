"""Frechet Inception Distance (Heusel et al. 2017, "GANs trained by a two time-scale update rule
converge to a local Nash equilibrium"): the Frechet distance between two Gaussians fitted to the
Inception-v3 pool features (2048-d) of real and generated images,

    FID = |mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)),

with the matrix square root taken by `scipy.linalg.sqrtm`.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.linalg

from . import metric_utils

log = logging.getLogger(__name__)

#----------------------------------------------------------------------------

def _sqrtm(a: np.ndarray) -> np.ndarray:
    """scipy's matrix square root; its singular/ill-conditioned warnings go to the log."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(a)
    for w in caught:
        log.warning("FID: %s", w.message)
    return root


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance of N(mu1, sigma1) and N(mu2, sigma2); mu [D], sigma [D, D] (float64)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root = _sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(root)):
        # A singular product (fewer images than feature dimensions): regularise both covariances slightly.
        eps = 1e-6 * np.eye(sigma1.shape[0])
        log.warning("FID: singular covariance product; adding %g to the diagonal", eps[0, 0])
        root = _sqrtm((sigma1 + eps) @ (sigma2 + eps))
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(np.real(root)))
    return value


def compute_fid(opts: metric_utils.MetricOptions, max_real: int | None, num_gen: int) -> float:
    """FID between `max_real` real images (all when None) and `num_gen` generated ones (rank 0 returns the
    value; the other ranks return NaN)."""
    url = opts.inception
    kwargs = dict(return_features=True)
    real = metric_utils.dataset_features(opts, url, kwargs, max_items=max_real, keep_moments=True, flag="--inception")
    gen = metric_utils.generator_features(opts, url, kwargs, num_gen=num_gen, keep_moments=True, flag="--inception")
    if not opts.is_leader:
        return float("nan")
    mu_r, sigma_r = real.get_mean_cov()
    mu_g, sigma_g = gen.get_mean_cov()
    return frechet_distance(mu_r, sigma_r, mu_g, sigma_g)

#----------------------------------------------------------------------------

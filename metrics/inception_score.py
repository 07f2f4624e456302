"""Inception Score (Salimans et al. 2016, "Improved techniques for training GANs"):
exp(E_x KL(p(y|x) || p(y))) over the 1008-way softmax of the Inception-v3 detector, computed on each of
`num_splits` equal parts of the generated images; the metric reports the mean and standard deviation
over the parts.
"""

from __future__ import annotations

import numpy as np

from . import metric_utils

#----------------------------------------------------------------------------

def inception_score_from_probs(probs: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """(mean, std) of the Inception Score over `num_splits` consecutive parts of probs [N, classes]."""
    probs = np.asarray(probs, np.float64)
    n = probs.shape[0]
    if n < num_splits:
        raise ValueError(f"IS needs at least {num_splits} images (one per split)")
    scores = []
    for i in range(num_splits):
        part = probs[i * n // num_splits:(i + 1) * n // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def compute_is(opts: metric_utils.MetricOptions, num_gen: int, num_splits: int = 10) -> tuple[float, float]:
    """(mean, std) of the Inception Score of `num_gen` generated images (rank 0; others NaN)."""
    kwargs = dict(no_output_bias=True)  # the detector then returns softmax probabilities [N, 1008]
    gen = metric_utils.generator_features(opts, opts.inception, kwargs, num_gen=num_gen, keep_all=True,
                                          flag="--inception")
    if not opts.is_leader:
        return float("nan"), float("nan")
    return inception_score_from_probs(gen.get_all(), num_splits=num_splits)

#----------------------------------------------------------------------------

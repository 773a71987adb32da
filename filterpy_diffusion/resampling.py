"""Resampling schemes: plain functions ``f(weights, rng) -> indices``.

Our own, used by the particle filter and by exact mixture sampling
(filterpy's ``residual_resample`` is biased, filterpy issue #290). Each is
unbiased: member i gets ``n w_i`` offspring in expectation.
"""
import numpy as np

__all__ = ["systematic_resample", "stratified_resample", "multinomial_resample",
           "residual_resample"]


def _normalised(weights):
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w}")
    w = w / w.max()         # so that the sum cannot overflow
    return w / w.sum()


def _cumulative_weights(weights):
    """Cumulative sum of the weights scaled so its last entry is exactly 1.0."""
    c = np.cumsum(_normalised(weights))
    # Dividing by the total (rather than trusting normalised weights to sum
    # to 1) makes every entry from the last positive weight on exactly 1.0
    # and keeps c sorted: no uniform in [0, 1) can fall past the end, and
    # trailing zero-weight members own no sliver of [0, 1).
    return c / c[-1]


def _invert(c, u):
    """Member ``i`` with ``c[i-1] <= u < c[i]``; zero-weight members own an empty interval."""
    idx = np.searchsorted(c, u, side="right")
    # (k + u) / N with u just below 1 can round up to exactly 1.0; that
    # position belongs to the last member with weight.
    return np.minimum(idx, np.searchsorted(c, 1.0, side="left"))


def systematic_resample(weights, rng, n=None):
    """Systematic resampling: one uniform shifted over n evenly spaced points.

    Parameters
    ----------
    weights : ndarray (N,)
        Non-negative weights (normalised here).
    rng : numpy.random.Generator
    n : int, optional
        Number of draws (default N).

    Returns
    -------
    indices : ndarray (n,) of int
        Sorted. Member i gets ``floor(n w_i)`` or ``ceil(n w_i)`` offspring,
        ``n w_i`` on average.
    """
    c = _cumulative_weights(weights)
    n = c.size if n is None else int(n)
    return _invert(c, (rng.random() + np.arange(n)) / n)


def stratified_resample(weights, rng):
    """Stratified resampling: one uniform in each of N equal strata of [0, 1).

    Parameters
    ----------
    weights : ndarray (N,)
        Non-negative weights (normalised here).
    rng : numpy.random.Generator

    Returns
    -------
    indices : ndarray (N,) of int
        Sorted; member i gets ``N w_i`` offspring on average.
    """
    c = _cumulative_weights(weights)
    N = c.size
    return _invert(c, (rng.random(N) + np.arange(N)) / N)


def multinomial_resample(weights, rng, n=None):
    """Multinomial resampling: n independent draws from the weights.

    Parameters
    ----------
    weights : ndarray (N,)
        Non-negative weights (normalised here).
    rng : numpy.random.Generator
    n : int, optional
        Number of draws (default N).

    Returns
    -------
    indices : ndarray (n,) of int
        Sorted (the uniforms are sorted first, which changes nothing in
        distribution); member i gets ``n w_i`` offspring on average.
    """
    c = _cumulative_weights(weights)
    return _invert(c, np.sort(rng.random(c.size if n is None else int(n))))


def residual_resample(weights, rng):
    """Residual resampling: ``floor(N w_i)`` copies, the rest multinomially.

    The remaining ``R = N - sum floor(N w_i)`` offspring are drawn from the
    residual weights ``(N w_i - floor(N w_i)) / R``, which keeps the expected
    count at exactly ``N w_i``.

    Parameters
    ----------
    weights : ndarray (N,)
        Non-negative weights (normalised here).
    rng : numpy.random.Generator

    Returns
    -------
    indices : ndarray (N,) of int
        Sorted.
    """
    w = _normalised(weights)
    N = w.size
    Nw = N * w
    counts = np.floor(Nw).astype(np.intp)
    rest = N - int(counts.sum())
    if rest > 0:
        extra = _invert(_cumulative_weights(Nw - counts), np.sort(rng.random(rest)))
        counts += np.bincount(extra, minlength=N)
    return np.repeat(np.arange(N), counts)

"""Resampling: index schemes ``f(weights, rng) -> indices`` and regularised resampling.

The schemes are our own, used by the particle filter, the bridge and exact
mixture sampling (filterpy's ``residual_resample`` is biased, filterpy issue
#290). Each is unbiased: member i gets ``n w_i`` offspring in expectation.

:func:`jitter_duplicates` is the one regularisation step (Musso, Oudjane and
Le Gland 2001; DAPPER's ``PartFilt(reg=)``): the copies of a member drawn
more than once get Gaussian noise shaped by the weighted covariance, so a
deterministic model does not collapse the ensemble onto a few particles.
:func:`regularised_resample` is resampling plus that step with Scott's
factor for the weights' effective sample size (the bridge's rule); the
particle filter calls :func:`jitter_duplicates` with its own factor.

Examples
--------
>>> import numpy as np
>>> from filterpy_diffusion.resampling import systematic_resample
>>> w = np.array([0.5, 0.0, 0.25, 0.25])     # n w = 2, 0, 1, 1: exact for systematic
>>> systematic_resample(w, np.random.default_rng(0)).tolist()
[0, 0, 2, 3]
"""
from __future__ import annotations

import numbers
from typing import Callable, Optional

import numpy as np
import numpy.typing as npt

from ._validation import RngLike, as_covariance, as_ensemble, as_generator, psd_factor
from .bandwidth import scott_factor
from .weights import (_normalised, check_log_weights, effective_sample_size, normalise_weights,
                      weighted_anomaly_factor)

__all__ = ["systematic_resample", "stratified_resample", "multinomial_resample",
           "residual_resample", "inverse_cdf_rows", "jitter_factor", "jitter_duplicates", "regularised_resample"]


def _cumulative_weights(weights):
    """Cumulative sum of the weights scaled so its last entry is exactly 1.0."""
    c = np.cumsum(normalise_weights(weights))
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


def systematic_resample(weights: npt.ArrayLike, rng: np.random.Generator,
                        n: Optional[int] = None) -> np.ndarray:
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


def stratified_resample(weights: npt.ArrayLike, rng: np.random.Generator) -> np.ndarray:
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


def multinomial_resample(weights: npt.ArrayLike, rng: np.random.Generator,
                         n: Optional[int] = None) -> np.ndarray:
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


def residual_resample(weights: npt.ArrayLike, rng: np.random.Generator) -> np.ndarray:
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
    w = normalise_weights(weights)
    N = w.size
    Nw = N * w
    counts = np.floor(Nw).astype(np.intp)
    rest = N - int(counts.sum())
    if rest > 0:
        extra = _invert(_cumulative_weights(Nw - counts), np.sort(rng.random(rest)))
        counts += np.bincount(extra, minlength=N)
    return np.repeat(np.arange(N), counts)


def inverse_cdf_rows(log_w: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse CDF of every row of log weights (d, N) at the uniforms u (d, n).

    The batched form of the schemes' inversion, for many independent
    weight vectors (the local filter's domains): entry ``[j, k]`` is the
    member ``i`` with ``c_j[i-1] <= u[j, k] < c_j[i]``, ``c_j`` the
    normalised cumulative weights of row j; zero-weight members own an
    empty interval. One ``searchsorted`` for all rows: row j's CDF is
    shifted to [j, j + 1], which keeps the concatenation sorted.

    Examples
    --------
    >>> import numpy as np
    >>> from filterpy_diffusion.resampling import inverse_cdf_rows
    >>> lw = np.log([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])    # CDFs .5 .75 1 and .1 .2 1
    >>> inverse_cdf_rows(lw, np.array([[0.2, 0.7], [0.15, 0.5]])).tolist()
    [[0, 1], [1, 2]]
    """
    d, N = log_w.shape
    c = np.cumsum(np.exp(log_w), axis=1)
    c /= c[:, -1:]
    # Zero-weight members own an empty interval; u just below 1 may pass the
    # last positive weight by rounding, so clamp to it.
    last = np.argmax(c >= 1.0, axis=1)
    off = np.arange(d)[:, None]
    idx = np.searchsorted((c + off).ravel(), (np.minimum(u, 1.0) + off).ravel(), side="right")
    return np.minimum(idx.reshape(u.shape) - off * N, last[:, None])


# ---------------------------------------------------------------- regularisation
def jitter_factor(n_eff: float, dim: int) -> float:
    """Scott's factor ``n_eff^(-1 / (dim + 4))``: kernel sd in units of the covariance.

    The rule-of-thumb bandwidth of a Gaussian kernel density estimate from
    ``n_eff`` points in ``dim`` dimensions; it vanishes as ``n_eff`` grows
    (the regularisation bias of the particle filter goes to zero).
    """
    if not (np.isfinite(n_eff) and n_eff >= 1):
        raise ValueError(f"n_eff must be >= 1, got {n_eff!r}")
    if not (isinstance(dim, numbers.Integral) and dim >= 1):
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    return scott_factor(n_eff, dim)


def jitter_duplicates(X: np.ndarray, w: np.ndarray, idx: np.ndarray, h: float,
                      rng: np.random.Generator, shrink: bool = False,
                      labels: Optional[np.ndarray] = None,
                      process_noise: Optional[np.ndarray] = None) -> tuple[np.ndarray, int]:
    """``X[idx]`` with noise ``N(0, h^2 C_w)`` on every member drawn more than once.

    ``C_w`` is the weighted covariance of ``X`` before resampling (unbiased,
    ``1 / (1 - sum w^2)``). If one member holds all the weight (``1 - sum
    w^2 <= 1e-12``, so ``C_w`` is 0 up to rounding) the unweighted
    covariance is used instead, as DAPPER's ``PartFilt`` does: the jitter
    must not vanish exactly when the ensemble has collapsed. Members drawn
    once are kept as they are.

    Parameters
    ----------
    X : ndarray (N, dim_x)
        Members before resampling.
    w : ndarray (N,)
        Their normalised weights.
    idx : ndarray (n,) of int
        Resampled indices into ``X``.
    h : float >= 0
        Jitter factor (standard deviation in units of ``C_w``'s).
    rng : numpy.random.Generator
    shrink : bool, default False
        First draw the jittered copies towards the weighted mean ``m_w``,
        ``m_w + sqrt(1 - h^2) (x - m_w)`` (Liu and West 2001), so that the
        jitter keeps their covariance at ``C_w`` instead of inflating it by
        ``1 + h^2``.
    labels : ndarray (N,) of int, optional
        Modes of ``X`` (:func:`~filterpy_diffusion.clustering.split_ensemble`):
        each copy is jittered with the weighted covariance (and shrunk
        towards the weighted mean) of its own mode, so that the noise never
        blurs two separated modes into one. None: one mode.
    process_noise : ndarray (dim_x, dim_x), optional
        The covariance ``Q`` of the noise the next forecast adds to every
        member. The copies then get ``N(0, (h^2 C_w - Q)_+)`` (the positive
        semi-definite part): the forecast separates copies of one member
        by ``Q`` anyway, and the jitter supplies only the rest of the
        kernel, where the whole ``h^2 C_w`` on top of ``Q`` would widen the
        ensemble by more than the kernel does. None: the whole kernel.

    Returns
    -------
    X_new : ndarray (n, dim_x)
    n_jittered : int
        Number of rows that got noise.
    """
    N, d = X.shape
    Xn = X[idx]
    dup = np.bincount(idx, minlength=N)[idx] > 1
    n_dup = int(dup.sum())
    if not n_dup:
        return Xn, 0
    labels = None if labels is None else np.asarray(labels)
    if labels is None or labels.max() == 0:
        Xn[dup] = _jittered(X, w, Xn[dup], h, rng, shrink, process_noise)
        return Xn, n_dup
    for k in range(int(labels.max()) + 1):
        rows = labels == k
        mine = dup & rows[idx]
        if mine.any() and w[rows].sum() > 0:
            Xn[mine] = _jittered(X[rows], w[rows] / w[rows].sum(), Xn[mine], h, rng, shrink,
                                 process_noise)
    return Xn, n_dup


def _jittered(X, w, copies, h, rng, shrink, process_noise=None):
    """``copies`` plus ``N(0, h^2 C_w)`` noise, ``C_w`` the weighted covariance of ``X``.

    With ``process_noise`` ``Q``: ``N(0, (h^2 C_w - Q)_+)`` (:func:`jitter_duplicates`).
    """
    N, d = X.shape
    # Weighted anomalies C12 with C12^T C12 = C_w. Draw through the smaller
    # side: a (d, d) factor of C_w when d <= N, else G (n, N) @ C12.
    wc = w
    if not 1.0 - (w * w).sum() > 1e-12:     # one member holds all the weight
        wc = np.full(N, 1.0 / N)
    C12 = weighted_anomaly_factor(X, wc) if N > 1 else np.zeros((1, d))
    n = len(copies)
    if shrink:
        m = w @ X
        shrunk = m + np.sqrt(1.0 - h * h) * (copies - m)
    if process_noise is not None:
        # Q lives in state space: a (d, d) factor even when d > N. psd_factor
        # keeps the positive semi-definite part of the difference.
        rest = rng.standard_normal((n, d)) @ psd_factor(h * h * (C12.T @ C12) - process_noise).T
        return (shrunk if shrink else copies) + rest
    if d <= N:
        noise = rng.standard_normal((n, d)) @ psd_factor(C12.T @ C12).T
    else:
        noise = rng.standard_normal((n, N)) @ C12
    return (shrunk if shrink else copies) + h * noise


def regularised_resample(X: npt.ArrayLike, log_w: npt.ArrayLike, rng: RngLike,
                         resample: Callable[[np.ndarray, np.random.Generator], np.ndarray]
                         = systematic_resample, shrink: bool = False,
                         labels: Optional[np.ndarray] = None,
                         process_noise: Optional[npt.ArrayLike] = None) -> tuple[np.ndarray, dict]:
    """Resample a weighted ensemble to equal weights, jittering the copies.

    Indices from ``resample`` and, on every member drawn more than once,
    noise ``N(0, h^2 C_w)`` (:func:`jitter_duplicates`) with ``h`` Scott's
    factor for the weights' effective sample size (:func:`jitter_factor`).
    Equal weights return a copy (no draw).

    Parameters
    ----------
    X : ndarray (N, dim_x)
    log_w : ndarray (N,)
    rng : None, int or numpy.random.Generator
    resample : callable ``(weights, rng) -> indices``, default systematic
    shrink : bool, default False
        Shrink the jittered copies towards the weighted mean so that their
        covariance stays ``C_w`` (:func:`jitter_duplicates`).
    labels : ndarray (N,) of int, optional
        Modes of ``X``: each copy is jittered within its own mode.
    process_noise : ndarray (dim_x, dim_x), optional
        Symmetric PSD ``Q`` of the next forecast's noise: the copies get only
        the part of the kernel it does not supply (:func:`jitter_duplicates`).
        None or all zeros: the whole kernel.

    Returns
    -------
    X_new : ndarray (N, dim_x)
        Equally weighted.
    info : dict
        ``'indices'`` the resampled indices (None for equal weights),
        ``'h'`` the jitter factor, ``'n_jittered'``.

    Examples
    --------
    >>> import numpy as np
    >>> from filterpy_diffusion.resampling import regularised_resample
    >>> X = np.arange(8.0).reshape(4, 2)
    >>> Xn, info = regularised_resample(X, np.log([0.7, 0.1, 0.1, 0.1]), rng=0)
    >>> Xn.shape, info['indices'].tolist(), info['n_jittered']
    ((4, 2), [0, 0, 0, 3], 3)
    """
    X = as_ensemble(X, "X")
    log_w = check_log_weights(log_w, N=X.shape[0])
    return _regularised_resample(X, log_w, as_generator(rng), resample, shrink, labels,
                                 process_noise=_check_process_noise(process_noise, X.shape[1]))


def _check_process_noise(Q, dim):
    """``Q`` as a checked symmetric PSD ``(dim, dim)`` array, or None for None or all zeros."""
    if Q is None:
        return None
    Q = as_covariance(Q, "process_noise", dim)
    return Q if Q.any() else None


def _regularised_resample(X, log_w, rng, resample=systematic_resample, shrink=False,
                          labels=None, ess=None, process_noise=None):
    """:func:`regularised_resample` of a checked ``X``, ``log_w`` and Generator ``rng``.

    ``ess``: :func:`~filterpy_diffusion.weights.effective_sample_size` of
    ``log_w`` if the caller has it; ``process_noise``: checked
    (:func:`_check_process_noise`).
    """
    N, d = X.shape
    if (log_w == log_w[0]).all():
        return X.copy(), {'indices': None, 'h': 0.0, 'n_jittered': 0}
    h = jitter_factor(effective_sample_size(log_w) if ess is None else ess, d)
    w = _normalised(log_w)
    idx = np.asarray(resample(w, rng))
    Xn, n_dup = jitter_duplicates(X, w, idx, h, rng, shrink=shrink, labels=labels,
                                  process_noise=process_noise)
    return Xn, {'indices': idx, 'h': h, 'n_jittered': n_dup}

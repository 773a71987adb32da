"""Member weights: checks, normalisation, logsumexp and the effective sample size.

The one implementation of each, used by every filter and helper: weights are
``(N,)`` arrays, either linear (non-negative, not all zero) or log weights
(``-inf`` is a zero weight; NaN and ``+inf`` are errors). Log weights are
kept up to an additive constant; they are shifted by their maximum before
any ``exp``, so nothing overflows and the largest weight is exactly 1.

Examples
--------
>>> import numpy as np
>>> from filterpy_diffusion.weights import effective_sample_size, normalised_weights
>>> lw = np.log([1.0, 1.0, 2.0])
>>> normalised_weights(lw)
array([0.25, 0.25, 0.5 ])
>>> round(effective_sample_size(lw), 12)        # 1 / (0.25^2 + 0.25^2 + 0.5^2)
2.666666666667
>>> effective_sample_size(np.zeros(5))           # equal weights: exactly N
5.0
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import numpy.typing as npt

__all__ = ["logsumexp", "check_weights", "normalise_weights", "check_log_weights",
           "normalised_weights", "kish_ess", "effective_sample_size",
           "effective_sample_size_rows", "weighted_moments", "weighted_anomaly_factor"]


def logsumexp(a: np.ndarray) -> float:
    """``log(sum(exp(a)))`` of a 1-D array, stable; ``-inf`` if every entry is ``-inf``.

    Plain numpy: about 10x cheaper than ``scipy.special.logsumexp`` per call,
    which matters in per-update bookkeeping.

    Examples
    --------
    >>> import numpy as np
    >>> from filterpy_diffusion.weights import logsumexp
    >>> round(float(logsumexp(np.array([1000.0, 1000.0]))), 6)   # 1000 + log 2, no overflow
    1000.693147
    """
    a = np.asarray(a)
    m = a.max()
    if not np.isfinite(m):
        return m
    return m + np.log(np.exp(a - m).sum())


def check_weights(w: npt.ArrayLike, name: str = "weights", N: Optional[int] = None) -> np.ndarray:
    """Linear weights as a float array, or a ValueError saying what is wrong.

    Parameters
    ----------
    w : array_like (N,)
        Finite, non-negative, not all zero (need not sum to one).
    name : str
        Used in the error message.
    N : int, optional
        Required length; without it any non-empty 1-D array.

    Returns
    -------
    ndarray (N,)
    """
    w = np.asarray(w, dtype=float)
    if N is not None and w.shape != (N,):
        raise ValueError(f"{name} must have shape (N,) = ({N},) (one per member), got {w.shape}")
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
        raise ValueError(f"{name} must be finite, non-negative and not all zero, got {w}")
    return w


def normalise_weights(w: npt.ArrayLike, name: str = "weights",
                      N: Optional[int] = None) -> np.ndarray:
    """Checked linear weights (:func:`check_weights`) scaled to sum to one.

    Divided by their maximum first, so the sum cannot overflow.

    Returns
    -------
    ndarray (N,)
    """
    w = check_weights(w, name, N)
    w = w / w.max()
    return w / w.sum()


def check_log_weights(log_w: npt.ArrayLike, name: str = "log weights",
                      N: Optional[int] = None) -> np.ndarray:
    """Log weights as a float array, or a ValueError saying what is wrong.

    Parameters
    ----------
    log_w : array_like (N,)
        Log weights up to a constant; ``-inf`` is a zero weight, but not all
        of them may be ``-inf``; NaN and ``+inf`` are errors.
    name : str
        Used in the error message.
    N : int, optional
        Required length; without it any non-empty 1-D array.

    Returns
    -------
    ndarray (N,)
    """
    log_w = np.asarray(log_w, dtype=float)
    if log_w.ndim != 1 or log_w.size == 0 or (N is not None and log_w.size != N):
        want = f"(N,) = ({N},)" if N is not None else "(N,)"
        raise ValueError(f"{name} must have shape {want}, got {log_w.shape}")
    if np.isnan(log_w).any() or (log_w == np.inf).any():
        raise ValueError(f"{name} must not be NaN or +inf (-inf is a zero weight), got {log_w}")
    if not np.isfinite(log_w).any():
        raise ValueError(f"{name} are all -inf: every member has zero weight")
    return log_w


def normalised_weights(log_w: npt.ArrayLike) -> np.ndarray:
    """Weights ``w_i ∝ exp(log_w_i)`` summing to one, computed without overflow.

    Parameters
    ----------
    log_w : ndarray (N,)
        Log weights, up to a constant; ``-inf`` is a zero weight.

    Returns
    -------
    ndarray (N,)
    """
    return _normalised(check_log_weights(log_w))


def _normalised(log_w):
    # normalised_weights of checked log weights.
    w = np.exp(log_w - log_w.max())
    return w / w.sum()


def kish_ess(w: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w_i)^2 / sum w_i^2`` of linear weights.

    ``1 / sum w_i^2`` for normalised weights; taking the sum as it is (not
    normalising first) makes equal weights give exactly N.

    Parameters
    ----------
    w : ndarray (N,)
        Non-negative weights, not all zero (not checked: this is the inner
        loop of bandwidth and likelihood-fraction searches).

    Returns
    -------
    float
    """
    return float(w.sum() ** 2 / (w @ w))


def effective_sample_size(log_w: npt.ArrayLike) -> float:
    """Kish's effective sample size of the weights ``exp(log_w)``, from log weights.

    Between 1 (one member carries all the weight) and N (equal weights,
    exactly); unchanged by adding a constant to ``log_w``. The weights are
    shifted by their maximum (so the largest is 1) and :func:`kish_ess`
    takes over. All ``-inf`` (no member has any weight, e.g. a bandwidth
    search at a kernel so narrow that every log kernel underflows) gives 0:
    no effective member, below any target.

    Parameters
    ----------
    log_w : ndarray (N,)
        Log weights up to a constant; NaN or ``+inf`` is a ValueError.

    Returns
    -------
    float
    """
    log_w = np.asarray(log_w, dtype=float)
    if log_w.ndim != 1 or log_w.size == 0:
        raise ValueError(f"log weights must have shape (N,), got {log_w.shape}")
    m = log_w.max()
    if np.isnan(m) or m == np.inf or np.isnan(log_w).any():
        raise ValueError(f"log weights must not be NaN or +inf (-inf is a zero weight), "
                         f"got {log_w}")
    if m == -np.inf:
        return 0.0
    return kish_ess(np.exp(log_w - m))


def effective_sample_size_rows(log_w: np.ndarray) -> np.ndarray:
    """:func:`effective_sample_size` of every row of log weights (..., N) at once.

    The batched form for many domains (the local filter's): each row is
    shifted by its own maximum. Rows are not checked, and a row of all
    ``-inf`` gives NaN.

    Parameters
    ----------
    log_w : ndarray (..., N)

    Returns
    -------
    ndarray (...)

    Examples
    --------
    >>> import numpy as np
    >>> from filterpy_diffusion.weights import effective_sample_size_rows
    >>> effective_sample_size_rows(np.array([[0.0, 0.0, 0.0], [0.0, -np.inf, -np.inf]]))
    array([3., 1.])
    """
    w = np.exp(log_w - log_w.max(axis=-1, keepdims=True))
    return w.sum(-1) ** 2 / np.einsum('...i,...i->...', w, w)


def weighted_moments(X: np.ndarray, Y: Optional[np.ndarray], weights: npt.ArrayLike) -> tuple:
    """Weighted means, anomalies and (cross-)covariance of two ensembles over the same members.

    The one weighted covariance of the package (the filters' ``P`` and
    gain, the covariance kernel, the spread metric): the unbiased
    "reliability weights" estimate ``c(U, V) = sum_i w_i U_i V_i^T /
    (1 - sum_i w_i^2)`` with ``w`` normalised, zero when one member holds
    all the weight (``1 - sum w^2 = 0``).

    Parameters
    ----------
    X : ndarray (N, a)
    Y : ndarray (N, b) or None
        None: ``mean_y`` and ``B`` are None.
    weights : ndarray (N,)
        Non-negative weights, not all zero (not checked).

    Returns
    -------
    mean_x : ndarray (a,)
    mean_y : ndarray (b,)
    A : ndarray (N, a)
        ``X - mean_x``.
    B : ndarray (N, b)
        ``Y - mean_y``.
    cov : callable ``(U, V) -> ndarray``
        ``c(U, V)`` for anomalies ``U`` (N, p) and ``V`` (N, q).
    """
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    mx = w @ X
    my = None if Y is None else w @ Y
    denom = 1.0 - w @ w
    scale = 1.0 / denom if denom > 0 else 0.0

    def cov(U, V):
        return (U.T * w) @ V * scale
    return mx, my, X - mx, None if Y is None else Y - my, cov


def weighted_anomaly_factor(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``C12`` (N, a) with ``C12^T C12`` the covariance of :func:`weighted_moments`.

    ``C12_i = sqrt(w_i / (1 - sum w^2)) (x_i - mean_w)``: the same unbiased
    weighted covariance as a factor, for drawing ``N(0, C_w)`` noise
    through the smaller of its two sides (the particle-filter jitter).

    Parameters
    ----------
    X : ndarray (N, a)
    w : ndarray (N,)
        Normalised weights with ``sum w^2 < 1`` (not checked; one member
        holding all the weight has no weighted covariance, and the caller
        decides what to use instead).

    Returns
    -------
    ndarray (N, a)
    """
    return np.sqrt(w / (1.0 - (w * w).sum()))[:, None] * (X - w @ X)

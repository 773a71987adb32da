"""Benchmark scores (docs/benchmarks.md): RMSE, spread, exact 2-Wasserstein distance, lost track.

Ensembles are ``(N, dim)``; a 1-D ensemble may be given as ``(N,)``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment, linprog
from scipy.sparse import coo_matrix

from ._validation import as_ensemble
from .weights import check_weights, weighted_moments

__all__ = ["rmse", "spread", "wasserstein2", "lost_track"]

# n * m transport variables above which the unequal-size LP gets slow enough
# (tens of seconds, GBs for HiGHS) that it is almost surely a mistake
_MAX_LP_VARIABLES = 4_000_000


def _ensemble(a, name):
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    return as_ensemble(a, name)


def _weights(weights, N):
    if weights is None:
        return None
    w = check_weights(weights, "weights", N)
    return w / w.sum()


def _mean(X, w):
    return X.mean(axis=0) if w is None else w @ X


def rmse(ensemble: npt.ArrayLike, truth: npt.ArrayLike,
         weights: Optional[npt.ArrayLike] = None) -> float:
    """Root-mean-square error of the ensemble mean: ``sqrt(mean_j (mean_i x_ij - x_true_j)^2)``.

    Parameters
    ----------
    ensemble : ndarray (N, dim) or (N,) when dim == 1
    truth : ndarray (dim,)
    weights : ndarray (N,), optional
        Non-negative member weights (normalised here); the mean becomes
        ``sum_i w_i x_i``.

    Returns
    -------
    rmse : float
    """
    X = _ensemble(ensemble, "ensemble")
    t = np.asarray(truth, dtype=float)
    if t.ndim == 0:
        t = t.reshape(1)
    if t.shape != (X.shape[1],):
        hint = " (is the ensemble transposed?)" if t.shape == (X.shape[0],) else ""
        raise ValueError(f"truth must have shape ({X.shape[1]},) to match the ensemble {X.shape}, "
                         f"got {t.shape}{hint}")
    if not np.all(np.isfinite(t)):
        raise ValueError("truth must be finite (no NaN or inf)")
    w = _weights(weights, X.shape[0])
    return float(np.sqrt(np.mean((_mean(X, w) - t) ** 2)))


def spread(ensemble: npt.ArrayLike, weights: Optional[npt.ArrayLike] = None) -> float:
    """Ensemble spread ``sqrt(mean_j var_i x_ij)`` with the unbiased (ddof=1) variance.

    Parameters
    ----------
    ensemble : ndarray (N, dim) or (N,) when dim == 1, N >= 2
    weights : ndarray (N,), optional
        Non-negative member weights (normalised here). The variance is then
        the unbiased reliability-weighted one,
        ``sum_i w_i (x_i - m)^2 / (1 - sum_i w_i^2)``, which is ddof=1 for
        equal weights.

    Returns
    -------
    spread : float
    """
    X = _ensemble(ensemble, "ensemble")
    if X.shape[0] < 2:
        raise ValueError(f"spread needs at least 2 members, got {X.shape[0]}")
    w = _weights(weights, X.shape[0])
    if w is None:
        var = X.var(axis=0, ddof=1)
    else:
        if np.sum(w ** 2) >= 1.0:
            raise ValueError("weights put all mass on one member; the weighted variance is undefined")
        _, _, A, _, cov = weighted_moments(X, None, w)
        var = cov(A * A, np.ones((len(A), 1)))[:, 0]    # the diagonal only: O(N dim)
    return float(np.sqrt(np.mean(var)))


def wasserstein2(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Exact 2-Wasserstein distance between two point clouds with uniform weights.

    Parameters
    ----------
    a : ndarray (n, dim) or (n,) for dim == 1
    b : ndarray (m, dim) or (m,) for dim == 1

    Returns
    -------
    w2 : float
        ``sqrt(min_P sum_ij P_ij |a_i - b_j|^2)`` over couplings ``P`` with
        row sums ``1/n`` and column sums ``1/m``.

    Notes
    -----
    Solvers, both exact:

    * ``n == m``: the optimal coupling of two uniform empirical measures of
      equal size is a permutation (Birkhoff), so this is an assignment
      problem, solved by ``scipy.optimize.linear_sum_assignment`` on the
      squared-distance matrix ``|a|^2 + |b|^2 - 2 a b^T`` (clipped at 0).
      The cost of the optimal matching is then re-summed from the matched
      differences, so identical clouds give exactly 0. O(n^3) time.
    * ``n != m``: the transport linear program with ``n * m`` variables,
      solved by ``scipy.optimize.linprog(method='highs')``. Meant for small
      clouds; above 4e6 variables a ``ValueError`` is raised.
    """
    A = _ensemble(a, "a")
    B = _ensemble(b, "b")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"a and b must have the same dimension, got {A.shape} and {B.shape}")
    n, m = A.shape[0], B.shape[0]
    C = (np.sum(A ** 2, axis=1)[:, None] + np.sum(B ** 2, axis=1)[None, :]
         - 2.0 * A @ B.T)
    # the expansion can go slightly negative by cancellation
    np.maximum(C, 0.0, out=C)
    if n == m:
        r, c = linear_sum_assignment(C)
        return float(np.sqrt(np.mean(np.sum((A[r] - B[c]) ** 2, axis=1))))
    if n * m > _MAX_LP_VARIABLES:
        raise ValueError(f"unequal sizes n={n}, m={m} need a transport LP with {n * m} variables; "
                         "subsample to equal sizes (assignment) or to n * m <= 4e6")
    # variable P_ij at column i * m + j; rows 0..n-1 fix row sums, n..n+m-1 column sums
    i = np.repeat(np.arange(n), m)
    j = np.tile(np.arange(m), n)
    cols = np.arange(n * m)
    A_eq = coo_matrix((np.ones(2 * n * m), (np.concatenate([i, n + j]), np.concatenate([cols, cols]))),
                      shape=(n + m, n * m)).tocsr()
    b_eq = np.concatenate([np.full(n, 1.0 / n), np.full(m, 1.0 / m)])
    res = linprog(C.ravel(), A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"transport LP failed: {res.message}")
    return float(np.sqrt(max(res.fun, 0.0)))


def lost_track(rmse_values: npt.ArrayLike, threshold: Optional[float]) -> bool:
    """Whether a run has lost track: its time-mean RMSE exceeds ``threshold``.

    Parameters
    ----------
    rmse_values : ndarray (K,)
        RMSE per scored cycle.
    threshold : float or None
        None (no threshold for this problem) always gives False.

    Returns
    -------
    lost : bool
        A NaN or inf RMSE (a diverged filter) counts as lost when a threshold
        is given.
    """
    r = np.asarray(rmse_values, dtype=float)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"rmse_values must be a non-empty 1-D array, got shape {r.shape}")
    if threshold is None:
        return False
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be None or a non-negative number, got {threshold}")
    if not np.all(np.isfinite(r)):
        return True
    return bool(r.mean() > threshold)

"""Adaptive multiplicative inflation from innovation statistics."""
from __future__ import annotations

import numpy as np

from ._validation import is_singular

__all__ = ["LAMBDA_RANGE", "innovation_lambda"]

#: Range of the inflation estimate (applied as ``max(lam, 1)``): Miyoshi's
#: estimator from one innovation is noisy, and the clip keeps one outlier
#: from setting the running estimate (``Policy.inflation_range``).
LAMBDA_RANGE = (0.5, 10.0)
#: Prior variance of the running estimate of ``lambda = f^2`` per update
#: (Miyoshi 2011): how fast lambda may move.
LAMBDA_PRIOR_VAR = 0.1 ** 2


def _inflated(X, f, weights=None):
    """``X`` (n, d) with its anomalies about its (weighted) mean scaled by ``f``."""
    centre = X.mean(0) if weights is None else weights @ X / weights.sum()
    return centre + f * (X - centre)


def adaptive_factor(hz, z, R, lam_b, v_b=LAMBDA_PRIOR_VAR, lam_range=LAMBDA_RANGE):
    """The adaptive anomaly factor of one update and the new running estimate.

    Returns ``(f, lam)``: ``lam`` from :func:`innovation_lambda` with the
    prior ``(lam_b, v_b)``, and ``f = sqrt(max(lam, 1))``, the factor applied
    to the anomalies (never a deflation).
    """
    lam = innovation_lambda(hz, z, R, lam_b, v_b, lam_range)
    return float(np.sqrt(max(lam, 1.0))), lam


def innovation_lambda(hz: np.ndarray, z: np.ndarray, R: np.ndarray, lam_b: float,
                      v_b: float, lam_range: tuple = LAMBDA_RANGE) -> float:
    """Posterior mean of the variance inflation factor from one innovation (Miyoshi 2011).

    ``lam_o = (d^T R^-1 d - m) / tr(R^-1 HPH^T)`` with ``d = z - mean(hz)``
    and ``HPH^T`` the sample covariance of ``hz`` (N, m); its chi-square
    variance ``2/m ((lam_b tr + m) / tr)^2`` is combined with the Gaussian
    prior ``(lam_b, v_b)``. Kept in ``lam_range`` (default
    :data:`LAMBDA_RANGE`, [0.5, 10]); apply it as ``max(lam, 1)``.

    A singular R (noise-free components), or an R so small or large that
    these statistics overflow, uses the frame of the predicted innovation
    covariance ``S = lam_b HPH^T + R`` instead (:func:`_lambda_in_s_frame`):
    the same estimator for a scalar or isotropic ``HPH^T`` and R, and
    defined whenever S is, with the noise-free components exactly included.
    """
    m = hz.shape[1]
    dvec = z - hz.mean(0)
    Bm = hz - hz.mean(0)
    if is_singular(R):
        return _lambda_in_s_frame(Bm, dvec, R, lam_b, v_b, lam_range)
    with np.errstate(over="ignore", invalid="ignore"):
        Ri = np.linalg.inv(R)
        signal = np.trace(Ri @ (Bm.T @ Bm)) / (len(hz) - 1)
        if signal <= 0:
            return lam_b
        q = dvec @ Ri @ dvec
        lam_o = (q - m) / signal
        v_o = 2.0 / m * ((lam_b * signal + m) / signal) ** 2
        lam = (v_o * lam_b + v_b * lam_o) / (v_o + v_b)
    if not np.isfinite(lam):
        # An overflow in the R^-1 statistics (R near the float limits).
        return _lambda_in_s_frame(Bm, dvec, R, lam_b, v_b, lam_range)
    # Not clipped at 1: only applied as max(lam, 1), clipping would ratchet up on noise.
    return float(np.clip(lam, *lam_range))


def _lambda_in_s_frame(Bm, dvec, R, lam_b, v_b, lam_range=LAMBDA_RANGE):
    """The inflation estimate whitened by ``S = lam_b HPH^T + R`` (a pseudo-inverse on its range).

    ``q = d^T S^+ d`` has mean ``r = rank S`` and variance ``2 r`` at the
    prior mean ``lam_b`` and slope ``s = tr(S^+ HPH^T)`` in lambda, so
    ``lam_o = lam_b + (q - r) / s`` with variance ``2 r / s^2``; combined
    with the prior in a form that never divides by ``s`` (no overflow when
    the observations carry almost no information).
    """
    N = len(Bm)
    B = Bm.T @ Bm / (N - 1)
    S = lam_b * B + R
    ev, V = np.linalg.eigh(0.5 * (S + S.T))
    keep = ev > S.shape[0] * np.finfo(float).eps * max(ev.max(), 0.0)
    if not keep.any():
        return lam_b           # no spread and no noise: nothing to learn
    V, ev = V[:, keep], ev[keep]
    r = int(keep.sum())
    with np.errstate(over="ignore"):
        dw = (V.T @ dvec) / np.sqrt(ev)
        q = dw @ dw
    s = float(np.sum(np.einsum('ij,ik,kj->j', V, B, V) / ev))
    if not s > 0:
        return lam_b
    with np.errstate(over="ignore", invalid="ignore"):
        lam = lam_b + v_b * (q - r) * s / (2.0 * r + v_b * s * s)
    if np.isnan(lam):
        raise ValueError("adaptive inflation: the innovation statistics are undefined (NaN); "
                         "check z, hx and R for values near the float limits")
    return float(np.clip(lam, *lam_range))

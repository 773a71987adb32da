"""Adaptive multiplicative inflation from innovation statistics."""
import numpy as np


def innovation_lambda(hz, z, R, lam_b, v_b):
    """Posterior mean of the variance inflation factor from one innovation (Miyoshi 2011).

    ``lam_o = (d^T R^-1 d - m) / tr(R^-1 HPH^T)`` with ``d = z - mean(hz)``
    and ``HPH^T`` the sample covariance of ``hz`` (N, m); its chi-square
    variance ``2/m ((lam_b tr + m) / tr)^2`` is combined with the Gaussian
    prior ``(lam_b, v_b)``. Kept in [0.5, 10]; apply it as ``max(lam, 1)``.
    """
    m = hz.shape[1]
    dvec = z - hz.mean(0)
    Bm = hz - hz.mean(0)
    Ri = np.linalg.inv(R)
    signal = np.trace(Ri @ (Bm.T @ Bm)) / (len(hz) - 1)
    if signal <= 0:
        return lam_b
    lam_o = (dvec @ Ri @ dvec - m) / signal
    v_o = 2.0 / m * ((lam_b * signal + m) / signal) ** 2
    lam = (v_o * lam_b + v_b * lam_o) / (v_o + v_b)
    # Not clipped at 1: only applied as max(lam, 1), clipping would ratchet up on noise.
    return float(np.clip(lam, 0.5, 10.0))

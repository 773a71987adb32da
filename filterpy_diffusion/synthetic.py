"""A synthetic likelihood: ``hx`` and ``R`` estimated from a black-box simulator.

With ``k >= 2`` draws ``y_ij = simulate(x_i)`` per member, the member's mean
``ybar_i`` stands in for ``hx(x_i)`` and the scatter of the draws about it,
pooled over members and over every update, estimates the noise covariance
``R`` (Wood 2010's synthetic likelihood with a covariance shared by all
states: the noise is taken to be additive, with one covariance that depends
neither on ``x`` nor on time). A filter then runs its ``hx`` and ``R`` path
on ``(ybar_i, R (1 - 1/k))`` (:func:`averaged_noise_covariance`).

References
----------
.. [1] Wood, S. N. (2010). Statistical inference for noisy nonlinear
   ecological dynamic systems. Nature 466.
.. [2] Andrieu, C., Roberts, G. O. (2009). The pseudo-marginal approach for
   efficient Monte Carlo computations. Ann. Statist. 37.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["simulation_moments", "pooled_noise_covariance", "averaged_noise_covariance"]


def simulation_moments(Y: np.ndarray):
    """Per-member means of ``k`` simulations and the scatter about them.

    Parameters
    ----------
    Y : ndarray (k, N, m)
        ``Y[j, i]`` is the ``j``-th simulated measurement of member ``i``;
        ``k >= 2``.

    Returns
    -------
    mean : ndarray (N, m)
        ``ybar_i``, the mean of member ``i``'s draws.
    scatter : ndarray (m, m)
        ``sum_ij (y_ij - ybar_i)(y_ij - ybar_i)^T``.
    dof : int
        Its degrees of freedom, ``N (k - 1)``: ``E[scatter] = dof R`` for
        additive noise of covariance ``R``.
    """
    Y = np.asarray(Y, dtype=float)
    if Y.ndim != 3 or Y.shape[0] < 2 or Y.shape[1] < 1 or Y.shape[2] < 1:
        raise ValueError(f"Y must have shape (k, N, m) with k >= 2 simulations per member, "
                         f"got {Y.shape}")
    if not np.isfinite(Y).all():
        raise ValueError("Y must be finite")
    k, N, m = Y.shape
    mean = Y.mean(axis=0)
    D = (Y - mean).reshape(k * N, m)
    return mean, D.T @ D, N * (k - 1)


def pooled_noise_covariance(scatter: np.ndarray, dof: numbers.Real) -> np.ndarray:
    """The noise covariance from pooled scatter, shrunk towards its diagonal.

    ``R = (scatter + (m + 1) D) / (dof + m + 1)`` with ``D =
    diag(scatter) / dof``: the posterior mean of ``R`` under an
    inverse-Wishart prior of mean ``D`` (the noise components uncorrelated a
    priori, at the pooled variances) with ``2 m + 2`` degrees of freedom,
    worth ``m + 1`` draws. Why: a few updates of a small ensemble give fewer
    than ``m`` degrees of freedom, and the raw pooled covariance is then
    singular; the prior keeps it positive definite wherever every variance
    is positive, unbiased on the diagonal, and fades as ``dof`` grows.

    Parameters
    ----------
    scatter : ndarray (m, m)
        Symmetric positive semi-definite sum of outer products.
    dof : float > 0
        Its degrees of freedom.

    Returns
    -------
    ndarray (m, m)
        Symmetric; positive definite if every diagonal entry of ``scatter``
        is positive (a zero one is a noise-free component: its row and column
        are zero).
    """
    S = np.asarray(scatter, dtype=float)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or not np.isfinite(S).all():
        raise ValueError(f"scatter must be a finite square (m, m) matrix, got shape {S.shape}")
    if isinstance(dof, bool) or not isinstance(dof, numbers.Real) or not dof > 0:
        raise ValueError(f"dof must be a positive number, got {dof!r}")
    if (np.diag(S) < 0).any():
        raise ValueError("scatter must have a non-negative diagonal (a sum of outer products)")
    nu = S.shape[0] + 1.0
    R = (S + np.diag(nu * np.diag(S) / dof)) / (dof + nu)
    return 0.5 * (R + R.T)


def averaged_noise_covariance(R: np.ndarray, k: int) -> np.ndarray:
    """``R (1 - 1/k)``: the noise to add to the mean of ``k`` simulations.

    ``ybar_i = hx(x_i) + e_i`` with ``e_i ~ N(0, R / k)``, so with
    ``R_k = R (1 - 1/k)``:

    * ``cov(ybar) + R_k = cov(hx(x)) + R``: the innovation covariance, and
      so the Kalman gain, of the ensemble with ``hx`` and ``R``;
    * ``E_e[N(z; ybar_i, R_k)] = N(z; hx(x_i), R)``: for Gaussian noise the
      weight of a member is an unbiased estimate of its likelihood (the
      pseudo-marginal argument), noisier than the exact one;
    * ``ybar_i + N(0, R_k)`` is distributed as ``hx(x_i) + N(0, R)``.

    Parameters
    ----------
    R : ndarray (m, m)
    k : int >= 2

    Returns
    -------
    ndarray (m, m)
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
        raise ValueError(f"k must be an integer >= 2 simulations per member, got {k!r}")
    return np.asarray(R, dtype=float) * (1.0 - 1.0 / k)

"""Gaussian mixtures with a shared (diagonal-in-some-basis) covariance.

Every conditional density this package samples is of the form

    p_sigma(x) = sum_i w_i N(x; m_i, U diag(v + sigma^2) U^T)

with centres ``m_i`` (N, d), log weights, a per-coordinate variance ``v``
(scalar or (d,)) and an optional orthonormal basis ``U`` (d, d). The
isotropic KDE of the paper is ``U = I, v = sx^2``; the covariance-shaped
kernel is ``U, v`` from an eigendecomposition. ``sigma`` is the extra noise
level of the variance-exploding diffusion.

All densities are evaluated in the rotated frame ``u = U^T x``, where the
covariance is diagonal, so squared Mahalanobis distances are one matrix
product and a row softmax: O(M N d) time, O(chunk N) memory.
"""
import numpy as np
from scipy.special import logsumexp, softmax

from ._validation import as_generator

# Rows of query points processed at once: keeps each (chunk, N) block at
# about 32 MB of float64 whatever N is.
_BLOCK_ELEMENTS = 4_000_000


def _chunk_rows(n_points, n_components):
    return max(1, min(n_points, _BLOCK_ELEMENTS // max(n_components, 1)))


class GaussianMixture:
    """Mixture ``sum_i w_i N(m_i, U diag(v + sigma^2) U^T)``, noised to level sigma.

    Parameters
    ----------
    centres : ndarray (N, d)
        Component means ``m_i``.
    log_weights : ndarray (N,)
        Log of the (possibly unnormalised) component weights; normalised here
        with logsumexp. ``-inf`` entries are components with zero weight.
    var : float or ndarray (d,)
        Component variance per coordinate of the basis, before noising.
    basis : ndarray (d, d), optional
        Orthonormal basis ``U`` in which the covariance is diagonal; identity
        if omitted.

    Attributes
    ----------
    weights : ndarray (N,)
        Normalised weights.
    log_weights : ndarray (N,)
        Normalised log weights.
    """

    def __init__(self, centres, log_weights, var, basis=None):
        self.centres = np.asarray(centres, dtype=float)
        N, d = self.centres.shape
        lw = np.asarray(log_weights, dtype=float)
        self.log_weights = lw - logsumexp(lw)
        self.weights = np.exp(self.log_weights)
        self.var = np.broadcast_to(np.asarray(var, dtype=float), (d,)).copy()
        self.basis = None if basis is None else np.asarray(basis, dtype=float)
        self.dim = d
        # Work relative to the weighted centre of mass: translation invariance
        # of the maths, and it keeps |u|^2 + |m|^2 - 2 u.m from cancelling
        # catastrophically for data far from the origin.
        self._origin = self.weights @ self.centres
        self._c = self.to_frame(self.centres)

    # -- frames --------------------------------------------------------------
    def to_frame(self, x):
        """Coordinates ``u = U^T (x - origin)`` in which every component is diagonal."""
        x = x - self._origin
        return x if self.basis is None else x @ self.basis

    def from_frame(self, u):
        """Inverse of :meth:`to_frame`."""
        x = u if self.basis is None else u @ self.basis.T
        return x + self._origin

    def total_var(self, sigma):
        """Per-coordinate variance ``v + sigma^2`` of a component at noise level sigma."""
        return self.var + float(sigma) ** 2

    # -- core: posterior over components ------------------------------------
    def _responsibilities(self, u, tv):
        """Log of ``w_i N(u; c_i, diag tv)`` up to a constant per row, for a block u (M, d)."""
        s = 1.0 / np.sqrt(tv)
        us, cs = u * s, self._c * s
        d2 = (np.einsum('ij,ij->i', us, us)[:, None]
              + np.einsum('ij,ij->i', cs, cs)[None, :] - 2.0 * us @ cs.T)
        np.maximum(d2, 0.0, out=d2)
        return self.log_weights[None, :] - 0.5 * d2

    def _blocks(self, x):
        x = np.asarray(x, dtype=float)
        single = x.ndim == 1
        X = np.atleast_2d(x)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(
                f"x must have shape ({self.dim},) or (M, {self.dim}), got {x.shape}")
        return single, X

    def log_prob(self, x, sigma=0.0):
        """Log density ``log p_sigma(x)``; x (d,) or (M, d) -> float or (M,)."""
        single, X = self._blocks(x)
        tv = self.total_var(sigma)
        const = -0.5 * np.sum(np.log(2.0 * np.pi * tv))
        U = self.to_frame(X)
        out = np.empty(len(X))
        step = _chunk_rows(len(X), len(self._c))
        for a in range(0, len(X), step):
            out[a:a + step] = logsumexp(self._responsibilities(U[a:a + step], tv), axis=1)
        out += const
        return out[0] if single else out

    def denoise(self, x, sigma=0.0):
        """Posterior mean of the component centre given x: ``sum_i wbar_i(x) m_i``.

        This is the diffusion 'denoiser' D(x, sigma); the score is
        ``U diag(1/(v + sigma^2)) U^T (D - x)``.
        """
        single, X = self._blocks(x)
        D = self.from_frame(self.denoise_frame(self.to_frame(X), self.total_var(sigma)))
        return D[0] if single else D

    def denoise_frame(self, U, tv):
        """:meth:`denoise` for points already in the frame, with total variance tv."""
        out = np.empty_like(U)
        step = _chunk_rows(len(U), len(self._c))
        for a in range(0, len(U), step):
            r = softmax(self._responsibilities(U[a:a + step], tv), axis=1)
            out[a:a + step] = r @ self._c
        return out

    def score(self, x, sigma=0.0):
        """Gradient of ``log p_sigma`` at x; same shape as x."""
        single, X = self._blocks(x)
        tv = self.total_var(sigma)
        U = self.to_frame(X)
        G = (self.denoise_frame(U, tv) - U) / tv
        G = G if self.basis is None else G @ self.basis.T
        return G[0] if single else G

    def sample(self, n, rng=None, sigma=0.0):
        """Exact draws from ``p_sigma``: a component by weight, plus Gaussian noise.

        Returns ndarray (n, d).
        """
        rng = as_generator(rng)
        idx = pick_components(self.weights, n, rng)
        eps = rng.standard_normal((n, self.dim)) * np.sqrt(self.total_var(sigma))
        return self.centres[idx] + (eps if self.basis is None else eps @ self.basis.T)

    def mean(self):
        """Mixture mean ``sum_i w_i m_i`` (d,)."""
        return self._origin.copy()

    def cov(self, sigma=0.0):
        """Mixture covariance: component covariance plus the weighted spread of the centres."""
        c = self.centres - self._origin
        between = (c * self.weights[:, None]).T @ c
        B = np.eye(self.dim) if self.basis is None else self.basis
        return between + (B * self.total_var(sigma)) @ B.T


def pick_components(weights, n, rng):
    """Indices of n components drawn i.i.d. with probabilities ``weights``.

    Inverse-CDF on one cumulative sum with the last entry pinned to 1, so
    rounding in the weights can never select past the end.
    """
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    idx = np.searchsorted(cdf, rng.random(n), side='right')
    return np.minimum(idx, len(weights) - 1)

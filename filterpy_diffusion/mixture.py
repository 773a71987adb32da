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

The hot path (:meth:`GaussianMixture.denoise_frame`, one call per score
evaluation of a diffusion sampler) computes, for a block of query rows,

    l_ij = log w_j - |u_i - c_j|^2_tv / 2
         = [u_i / tv, -|u_i|^2_tv / 2, 1] . [c_j, 1, log w_j - |c_j|^2_tv / 2]

as ONE matrix product (the row and column terms ride along as extra
columns; for an isotropic kernel the centre-side factor is built once per
mixture and only the query side depends on the noise level),
exponentiates it in place, and gets numerator and denominator of
the softmax-weighted mean of the centres from a second product with
``[c_j, 1]``. Since ``log w_j <= 0`` and distances are non-negative,
``l_ij <= 0``: ``exp`` cannot overflow and no row-max pass is needed. Rows
whose denominator is so small that their largest terms could be subnormal
(a query point hundreds of kernel widths from every centre), or is not a
finite number, are recomputed with the max-shifted softmax, so the result
equals the straightforward computation to rounding. Components with zero
weight (log weight ``-inf``) contribute exactly nothing and are dropped.
"""
from __future__ import annotations

import inspect
import warnings
from typing import Optional, Union

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri
from scipy.stats import qmc

from ._validation import RngLike, as_generator
from .resampling import multinomial_resample, systematic_resample
from .weights import logsumexp

__all__ = ["GaussianMixture", "logsumexp", "pick_components", "sobol_min_bits",
           "stratified_normal"]

# scipy >= 1.15 takes the Generator as rng= (SPEC 7; seed= is deprecated
# there); 1.9-1.14 take it as seed=, and use it the same way.
_SOBOL_RNG_KEYWORD = "rng" if "rng" in inspect.signature(qmc.Sobol).parameters else "seed"

# Rows of query points processed at once: each (chunk, N) block holds at
# most this many float64 (8 MB) whatever N is.
_BLOCK_ELEMENTS = 1_000_000
# Below that cap, the block is sized to stay in a core's L2 cache between
# the product, the exp and the second product (1 MB), but has at least
# 6 d rows so the matrix products stay efficient. Measured on one core
# (denoise_frame, M = N): d = 3 about 1.4x and d = 10 about 1.2x faster
# than 8 MB blocks; d = 40 within 5%.
_CACHE_ELEMENTS = 131_072
_MIN_ROWS_PER_DIM = 6

# A row whose sum of exp(l_ij) is at least (number of components) * 2^-960
# has its largest term >= 2^-960, far above the subnormal range (2^-1022):
# every term that matters carries full precision.
_SAFE_ROW_SUM = 2.0 ** -960


def _chunk_rows(n_points, n_components, dim=None):
    cap = _BLOCK_ELEMENTS // max(n_components, 1)
    if dim is not None:
        cap = min(cap, max(_CACHE_ELEMENTS // max(n_components, 1), _MIN_ROWS_PER_DIM * dim))
    return max(1, min(n_points, cap))


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

    def __init__(self, centres: npt.ArrayLike, log_weights: npt.ArrayLike,
                 var: Union[float, npt.ArrayLike], basis: Optional[npt.ArrayLike] = None):
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
        # Fast path (denoise_frame, log_prob): only components of non-zero
        # weight, with their squared norms cached (the distance term
        # |c_j|^2_tv is then a rescaling per noise level when tv is
        # isotropic, else one matrix-vector product with cached squares).
        active = self.log_weights != -np.inf
        if active.all():
            self._ca, self._lwa = self._c, self.log_weights
        else:
            self._ca, self._lwa = self._c[active], self.log_weights[active]
        self._ca_norm2 = np.einsum('ij,ij->i', self._ca, self._ca)
        self._ca_sq = None       # built on first use (anisotropic tv)
        self._B_iso = None       # built on first use (isotropic tv)
        self._cov0 = None
        self._cov0_eigmax = None

    # -- frames --------------------------------------------------------------
    def to_frame(self, x: np.ndarray) -> np.ndarray:
        """Coordinates ``u = U^T (x - origin)`` in which every component is diagonal."""
        x = x - self._origin
        return x if self.basis is None else x @ self.basis

    def from_frame(self, u: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_frame`."""
        x = u if self.basis is None else u @ self.basis.T
        return x + self._origin

    def total_var(self, sigma: float) -> np.ndarray:
        """Per-coordinate variance ``v + sigma^2`` of a component at noise level sigma."""
        return self.var + float(sigma) ** 2

    # -- core: posterior over components ------------------------------------
    def _responsibilities(self, u, tv):
        """Log of ``w_i N(u; c_i, diag tv)`` up to a constant per row, for a block u (M, d).

        The straightforward (reference) computation over all components,
        used for the rows the fast path hands back.
        """
        inv = 1.0 / np.broadcast_to(np.asarray(tv, dtype=float), (self.dim,))
        ui = u * inv
        d2 = (np.einsum('ij,ij->i', ui, u)[:, None]
              + ((self._c * self._c) @ inv)[None, :] - 2.0 * ui @ self._c.T)
        np.maximum(d2, 0.0, out=d2)
        return self.log_weights[None, :] - 0.5 * d2

    def _augmented(self, U, tv):
        """The two factors of the one-product logits ``l = A @ B.T`` (see the module doc).

        ``B[:, :d + 1]`` is ``[c, 1]`` (for the second product). Isotropic tv
        (every coordinate the same, e.g. a scalar kernel): ``B = [c, 1, log w,
        |c|^2]`` is built once per mixture and ``A = [u / tv, -|u|^2 / (2 tv),
        1, -1 / (2 tv)]``. Otherwise ``B = [c, 1, log w - |c|^2_tv / 2]`` is
        built per call and ``A = [u / tv, -|u|^2_tv / 2, 1]``.
        """
        d = self.dim
        inv = 1.0 / np.broadcast_to(np.asarray(tv, dtype=float), (d,))
        iso = inv.min() == inv.max()
        A = np.empty((len(U), d + (3 if iso else 2)))
        np.multiply(U, inv[0] if iso else inv, out=A[:, :d])
        A[:, d] = np.einsum('ij,ij->i', A[:, :d], U)
        A[:, d] *= -0.5
        A[:, d + 1] = 1.0
        if iso:
            A[:, d + 2] = -0.5 * inv[0]
            if self._B_iso is None:
                B = np.empty((len(self._ca), d + 3))
                B[:, :d] = self._ca
                B[:, d] = 1.0
                B[:, d + 1] = self._lwa
                B[:, d + 2] = self._ca_norm2
                self._B_iso = B
            return A, self._B_iso
        if self._ca_sq is None:
            self._ca_sq = self._ca * self._ca
        B = np.empty((len(self._ca), d + 2))
        B[:, :d] = self._ca
        B[:, d] = 1.0
        np.multiply(self._ca_sq @ inv, -0.5, out=B[:, d + 1])
        B[:, d + 1] += self._lwa
        return A, B

    def _blocks(self, x):
        x = np.asarray(x, dtype=float)
        single = x.ndim == 1
        X = np.atleast_2d(x)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(
                f"x must have shape ({self.dim},) or (M, {self.dim}), got {x.shape}")
        return single, X

    def log_prob(self, x: npt.ArrayLike, sigma: float = 0.0) -> Union[float, np.ndarray]:
        """Log density ``log p_sigma(x)``; x (d,) or (M, d) -> float or (M,)."""
        single, X = self._blocks(x)
        tv = self.total_var(sigma)
        const = -0.5 * np.sum(np.log(2.0 * np.pi * tv))
        A, B = self._augmented(self.to_frame(X), tv)
        out = np.empty(len(X))
        step = _chunk_rows(len(X), len(B), self.dim)
        buf = np.empty((min(step, len(X)), len(B)))
        for a in range(0, len(X), step):
            L = buf[:len(A[a:a + step])]
            np.matmul(A[a:a + step], B.T, out=L)
            m = L.max(axis=1)
            L -= m[:, None]
            np.exp(L, out=L)
            out[a:a + step] = np.log(L.sum(axis=1)) + m
        out += const
        return out[0] if single else out

    def denoise(self, x: npt.ArrayLike, sigma: float = 0.0) -> np.ndarray:
        """Posterior mean of the component centre given x: ``sum_i wbar_i(x) m_i``.

        This is the diffusion 'denoiser' D(x, sigma); the score is
        ``U diag(1/(v + sigma^2)) U^T (D - x)``.
        """
        single, X = self._blocks(x)
        D = self.from_frame(self.denoise_frame(self.to_frame(X), self.total_var(sigma)))
        return D[0] if single else D

    def denoise_frame(self, U: npt.ArrayLike, tv: Union[float, np.ndarray]) -> np.ndarray:
        """:meth:`denoise` for points already in the frame, with total variance tv."""
        U = np.asarray(U, dtype=float)
        d, M = self.dim, len(U)
        out = np.empty((M, d))
        if M == 0:
            return out
        A, B = self._augmented(U, tv)
        Bc = B[:, :d + 1]                       # [c, 1]: numerator and denominator
        na = len(B)
        lo, hi = na * _SAFE_ROW_SUM, 2.0 * na   # l <= 0 up to rounding: sum <= na
        step = _chunk_rows(M, na, d)
        buf = np.empty((min(step, M), na))
        for a in range(0, M, step):
            Ab = A[a:a + step]
            E = buf[:len(Ab)]
            np.matmul(Ab, B.T, out=E)
            np.exp(E, out=E)
            nd = E @ Bc
            den = nd[:, d]
            ok = (den >= lo) & (den <= hi)
            if not ok.all():
                # Far from every centre (or non-finite input): the
                # straightforward max-shifted softmax for these rows.
                bad = np.flatnonzero(~ok)
                L = self._responsibilities(U[a + bad], tv)
                L -= L.max(axis=1, keepdims=True)
                np.exp(L, out=L)
                nd[bad] = np.concatenate(
                    [L @ self._c, L.sum(axis=1, keepdims=True)], axis=1)
                den = nd[:, d]
            np.divide(nd[:, :d], den[:, None], out=out[a:a + step])
        return out

    def score(self, x: npt.ArrayLike, sigma: float = 0.0) -> np.ndarray:
        """Gradient of ``log p_sigma`` at x; same shape as x."""
        single, X = self._blocks(x)
        tv = self.total_var(sigma)
        U = self.to_frame(X)
        G = self.denoise_frame(U, tv)
        G -= U
        G /= tv
        G = G if self.basis is None else G @ self.basis.T
        return G[0] if single else G

    def sample(self, n: int, rng: RngLike = None, sigma: float = 0.0, stratified: bool = True,
               ordered: bool = False) -> np.ndarray:
        """Exact draws from ``p_sigma``: a component by weight, plus Gaussian noise.

        With ``stratified=True`` (default) the set is spread more evenly
        than i.i.d. draws:
        components are chosen by systematic resampling (offspring counts
        ``floor`` or ``ceil`` of ``n w_i``) and the Gaussian noise comes from a
        scrambled Sobol sequence. A filter redraws its ensemble every cycle;
        with i.i.d. draws the share of members in each mode of a bimodal
        posterior random-walks (multinomial noise, variance p(1-p)/n per
        cycle) until a mode is lost, and stratification slows that drift.
        ``stratified=False`` gives plain i.i.d. draws.

        ``ordered=False`` (default) shuffles the chosen components, so every
        row is marginally an exact draw. ``ordered=True`` keeps them in
        component order and shuffles the noise rows instead (the same
        random draws): the set of draws is exactly the unordered one, in
        another row order. With systematic choice and ``n`` draws from
        ``n`` equally weighted components, row i comes from component i (a
        filter's member i stays member i, as in the EnKF). Shuffling the
        noise matters: member i would otherwise get Sobol point i every
        cycle, and the fixed strata make the ensemble more regular than a
        Gaussian sample.

        Returns ndarray (n, d).
        """
        rng = as_generator(rng)
        n = int(n)
        idx = pick_components(self.weights, n, rng, systematic=stratified, ordered=ordered)
        # The shuffle pick_components does unordered, applied to the noise.
        perm = np.argsort(rng.permutation(n)) if ordered else None
        if stratified:
            eps = stratified_normal(n, self.dim, rng)
        else:
            eps = rng.standard_normal((n, self.dim))
        if perm is not None:
            eps = eps[perm]
        eps *= np.sqrt(self.total_var(sigma))
        if self.basis is not None:
            eps = eps @ self.basis.T
        eps += self.centres[idx]
        return eps

    def mean(self) -> np.ndarray:
        """Mixture mean ``sum_i w_i m_i`` (d,)."""
        return self._origin.copy()

    def _between(self):
        # Weighted spread of the centres, computed once (the mixture is immutable).
        if self._cov0 is None:
            c = self.centres - self._origin
            self._cov0 = (c * self.weights[:, None]).T @ c
        return self._cov0

    def cov(self, sigma: float = 0.0) -> np.ndarray:
        """Mixture covariance: component covariance plus the weighted spread of the centres."""
        B = np.eye(self.dim) if self.basis is None else self.basis
        return self._between() + (B * self.total_var(sigma)) @ B.T

    def max_variance(self) -> float:
        """Largest eigenvalue of :meth:`cov` at sigma = 0 (computed once)."""
        if self._cov0_eigmax is None:
            self._cov0_eigmax = float(np.linalg.eigvalsh(self.cov()).max())
        return self._cov0_eigmax


def pick_components(weights: npt.ArrayLike, n: int, rng: np.random.Generator,
                    systematic: bool = False, ordered: bool = False) -> np.ndarray:
    """Indices of n components with probabilities ``weights``, in random order.

    Systematic resampling (component i gets ``floor`` or ``ceil`` of
    ``n w_i`` draws) or i.i.d. draws; see :mod:`filterpy_diffusion.resampling`.
    ``ordered=True``: sorted instead of shuffled (no draw for the shuffle).
    """
    draw = systematic_resample if systematic else multinomial_resample
    idx = draw(weights, rng, n)
    return idx if ordered else rng.permutation(idx)


def _totient(n):
    result, p, m = n, 2, n
    while p * p <= m:
        if m % p == 0:
            while m % p == 0:
                m //= p
            result -= result // p
        p += 1
    return result - result // m if m > 1 else result


def sobol_min_bits(d: int) -> int:
    """Bits a Sobol generator needs for its first d dimensions.

    Dimension 1 is the van der Corput sequence; the next ones take the
    primitive polynomials over GF(2) in order of degree, of which there are
    ``phi(2^s - 1) / s`` of degree s. The last dimension's degree is the
    minimum number of bits.
    """
    dims, s = 1, 0
    while dims < d:
        s += 1
        dims += _totient(2 ** s - 1) // s
    return s


def stratified_normal(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """n standard-normal vectors from a scrambled Sobol sequence, ndarray (n, d).

    Each point of an Owen-scrambled Sobol sequence (jittered within its
    finest cell) is uniform on the unit cube, so each row is exactly N(0, I); together they cover the space more
    evenly than i.i.d. draws. Above Sobol's dimension limit it falls back to
    i.i.d. draws.
    """
    if d > qmc.Sobol.MAXDIM:
        return rng.standard_normal((n, d))
    # Scrambling costs O(d bits^2): use only the bits n points can resolve
    # and fill each resulting cell of width 2^-bits with a uniform jitter,
    # which keeps every point exactly uniform. Dimension j's direction
    # numbers need at least as many bits as the degree of its primitive
    # polynomial; with fewer, scipy silently returns wrong points.
    bits = max(4, int(np.ceil(np.log2(max(n, 2)))) + 2, sobol_min_bits(d))
    with warnings.catch_warnings():
        # Balance is best at powers of two; any n is still a valid sample.
        warnings.simplefilter("ignore", UserWarning)
        # scipy spawns the engine's generator from rng's SeedSequence, so its
        # points would depend on how many children that sequence spawned
        # before, not on rng's state: a rewound or reset generator would draw
        # other points. Seed the engine from a draw of rng instead.
        engine_rng = np.random.default_rng(rng.integers(2 ** 63))
        u = qmc.Sobol(d, scramble=True, bits=bits, **{_SOBOL_RNG_KEYWORD: engine_rng}).random(n)
    u += rng.random((n, d)) * 2.0 ** -bits
    np.clip(u, 1e-300, 1.0 - np.finfo(float).epsneg, out=u)
    return ndtri(u)

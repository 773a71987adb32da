"""Closed-form conditional kernel density estimate p(x | z).

The joint density of (state, measurement) is modelled by a product-kernel KDE
over N simulated pairs ``(x_i, y_i)``,

    p(x, y) = 1/N sum_i N(x; x_i, sx^2 I) N(y; y_i, sy^2 I),

so conditioning on an observation z is exact:

    p(x | z)       = sum_i w_i N(x; x_i, sx^2 I),   w_i ∝ N(z; y_i, sy^2 I),
    p_sigma(x | z) = sum_i w_i N(x; x_i, (sx^2 + sigma^2) I),

where ``sigma`` is the extra noise of a variance-exploding diffusion. The
score of ``p_sigma`` is closed form, so a diffusion sampler needs no
training. Bandwidths may also be vectors (one per coordinate), which keeps
everything closed form and lets automatic rules scale each coordinate.

Three more kernels keep the same closed form (a Gaussian mixture with one
shared component covariance): :class:`CovarianceKDE` (covariance-shaped,
Liu-West shrunk), :class:`ClusteredKDE` (the same, fitted per cluster) and
:class:`EnKPFDensity` (the ensemble Kalman particle filter's mixture).
"""
from __future__ import annotations

import numbers

import numpy as np
import numpy.typing as npt
from scipy.special import logsumexp as _logsumexp

from ._validation import (as_bandwidth, as_covariance, as_ensemble, as_vector, is_singular,
                          magnitude_limit, triangular_solve)
from .clustering import bonferroni_normaltest
from .mixture import GaussianMixture
from .particle import gaussian_log_likelihood
from .weights import logsumexp, weighted_moments

__all__ = ["ConditionalKDE", "CovarianceKDE", "ClusteredKDE", "EnKPFDensity",
           "check_evidence_threshold", "monte_carlo_cluster_log_weights", "EVIDENCE_THRESHOLD",
           "EVIDENCES", "MIN_INFORMATIVE_LAM", "FAR_LOG_KERNEL"]

#: ClusteredKDE ignores cluster log-evidence differences below this many
#: standard errors (chosen on tuning seeds 0-2 of toy-abs and l63-z among
#: 1, 3, 5, 10 and 10^6: 10 scored about as well as never moving mass).
#: The filter's default is ``Policy.evidence_threshold``.
EVIDENCE_THRESHOLD = 10.0
#: How ClusteredKDE weighs its clusters (``evidence=``): ``'monte-carlo'``,
#: the members' own likelihoods; ``'gaussian'``, each cluster's Gaussian
#: evidence; ``'auto'``, the first wherever ``R`` (positive definite) and
#: the noise-free ``predictions`` are given.
EVIDENCES = ('auto', 'monte-carlo', 'gaussian')
#: EnKPFDensity.normality_pvalue tests directions whose forecast variance is at
#: least this multiple of the (whitened) noise variance.
MIN_INFORMATIVE_LAM = 0.1
#: Below this largest log kernel value every kernel weight underflows in
#: linear space (z is far from every component) and the rounding of the log
#: kernel itself, ~1e-16 of its magnitude, can exceed its differences between
#: members: the weights are then computed from those differences alone.
FAR_LOG_KERNEL = np.log(np.finfo(float).tiny)


def _log_prior(weights, N):
    """``log(N pi_i)`` of prior member weights ``pi`` (N,), or None when they are uniform.

    Uniform weights add nothing (so the uniform case is bit-identical to an
    unweighted KDE); zero weights give ``-inf``: that member's component has
    no mass.
    """
    if weights is None:
        return None
    w = np.asarray(weights, dtype=float)
    if w.shape != (N,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError(f"weights must be ({N},) finite, non-negative and not all zero "
                         f"(prior member weights), got {w if w.size < 20 else w.shape}")
    if np.all(w == w[0]):
        return None
    w = w / w.max()
    with np.errstate(divide="ignore"):
        return np.log(w / w.sum()) + np.log(N)


class _ConditionalDensity:
    """``log_prob`` and ``score`` of ``p_sigma(x | z)``, from ``conditional(z)``."""

    def log_prob(self, x: npt.ArrayLike, z: npt.ArrayLike, sigma: float = 0.0) -> np.ndarray:
        """Log of the normalised density ``p_sigma(x | z)``; x (d,) or (M, d) -> float or (M,)."""
        return self.conditional(z).log_prob(x, _check_sigma(sigma))

    def score(self, x: npt.ArrayLike, z: npt.ArrayLike, sigma: float = 0.0) -> np.ndarray:
        """Gradient in x of ``log p_sigma(x | z)``; same shape as x.

        For the covariance kernel this is
        ``sum_i wbar_i (S + sigma^2 I)^-1 (m_i - x)``.
        """
        return self.conditional(z).score(x, _check_sigma(sigma))


class _KernelWeights:
    """``log_kernel``, ``log_weights`` and ``weights`` from a class's ``log_kernel_at(z)`` and ``h``."""

    def log_kernel(self, z: npt.ArrayLike) -> np.ndarray:
        """Unnormalised log weights at the current bandwidth ``h``, ndarray (N,).

        Cached per (z, h): weights, mixture, marginal and the filter's checks
        all need it in one update.
        """
        key = (np.asarray(z, dtype=float).tobytes(), self.h)
        if key != getattr(self, '_kernel_key', None):
            self._kernel, self._kernel_key = self.log_kernel_at(z)(self.h), key
        return self._kernel

    def log_weights(self, z: npt.ArrayLike) -> np.ndarray:
        """Normalised log weights ``log w_i``, ndarray (N,).

        When z is far from every component (largest log kernel below
        :data:`FAR_LOG_KERNEL`), from the member-dependent part of the log
        kernel alone (``_log_kernel_offsets_at``), exact where the full log
        kernel has lost its differences to rounding or overflowed.
        """
        lk = self.log_kernel(z)
        if lk.max() < FAR_LOG_KERNEL:
            lk = self._log_kernel_offsets_at(z)(self.h)
        return lk - logsumexp(lk)

    def _component_log_weights(self, z):
        """Log weights for the mixture: the log kernel, or :meth:`log_weights` when z is far."""
        lk = self.log_kernel(z)
        return lk if lk.max() >= FAR_LOG_KERNEL else self.log_weights(z)

    def weights(self, z: npt.ArrayLike) -> np.ndarray:
        """Conditional component weights, ndarray (N,), summing to 1.

        The log kernel can be ~1e8 in magnitude when a covariance is nearly
        singular, so its rounding (~1e-8) survives the exponential; a final
        division by the sum (of already log-normalised, non-underflowing
        values) restores an exact probability vector.
        """
        w = np.exp(self.log_weights(z))
        return w / w.sum()


class _SharedCovarianceMixture:
    """``conditional(z)``: components ``centres(z)``, weights ``log_kernel(z)``, covariance S.

    S is given by ``S_eigvals`` and ``S_basis``; its eigenvalues are floored
    at 1e-12 of the largest so that the density stays proper where S is
    singular (the covariance kernel with N <= d, the EnKPF's rank-m kernel).
    """

    def conditional(self, z: npt.ArrayLike) -> GaussianMixture:
        """``p(x | z)`` as a :class:`GaussianMixture` (cached per z; reset by ``set_bandwidth``)."""
        z = as_vector(z, "z", self.dim_z)
        key = z.tobytes()
        if key != self._cache_key:
            lam = self.S_eigvals
            var = np.maximum(lam, 1e-12 * max(lam.max(), np.finfo(float).tiny))
            self._mixture = GaussianMixture(self.centres(z), self._component_log_weights(z), var,
                                            self.S_basis)
            self._cache_key = key
        return self._mixture


class ConditionalKDE(_ConditionalDensity):
    """Gaussian-kernel KDE of (state, measurement) pairs, conditioned on z.

    Parameters
    ----------
    states : ndarray (N, d)
        Ensemble of states ``x_i``.
    measurements : ndarray (N, m)
        Simulated measurements ``y_i``, one per state.
    sigma_x : float or ndarray (d,)
        Kernel bandwidth (standard deviation) in state space.
    sigma_y : float or ndarray (m,)
        Kernel bandwidth in measurement space.
    weights : ndarray (N,), optional
        Prior member weights ``pi_i`` (normalised here): the KDE is
        ``p(x, y) = sum_i pi_i N(x; x_i, sx^2) N(y; y_i, sy^2)``. None
        (or uniform) is ``pi_i = 1/N``; a zero weight removes the member.

    Attributes
    ----------
    N, dim_x, dim_z : int
        Ensemble size, state and measurement dimension.

    Examples
    --------
    A 1-D state seen through ``|x|``: the posterior given z = 1 has two modes.

    >>> import numpy as np
    >>> from filterpy_diffusion import ConditionalKDE
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(0.0, 1.5, size=(500, 1))
    >>> y = np.abs(x) + rng.normal(0.0, 0.1, size=(500, 1))
    >>> kde = ConditionalKDE(x, y, sigma_x=0.1, sigma_y=0.1)
    >>> w = kde.weights([1.0])
    >>> bool(abs(w.sum() - 1) < 1e-12), bool(w[x[:, 0] > 0].sum() > 0.3)
    (True, True)
    >>> g = kde.score(np.array([0.9]), [1.0])   # gradient of log p(x | z)
    """

    def __init__(self, states: npt.ArrayLike, measurements: npt.ArrayLike,
                 sigma_x: npt.ArrayLike, sigma_y: npt.ArrayLike,
                 weights: npt.ArrayLike | None = None):
        self.states = as_ensemble(states, "states")
        N, d = self.states.shape
        meas = np.asarray(measurements, dtype=float)
        if meas.ndim == 1 and d >= 1 and meas.shape[0] == N:
            meas = meas[:, None]
        self.measurements = as_ensemble(meas, "measurements")
        if self.measurements.shape[0] != N:
            raise ValueError(
                f"states and measurements must have the same number of rows (members); "
                f"got {N} states and {self.measurements.shape[0]} measurements")
        self.N, self.dim_x = N, d
        self.dim_z = self.measurements.shape[1]
        self.sigma_x = as_bandwidth(sigma_x, "sigma_x", d)
        self.sigma_y = as_bandwidth(sigma_y, "sigma_y", self.dim_z)
        self._log_prior = _log_prior(weights, N)
        self._cache_key = None
        self._mixture = None

    def log_kernel(self, z: npt.ArrayLike) -> np.ndarray:
        """Unnormalised log weights ``log(N pi_i) - |z - y_i|^2 / (2 sy^2)``, ndarray (N,)."""
        z = as_vector(z, "z", self.dim_z)
        r = (self.measurements - z) / self.sigma_y
        lk = -0.5 * np.einsum('ij,ij->i', r, r)
        return lk if self._log_prior is None else lk + self._log_prior

    def log_weights(self, z: npt.ArrayLike) -> np.ndarray:
        """Normalised log weights ``log w_i``, ndarray (N,). Never under- or overflows to NaN.

        When z is far from every ``y_i`` (largest log kernel below
        :data:`FAR_LOG_KERNEL`), relative to the nearest member ``j``:
        ``|r_i|^2 - |r_j|^2 = ((y_i - y_j) / sy) . (r_i + r_j)`` with ``r =
        (y - z) / sy``, which keeps the differences exact where ``|r|^2``
        itself is so large that its rounding exceeds them, or overflows.
        """
        z = as_vector(z, "z", self.dim_z)
        lk = self.log_kernel(z)
        if lk.max() >= FAR_LOG_KERNEL:
            return lk - logsumexp(lk)
        Y = self.measurements
        r = (Y - z) / self.sigma_y
        # The nearest member, by squared norms scaled so that they cannot overflow.
        scale = max(np.max(np.abs(r)), np.finfo(float).tiny)
        j = int(np.argmin(np.einsum('ij,ij->i', r / scale, r / scale)))
        for _ in range(2):
            with np.errstate(over="ignore", invalid="ignore"):
                lw = -np.einsum('ij,ij->i', (Y - Y[j]) / self.sigma_y, 0.5 * r + 0.5 * r[j])
            lw[j] = 0.0
            lw[np.isnan(lw)] = -np.inf     # inf - inf: farther than the float range resolves
            if lw.max() <= 0:
                break
            # Rounding of the scaled norms picked a member that is not the nearest.
            j = int(np.argmax(lw))
        if self._log_prior is not None:
            lw = lw + self._log_prior
        return lw - logsumexp(lw)

    def weights(self, z: npt.ArrayLike) -> np.ndarray:
        """Conditional component weights ``w_i ∝ pi_i N(z; y_i, sy^2 I)``, ndarray (N,), summing to 1."""
        w = np.exp(self.log_weights(z))
        return w / w.sum()

    def log_marginal(self, z: npt.ArrayLike) -> float:
        """Log of the KDE's measurement marginal ``p(z) = sum_i pi_i N(z; y_i, sy^2 I)``."""
        var = np.broadcast_to(self.sigma_y ** 2, (self.dim_z,))
        return float(logsumexp(self.log_kernel(z)) - np.log(self.N)
                     - 0.5 * np.sum(np.log(2 * np.pi * var)))

    def conditional(self, z: npt.ArrayLike) -> GaussianMixture:
        """The conditional density ``p(x | z)`` as a :class:`GaussianMixture` (cached per z)."""
        z = as_vector(z, "z", self.dim_z)
        key = z.tobytes()
        if key != self._cache_key:
            self._mixture = GaussianMixture(self.states, self.log_weights(z), self.sigma_x ** 2)
            self._cache_key = key
        return self._mixture



def _check_sigma(sigma):
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma (diffusion noise level) must be finite and >= 0, got {sigma}")
    if sigma > magnitude_limit(1):
        raise ValueError(f"sigma (diffusion noise level) must be at most {magnitude_limit(1):.2g}, got "
                         f"{sigma:.3g}: its square, the noise variance, would overflow")
    return sigma


class CovarianceKDE(_KernelWeights, _SharedCovarianceMixture, _ConditionalDensity):
    """Conditional KDE with a covariance-shaped kernel and Liu-West shrinkage.

    The joint (x, y) ensemble with mean ``mu`` and covariance ``C`` is
    modelled by ``sum_i 1/N N((x, y); c_i, h^2 C)`` with centres shrunk
    towards the mean, ``c_i = mu + a ((x_i, y_i) - mu)``, ``a = sqrt(1 - h^2)``,
    so the KDE has the ensemble's mean and covariance (``a^2 C + h^2 C = C``)
    instead of ``(1 + h^2) C``. Conditioning each Gaussian component on
    ``y = z`` is exact:

        K   = Cxy Cyy^-1                                  (ensemble gain)
        m_i = mu_x + a (x_i - mu_x) + K (z - mu_y - a (y_i - mu_y))
            = [mu_x + K (z - mu_y)] + a [(x_i - mu_x) - K (y_i - mu_y)]
        S   = h^2 (Cxx - K Cyx)
        w_i ∝ N(z; mu_y + a (y_i - mu_y), h^2 Cyy)

    i.e. the Kalman-updated mean plus shrunk perturbed-observation EnKF
    anomalies, each with the Kalman posterior covariance scaled by ``h^2``.
    As ``h -> 1`` the weights become uniform and the mixture is the
    Gaussian (EnKF) analysis; as ``h -> 0`` it becomes a particle filter
    with Kalman-shifted particles. For a Gaussian joint ensemble the
    conditional mean and covariance equal the Kalman update for every h.

    Parameters
    ----------
    states : ndarray (N, d)
    measurements : ndarray (N, m)
        Simulated (noisy) measurements ``y_i``.
    h : float in (0, 1)
        Bandwidth factor.
    R : ndarray (m, m), optional
        Known measurement noise covariance. With ``predictions``, the
        measurement block is ``Cyy = cov(hx(x_i)) + R`` and ``Cxy =
        cov(x_i, hx(x_i))``: invertible even when N <= m, and free of the
        sampling noise of the ``v_i``.
    predictions : ndarray (N, m), optional
        Noise-free ``hx(x_i)``, used with ``R``.
    shrink : bool, default True
        Liu-West shrinkage of the centres; without it the KDE's covariance
        is ``(1 + h^2) C``.
    weights : ndarray (N,), optional
        Prior member weights ``pi_i`` (normalised here): component i has
        weight ``pi_i`` instead of ``1/N``, and ``mu``, ``C`` (hence the
        gain and the shrinkage target) are the weighted moments of
        :func:`filterpy_diffusion.weights.weighted_moments`. None or
        uniform: the unweighted KDE.

    Notes
    -----
    Without ``R`` (e.g. a black-box stochastic simulator) ``Cyy`` is the
    sample covariance of the ``y_i`` plus a ridge of ``1e-8 * trace(Cyy) / m``
    so that it is invertible when N <= m; that regularisation is recorded
    in ``ridge``.
    """

    def __init__(self, states, measurements, h, R=None, predictions=None, shrink=True,
                 weights=None):
        X = as_ensemble(states, "states", min_rows=2)
        N, d = X.shape
        Y = as_ensemble(measurements, "measurements", min_rows=2)
        if Y.shape[0] != N:
            raise ValueError(
                f"states and measurements must have the same number of rows (members); "
                f"got {N} states and {Y.shape[0]} measurements")
        m = Y.shape[1]
        self.N, self.dim_x, self.dim_z = N, d, m
        self.states, self.measurements = X, Y
        self.mean_x, self.mean_y = X.mean(0), Y.mean(0)
        A = X - self.mean_x
        self.Cxx = A.T @ A / (N - 1)
        if R is not None and predictions is not None:
            P = as_ensemble(predictions, "predictions", dim=m)
            Bp = P - P.mean(0)
            self.Cxy = A.T @ Bp / (N - 1)
            self.Cyy = Bp.T @ Bp / (N - 1) + np.asarray(R, dtype=float)
            self.ridge = 0.0
            self.mean_prediction = P.mean(0)
            self._mean_prediction_cov = Bp.T @ Bp / ((N - 1) * N)
        else:
            B = Y - self.mean_y
            self.Cxy = A.T @ B / (N - 1)
            Cyy = B.T @ B / (N - 1)
            self.ridge = 1e-8 * max(np.trace(Cyy) / m, np.finfo(float).tiny)
            self.Cyy = Cyy + self.ridge * np.eye(m)
            self.mean_prediction = self.mean_y
            self._mean_prediction_cov = self.Cyy / N
        self._log_prior = _log_prior(weights, N)
        if self._log_prior is not None:
            # Prior member weights: the weighted moments replace the above.
            self._weighted_moments(X, Y, weights, R, predictions)
        self._Ly = self._cholesky_Cyy()
        self.K = np.linalg.solve(self.Cyy, self.Cxy.T).T
        S = self.Cxx - self.K @ self.Cxy.T
        lam, U = np.linalg.eigh(0.5 * (S + S.T))
        self._posterior_eigvals = np.maximum(lam, 0.0)   # of Cxx - K Cyx
        self.S_basis = U
        # Whitened simulated anomalies: the weights only need L^-1 (y_i - mu_y).
        self._by = triangular_solve(self._Ly, (Y - self.mean_y).T).T
        self.shrink = bool(shrink)
        self.set_bandwidth(h)

    def _weighted_moments(self, X, Y, weights, R, predictions):
        """Mean and covariance blocks weighted by the prior member weights."""
        m = Y.shape[1]
        w = np.asarray(weights, dtype=float) / np.sum(weights)
        self.mean_x, self.mean_y, A, B, cov = weighted_moments(X, Y, w)
        self.Cxx = cov(A, A)
        if R is not None and predictions is not None:
            P = as_ensemble(predictions, "predictions", dim=m)
            self.mean_prediction, _, Bp, _, _ = weighted_moments(P, None, w)
            self.Cxy = cov(A, Bp)
            Chh = cov(Bp, Bp)
            self.Cyy = Chh + np.asarray(R, dtype=float)
            self.ridge = 0.0
            # Variance of the weighted mean: sum_i w_i^2 cov.
            self._mean_prediction_cov = Chh * (w @ w)
        else:
            self.Cxy = cov(A, B)
            Cyy = cov(B, B)
            self.ridge = 1e-8 * max(np.trace(Cyy) / m, np.finfo(float).tiny)
            self.Cyy = Cyy + self.ridge * np.eye(m)
            self.mean_prediction = self.mean_y
            self._mean_prediction_cov = self.Cyy * (w @ w)

    def _cholesky_Cyy(self):
        """Cholesky factor of Cyy, adding a ridge where rounding broke its definiteness.

        ``cov(hx) + R`` is positive definite in exact arithmetic, but when
        ``hx`` spreads far beyond R (e.g. ``x**3`` of a scattered ensemble)
        rounding in the ``(N, m)`` product can leave eigenvalues below zero
        by more than R. Escalating ridges of ``eps * trace / m`` restore it;
        the ridge used is added to ``self.ridge``.
        """
        self.Cyy = 0.5 * (self.Cyy + self.Cyy.T)
        scale = max(np.trace(self.Cyy) / self.dim_z, np.finfo(float).tiny)
        for k in range(8):
            try:
                return np.linalg.cholesky(self.Cyy)
            except np.linalg.LinAlgError:
                if not np.all(np.isfinite(self.Cyy)):
                    break
                extra = np.finfo(float).eps * scale * 10.0 ** k
                self.Cyy = self.Cyy + extra * np.eye(self.dim_z)
                self.ridge += extra
        raise ValueError("measurement covariance Cyy is not positive definite even with a "
                         f"ridge of {self.ridge:.3g}; check R and the simulated measurements")

    def set_bandwidth(self, h):
        """Change the bandwidth factor h in (0, 1); everything else is reused."""
        h = float(h)
        if not 0 < h < 1:
            raise ValueError(f"h (covariance-kernel bandwidth factor) must be in (0, 1), got {h}")
        self.h = h
        self.a = np.sqrt(1.0 - h * h) if self.shrink else 1.0
        self._cache_key, self._mixture = None, None

    @property
    def S_eigvals(self):
        """Eigenvalues of the component covariance ``S = h^2 (Cxx - K Cyx)``, ndarray (d,)."""
        return self._posterior_eigvals * self.h ** 2

    def log_kernel_at(self, z):
        """A function ``h -> log N(z; c_i^y(h), h^2 Cyy) + const``, ndarray (N,).

        Everything that does not depend on h is computed once, so a
        bandwidth search costs O(N m) per candidate.
        """
        z = as_vector(z, "z", self.dim_z)
        e = triangular_solve(self._Ly, z - self.mean_y)
        b, shrink, prior = self._by, self.shrink, self._log_prior

        def log_kernel(h):
            a = np.sqrt(1.0 - h * h) if shrink else 1.0
            r = (e - a * b) / h
            lk = -0.5 * np.einsum('ij,ij->i', r, r)
            return lk if prior is None else lk + prior
        return log_kernel

    def _log_kernel_offsets_at(self, z):
        """``h -> log kernel + |e|^2 / (2 h^2)``: its member-dependent part, without cancellation."""
        z = as_vector(z, "z", self.dim_z)
        e = triangular_solve(self._Ly, z - self.mean_y)
        b, shrink, prior = self._by, self.shrink, self._log_prior
        eb, bb = b @ e, np.einsum('ij,ij->i', b, b)

        def offsets(h):
            a = np.sqrt(1.0 - h * h) if shrink else 1.0
            with np.errstate(over="ignore"):
                lk = (a * eb - 0.5 * a * a * bb) / (h * h)
            return lk if prior is None else lk + prior
        return offsets

    def log_marginal(self, z: npt.ArrayLike) -> float:
        """Log of the KDE's measurement marginal ``sum_i pi_i N(z; c_i^y, h^2 Cyy)``."""
        logdet = 2 * np.sum(np.log(np.diag(self._Ly))) + 2 * self.dim_z * np.log(self.h)
        return float(logsumexp(self.log_kernel(z)) - np.log(self.N)
                     - 0.5 * (self.dim_z * np.log(2 * np.pi) + logdet))

    def log_evidence(self, z):
        """``log N(z; mean(hx(x_i)), Cyy)``: the Gaussian (h -> 1) measurement marginal.

        Free of the simulated measurement noise when ``predictions`` were
        given, and of the kernel's resolution: the low-variance evidence
        :class:`ClusteredKDE` weighs its clusters by.
        """
        e = triangular_solve(self._Ly, as_vector(z, "z", self.dim_z) - self.mean_prediction)
        return float(-0.5 * (e @ e + self.dim_z * np.log(2 * np.pi))
                     - np.sum(np.log(np.diag(self._Ly))))

    def log_evidence_var(self, z):
        """Sampling variance of :meth:`log_evidence` from the error of the ensemble mean.

        Delta method: ``g^T cov(mean) g`` with ``g = Cyy^-1 (z - mean)`` the
        gradient of the log evidence in the mean and ``cov(mean) =
        cov(hx(x_i)) / N``.
        """
        e = triangular_solve(self._Ly, as_vector(z, "z", self.dim_z) - self.mean_prediction)
        g = triangular_solve(self._Ly.T, e, lower=False)
        return float(g @ self._mean_prediction_cov @ g)

    def centres(self, z):
        """Conditional component means ``m_i``, ndarray (N, d)."""
        z = as_vector(z, "z", self.dim_z)
        mean = self.mean_x + self.K @ (z - self.mean_y)
        anomalies = (self.states - self.mean_x) - (self.measurements - self.mean_y) @ self.K.T
        return mean + self.a * anomalies

    def whitened(self, z):
        """The conditional in the kernel's whitened coordinates, for sampling.

        Returns ``(mixture, origin, T)``: an isotropic unit-variance
        :class:`GaussianMixture` over ``u`` such that ``x = origin + u @ T.T``
        has the law ``p(x | z)``. Directions where ``S`` vanishes (N <= d)
        are dropped: the centres ``m_i`` lie in the span of the ensemble
        anomalies, which is the range of S when Cyy includes R, so they
        share their coordinate there and nothing random is lost. Diffusing
        ``u`` with isotropic noise is a VE diffusion whose noise is shaped
        like S in x.
        """
        lam = self.S_eigvals
        keep = lam > 1e-10 * max(lam.max(), np.finfo(float).tiny)
        M = self.centres(z)
        origin = M.mean(0)
        T = self.S_basis[:, keep] * np.sqrt(lam[keep])
        U = (M - origin) @ (self.S_basis[:, keep] / np.sqrt(lam[keep]))
        return GaussianMixture(U, self._component_log_weights(z), 1.0), origin, T


def check_evidence_threshold(t):
    """``t`` as a float, or ValueError unless it is a real number >= 0 (``inf``: no mass moves)."""
    if not (isinstance(t, numbers.Real) and not isinstance(t, bool) and t >= 0):
        raise ValueError(f"evidence_threshold must be a number >= 0 (standard errors; inf: the "
                         f"cluster masses never move), got {t!r}")
    return float(t)


def _cluster_members(labels, N):
    """``labels`` (N,) as an array and the row indices of each cluster, in ``np.unique`` order."""
    labels = np.asarray(labels)
    if labels.shape != (N,):
        raise ValueError(f"labels must have shape ({N},) (one per member), got {labels.shape}")
    return labels, [np.flatnonzero(labels == k) for k in np.unique(labels)]


def _cluster_prior(weights, members, N):
    """Normalised prior member weights (N,), or None when uniform; every cluster needs mass."""
    lp = _log_prior(weights, N)
    w = None if lp is None else np.exp(lp - np.log(N))
    if w is not None and min(w[rows].sum() for rows in members) <= 0:
        raise ValueError("every cluster needs a positive total prior weight; got cluster "
                         f"weights {[float(w[rows].sum()) for rows in members]}")
    return w


def _cluster_shares(members, w, N):
    """Each cluster's log prior mass and each member's log share within its cluster."""
    log_mass = np.array([np.log(len(rows) / N) if w is None else np.log(w[rows].sum())
                         for rows in members])
    share = np.ones(N) if w is None else w
    log_share = np.empty(N)
    with np.errstate(divide='ignore'):
        for rows in members:
            log_share[rows] = np.log(share[rows] / share[rows].sum())
    return log_mass, log_share


def _monte_carlo_log_evidence(log_lik, members, log_share):
    """Each cluster's log mean member likelihood, ``log sum_{i in c} v_i N(z; hx(x_i), R)``.

    ``v_i`` is the member's prior share within its cluster. None when some
    cluster has no member with a non-zero likelihood.
    """
    ell = np.array([logsumexp(log_lik[rows] + log_share[rows]) for rows in members])
    return None if (ell == -np.inf).any() else ell


def _monte_carlo_log_evidence_var(log_lik, members, log_share, ell):
    """The delta-method variance of :func:`_monte_carlo_log_evidence` ``ell``.

    ``sum_{i in c} (r_i - v_i)^2``, with ``r_i`` the member's posterior
    share within its cluster.
    """
    return np.array([float(np.sum((np.exp(log_lik[rows] + log_share[rows] - ell[c])
                                   - np.exp(log_share[rows])) ** 2))
                     for c, rows in enumerate(members)])


def monte_carlo_cluster_log_weights(log_lik, labels, weights=None):
    """The posterior mass of each cluster by the members' exact likelihoods, in logs.

    ``log W_c = log sum_{i in c} w_i L_i - log sum_i w_i L_i`` with ``L_i =
    N(z; hx(x_i), R)``: :meth:`ClusteredKDE.cluster_log_weights` with
    ``evidence='monte-carlo'`` and ``shrink_evidence=False``, from the
    likelihoods alone (no cluster's Gaussian is fitted).

    Parameters
    ----------
    log_lik : ndarray (N,)
        Log likelihood of every member.
    labels : ndarray (N,) of int
        Cluster of each member, in the order of ``np.unique(labels)``.
    weights : ndarray (N,), optional
        Prior member weights (normalised here).

    Returns
    -------
    ndarray (n_clusters,) or None
        None when some cluster has no member with a non-zero likelihood
        (ClusteredKDE then uses the clusters' Gaussian evidence).
    """
    log_lik = np.asarray(log_lik, dtype=float)
    N = log_lik.shape[0]
    _, members = _cluster_members(labels, N)
    w = _cluster_prior(weights, members, N)
    log_mass, log_share = _cluster_shares(members, w, N)
    ell = _monte_carlo_log_evidence(log_lik, members, log_share)
    if ell is None:
        return None
    lw = log_mass + ell
    return lw - logsumexp(lw)


class ClusteredKDE(_KernelWeights):
    """Covariance-kernel KDE fitted cluster by cluster, with one bandwidth factor h.

    The joint ensemble is split by ``labels`` (e.g. from
    :func:`filterpy_diffusion.clustering.split_ensemble`) and each cluster
    ``c`` gets its own :class:`CovarianceKDE`: its own mean, covariance,
    gain ``K_c`` and shrinkage target. Component ``i`` of cluster ``c`` is
    ``N((x, y); c_i, h^2 C_c)``, each component has weight ``1/N``, so the
    KDE keeps every cluster's mean and covariance. Conditioned on ``z``:

        p(x | z) = sum_c W_c p_c(x | z),
        W_c ∝ N_c p_c(z)     (p_c(z): cluster c's measurement marginal)

    and the weight of member ``i`` in cluster ``c`` is ``W_c w_i^(c)``.
    The cluster marginal ``p_c(z)`` is, with ``evidence='monte-carlo'``
    (the default wherever ``R`` and ``predictions`` are given), the mean
    likelihood of the cluster's own members, ``sum_{i in c} w_i N(z;
    hx(x_i), R) / sum_{i in c} w_i``: the particle filter's estimate, with
    no Gaussian shape assumed, so that ``W_c`` is the posterior mass the
    exact weights give cluster ``c``. With ``evidence='gaussian'`` it is
    the cluster's Gaussian evidence ``N(z; mean(hx(x_i)), Cyy_c)``
    (:meth:`CovarianceKDE.log_evidence`). Either way it is not the kernel
    marginal: the exact cluster weights of a symmetric
    problem are equal, and at small h the kernel marginal is a noisy
    histogram of the few ``y_i`` near ``z`` whose error makes the cluster
    sizes drift from cycle to cycle. Within a cluster the weights are the
    kernel's. With one label the conditional is exactly
    :class:`CovarianceKDE`'s.

    Parameters
    ----------
    states : ndarray (N, d)
    measurements : ndarray (N, m)
    h : float in (0, 1)
    labels : ndarray (N,) of int
        Cluster of each member; every cluster needs at least 2 members.
    R, predictions, shrink
        As :class:`CovarianceKDE`, applied within each cluster.
    shrink_evidence : bool, default True
        Shrink the clusters' log-evidence differences by their sampling
        variance before weighting (False: the raw evidence).
    evidence_threshold : float >= 0, default :data:`EVIDENCE_THRESHOLD`
        With ``shrink_evidence``, log-evidence differences smaller than this
        many standard errors are ignored and larger ones shrunk: cluster
        masses move only when the observation tells the clusters apart
        beyond the noise of the ensemble's own estimate. 1 is positive-part
        James-Stein; ``inf`` keeps the prior masses whatever ``z`` is. The
        standard error of the Monte Carlo evidence is its delta-method value
        ``sum_{i in c} (r_i - v_i)^2`` (``v_i`` the member's prior share
        within the cluster, ``r_i`` its posterior share), that of the
        Gaussian evidence the delta method on the cluster mean
        (:meth:`CovarianceKDE.log_evidence_var`).
    evidence : {'auto', 'monte-carlo', 'gaussian'}, default 'auto'
        The cluster marginal ``p_c(z)`` above (:data:`EVIDENCES`).
        ``'auto'``: ``'monte-carlo'`` when ``R`` is given and positive
        definite and ``predictions`` are given, else ``'gaussian'`` (a
        simulator's noisy ``measurements`` or a noise-free component have
        no member likelihood). On tuning seeds the Monte Carlo evidence
        moved mass between modes where they differ and kept mirror images
        in balance (docs/design-log.md, entry 44).
    weights : ndarray (N,), optional
        Prior member weights (normalised here): cluster c's prior mass is
        the sum of its members' weights instead of ``N_c / N``, and each
        cluster's kernel is weighted within (:class:`CovarianceKDE`). Every
        cluster needs positive total weight.

    Attributes
    ----------
    parts : list of CovarianceKDE
        One per cluster, in the order of ``np.unique(labels)``.
    members : list of ndarray of int
        Row indices of each cluster.
    """

    def __init__(self, states, measurements, h, labels, R=None, predictions=None, shrink=True,
                 shrink_evidence=True, evidence_threshold=EVIDENCE_THRESHOLD, weights=None,
                 evidence='auto'):
        X = as_ensemble(states, "states", min_rows=2)
        Y = as_ensemble(measurements, "measurements", min_rows=2)
        self.shrink_evidence = bool(shrink_evidence)
        self.evidence_threshold = check_evidence_threshold(evidence_threshold)
        self.labels, self.members = _cluster_members(labels, len(X))
        self.N, self.dim_x, self.dim_z = len(X), X.shape[1], Y.shape[1]
        if min(len(rows) for rows in self.members) < 2:
            raise ValueError("every cluster needs at least 2 members; got sizes "
                             f"{[len(rows) for rows in self.members]}")
        w = _cluster_prior(weights, self.members, self.N)
        # log of each cluster's prior mass, N_c / N for uniform weights.
        self._log_mass, log_share = _cluster_shares(self.members, w, self.N)
        self.parts = [CovarianceKDE(X[rows], Y[rows], h, R=R,
                                    predictions=None if predictions is None else
                                    np.asarray(predictions, dtype=float)[rows], shrink=shrink,
                                    weights=None if w is None else w[rows])
                      for rows in self.members]
        self.h = float(h)
        self.evidence = self._evidence_kind(evidence, R, predictions)
        self._evidence_cache = None
        if self.evidence == 'monte-carlo':
            self._predictions = as_ensemble(predictions, "predictions", dim=self.dim_z)
            self._R = as_covariance(R, "R", self.dim_z)
            self._log_share = log_share

    @staticmethod
    def _evidence_kind(evidence, R, predictions):
        if evidence not in EVIDENCES:
            raise ValueError(f"evidence must be one of {EVIDENCES}, got {evidence!r}")
        possible = R is not None and predictions is not None and not is_singular(R)
        if evidence == 'monte-carlo' and not possible:
            raise ValueError("evidence='monte-carlo' weighs clusters by the members' likelihoods "
                             "N(z; hx(x_i), R): it needs predictions (the noise-free hx values) "
                             "and a positive definite R; use evidence='gaussian' or 'auto'")
        if evidence == 'auto':
            return 'monte-carlo' if possible else 'gaussian'
        return evidence

    def log_evidence(self, z):
        """``log p_c(z)`` of every cluster, ndarray (n_clusters,), unshrunk (see ``evidence``)."""
        return self._evidence(z)[0]

    def log_evidence_var(self, z):
        """Sampling variance of :meth:`log_evidence`, ndarray (n_clusters,)."""
        return self._evidence(z)[1]

    def _gaussian_evidence(self, z):
        return (np.array([p.log_evidence(z) for p in self.parts]),
                np.array([p.log_evidence_var(z) for p in self.parts]))

    def _evidence(self, z):
        if self.evidence == 'gaussian':
            return self._gaussian_evidence(z)
        z = as_vector(z, "z", self.dim_z)
        # One analysis asks for the same z several times (the bandwidth
        # search, the weights, the sampler): the N member likelihoods once.
        key = z.tobytes()
        if self._evidence_cache is None or self._evidence_cache[0] != key:
            self._evidence_cache = (key, self._monte_carlo_evidence(z))
        return self._evidence_cache[1]

    def _monte_carlo_evidence(self, z):
        ll = gaussian_log_likelihood(z, self._predictions, self._R)
        ell = _monte_carlo_log_evidence(ll, self.members, self._log_share)
        if ell is None:    # no member of some cluster explains z at all
            return self._gaussian_evidence(z)
        return ell, _monte_carlo_log_evidence_var(ll, self.members, self._log_share, ell)

    @property
    def n_clusters(self):
        return len(self.parts)

    def set_bandwidth(self, h):
        """Change the bandwidth factor h in (0, 1) of every cluster."""
        for p in self.parts:
            p.set_bandwidth(h)
        self.h = self.parts[0].h

    def log_kernel_at(self, z):
        """A function ``h -> log W_c(i) + log w_i^(c)(h)``, ndarray (N,), member order."""
        fns = [p.log_kernel_at(z) for p in self.parts]
        lW = self.cluster_log_weights(z)

        def log_kernel(h):
            out = np.empty(self.N)
            for rows, p, f, lw in zip(self.members, self.parts, fns, lW):
                lk = f(h)
                if lk.max() < FAR_LOG_KERNEL:    # z far from this cluster: exact differences
                    lk = p._log_kernel_offsets_at(z)(h)
                out[rows] = lw + lk - logsumexp(lk)
            return out
        return log_kernel

    # Normalised per cluster, so never "far": the offsets are the log kernel itself.
    _log_kernel_offsets_at = log_kernel_at

    def cluster_log_weights(self, z):
        """``log W_c``, ndarray (n_clusters,), normalised."""
        lw = self._log_joint(z)
        return lw - logsumexp(lw)

    def _log_joint(self, z):
        ell, se2 = self._evidence(z)
        if self.shrink_evidence and len(ell) > 1:
            # Positive-part James-Stein shrinkage of each cluster's deviation
            # from the mean log evidence, by t^2 times its sampling variance:
            # a difference within t standard errors of the cluster means
            # does not move members between clusters. t = 1 (plain
            # James-Stein) still let the masses of mirror-image modes drift
            # (toy-abs W2 1.04 at N = 50 against 0.40 at t = 10, tuning seeds).
            k = len(ell)
            var = se2 * (1 - 2 / k) + se2.sum() / k ** 2
            dev = ell - ell.mean()
            t2 = self.evidence_threshold ** 2
            if np.isinf(t2):    # no difference counts (inf * 0 would be NaN on a zero variance)
                factor = np.zeros_like(dev)
            else:
                with np.errstate(divide='ignore', invalid='ignore'):
                    factor = np.where(dev != 0, np.maximum(0.0, 1 - t2 * var / dev ** 2), 0.0)
            ell = ell.mean() + factor * dev
        return self._log_mass + ell

    def log_marginal(self, z: npt.ArrayLike) -> float:
        """Log of the measurement marginal ``sum_c W_c N(z; mean_c(hx), Cyy_c)`` (``W_c`` = N_c/N or the prior mass)."""
        return float(logsumexp(self._log_joint(z)))

    def centres(self, z):
        """Conditional component means ``m_i``, ndarray (N, d), member order."""
        out = np.empty((self.N, self.dim_x))
        for rows, p in zip(self.members, self.parts):
            out[rows] = p.centres(z)
        return out

    def _per_cluster(self, fn, x, z, sigma):
        lW = self.cluster_log_weights(z)
        return lW, [fn(p, x, z, sigma) for p in self.parts]

    def log_prob(self, x: npt.ArrayLike, z: npt.ArrayLike, sigma: float = 0.0) -> np.ndarray:
        """Log of ``p_sigma(x | z) = sum_c W_c p_c,sigma(x | z)``; x (d,) or (M, d)."""
        lW, lps = self._per_cluster(lambda p, *a: p.log_prob(*a), x, z, sigma)
        stacked = np.stack([lw + np.asarray(lp) for lw, lp in zip(lW, lps)], axis=-1)
        return _logsumexp(stacked, axis=-1)

    def score(self, x: npt.ArrayLike, z: npt.ArrayLike, sigma: float = 0.0) -> np.ndarray:
        """Gradient in x of ``log p_sigma(x | z)``; same shape as x.

        ``sum_c r_c(x) score_c(x)`` with cluster responsibilities
        ``r_c ∝ W_c p_c,sigma(x | z)``.
        """
        lW, lps = self._per_cluster(lambda p, *a: p.log_prob(*a), x, z, sigma)
        lr = np.stack([lw + np.asarray(lp) for lw, lp in zip(lW, lps)], axis=-1)
        r = np.exp(lr - _logsumexp(lr, axis=-1)[..., None])
        scores = [p.score(x, z, sigma) for p in self.parts]
        return sum(r[..., j, None] * s for j, s in enumerate(scores))


class EnKPFDensity(_KernelWeights, _SharedCovarianceMixture, _ConditionalDensity):
    """Conditional density of the ensemble Kalman particle filter with split factor ``g``.

    Frei and Kuensch (2013) split the likelihood ``N(z; h(x), R)`` into
    ``N(z; h(x), R / g) N(z; h(x), R / (1 - g))`` (the product is the
    likelihood up to a constant). The first factor is assimilated by a
    stochastic EnKF step, which moves every member ``x_i`` to
    ``nu_i = x_i + K_g (z - p_i)`` (``p_i = hx(x_i)``) and leaves the spread of
    its perturbed observations, ``Q_g = K_g (R / g) K_g^T``, as a kernel around
    each ``nu_i``; the second factor weights and shifts these Gaussian
    components exactly. The analysis density is the Gaussian mixture

        p(x | z) = sum_i a_i N(x; m_i, S),
        a_i ∝ N(z; H nu_i, H Q_g H^T + R / (1 - g)),
        m_i = nu_i + Q_g H^T (H Q_g H^T + R / (1 - g))^-1 (z - H nu_i),
        S   = Q_g - Q_g H^T (H Q_g H^T + R / (1 - g))^-1 H Q_g,

    worked out in the joint space of ``(x, hx(x))`` so that ``H`` selects the
    predicted measurements and a black-box ``hx`` needs no derivative [1]_. ``g = 1``
    is the stochastic EnKF (uniform weights, every member kept in place up to
    its Kalman shift); ``g -> 0`` is a particle filter. Unlike the shrunk
    covariance kernel of :class:`filterpy_diffusion.kde.CovarianceKDE`, the
    members are never contracted towards the mean or redrawn: each moves by
    its own Kalman shift, so whatever the forecast members carry beyond their
    mean and covariance survives (which is what lets the EnKF work in 40
    dimensions with 50 members).

    Everything is diagonal in the frame where ``R = I`` and ``cov(p_i)`` is
    diagonal (eigenvalues ``lam``), so a bandwidth search costs ``O(N m)`` per
    candidate ``g``.

    Parameters
    ----------
    states : ndarray (N, d)
    predictions : ndarray (N, m)
        Noise-free predicted measurements ``hx(x_i)``.
    R : ndarray (m, m)
        Measurement noise covariance (symmetric positive definite).
    g : float in (0, 1]
        Share of the likelihood given to the EnKF step (the bandwidth:
        1 is the EnKF, small g a particle filter).
    weights : ndarray (N,), optional
        Prior member weights ``pi_i`` (normalised here): ``a_i`` gets the
        factor ``pi_i`` and the gain uses the weighted covariances of
        :func:`filterpy_diffusion.weights.weighted_moments`. None or
        uniform: the unweighted density. (:meth:`normality_pvalue` tests the
        members unweighted.)

    Attributes
    ----------
    g : float
    S_eigvals : ndarray (d,)
        Eigenvalues of the component covariance S (rank <= m).

    References
    ----------
    .. [1] M. Frei and H. R. Kuensch, "Bridging the ensemble Kalman and particle
       filters", Biometrika 100 (2013) 781-800.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 2))
    >>> P = X[:, :1] ** 2
    >>> dens = EnKPFDensity(X, P, np.eye(1) * 0.1, g=0.5)
    >>> w = dens.weights(np.array([1.0]))
    >>> w.shape, bool(np.isclose(w.sum(), 1.0))
    ((50,), True)
    """

    def __init__(self, states, predictions, R, g=1.0, weights=None):
        X = as_ensemble(states, "states", min_rows=2)
        N, d = X.shape
        P = as_ensemble(predictions, "predictions", min_rows=2)
        if len(P) != N:
            raise ValueError(f"states and predictions must have the same number of rows; "
                             f"got {N} and {len(P)}")
        m = P.shape[1]
        R = as_covariance(R, "R", m, allow_singular=False)
        self.N, self.dim_x, self.dim_z = N, d, m
        self.states, self.predictions = X, P
        self._LR = np.linalg.cholesky(R)
        self._log_prior = _log_prior(weights, N)
        if self._log_prior is None:
            mean_x, self._mean_p = X.mean(0), P.mean(0)

            def cov(U, W):
                return U.T @ W / (N - 1)
        else:
            mean_x, self._mean_p, _, _, cov = weighted_moments(X, P, np.exp(self._log_prior))
        # Frame: observations whitened by R, rotated to diagonalise cov(p).
        Pw = np.linalg.solve(self._LR, (P - self._mean_p).T).T
        lam, V = np.linalg.eigh(cov(Pw, Pw))
        self.lam = np.maximum(lam, 0.0)
        self._V = V
        A = X - mean_x
        # cov(x, p) in the frame: columns are the per-direction regressions.
        self.G = cov(A, Pw @ V)
        self.set_bandwidth(g)

    def _frame(self, v):
        """Whitened, rotated measurement-space vectors: (..., m) -> (..., m)."""
        return np.linalg.solve(self._LR, np.atleast_2d(v).T).T @ self._V

    def _coefficients(self, g):
        """Per-direction scalars of the formulas at split factor g."""
        lam = self.lam
        b = g * lam + 1.0
        qpp = g * lam ** 2 / b ** 2                       # H Q_g H^T
        rho = (1.0 - g) / (1.0 + (1.0 - g) * qpp)         # (H Q_g H^T + R/(1-g))^-1
        return b, qpp, rho

    def set_bandwidth(self, g):
        """Change the split factor g in (0, 1]."""
        g = float(g)
        if not 0 < g <= 1:
            raise ValueError(f"g (EnKPF split factor) must be in (0, 1], got {g}")
        self.g = self.h = g
        b, qpp, rho = self._coefficients(g)
        # S = G diag(s) G^T; centres m_i = x_i + G diag(c) d_i.
        self._s = g / b ** 2 - (g * self.lam / b ** 2) ** 2 * rho
        self._c = g / b + g * self.lam / b ** 3 * rho
        S = (self.G * self._s) @ self.G.T
        ev, U = np.linalg.eigh(0.5 * (S + S.T))
        self.S_eigvals, self.S_basis = np.maximum(ev, 0.0), U
        self._cache_key, self._mixture = None, None

    def kernel_std(self):
        """Per-coordinate standard deviations of the kernel Q_g: (x part (d,), measurement part (m,)).

        The x part is that of the conditioned components (``sqrt(diag(S))``).
        """
        _, qpp, _ = self._coefficients(self.g)
        B = self._LR @ self._V
        sx = np.sqrt(np.maximum(np.einsum('ij,j,ij->i', self.S_basis, self.S_eigvals, self.S_basis), 0))
        return sx, np.sqrt(np.einsum('ij,j,ij->i', B, qpp, B))

    def _innovations(self, z):
        z = as_vector(z, "z", self.dim_z)
        return self._frame(z - self.predictions)          # d_i, (N, m)

    def log_kernel_at(self, z):
        """A function ``g -> log a_i(g) + const``, ndarray (N,)."""
        D2 = self._innovations(z) ** 2
        prior = self._log_prior

        def log_kernel(g):
            b, _, rho = self._coefficients(g)
            lk = -0.5 * D2 @ (rho / b ** 2)
            return lk if prior is None else lk + prior
        return log_kernel

    def _log_kernel_offsets_at(self, z):
        """``g -> log kernel + const``: with ``d_i = dbar - q_i``, the terms in ``q_i`` only."""
        z = as_vector(z, "z", self.dim_z)
        dbar = self._frame(z - self._mean_p)[0]
        Q = self._frame(self.predictions - self._mean_p)
        prior = self._log_prior

        def offsets(g):
            b, _, rho = self._coefficients(g)
            with np.errstate(over="ignore"):
                lk = (Q * dbar - 0.5 * Q * Q) @ (rho / b ** 2)
            return lk if prior is None else lk + prior
        return offsets

    def log_marginal(self, z: npt.ArrayLike) -> float:
        """``log p(z)`` under the EnKF-step Gaussian times the mixture's remaining evidence."""
        z = as_vector(z, "z", self.dim_z)
        g, lam = self.g, self.lam
        b, qpp, _ = self._coefficients(g)
        dbar = self._frame(z - self._mean_p)[0]
        var1 = lam + 1.0 / g
        first = -0.5 * np.sum(dbar ** 2 / var1 + np.log(2 * np.pi * var1))
        rest = (logsumexp(self.log_kernel(z)) - np.log(self.N)
                - 0.5 * np.sum(np.log(g * (1.0 + (1.0 - g) * qpp))))
        return float(first + rest - np.sum(np.log(np.diag(self._LR))))

    def centres(self, z):
        """Component means ``m_i``, ndarray (N, d)."""
        return self.states + (self._innovations(z) * self._c) @ self.G.T

    def normality_pvalue(self, min_lam=MIN_INFORMATIVE_LAM):
        """Bonferroni p-value that the predicted measurements are Gaussian, float in [0, 1].

        D'Agostino-Pearson tests (``scipy.stats.normaltest``: skewness and
        kurtosis) of ``hx(x_i)`` along each direction of the frame where
        ``R = I`` and ``cov(hx(x_i))`` is diagonal, kept only where the
        forecast variance is at least ``min_lam`` times the noise variance:
        elsewhere the weights hardly vary. The smallest p-value times the
        number of tests (at most 1). 1 when N < 20 (too few members for the
        kurtosis test) or no direction is informative.
        """
        keep = self.lam >= min_lam
        return bonferroni_normaltest(self._frame(self.predictions - self._mean_p)[:, keep])

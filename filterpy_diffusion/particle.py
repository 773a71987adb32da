"""Bootstrap (SIR) particle filter with the filterpy ensemble interface.

The particle baseline for the diffusion filter: members are weighted by the
likelihood ``p(z | x_i)`` and resampled when the effective sample size drops.
Weights live in log space across cycles and are normalised with logsumexp,
so no weight underflows to an exact zero before it has to.

The resampling schemes are plain functions ``f(weights, rng) -> indices``
(our own: filterpy's ``residual_resample`` is biased, filterpy issue #290).
"""
import warnings

import numpy as np
from scipy.linalg import cholesky, solve_triangular
from scipy.special import logsumexp

from .ensemble import EnsembleFilter, ensemble_moments
from .resampling import (multinomial_resample, residual_resample, stratified_resample,
                         systematic_resample)

__all__ = ["ParticleFilter", "gaussian_log_likelihood", "systematic_resample",
           "stratified_resample", "multinomial_resample", "residual_resample"]


# ---------------------------------------------------------------- likelihood
def gaussian_log_likelihood(z, sigmas_h, R):
    """``log N(z; h_i, R)`` for every row ``h_i`` of ``sigmas_h``, without loops.

    Parameters
    ----------
    z : ndarray (dim_z,)
    sigmas_h : ndarray (N, dim_z)
        Predicted measurements ``hx(x_i)``.
    R : ndarray (dim_z, dim_z)
        Positive definite measurement covariance.

    Returns
    -------
    ndarray (N,)
    """
    R = np.atleast_2d(R)
    try:
        L = cholesky(R, lower=True)
    except np.linalg.LinAlgError:
        raise ValueError(
            "R must be positive definite for a Gaussian likelihood; it is singular "
            f"(smallest eigenvalue {np.linalg.eigvalsh(R).min():.3g}). Use a small "
            "positive variance or pass log_likelihood_fn") from None
    with np.errstate(over="ignore", invalid="ignore"):
        d = np.asarray(z, dtype=float) - sigmas_h
        r = solve_triangular(L, d.T, lower=True, check_finite=False)
        ll = (-0.5 * np.einsum("ij,ij->j", r, r) - np.log(np.diag(L)).sum()
              - 0.5 * R.shape[0] * np.log(2 * np.pi))
    # Residuals near the float limit overflow (to inf, or NaN as inf - inf in
    # the triangular solve); such a member has zero likelihood.
    ll[np.isnan(ll)] = -np.inf
    return ll


# ---------------------------------------------------------------- the filter
class ParticleFilter(EnsembleFilter):
    """Bootstrap sampling-importance-resampling (SIR) particle filter.

    ``predict()`` moves every particle through ``fx`` plus N(0, Q) noise and
    keeps the weights. ``update(z)`` multiplies each weight by ``p(z | x_i)``
    (in log space), and resamples when the effective sample size
    ``1 / sum w_i^2`` falls below ``resample_threshold * N``. ``x, P`` are
    the weighted mean and covariance of the particles.

    Parameters
    ----------
    x, P, dim_z, dt, N, hx, fx
        As for ``filterpy.kalman.EnsembleKalmanFilter``: initial mean (dim_x,),
        covariance (dim_x, dim_x), measurement length, time step, number of
        particles (>= 2), ``hx(x) -> (dim_z,)``, ``fx(x, dt) -> (dim_x,)``.
    resample_threshold : float in [0, 1], default 0.5
        Resample when ``ess < resample_threshold * N``; 0 never resamples.
    jitter : float >= 0, default 0.0
        After resampling, add N(0, jitter**2 * C) to every particle, where C
        is the weighted particle covariance just before resampling. Fights
        sample impoverishment when Q is small, at the price of inflating the
        spread by a factor ``1 + jitter**2``.
    log_likelihood_fn : callable ``(z, sigmas_h) -> (N,)``, optional
        ``log p(z | x_i)`` given ``z`` (dim_z,) and ``sigmas_h = hx(sigmas)``
        (N, dim_z), for non-Gaussian measurement noise; may return -inf
        (impossible), never NaN or +inf. Default: Gaussian ``N(z; hx(x_i),
        R)`` (``R`` is then unused when this is given), which needs a
        positive definite R (a singular R is a ValueError). With missing
        components in ``z`` (a masked array) it gets the observed ``z`` and
        the matching columns of ``sigmas_h`` only.
    resampler : callable ``(weights, rng) -> indices (N,)``, default systematic_resample
        Resampling scheme; see the module's ``*_resample`` functions.
    rng : None, int or numpy.random.Generator, optional
        Source of every random draw (never the global numpy RNG).
    vectorized : bool, default False
        Call ``fx(sigmas, dt)`` and ``hx(sigmas)`` once on the whole (N, dim_x)
        array.
    simulate : None
        Not supported: a particle filter weights by a likelihood, it cannot
        use a black-box measurement simulator. Pass ``log_likelihood_fn``.

    Attributes
    ----------
    x, P, x_prior, P_prior, x_post, P_post, sigmas, Q, R, z, dim_x, dim_z, N, dt, hx, fx
        As in filterpy's ``EnsembleKalmanFilter``; ``sigmas`` is (N, dim_x).
    weights : ndarray (N,)
        Normalised particle weights (``exp(log_weights)``).
    log_weights : ndarray (N,)
        Normalised log weights, the quantity carried between cycles.
    log_likelihood : float or None
        ``log sum_i w_i p(z | x_i)`` of the last update (prior weights ``w``):
        the particle estimate of ``log p(z_k | z_1:k-1)``.
    ess : float or None
        Effective sample size of the weights after the last update, before
        resampling.
    resampled : bool
        Whether the last update resampled.
    resample_threshold, jitter, log_likelihood_fn, resampler
        As given; may be changed between calls.
    K, S, SI : ndarray (dim_x, dim_z), (dim_z, dim_z), (dim_z, dim_z)
        filterpy's ``EnsembleKalmanFilter`` attributes, computed from the
        prior-weighted particles of the last update: ``S = cov(hx(x_i)) +
        R``, ``SI = inv(S)``, ``K = cov(x, hx(x)) SI``. The particle filter
        does not use them; they are the linear-Gaussian summary of its
        forecast, the gain an EnKF would have used (``R`` enters even with a
        ``log_likelihood_fn``). Zeros after construction and ``initialize``.
    inv : callable
        The inverse used for ``SI`` (``np.linalg.inv``); replaceable.

    Notes
    -----
    If the likelihood is zero for every particle (``log_likelihood_fn``
    returns -inf everywhere, or a Gaussian residual overflows), there is
    nothing to weight by: the update keeps the particles and their prior
    weights, sets ``log_likelihood = -inf`` and emits a ``RuntimeWarning``.

    References
    ----------
    .. [1] N. J. Gordon, D. J. Salmond, A. F. M. Smith (1993). Novel approach
       to nonlinear/non-Gaussian Bayesian state estimation. IEE Proceedings F
       140(2), 107-113.
    .. [2] R. Douc, O. Cappe, E. Moulines (2005). Comparison of resampling
       schemes for particle filtering. ISPA 2005, 64-69.

    Examples
    --------
    >>> import numpy as np
    >>> from filterpy_diffusion.particle import ParticleFilter
    >>> F = np.array([[1., 1.], [0., 1.]])
    >>> def fx(x, dt):
    ...     return F @ x
    >>> def hx(x):
    ...     return x[:1]
    >>> pf = ParticleFilter(np.zeros(2), np.eye(2), dim_z=1, dt=1., N=500,
    ...                     hx=hx, fx=fx, rng=0)
    >>> pf.Q = 0.01 * np.eye(2)
    >>> pf.R = np.array([[0.5]])
    >>> for z in [1., 2., 3.]:
    ...     pf.predict()
    ...     pf.update(z)
    >>> pf.x.shape, pf.P.shape, round(float(pf.weights.sum()), 9)
    ((2,), (2, 2), 1.0)
    """

    def __init__(self, x, P, dim_z, dt, N, hx, fx, *, resample_threshold=0.5,
                 jitter=0.0, log_likelihood_fn=None, resampler=systematic_resample,
                 rng=None, vectorized=False, simulate=None):
        if simulate is not None:
            raise ValueError(
                "ParticleFilter weights particles by a likelihood and cannot use a measurement "
                "simulator; pass log_likelihood_fn=(z, sigmas_h) -> log p(z | x_i) instead")
        if not 0.0 <= resample_threshold <= 1.0:
            raise ValueError(f"resample_threshold must be in [0, 1], got {resample_threshold!r}")
        if not (np.isfinite(jitter) and jitter >= 0):
            raise ValueError(f"jitter must be a finite number >= 0, got {jitter!r}")
        if log_likelihood_fn is not None and not callable(log_likelihood_fn):
            raise TypeError("log_likelihood_fn must be None or callable")
        if not callable(resampler):
            raise TypeError("resampler must be callable (weights, rng) -> indices")
        super().__init__(x, P, dim_z, dt, N, hx, fx, rng=rng, vectorized=vectorized)
        self.resample_threshold = float(resample_threshold)
        self.jitter = float(jitter)
        self.log_likelihood_fn = log_likelihood_fn
        self.resampler = resampler

    def _reset(self):
        super()._reset()
        self.resampled = False

    def _log_likelihoods(self, z, hz, R):
        if self.log_likelihood_fn is None:
            return gaussian_log_likelihood(z, hz, R)
        ll = np.asarray(self.log_likelihood_fn(z, hz), dtype=float)
        if ll.shape != (self.N,):
            raise ValueError(
                f"log_likelihood_fn returned shape {ll.shape}; expected (N,) = ({self.N},)")
        bad = np.isnan(ll) | (ll == np.inf)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"log_likelihood_fn returned {ll[i]} for particle {i}; expected a log density < +inf")
        return ll

    def _analysis(self, z, R):
        sigmas = self.sigmas
        hz = self._measure(sigmas)
        ll = self._log_likelihoods(z, hz, R)
        gain = self._gain(sigmas, hz, R, self.weights)
        a = self.log_weights + ll
        total = logsumexp(a)
        if total == -np.inf:
            warnings.warn(
                "every particle has zero likelihood for this z; keeping the prior weights",
                RuntimeWarning, stacklevel=3)
            return {"sigmas": sigmas, "log_weights": self.log_weights, "log_likelihood": -np.inf,
                    "ess": float(np.exp(-logsumexp(2 * self.log_weights))), "resampled": False,
                    **gain}

        log_w = a - total
        # log_weights were normalised, so `total` is log sum_i w_i p(z | x_i).
        out = {"log_likelihood": float(total), "ess": float(np.exp(-logsumexp(2 * log_w))),
               "sigmas": sigmas, "log_weights": log_w, "resampled": False, **gain}
        if out["ess"] < self.resample_threshold * self.N:
            w = np.exp(log_w)
            idx = self._resample_indices(w)
            new = sigmas[idx]
            if self.jitter > 0:
                _, C = ensemble_moments(sigmas, w)
                new = new + self._gaussian_noise(self.jitter ** 2 * C, self.N)
            out.update(sigmas=new, log_weights=np.zeros(self.N), resampled=True)
        return out

    def _resample_indices(self, w):
        idx = np.asarray(self.resampler(w, self.rng))
        if idx.shape != (self.N,) or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(
                f"resampler returned {idx.dtype} array of shape {idx.shape}; expected N = {self.N} integers")
        if idx.min() < 0 or idx.max() >= self.N:
            raise ValueError(f"resampler returned indices outside [0, {self.N})")
        return idx

    def _repr_extras(self):
        return [("resample_threshold", self.resample_threshold), ("jitter", self.jitter),
                ("resampled", self.resampled), ("resampler", self.resampler),
                ("log_likelihood_fn", self.log_likelihood_fn)]

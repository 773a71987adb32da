"""The shared predict/update machinery of our ensemble filters.

:class:`EnsembleFilter` carries filterpy's ``EnsembleKalmanFilter`` surface
(same positional constructor arguments, same attribute names) and does
everything that does not depend on the analysis method: input checks, the
forecast ``x_i <- fx(x_i, dt) + w_i``, weighted ensemble moments,
``batch_filter``, ``__repr__``. A concrete filter supplies one method,
``_analysis(z, R)``, which turns the current ensemble and an observation into
a new ensemble (and weights).

Every public step is all-or-nothing: new state is computed into fresh arrays
and assigned only once nothing can fail any more, and the random generator is
rewound if a step raises, so an exception leaves the filter exactly as it was.
"""
from __future__ import annotations

from contextlib import contextmanager
from collections.abc import Mapping, Sequence
import numbers
from typing import Any, Callable, Optional

import numpy as np
import numpy.typing as npt
from filterpy.common import pretty_str

from ._validation import (RngLike, as_covariance, as_generator, check_magnitude, magnitude_limit,
                          _remembered, psd_factor)
from .weights import check_log_weights, kish_ess, logsumexp, normalise_weights, weighted_moments

__all__ = ["EnsembleFilter", "ensemble_moments", "ensemble_gain"]


def ensemble_moments(sigmas: npt.ArrayLike, weights: Optional[npt.ArrayLike] = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and unbiased covariance of an ensemble.

    Parameters
    ----------
    sigmas : ndarray (N, dim)
        Ensemble members, one per row; N >= 2.
    weights : ndarray (N,), optional
        Normalised non-negative weights. ``None`` (or all-equal weights) means
        uniform.

    Returns
    -------
    x : ndarray (dim,)
        ``sum_i w_i x_i``.
    P : ndarray (dim, dim)
        ``sum_i w_i (x_i - x)(x_i - x)^T / (1 - sum_i w_i^2)``: the usual
        ``1/(N - 1)`` sample covariance for uniform weights, and unbiased for
        "reliability" weights otherwise. Zero if one member holds all the
        weight (there is no spread to estimate from).
    """
    sigmas = np.asarray(sigmas, dtype=float)
    N = sigmas.shape[0]
    if N < 2:
        raise ValueError(f"ensemble_moments needs at least 2 members, got {N}")
    w = None if weights is None else np.asarray(weights, dtype=float)
    if w is None or (w == w[0]).all():
        # Uniform weights: plain mean and 1/(N-1), exactly as filterpy computes them.
        x = sigmas.mean(axis=0)
        d = sigmas - x
        P = d.T @ d / (N - 1)
    else:
        x, _, d, _, cov = weighted_moments(sigmas, None, w)
        P = cov(d, d)
    # A matrix product of d with itself is symmetric only up to rounding.
    return x, 0.5 * (P + P.T)


def ensemble_gain(X: npt.ArrayLike, hz: npt.ArrayLike, R: npt.ArrayLike, *,
                  weights: Optional[npt.ArrayLike] = None,
                  inv: Callable[[np.ndarray], np.ndarray] = np.linalg.inv
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ensemble Kalman gain of a forecast ensemble: ``K, S, SI``.

    The linear-Gaussian summary of the forecast that filterpy's
    ``EnsembleKalmanFilter`` computes: ``S = cov(hz) + R`` (innovation
    covariance), ``SI = inv(S)`` and ``K = cov(X, hz) SI``.

    Parameters
    ----------
    X : ndarray (N, dim_x)
        Forecast ensemble.
    hz : ndarray (N, dim_z)
        Its predicted measurements ``hx(x_i)`` (or simulated measurements,
        with ``R = 0``, when only a simulator is known).
    R : ndarray (dim_z, dim_z)
        Measurement noise covariance.
    weights : ndarray (N,), optional
        Normalised member weights; None or uniform: the plain ``1/(N-1)``
        sample covariances, as filterpy; else the weighted covariances of
        :func:`ensemble_moments`.
    inv : callable, default ``np.linalg.inv``
        Matrix inverse used for ``SI``. If it raises ``LinAlgError`` (a
        singular ``S``), the Moore-Penrose pseudo-inverse is used instead.

    Returns
    -------
    K : ndarray (dim_x, dim_z)
    S : ndarray (dim_z, dim_z)
    SI : ndarray (dim_z, dim_z)
    """
    X = np.asarray(X, dtype=float)
    hz = np.asarray(hz, dtype=float)
    N = X.shape[0]
    w = None if weights is None else np.asarray(weights, dtype=float)
    if w is None or (w == w[0]).all():
        A = X - X.mean(axis=0)
        B = hz - hz.mean(axis=0)
        Cxz, Czz = A.T @ B / (N - 1), B.T @ B / (N - 1)
    else:
        _, _, A, B, cov = weighted_moments(X, hz, w)
        Cxz, Czz = cov(A, B), cov(B, B)
    S = Czz + np.asarray(R, dtype=float)
    S = 0.5 * (S + S.T)
    try:
        SI = np.asarray(inv(S), dtype=float)
    except np.linalg.LinAlgError:
        SI = np.linalg.pinv(S, hermitian=True)
    return Cxz @ SI, S, SI


def _is_int(n):
    return isinstance(n, numbers.Integral) and not isinstance(n, bool)


def _none_z(dim_z):
    # filterpy's marker for "no measurement": a (dim_z, 1) object array of None.
    return np.array([[None] * dim_z]).T


class EnsembleFilter:
    """Base class of filterpy-style ensemble filters (not usable on its own).

    Holds an ensemble ``sigmas`` of N state vectors with normalised
    ``weights``, propagates it with ``predict()`` and hands the analysis in
    ``update(z)`` to the subclass hook ``_analysis(z, R)``. ``x`` and ``P``
    are always the weighted mean and covariance of the ensemble (after
    ``predict``/``update``; after ``initialize`` they are the given ``x, P``,
    as in filterpy).

    Parameters
    ----------
    x : ndarray (dim_x,)
        Initial state mean.
    P : ndarray (dim_x, dim_x) or float
        Initial state covariance, symmetric positive semi-definite; a scalar
        means ``P * I``.
    dim_z : int
        Length of a measurement vector z, >= 1.
    dt : float
        Time step passed to ``fx``.
    N : int
        Number of ensemble members, >= 2.
    hx : callable ``hx(x) -> (dim_z,)``, or None with ``simulate``
        Measurement function. With ``vectorized=True`` it is called once as
        ``hx(sigmas) -> (N, dim_z)``. None: the sensor is the black box
        ``simulate`` alone (a subclass that takes one).
    fx : callable ``fx(x, dt) -> (dim_x,)``
        State transition. With ``vectorized=True`` it is called once as
        ``fx(sigmas, dt) -> (N, dim_x)``.
    rng : None, int or numpy.random.Generator, optional
        Source of every random draw. An int seeds a new generator; a
        Generator is used (and advanced) as is, not copied. ``None`` uses
        fresh OS entropy; the global numpy RNG is never touched.
    vectorized : bool, default False
        Call ``fx``, ``hx`` and ``simulate`` once on the whole ensemble
        instead of once per member.
    simulate : callable ``simulate(x, rng) -> (dim_z,)``, optional
        Stochastic measurement simulator that draws its own (possibly
        non-Gaussian) noise from the Generator it is given; with
        ``vectorized=True`` called as ``simulate(sigmas, rng) -> (N, dim_z)``.
        Used by ``_simulate_measurements`` in place of ``hx(x) + N(0, R)``
        (so ``R`` is then ignored there). Whether a subclass uses simulated
        measurements at all is up to its analysis.

    Attributes
    ----------
    dim_x, dim_z : int
        State and measurement dimensions.
    dt : float
        Time step.
    N : int
        Ensemble size.
    hx, fx, simulate : callable
        As given.
    x : ndarray (dim_x,)
        Current state estimate (weighted ensemble mean).
    P : ndarray (dim_x, dim_x)
        Current state covariance (weighted ensemble covariance).
    x_prior, P_prior : ndarray (dim_x,), (dim_x, dim_x)
        Moments after the last ``predict()``. Read only.
    x_post, P_post : ndarray (dim_x,), (dim_x, dim_x)
        Moments after the last ``update()``. Read only.
    sigmas : ndarray (N, dim_x)
        The ensemble. May be set directly between calls, as in filterpy; the
        next step works from whatever is there (its weights are kept).
    weights : ndarray (N,)
        Normalised member weights (uniform unless the subclass keeps
        weights). Assign a new array rather than editing in place; assigning
        normalises it and updates ``log_weights``.
    log_weights : ndarray (N,)
        ``log(weights)``, kept exactly for weights too small to represent.
    Q : ndarray (dim_x, dim_x)
        Process noise covariance, PSD (may be singular or zero). Default I.
    R : ndarray (dim_z, dim_z)
        Measurement noise covariance, PSD. Default I.
    z : ndarray (dim_z,)
        Last measurement used by ``update``; a (dim_z, 1) array of None after
        construction or ``update(None)``, as in filterpy; a masked array
        (dim_z,) after an update with missing components (their data NaN).
    rng : numpy.random.Generator
        The generator every draw comes from.
    vectorized : bool
        As given.
    log_likelihood : float or None
        Log marginal likelihood ``log p(z | past data)`` estimated by the
        last update, if the analysis provides one; None before any update.
    ess : float or None
        Effective sample size ``1 / sum w_i^2`` of the last analysis weights
        (before any resampling); None before any update.
    K : ndarray (dim_x, dim_z)
        Ensemble Kalman gain ``cov(x, hx(x)) SI`` of the forecast ensemble
        the last update analysed, as filterpy's ``EnsembleKalmanFilter``
        (:func:`ensemble_gain`); zeros before any update. For a
        non-Gaussian filter it is the linear-Gaussian summary of the
        forecast, the gain an EnKF would have used, not the filter's own
        update. After an update with missing components, the
        columns of the unobserved ones are zero (and so are their rows and
        columns of ``S`` and ``SI``).
    S : ndarray (dim_z, dim_z)
        Innovation covariance ``cov(hx(x_i)) + R`` of that forecast; zeros
        before any update.
    SI : ndarray (dim_z, dim_z)
        ``inv(S)``; zeros before any update.
    inv : callable
        Matrix inverse used for ``SI``, ``np.linalg.inv`` by default;
        replaceable (e.g. ``scipy.linalg.pinv``) as in filterpy.

    Notes
    -----
    A subclass implements ``_analysis(z, R) -> dict``. It receives the
    validated measurement ``z`` (dim_z,) and noise ``R`` (dim_z, dim_z), reads
    the ensemble from ``self.sigmas`` (a finite float array (N, dim_x)) and
    ``self.weights`` / ``self.log_weights``, draws random numbers only from
    ``self.rng``, and must not modify ``self``. It returns a dict with

    * ``'sigmas'`` (required): the analysis ensemble, (N, dim_x), finite;
    * ``'weights'`` or ``'log_weights'`` (optional, not both): its weights,
      unnormalised is fine; omitted means uniform;
    * ``'ess'`` (optional): defaults to ``1 / sum w^2`` of the returned
      weights; return it when the analysis weighted members before
      resampling/transporting them;
    * ``'log_likelihood'`` (optional): defaults to None;
    * any other key: set as an attribute of the filter (e.g. ``'K'``),
      except the names the base manages (``x``, ``P``, ``dim_x``, ...).

    The base then computes ``x, P`` from the new weighted ensemble and sets
    ``x_post, P_post`` and ``z``. With missing components (a masked ``z``)
    the hook runs inside ``_observing``: it gets the observed ``z`` and the
    ``R`` sub-block, ``dim_z`` is their number and ``_measure`` /
    ``_simulate_measurements`` return those columns, so an analysis written
    for full measurements needs no change; a subclass with further
    per-observation state overrides ``_observed_attributes(idx)``. Helpers
    for the hook: ``_measure(sigmas)``, ``_simulate_measurements(sigmas, R)``,
    ``_gaussian_noise(cov, n)``.
    ``_repr_extras()`` returns extra ``(label, value)`` pairs for
    ``__repr__``. ``_gain(X, hz, R)`` gives the ``K, S, SI`` entries of the
    forecast the analysis used. ``_reset()`` clears everything an update
    leaves behind; it runs in ``initialize`` (so also at construction), and
    a subclass with its own per-update state extends it (calling super).

    Examples
    --------
    A perturbed-observation ensemble Kalman filter in a few lines:

    >>> import numpy as np
    >>> from filterpy_diffusion.ensemble import EnsembleFilter
    >>> class PerturbedObsEnKF(EnsembleFilter):
    ...     def _analysis(self, z, R):
    ...         y = self._simulate_measurements(self.sigmas, R)
    ...         X = self.sigmas - self.sigmas.mean(axis=0)
    ...         Y = y - y.mean(axis=0)
    ...         K = np.linalg.solve(Y.T @ Y, Y.T @ X).T       # Cxy Cyy^-1
    ...         return {'sigmas': self.sigmas + (z - y) @ K.T}
    >>> F = np.array([[1., 1.], [0., 1.]])
    >>> def fx(x, dt):
    ...     return F @ x
    >>> def hx(x):
    ...     return x[:1]
    >>> f = PerturbedObsEnKF(np.zeros(2), np.eye(2), dim_z=1, dt=1., N=50,
    ...                      hx=hx, fx=fx, rng=0)
    >>> f.Q = 0.01 * np.eye(2)
    >>> for z in [1., 2., 3.]:
    ...     f.predict()
    ...     f.update(z)
    >>> f.x.shape, f.P.shape, f.sigmas.shape
    ((2,), (2, 2), (50, 2))
    """

    # Attributes the base derives itself; an analysis may not return them.
    _MANAGED = frozenset({
        "x", "P", "x_prior", "P_prior", "x_post", "P_post", "z", "dim_x",
        "dim_z", "dt", "N", "hx", "fx", "Q", "R", "rng", "vectorized",
        "simulate"})

    def __init__(self, x: npt.ArrayLike, P: npt.ArrayLike, dim_z: int, dt: float, N: int,
                 hx: Callable[..., np.ndarray], fx: Callable[..., np.ndarray], *, rng: RngLike = None,
                 vectorized: bool = False, simulate: Optional[Callable[..., np.ndarray]] = None):
        if not _is_int(N) or N < 2:
            raise ValueError(f"N must be at least 2 ensemble members, got {N!r}")
        if not _is_int(dim_z) or dim_z < 1:
            raise ValueError(
                f"dim_z must be an integer >= 1 (the length of a measurement z), got {dim_z!r}")
        for name, fn in (("hx", hx), ("fx", fx)):
            if name == "hx" and fn is None and simulate is not None:
                continue    # a black-box sensor: only simulate is called
            if not callable(fn):
                hint = " (or None with simulate=)" if name == "hx" else ""
                raise TypeError(f"{name} must be callable{hint}, got {type(fn).__name__}")
        if simulate is not None and not callable(simulate):
            raise TypeError(f"simulate must be None or callable, got {type(simulate).__name__}")
        x = self._check_x(x)

        self.dim_x = x.shape[0]
        self.dim_z = int(dim_z)
        self.dt = dt
        self.N = int(N)
        self.hx = hx
        self.fx = fx
        self.simulate = simulate
        self.vectorized = bool(vectorized)
        self.rng = as_generator(rng)
        self.inv = np.linalg.inv
        self.initialize(x, P)
        self.Q = np.eye(self.dim_x)
        self.R = np.eye(self.dim_z)

    # ------------------------------------------------------------ weights
    @property
    def weights(self) -> np.ndarray:
        """ndarray (N,): normalised member weights."""
        return self._weights

    @weights.setter
    def weights(self, w):
        self._weights, self._log_weights = self._normalise_weights(w, "weights")

    @property
    def log_weights(self) -> np.ndarray:
        """ndarray (N,): log of the normalised member weights (may hold -inf)."""
        return self._log_weights

    @log_weights.setter
    def log_weights(self, lw):
        self._weights, self._log_weights = self._normalise_log_weights(lw, "log_weights")

    def _normalise_weights(self, w, name):
        w = normalise_weights(w, name, self.N)
        with np.errstate(divide="ignore"):
            return w, np.log(w)

    def _normalise_log_weights(self, lw, name):
        lw = check_log_weights(lw, name, self.N)
        lw = lw - logsumexp(lw)
        return np.exp(lw), lw

    def _set_uniform_weights(self):
        self._weights = np.full(self.N, 1.0 / self.N)
        self._log_weights = np.full(self.N, -np.log(self.N))

    # ------------------------------------------------------------ checks
    @property
    def _max_magnitude(self):
        """Largest accepted ``|value|`` of states and measurements (variances: its square).

        :func:`~filterpy_diffusion._validation.magnitude_limit` of the
        ``N * (dim_x + dim_z)`` terms the analysis sums over.
        """
        return magnitude_limit(self.N * (getattr(self, "dim_x", 1) + self.dim_z))

    def _check_variance(self, C, name):
        check_magnitude(C, name, self._max_magnitude, squared=True)
        return C

    @staticmethod
    def _check_x(x, dim_x=None, limit=None):
        x = np.array(x, dtype=float)     # a copy: the caller keeps their array
        if x.ndim != 1:
            hint = "; pass x.ravel() for a column vector" if x.ndim == 2 and x.shape[1] == 1 else ""
            raise ValueError(f"x must be a 1-D array of shape (dim_x,), got shape {x.shape}{hint}")
        if x.size == 0:
            raise ValueError("x must have at least one element")
        if dim_x is not None and x.shape != (dim_x,):
            raise ValueError(f"x must have shape (dim_x,) = ({dim_x},), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"x must be finite (no NaN or inf), got {x}")
        if limit is not None:
            check_magnitude(x, "x", limit)
        return x

    def _check_z(self, z):
        """The measurement as ``(values (dim_z,), observed (dim_z,) bool)``.

        Masked entries of a ``numpy.ma`` array and ``None`` (or
        ``numpy.ma.masked``) entries of a list or object array are missing
        components: ``observed`` is False there and their value is 0.
        Observed entries must be finite.
        """
        m = self.dim_z
        if z is np.ma.masked:
            values, missing = np.zeros(()), np.ones((), bool)
        else:
            missing = np.ma.getmaskarray(z) if np.ma.isMaskedArray(z) else None
            data = np.ma.getdata(z)
            if not (isinstance(data, np.ndarray) and data.dtype != object):
                obj = np.array(data, dtype=object)
                gap = np.frompyfunc(lambda v: v is None or v is np.ma.masked, 1, 1)(obj)
                gap = np.asarray(gap, dtype=bool)
                if gap.any():
                    data = np.where(gap, 0.0, obj)
                    missing = gap if missing is None else (missing | gap)
            values = np.asarray(data, dtype=float)
            if missing is None:
                missing = np.zeros(values.shape, bool)
            elif missing.shape != values.shape:
                missing = np.broadcast_to(missing, values.shape)
        if values.ndim == 0 and m == 1:
            values, missing = values.reshape(1), missing.reshape(1)
        elif values.ndim == 2 and values.shape[1] == 1:
            values, missing = values[:, 0], missing[:, 0]
        if values.shape != (m,):
            raise ValueError(
                f"z must have shape (dim_z,) = ({m},) (or ({m}, 1), or a scalar when dim_z == 1),"
                f" got {values.shape}")
        observed = ~missing
        values = np.where(observed, values, 0.0)
        if not np.isfinite(values).all():
            i = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(
                f"z contains NaN or inf (component {i}: {values[i]}); for a component that was not"
                f" observed pass a masked array, e.g. np.ma.masked_invalid(z), or None in its place")
        check_magnitude(values[observed], "z", self._max_magnitude)
        return values, observed

    def _check_R(self, R):
        if R is None:
            R = self.R
        return self._check_variance(as_covariance(R, "R", self.dim_z), "R")

    def _checked_sigmas(self):
        s = np.asarray(self.sigmas, dtype=float)
        if s.shape != (self.N, self.dim_x):
            hint = " (is it transposed?)" if s.shape == (self.dim_x, self.N) else ""
            raise ValueError(
                f"sigmas must have shape (N, dim_x) = ({self.N}, {self.dim_x}), got {s.shape}{hint}")
        if not np.isfinite(s).all():
            i = int(np.flatnonzero(~np.isfinite(s).all(axis=1))[0])
            raise ValueError(f"sigmas must be finite; member {i} is {s[i]}")
        check_magnitude(s, "sigmas", self._max_magnitude)
        return s

    @contextmanager
    def _rng_rollback(self):
        # If a step fails part-way, rewind the generator too, so that a retry
        # (or a copy made before the call) draws the same numbers.
        state = self.rng.bit_generator.state
        try:
            yield
        except BaseException:
            self.rng.bit_generator.state = state
            raise

    #: ``(indices, full dim_z)`` of the observed components while an update
    #: with missing components runs (see ``_observing``), else None.
    _observed = None

    @contextmanager
    def _observing(self, idx):
        """Within: the filter looks as if built for the observed components ``idx`` only.

        ``dim_z`` is ``len(idx)``, ``_measure`` and ``_simulate_measurements``
        return those columns only, and the attributes of
        ``_observed_attributes(idx)`` (e.g. the local filters' observation
        lists) are swapped in; everything is restored on exit, also on error.
        """
        idx = np.asarray(idx, dtype=np.intp)
        new = {"dim_z": len(idx), "_observed": (idx, self.dim_z)}
        new.update(self._observed_attributes(idx))
        missing = object()
        old = {k: self.__dict__.get(k, missing) for k in new}
        self.__dict__.update(new)
        try:
            yield
        finally:
            for k, v in old.items():
                if v is missing:
                    self.__dict__.pop(k, None)
                else:
                    self.__dict__[k] = v

    def _observed_attributes(self, idx):
        """Subclass hook: ``{attribute: value}`` of a filter built for the observed components ``idx``."""
        return {}

    # ------------------------------------------------------------ helpers
    def _apply(self, func, sigmas, name, dim, dim_name, cols=None):
        """Apply ``func`` to every row of ``sigmas`` (or once, vectorized), checked.

        ``cols``: keep only these output columns (the observed components of
        a measurement); only they are checked for NaN/inf and range.
        """
        # A copy, so a callable that edits its argument in place cannot
        # change the filter's ensemble.
        work = np.array(sigmas, dtype=float)
        M = work.shape[0]
        if self.vectorized:
            out = np.asarray(func(work), dtype=float)
            if dim == 1 and out.shape == (M,):
                out = out[:, None]
            if out.shape != (M, dim):
                raise ValueError(
                    f"{name} returned shape {out.shape} for the whole ensemble (vectorized=True);"
                    f" expected (N, {dim_name}) = ({M}, {dim})")
        else:
            out = np.empty((M, dim))
            for i in range(M):
                r = np.asarray(func(work[i]), dtype=float)
                if r.shape not in ((dim,), (dim, 1), (1, dim)) and not (r.ndim == 0 and dim == 1):
                    raise ValueError(
                        f"{name} returned shape {r.shape} for member {i}; expected ({dim_name},) = ({dim},)")
                out[i] = r.reshape(dim)
        if cols is not None:
            out = np.ascontiguousarray(out[:, cols])   # same layout (and BLAS rounding) as a restricted hx
        bad = ~np.isfinite(out).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name} returned NaN or inf for member {i} ({int(bad.sum())} of {M} members): "
                f"{out[i]}; expected finite values of shape (N, {dim_name}) = ({M}, {dim})")
        check_magnitude(out, f"{name}'s output", self._max_magnitude,
                        hint=f"rescale the units of {name}")
        return out

    def _measure(self, sigmas):
        """``hx`` applied to each member.

        Parameters
        ----------
        sigmas : ndarray (M, dim_x)

        Returns
        -------
        ndarray (M, dim_z)
            Raises ValueError if hx returns the wrong size or NaN/inf.
        """
        if self._observed is None:
            return self._apply(self.hx, sigmas, "hx", self.dim_z, "dim_z")
        idx, m = self._observed
        return self._apply(self.hx, sigmas, "hx", m, "dim_z", cols=idx)

    def _simulate_measurements(self, sigmas, R):
        """One simulated measurement per member.

        ``simulate(x_i, rng)`` if a simulator was given (``R`` is then
        unused), else ``hx(x_i) + v_i`` with ``v_i ~ N(0, R)`` from ``self.rng``.
        With missing components the simulator still draws full measurements
        and their observed components are returned.

        Parameters
        ----------
        sigmas : ndarray (M, dim_x)
        R : ndarray (dim_z, dim_z) or float

        Returns
        -------
        ndarray (M, dim_z)
        """
        if self.simulate is not None:
            rng = self.rng
            # With missing components the simulator still draws a full
            # measurement; its observed components are an exact draw from the
            # marginal p(y_obs | x), so the rest is simply dropped.
            idx, m = self._observed or (None, self.dim_z)
            return self._apply(lambda s: self.simulate(s, rng), sigmas, "simulate",
                               m, "dim_z", cols=idx)
        hz = self._measure(sigmas)
        return hz + self._gaussian_noise(as_covariance(R, "R", self.dim_z), hz.shape[0])

    def _gaussian_noise(self, cov, n):
        """``n`` draws from N(0, cov) with ``self.rng``: ndarray (n, dim); cov PSD (dim, dim)."""
        cov = np.atleast_2d(cov)
        # The same Q or R on every call: its factor is remembered by content.
        factor = _remembered('psd_factor', cov, lambda: psd_factor(cov))
        return self.rng.standard_normal((n, cov.shape[0])) @ factor.T

    def _gain(self, X, hz, R, weights=None):
        """``{'K', 'S', 'SI'}`` of the forecast ``X`` (N, dim_x) with predictions ``hz``, via ``self.inv``."""
        K, S, SI = ensemble_gain(X, hz, R, weights=weights, inv=self.inv)
        return {"K": K, "S": S, "SI": SI}

    def _reset(self):
        """Clear the per-update state, as after construction (called by ``initialize``).

        Subclasses with their own per-update state (diagnostics, adaptive
        estimates, caches) extend this and call ``super()._reset()``.
        """
        self.z = _none_z(self.dim_z)
        self.K = np.zeros((self.dim_x, self.dim_z))
        self.S = np.zeros((self.dim_z, self.dim_z))
        self.SI = np.zeros((self.dim_z, self.dim_z))
        self.log_likelihood = None
        self.ess = None

    def _analysis(self, z, R):
        """Subclass hook: see the class Notes for the contract."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement _analysis(z, R); EnsembleFilter is a base class")

    def _repr_extras(self):
        """Subclass hook: extra ``(label, value)`` pairs shown by ``__repr__``."""
        return []

    # ------------------------------------------------------------ public
    def initialize(self, x: npt.ArrayLike, P: npt.ArrayLike) -> None:
        """Reset the ensemble to N draws from N(x, P).

        Parameters
        ----------
        x : ndarray (dim_x,)
            State mean.
        P : ndarray (dim_x, dim_x) or float
            State covariance, symmetric PSD (singular allowed); scalar means
            ``P * I``.

        Sets ``x``, ``P`` (the given values, as filterpy does), their
        ``_prior``/``_post`` copies and uniform weights, and resets
        everything an update leaves behind (``z``, ``K``, ``S``, ``SI``,
        ``log_likelihood``, ``ess`` and each filter's own diagnostics and
        adaptive state): afterwards the filter equals a freshly constructed
        one whose generator is in the same state. Settings (``Q``, ``R``,
        ``inv``, the constructor's options) are kept.
        """
        x = self._check_x(x, getattr(self, "dim_x", None), self._max_magnitude)
        P = self._check_variance(as_covariance(P, "P", x.shape[0]), "P")
        with self._rng_rollback():
            sigmas = x + self._gaussian_noise(P, self.N)
            check_magnitude(sigmas, "the initial ensemble x + N(0, P)", self._max_magnitude,
                            hint="reduce x or P")

        self.sigmas = sigmas
        self.x = x
        self.P = P
        self.x_prior = x.copy()
        self.P_prior = P.copy()
        self.x_post = x.copy()
        self.P_post = P.copy()
        self._set_uniform_weights()
        self._reset()

    def predict(self) -> None:
        """Propagate every member: ``x_i <- fx(x_i, dt) + w_i``, ``w_i ~ N(0, Q)``.

        Weights are kept. Sets ``sigmas``, ``x``, ``P`` (weighted ensemble
        moments), ``x_prior`` and ``P_prior``. Raises ValueError, leaving the
        filter unchanged, if ``Q`` is not a symmetric PSD (dim_x, dim_x)
        matrix or ``fx`` returns the wrong shape or NaN/inf.
        """
        sigmas = self._checked_sigmas()
        Q = self._check_variance(as_covariance(self.Q, "Q", self.dim_x), "Q")
        with self._rng_rollback():
            dt = self.dt
            fx = self.fx
            new = self._apply(lambda s: fx(s, dt), sigmas, "fx", self.dim_x, "dim_x")
            new = new + self._gaussian_noise(Q, self.N)
            if not np.isfinite(new).all():
                raise ValueError("the propagated ensemble overflowed to inf after adding process noise")
            check_magnitude(new, "the propagated ensemble (fx(x) + process noise)",
                            self._max_magnitude,
                            hint="rescale the units of fx or Q")
            x, P = ensemble_moments(new, self._weights)
            if not (np.isfinite(x).all() and np.isfinite(P).all()):
                raise ValueError("the mean or covariance of the propagated ensemble overflowed;"
                                 " rescale the units of fx or Q")

        self.sigmas = new
        self.x = x
        self.P = P
        self.x_prior = x.copy()
        self.P_prior = P.copy()

    def update(self, z: Optional[npt.ArrayLike], R: Optional[npt.ArrayLike] = None) -> None:
        """Assimilate the measurement ``z``.

        Parameters
        ----------
        z : ndarray (dim_z,), (dim_z, 1), scalar (dim_z == 1), masked array or None
            The measurement. ``None`` skips the update: ``z`` is set to
            filterpy's array of None and ``x_post, P_post`` to copies of
            ``x, P``. Missing components: masked entries of a
            ``numpy.ma.MaskedArray``, or ``None`` entries of a list or object
            array, were not observed this time; the update then uses only
            the observed components of ``z``, of ``hx(x)`` and of ``R``
            (its rows and columns), exactly as a filter built for those
            components alone would (same random draws). All components
            missing is ``update(None)``. NaN or inf in an observed
            component is an error.
        R : ndarray (dim_z, dim_z), float or None
            Measurement noise covariance (of all dim_z components) for this
            call only; None uses ``self.R``, a scalar means ``R * I``.

        Raises ValueError, leaving the filter unchanged, for a malformed or
        non-finite ``z`` or ``R``, or if ``hx`` misbehaves.

        Notes
        -----
        After an update with missing components, ``z`` is a masked array
        (dim_z,) with the missing entries masked (their data NaN); after a
        full update a plain array, after ``update(None)`` or all components
        missing filterpy's (dim_z, 1) array of None.
        """
        if z is None:
            self.z = _none_z(self.dim_z)
            self.x_post = self.x.copy()
            self.P_post = self.P.copy()
            return
        z, observed = self._check_z(z)
        R = self._check_R(R)
        if not observed.any():
            return self.update(None)
        sigmas = self._checked_sigmas()
        if self.sigmas is not sigmas:
            # Same values; the hook may rely on a float ndarray.
            self.sigmas = sigmas
        with self._rng_rollback():
            if observed.all():
                out = self._analysis(z, R)
            else:
                idx = np.flatnonzero(observed)
                with self._observing(idx):
                    out = self._analysis(z[idx], R[np.ix_(idx, idx)])
                out = self._embed_gain(out, idx)
            new = self._check_analysis(out)
            x, P = ensemble_moments(new["sigmas"], new["_weights"])

        for name, value in new.items():
            setattr(self, name, value)
        self.x = x
        self.P = P
        self.x_post = x.copy()
        self.P_post = P.copy()
        self.z = z if observed.all() else np.ma.array(np.where(observed, z, np.nan),
                                                      mask=~observed)

    def _embed_gain(self, out, idx):
        """``K, S, SI`` of an update that saw only components ``idx``, at full size.

        The unobserved components get zero columns of ``K`` and zero rows and
        columns of ``S`` and ``SI``: they had no gain this time, as filterpy's
        shapes (dim_x, dim_z) and (dim_z, dim_z) are kept.
        """
        out = dict(out)
        m = self.dim_z
        if "K" in out:
            K = np.zeros((self.dim_x, m))
            K[:, idx] = out["K"]
            out["K"] = K
        for name in ("S", "SI"):
            if name in out:
                M = np.zeros((m, m))
                M[np.ix_(idx, idx)] = out[name]
                out[name] = M
        return out

    def _check_analysis(self, out):
        """Validate the hook's dict; returns the attributes to assign."""
        if not isinstance(out, Mapping) or "sigmas" not in out:
            raise TypeError(
                f"{type(self).__name__}._analysis must return a dict with at least 'sigmas',"
                f" got {type(out).__name__}")
        new = dict(out)
        clash = self._MANAGED.intersection(new)
        if clash:
            raise ValueError(
                f"_analysis may not return {sorted(clash)}: the base class derives them from the ensemble")
        if "weights" in new and "log_weights" in new:
            raise ValueError("_analysis must return 'weights' or 'log_weights', not both")

        s = np.array(new.pop("sigmas"), dtype=float)
        if s.shape != (self.N, self.dim_x):
            raise ValueError(
                f"_analysis returned sigmas of shape {s.shape}; expected (N, dim_x) = ({self.N}, {self.dim_x})")
        if not np.isfinite(s).all():
            i = int(np.flatnonzero(~np.isfinite(s).all(axis=1))[0])
            raise ValueError(f"_analysis returned a non-finite member {i}: {s[i]}")
        if "weights" in new:
            w, lw = self._normalise_weights(new.pop("weights"), "weights returned by _analysis")
        elif "log_weights" in new:
            w, lw = self._normalise_log_weights(new.pop("log_weights"), "log_weights returned by _analysis")
        else:
            w, lw = np.full(self.N, 1.0 / self.N), np.full(self.N, -np.log(self.N))
        new.setdefault("ess", kish_ess(w))
        new.setdefault("log_likelihood", None)
        new.update(sigmas=s, _weights=w, _log_weights=lw)
        return new

    def batch_filter(self, zs: Sequence, Rs: Optional[Sequence] = None, update_first: bool = False,
                     saver: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Run predict/update over a sequence of measurements.

        Exactly equivalent to calling ``predict()`` and ``update(z, R)`` in a
        loop (the same random draws in the same order).

        Parameters
        ----------
        zs : sequence of length n, or masked array (n, dim_z)
            Measurements, each anything ``update`` accepts; ``None`` entries
            skip the update (the predicted moments are stored for them). The
            rows of a masked array keep their masks: masked components are
            missing observations (see ``update``).
        Rs : None or sequence of length n, optional
            Per-step measurement covariance (entries may be None for
            ``self.R``); None uses ``self.R`` throughout.
        update_first : bool, default False
            If True update then predict at each step, else predict then update.
        saver : filterpy.common.Saver, optional
            ``saver.save()`` is called after every step.

        Returns
        -------
        means : ndarray (n, dim_x)
            ``x`` after the update of each step.
        covariances : ndarray (n, dim_x, dim_x)
            ``P`` after the update of each step.

        If a step raises, the filter is left as after the last completed call.
        """
        try:
            n = len(zs)
        except TypeError:
            raise TypeError(f"zs must be list-like, got {type(zs).__name__}") from None
        if Rs is None:
            Rs = [None] * n
        elif len(Rs) != n:
            raise ValueError(f"Rs must have one entry per measurement: len(Rs) = {len(Rs)}, len(zs) = {n}")

        means = np.zeros((n, self.dim_x))
        covariances = np.zeros((n, self.dim_x, self.dim_x))
        for k, (z, R) in enumerate(zip(zs, Rs)):
            if not update_first:
                self.predict()
            self.update(z, R)
            means[k] = self.x
            covariances[k] = self.P
            if update_first:
                self.predict()
            if saver is not None:
                saver.save()
        return means, covariances

    def __repr__(self):
        items = [
            ("dim_x", self.dim_x), ("dim_z", self.dim_z), ("dt", self.dt), ("N", self.N),
            ("x", self.x), ("P", self.P), ("x_prior", self.x_prior), ("P_prior", self.P_prior),
            ("Q", self.Q), ("R", self.R), ("sigmas", self.sigmas), ("weights", self.weights),
            ("ess", self.ess), ("log_likelihood", self.log_likelihood),
            ("K", self.K), ("S", self.S), ("hx", self.hx), ("fx", self.fx), ("simulate", self.simulate),
        ] + list(self._repr_extras())
        return "\n".join([f"{type(self).__name__} object"]
                         + [pretty_str(label, value) for label, value in items])

"""filterpy's EnsembleKalmanFilter as a baseline: vectorized forecasts, inflation, a Generator.

filterpy's ``predict`` loops over members in Python, so :class:`EnKFRunner`
propagates the ensemble with the vectorized model and gives filterpy an
identity ``fx``: its ``predict`` then only adds N(0, Q) noise. The forecast
ensemble is inflated, ``X <- mean + lam (X - mean)``, and the analysis is
filterpy's own ``update`` (perturbed observations). filterpy draws its noise
from the global ``numpy.random``; :func:`filterpy_rng` routes those draws to
the run's Generator.
"""
import contextlib
import threading

import numpy as np

import filterpy.kalman.ensemble_kalman_filter as _filterpy_enkf
from filterpy.kalman import EnsembleKalmanFilter

from .twin import cycle_dt

__all__ = ["filterpy_rng", "EnKFRunner"]

# Serialises the patch between threads of one process (a multi-threaded Dask
# worker): the replaced name is a module global, shared by every thread.
_FILTERPY_RNG_LOCK = threading.RLock()


@contextlib.contextmanager
def filterpy_rng(rng):
    """Route filterpy EnKF's random draws to ``rng`` for the duration of a block.

    ``filterpy.kalman.EnsembleKalmanFilter`` draws its initial ensemble,
    process noise and observation perturbations with
    ``numpy.random.multivariate_normal``, imported as the module global
    ``filterpy.kalman.ensemble_kalman_filter.multivariate_normal``: the
    global numpy RNG, which this package never uses. Inside the block that
    global is ``rng.multivariate_normal`` (same call signature), so an EnKF
    run is reproducible from its own seed and independent of anything else
    in the process. The original is restored on exit, also when the block
    raises.

    Parameters
    ----------
    rng : numpy.random.Generator

    Notes
    -----
    Wrap each EnKF call (constructor, ``predict``, ``update``) separately.
    The patch is process-wide: a re-entrant lock keeps two threads of one
    process from interleaving patched blocks, but an EnKF running in
    another thread *outside* such a block would see the patched function
    while one is open. Benchmark runs are single-threaded per process.

    Examples
    --------
    >>> import numpy as np
    >>> import filterpy.kalman.ensemble_kalman_filter as m
    >>> before = m.multivariate_normal
    >>> with filterpy_rng(np.random.default_rng(0)):
    ...     m.multivariate_normal is not before
    True
    >>> m.multivariate_normal is before
    True
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    with _FILTERPY_RNG_LOCK:
        saved = _filterpy_enkf.multivariate_normal
        _filterpy_enkf.multivariate_normal = rng.multivariate_normal
        try:
            yield rng
        finally:
            _filterpy_enkf.multivariate_normal = saved


def _identity_fx(x, dt):
    # EnKF's own predict then only adds the process noise: the model has
    # already been applied to the whole ensemble at once (EnKFRunner.predict).
    return x


class EnKFRunner:
    """filterpy's ``EnsembleKalmanFilter`` with vectorized forecasts and inflation.

    Parameters
    ----------
    problem : Problem
        Supplies ``fx`` (vectorized, applied here), ``hx`` (given to filterpy,
        which calls it per member), ``Q``, ``R``, ``dim_z``.
    ensemble : ndarray (N, dim)
        Initial ensemble (copied).
    rng : int or numpy.random.Generator
        Source of filterpy's draws (through :func:`filterpy_rng`).
    inflation : float, default 1.0
        Multiplicative inflation ``lam`` of the forecast ensemble,
        ``X <- mean + lam (X - mean)``, applied after ``predict``.

    Attributes
    ----------
    kf : filterpy.kalman.EnsembleKalmanFilter
    sigmas : ndarray (N, dim)
        The filterpy filter's ensemble.
    """

    def __init__(self, problem, ensemble, rng, inflation=1.0):
        if not (np.isfinite(inflation) and inflation > 0):
            raise ValueError(f"inflation must be a positive number, got {inflation!r}")
        self.rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        self.model = problem.fx
        self.inflation = float(inflation)
        ens = np.array(ensemble, dtype=float)
        with filterpy_rng(self.rng):
            self.kf = EnsembleKalmanFilter(
                x=ens.mean(axis=0), P=np.eye(problem.dim), dim_z=problem.dim_z,
                dt=cycle_dt(problem), N=ens.shape[0], hx=problem.hx, fx=_identity_fx)
        # copies: the problem's matrices are read-only and shared
        self.kf.Q = np.array(problem.Q, dtype=float)
        self.kf.R = np.array(problem.R, dtype=float)
        self.kf.sigmas = ens

    @property
    def sigmas(self):
        return self.kf.sigmas

    def predict(self):
        """Forecast: vectorized model, filterpy's predict (adds Q noise), then inflation."""
        kf = self.kf
        kf.sigmas = np.asarray(self.model(kf.sigmas, kf.dt), dtype=float)
        with filterpy_rng(self.rng):
            kf.predict()
        lam = self.inflation
        if lam != 1.0:
            # filterpy's update uses kf.x as the forecast mean; inflation keeps it
            kf.sigmas = kf.x + lam * (kf.sigmas - kf.x)
            kf.P = lam ** 2 * kf.P
            kf.P_prior = kf.P.copy()

    def update(self, z):
        """filterpy's perturbed-observation analysis."""
        with filterpy_rng(self.rng):
            self.kf.update(np.asarray(z, dtype=float))


"""Twin-experiment benchmark of ``BENCHMARKS.md``: runner, tuning protocol, tables, plots.

Command line
------------
::

    python -m filterpy_diffusion.benchmark --quick                  # a few minutes on 2 cores
    python -m filterpy_diffusion.benchmark [run] \\
        --problems l63-full l63-z ... --filters dkf enkf sir ... \\
        --N 10 20 50 100 250 --seeds 100 101 102 103 104 --tuning-seeds 0 1 2 \\
        [--cycles C] [--spinup S] [--ref-particles 20000] [--cache-dir DIR] \\
        [--out results/bench.json] [--plots results/plots] \\
        [--workers k | --scheduler ADDRESS] [--markdown] [--no-progress]
    python -m filterpy_diffusion.benchmark table results/bench.json [--markdown]
    python -m filterpy_diffusion.benchmark plot results/bench.json --plots results/plots

``--quick`` runs l63-full, l63-z and toy-abs with dkf, enkf and sir at
N = 20, 100 on reporting seeds 100, 101 and tuning seed 0, with at most 300
cycles (spin-up at most 50), and writes ``results/quick.json`` and plots in
``results/quick_plots`` unless ``--out``/``--plots`` are given; any explicit
option overrides its quick default.
``--cycles`` alone scales every problem's spin-up in proportion;
``--spinup`` alone keeps the problem's cycles.
Without ``--problems`` every problem that all the requested filters support
is run (the localized ``ldkf`` and ``letkf`` only run on the Lorenz-96
problems; the others are left out with a note on stderr). Before any run
every filter is built once on every problem (:func:`check_filters`): an
unsupported problem or a bad option stops the command with a one-line
message.

Protocol (``BENCHMARKS.md``)
----------------------------
Every run is one twin experiment ``twin_experiment(problem, seed, N)``: the
seed fixes the truth, the observations, the initial ensemble, the filter's
generator (``twin.filter_seed``) and the reference sampler
(``twin.reference_seed``), so a run is a pure function of
``(problem, filter, N, seed, knob)`` and gives the same record on any
executor. A filter with a knob (``dkf-tuned``: bandwidth factor, ``enkf``:
multiplicative inflation, ``sir``: jitter) is run on the tuning seeds for
every value of its grid, separately per (problem, N); the knob with the
smallest mean score over the tuning seeds (RMSE, or W2 for the bimodal
problems toy-abs and l63-z) is then used on the reporting seeds. A lost or
diverged tuning run scores +inf; concretely knobs are ranked by (number of
lost or diverged tuning runs, mean score of the others), ties going to the
earlier grid value. Filters with automatic settings (``dkf``, ``dkf-ode``,
``dkf-sde``, ``dkf-exact``) are reported with no tuning at all.

Filters
-------
:data:`FILTERS` is the one registry; a new variant is one line. A filter
spec on the command line is a registry name optionally followed by keyword
options, ``name:key=value,key=value``; values are Python literals
(``ast.literal_eval``) or, failing that, bare strings, e.g.
``dkf:sampler='sde',steps=20``, ``dkf:kernel=isotropic``,
``sir:resample_threshold=0.5``. Options go to the filter's constructor,
except ``knob=`` (fix the knob: no tuning) and ``grid=`` (replace the
tuning grid).

* ``dkf*``: :class:`~filterpy_diffusion.DiffusionKDEFilter` with the
  vectorized model and measurement operator (``vectorized=True``). ``dkf``
  is the default (``kernel='auto'``, ``clusters='auto'``); ``dkf-cov``
  (unsplit, ``clusters=1``), ``dkf-enkpf`` fix one kernel;
  ``dkf-clustered`` is the covariance kernel with ``clusters='auto'``;
  ``dkf-ode``, ``dkf-sde``, ``dkf-exact`` are the unsplit covariance
  kernel with each sampler.
* ``dkf-tuned``: ``sigma_x`` and ``sigma_y`` are callables giving the knob
  times each coordinate's ensemble standard deviation (:class:`ScaledStd`).
* ``enkf``: filterpy's ``EnsembleKalmanFilter`` (see :class:`EnKFRunner`).
  filterpy's predict loops over members in Python, so the ensemble is
  propagated here with the vectorized model and filterpy is given an
  identity ``fx``: its ``predict`` then only adds N(0, Q) noise. The
  forecast ensemble is inflated, ``X <- mean + lam (X - mean)``, and the
  analysis is filterpy's own ``update`` (perturbed observations).
  filterpy draws its noise from the global ``numpy.random``;
  :func:`filterpy_rng` routes those draws to the run's Generator.
* ``sir``: our :class:`~filterpy_diffusion.ParticleFilter`, resampling at
  every update (``resample_threshold=1.0``, the classical bootstrap filter,
  so the analysis ensemble is unweighted) with jitter ``knob`` (Gaussian
  noise of covariance ``knob**2 * P`` after resampling).
* ``ldkf``: :class:`~filterpy_diffusion.localization.LocalDiffusionKDEFilter`
  with its defaults (automatic bandwidth, adaptive inflation, Gaspari-Cohn
  half-width ``DEFAULT_RADIUS``, coherent stitching), no knob.
* ``letkf``: our :class:`~filterpy_diffusion.localization.LETKF` (the same
  localization), multiplicative anomaly inflation ``knob`` tuned over
  :data:`LETKF_INFLATION`.

  Both need a spatial layout (:func:`grid_layout`): the Lorenz-96 problems
  that observe every variable componentwise (l96-40, l96-20-cubic,
  l96-10-abs), a cyclic 1-D grid with variable j and observation j at
  position j, domain length d. On any other problem their builder raises
  ValueError naming the supported problems (:func:`local_problems`).

References for W2
-----------------
W2 is computed at every :data:`W2_EVERY`-th scored cycle (cycles
``spinup, spinup + 10, ...``) against a reference posterior sample of the
same size N:

* toy-abs: the exact grid posterior (:func:`grid_posterior_toy_abs`),
  sampled with :func:`sample_grid`;
* Lorenz-63 problems: a bootstrap particle filter with ``--ref-particles``
  (default 20,000) particles and the true likelihood, run on the same truth
  and observations with its own generator (``twin.reference_seed``); its
  prior is the distribution the filters' initial ensemble is drawn from
  (N(truth_0, I), or for l63-z the attractor: independently perturbed
  starts spun up for ``TRUTH_SPINUP_STEPS`` like the truth). At each W2
  cycle its weighted particles (before resampling) are resampled
  systematically to N points.

The N-point subsample at cycle k uses the generator
``default_rng([reference_seed, N, k])``, so it does not depend on which
other N are computed at the same time. References are computed once per
(problem, cycles, spinup, seed, particles) by a separate job, kept in memory
in each process and, with ``--cache-dir``, on disk (``.npz``).

Records
-------
The JSON file is ``{"meta": {...}, "records": [...], "tuning": [...],
"snapshots": [...]}``. ``meta`` holds the command line, versions of
python/numpy/scipy/filterpy/this package, the UTC date, the settings
(problems, filters with their grids, N, seeds, tuning seeds, reference
particles, executor) and the configuration of every problem. ``records``
has one entry per (problem, filter, N, reporting seed), sorted by the
order of ``--problems``, ``--filters``, then N and seed; ``tuning`` has the
same fields for every tuning run (with ``w2`` null for problems scored by
RMSE); ``snapshots`` (only with ``--plots``) holds a few analysis ensembles
of the bimodal problems. NaN (diverged runs) is written as ``null``.

Fields of a record:

=================  =================  ==================================================
field              type               meaning
=================  =================  ==================================================
problem            str                problem name (``PROBLEMS``)
filter             str                filter spec as given (``'enkf'``, ``'dkf:steps=8'``)
N                  int                ensemble size
seed               int                twin-experiment seed
knob               float or null      knob used (chosen by tuning, or fixed); null if none
tuning_seeds       list[int] or null  seeds the knob was tuned on; null if not tuned
cycles, spinup     int                cycles run and cycles discarded before scoring
rmse               float              time mean over scored cycles of the RMSE of the
                                      analysis mean (weighted mean for weighted ensembles)
spread             float              time mean of the analysis spread
w2                 float or null      mean W2 over every 10th scored cycle; null for
                                      problems without a reference
lost               bool               ``metrics.lost_track`` with the problem's threshold
diverged           bool               the filter raised or produced a non-finite ensemble
                                      (its metrics are then NaN)
error              str or null        the exception or non-finite message if diverged
analysis_time      float              median over cycles of the wall time of ``update``, s
wall_time          float              wall time of the whole run (twin, filter, scores), s
n_evaluations      int or null        score evaluations per update (median over cycles)
                                      for filters that count them
bandwidth_x        list or null       median over cycles of ``bandwidth_x`` per
                                      coordinate, for filters that have it
bandwidth_y        list or null       likewise ``bandwidth_y``
warnings           list[str]          distinct warnings raised during the run,
                                      ``"<count>x <Category>: <message>"`` (at most 5)
=================  =================  ==================================================

:func:`run_one` adds ``ensembles`` (analysis and reference ensembles at the
cycles in ``keep_cycles``) only when asked to; the driver moves them to
``snapshots``.

Parallelism
-----------
Jobs (references, tuning runs, reporting runs) are independent apart from
their inputs; the driver submits each as soon as its inputs (reference,
chosen knob) exist. ``--workers 1`` runs them in-process; ``--workers k``
(default ``os.cpu_count()``) in a ``ProcessPoolExecutor`` (forkserver
start method, one BLAS thread per worker unless the environment says
otherwise); ``--scheduler ADDRESS`` on a Dask cluster
(``dask.distributed.Client(ADDRESS)``, imported only then: ``pip install -e
'.[dask]'``; every worker must be able to import this package). Records are
sorted deterministically, so the executor does not change them (apart from
the timing fields).

Two practical notes. A script that calls :func:`run_benchmark` with more
than one worker needs the ``if __name__ == '__main__':`` guard (workers
re-import the main module). And every matrix in a run is small, so a run
wants one BLAS thread: with a multi-threaded OpenBLAS, tiny calls such as
``scipy.linalg.solve_triangular`` on a (3, 100) array can take milliseconds
instead of microseconds. Pool workers get one thread automatically; for
in-process runs (``--workers 1``) whose timings matter, set
``OPENBLAS_NUM_THREADS=1`` (and ``OMP_NUM_THREADS=1``) in the environment.
"""
import argparse
import ast
import concurrent.futures as cf
import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import multiprocessing
import os
import platform
import re
import sys
import threading
import time
import warnings
from collections import Counter, defaultdict

import numpy as np
import scipy
from scipy.special import logsumexp

import filterpy
import filterpy.kalman.ensemble_kalman_filter as _filterpy_enkf
from filterpy.kalman import EnsembleKalmanFilter

from . import __version__
from ._validation import psd_factor
from .filter import DiffusionKDEFilter
from .localization import LETKF, LocalDiffusionKDEFilter
from .metrics import lost_track, rmse, spread, wasserstein2
from .particle import ParticleFilter, gaussian_log_likelihood, systematic_resample
from .systems import (PROBLEMS, TRUTH_SPINUP_STEPS, AbsObs, CubicObs, IdentityObs, get_problem,
                      grid_posterior_toy_abs, integrate, sample_grid, twin_experiment)

__all__ = [
    "FILTERS", "FilterEntry", "FilterSpec", "parse_filter_spec", "build_filter", "check_filters",
    "grid_layout", "local_problems",
    "ScaledStd", "EnKFRunner", "filterpy_rng",
    "Reference", "reference_posterior", "run_one", "choose_knob", "run_benchmark",
    "format_tables", "make_plots", "main",
    "W2_EVERY", "REFERENCE_PARTICLES", "RECORD_FIELDS", "LETKF_INFLATION",
]

#: W2 is computed at every W2_EVERY-th scored cycle.
W2_EVERY = 10
#: Particles of the bootstrap reference filter (BENCHMARKS.md: at least 20,000).
REFERENCE_PARTICLES = 20_000

BANDWIDTH_FACTORS = (0.05, 0.1, 0.2, 0.4, 0.8)
INFLATION_FACTORS = (1.0, 1.02, 1.05, 1.1, 1.2)
#: LETKF anomaly inflation grid; finer than the EnKF's near 1 (also used by
#: ``benchmarks/localization.py``).
LETKF_INFLATION = (1.0, 1.01, 1.02, 1.03, 1.05, 1.1, 1.2)
JITTERS = (0.0, 0.05, 0.1, 0.2, 0.4)

DEFAULT_PROBLEMS = tuple(PROBLEMS)
# dkf-ode is left out: with the current defaults it is the same filter as dkf.
DEFAULT_FILTERS = ("dkf", "dkf-sde", "dkf-exact", "dkf-tuned", "enkf", "sir")
DEFAULT_N = (10, 20, 50, 100, 250)
DEFAULT_SEEDS = (100, 101, 102, 103, 104)
DEFAULT_TUNING_SEEDS = (0, 1, 2)
DEFAULT_OUT = os.path.join("results", "bench.json")

#: ``--quick``: a small version of the comparison on real problems (minutes on 2 cores).
QUICK = {
    "problems": ("l63-full", "l63-z", "toy-abs"),
    "filters": ("dkf", "enkf", "sir"),
    "N": (20, 100),
    "seeds": (100, 101),
    "tuning_seeds": (0,),
    "max_cycles": 300,
    "max_spinup": 50,
    "out": os.path.join("results", "quick.json"),
    "plots": os.path.join("results", "quick_plots"),
}

#: Fields of every record, in output order (see the module docstring).
RECORD_FIELDS = (
    "problem", "filter", "N", "seed", "knob", "tuning_seeds", "cycles", "spinup",
    "rmse", "spread", "w2", "lost", "diverged", "error",
    "analysis_time", "wall_time", "n_evaluations", "bandwidth_x", "bandwidth_y", "warnings",
)
#: Fields that measure time and so differ between otherwise identical runs.
TIMING_FIELDS = ("analysis_time", "wall_time")


# ---------------------------------------------------------------------------
# filterpy's EnKF with a Generator
# ---------------------------------------------------------------------------

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
                dt=_cycle_dt(problem), N=ens.shape[0], hx=problem.hx, fx=_identity_fx)
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


# ---------------------------------------------------------------------------
# Filter registry
# ---------------------------------------------------------------------------

def _cycle_dt(problem):
    # Only passed along to fx (LorenzModel ignores it: the cycle length is fixed).
    return problem.dt_int * problem.obs_every if problem.dt_int else 1.0


def _std_floored(a):
    std = a.std(axis=0, ddof=1)
    # a collapsed coordinate still needs a positive kernel width
    return np.maximum(std, np.sqrt(np.finfo(float).eps) * (1.0 + np.abs(a.mean(axis=0))))


@dataclasses.dataclass(frozen=True)
class ScaledStd:
    """Bandwidth callable: ``factor`` times each coordinate's ensemble std.

    ``DiffusionKDEFilter`` calls a bandwidth callable as
    ``(states, measurements)`` for both ``sigma_x`` and ``sigma_y``, so the
    block to scale is part of the object. Picklable.

    Parameters
    ----------
    factor : float
    block : {'x', 'y'}
        Scale the states (for ``sigma_x``) or the measurements (``sigma_y``).
    """
    factor: float
    block: str = "x"

    def __call__(self, states, measurements):
        a = states if self.block == "x" else measurements
        return self.factor * _std_floored(np.asarray(a, dtype=float))


def _ensemble_filter(cls, problem, ensemble, seed, **options):
    """``cls(x, P, dim_z, dt, N, hx, fx, rng=seed, vectorized=True, **options)`` holding ``ensemble``."""
    ens = np.array(ensemble, dtype=float)
    f = cls(ens.mean(axis=0), np.eye(problem.dim), problem.dim_z, _cycle_dt(problem),
            ens.shape[0], problem.hx, problem.fx, rng=seed, vectorized=True, **options)
    f.Q = np.array(problem.Q, dtype=float)
    f.R = np.array(problem.R, dtype=float)
    f.sigmas = ens
    return f


def _dkf(problem, ensemble, seed, knob=None, **options):
    if knob is not None:
        raise ValueError("this DiffusionKDEFilter variant has no knob; use 'dkf-tuned' or omit knob")
    return _ensemble_filter(DiffusionKDEFilter, problem, ensemble, seed, **options)


def _dkf_tuned(problem, ensemble, seed, knob, **options):
    # The knob is the bandwidth factor: of each coordinate's ensemble std for
    # the isotropic kernel (as the published method, tuned per problem), of
    # the joint covariance (h) for the covariance kernel.
    if options.get("kernel", "isotropic") == "isotropic":
        options.update(sigma_x=ScaledStd(knob, "x"), sigma_y=ScaledStd(knob, "y"))
    else:
        options.update(bandwidth=knob)
    return _dkf(problem, ensemble, seed, **options)


def _enkf(problem, ensemble, seed, knob, **options):
    return EnKFRunner(problem, ensemble, seed, inflation=knob, **options)


def _sir(problem, ensemble, seed, knob, **options):
    options.setdefault("resample_threshold", 1.0)
    return _ensemble_filter(ParticleFilter, problem, ensemble, seed, jitter=knob, **options)


# hx that observe every state variable on its own: observation l is at variable l
_COMPONENTWISE_OBS = (IdentityObs, AbsObs, CubicObs)


def grid_layout(problem):
    """Spatial layout of a problem for the localized filters, or None.

    Lorenz-96 problems that observe every variable componentwise (l96-40,
    l96-20-cubic, l96-10-abs, and the same settings in any dimension) live on
    a cyclic 1-D grid of unit spacing: state variable j and observation j are
    at position j, the domain length is d. The other problems (toy-abs, the
    Lorenz-63 ones) have no spatial structure to localize on.

    Returns
    -------
    dict or None
        ``state_positions``, ``obs_positions`` and ``domain_length``, the
        keywords of the local filters; None when the problem has no layout.
    """
    if (problem.system != "l96" or problem.dim_z != problem.dim
            or not isinstance(problem.hx, _COMPONENTWISE_OBS)):
        return None
    d = problem.dim
    return {"state_positions": np.arange(d), "obs_positions": np.arange(d), "domain_length": d}


def local_problems():
    """Names of the :data:`PROBLEMS` the localized filters (ldkf, letkf) support."""
    return [name for name, p in PROBLEMS.items() if grid_layout(p) is not None]


def _local(cls, filter_name, problem, ensemble, seed, **options):
    layout = grid_layout(problem)
    if layout is None:
        raise ValueError(
            f"{filter_name!r} ({cls.__name__}) is localized and needs a spatial grid, which "
            f"problem {problem.name!r} does not have. Supported problems (Lorenz-96, every "
            f"variable observed): {local_problems()}; pass them with --problems")
    return _ensemble_filter(cls, problem, ensemble, seed, **{**layout, **options})


def _ldkf(problem, ensemble, seed, knob=None, **options):
    if knob is not None:
        raise ValueError("ldkf has no knob (automatic bandwidth and adaptive inflation)")
    return _local(LocalDiffusionKDEFilter, "ldkf", problem, ensemble, seed, **options)


def _letkf(problem, ensemble, seed, knob, **options):
    return _local(LETKF, "letkf", problem, ensemble, seed, inflation=knob, **options)


@dataclasses.dataclass(frozen=True)
class FilterEntry:
    """One registry entry.

    Attributes
    ----------
    build : callable ``build(problem, ensemble, seed, knob, **options) -> filter``
        Returns an object with ``predict()``, ``update(z)`` and ``sigmas``
        (N, dim); optional ``weights``, ``bandwidth_x``, ``bandwidth_y``,
        ``n_evaluations`` are recorded when present.
    grid : tuple of float or None
        Knob values tried on the tuning seeds; None: not tuned.
    options : tuple of (str, value)
        Constructor keywords of this variant.
    knob_name : str or None
        What the knob is (for tables and docs).
    supports : callable ``supports(problem) -> bool`` or None
        The problems the filter can run on (None: all); the command line
        leaves the others out of its default problem list. The builder
        itself raises ValueError on an unsupported problem.
    """
    build: object
    grid: tuple = None
    options: tuple = ()
    knob_name: str = None
    supports: object = None

    def supported(self, problem):
        """Whether the filter can run on ``problem`` (a Problem)."""
        return self.supports is None or bool(self.supports(problem))


def _has_grid_layout(problem):
    return grid_layout(problem) is not None


#: The filters of the benchmark. A new variant is one line.
FILTERS = {
    "dkf": FilterEntry(_dkf),
    # the covariance kernel with each sampler
    "dkf-ode": FilterEntry(_dkf, options=(("kernel", "covariance"), ("clusters", 1),
                                          ("sampler", "ode"))),
    "dkf-sde": FilterEntry(_dkf, options=(("kernel", "covariance"), ("clusters", 1),
                                          ("sampler", "sde"))),
    "dkf-exact": FilterEntry(_dkf, options=(("kernel", "covariance"), ("clusters", 1),
                                            ("sampler", "exact"))),
    "dkf-iso": FilterEntry(_dkf, options=(("kernel", "isotropic"),)),
    "dkf-cov": FilterEntry(_dkf, options=(("kernel", "covariance"), ("clusters", 1))),
    "dkf-enkpf": FilterEntry(_dkf, options=(("kernel", "enkpf"),)),
    "dkf-clustered": FilterEntry(_dkf, options=(("kernel", "covariance"), ("clusters", "auto"))),
    # the published method: isotropic kernel, bandwidth factor tuned per problem
    "dkf-tuned": FilterEntry(_dkf_tuned, BANDWIDTH_FACTORS, options=(("kernel", "isotropic"),),
                             knob_name="bandwidth factor"),
    "dkf-cov-tuned": FilterEntry(_dkf_tuned, BANDWIDTH_FACTORS,
                                 options=(("kernel", "covariance"), ("clusters", 1)),
                                 knob_name="h"),
    "enkf": FilterEntry(_enkf, INFLATION_FACTORS, knob_name="inflation"),
    "sir": FilterEntry(_sir, JITTERS, knob_name="jitter"),
    # localized filters: Lorenz-96 problems only (grid_layout)
    "ldkf": FilterEntry(_ldkf, supports=_has_grid_layout),
    "letkf": FilterEntry(_letkf, LETKF_INFLATION, knob_name="inflation", supports=_has_grid_layout),
}


@dataclasses.dataclass(frozen=True)
class FilterSpec:
    """A parsed filter spec ``name:key=value,...``.

    Attributes
    ----------
    spec : str
        The string as given (the record's ``filter`` field).
    name : str
        Registry name.
    options : dict
        Constructor keywords: the entry's, updated by the spec's.
    grid : tuple of float or None
        Tuning grid; None when the filter is not tuned (no knob, or fixed).
    fixed_knob : float or None
        Knob given with ``knob=``.
    """
    spec: str
    name: str
    options: dict
    grid: tuple
    fixed_knob: object

    @property
    def entry(self):
        return FILTERS[self.name]

    @property
    def tuned(self):
        return self.grid is not None


def _split_top_level(s):
    # split on commas outside brackets and quotes: sampler_options={'a': 1, 'b': 2}
    parts, depth, quote, start = [], 0, None, 0
    for i, c in enumerate(s):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return [p.strip() for p in parts if p.strip()]


def _literal(v):
    try:
        return ast.literal_eval(v)
    except (ValueError, SyntaxError):
        return v        # a bare word: kernel=isotropic


def parse_filter_spec(spec):
    """Parse ``name`` or ``name:key=value,key=value`` into a :class:`FilterSpec`.

    Parameters
    ----------
    spec : str
        A registry name (:data:`FILTERS`) with optional constructor options.
        Values are Python literals or bare strings. ``knob=v`` fixes the
        knob (no tuning); ``grid=(...)`` replaces the tuning grid.

    Returns
    -------
    FilterSpec

    Examples
    --------
    >>> s = parse_filter_spec("dkf:sampler=sde,steps=8")
    >>> s.name, s.options, s.tuned
    ('dkf', {'sampler': 'sde', 'steps': 8}, False)
    >>> parse_filter_spec("enkf:knob=1.05").fixed_knob
    1.05
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"a filter spec must be a non-empty string, got {spec!r}")
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r} in spec {spec!r}; choose one of {sorted(FILTERS)}")
    entry = FILTERS[name]
    given = {}
    for item in _split_top_level(rest):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise ValueError(f"filter option {item!r} in {spec!r} is not of the form key=value")
        given[key] = _literal(value.strip())
    if entry.grid is None and ("knob" in given or "grid" in given):
        raise ValueError(f"filter {name!r} has no knob; knob= and grid= do not apply ({spec!r})")
    options = dict(entry.options)
    options.update(given)
    fixed = options.pop("knob", None)
    grid = options.pop("grid", entry.grid)
    if fixed is not None:
        fixed, grid = float(fixed), None
    elif grid is not None:
        grid = tuple(float(g) for g in np.atleast_1d(grid))
        if not grid:
            raise ValueError(f"empty tuning grid in {spec!r}")
    return FilterSpec(spec=spec, name=name, options=options, grid=grid, fixed_knob=fixed)


def build_filter(spec, problem, ensemble, seed, knob=None):
    """Construct the filter of a spec for one run.

    Parameters
    ----------
    spec : str or FilterSpec
    problem : Problem
    ensemble : ndarray (N, dim)
        Initial ensemble (the filter's ``sigmas``).
    seed : int
        The filter's generator seed (``twin.filter_seed``).
    knob : float or None
        Required for tuned filters, unless the spec fixes it.

    Returns
    -------
    filter
        An object with ``predict()``, ``update(z)`` and ``sigmas``.
    """
    if isinstance(spec, str):
        spec = parse_filter_spec(spec)
    if spec.fixed_knob is not None:
        if knob is not None and float(knob) != spec.fixed_knob:
            raise ValueError(f"{spec.spec!r} fixes knob={spec.fixed_knob}, got knob={knob}")
        knob = spec.fixed_knob
    if spec.entry.grid is not None and knob is None:
        raise ValueError(
            f"filter {spec.name!r} needs its {spec.entry.knob_name} knob: pass knob= (its grid is "
            f"{spec.entry.grid}), fix it in the spec ('{spec.name}:knob=...') or use run_benchmark, "
            "which tunes it")
    return spec.entry.build(problem, ensemble, seed, knob, **dict(spec.options))


def check_filters(problems, filters, N=10):
    """Build every filter on every problem once (2 cycles): fail fast, before any run.

    Catches typos in options and filters that cannot run on a problem
    (``ldkf`` on a Lorenz-63 problem) before hours of other runs.

    Parameters
    ----------
    problems : sequence of str
    filters : sequence of str or FilterSpec
    N : int
        Ensemble size of the trial construction.

    Raises
    ------
    ValueError
        Naming the filter and the problem, with the builder's message (also
        for the TypeError of an unknown constructor option).
    """
    specs = [parse_filter_spec(f) if isinstance(f, str) else f for f in filters]
    for name in problems:
        tw = twin_experiment(resolve_problem(name, 2, 0), 0, max(2, int(N)))
        for spec in specs:
            try:
                build_filter(spec, tw.problem, tw.initial_ensemble, 0,
                             spec.grid[0] if spec.tuned else None)
            except (ValueError, TypeError) as e:      # TypeError: an unknown option
                raise ValueError(f"{spec.spec!r} on {name!r}: {e}") from e


# ---------------------------------------------------------------------------
# Problems and references
# ---------------------------------------------------------------------------

def resolve_problem(name, cycles=None, spinup=None):
    """The problem ``name`` with optional cycles/spin-up overrides.

    ``cycles`` alone scales the spin-up in proportion (so a short run still
    discards the same fraction); ``spinup`` alone keeps the cycles.
    """
    base = get_problem(name)
    if cycles is None and spinup is None:
        return base
    c = base.cycles if cycles is None else int(cycles)
    if spinup is None:
        s = int(round(base.spinup * c / base.cycles))
    else:
        s = int(spinup)
    if c < 1 or not 0 <= s < c:
        raise ValueError(f"{name}: need cycles >= 1 and 0 <= spinup < cycles, got cycles={c}, spinup={s}")
    return get_problem(name, cycles=c, spinup=s)


def w2_cycles(problem):
    """Cycles at which W2 is computed: ndarray ``spinup, spinup + 10, ... < cycles``."""
    return np.arange(problem.spinup, problem.cycles, W2_EVERY)


@dataclasses.dataclass
class Reference:
    """Reference posterior samples of one twin experiment.

    Attributes
    ----------
    cycles : ndarray (K,) of int
        The W2 cycles.
    samples : dict int -> ndarray (K, N, dim)
        N-point reference sample at each W2 cycle, per ensemble size N.
    balance : ndarray (K,)
        ``min(P(x_0 > 0), P(x_0 < 0))`` of the reference at each W2 cycle:
        near 0.5 where the posterior is split between the two mirror modes.
    """
    cycles: np.ndarray
    samples: dict
    balance: np.ndarray


_REFERENCE_CACHE = {}
_REFERENCE_CACHE_SIZE = 64
_REFERENCE_VERSION = 1


def _reference_key(problem, twin, particles):
    # The observations pin the truth and noise; the config pins the rest. A
    # changed problem definition gives a new key, never a stale cache hit.
    h = hashlib.sha256()
    h.update(json.dumps(_problem_config(problem), sort_keys=True).encode())
    h.update(np.ascontiguousarray(twin.observations).tobytes())
    h.update(np.ascontiguousarray(twin.truth[0]).tobytes())
    h.update(f"{twin.reference_seed}/{particles}/{W2_EVERY}/{_REFERENCE_VERSION}".encode())
    return f"ref-{problem.name}-c{problem.cycles}-s{problem.spinup}-seed{twin.seed}-{h.hexdigest()[:16]}"


def _subsample_rng(twin, N, k):
    return np.random.default_rng([twin.reference_seed, int(N), int(k)])


def _grid_reference(problem, twin, Ns):
    grid, density = grid_posterior_toy_abs(twin.observations, R=float(problem.R[0, 0]),
                                           Q=float(problem.Q[0, 0]))
    ks = w2_cycles(problem)
    dx = grid[1] - grid[0]
    balance = np.array([min(density[k][grid > 0].sum(), density[k][grid < 0].sum()) * dx
                        for k in ks])
    samples = {N: np.stack([sample_grid(grid, density[k], N, rng=_subsample_rng(twin, N, k))
                            for k in ks]) for N in Ns}
    return Reference(ks, samples, balance)


def _reference_prior(problem, twin, particles, rng):
    d = problem.dim
    if problem.initial == "truth":
        return twin.truth[0] + rng.standard_normal((particles, d))
    if problem.initial == "attractor":
        # Independently perturbed starts, spun up like the truth: after 20
        # time units (~18 Lyapunov times) they are spread over the attractor.
        x = np.asarray(problem.x0, dtype=float) + problem.truth_perturbation * rng.standard_normal((particles, d))
        return integrate(problem.fx.tendency, x, problem.dt_int, TRUTH_SPINUP_STEPS)
    raise ValueError(f"no particle reference prior for initial={problem.initial!r}")


def _particle_reference(problem, twin, Ns, particles):
    rng = np.random.default_rng(twin.reference_seed)
    X = _reference_prior(problem, twin, particles, rng)
    Q = np.asarray(problem.Q, dtype=float)
    Lq = psd_factor(Q)
    noisy = bool(np.any(Lq != 0))
    ks = w2_cycles(problem)
    at = {int(k): j for j, k in enumerate(ks)}
    samples = {N: np.empty((len(ks), N, problem.dim)) for N in Ns}
    balance = np.empty(len(ks))
    for k in range(problem.cycles):
        X = problem.fx(X, None)
        if noisy:
            X = X + rng.standard_normal(X.shape) @ Lq.T
        ll = gaussian_log_likelihood(twin.observations[k], problem.hx(X), problem.R)
        w = np.exp(ll - logsumexp(ll))
        j = at.get(k)
        if j is not None:
            pos = w[X[:, 0] > 0].sum()
            balance[j] = max(0.0, min(pos, 1.0 - pos))
            for N in Ns:
                samples[N][j] = X[systematic_resample(w, _subsample_rng(twin, N, k), N)]
        # bootstrap filter: resample at every cycle
        X = X[systematic_resample(w, rng)]
    return Reference(ks, samples, balance)


def reference_posterior(problem, seed, Ns, particles=REFERENCE_PARTICLES, cache_dir=None):
    """Reference posterior samples for W2 (see the module docstring).

    Parameters
    ----------
    problem : Problem or str
        A problem with ``reference`` 'grid' or 'particle'.
    seed : int
        Twin-experiment seed.
    Ns : iterable of int
        Ensemble sizes to draw N-point samples for.
    particles : int
        Particles of the bootstrap reference filter (Lorenz-63 problems).
    cache_dir : str or None
        Directory for ``.npz`` caches; None keeps only the in-process cache.

    Returns
    -------
    Reference
    """
    if isinstance(problem, str):
        problem = get_problem(problem)
    if problem.reference not in ("grid", "particle"):
        raise ValueError(f"problem {problem.name!r} has no reference posterior")
    Ns = sorted({int(n) for n in Ns})
    twin = twin_experiment(problem, seed, 2)
    key = _reference_key(problem, twin, particles if problem.reference == "particle" else 0)

    ref = _REFERENCE_CACHE.get(key)
    if ref is None and cache_dir:
        ref = _load_reference(os.path.join(cache_dir, key + ".npz"))
    missing = [n for n in Ns if ref is None or n not in ref.samples]
    if missing:
        if problem.reference == "grid":
            new = _grid_reference(problem, twin, missing)
        else:
            new = _particle_reference(problem, twin, missing, int(particles))
        if ref is not None:
            new.samples.update({n: a for n, a in ref.samples.items() if n not in new.samples})
        ref = new
        if cache_dir:
            _save_reference(os.path.join(cache_dir, key + ".npz"), ref)
    if len(_REFERENCE_CACHE) >= _REFERENCE_CACHE_SIZE:
        _REFERENCE_CACHE.pop(next(iter(_REFERENCE_CACHE)))
    _REFERENCE_CACHE[key] = ref
    return Reference(ref.cycles, {n: ref.samples[n] for n in Ns}, ref.balance)


def _load_reference(path):
    try:
        with np.load(path) as f:
            samples = {int(k[1:]): f[k] for k in f.files if k.startswith("N")}
            return Reference(f["cycles"], samples, f["balance"])
    except (OSError, KeyError, ValueError):
        return None


def _save_reference(path, ref):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, cycles=ref.cycles, balance=ref.balance,
             **{f"N{n}": a for n, a in ref.samples.items()})
    os.replace(tmp, path)      # atomic: concurrent writers never leave half a file


def _reference_job(problem_name, cycles, spinup, seed, Ns, particles, cache_dir):
    problem = resolve_problem(problem_name, cycles, spinup)
    return reference_posterior(problem, seed, Ns, particles, cache_dir)


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------

def _median_vector(vs):
    if not vs:
        return None
    return [float(v) for v in np.median(np.stack([np.atleast_1d(np.asarray(v, float)) for v in vs]),
                                        axis=0)]


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _summarise_warnings(caught, limit=5):
    # numbers replaced by '#', so one warning repeated with new values counts once
    counts = Counter(f"{w.category.__name__}: {_NUMBER.sub('#', str(w.message).splitlines()[0])[:160]}"
                     for w in caught)
    return [f"{n}x {msg}" for msg, n in counts.most_common(limit)]


def _uniform_sample(X, w, rng):
    # an unweighted N-point version of a weighted ensemble, for W2
    if w is None or np.allclose(w, w[0]):
        return X
    return X[systematic_resample(np.asarray(w, float), rng, X.shape[0])]


def run_one(problem_name, filter_spec, N, seed, cycles=None, spinup=None, knob=None, *,
            reference=None, compute_w2=True, ref_particles=REFERENCE_PARTICLES, cache_dir=None,
            keep_cycles=None, tuning_seeds=None):
    """Run one twin experiment with one filter and score it.

    Parameters
    ----------
    problem_name : str
        A key of :data:`~filterpy_diffusion.systems.PROBLEMS`.
    filter_spec : str or FilterSpec
        A :data:`FILTERS` name with optional options (:func:`parse_filter_spec`).
    N : int
        Ensemble size.
    seed : int
        Twin-experiment seed (truth, observations, initial ensemble, filter
        and reference streams all derive from it).
    cycles, spinup : int, optional
        Overrides of the problem's cycles and spin-up (:func:`resolve_problem`).
    knob : float, optional
        The knob of a tuned filter (required for them unless fixed in the spec).
    reference : Reference, optional
        Precomputed reference (must hold samples for ``N``); computed (and
        cached) here when needed and not given.
    compute_w2 : bool, default True
        Score W2 for problems with a reference (tuning runs of problems
        scored by RMSE skip it).
    ref_particles : int
        Particles of the bootstrap reference, when computed here.
    cache_dir : str, optional
        Reference cache directory.
    keep_cycles : sequence of int, optional
        Keep the analysis ensemble (and the reference sample, if any) at
        these cycles in an extra ``ensembles`` field.
    tuning_seeds : sequence of int, optional
        Recorded as the record's ``tuning_seeds`` (the driver's bookkeeping).

    Returns
    -------
    record : dict
        The fields of :data:`RECORD_FIELDS` (module docstring), plus
        ``ensembles`` when ``keep_cycles`` is given.
    """
    t_start = time.perf_counter()
    problem = resolve_problem(problem_name, cycles, spinup)
    spec = parse_filter_spec(filter_spec) if isinstance(filter_spec, str) else filter_spec
    N, seed = int(N), int(seed)
    if spec.fixed_knob is not None and knob is None:
        knob = spec.fixed_knob
    knob = None if knob is None else float(knob)
    twin = twin_experiment(problem, seed, N)

    with_w2 = compute_w2 and problem.reference is not None
    if with_w2:
        if reference is None or N not in reference.samples:
            reference = reference_posterior(problem, seed, [N], ref_particles, cache_dir)
        ref_cycles = {int(k): j for j, k in enumerate(reference.cycles)}
        ref_samples = reference.samples[N]
    keep = {int(k) for k in (keep_cycles or ())}
    kept = {}

    # Constructor errors are configuration mistakes, not divergence: let them raise.
    f = build_filter(spec, problem, twin.initial_ensemble, twin.filter_seed, knob)

    K = problem.cycles
    rmses = np.full(K, np.nan)
    spreads = np.full(K, np.nan)
    w2s = []
    times, evals, bws_x, bws_y = [], [], [], []
    score_rng = np.random.default_rng([twin.filter_seed, 1])
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(K):
            try:
                f.predict()
                t0 = time.perf_counter()
                f.update(twin.observations[k])
                times.append(time.perf_counter() - t0)
            except Exception as e:      # a diverged run is a result, not a crash
                error = f"{type(e).__name__} at cycle {k}: {str(e)[:300]}"
                break
            X = np.asarray(f.sigmas, dtype=float)
            if not np.all(np.isfinite(X)):
                error = f"non-finite analysis ensemble at cycle {k}"
                break
            w = getattr(f, "weights", None)
            rmses[k] = rmse(X, twin.truth[k + 1], w)
            spreads[k] = spread(X, w)
            if getattr(f, "n_evaluations", None) is not None:
                evals.append(f.n_evaluations)
            if getattr(f, "bandwidth_x", None) is not None:
                bws_x.append(f.bandwidth_x)
            if getattr(f, "bandwidth_y", None) is not None:
                bws_y.append(f.bandwidth_y)
            if (with_w2 and k in ref_cycles) or k in keep:
                Xu = _uniform_sample(X, w, score_rng)
                if with_w2 and k in ref_cycles:
                    w2s.append(wasserstein2(Xu, ref_samples[ref_cycles[k]]))
                if k in keep:
                    kept[k] = {"ensemble": Xu.tolist(),
                               "reference": (ref_samples[ref_cycles[k]].tolist()
                                             if with_w2 and k in ref_cycles else None)}

    diverged = error is not None
    scored = rmses[problem.spinup:]
    nan = float("nan")
    record = {
        "problem": problem.name,
        "filter": spec.spec,
        "N": N,
        "seed": seed,
        "knob": knob,
        "tuning_seeds": None if tuning_seeds is None else [int(s) for s in tuning_seeds],
        "cycles": int(K),
        "spinup": int(problem.spinup),
        "rmse": nan if diverged else float(scored.mean()),
        "spread": nan if diverged else float(spreads[problem.spinup:].mean()),
        "w2": (nan if diverged else float(np.mean(w2s))) if with_w2 else None,
        "lost": bool(lost_track(scored, problem.lost_threshold)),
        "diverged": diverged,
        "error": error,
        "analysis_time": float(np.median(times)) if times else nan,
        "wall_time": 0.0,
        "n_evaluations": int(np.median(evals)) if evals else None,
        "bandwidth_x": _median_vector(bws_x),
        "bandwidth_y": _median_vector(bws_y),
        "warnings": _summarise_warnings(caught),
    }
    if keep_cycles is not None:
        record["ensembles"] = {str(k): v for k, v in sorted(kept.items())}
    record["wall_time"] = time.perf_counter() - t_start
    return record


# ---------------------------------------------------------------------------
# Tuning
# ---------------------------------------------------------------------------

def objective_name(problem):
    """The tuning score of a problem: 'w2' for the bimodal problems, else 'rmse'."""
    return "w2" if problem.bimodal else "rmse"


def choose_knob(grid, records, objective):
    """The knob minimising the mean tuning score; lost or diverged runs count as +inf.

    Parameters
    ----------
    grid : sequence of float
        Knob values in preference order (ties go to the earlier one).
    records : iterable of dict
        Tuning records with ``knob``, ``lost``, ``diverged`` and the objective.
    objective : {'rmse', 'w2'}

    Returns
    -------
    knob : float
        Ranked by (number of bad runs, mean score of the others): with at
        least one knob free of bad runs this is exactly "minimise the mean,
        bad runs = +inf"; when every knob has bad runs it still prefers the
        fewest.
    """
    by = defaultdict(list)
    for r in records:
        by[float(r["knob"])].append(r)

    def rank(i_knob):
        i, g = i_knob
        runs = by.get(float(g), [])
        vals = [r[objective] for r in runs]
        bad = [r["lost"] or r["diverged"] or v is None or not np.isfinite(v) for r, v in zip(runs, vals)]
        good = [v for v, b in zip(vals, bad) if not b]
        if not runs:
            return (math.inf, math.inf, i)
        return (sum(bad), float(np.mean(good)) if good else math.inf, i)

    return float(min(enumerate(grid), key=rank)[1])


# ---------------------------------------------------------------------------
# Executors
# ---------------------------------------------------------------------------

class _SerialExecutor:
    """Runs the jobs in-process, one per ``wait_first``, in submission order (``--workers 1``)."""
    description = "in-process"

    def __init__(self):
        self._queue = []

    def submit(self, fn, *args, **kwargs):
        fut = cf.Future()
        self._queue.append((fut, fn, args, kwargs))
        return fut

    def wait_first(self, futures):
        done = {f for f in futures if f.done()}
        if done:
            return done
        # run lazily, one at a time, so that progress is reported as it happens
        fut, fn, args, kwargs = self._queue.pop(0)
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:      # surfaces at .result(), like a pool
            fut.set_exception(e)
        return {fut}

    def close(self):
        self._queue.clear()


_BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class _PoolExecutor:
    """Local processes (``concurrent.futures.ProcessPoolExecutor``)."""

    def __init__(self, workers):
        self.description = f"process pool ({workers} workers)"
        methods = multiprocessing.get_all_start_methods()
        # forkserver: no fork of a parent that has threads (tqdm's monitor);
        # preloading the package (numpy, scipy, filterpy with it) makes each
        # worker start fast. Not this module itself: under `python -m` the
        # workers re-import it as __mp_main__, and runpy warns if it is
        # already in sys.modules.
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if ctx.get_start_method() == "forkserver":
            ctx.set_forkserver_preload(["filterpy_diffusion"])
        # One BLAS thread per worker when there is a worker per core, unless
        # the user chose; set only while the workers start, then restored.
        saved = {v: os.environ.get(v) for v in _BLAS_VARS}
        if all(s is None for s in saved.values()):
            for v in _BLAS_VARS:
                os.environ[v] = "1"
        try:
            self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            # start every worker now, while the environment is set
            list(self.pool.map(_noop, range(workers)))
        finally:
            for v, s in saved.items():
                if s is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = s

    def submit(self, fn, *args, **kwargs):
        return self.pool.submit(fn, *args, **kwargs)

    def wait_first(self, futures):
        return cf.wait(futures, return_when=cf.FIRST_COMPLETED).done

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


def _noop(i):
    return i


class _DaskExecutor:
    """A Dask cluster (``--scheduler ADDRESS``); dask is imported only here."""

    def __init__(self, address):
        try:
            from dask.distributed import Client, wait
        except ImportError:
            raise ImportError(
                "--scheduler needs dask.distributed: pip install -e '.[dask]'") from None
        self.client = Client(address)
        self._wait = wait
        self.description = f"dask ({address})"

    def submit(self, fn, *args, **kwargs):
        # pure=False: two identical jobs are still two runs (and keys never clash)
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def wait_first(self, futures):
        return set(self._wait(list(futures), return_when="FIRST_COMPLETED").done)

    def close(self):
        self.client.close()


def _make_executor(workers=None, scheduler=None):
    if scheduler:
        return _DaskExecutor(scheduler)
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    return _SerialExecutor() if workers == 1 else _PoolExecutor(workers)


class _Progress:
    """tqdm bar when tqdm is installed (extra ``bench``), plain lines otherwise."""

    def __init__(self, total, enabled=True):
        self.total, self.done, self.enabled = total, 0, enabled
        self.bar = None
        self.t0 = time.perf_counter()
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass
        self.every = max(1, total // 50)

    def step(self, label):
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(label, refresh=False)
            self.bar.update(1)
        elif self.done % self.every == 0 or self.done == self.total:
            print(f"[{self.done}/{self.total}] {time.perf_counter() - self.t0:7.1f}s {label}",
                  file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------
# The benchmark driver
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class _Job:
    kind: str                 # 'ref', 'tune' or 'report'
    problem: str
    seed: int
    filter: str = None
    N: int = None
    knob: float = None

    @property
    def label(self):
        if self.kind == "ref":
            return f"reference {self.problem} seed={self.seed}"
        k = "" if self.knob is None else f" knob={self.knob:g}"
        return f"{self.kind} {self.problem} {self.filter} N={self.N} seed={self.seed}{k}"


def _problem_config(problem):
    def mat(a):
        a = np.asarray(a, dtype=float)
        return np.diag(a).tolist() if np.array_equal(a, np.diag(np.diag(a))) else a.tolist()
    return {
        "name": problem.name, "system": problem.system, "dim": problem.dim, "dim_z": problem.dim_z,
        "dt_int": problem.dt_int, "obs_every": problem.obs_every, "hx": repr(problem.hx),
        "fx": repr(problem.fx), "R_diag": mat(problem.R), "Q_diag": mat(problem.Q),
        "cycles": problem.cycles, "spinup": problem.spinup,
        "lost_threshold": problem.lost_threshold, "bimodal": problem.bimodal,
        "initial": problem.initial, "reference": problem.reference, "x0": list(problem.x0),
    }


def _order_key(problems, filters):
    pi = {p: i for i, p in enumerate(problems)}
    fi = {f: i for i, f in enumerate(filters)}
    return lambda r: (pi[r["problem"]], fi[r["filter"]], r["N"], r["seed"],
                      -math.inf if r["knob"] is None else r["knob"])


def run_benchmark(problems=DEFAULT_PROBLEMS, filters=DEFAULT_FILTERS, Ns=DEFAULT_N,
                  seeds=DEFAULT_SEEDS, tuning_seeds=DEFAULT_TUNING_SEEDS, cycles=None,
                  spinup=None, max_cycles=None, max_spinup=None,
                  ref_particles=REFERENCE_PARTICLES, cache_dir=None, workers=None,
                  scheduler=None, snapshots=False, progress=True, on_job=None):
    """Run the tuning protocol and the reporting runs; return the JSON document.

    Parameters
    ----------
    problems : sequence of str
    filters : sequence of str
        Filter specs (:func:`parse_filter_spec`).
    Ns, seeds, tuning_seeds : sequence of int
        Ensemble sizes, reporting seeds and tuning seeds.
    cycles, spinup : int, optional
        Overrides for every problem (:func:`resolve_problem`).
    max_cycles, max_spinup : int, optional
        Caps instead of overrides (``--quick``): toy-abs keeps its 100 cycles.
    ref_particles : int
        Particles of the Lorenz-63 reference filter.
    cache_dir : str, optional
        Reference cache directory.
    workers : int, optional
        Local processes (1: in-process); default ``os.cpu_count()``.
    scheduler : str, optional
        Dask scheduler address; overrides ``workers``.
    snapshots : bool
        Keep analysis ensembles of the bimodal problems (first reporting
        seed, largest N, the three W2 cycles where the reference is most
        evenly split between the mirror modes) for the posterior plots.
    progress : bool
        Show progress on stderr.
    on_job : callable ``(job_kind, problem, filter, N, seed, knob) -> None``, optional
        Called in this process for every job as it completes (a hook for tests).

    Returns
    -------
    dict
        ``{"meta", "records", "tuning", "snapshots"}`` (module docstring).
    """
    problems, Ns = list(problems), sorted({int(n) for n in Ns})
    seeds, tuning_seeds = [int(s) for s in seeds], [int(s) for s in tuning_seeds]
    if not (problems and filters and Ns and seeds):
        raise ValueError("need at least one problem, filter, N and reporting seed")
    specs = {f: parse_filter_spec(f) for f in filters}
    if len(specs) != len(list(filters)):
        raise ValueError(f"duplicate filter specs in {list(filters)}")
    tuned = [f for f, s in specs.items() if s.tuned]
    if tuned and not tuning_seeds:
        raise ValueError(f"filters {tuned} need tuning seeds")
    overlap = sorted(set(seeds) & set(tuning_seeds)) if tuned else []
    if overlap:
        raise ValueError(f"reporting seeds {overlap} are also tuning seeds; the protocol keeps them apart")

    probs = {}
    for name in problems:
        base = get_problem(name)
        c, s = cycles, spinup
        if max_cycles is not None and c is None:
            c = min(base.cycles, int(max_cycles))
        if max_spinup is not None and s is None:
            s = min(base.spinup, int(max_spinup))
        probs[name] = resolve_problem(name, c, s)
    # Fail on a typo in a spec or an unsupported problem now, not after hours of other runs.
    check_filters(problems, list(specs.values()), Ns[0])

    def pc(name):
        return probs[name].cycles, probs[name].spinup

    # --- jobs
    ref_jobs, tune_jobs, report_jobs = [], [], []
    for p in problems:
        prob = probs[p]
        need_ref_seeds = set()
        if prob.reference is not None:
            need_ref_seeds.update(seeds)
            if prob.bimodal and tuned:
                need_ref_seeds.update(tuning_seeds)
        ref_jobs += [_Job("ref", p, s) for s in sorted(need_ref_seeds)]
        for f in filters:
            for N in Ns:
                if specs[f].tuned:
                    tune_jobs += [_Job("tune", p, s, f, N, g)
                                  for s in tuning_seeds for g in specs[f].grid]
                report_jobs += [_Job("report", p, s, f, N) for s in seeds]

    # snapshot (problem, seed, N) for the posterior plots
    snap_N = Ns[-1]
    snap_seed = seeds[0]
    snap_problems = {p for p in problems if probs[p].bimodal} if snapshots else set()

    executor = _make_executor(workers, scheduler)
    bar = _Progress(len(ref_jobs) + len(tune_jobs) + len(report_jobs), progress)
    refs, knobs = {}, {}
    tune_records = defaultdict(list)
    n_tune_left = Counter((j.problem, j.filter, j.N) for j in tune_jobs)
    records, tuning, snaps = [], [], []
    waiting = ref_jobs + tune_jobs + report_jobs
    pending = {}

    def needs_ref(job):
        prob = probs[job.problem]
        if prob.reference is None:
            return False
        return job.kind == "report" or prob.bimodal

    def ready(job):
        if job.kind == "ref":
            return True
        if needs_ref(job) and (job.problem, job.seed) not in refs:
            return False
        if job.kind == "report" and specs[job.filter].tuned and (job.problem, job.filter, job.N) not in knobs:
            return False
        return True

    def submit(job):
        c, s = pc(job.problem)
        if job.kind == "ref":
            return executor.submit(_reference_job, job.problem, c, s, job.seed, Ns,
                                   ref_particles, cache_dir)
        ref = None
        if needs_ref(job):
            full = refs[(job.problem, job.seed)]
            ref = Reference(full.cycles, {job.N: full.samples[job.N]}, full.balance)
        kw = dict(reference=ref, compute_w2=needs_ref(job), ref_particles=ref_particles,
                  cache_dir=cache_dir)
        if job.kind == "tune":
            return executor.submit(run_one, job.problem, job.filter, job.N, job.seed, c, s,
                                   job.knob, tuning_seeds=None, **kw)
        spec = specs[job.filter]
        if spec.tuned:
            job.knob = knobs[(job.problem, job.filter, job.N)]
        keep = None
        if job.problem in snap_problems and job.N == snap_N and job.seed == snap_seed:
            full = refs[(job.problem, job.seed)]
            best = np.argsort(-full.balance, kind="stable")[:3]
            keep = sorted(int(full.cycles[i]) for i in best)
        return executor.submit(run_one, job.problem, job.filter, job.N, job.seed, c, s, job.knob,
                               keep_cycles=keep, tuning_seeds=tuning_seeds if spec.tuned else None,
                               **kw)

    try:
        while waiting or pending:
            still = []
            for job in waiting:
                if ready(job):
                    pending[submit(job)] = job
                else:
                    still.append(job)
            waiting = still
            if not pending:
                raise RuntimeError(f"benchmark scheduler stalled with {len(waiting)} jobs waiting")
            for fut in executor.wait_first(list(pending)):
                job = pending.pop(fut)
                result = fut.result()
                bar.step(job.label)
                if on_job is not None:
                    on_job(job.kind, job.problem, job.filter, job.N, job.seed, job.knob)
                if job.kind == "ref":
                    refs[(job.problem, job.seed)] = result
                elif job.kind == "tune":
                    key = (job.problem, job.filter, job.N)
                    tune_records[key].append(result)
                    tuning.append(result)
                    n_tune_left[key] -= 1
                    if n_tune_left[key] == 0:
                        knobs[key] = choose_knob(specs[job.filter].grid, tune_records[key],
                                                 objective_name(probs[job.problem]))
                else:
                    ens = result.pop("ensembles", None)
                    if ens is not None:
                        snaps.append({"problem": job.problem, "filter": job.filter, "N": job.N,
                                      "seed": job.seed, "cycles": [int(k) for k in ens],
                                      "ensembles": [ens[k]["ensemble"] for k in ens],
                                      "reference": [ens[k]["reference"] for k in ens]})
                    records.append(result)
    finally:
        bar.close()
        executor.close()

    key = _order_key(problems, list(filters))
    records.sort(key=key)
    tuning.sort(key=key)
    snaps.sort(key=lambda s: (problems.index(s["problem"]), list(filters).index(s["filter"])))
    meta = {
        "command": None,
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "scipy": scipy.__version__, "filterpy": filterpy.__version__,
                     "filterpy_diffusion": __version__},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "executor": executor.description,
        "settings": {"problems": problems, "filters": list(filters),
                     "grids": {f: (list(s.grid) if s.tuned else None) for f, s in specs.items()},
                     "knob_names": {f: s.entry.knob_name for f, s in specs.items()},
                     "N": Ns, "seeds": seeds, "tuning_seeds": tuning_seeds,
                     "ref_particles": ref_particles, "w2_every": W2_EVERY},
        "problems": {p: _problem_config(probs[p]) for p in problems},
    }
    return {"meta": meta, "records": records, "tuning": tuning, "snapshots": snaps}


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------

def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None     # NaN/inf -> null (strict JSON)
    return obj


def write_json(doc, path):
    """Write the benchmark document as strict JSON (NaN -> null)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        json.dump(_jsonable(doc), fh, indent=1, allow_nan=False)
        fh.write("\n")


def read_json(path):
    """Read a benchmark document; null metrics of diverged runs become NaN again."""
    with open(path) as fh:
        doc = json.load(fh)
    for r in doc.get("records", []) + doc.get("tuning", []):
        for k in ("rmse", "spread", "analysis_time"):
            if r.get(k) is None:
                r[k] = float("nan")
        if r.get("w2") is None and r.get("diverged") and r["problem"] in _reference_problems(doc):
            r["w2"] = float("nan")
    return doc


def _reference_problems(doc):
    return {p for p, c in doc.get("meta", {}).get("problems", {}).items() if c.get("reference")}


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

def _finite(v):
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _cell(runs, field):
    n = len(runs)
    if n == 0:
        return "-"
    lost = sum(bool(r["lost"]) and not r["diverged"] for r in runs)
    div = sum(bool(r["diverged"]) for r in runs)
    vals = [r[field] for r in runs if not r["lost"] and not r["diverged"] and _finite(r[field])]
    if vals:
        m = float(np.mean(vals))
        s = f"{m:.3g} ± {np.std(vals, ddof=1):.2g}" if len(vals) > 1 else f"{m:.3g}"
    else:
        s = "-"
    tags = []
    if lost:
        tags.append(f"lost {lost}/{n}")
    if div:
        tags.append(f"div {div}/{n}")
    return s + (f" [{', '.join(tags)}]" if tags else "")


def _render(title, header, rows, markdown):
    if markdown:
        out = [f"**{title}**", "", "| " + " | ".join(header) + " |",
               "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out) + "\n"
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [title, line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out) + "\n"


def format_tables(doc, markdown=False):
    """Side-by-side tables of a benchmark document.

    Rows are (problem, N), columns filters. Cells are "mean ± std over the
    reporting seeds that kept track [lost k/n, div k/n]". Tables: RMSE; W2
    (problems with a reference); the chosen knobs; median analysis time per
    cycle (ms) with score evaluations per update.

    Parameters
    ----------
    doc : dict
        As returned by :func:`run_benchmark` or :func:`read_json`.
    markdown : bool
        GitHub Markdown tables instead of aligned text.

    Returns
    -------
    str
    """
    recs = doc["records"]
    settings = doc.get("meta", {}).get("settings", {})
    problems = settings.get("problems") or list(dict.fromkeys(r["problem"] for r in recs))
    filters = settings.get("filters") or list(dict.fromkeys(r["filter"] for r in recs))
    Ns = sorted({r["N"] for r in recs})
    groups = defaultdict(list)
    for r in recs:
        groups[(r["problem"], r["filter"], r["N"])].append(r)
    keys = [(p, N) for p in problems for N in Ns if any((p, f, N) in groups for f in filters)]
    header = ["problem", "N"] + list(filters)
    parts = []

    def table(title, cell, keep=lambda p: True):
        rows = [[p, str(N)] + [cell(groups.get((p, f, N), [])) for f in filters]
                for p, N in keys if keep(p)]
        if rows:
            parts.append(_render(title, header, rows, markdown))

    table("RMSE of the analysis mean (mean ± std over seeds that kept track)",
          lambda runs: _cell(runs, "rmse"))
    with_ref = {p for p in problems if any(r["w2"] is not None for r in recs if r["problem"] == p)}
    with_ref |= _reference_problems(doc) & set(problems)
    table("W2 to the reference posterior (mean ± std over seeds that kept track)",
          lambda runs: _cell(runs, "w2"), keep=lambda p: p in with_ref)

    tuned = [f for f in filters if any(r["knob"] is not None for r in recs if r["filter"] == f)]
    if tuned:
        knob_names = settings.get("knob_names", {})
        th = ["problem", "N"] + [f"{f} ({knob_names.get(f) or 'knob'})" for f in tuned]
        rows = []
        for p, N in keys:
            row = [p, str(N)]
            for f in tuned:
                ks = sorted({r["knob"] for r in groups.get((p, f, N), []) if r["knob"] is not None})
                row.append(", ".join(f"{k:g}" for k in ks) or "-")
            rows.append(row)
        ts = sorted({s for r in recs if r["tuning_seeds"] for s in r["tuning_seeds"]})
        parts.append(_render(f"Chosen knobs (tuned on seeds {ts})", th, rows, markdown))

    def timing(runs):
        t = [r["analysis_time"] for r in runs if _finite(r["analysis_time"])]
        if not t:
            return "-"
        s = f"{1e3 * float(np.median(t)):.3g}"
        ev = [r["n_evaluations"] for r in runs if r["n_evaluations"] is not None]
        return s + (f" ({int(np.median(ev))} ev)" if ev else "")

    table("Analysis time per cycle [ms] (median over seeds; score evaluations per update)", timing)
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------

def make_plots(doc, outdir):
    """Save PNG plots of a benchmark document to ``outdir``.

    ``error_vs_N.png`` (RMSE against N per problem, one line per filter,
    error bars over the seeds that kept track, log x), ``w2_vs_N.png`` (the
    same for W2, problems with a reference), and ``posterior_<problem>.png``
    for the snapshots of the bimodal problems (l63-z: x against y of the
    analysis ensemble and the reference sample at three cycles; toy-abs:
    histograms). Needs matplotlib (extra ``bench``); without it prints a
    message and returns an empty list.

    Returns
    -------
    list of str
        The files written.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plots", file=sys.stderr)
        return []
    os.makedirs(outdir, exist_ok=True)
    recs = doc["records"]
    settings = doc.get("meta", {}).get("settings", {})
    problems = settings.get("problems") or list(dict.fromkeys(r["problem"] for r in recs))
    filters = settings.get("filters") or list(dict.fromkeys(r["filter"] for r in recs))
    written = []

    def vs_N(field, names, fname, ylabel):
        names = [p for p in names if any(_finite(r[field]) for r in recs if r["problem"] == p)]
        if not names:
            return
        ncol = min(3, len(names))
        nrow = -(-len(names) // ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
        for ax, p in zip(axes.flat, names):
            for f in filters:
                pts = []
                for N in sorted({r["N"] for r in recs if r["problem"] == p and r["filter"] == f}):
                    vals = [r[field] for r in recs if r["problem"] == p and r["filter"] == f
                            and r["N"] == N and not r["lost"] and not r["diverged"] and _finite(r[field])]
                    if vals:
                        pts.append((N, np.mean(vals), np.std(vals, ddof=1) if len(vals) > 1 else 0.0))
                if pts:
                    n, m, s = map(np.array, zip(*pts))
                    ax.errorbar(n, m, yerr=s, marker="o", capsize=3, label=f)
            ax.set_xscale("log")
            ax.set_title(p)
            ax.set_xlabel("N")
            ax.set_ylabel(ylabel)
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        axes.flat[0].legend(fontsize="small")
        fig.tight_layout()
        path = os.path.join(outdir, fname)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

    vs_N("rmse", problems, "error_vs_N.png", "RMSE (seeds that kept track)")
    vs_N("w2", problems, "w2_vs_N.png", "W2 to reference")

    by_problem = defaultdict(list)
    for s in doc.get("snapshots", []):
        by_problem[s["problem"]].append(s)
    for p, snaps in by_problem.items():
        ncyc = max(len(s["cycles"]) for s in snaps)
        fig, axes = plt.subplots(len(snaps), ncyc, figsize=(3.4 * ncyc, 3.0 * len(snaps)),
                                 squeeze=False)
        for row, s in zip(axes, snaps):
            for ax, k, ens, ref in zip(row, s["cycles"], s["ensembles"], s["reference"]):
                E = np.asarray(ens, dtype=float)
                R = None if ref is None else np.asarray(ref, dtype=float)
                if E.shape[1] == 1:
                    lo = min(E.min(), R.min() if R is not None else E.min())
                    hi = max(E.max(), R.max() if R is not None else E.max())
                    bins = np.linspace(lo, hi, 31)
                    if R is not None:
                        ax.hist(R[:, 0], bins, density=True, alpha=0.5, color="0.5", label="reference")
                    ax.hist(E[:, 0], bins, density=True, histtype="step", lw=2, label=s["filter"])
                    ax.set_xlabel("x")
                else:
                    if R is not None:
                        ax.scatter(R[:, 0], R[:, 1], s=8, c="0.6", label="reference")
                    ax.scatter(E[:, 0], E[:, 1], s=8, label=s["filter"])
                    ax.set_xlabel("x")
                    ax.set_ylabel("y")
                ax.set_title(f"{s['filter']} cycle {k}", fontsize="small")
            row[0].legend(fontsize="x-small")
        fig.suptitle(f"{p}: analysis ensemble vs reference posterior (N = {snaps[0]['N']}, "
                     f"seed {snaps[0]['seed']})", fontsize="small")
        fig.tight_layout()
        path = os.path.join(outdir, f"posterior_{p}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def _run_parser():
    p = argparse.ArgumentParser(
        prog="python -m filterpy_diffusion.benchmark [run]",
        description="Twin-experiment benchmark of BENCHMARKS.md: tune baselines on the tuning "
                    "seeds, run every filter on the reporting seeds, print tables, write JSON.")
    p.add_argument("--problems", nargs="+", metavar="P",
                   help=f"default: all of {list(PROBLEMS)} that every filter supports "
                        f"(ldkf, letkf: only {local_problems()})")
    p.add_argument("--filters", nargs="+", metavar="SPEC",
                   help=f"filter specs name[:key=value,...]; names {list(FILTERS)}; "
                        f"default {list(DEFAULT_FILTERS)}")
    p.add_argument("--N", nargs="+", type=int, help=f"ensemble sizes (default {list(DEFAULT_N)})")
    p.add_argument("--seeds", nargs="+", type=int,
                   help=f"reporting seeds (default {list(DEFAULT_SEEDS)})")
    p.add_argument("--tuning-seeds", nargs="+", type=int,
                   help=f"tuning seeds (default {list(DEFAULT_TUNING_SEEDS)})")
    p.add_argument("--cycles", type=int, help="override every problem's cycles (quick runs)")
    p.add_argument("--spinup", type=int, help="override every problem's spin-up")
    p.add_argument("--ref-particles", type=int, default=REFERENCE_PARTICLES,
                   help="particles of the Lorenz-63 reference filter (default %(default)s)")
    p.add_argument("--cache-dir", help="cache references here as .npz")
    p.add_argument("--out", help=f"JSON output (default {DEFAULT_OUT}; --quick: {QUICK['out']})")
    p.add_argument("--plots", help="directory for PNG plots (needs matplotlib)")
    p.add_argument("--workers", type=int, help="local processes, 1 = in-process (default: cpu count)")
    p.add_argument("--scheduler", help="Dask scheduler address (needs the 'dask' extra)")
    p.add_argument("--quick", action="store_true",
                   help="small comparison on real problems, a few minutes on 2 cores")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    return p


def _cmd_run(argv, command):
    a = _run_parser().parse_args(argv)
    q = QUICK if a.quick else {}
    filters = a.filters or q.get("filters", DEFAULT_FILTERS)
    try:
        specs = [parse_filter_spec(f) for f in filters]
    except ValueError as e:
        raise SystemExit(str(e))
    problems = a.problems or q.get("problems")
    if problems is None:
        # every problem that every filter supports (the local filters: Lorenz-96 only)
        problems = [p for p in DEFAULT_PROBLEMS if all(s.entry.supported(PROBLEMS[p]) for s in specs)]
        skipped = [p for p in DEFAULT_PROBLEMS if p not in problems]
        if not problems:
            raise SystemExit(f"no problem is supported by all of {list(filters)}; "
                             "run them separately or give --problems")
        if skipped:
            names = [s.spec for s in specs if not all(s.entry.supported(PROBLEMS[p]) for p in skipped)]
            print(f"note: --problems not given; leaving out {skipped} (not supported by {names})",
                  file=sys.stderr)
    for name in problems:
        if name not in PROBLEMS:
            raise SystemExit(f"unknown problem {name!r}; choose from {list(PROBLEMS)}")
    Ns = a.N or q.get("N", DEFAULT_N)
    try:
        check_filters(problems, specs, min(Ns))
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    out = a.out or q.get("out", DEFAULT_OUT)
    plots = a.plots or q.get("plots")
    t0 = time.perf_counter()
    doc = run_benchmark(
        problems=problems, filters=filters, Ns=Ns,
        seeds=a.seeds or q.get("seeds", DEFAULT_SEEDS),
        tuning_seeds=(a.tuning_seeds if a.tuning_seeds is not None
                      else q.get("tuning_seeds", DEFAULT_TUNING_SEEDS)),
        cycles=a.cycles, spinup=a.spinup,
        max_cycles=q.get("max_cycles"), max_spinup=q.get("max_spinup"),
        ref_particles=a.ref_particles, cache_dir=a.cache_dir, workers=a.workers,
        scheduler=a.scheduler, snapshots=bool(plots), progress=not a.no_progress)
    doc["meta"]["command"] = command
    doc["meta"]["elapsed_seconds"] = round(time.perf_counter() - t0, 1)
    write_json(doc, out)
    print(format_tables(doc, markdown=a.markdown))
    print(f"{len(doc['records'])} records written to {out} "
          f"({doc['meta']['elapsed_seconds']:.0f} s, {doc['meta']['executor']})")
    if plots:
        for path in make_plots(doc, plots):
            print(f"plot: {path}")
    return 0


def read_results(paths):
    """Read one or more benchmark JSON files into one document.

    A sweep can be split over several runs (one per group of filters, each
    with the same problems, N and seeds); their records, tuning records and
    snapshots are concatenated and the commands kept in order.
    """
    docs = [read_json(p) for p in paths]
    doc = {"meta": dict(docs[0].get("meta", {})), "records": [], "tuning": [], "snapshots": []}
    doc["meta"]["commands"] = [d.get("meta", {}).get("command") for d in docs]
    # The settings name the union of what the runs covered, in order.
    settings = [d.get("meta", {}).get("settings", {}) for d in docs]
    merged = dict(settings[0])
    for key in set().union(*settings):
        values = [st[key] for st in settings if key in st]
        if all(isinstance(v, dict) for v in values):
            merged[key] = {k: v for d in values for k, v in d.items()}
        elif all(isinstance(v, list) for v in values):
            merged[key] = list(dict.fromkeys(x for v in values for x in v))
    doc["meta"]["settings"] = merged
    for d in docs:
        for key in ("records", "tuning", "snapshots"):
            doc[key].extend(d.get(key) or [])
    return doc


def _cmd_table(argv):
    p = argparse.ArgumentParser(prog="python -m filterpy_diffusion.benchmark table",
                                description="Re-print the tables of benchmark JSON files.")
    p.add_argument("json", nargs="+")
    p.add_argument("--markdown", action="store_true", help="GitHub Markdown tables")
    a = p.parse_args(argv)
    doc = read_results(a.json)
    for cmd in filter(None, doc["meta"]["commands"]):
        print(("`" + cmd + "`") if a.markdown else f"command: {cmd}")
        print()
    print(format_tables(doc, markdown=a.markdown))
    return 0


def _cmd_plot(argv):
    p = argparse.ArgumentParser(prog="python -m filterpy_diffusion.benchmark plot",
                                description="Re-draw the plots of benchmark JSON files.")
    p.add_argument("json", nargs="+")
    p.add_argument("--plots", default=os.path.join("results", "plots"), help="output directory")
    a = p.parse_args(argv)
    for path in make_plots(read_results(a.json), a.plots):
        print(f"plot: {path}")
    return 0


def main(argv=None):
    """Command-line entry point; ``argv`` defaults to ``sys.argv[1:]``.

    Subcommands: ``run`` (the default), ``table JSON [JSON ...] [--markdown]``,
    ``plot JSON [JSON ...] [--plots DIR]``. Returns the exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "python -m filterpy_diffusion.benchmark " + " ".join(argv)
    if argv and argv[0] == "table":
        return _cmd_table(argv[1:])
    if argv and argv[0] == "plot":
        return _cmd_plot(argv[1:])
    if argv and argv[0] == "run":
        argv = argv[1:]
    return _cmd_run(argv, command.strip())


if __name__ == "__main__":
    # Run the package module's main, not this __main__ copy, so that the jobs
    # sent to worker processes (and Dask) are pickled by reference as
    # filterpy_diffusion.benchmark.run_one, importable everywhere.
    from filterpy_diffusion.benchmark import main as _main
    sys.exit(_main())

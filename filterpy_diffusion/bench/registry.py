"""The filter registry of the benchmark and its one spec parser.

:data:`FILTERS` is the one registry; a new variant is one line. A filter
spec is a registry name optionally followed by keyword options,
``name:key=value,key=value``; values are Python literals
(``ast.literal_eval``) or, failing that, bare strings, e.g.
``dkf:sampler='sde',steps=20``, ``dkf:kernel=isotropic``,
``sir:resample_threshold=0.5``. Options go to the filter's constructor,
except ``knob=`` (fix the knob: no tuning) and ``grid=`` (replace the
tuning grid). :func:`parse_filter_spec` is the only parser of these specs
(the command line, the runner and ``benchmarks/localization.py`` use it).

* ``dkf*``: :class:`~filterpy_diffusion.DiffusionKDEFilter` with the
  vectorized model and measurement operator (``vectorized=True``). ``dkf``
  is the default (``kernel='auto'``, ``clusters='auto'``); ``dkf-cov``
  (unsplit, ``clusters=1``), ``dkf-enkpf`` fix one kernel;
  ``dkf-clustered`` is the covariance kernel with ``clusters='auto'``;
  ``dkf-ode``, ``dkf-sde``, ``dkf-exact`` are the unsplit covariance
  kernel with each sampler.
* ``dkf-sim``: the default given only a black-box ``simulate`` that draws
  the problem's own measurements ``hx(x) + N(0, R)`` (no ``hx`` for the
  filter's decisions: the covariance kernel on simulated measurements).
* ``dkf-tuned``: ``sigma_x`` and ``sigma_y`` are callables giving the knob
  times each coordinate's ensemble standard deviation (:class:`ScaledStd`).
* ``enkf``: filterpy's ``EnsembleKalmanFilter``
  (:class:`~filterpy_diffusion.bench.baselines.EnKFRunner`), multiplicative
  inflation ``knob``.
* ``sir``: our :class:`~filterpy_diffusion.ParticleFilter`, resampling at
  every update (``resample_threshold=1.0``, the classical bootstrap filter,
  so the analysis ensemble is unweighted) with jitter ``knob`` (Gaussian
  noise of covariance ``knob**2 * P`` after resampling).
* ``ldkf``: :class:`~filterpy_diffusion.localization.LocalDiffusionKDEFilter`
  with its defaults (the local ETKF with per-domain finite-size inflation
  while N <= members_per_dim (r + 1), else the local kernel with automatic
  bandwidth, adaptive inflation and ``'rotation'`` stitching; Gaspari-Cohn
  half-width ``DEFAULT_RADIUS``), no knob.
* ``letkf``: our :class:`~filterpy_diffusion.localization.LETKF` (the same
  localization), multiplicative anomaly inflation ``knob`` tuned over
  :data:`LETKF_INFLATION`.

  Both need a spatial layout (:func:`grid_layout`): the Lorenz-96 problems
  that observe every variable componentwise (l96-40, l96-20-cubic,
  l96-10-abs), a cyclic 1-D grid with variable j and observation j at
  position j, domain length d. On any other problem their builder raises
  ValueError naming the supported problems (:func:`local_problems`).
"""
import ast
import dataclasses

import numpy as np

from .._validation import psd_factor
from ..filter import DiffusionKDEFilter
from ..localization import LETKF, LocalDiffusionKDEFilter
from ..particle import ParticleFilter
from ..policy import Policy
from .baselines import EnKFRunner
from .models import AbsObs, CubicObs, IdentityObs
from .problems import PROBLEMS, resolve_problem
from .twin import cycle_dt, twin_experiment

__all__ = [
    "FILTERS", "FilterEntry", "FilterSpec", "parse_filter_spec", "build_filter", "check_filters",
    "grid_layout", "local_problems", "ScaledStd",
    "BANDWIDTH_FACTORS", "INFLATION_FACTORS", "LETKF_INFLATION", "JITTERS",
]

BANDWIDTH_FACTORS = (0.05, 0.1, 0.2, 0.4, 0.8)
INFLATION_FACTORS = (1.0, 1.02, 1.05, 1.1, 1.2)
#: LETKF anomaly inflation grid; finer than the EnKF's near 1 (also used by
#: ``benchmarks/localization.py``).
LETKF_INFLATION = (1.0, 1.01, 1.02, 1.03, 1.05, 1.1, 1.2)
JITTERS = (0.0, 0.05, 0.1, 0.2, 0.4)


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
    """``cls(x, P, dim_z, dt, N, hx, fx, rng=seed, vectorized=True, **options)`` holding ``ensemble``.

    A ``policy`` given as a dict (a spec's ``policy={'decision_threshold': 5}``)
    becomes ``Policy(**policy)``.
    """
    if isinstance(options.get("policy"), dict):
        options["policy"] = Policy(**options["policy"])
    ens = np.array(ensemble, dtype=float)
    f = cls(ens.mean(axis=0), np.eye(problem.dim), problem.dim_z, cycle_dt(problem),
            ens.shape[0], problem.hx, problem.fx, rng=seed, vectorized=True, **options)
    f.Q = np.array(problem.Q, dtype=float)
    f.R = np.array(problem.R, dtype=float)
    f.sigmas = ens
    return f


def _dkf(problem, ensemble, seed, knob=None, filter_class=DiffusionKDEFilter, **options):
    # filter_class: another checkout's DiffusionKDEFilter (benchmarks/previous_default.py).
    if knob is not None:
        raise ValueError("this DiffusionKDEFilter variant has no knob; use 'dkf-tuned' or omit knob")
    return _ensemble_filter(filter_class, problem, ensemble, seed, **options)


def _dkf_simulated(problem, ensemble, seed, knob=None, **options):
    # The default given only a black-box simulator of the problem's own
    # measurements, hx(x) + N(0, R): what a user without hx or R runs.
    if knob is not None:
        raise ValueError("dkf-sim has no knob; omit knob")
    factor = psd_factor(np.array(problem.R, dtype=float))

    def simulate(X, rng):
        hx = np.asarray(problem.hx(X), dtype=float)
        return hx + rng.standard_normal(hx.shape) @ factor.T
    return _dkf(problem, ensemble, seed, simulate=simulate, **options)


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
        raise ValueError("ldkf has no knob (automatic analysis, bandwidth and inflation)")
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
    "dkf-sim": FilterEntry(_dkf_simulated),
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
        knob (no tuning); ``grid=(...)`` replaces the tuning grid; a dict
        ``policy={...}`` is passed as ``Policy(**policy)``.

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


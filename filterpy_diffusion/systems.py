"""Benchmark dynamical systems, measurement operators and twin experiments.

Everything here is written once for a whole ensemble (DAPPER style): a state
is ``(d,)``, an ensemble is ``(N, d)``, cyclic neighbours come from
``np.roll`` on the last axis and one RK4 step advances every member at once.

The models and measurement operators are module-level classes (frozen
dataclasses with ``__call__``), not lambdas or closures, so that filters
holding them can be pickled and shipped to worker processes.

The problems of ``BENCHMARKS.md`` live in :data:`PROBLEMS`;
:func:`twin_experiment` turns one problem and one seed into a truth, its
observations, an initial ensemble and a seed for the filter, each from its
own derived random stream.

References
----------
.. [1] E. N. Lorenz, "Deterministic nonperiodic flow", J. Atmos. Sci. 20
   (1963) 130-141.
.. [2] E. N. Lorenz, "Predictability: a problem partly solved", ECMWF
   Seminar on Predictability (1996).
.. [3] P. N. Raanes et al., DAPPER, https://github.com/nansencenter/DAPPER
"""
import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple
import warnings

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ._validation import as_covariance, as_generator

__all__ = [
    "lorenz63", "lorenz96", "rk4_step", "integrate",
    "LorenzModel", "RandomWalkModel",
    "IdentityObs", "AbsObs", "CubicObs", "ComponentObs",
    "Problem", "PROBLEMS", "get_problem",
    "Twin", "twin_experiment",
    "point_mass_filter_1d", "grid_posterior_toy_abs", "sample_grid",
    "TRUTH_SPINUP_STEPS", "ATTRACTOR_SPACING",
]

#: Internal RK4 steps run before cycle 0 so the truth is on the attractor.
TRUTH_SPINUP_STEPS = 2000
#: Internal steps between two states taken from the free run that gives the
#: attractor-drawn initial ensemble of ``l63-z`` (0.5 time units at dt 0.01,
#: about one loop around a lobe, so successive members are far apart).
ATTRACTOR_SPACING = 50


# ---------------------------------------------------------------------------
# Tendencies and integration
# ---------------------------------------------------------------------------

def lorenz63(x, s=10.0, r=28.0, b=8.0 / 3.0):
    """Lorenz-63 tendency ``dx/dt``.

    ``dx = s (y - x)``, ``dy = x (r - z) - y``, ``dz = x y - b z``.

    Parameters
    ----------
    x : ndarray (3,) or (N, 3)
        One state or an ensemble (members in rows).
    s, r, b : float
        Prandtl number, Rayleigh number and geometric factor.

    Returns
    -------
    dxdt : ndarray, same shape as ``x``
    """
    x = np.asarray(x, dtype=float)
    if x.shape[-1:] != (3,):
        raise ValueError(f"lorenz63 needs states of length 3 in the last axis, got shape {x.shape}")
    x0, x1, x2 = x[..., 0], x[..., 1], x[..., 2]
    return np.stack([s * (x1 - x0), x0 * (r - x2) - x1, x0 * x1 - b * x2], axis=-1)


def lorenz96(x, F=8.0):
    """Lorenz-96 tendency ``dx_j = (x_{j+1} - x_{j-2}) x_{j-1} - x_j + F`` (cyclic).

    Parameters
    ----------
    x : ndarray (d,) or (N, d), d >= 4
        One state or an ensemble (members in rows).
    F : float
        Forcing.

    Returns
    -------
    dxdt : ndarray, same shape as ``x``
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 0 or x.shape[-1] < 4:
        # below 4 the neighbours j-2, j-1, j+1 are not distinct
        raise ValueError(f"lorenz96 needs d >= 4 in the last axis, got shape {x.shape}")
    # np.roll(x, k)[j] == x[j - k]
    xp1 = np.roll(x, -1, axis=-1)
    xm2 = np.roll(x, 2, axis=-1)
    xm1 = np.roll(x, 1, axis=-1)
    return (xp1 - xm2) * xm1 - x + F


def rk4_step(f, x, dt):
    """One classical fourth-order Runge-Kutta step of the autonomous ODE ``dx/dt = f(x)``.

    Parameters
    ----------
    f : callable
        Tendency, ``f(x) -> dxdt`` of the same shape as ``x``.
    x : ndarray (d,) or (N, d)
    dt : float

    Returns
    -------
    x_new : ndarray, same shape as ``x``
    """
    x = np.asarray(x, dtype=float)
    k1 = f(x)
    k2 = f(x + 0.5 * dt * k1)
    k3 = f(x + 0.5 * dt * k2)
    k4 = f(x + dt * k3)
    return x + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def integrate(f, x, dt, nsteps):
    """Advance ``x`` by ``nsteps`` RK4 steps of size ``dt``.

    Parameters
    ----------
    f : callable
        Tendency, ``f(x) -> dxdt``.
    x : ndarray (d,) or (N, d)
    dt : float
    nsteps : int, >= 0

    Returns
    -------
    x_new : ndarray, same shape as ``x`` (a new array even when ``nsteps == 0``)
    """
    if int(nsteps) != nsteps or nsteps < 0:
        raise ValueError(f"nsteps must be a non-negative integer, got {nsteps}")
    x = np.array(x, dtype=float)
    for _ in range(int(nsteps)):
        x = rk4_step(f, x, dt)
    return x


# ---------------------------------------------------------------------------
# Models (filterpy ``fx(x, dt)``) -- picklable
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LorenzModel:
    """Forecast model ``fx(x, dt)`` advancing one assimilation cycle of Lorenz-63/96.

    Parameters
    ----------
    system : {'l63', 'l96'}
    dt_int : float
        Internal RK4 step.
    obs_every : int
        RK4 steps per call (one cycle).
    F : float
        Lorenz-96 forcing (ignored for 'l63').

    Notes
    -----
    ``__call__(x, dt=None)`` takes ``x`` of shape (d,) or (N, d) and returns
    the same shape. The ``dt`` argument exists only to match filterpy's
    ``fx(x, dt)`` signature and is ignored: the cycle length is fixed by
    ``dt_int * obs_every`` so a filter cannot silently change the problem.

    Examples
    --------
    >>> fx = LorenzModel('l96', dt_int=0.05, obs_every=1)
    >>> fx(np.full(40, 8.0), dt=None)[:3]
    array([8., 8., 8.])
    """
    system: str
    dt_int: float
    obs_every: int
    F: float = 8.0

    def __post_init__(self):
        if self.system not in ("l63", "l96"):
            raise ValueError(f"system must be 'l63' or 'l96', got {self.system!r}")
        if not (np.isfinite(self.dt_int) and self.dt_int > 0):
            raise ValueError(f"dt_int must be positive, got {self.dt_int}")
        if int(self.obs_every) != self.obs_every or self.obs_every < 1:
            raise ValueError(f"obs_every must be a positive integer, got {self.obs_every}")

    def tendency(self, x):
        """``dx/dt`` for ``x`` of shape (d,) or (N, d)."""
        if self.system == "l63":
            return lorenz63(x)
        return lorenz96(x, self.F)

    def __call__(self, x, dt=None):
        return integrate(self.tendency, x, self.dt_int, self.obs_every)


@dataclass(frozen=True)
class RandomWalkModel:
    """Identity forecast ``fx(x, dt) = x`` of a random walk; its noise is the problem's ``Q``.

    ``__call__(x, dt=None)`` takes (d,) or (N, d) and returns a copy of the same shape.
    """

    def __call__(self, x, dt=None):
        return np.array(x, dtype=float)


# ---------------------------------------------------------------------------
# Measurement operators (filterpy ``hx(x)``) -- picklable
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class IdentityObs:
    """``hx(x) = x``; (d,) -> (d,), (N, d) -> (N, d)."""

    def __call__(self, x):
        return np.array(x, dtype=float)

    def dim_z(self, dim):
        """Observation size for a state of size ``dim``."""
        return dim


@dataclass(frozen=True)
class AbsObs:
    """``hx(x) = |x|`` componentwise; (d,) -> (d,), (N, d) -> (N, d)."""

    def __call__(self, x):
        return np.abs(np.asarray(x, dtype=float))

    def dim_z(self, dim):
        """Observation size for a state of size ``dim``."""
        return dim


@dataclass(frozen=True)
class CubicObs:
    """``hx(x) = x**3 / divisor`` componentwise; (d,) -> (d,), (N, d) -> (N, d).

    Parameters
    ----------
    divisor : float
        100 for l63-cubic, 10 for l96-20-cubic.
    """
    divisor: float = 1.0

    def __post_init__(self):
        if not (np.isfinite(self.divisor) and self.divisor != 0):
            raise ValueError(f"divisor must be finite and non-zero, got {self.divisor}")

    def __call__(self, x):
        return np.asarray(x, dtype=float) ** 3 / self.divisor

    def dim_z(self, dim):
        """Observation size for a state of size ``dim``."""
        return dim


@dataclass(frozen=True)
class ComponentObs:
    """Observe some components: ``hx(x) = x[..., indices]``.

    Parameters
    ----------
    indices : tuple of int
        ``(2,)`` observes z only (l63-z).

    Notes
    -----
    (d,) -> (m,), (N, d) -> (N, m) with ``m = len(indices)``; a single index
    still gives a trailing axis of length 1, so ``z`` is always a vector.
    """
    indices: Tuple[int, ...] = (0,)

    def __post_init__(self):
        idx = tuple(int(i) for i in np.atleast_1d(self.indices))
        if not idx:
            raise ValueError("indices must name at least one component")
        object.__setattr__(self, "indices", idx)

    def __call__(self, x):
        return np.asarray(x, dtype=float)[..., list(self.indices)]

    def dim_z(self, dim):
        """Observation size for a state of size ``dim``."""
        return len(self.indices)


# ---------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Problem:
    """One benchmark problem of ``BENCHMARKS.md``.

    Attributes
    ----------
    name : str
    system : {'random-walk', 'l63', 'l96'}
    dim : int
        State size ``dim_x``.
    dt_int : float or None
        Internal RK4 step (None for the random walk).
    obs_every : int
        Internal steps per cycle.
    hx : callable
        Measurement operator, (dim,) -> (dim_z,) and (N, dim) -> (N, dim_z).
    dim_z : int
    R : ndarray (dim_z, dim_z)
        Observation-error covariance (read-only; copy before editing).
    Q : ndarray (dim, dim)
        Process-noise covariance the filters add once per cycle after ``fx``
        (read-only).
    cycles : int
        Assimilation cycles.
    spinup : int
        Cycles discarded before scoring.
    lost_threshold : float or None
        A run has lost track when its time-mean RMSE exceeds this; None means
        no threshold (score with W2 instead).
    bimodal : bool
        True when the posterior is bimodal and W2 to a reference is the score
        that counts.
    fx : callable
        Forecast model ``fx(x, dt)`` on (dim,) or (N, dim).
    F : float
        Lorenz-96 forcing (unused otherwise).
    x0 : tuple of float
        Fixed starting state of the truth, before the N(0, 1) perturbation.
    truth_perturbation : float
        Std of the N(0, std^2 I) perturbation of ``x0`` (0 for toy-abs).
    truth_spinup_steps : int
        Internal steps run from the perturbed ``x0`` before cycle 0.
    truth_process_noise : bool
        Whether the truth itself gets N(0, Q) each cycle (only toy-abs, whose
        truth *is* the random walk).
    initial : {'truth', 'mixture', 'attractor'}
        How :func:`twin_experiment` draws the initial ensemble.
    reference : {'grid', 'particle', None}
        Reference posterior for W2: the exact grid filter, a bootstrap
        particle filter, or none.
    """
    name: str
    system: str
    dim: int
    dt_int: Optional[float]
    obs_every: int
    hx: object
    dim_z: int
    R: np.ndarray
    Q: np.ndarray
    cycles: int
    spinup: int
    lost_threshold: Optional[float]
    bimodal: bool
    fx: object
    F: float = 8.0
    x0: Tuple[float, ...] = ()
    truth_perturbation: float = 1.0
    truth_spinup_steps: int = TRUTH_SPINUP_STEPS
    truth_process_noise: bool = False
    initial: str = "truth"
    reference: Optional[str] = None

    def __post_init__(self):
        R = np.array(as_covariance(self.R, "R", self.dim_z), dtype=float)
        Q = np.array(as_covariance(self.Q, "Q", self.dim), dtype=float)
        # problems are shared module-level objects: a filter editing R in place
        # would silently change every later experiment
        R.setflags(write=False)
        Q.setflags(write=False)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "Q", Q)
        if len(self.x0) != self.dim:
            raise ValueError(f"x0 must have length dim={self.dim}, got {len(self.x0)}")
        if self.initial not in ("truth", "mixture", "attractor"):
            raise ValueError(f"initial must be 'truth', 'mixture' or 'attractor', got {self.initial!r}")
        if self.cycles < 1 or not 0 <= self.spinup < self.cycles:
            raise ValueError(
                f"need cycles >= 1 and 0 <= spinup < cycles, got cycles={self.cycles}, spinup={self.spinup}")
        z = np.asarray(self.hx(np.asarray(self.x0, dtype=float)))
        if z.shape != (self.dim_z,):
            raise ValueError(f"hx maps a ({self.dim},) state to {z.shape}, expected ({self.dim_z},)")


def _l63(name, hx, dim_z, R, lost, bimodal, initial="truth"):
    return Problem(
        name=name, system="l63", dim=3, dt_int=0.01, obs_every=10, hx=hx, dim_z=dim_z,
        R=R, Q=0.1 ** 2 * np.eye(3), cycles=1000, spinup=100, lost_threshold=lost,
        bimodal=bimodal, fx=LorenzModel("l63", 0.01, 10), x0=(1.0, 1.0, 1.0),
        initial=initial, reference="particle")


def _l96(name, d, hx, Q, F=8.0):
    # the equilibrium x = F is unstable; nudging one coordinate starts the chaos
    x0 = np.full(d, F)
    x0[0] += 0.01
    return Problem(
        name=name, system="l96", dim=d, dt_int=0.05, obs_every=1, hx=hx, dim_z=d,
        R=np.eye(d), Q=Q, cycles=1000, spinup=200, lost_threshold=2.0, bimodal=False,
        fx=LorenzModel("l96", 0.05, 1, F=F), F=F, x0=tuple(x0))


PROBLEMS = {
    "toy-abs": Problem(
        name="toy-abs", system="random-walk", dim=1, dt_int=None, obs_every=1,
        hx=AbsObs(), dim_z=1, R=np.array([[0.1 ** 2]]), Q=np.array([[0.1 ** 2]]),
        cycles=100, spinup=0, lost_threshold=None, bimodal=True, fx=RandomWalkModel(),
        x0=(1.0,), truth_perturbation=0.0, truth_spinup_steps=0,
        truth_process_noise=True, initial="mixture", reference="grid"),
    "l63-full": _l63("l63-full", IdentityObs(), 3, 2.0 ** 2 * np.eye(3), 3.0, False),
    "l63-z": _l63("l63-z", ComponentObs((2,)), 1, np.array([[2.0 ** 2]]), None, True,
                  initial="attractor"),
    "l63-cubic": _l63("l63-cubic", CubicObs(100.0), 3, 2.0 ** 2 * np.eye(3), 3.0, False),
    "l96-10-abs": _l96("l96-10-abs", 10, AbsObs(), 0.1 ** 2 * np.eye(10)),
    "l96-20-cubic": _l96("l96-20-cubic", 20, CubicObs(10.0), 0.1 ** 2 * np.eye(20)),
    "l96-40": _l96("l96-40", 40, IdentityObs(), np.zeros((40, 40))),
}


def get_problem(name, **overrides):
    """Return the problem ``name``, with some fields replaced.

    Parameters
    ----------
    name : str
        A key of :data:`PROBLEMS`.
    **overrides
        Fields of :class:`Problem` to replace, e.g. ``cycles=50, spinup=10``
        for a short test run.

    Returns
    -------
    problem : Problem
    """
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose one of {sorted(PROBLEMS)}")
    fields = {f.name for f in dataclasses.fields(Problem)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ValueError(f"unknown Problem field(s) {bad}; fields are {sorted(fields)}")
    return dataclasses.replace(PROBLEMS[name], **overrides)


# ---------------------------------------------------------------------------
# Twin experiments
# ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Twin:
    """Truth, observations and initial ensemble of one twin experiment.

    Attributes
    ----------
    problem : Problem
    seed : int
    truth : ndarray (cycles + 1, dim)
        ``truth[0]`` is the state at cycle 0 (after spin-up); ``truth[k + 1]``
        is the state observed by ``observations[k]``.
    observations : ndarray (cycles, dim_z)
        ``observations[k] = hx(truth[k + 1]) + N(0, R)``: each cycle a filter
        predicts, then updates with ``observations[k]``.
    initial_ensemble : ndarray (N, dim)
        Ensemble at cycle 0.
    filter_seed : int
        Seed for the filter's own randomness (pass as ``rng``).
    reference_seed : int
        Seed for a reference sampler (e.g. the bootstrap particle filter).
    """
    problem: Problem
    seed: int
    truth: np.ndarray
    observations: np.ndarray
    initial_ensemble: np.ndarray
    filter_seed: int
    reference_seed: int


def _sqrt_psd(P):
    # symmetric square root: works for the singular Q = 0 where Cholesky fails
    w, V = np.linalg.eigh(P)
    return (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T


def _seed_int(ss):
    return int(ss.generate_state(1, dtype=np.uint64)[0])


def _free_state(problem, rng, nsteps):
    # perturbed fixed start, then nsteps internal steps: a point on the attractor
    x = np.asarray(problem.x0, dtype=float)
    x = x + problem.truth_perturbation * rng.standard_normal(problem.dim)
    if nsteps:
        x = integrate(problem.fx.tendency, x, problem.dt_int, nsteps)
    return x


def twin_experiment(problem, seed, N):
    """Simulate the truth and observations of a problem and draw an initial ensemble.

    Parameters
    ----------
    problem : Problem or str
        A :class:`Problem` or a key of :data:`PROBLEMS`.
    seed : int
        Fixes everything. ``np.random.SeedSequence(seed).spawn(5)`` gives, in
        this order, the streams for the truth, the observation noise, the
        initial ensemble, the filter and a reference sampler, so the truth and
        observations do not depend on ``N`` and the filter's draws are
        independent of all of them.
    N : int
        Ensemble size.

    Returns
    -------
    twin : Twin
        ``truth`` (cycles + 1, dim), ``observations`` (cycles, dim_z),
        ``initial_ensemble`` (N, dim), ``filter_seed`` and ``reference_seed``.

    Notes
    -----
    Truth: ``x0`` + N(0, I) (Lorenz-63: ``x0 = (1, 1, 1)``; Lorenz-96:
    ``x0 = F`` everywhere with ``x0[0] += 0.01``), spun up for
    :data:`TRUTH_SPINUP_STEPS` internal steps, then ``cycles`` cycles of
    ``fx`` without process noise. toy-abs: the truth starts at exactly +1
    and is the random walk ``x+ = x + N(0, Q)``.

    Initial ensemble: ``truth[0]`` + N(0, I), except toy-abs (the first
    ``N - N // 2`` members from N(+1, 0.1^2), the rest from N(-1, 0.1^2)) and
    l63-z (``N`` states :data:`ATTRACTOR_SPACING` internal steps apart along
    a free run started from its own perturbed ``x0`` and spun up like the
    truth, so it samples the attractor and not the truth's neighbourhood).

    Examples
    --------
    >>> tw = twin_experiment(get_problem('l63-full', cycles=5, spinup=0), seed=0, N=10)
    >>> tw.truth.shape, tw.observations.shape, tw.initial_ensemble.shape
    ((6, 3), (5, 3), (10, 3))
    """
    if isinstance(problem, str):
        problem = get_problem(problem)
    if int(N) != N or N < 1:
        raise ValueError(f"N must be a positive integer, got {N}")
    N = int(N)
    ss_truth, ss_obs, ss_ens, ss_filter, ss_ref = np.random.SeedSequence(seed).spawn(5)
    rng_truth = np.random.default_rng(ss_truth)
    rng_obs = np.random.default_rng(ss_obs)
    rng_ens = np.random.default_rng(ss_ens)
    d, K = problem.dim, problem.cycles

    truth = np.empty((K + 1, d))
    truth[0] = _free_state(problem, rng_truth, problem.truth_spinup_steps)
    Lq = _sqrt_psd(problem.Q) if problem.truth_process_noise else None
    for k in range(K):
        x = problem.fx(truth[k], None)
        if Lq is not None:
            x = x + Lq @ rng_truth.standard_normal(d)
        truth[k + 1] = x

    Lr = _sqrt_psd(problem.R)
    obs = problem.hx(truth[1:]) + rng_obs.standard_normal((K, problem.dim_z)) @ Lr.T

    if problem.initial == "mixture":
        n_plus = N - N // 2
        centre = np.where(np.arange(N) < n_plus, 1.0, -1.0)[:, None]
        ens = centre + 0.1 * rng_ens.standard_normal((N, d))
    elif problem.initial == "attractor":
        ens = np.empty((N, d))
        x = _free_state(problem, rng_ens, problem.truth_spinup_steps)
        for i in range(N):
            ens[i] = x
            x = integrate(problem.fx.tendency, x, problem.dt_int, ATTRACTOR_SPACING)
    else:
        ens = truth[0] + rng_ens.standard_normal((N, d))

    return Twin(problem=problem, seed=seed, truth=truth, observations=obs,
                initial_ensemble=ens, filter_seed=_seed_int(ss_filter),
                reference_seed=_seed_int(ss_ref))


# ---------------------------------------------------------------------------
# Point-mass (grid) filter: exact reference posterior for 1-D problems
# ---------------------------------------------------------------------------

def _uniform_step(grid):
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or grid.size < 3:
        raise ValueError(f"grid must be 1-D with at least 3 points, got shape {grid.shape}")
    dx = np.diff(grid)
    if not (np.all(dx > 0) and np.allclose(dx, dx[0], rtol=1e-6, atol=0)):
        raise ValueError("grid must be increasing and uniformly spaced")
    return grid, (grid[-1] - grid[0]) / (grid.size - 1)


def point_mass_filter_1d(grid, prior_density, transition_std, log_likelihood, observations):
    """Exact 1-D Bayes filter on a uniform grid (point-mass filter).

    Each cycle: predict by convolving the density with the Gaussian
    transition kernel N(0, transition_std^2), then multiply by the likelihood
    in log space and renormalise.

    Parameters
    ----------
    grid : ndarray (G,)
        Uniformly spaced points; it must cover the posterior support (mass
        near an end is lost, and a warning is raised).
    prior_density : ndarray (G,)
        Density at cycle 0 (need not be normalised).
    transition_std : float
        Std of the random-walk transition ``x+ = x + N(0, transition_std^2)``.
    log_likelihood : callable
        ``log_likelihood(z, grid) -> (G,)``, log p(z | x) up to a constant.
    observations : ndarray (K,) or (K, dim_z)

    Returns
    -------
    density : ndarray (K, G)
        ``density[k]`` is the posterior density after ``observations[k]``,
        normalised so that ``density[k].sum() * dx == 1``.

    Notes
    -----
    The convolution is ``scipy.ndimage.gaussian_filter1d`` (a direct,
    non-negative sum with a sampled Gaussian kernel normalised to 1, cut at
    8 std), so with ``transition_std / dx`` in the tens it is exact to far
    below the Monte Carlo error of any sample drawn from it.
    """
    grid, dx = _uniform_step(grid)
    p = np.asarray(prior_density, dtype=float)
    if p.shape != grid.shape or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"prior_density must be non-negative, finite, not all zero and shape {grid.shape}")
    if not transition_std >= 0:
        raise ValueError(f"transition_std must be >= 0, got {transition_std}")
    obs = np.asarray(observations, dtype=float)
    if obs.ndim == 1:
        obs = obs[:, None]
    p = p / (p.sum() * dx)
    out = np.empty((obs.shape[0], grid.size))
    sigma_px = transition_std / dx
    for k, z in enumerate(obs):
        if sigma_px > 0:
            p = gaussian_filter1d(p, sigma_px, mode="constant", cval=0.0, truncate=8.0)
        with np.errstate(divide="ignore"):
            logp = np.log(p) + log_likelihood(z, grid)
        m = np.max(logp)
        if not np.isfinite(m):
            raise FloatingPointError(
                f"grid posterior vanished at cycle {k}: observation {z} is impossible "
                "under the predicted density (grid too narrow?)")
        # subtracting the max keeps exp() from underflowing everywhere
        p = np.exp(logp - m)
        p /= p.sum() * dx
        out[k] = p
    edge = max(out[:, 0].max(), out[:, -1].max()) * dx
    if edge > 1e-10:
        warnings.warn(f"grid posterior has mass {edge:.2g} per cell at the grid ends; widen the grid",
                      RuntimeWarning, stacklevel=2)
    return out


def grid_posterior_toy_abs(observations, grid=None, R=0.1 ** 2, Q=0.1 ** 2,
                           prior_means=(1.0, -1.0), prior_std=0.1):
    """Exact posterior densities of the toy-abs problem on a grid.

    Prior at cycle 0: equal mixture of N(m, prior_std^2) over ``prior_means``;
    transition ``x+ = x + N(0, Q)``; likelihood ``N(z; |x|, R)``.

    Parameters
    ----------
    observations : ndarray (K,) or (K, 1)
    grid : ndarray (G,), optional
        Default: spacing 0.002 on [-L, L] with ``L = max(4, max|z| + 1)``
        (4001 points unless an observation exceeds 3), so the posterior
        modes near ``+-z`` are always well inside.
    R, Q : float
        Observation and transition variances.
    prior_means : tuple of float
    prior_std : float

    Returns
    -------
    grid : ndarray (G,)
    density : ndarray (K, G)
        Posterior density after each observation.
    """
    z = np.asarray(observations, dtype=float)
    if z.ndim == 2 and z.shape[1] == 1:
        z = z[:, 0]
    if z.ndim != 1:
        raise ValueError(f"observations must have shape (K,) or (K, 1), got {np.shape(observations)}")
    if grid is None:
        L = max(4.0, float(np.max(np.abs(z), initial=0.0)) + 1.0)
        n = int(np.ceil(L / 0.002))
        grid = np.linspace(-n * 0.002, n * 0.002, 2 * n + 1)
    grid = np.asarray(grid, dtype=float)
    prior = sum(np.exp(-0.5 * ((grid - m) / prior_std) ** 2) for m in prior_means)

    def log_lik(zk, x):
        return -0.5 * (zk[0] - np.abs(x)) ** 2 / R

    return grid, point_mass_filter_1d(grid, prior, np.sqrt(Q), log_lik, z)


def sample_grid(grid, density, n, rng=None):
    """Draw a sample from a density tabulated on a uniform grid.

    Each grid point stands for the cell of width ``dx`` centred on it: a cell
    is chosen by inverse CDF of the cell masses, then the point is placed
    uniformly inside the cell, so the sample has no lattice artefacts.

    Parameters
    ----------
    grid : ndarray (G,)
    density : ndarray (G,)
        Non-negative; need not be normalised.
    n : int
    rng : None, int or numpy.random.Generator

    Returns
    -------
    sample : ndarray (n, 1)
        An ensemble in the project's (N, dim) convention.
    """
    grid, dx = _uniform_step(grid)
    w = np.asarray(density, dtype=float)
    if w.shape != grid.shape or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"density must be non-negative, finite, not all zero and shape {grid.shape}")
    rng = as_generator(rng)
    cdf = np.cumsum(w)
    idx = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    idx = np.minimum(idx, grid.size - 1)
    x = grid[idx] + (rng.random(n) - 0.5) * dx
    return x[:, None]

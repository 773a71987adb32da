"""Problems and twin experiments: the truth, its observations, an initial ensemble.

:class:`Problem` holds one benchmark set-up (model, measurement operator,
noise, cycles, scoring); the set-ups themselves are modules of
:mod:`filterpy_diffusion.bench.problems`. :func:`twin_experiment` turns one
problem and one seed into a truth, its observations, an initial ensemble and
a seed for the filter, each from its own derived random stream.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .._validation import as_covariance
from .models import LorenzModel, integrate

__all__ = ["Problem", "lorenz63_problem", "lorenz96_problem", "cycle_dt", "problem_config",
           "Twin", "twin_experiment", "TRUTH_SPINUP_STEPS", "ATTRACTOR_SPACING"]

#: Internal RK4 steps run before cycle 0 so the truth is on the attractor.
TRUTH_SPINUP_STEPS = 2000
#: Internal steps between two states taken from the free run that gives the
#: attractor-drawn initial ensemble of ``l63-z`` (0.5 time units at dt 0.01,
#: about one loop around a lobe, so successive members are far apart).
ATTRACTOR_SPACING = 50


@dataclass(frozen=True, eq=False)
class Problem:
    """One benchmark problem (a module of :mod:`filterpy_diffusion.bench.problems`).

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


def lorenz63_problem(name, hx, dim_z, R, lost_threshold, bimodal, initial="truth"):
    """A Lorenz-63 problem: dt 0.01, 10 steps per cycle, Q = 0.1^2 I, 1000 cycles, 100 spin-up.

    The truth starts from ``(1, 1, 1)`` + N(0, I); the reference posterior is
    a bootstrap particle filter (:mod:`filterpy_diffusion.bench.reference`).
    """
    return Problem(
        name=name, system="l63", dim=3, dt_int=0.01, obs_every=10, hx=hx, dim_z=dim_z,
        R=R, Q=0.1 ** 2 * np.eye(3), cycles=1000, spinup=100, lost_threshold=lost_threshold,
        bimodal=bimodal, fx=LorenzModel("l63", 0.01, 10), x0=(1.0, 1.0, 1.0),
        initial=initial, reference="particle")


def lorenz96_problem(name, d, hx, Q, F=8.0):
    """A Lorenz-96 problem in ``d`` variables, all observed: dt 0.05 per cycle, R = I.

    1000 cycles, 200 spin-up, lost track above a time-mean RMSE of 2; the
    truth starts from ``x = F`` with ``x[0] += 0.01``. No reference posterior.
    """
    # the equilibrium x = F is unstable; nudging one coordinate starts the chaos
    x0 = np.full(d, F)
    x0[0] += 0.01
    return Problem(
        name=name, system="l96", dim=d, dt_int=0.05, obs_every=1, hx=hx, dim_z=d,
        R=np.eye(d), Q=Q, cycles=1000, spinup=200, lost_threshold=2.0, bimodal=False,
        fx=LorenzModel("l96", 0.05, 1, F=F), F=F, x0=tuple(x0))


def cycle_dt(problem):
    """The ``dt`` handed to a filter: one cycle (LorenzModel ignores it: its cycle length is fixed)."""
    return problem.dt_int * problem.obs_every if problem.dt_int else 1.0


def problem_config(problem):
    """The settings of a problem as a JSON-able dict (diagonals for diagonal matrices)."""
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
    >>> from filterpy_diffusion.bench.problems import get_problem
    >>> tw = twin_experiment(get_problem('l63-full', cycles=5, spinup=0), seed=0, N=10)
    >>> tw.truth.shape, tw.observations.shape, tw.initial_ensemble.shape
    ((6, 3), (5, 3), (10, 3))
    """
    if isinstance(problem, str):
        from .problems import get_problem      # the registry imports this module
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


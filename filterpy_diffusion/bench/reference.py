"""Reference posteriors for W2: the exact grid filter of toy-abs, a bootstrap particle filter.

W2 is computed at every :data:`W2_EVERY`-th scored cycle (cycles
``spinup, spinup + 10, ...``) against a reference posterior sample of the
same size N:

* toy-abs: the exact grid posterior (:func:`grid_posterior_toy_abs`),
  sampled with :func:`sample_grid`;
* Lorenz-63 problems: a bootstrap particle filter with
  :data:`REFERENCE_PARTICLES` (``--ref-particles``) particles and the true
  likelihood, run on the same truth and observations with its own generator
  (``twin.reference_seed``); its prior is the distribution the filters'
  initial ensemble is drawn from (N(truth_0, I), or for l63-z the attractor:
  independently perturbed starts spun up for ``TRUTH_SPINUP_STEPS`` like the
  truth). At each W2 cycle its weighted particles (before resampling) are
  resampled systematically to N points, in the order of their projections
  on the cloud's leading principal axis (:func:`reference_subsample`).

Both N-point samples are stratified, not i.i.d.: the grid sample has one
point in each ``1/N`` quantile band of the posterior, and the particle
sample keeps the mass on either side of any cut across the cloud's leading
axis to within one point (toy-abs's two signs exactly; l63-z's mirror
lobes, which lie along that axis, nearly). An i.i.d. sample's own error
would otherwise be part of every filter's W2: the share of one lobe in N
i.i.d. draws has a standard deviation of ``sqrt(share (1 - share) / N)``,
0.07 at N = 50, and toy-abs's lobes are 2 apart.

The N-point subsample at cycle k uses the generator
``default_rng([reference_seed, N, k])``, so it does not depend on which
other N are computed at the same time. References are computed once per
(problem, cycles, spinup, seed, particles), kept in memory in each process
and, with ``cache_dir``, on disk (``.npz``).
"""
import dataclasses
import hashlib
import json
import os
import warnings

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import logsumexp

from .._validation import as_generator, psd_factor
from ..particle import gaussian_log_likelihood, systematic_resample
from .problems import get_problem, resolve_problem
from .models import integrate
from .twin import TRUTH_SPINUP_STEPS, problem_config, twin_experiment

__all__ = ["W2_EVERY", "REFERENCE_PARTICLES", "Reference", "reference_posterior", "w2_cycles",
           "point_mass_filter_1d", "grid_posterior_toy_abs", "sample_grid", "reference_subsample"]

#: W2 is computed at every W2_EVERY-th scored cycle.
W2_EVERY = 10
#: Particles of the bootstrap reference filter (at least 20,000).
REFERENCE_PARTICLES = 20_000


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


def sample_grid(grid, density, n, rng=None, stratified=False):
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
    stratified : bool, default False
        False: i.i.d. draws. True: one draw in each quantile band
        ``[i / n, (i + 1) / n)`` (uniforms ``(i + u_i) / n``), so the mass
        of any interval is matched to within one point; the sample comes
        out sorted. The benchmark's reference sample for W2.

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
    # Scaled by the largest value: a total below the smallest normal float
    # (or above the largest) keeps its digits.
    cdf = np.cumsum(w / w.max())
    u = rng.random(n)
    if stratified:
        u = (np.arange(n) + u) / n
    idx = np.searchsorted(cdf, u * cdf[-1], side="right")
    idx = np.minimum(idx, grid.size - 1)
    x = grid[idx] + (rng.random(n) - 0.5) * dx
    return x[:, None]

# ---------------------------------------------------------------------------
# Reference posterior samples
# ---------------------------------------------------------------------------

def reference_subsample(X, w, draws):
    """N equally weighted points from a weighted cloud, stratified along its leading axis.

    Systematic resampling of the particles in the order of their
    projections on the leading principal axis of the weighted cloud: the
    number of points on either side of any cut across that axis is within
    one of ``n`` times the cloud's mass there, and every particle keeps its
    expected count ``n w_i``. The axis and the order are computed once for
    every size drawn.

    Parameters
    ----------
    X : ndarray (M, d)
    w : ndarray (M,)
        Normalised weights.
    draws : dict int -> numpy.random.Generator
        Sample size ``n`` and the generator of its systematic draw.

    Returns
    -------
    dict int -> ndarray (n, d)
    """
    X = np.asarray(X, dtype=float)
    w = np.asarray(w, dtype=float)
    A = X - w @ X
    # the leading right singular vector of the weighted anomalies
    _, _, vt = np.linalg.svd(A * np.sqrt(w)[:, None], full_matrices=False)
    order = np.argsort(A @ vt[0], kind="stable")
    w_sorted = w[order]
    return {n: X[order[systematic_resample(w_sorted, rng, n)]] for n, rng in draws.items()}


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
_REFERENCE_VERSION = 2     # 2: stratified N-point samples


def _reference_key(problem, twin, particles):
    # The observations pin the truth and noise; the config pins the rest. A
    # changed problem definition gives a new key, never a stale cache hit.
    h = hashlib.sha256()
    h.update(json.dumps(problem_config(problem), sort_keys=True).encode())
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
    samples = {N: np.stack([sample_grid(grid, density[k], N, rng=_subsample_rng(twin, N, k),
                                        stratified=True)
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


def _particle_reference(problem, twin, Ns, particles, on_scored=None):
    """The bootstrap reference; ``on_scored(j, X, w)``, if given, sees its weighted cloud at each scored cycle."""
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
            for N, S in reference_subsample(X, w, {N: _subsample_rng(twin, N, k)
                                                   for N in Ns}).items():
                samples[N][j] = S
            if on_scored is not None:
                on_scored(j, X, w)
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


def reference_job(problem_name, cycles, spinup, seed, Ns, particles, cache_dir):
    problem = resolve_problem(problem_name, cycles, spinup)
    return reference_posterior(problem, seed, Ns, particles, cache_dir)


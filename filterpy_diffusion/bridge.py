"""The bridge between the Gaussian core and a regularised particle filter.

One analysis that is the ensemble-transform Kalman update at small N and a
regularised particle filter as N allows, placed on that line by one rule.

The tempered split. With ``L(x) = N(z; hx(x), R)`` the posterior is
``p(x | z) ∝ p(x) L(x)^gamma L(x)^(1 - gamma)`` for every ``gamma`` in
[0, 1], and ``L^gamma ∝ N(z; hx(x), R / gamma)`` as a function of ``x``.
The first factor is assimilated by importance weights (the exact
likelihood, carried across cycles), the second by the Gaussian core with
``R / (1 - gamma)``. For a Gaussian prior and linear ``hx`` the weighted
step gives (as N -> infinity) the Gaussian ``p L^gamma`` and the Kalman step
with ``R / (1 - gamma)`` completes it: the information adds up, so the
product is the Kalman posterior for every ``gamma``.

The rule: two errors, two thresholds. (i) Carried weights are a particle
filter's, and the Monte Carlo variance of a weighted estimate is about
``var / ESS``. As a particle filter does (Kong, Liu and Wong 1994), they are
resampled once the full likelihood would leave fewer than ``rho N``
effective members (``rho`` = :data:`RESAMPLE_FRACTION`): the Monte Carlo
variance stays within ``1 / (rho N)`` of the posterior variance, which
vanishes as N grows. (ii) Whatever the weights take must leave the
resampled ensemble at least ``n_required = c (r + 1)`` effective members
(:func:`required_ess`): ``c`` (``members_per_dim``) per direction in which
the weights discriminate, plus one for the mean, where ``r``
(:func:`informed_dimension`) is the number of directions of observation
space in which the ensemble has spread (the rank of the whitened
predicted-measurement anomalies, at most ``min(N - 1, dim_z)``). So the
weights are carried while ``ESS(w L) >= n_resample = max(n_required, rho N)``
(:func:`resample_threshold`); below it ``gamma`` is the largest likelihood
fraction that keeps ``ESS >= n_required`` (:func:`likelihood_fraction`),
the weighted ensemble is resampled with Scott-factor jitter
(:func:`regularised_resample`) and, if ``gamma < 1``, the Gaussian core
takes the rest. What it optimises: the largest share of the likelihood
assimilated exactly (by weights), subject to the particle filter's
relative variance bound on carried weights and the absolute floor at a
move. A move with ``gamma = 1`` is a particle filter's resampling; its
plain Scott jitter widens the copies by ``1 + h^2`` (``h -> 0`` as N
grows). The variance-keeping alternative (``shrink_jitter=True``, Liu and
West 2001) fits the linear-Gaussian variances better; alone it lost track
on deterministic Lorenz-63 runs, where that widening was the only spread a
particle-filter move added. With ``move_inflation`` the move takes the
finite-size floor a core gets at ``gamma < 1`` instead
(``Policy(shrink_jitter=True)``, opt-in: it still lost track on some
tuning runs, docs/bridge.md, "Particle-filter moves").

Limits. N -> infinity with fixed ``r``: ``n_resample = rho N``, ``gamma ->
1``, a regularised particle filter with threshold ``rho`` whose jitter
``h = ESS^(-1/(d+4))`` vanishes, so it converges (for linear-Gaussian
problems, to the Kalman filter). When ``N <= r + 1`` (the rank-deficient
regime, any ``c >= 1``) ``n_required >= N``, ``gamma = 0`` and the analysis
is exactly the Gaussian core. When ``rho N <= c (r + 1)`` the rule is the
floor alone. Between, ``gamma`` grows with the members per informed
direction.

Everything here is a pure function on arrays; weights are kept as log
weights. The derivation, the tuning-seed table and the driver are in
``docs/bridge.md``.
"""
from __future__ import annotations

import numbers

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq

from ._validation import (as_covariance, as_ensemble, as_generator, as_vector,
                          cholesky_factor, triangular_solve)
from .etkf import _rounding_level
from .inflation import _inflated
from .particle import gaussian_log_likelihood
# The weight and resampling helpers live in weights.py and resampling.py;
# they are re-exported here, where they were first defined.
from .resampling import (_check_process_noise, _regularised_resample, jitter_factor,
                         regularised_resample)
from .weights import check_log_weights, effective_sample_size, kish_ess, normalised_weights

__all__ = ["MEMBERS_PER_DIM", "RESAMPLE_FRACTION", "normalised_weights",
           "effective_sample_size", "weighted_mean", "informed_dimension", "required_ess",
           "resample_threshold", "MAX_MOVE_JITTER", "MOVE_MEMBERS", "move_dimension",
           "state_allows_move",
           "likelihood_fraction", "tempered_log_weights", "jitter_factor",
           "regularised_resample", "bridge_analysis"]

#: Default effective members per informed direction, ``c`` in
#: ``n_required = c (r + 1)``. Chosen on DAPPER's Lorenz63.sakov2012 with
#: tuning seeds 3000-3005: the top of the plateau 1.5-2.5 found at N = 50
#: and 100 (5 is worse there, 1 loses track on one seed at N = 50), where
#: N <= 2.5 (r + 1) = 10 (r = 3) is the pure Gaussian core; the weights'
#: moves cost 6% there (rmse.a 0.573 against 0.541, six seeds), and
#: c = 2, 2.5 and 3 are within noise at N = 20, 50 and 100
#: (docs/bridge.md). It must be >= 1 so that a rank-deficient ensemble is
#: the pure Gaussian core.
MEMBERS_PER_DIM = 2.5

#: Resampling fraction ``rho``: the carried weights are resampled once the
#: full likelihood would leave them fewer than ``rho N`` effective members
#: (the particle filter's relative threshold, Kong, Liu and Wong 1994),
#: floored by ``c (r + 1)``. A relative threshold keeps the Monte Carlo
#: variance of the weighted estimate within ``1 / (rho N)`` of the posterior
#: variance, which vanishes as N grows (the Kalman limit); the absolute floor
#: alone let the weights fall to ``c (r + 1) = 4`` of N = 2000 members.
#: Chosen on DAPPER's Lorenz63.sakov2012, tuning seeds 3000-3002, N = 50 and
#: 100, over 0 (the floor only), 0.3 (DAPPER's PartFilt NER), 0.5 and 1
#: (resample every cycle): 0.3 was best at both N; also on
#: Lorenz63.wiljes2017 (N = 30) and the linear-Gaussian twin (seeds 6-12,
#: N = 2000): docs/bridge.md, docs/data/bridge_tuning.json.
RESAMPLE_FRACTION = 0.3

#: Largest relative variance ``h^2`` of a move's jitter, with Scott's ``h``
#: for all N members in the state's ``d = min(N - 1, dim_x)`` directions,
#: for which :func:`state_allows_move` allows a move: a copy's jitter may
#: add at most half its variance, the members' own share. Beyond it a
#: move is closer to a Gaussian redraw, with Monte Carlo noise in every
#: direction, than to the weighted sample. Not tuned: the break-even
#: point, checked afterwards on tuning seeds (docs/bridge.md).
MAX_MOVE_JITTER = 0.5

#: What a move's thresholds count (:func:`bridge_analysis`' ``move_members``).
MOVE_MEMBERS = ('informed', 'state', 'auto')


def move_dimension(N, dim_x):
    """``min(N - 1, dim_x)``: the directions in which a move redraws whole members.

    N members span at most N - 1 directions of a ``dim_x``-dimensional
    state; the jitter of a move follows their (weighted) covariance.
    """
    return min(int(N) - 1, int(dim_x))


def state_allows_move(N, dim_x, members_per_dim=MEMBERS_PER_DIM, max_jitter=MAX_MOVE_JITTER):
    """Whether the ensemble can afford a move on the whole state.

    A move resamples and jitters whole members, in ``d = min(N - 1,
    dim_x)`` directions, however few of them are observed. Two conditions,
    both on what the whole ensemble could do:

    * ``N > c (d + 1)``: the members a fully observed state of this size
      needs (:func:`required_ess` of ``d``);
    * ``N^(-2 / (d + 4)) < max_jitter``: Scott's jitter for all N members
      adds less than ``max_jitter`` of a copy's variance. Scott's factor
      tends to 1 as ``d`` grows, so this needs ``N > 2^((d + 4) / 2)`` at
      the default 1/2: 12 members for 3 directions, 129 for 10, 4097 for 20.

    Parameters
    ----------
    N : int >= 2
    dim_x : int >= 1
    members_per_dim : float >= 1, default :data:`MEMBERS_PER_DIM`
    max_jitter : float in (0, 1], default :data:`MAX_MOVE_JITTER`
        1 drops the second condition (Scott's factor is below 1 for N >= 2).

    Returns
    -------
    bool

    Examples
    --------
    >>> from filterpy_diffusion.bridge import state_allows_move
    >>> state_allows_move(20, 3), state_allows_move(100, 10), state_allows_move(500, 40)
    (True, False, False)
    """
    if not (isinstance(N, numbers.Integral) and N >= 2):
        raise ValueError(f"N must be an int >= 2, got {N!r}")
    if not (isinstance(dim_x, numbers.Integral) and dim_x >= 1):
        raise ValueError(f"dim_x must be a positive int, got {dim_x!r}")
    _check_max_jitter(max_jitter)
    d = move_dimension(N, dim_x)
    return bool(required_ess(d, members_per_dim) < N
                and float(N) ** (-2.0 / (d + 4)) < max_jitter)


def _check_move_inflation(l):
    if isinstance(l, bool) or not isinstance(l, numbers.Real) or not (np.isfinite(l) and l > 0):
        raise ValueError(f"move_inflation must be None, a callable or a positive finite factor, "
                         f"got {l!r}")
    return float(l)


def _check_max_jitter(max_jitter):
    if not (isinstance(max_jitter, numbers.Real) and not isinstance(max_jitter, bool)
            and 0.0 < max_jitter <= 1.0):
        raise ValueError(f"max_jitter must be a number in (0, 1], got {max_jitter!r}")


def weighted_mean(X: npt.ArrayLike, log_w: npt.ArrayLike) -> np.ndarray:
    """The weighted ensemble mean ``sum_i w_i x_i``, shape (dim_x,)."""
    X = as_ensemble(X, "X")
    return normalised_weights(check_log_weights(log_w, N=X.shape[0])) @ X


def informed_dimension(hz, R):
    """Number of observation-space directions in which the ensemble has spread.

    The numerical rank of the whitened predicted-measurement anomalies
    ``(hz_i - mean(hz)) L^-T`` (``R = L L^T``): at most ``min(N - 1, dim_z)``,
    the dimension of the subspace in which weights can discriminate members.

    Parameters
    ----------
    hz : ndarray (N, dim_z)
        Predicted measurements ``hx(x_i)``.
    R : ndarray (dim_z, dim_z)
        Positive definite measurement covariance.

    Returns
    -------
    int
    """
    hz = as_ensemble(hz, "hz")
    N, m = hz.shape
    R = as_covariance(R, "R", m)
    L = cholesky_factor(R, "(the bridge whitens by R^-1/2)",
                        "Add a small noise variance to the exactly observed components.")
    mean = hz.mean(0)
    s = np.linalg.svd(triangular_solve(L, (hz - mean).T).T, compute_uv=False)
    if s.size == 0 or s[0] == 0.0:
        return 0
    # The ETKF's rank rule: above the SVD's and the mean's rounding.
    return int((s > _rounding_level(s, L, mean, hz.shape)).sum())


def required_ess(informed_dim, members_per_dim=MEMBERS_PER_DIM):
    """``n_required = c (r + 1)``: effective members the weighted step must keep.

    Parameters
    ----------
    informed_dim : int >= 0
        ``r`` from :func:`informed_dimension`.
    members_per_dim : float >= 1, default :data:`MEMBERS_PER_DIM`
        ``c``. At least 1, so that ``N <= r + 1`` gives ``n_required >= N``
        (the pure Gaussian core).

    Returns
    -------
    float
    """
    if not (isinstance(informed_dim, numbers.Integral) and informed_dim >= 0):
        raise ValueError(f"informed_dim must be a non-negative int, got {informed_dim!r}")
    _check_members_per_dim(members_per_dim)
    return float(members_per_dim) * (informed_dim + 1)


def resample_threshold(N, informed_dim, members_per_dim=MEMBERS_PER_DIM,
                       resample_fraction=RESAMPLE_FRACTION):
    """``n_resample = max(c (r + 1), rho N)``: below it the carried weights are resampled.

    The particle filter's relative threshold ``rho N`` (its Monte Carlo
    variance ``var / ESS`` stays within ``1 / (rho N)`` of ``var``, so it
    vanishes as N grows), never below the floor :func:`required_ess` that the
    weights must keep in any case.

    Parameters
    ----------
    N : int >= 1
        Ensemble size.
    informed_dim : int >= 0
        ``r`` from :func:`informed_dimension`.
    members_per_dim : float >= 1, default :data:`MEMBERS_PER_DIM`
    resample_fraction : float in [0, 1], default :data:`RESAMPLE_FRACTION`
        ``rho``; 0 keeps the floor only.

    Returns
    -------
    float
    """
    if not (isinstance(N, numbers.Integral) and N >= 1):
        raise ValueError(f"N must be a positive int, got {N!r}")
    _check_resample_fraction(resample_fraction)
    return max(required_ess(informed_dim, members_per_dim), float(resample_fraction) * N)


def _check_resample_fraction(rho):
    if not (isinstance(rho, numbers.Real) and not isinstance(rho, bool) and 0 <= rho <= 1):
        raise ValueError(f"resample_fraction must be a number in [0, 1] (the fraction of N "
                         f"below which carried weights are resampled), got {rho!r}")


def _check_members_per_dim(c):
    if not (isinstance(c, numbers.Real) and not isinstance(c, bool) and np.isfinite(c)
            and c >= 1):
        raise ValueError(f"members_per_dim must be a finite number >= 1 (effective members per "
                         f"informed direction), got {c!r}")


def tempered_log_weights(log_w: np.ndarray, log_lik: np.ndarray, gamma: float) -> np.ndarray:
    """``log_w + gamma * log_lik``, with ``gamma = 0`` leaving zero likelihoods alone.

    Parameters
    ----------
    log_w, log_lik : ndarray (N,)
        Log weights and log likelihoods (``-inf`` allowed in both).
    gamma : float in [0, 1]

    Returns
    -------
    ndarray (N,)
    """
    with np.errstate(invalid="ignore"):
        return _tempered(log_w, log_lik, gamma)


def _tempered(log_w, log_lik, gamma):
    # tempered_log_weights without its errstate (the caller's covers a whole search).
    if gamma == 0.0:
        return np.array(log_w, dtype=float)
    return log_w + gamma * log_lik


def _as_log_lik(log_lik, N):
    log_lik = np.asarray(log_lik, dtype=float)
    if log_lik.shape != (N,):
        raise ValueError(f"log_lik must have shape ({N},), got {log_lik.shape}")
    if np.isnan(log_lik).any() or (log_lik == np.inf).any():
        raise ValueError("log_lik must not be NaN or +inf")
    return log_lik


def _keeps_ess(lw, n_required):
    """``ESS(lw) >= n_required``; for ``n_required >= N`` decided exactly (equal weights only)."""
    if n_required >= lw.size:
        # Only equal weights have ESS = N; decided exactly, not by a rounded 1 / sum(w^2).
        return bool((lw == lw[0]).all() and np.isfinite(lw[0]))
    return bool(np.isfinite(lw).any() and effective_sample_size(lw) >= n_required)


def likelihood_fraction(log_w, log_lik, n_required, rtol=1e-8):
    """The largest ``gamma`` in [0, 1] whose weights keep ``ESS >= n_required``.

    Returns 1 when the full likelihood keeps the effective sample size,
    0 when even the current weights do not (and whenever ``n_required >= N``
    unless every tempered weight is equal); otherwise bisects the bracket
    ``ESS(lo) >= n_required > ESS(hi)``. With equal prior weights
    ``ESS(gamma)`` is non-increasing (its log-derivative is
    ``2 (E_gamma[l] - E_2gamma[l]) <= 0``), so the crossing is unique.

    Parameters
    ----------
    log_w : ndarray (N,)
        Current log weights.
    log_lik : ndarray (N,)
        Log likelihood of every member (``-inf`` for impossible members).
    n_required : float > 0
    rtol : float, default 1e-8
        Width of the final bracket.

    Returns
    -------
    float
    """
    log_w = check_log_weights(log_w)
    log_lik = _as_log_lik(log_lik, log_w.size)
    if not (np.isfinite(n_required) and n_required > 0):
        raise ValueError(f"n_required must be a positive number, got {n_required!r}")
    return _likelihood_fraction(log_w, log_lik, n_required, rtol)


def _likelihood_fraction(log_w, log_lik, n_required, rtol=1e-8):
    """:func:`likelihood_fraction` of checked inputs (:func:`bridge_analysis` has checked them)."""
    if n_required >= log_w.size:
        return 1.0 if _keeps_ess(log_w + log_lik, n_required) else 0.0

    log_n = np.log(n_required)

    def excess(g):
        # log ESS(g) - log n_required, without re-checking the inputs.
        lw = _tempered(log_w, log_lik, g)
        top = lw.max()
        return np.log(kish_ess(np.exp(lw - top))) - log_n if top > -np.inf else -np.inf

    # tempered_log_weights' errstate, entered once for the search's ~12 steps.
    with np.errstate(invalid="ignore"):
        if excess(1.0) >= 0:
            return 1.0
        if excess(0.0) < 0:
            return 0.0
        # Brent's method on the smooth, non-increasing log ESS (about 8 steps
        # where bisection took 27), then a bracket of width rtol around its root
        # whose lower end keeps the ESS; bisection if rounding put the root outside.
        root = brentq(excess, 0.0, 1.0, xtol=0.25 * rtol)
        lo, hi = max(root - 0.5 * rtol, 0.0), min(root + 0.5 * rtol, 1.0)
        if excess(lo) < 0:
            lo, hi = 0.0, lo
        if hi < 1.0 and excess(hi) >= 0:
            lo, hi = hi, 1.0
        while hi - lo > rtol:
            g = 0.5 * (lo + hi)
            if excess(g) >= 0:
                lo = g
            else:
                hi = g
    return lo


def bridge_analysis(X, log_w, z, R, hx, gaussian_update, rng,
                    members_per_dim=MEMBERS_PER_DIM, hz=None,
                    resample_fraction=RESAMPLE_FRACTION, shrink_jitter=False, modes=None,
                    informed_dim=None, move_members='informed', max_jitter=MAX_MOVE_JITTER,
                    move_inflation=None, process_noise=None):
    """One bridged analysis: weights for ``L^gamma``, the Gaussian core for the rest.

    1. ``l_i = log N(z; hx(x_i), R)``, ``r`` = :func:`informed_dimension`,
       the floor ``n_required = c (r + 1)`` (:func:`required_ess`) and the
       resampling threshold ``n_resample = max(n_required, rho N)``
       (:func:`resample_threshold`).
    2. ``ESS(log_w + l) >= n_resample``: the weights ``log_w + l`` are
       carried, members unchanged (a particle-filter step, ``gamma = 1``).
    3. Otherwise the weights take the largest fraction ``gamma`` of the
       likelihood that keeps ``ESS >= n_required``
       (:func:`likelihood_fraction`), the ensemble is resampled by
       ``log_w + gamma l`` with jitter (:func:`regularised_resample`;
       skipped when those weights are equal, as at ``gamma = 0`` from equal
       weights) and, if ``gamma < 1``,
       ``gaussian_update(X, hx(X), z, R / (1 - gamma), gamma)`` assimilates
       the rest; weights reset to equal.

    Parameters
    ----------
    X : ndarray (N, dim_x)
        Forecast members.
    log_w : ndarray (N,)
        Their log weights (zeros for an equally weighted ensemble).
    z : ndarray (dim_z,)
    R : ndarray (dim_z, dim_z)
        Positive definite measurement covariance.
    hx : callable ``(N, dim_x) -> (N, dim_z)``
        Measurement function on the whole ensemble.
    gaussian_update : callable ``(X, hz, z, R, gamma) -> X_a``
        The Gaussian core, e.g. an ETKF with finite-size inflation; it is
        called with the remaining noise ``R / (1 - gamma)`` and told
        ``gamma`` (a core may then skip a random rotation, which would
        Gaussianise the resampled members). Not called when ``gamma = 1``.
    rng : None, int or numpy.random.Generator
        Source of the resampling and jitter.
    members_per_dim : float >= 1, default :data:`MEMBERS_PER_DIM`
    hz : ndarray (N, dim_z), optional
        ``hx(X)`` if already computed.
    resample_fraction : float in [0, 1], default :data:`RESAMPLE_FRACTION`
        ``rho``; 0 resamples only at the floor ``n_required``.
    shrink_jitter : bool, default False
        At a move with ``gamma = 1`` shrink the jittered copies towards the
        weighted mean (``regularised_resample(..., shrink=True)``), so the
        resampled ensemble keeps the weighted covariance instead of widening
        the copies by ``1 + h^2``. Alone it lost track on Lorenz-63 tuning
        runs where the plain jitter did not; ``Policy(shrink_jitter=True)``
        pairs it with ``move_inflation``.
    modes : callable ``(X, hz) -> labels (N,)``, optional
        Modes of the forecast; at a move each copy is jittered with its own
        mode's covariance (:func:`~filterpy_diffusion.resampling.regularised_resample`),
        so that the jitter never blurs separated modes into one.
    informed_dim : int, optional
        :func:`informed_dimension` of ``(hz, R)`` if already computed.
    move_members : {'informed', 'state', 'auto'}, default 'informed'
        What ``n_required`` and ``n_resample`` count. ``'informed'``: ``r``.
        ``'state'``: the directions a move redraws, ``max(r, min(N - 1,
        dim_x))``: a move resamples and jitters whole members, so with fewer
        observed directions than state directions it needs ``c`` members
        for each state direction, not only for those the weights see (the
        same as ``r`` when the observations span the state, ``dim_z >=
        dim_x``, generic ``hx``). ``'auto'``: no move unless the ensemble
        could afford one on the whole state (:func:`state_allows_move`:
        ``N > c (min(N - 1, dim_x) + 1)``, the members a fully observed
        state of this size would need, and Scott's jitter for all N members
        below ``max_jitter`` of a copy's variance), otherwise the Gaussian
        core (``gamma = 0``); where a move is affordable they count ``r``,
        so the weights still go down to ``c (r + 1)``. Without it,
        observing fewer directions of a large state allowed more weighting
        than observing all of them, and large states were weighted at all.
        The filter's default is ``'auto'`` (``Policy.move_members``).
    max_jitter : float in (0, 1], default :data:`MAX_MOVE_JITTER`
        See :func:`state_allows_move`; used with ``move_members='auto'``.
    move_inflation : float > 0, callable ``() -> float`` or None, optional
        At a particle-filter move (``gamma = 1``, where no core runs) the
        resampled members' anomalies are scaled by ``max(1, l)`` about their
        mean, ``l`` this value; a callable is called only at such a move.
        The filter passes the forecast's finite-size factor for the whole
        likelihood, the floor its core gets at a move with ``gamma < 1``
        (``Policy.core_inflation_floor``). None: no inflation.
    process_noise : ndarray (dim_x, dim_x), optional
        The covariance ``Q`` of the noise the next forecast adds. A move's
        copies are then jittered by only the part of Scott's kernel that
        ``Q`` does not supply, ``(h^2 C_w - Q)_+``
        (:func:`~filterpy_diffusion.resampling.jitter_duplicates`); the
        filter passes its ``Q`` (``Policy.move_jitter_minus_q``). None or
        all zeros (a deterministic model): the whole kernel.

    Returns
    -------
    X_a : ndarray (N, dim_x)
    log_w_a : ndarray (N,)
        Log weights, maximum 0.
    info : dict
        ``'gamma'``, ``'n_required'``, ``'n_resample'``, ``'informed_dim'``,
        ``'counted_dim'`` (the dimension the two thresholds count),
        ``'ess'`` (of the carried or tempered weights), ``'moved'`` (bool),
        and at a particle-filter move with ``move_inflation`` given,
        ``'move_inflation'`` (the factor used).

    Examples
    --------
    >>> import numpy as np
    >>> from filterpy_diffusion.bridge import bridge_analysis
    >>> def core(X, hz, z, R, gamma):   # stochastic EnKF, enough for the example
    ...     P = np.cov(X.T); K = P @ np.linalg.inv(P + R)
    ...     D = rng.multivariate_normal(np.zeros(len(z)), R, size=len(X))
    ...     return X + (z + D - hz) @ K.T
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2))
    >>> Xa, lw, info = bridge_analysis(X, np.zeros(200), np.array([0.5, 0.]), np.eye(2),
    ...                                lambda X: X, core, rng)
    >>> info['informed_dim'], info['n_required'], info['n_resample'], info['gamma']
    (2, 7.5, 60.0, 1.0)
    >>> info['moved'], bool(info['ess'] >= info['n_resample'])
    (False, True)
    """
    X = as_ensemble(X, "X", min_rows=2)
    N = X.shape[0]
    log_w = check_log_weights(log_w, N=N)
    _check_members_per_dim(members_per_dim)
    _check_resample_fraction(resample_fraction)
    if move_members not in MOVE_MEMBERS:
        raise ValueError(f"move_members must be one of {MOVE_MEMBERS}, got {move_members!r}")
    if move_inflation is not None and not callable(move_inflation):
        _check_move_inflation(move_inflation)
    process_noise = _check_process_noise(process_noise, X.shape[1])
    rng = as_generator(rng)
    hz = as_ensemble(hx(X) if hz is None else hz, "hz")
    if hz.shape[0] != N:
        raise ValueError(f"hx(X) / hz must have one row per member, shape ({N}, dim_z), "
                         f"got {hz.shape}")
    m = hz.shape[1]
    z = as_vector(z, "z", m)
    R = as_covariance(R, "R", m)
    log_lik = gaussian_log_likelihood(z, hz, R)
    if not np.isfinite(log_w + log_lik).any():
        raise FloatingPointError(
            "every member has zero posterior weight (log likelihood -inf where the weight is "
            "non-zero): z is too far from hx of every member for float arithmetic; check z, R "
            "and hx")
    r = informed_dimension(hz, R) if informed_dim is None else informed_dim
    state_dim = move_dimension(N, X.shape[1])
    no_move = move_members == 'auto' and not state_allows_move(N, X.shape[1], members_per_dim,
                                                               max_jitter)
    counted = max(r, state_dim) if (move_members == 'state' or no_move) else r
    n_req = required_ess(counted, members_per_dim)
    n_move = resample_threshold(N, counted, members_per_dim, resample_fraction)
    if no_move:    # only equal weights keep N effective members: gamma = 0, the core
        n_req, n_move = max(n_req, float(N)), max(n_move, float(N))
    info = {'n_required': n_req, 'n_resample': n_move, 'informed_dim': r, 'counted_dim': counted}
    full = log_w + log_lik
    if _keeps_ess(full, n_move):
        lw = full - full.max()
        info.update(gamma=1.0, ess=effective_sample_size(lw), moved=False)
        return X.copy(), lw, info
    gamma = _likelihood_fraction(log_w, log_lik, n_req)
    info['gamma'] = gamma
    lw = tempered_log_weights(log_w, log_lik, gamma)
    ess = effective_sample_size(lw)
    info.update(ess=ess, moved=True)
    # Shrinking applies only to a particle-filter move (gamma = 1): before the
    # core, the core's inflation governs the spread.
    labels = None if modes is None else modes(X, hz)
    Xr, rinfo = _regularised_resample(X, lw, rng, shrink=shrink_jitter and gamma == 1.0,
                                      labels=labels, ess=ess, process_noise=process_noise)
    if gamma == 1.0:      # the weights took the whole likelihood: a particle-filter move
        if move_inflation is not None:
            l = move_inflation() if callable(move_inflation) else move_inflation
            info['move_inflation'] = l = max(1.0, _check_move_inflation(l))
            if l > 1.0:
                Xr = _inflated(Xr, l)
        return Xr, np.zeros(N), info
    if rinfo['indices'] is not None:
        hz = as_ensemble(hx(Xr), "hx(X)")
    Xa = as_ensemble(gaussian_update(Xr, hz, z, R / (1.0 - gamma), gamma), "gaussian_update(...)",
                     dim=X.shape[1])
    return Xa, np.zeros(N), info

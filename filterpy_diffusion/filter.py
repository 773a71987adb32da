"""DiffusionKDEFilter: a drop-in for filterpy's EnsembleKalmanFilter.

The update simulates a measurement for every member with the black-box
``hx`` (plus ``N(0, R)`` noise, or a user's stochastic simulator), models the
joint density of (state, measurement) with a Gaussian KDE, conditions it on
the observation in closed form and draws the analysis ensemble with a
diffusion sampler whose score is known exactly.
"""
from __future__ import annotations

import numbers
import warnings
from typing import Callable, Optional, Union

import numpy as np
import numpy.typing as npt

from .bandwidth import (RULES, coordinate_scale, resolve_bandwidth, rule_factor,
                        select_by_ess)
from .bridge import bridge_analysis, informed_dimension, required_ess
from .etkf import (_etkf_analysis, _spectrum, check_whitening, etkf_analysis, finite_size_factor,
                   finite_size_inflation, spectrum_rank, whitened_spectrum)
from .diffusion import (DEFAULT_ODE_STEPS, DEFAULT_SDE_STEPS, SAMPLERS, check_sampler_options,
                        number_of_evaluations, sample)
from .clustering import gaussian_pvalue, mode_difference_pvalue, split_ensemble
from ._validation import RngLike, as_covariance, check_inflation, is_singular
from .ensemble import EnsembleFilter
from .inflation import _inflated, innovation_lambda
from .kde import (ClusteredKDE, ConditionalKDE, CovarianceKDE, EnKPFDensity,
                  check_evidence_threshold, monte_carlo_cluster_log_weights)
from .kde import _log_prior as log_prior_weights
from .particle import gaussian_log_likelihood
from .policy import DEFAULT_POLICY, Policy
from .resampling import systematic_resample
from .synthetic import averaged_noise_covariance, pooled_noise_covariance, simulation_moments
from .weights import kish_ess, logsumexp

__all__ = ["DiffusionKDEFilter", "KERNELS", "GAUSSIAN_CORES", "H_RANGE"]

# exp(x) underflows to 0 below this: every kernel weight would be 0 in linear space.
_LOG_TINY = np.log(np.finfo(float).tiny)


KERNELS = ('auto', 'covariance', 'enkpf', 'isotropic', 'etkf', 'bridge')
#: The one-mode update of kernel='auto' (``gaussian_core=``).
GAUSSIAN_CORES = ('bridge', 'etkf', 'enkpf')
#: Search interval of the automatic bandwidth factor (the policy's default).
H_RANGE = DEFAULT_POLICY.h_range


def _check_bandwidth_spec(spec, name, rules=RULES + ('auto',)):
    if isinstance(spec, str):
        if spec not in rules:
            raise ValueError(f"{name} rule must be one of {rules}, got {spec!r}")
    elif not callable(spec):
        h = np.asarray(spec, dtype=float)
        if h.ndim > 1 or not np.isfinite(h).all() or (h <= 0).any():
            raise ValueError(
                f"{name} must be a positive float or vector, a rule name {RULES} or a callable, got {spec!r}")
    return spec


class DiffusionKDEFilter(EnsembleFilter):
    """Ensemble filter whose analysis samples a closed-form conditional diffusion.

    Same constructor, methods and attributes as
    ``filterpy.kalman.EnsembleKalmanFilter``; swap the class name and a
    working EnKF script runs, with a filter that can represent multimodal,
    non-Gaussian posteriors.

    Parameters
    ----------
    x : ndarray (dim_x,)
        Initial state mean.
    P : ndarray (dim_x, dim_x) or float
        Initial state covariance (symmetric positive semi-definite).
    dim_z : int
        Measurement dimension.
    dt : float
        Time step passed to ``fx``.
    N : int
        Ensemble size, >= 2.
    hx : callable ``hx(x) -> (dim_z,)``
        Measurement function (only called, never differentiated).
    fx : callable ``fx(x, dt) -> (dim_x,)``
        State transition (only called).
    kernel : {'auto', 'covariance', 'enkpf', 'isotropic', 'etkf', 'bridge'} or None, default None
        None: ``'isotropic'`` if ``sigma_x`` or ``sigma_y`` is given, else
        ``'auto'`` (the ``kernel`` attribute holds the resolved name).
        ``'covariance'``: kernel covariance ``h^2 C`` of the joint (x, y)
        ensemble with Liu-West shrinkage (see :class:`CovarianceKDE`); the
        mixture interpolates between an EnKF (h -> 1) and a particle filter
        (h -> 0). ``'enkpf'``: the ensemble Kalman particle filter's mixture
        (:class:`EnKPFDensity`), which never contracts members towards the
        mean; g = 1 is the stochastic EnKF. ``'auto'``: per update, ``hx``
        is called once and the joint ensemble ``(x_i, hx(x_i))`` is tested
        for two well-separated modes along its leading principal axes
        (:func:`filterpy_diffusion.clustering.split_ensemble`, thresholds in
        ``policy``), each with at least ``members_per_dim (r + 1)`` members
        (the bridge's floor); two modes that z cannot tell apart get the
        covariance kernel fitted per mode (with the diffusion sampler), one
        mode (or two that z decides between) gets ``gaussian_core`` (by
        default ``'bridge'``). A simulator (no ``hx``) or a singular ``R``
        always gets the covariance kernel.
        ``'isotropic'``: the published product kernel
        ``N(x; x_i, sx^2) N(y; y_i, sy^2)`` (:class:`ConditionalKDE`).
        ``'etkf'``: no kernel, the Gaussian core: a deterministic
        ensemble-transform Kalman update (symmetric square root,
        :func:`filterpy_diffusion.etkf.etkf_analysis`); needs ``hx`` and a
        positive definite ``R``. ``'bridge'``: between the ETKF and a
        regularised particle filter
        (:func:`filterpy_diffusion.bridge.bridge_analysis`): exact-likelihood
        weights are carried across cycles while they keep an effective
        sample size of ``max(members_per_dim * (r + 1), rho N)`` (r: the
        observed directions the ensemble spreads in, rho
        :data:`filterpy_diffusion.bridge.RESAMPLE_FRACTION`); below that
        they take the largest likelihood fraction ``gamma`` that keeps
        ``members_per_dim * (r + 1)``, the weighted ensemble is resampled
        with Scott-factor jitter and the ETKF assimilates the rest with
        ``R / (1 - gamma)``. Small N: the ETKF; large N: a particle filter.
        No move at all unless the whole state could afford one
        (:func:`filterpy_diffusion.bridge.state_allows_move`,
        ``Policy.move_members``): the Gaussian core on large states.
        Needs ``hx`` and a positive definite R.
    bandwidth : 'auto', 'scott', 'silverman', float, callable or None, default None ('auto')
        The kernel's factor h (the split factor g for ``'enkpf'``, where
        h = 1 is allowed; (0, 1) otherwise). ``'auto'`` picks, at every
        update, the smallest h whose conditional weights keep an effective
        sample size of at least ``ess_target * N`` (bisection in log h).
        For ``'enkpf'``, ``'auto'`` first tests the predicted measurements
        for normality (:meth:`EnKPFDensity.normality_pvalue`, level
        ``policy.normality_alpha``) and keeps g = 1, the EnKF, unless they
        fail it. A callable gets ``(states, measurements)`` and returns h. Not for
        ``kernel='isotropic'`` (ValueError: it takes ``sigma_x, sigma_y``).
    sigma_x, sigma_y : 'auto', 'scott', 'silverman', float, ndarray, callable or None, default None
        Bandwidths of the isotropic kernel. A rule scales each coordinate's
        ensemble standard deviation by the rule's factor for the joint
        dimension ``dim_x + dim_z`` (as ``scipy.stats.gaussian_kde``);
        ``'auto'`` uses one factor for both blocks chosen like ``bandwidth``;
        a number or vector is the absolute kernel standard deviation; a
        callable gets ``(states, measurements)`` and returns one. Giving
        either selects ``kernel='isotropic'`` (the published method; the
        other one then defaults to ``'auto'``); with another ``kernel=`` it
        is a ValueError.
    ess_target : float in (0, 1] or None, default None
        Target ESS fraction of the automatic bandwidths; None: the policy's
        (``enkpf_ess_target`` 0.9 for the ``'enkpf'`` kernel,
        ``mode_ess_target`` 0.7 for the covariance kernel when
        ``kernel='auto'`` picks it, ``ess_target`` 0.5 otherwise). A
        ValueError when no bandwidth is automatic (it would be ignored).
    inflation : 'auto', 'adaptive', 'finite-size', float >= 1 or None, default 'auto'
        ``'auto'``: for ``kernel='etkf'``, ``'bridge'`` and ``'auto'``
        (unless ``gaussian_core='enkpf'``) when ``hx`` is given, per update
        ``'finite-size'`` when the predicted-measurement anomalies span the
        observation space (rank ``r = dim_z``), else the geometric blend of
        the finite-size and the adaptive factor with weights ``r / dim_z``
        and ``1 - r / dim_z`` (``N - 1 < dim_z``; the adaptive factor alone
        for a singular R); ``'adaptive'`` for the other kernels and with a
        simulator (the attribute then holds ``'adaptive'``).
        Multiplicative prior inflation of the ensemble anomalies before
        the analysis, ``x_i <- mean + f (x_i - mean)``. ``'adaptive'``
        estimates the variance factor ``f^2`` every update from the
        innovation statistics, ``(d^T R^-1 d - m) / tr(R^-1 HPH^T)`` with
        ``d = z - mean(hx(x_i))``, and smooths it in time with a Gaussian
        prior (Miyoshi 2011), never below 1. ``'finite-size'`` estimates
        ``f`` every update, with no state, by the finite-size (EnKF-N) rule
        of Bocquet (2011) (:func:`filterpy_diffusion.etkf.finite_size_factor`;
        may be below 1; needs ``hx`` and a positive definite ``R``). A float
        is a fixed ``f``; None or 1.0 turns inflation off. With
        ``kernel='etkf'`` the inflation scales the predicted-measurement
        anomalies too instead of calling ``hx`` again.
    members_per_dim : float >= 1 or None, default None
        The bridge only (``kernel='bridge'``, or ``'auto'`` with
        ``gaussian_core='bridge'``): shorthand for
        ``policy=Policy(members_per_dim=...)``.
    gaussian_core : {'bridge', 'etkf', 'enkpf'}, default 'bridge'
        The update of ``kernel='auto'`` on a one-mode ensemble: the bridge
        (as ``kernel='bridge'``), the ETKF alone, or the EnKPF mixture with
        its automatic split factor (as ``kernel='enkpf'``).
    policy : filterpy_diffusion.policy.Policy or None, default None
        Every threshold of the automatic decisions (mode test, bridge,
        bandwidth ESS targets, inflation hyperparameters), each documented
        with its tuning data; None is ``Policy()``. Stored as ``policy``.
    rot : bool, default True
        ETKF only: follow the transform with a random mean-preserving
        rotation of the anomalies (same mean and covariance; DAPPER's
        ``rot=True``), drawn from ``rng``. Without it the symmetric square
        root lets a few members drift far out over many cycles when N
        exceeds the dimension (Lorenz63.sakov2012, N = 50, tuning seed
        3000: rmse.a 0.85 without, 0.52 with; ``docs/gaussian-core.md``).
    xN : float > 0 or None, default None (``policy.xN``, 1)
        Certainty of the finite-size inflation's hyperprior
        (:func:`filterpy_diffusion.etkf.finite_size_coefficients`; DAPPER's
        ``xN``); only with ``inflation='finite-size'``. Shorthand for
        ``policy=Policy(xN=...)``.
    clusters : 1, 2, 'auto' or None, default None ('auto')
        Splits the covariance kernel (chosen, or picked by ``kernel='auto'``;
        the other kernels are never split). ``'auto'`` splits the joint ensemble
        ``(x_i, hx(x_i))`` into two clusters when it has two well-separated
        modes (:func:`filterpy_diffusion.clustering.split_ensemble`), and
        fits the kernel, gain, shrinkage and inflation per cluster
        (:class:`ClusteredKDE`). Mass moves between the clusters only when
        their evidence differs by more than ``policy.evidence_threshold``
        standard errors.
        2 splits whenever the cluster sizes allow (a ValueError with the
        ``'isotropic'`` and ``'enkpf'`` kernels); 1 never splits.
    evidence_threshold : float >= 0 or None, default None (``policy.evidence_threshold``, 10)
        Standard errors by which the clusters' log evidence must differ
        before mass moves between them (:class:`ClusteredKDE`); 1 is plain
        James-Stein shrinkage, ``inf`` never moves mass. A ValueError where
        the ensemble is never split (``kernel='isotropic'`` or ``'enkpf'``,
        or ``clusters=1``).
    sampler : {'ode', 'sde', 'exact'} or None, default None
        How the analysis ensemble is drawn from the conditional KDE: the
        probability-flow ODE, the reverse SDE, or exact mixture sampling
        (systematic component choice, in member order). None: ``'exact'``
        for the ``'enkpf'`` kernel (its components are the Kalman-shifted
        members; where the weights choose each once, analysis member i
        comes from forecast member i, as in the EnKF), ``'ode'`` for the
        others.
    steps : int, optional
        Steps of the diffusion sampler (defaults in
        :mod:`filterpy_diffusion.diffusion`). A ValueError when every update
        samples exactly (``sampler='exact'``, or ``kernel='enkpf'`` with
        ``sampler=None``). With ``kernel='auto'``, ``sampler``, ``steps``
        and ``sampler_options`` apply to the updates that use the covariance
        kernel (two modes); the bridge and the ETKF draw no samples (with
        ``gaussian_core='enkpf'`` its updates sample exactly).
    sampler_options : dict, optional
        Extra keywords for the sampler, checked at construction against
        those it accepts (:func:`filterpy_diffusion.diffusion.sampler_keywords`:
        ``sigma_max``, ``solver``, ``rho`` for the ODE; ``sigma_max``,
        ``rho`` for the SDE; none for exact sampling).
    rng : None, int or numpy.random.Generator
        Source of every random draw (never the global numpy RNG).
    vectorized : bool, default False
        ``fx``, ``hx`` (and ``simulate``) take and return the whole (N, dim)
        ensemble at once.
    simulate : callable ``simulate(x, rng) -> (dim_z,)``, optional
        Black-box stochastic measurement simulator drawing its own (possibly
        non-Gaussian) noise from ``rng``; replaces ``hx(x) + N(0, R)``
        (``hx`` may then be None: it is never called). The
        covariance kernel then regularises ``Cyy`` with a small ridge. With
        missing components in ``z`` (a masked array) the full draw is made
        and its observed components used: an exact draw of ``p(y_obs | x)``.
    simulations : int, default 1
        Draws of ``simulate`` per member and update. 1: the likelihood-free
        path above (the covariance kernel on simulated measurements at
        every update). ``k >= 2``: a synthetic likelihood
        (:mod:`filterpy_diffusion.synthetic`): each member's mean of its
        ``k`` draws stands in for ``hx(x_i)``, their scatter pooled over
        members and updates estimates ``R`` (:attr:`R_estimate`; the noise
        taken as additive with one covariance), and the update is the one
        with ``hx`` and ``R (1 - 1/k)`` (the bridge, the ETKF core, the
        mode test; every ``kernel`` and ``inflation``). ``hx`` is never
        called and the ``R`` given is ignored. Costs ``k`` simulations per
        member, more on a particle-filter move.

    Attributes
    ----------
    x, P : ndarray (dim_x,), (dim_x, dim_x)
        Mean and covariance of the ensemble.
    x_prior, P_prior, x_post, P_post : ndarray
        Moments after the last predict / update (``P_prior`` before inflation).
    sigmas : ndarray (N, dim_x)
        The ensemble; may be set directly between calls.
    Q : ndarray (dim_x, dim_x)
        Process noise covariance (default I).
    R : ndarray (dim_z, dim_z)
        Measurement noise covariance (default I). Positive semi-definite:
        a singular R (noise-free components) works with the ``'auto'``
        (then the covariance kernel), ``'covariance'`` and ``'isotropic'``
        kernels and every inflation setting; ``'enkpf'`` raises ValueError.
    z : ndarray (dim_z,)
        Last measurement (a masked array after an update with missing
        components; see :meth:`EnsembleFilter.update`).
    log_likelihood : float
        ``log p(z)`` under the KDE's measurement marginal at the last update.
    ess : float
        Effective sample size ``1 / sum w_i^2`` of the last conditional weights.
    h : float or None
        Bandwidth factor used at the last update (None for absolute bandwidths).
    bandwidth_x, bandwidth_y : ndarray (dim_x,), (dim_z,)
        Per-coordinate kernel standard deviations used at the last update.
    inflation_factor : float
        Anomaly inflation factor ``f`` applied at the last update.
    n_clusters : int
        Clusters the last update split the ensemble into (1 or 2).
    kernel_used : str
        The kernel of the last update (differs from ``kernel`` for 'auto').
    n_evaluations : int
        Score evaluations of the whole ensemble used by the last update.
    gamma : float or None
        The bridge: the likelihood fraction the weights took at the last
        update (1: a particle-filter step, 0: the ETKF); None after an
        update by a kernel.
    R_estimate : ndarray (dim_z, dim_z) or None
        With ``simulations > 1``: ``R`` as estimated from every update's
        draws so far; None before the first update and otherwise.
    K, S, SI : ndarray (dim_x, dim_z), (dim_z, dim_z), (dim_z, dim_z)
        As filterpy's ``EnsembleKalmanFilter``: the ensemble gain
        ``cov(x, hx(x)) SI``, the innovation covariance ``S = cov(hx(x_i)) +
        R`` and ``SI = inv(S)`` of the forecast ensemble the last update
        analysed (after inflation; with a ``simulate`` function, ``S`` is
        the covariance of the simulated measurements). This filter's update
        is not ``x + K (z - hx(x))``: for a non-Gaussian forecast they are
        its linear-Gaussian summary, the gain an EnKF would have used.
        Zeros after construction and ``initialize``.
    inv : callable
        The inverse used for ``SI`` (``np.linalg.inv``); replaceable.
    weights : ndarray (N,)
        Member weights. Uniform after every kernel update (the analysis
        ensemble is drawn from the conditional KDE); the bridge carries its
        exact-likelihood weights to the next cycle. Non-uniform prior weights
        (assigned before an update) are honoured: the KDE is ``p(x, y) =
        sum_i pi_i K_i(x, y)``, so every kernel adds ``log pi_i`` to its
        component log-weights, and the covariance and EnKPF kernels (and the
        inflation centre) use the weighted moments of the ensemble. A member
        of zero weight contributes no component. The mode test of
        ``kernel='auto'`` and the isotropic kernel's coordinate scales
        remain unweighted.

    Examples
    --------
    >>> import numpy as np
    >>> from filterpy_diffusion import DiffusionKDEFilter
    >>> F = np.array([[1., 1.], [0., 1.]])
    >>> def fx(x, dt):
    ...     return F @ x
    >>> def hx(x):
    ...     return x[:1]
    >>> f = DiffusionKDEFilter(x=np.zeros(2), P=np.eye(2), dim_z=1, dt=1.0,
    ...                        N=100, hx=hx, fx=fx, rng=0)
    >>> f.R *= 0.5 ** 2
    >>> f.Q = np.eye(2) * 0.01
    >>> for z in [1.0, 2.1, 2.9]:
    ...     f.predict()
    ...     f.update(np.array([z]))
    >>> f.x.shape, f.P.shape, f.sigmas.shape
    ((2,), (2, 2), (100, 2))

    References
    ----------
    .. [1] Liu, J., West, M. (2001). Combined parameter and state estimation
       in simulation-based filtering (kernel shrinkage).
    .. [2] Miyoshi, T. (2011). The Gaussian approach to adaptive covariance
       inflation and its implementation with the LETKF. Mon. Wea. Rev. 139.
    .. [3] Karras, T. et al. (2022). Elucidating the design space of
       diffusion-based generative models; Lu, C. et al. (2022) DPM-Solver++.
    .. [4] Frei, M., Kuensch, H. R. (2013). Bridging the ensemble Kalman and
       particle filters. Biometrika 100 (the ``'enkpf'`` kernel).
    """

    def __init__(self, x: npt.ArrayLike, P: Union[npt.ArrayLike, float], dim_z: int, dt: float,
                 N: int, hx: Optional[Callable], fx: Callable, *, kernel: Optional[str] = None,
                 bandwidth: Union[None, str, float, Callable] = None,
                 sigma_x: Union[None, str, float, npt.ArrayLike, Callable] = None,
                 sigma_y: Union[None, str, float, npt.ArrayLike, Callable] = None,
                 ess_target: Optional[float] = None,
                 inflation: Union[None, str, float] = 'auto',
                 clusters: Union[None, str, int] = None,
                 evidence_threshold: Optional[float] = None, sampler: Optional[str] = None,
                 steps: Optional[int] = None, sampler_options: Optional[dict] = None,
                 rng: RngLike = None, vectorized: bool = False,
                 simulate: Optional[Callable] = None, simulations: int = 1,
                 gaussian_core: str = 'bridge',
                 rot: bool = True, xN: Optional[float] = None,
                 members_per_dim: Optional[float] = None, policy: Optional[Policy] = None):
        # Every option is checked against the others here: an option the
        # chosen kernel or sampler would ignore is an error, never dropped.
        given_sigma = [n for n, v in (("sigma_x", sigma_x), ("sigma_y", sigma_y)) if v is not None]
        if kernel is None:
            kernel = 'isotropic' if given_sigma else 'auto'
        elif not isinstance(kernel, str) or kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS} or None, got {kernel!r}")
        if given_sigma and kernel != 'isotropic':
            raise ValueError(f"{' and '.join(given_sigma)} are the bandwidths of the isotropic "
                             f"kernel (giving them selects kernel='isotropic'), which conflicts "
                             f"with kernel={kernel!r}; drop kernel=, or with kernel={kernel!r} "
                             f"set bandwidth= (the factor h) instead")
        if kernel == 'isotropic' and bandwidth is not None:
            raise ValueError(f"bandwidth (the factor h of the 'covariance' and 'enkpf' kernels) "
                             f"does not apply to kernel='isotropic', which takes sigma_x and "
                             f"sigma_y; got bandwidth={bandwidth!r}")
        sigma_x = 'auto' if sigma_x is None else _check_bandwidth_spec(sigma_x, "sigma_x")
        sigma_y = 'auto' if sigma_y is None else _check_bandwidth_spec(sigma_y, "sigma_y")
        bandwidth = 'auto' if bandwidth is None else bandwidth
        if sampler is not None and sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS} or None, got {sampler!r}")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral)
                                  or steps < 1):
            raise ValueError(f"steps must be a positive integer or None, got {steps!r}")
        if ess_target is not None and (isinstance(ess_target, bool)
                                       or not isinstance(ess_target, numbers.Real)
                                       or not 0 < ess_target <= 1):
            raise ValueError(f"ess_target must be a fraction of N in (0, 1] or None, "
                             f"got {ess_target!r}")
        if isinstance(simulations, bool) or not isinstance(simulations, numbers.Integral) \
                or simulations < 1:
            raise ValueError(f"simulations must be a positive integer, got {simulations!r}")
        if simulations > 1 and simulate is None:
            raise ValueError(f"simulations={simulations} draws of simulate per member estimate "
                             f"hx and R; it needs simulate= (with hx and R there is nothing to "
                             f"estimate: drop simulations)")
        # Likelihood-free: a simulator and nothing estimated from it.
        free = simulate is not None and simulations == 1
        if kernel == 'enkpf' and free:
            raise ValueError("kernel='enkpf' needs hx and a Gaussian R (it splits the "
                             "likelihood N(z; hx(x), R)); with a simulator use 'covariance'")
        if policy is None:
            policy = DEFAULT_POLICY
        elif not isinstance(policy, Policy):
            raise ValueError(f"policy must be a filterpy_diffusion.policy.Policy or None, "
                             f"got {policy!r}")
        # The keyword shorthands of policy fields (older than the policy).
        short = {k: v for k, v in (("xN", xN), ("members_per_dim", members_per_dim))
                 if v is not None}
        if short:
            try:
                policy = policy.replace(**short)
            except ValueError as e:
                raise ValueError(str(e).replace("Policy.", "")) from None
        # --- Gaussian core (etkf.py) options ---
        if gaussian_core not in GAUSSIAN_CORES:
            raise ValueError(f"gaussian_core must be one of {GAUSSIAN_CORES}, got {gaussian_core!r}")
        if not isinstance(rot, (bool, np.bool_)):
            raise ValueError(f"rot must be True or False, got {rot!r}")
        if free and (kernel in ('etkf', 'bridge') or inflation == 'finite-size'):
            what = f"kernel={kernel!r}" if kernel in ('etkf', 'bridge') else "inflation='finite-size'"
            raise ValueError(f"{what} needs hx and a Gaussian R (N(z; hx(x), R)); with a "
                             "simulator use kernel='covariance' and inflation='adaptive', or "
                             "simulations=k >= 2 to estimate hx and R from it")
        self.gaussian_core = gaussian_core
        self.rot = bool(rot)
        self.xN = float(policy.xN)
        # --- end Gaussian core options ---
        top = 1.0 if kernel == 'enkpf' else np.nextafter(1.0, 0.0)
        if not (isinstance(bandwidth, str) or callable(bandwidth)) and not 0 < float(bandwidth) <= top:
            interval = "(0, 1]" if kernel == 'enkpf' else "(0, 1)"
            raise ValueError(f"bandwidth (the kernel's factor h) must be 'auto', a rule "
                             f"{RULES}, a callable or a float in {interval}, got {bandwidth!r}")
        _check_bandwidth_spec(bandwidth, "bandwidth")
        automatic = ('auto' in (sigma_x, sigma_y) if kernel == 'isotropic'
                     else _is_auto(bandwidth))
        if ess_target is not None and not automatic:
            which = "sigma_x or sigma_y" if kernel == 'isotropic' else "bandwidth"
            raise ValueError(f"ess_target sets the automatic bandwidth, but {which} is fixed "
                             f"here; drop ess_target or use {which}='auto'")
        if clusters is not None and not (
                _is_auto(clusters) or (isinstance(clusters, numbers.Integral)
                                       and not isinstance(clusters, bool) and clusters in (1, 2))):
            raise ValueError(f"clusters must be 'auto', 1 or 2, got {clusters!r}")
        if kernel in ('isotropic', 'enkpf', 'etkf', 'bridge') and clusters == 2:
            raise ValueError(f"clusters splits the covariance kernel; kernel={kernel!r} is never "
                             f"split (use clusters=1, 'auto' or kernel='covariance')")
        clusters = 'auto' if clusters is None else clusters
        if evidence_threshold is not None and (kernel in ('isotropic', 'enkpf', 'etkf', 'bridge') or clusters == 1):
            raise ValueError(f"evidence_threshold weighs the clusters of a split covariance "
                             f"kernel, and with kernel={kernel!r}, clusters={clusters!r} the "
                             f"ensemble is never split; drop evidence_threshold")
        if evidence_threshold is not None:
            policy = policy.replace(evidence_threshold=check_evidence_threshold(evidence_threshold))
        evidence_threshold = policy.evidence_threshold
        # The samplers this filter can run: None picks 'exact' for the EnKPF
        # kernel and 'ode' for the others ('auto' uses both).
        if kernel in ('etkf', 'bridge'):
            given = [n for n, v in (("sampler", sampler), ("steps", steps),
                                    ("sampler_options", sampler_options),
                                    ("bandwidth", None if _is_auto(bandwidth) else bandwidth),
                                    ("ess_target", ess_target)) if v is not None and v != {}]
            if given:
                raise ValueError(f"kernel={kernel!r} updates with the ETKF core"
                                 f"{' and exact likelihood weights' if kernel == 'bridge' else ''}"
                                 f": it has no kernel bandwidth and no diffusion sampler; drop "
                                 f"{', '.join(given)}")
        if sampler is not None:
            runs = {sampler}
        else:
            runs = {'enkpf': {'exact'},
                    'auto': {'exact', 'ode'} if gaussian_core == 'enkpf' else {'ode'}
                    }.get(kernel, {'ode'})
        if runs == {'exact'} and (steps is not None or sampler_options):
            given = [n for n, v in (("steps", steps), ("sampler_options", sampler_options)) if v]
            raise ValueError(f"{' and '.join(given)} set the ODE/SDE sampler, but this filter "
                             f"samples exactly (sampler={sampler!r}, kernel={kernel!r}); drop "
                             f"them or choose sampler='ode' or 'sde'")
        diffusion = (runs - {'exact'} or {'ode'}).pop()
        sampler_options = check_sampler_options(diffusion, sampler_options)
        if isinstance(inflation, str) and inflation == 'auto':
            # Wherever hx is given and the update is, or may be, the ETKF,
            # 'auto' stays and is decided per update (_auto_inflation);
            # Miyoshi's adaptive inflation for the other kernels and a simulator.
            core = kernel in ('etkf', 'bridge') or (kernel == 'auto' and gaussian_core != 'enkpf')
            inflation = 'auto' if core and not free else 'adaptive'
        bridged = kernel == 'bridge' or (kernel == 'auto' and gaussian_core == 'bridge')
        if members_per_dim is not None and not bridged:
            raise ValueError(f"members_per_dim sets the bridge's particle-filter share; it does "
                             f"not apply to kernel={kernel!r}, gaussian_core={gaussian_core!r}")
        self.members_per_dim = float(policy.members_per_dim)
        inflation = check_inflation(inflation, ('auto', 'adaptive', 'finite-size'))
        self.kernel = kernel
        self.bandwidth = bandwidth
        self.sigma_x = sigma_x
        self.sigma_y = sigma_y
        self.ess_target = None if ess_target is None else float(ess_target)
        self.inflation = inflation
        self.clusters = clusters
        self.evidence_threshold = evidence_threshold
        self.sampler = sampler
        self.steps = steps
        self.sampler_options = sampler_options
        self.policy = policy
        # Prior variance of the adaptive inflation's variance factor lambda =
        # f^2 (Miyoshi 2011): how fast lambda may move per update.
        self.inflation_var = policy.inflation_var
        self.simulations = int(simulations)
        super().__init__(x, P, dim_z, dt, N, hx, fx, rng=rng, vectorized=vectorized,
                         simulate=simulate)

    @property
    def carries_weights(self):
        """bool: whether updates may leave non-uniform weights (the bridge's carried weights)."""
        return self.kernel == 'bridge' or (self.kernel == 'auto' and self.gaussian_core == 'bridge'
                                           and not self._likelihood_free)

    @property
    def _likelihood_free(self):
        # A simulator and no hx or R estimated from it: the covariance kernel on (x, y).
        return self.simulate is not None and self.simulations == 1

    @property
    def R_estimate(self):
        """ndarray (dim_z, dim_z) or None: ``R`` as estimated from ``simulations=k`` draws.

        :func:`~filterpy_diffusion.synthetic.pooled_noise_covariance` of the
        scatter of every update's draws about their members' means so far;
        None before the first update or without ``simulations > 1``.
        """
        if self._noise_scatter is None:
            return None
        return pooled_noise_covariance(self._noise_scatter, self._noise_dof)

    def _reset(self):
        super()._reset()
        self.n_clusters = 1
        self.kernel_used = None
        self.h = None
        self.bandwidth_x = None
        self.bandwidth_y = None
        self.inflation_factor = 1.0
        # The adaptive inflation's running estimate of lambda = f^2.
        self.inflation_mean = 1.0
        self.n_evaluations = 0
        self.gamma = None
        # simulations > 1: the draws' pooled scatter about their members' means.
        self._noise_scatter = None
        self._noise_dof = 0

    # -- pieces of the analysis ---------------------------------------------
    def _measure(self, sigmas):
        """``hx`` of each member; with ``simulations=k > 1`` the mean of ``k`` simulations."""
        if self.simulations == 1:
            return super()._measure(sigmas)
        return self._simulated_moments(sigmas)[0]

    def _simulated_moments(self, sigmas):
        """``k = simulations`` draws per member: their means (observed columns) and scatter.

        Returns ``(mean (M, dim_z), scatter, dof)``; the scatter is over all
        of the filter's measurement components, also while an update with
        missing ones runs (the simulator draws them all).
        """
        k = self.simulations
        idx, m = self._observed or (None, self.dim_z)
        rng = self.rng
        draws = self._apply(lambda s: self.simulate(s, rng), np.tile(sigmas, (k, 1)),
                            "simulate", m, "dim_z")
        mean, scatter, dof = simulation_moments(draws.reshape(k, len(sigmas), m))
        return (mean if idx is None else np.ascontiguousarray(mean[:, idx])), scatter, dof

    def _synthetic(self, X):
        """``simulations=k > 1``: the forecast's ``hx`` and the ``R`` the update uses.

        ``hz``: every member's mean of ``k`` simulations; ``R``: the pooled
        estimate with this update's draws (its observed block), times
        ``1 - 1/k`` (:func:`~filterpy_diffusion.synthetic.averaged_noise_covariance`).
        The third value holds the pooled scatter to keep if the update succeeds.
        """
        hz, scatter, dof = self._simulated_moments(X)
        if self._noise_scatter is not None:
            scatter = scatter + self._noise_scatter
            dof = dof + self._noise_dof
        Rk = averaged_noise_covariance(pooled_noise_covariance(scatter, dof), self.simulations)
        if self._observed is not None:
            idx = self._observed[0]
            Rk = Rk[np.ix_(idx, idx)]
        return hz, Rk, {'_noise_scatter': scatter, '_noise_dof': dof}

    def _measurements(self, X, R):
        """Noise-free predictions (or None with a simulator) and simulated measurements."""
        if self._likelihood_free:
            return None, self._simulate_measurements(X, R)
        hz = self._measure(X)
        return hz, hz + self._gaussian_noise(R, len(X))

    def _innovation_lambda(self, hz, z, R):
        """Miyoshi's estimate from ``hz`` with the running state and ``Policy.inflation_range``."""
        return innovation_lambda(hz, z, R, self.inflation_mean, self.inflation_var,
                                 self.policy.inflation_range)

    def _adaptive_lambda(self, hz, Y, z, R):
        """Posterior mean of the variance inflation factor from this innovation."""
        if hz is not None:
            return self._innovation_lambda(hz, z, R)
        # Simulator: only the total spread cov(y) = HPH^T + R is known, so
        # inflate by the normalised innovation d^T cov(y)^-1 d / m alone.
        m = self.dim_z
        d = z - Y.mean(0)
        B = Y - Y.mean(0)
        Cyy = B.T @ B / (self.N - 1)
        lam_b, v_b = self.inflation_mean, self.inflation_var
        lam_o = d @ np.linalg.pinv(Cyy) @ d / m
        v_o = 2.0 / m * lam_b ** 2
        lam = (v_o * lam_b + v_b * lam_o) / (v_o + v_b)
        return float(np.clip(lam, *self.policy.inflation_range))

    def _mode_labels(self, Z, uniform=False, screen=True, min_members=None, return_searched=False):
        """The cluster of every row of the joint ``Z`` (all 0 for one mode).

        With ``screen`` (kernel='auto'), a screen along the policy's leading
        principal axes (``Policy.mode_axes``, ``Policy.mode_screen``) skips
        the full search on ensembles that show no gap, so a one-mode update
        costs about one eigendecomposition of ``Z``'s Gram matrix. A cluster
        of zero-weight members only (unless ``uniform``) has no mass to
        model: one mode. So is a split whose smaller cluster has fewer than
        ``min_members`` members (:meth:`_mode_floor`). ``return_searched``:
        also whether the full search ran (the screen saw a gap).
        """
        policy = self.policy
        labels, searched = split_ensemble(
            Z, self.clusters, policy.min_separation, screen=policy.mode_screen if screen else None,
            axes=policy.mode_axes, refine_separation=policy.refine_separation, return_searched=True)
        if labels.max() > 0 and (
                (not uniform and np.bincount(labels, weights=self.weights).min() <= 0)
                or (min_members is not None and np.bincount(labels).min() < min_members)):
            labels = np.zeros(self.N, dtype=int)
        return (labels, searched) if return_searched else labels

    def _forecast_spectrum(self, hz, z, R):
        """:func:`~filterpy_diffusion.etkf.whitened_spectrum` of the forecast and its rank.

        The rank is :func:`~filterpy_diffusion.bridge.informed_dimension`'s;
        the spectrum, the inflation floor's input, comes from the same SVD.
        ``(None, None)`` for a singular R (no whitened frame).
        """
        if is_singular(R):
            return None, None
        # hz and z are checked (_measure, update): the SVD without whitened_spectrum's checks.
        spectrum = _spectrum(hz, z, check_whitening(R, self.dim_z))
        return spectrum, spectrum_rank(spectrum)

    def _mode_floor(self, r):
        """Members each mode of kernel='auto' needs: the bridge's ``c (r + 1)``.

        A mode analysed on its own (its own mean, covariance and gain, or
        its own jitter) is an ensemble of its own, so it must have what the
        bridge requires of any ensemble it hands on:
        :func:`~filterpy_diffusion.bridge.required_ess` members for the
        ``r`` informed directions (``Policy.members_per_dim`` each, plus one
        for the mean). Fewer, and its moments are sampling noise: on DAPPER's
        ``Lorenz63.sakov2012`` at N = 10 the mode test split 29% of the
        forecasts into modes of about five members (tuning seed 3001).
        ``r`` from :meth:`_forecast_spectrum`; None (a singular R, which has no
        whitened frame): no floor.
        """
        return None if r is None else required_ess(r, self.members_per_dim)

    def _sampler_for(self, kernel):
        if self.sampler is not None:
            return self.sampler
        # The EnKPF components are the members, Kalman-shifted: exact
        # sampling with systematic component choice, in component order,
        # keeps each member as the EnKF does; the ODE's noise-to-sample map
        # does not.
        return 'exact' if kernel == 'enkpf' else 'ode'

    def _labels(self, kernel, X, hz, Y):
        """Cluster of every member (all 0 unless the covariance kernel splits the ensemble)."""
        if kernel != 'covariance':
            return np.zeros(self.N, dtype=int)
        return self._mode_labels(np.hstack([X, Y if hz is None else hz]), screen=False)

    def _kde(self, kernel, X, hz, Y, z, R, labels, prior=None, hold=False):
        """Build the conditional KDE and choose its bandwidth; returns (kde, h).

        ``prior``: non-uniform prior member weights (N,), or None. ``hold``:
        the modes ``labels`` keep their prior masses (:meth:`_modes_alike`).
        """
        policy = self.policy
        frac = self.ess_target
        if frac is None:
            if kernel == 'enkpf':
                frac = policy.enkpf_ess_target
            elif kernel == 'covariance' and self.kernel == 'auto':
                frac = policy.mode_ess_target
            else:
                frac = policy.ess_target
        target = frac * self.N
        joint = self.dim_x + self.dim_z
        if kernel != 'isotropic':
            Rk = None if hz is None else R
            if kernel == 'enkpf':
                # g = 1 is the EnKF itself and allowed; the shrunk kernel needs h < 1.
                kde, hi = EnKPFDensity(X, hz, R, 1.0, weights=prior), 1.0
            elif labels.max() > 0:
                t = np.inf if hold else self.evidence_threshold
                kde, hi = ClusteredKDE(X, Y, 0.5, labels, R=Rk, predictions=hz,
                                       evidence_threshold=t, weights=prior,
                                       evidence=self._mode_evidence()), policy.h_range[1]
            else:
                kde, hi = CovarianceKDE(X, Y, 0.5, R=Rk, predictions=hz, weights=prior), policy.h_range[1]
            spec = self.bandwidth
            if spec == 'auto' and kernel == 'enkpf' and kde.normality_pvalue() > policy.normality_alpha:
                # No detectable departure from Gaussian along any informative
                # direction: the EnKF (g = 1) is the right update there, and
                # weighting N members in many observed dimensions only adds
                # noise (l96-40, N = 50, tuning seeds 0-2: RMSE 0.300 with the
                # ESS target alone, 0.230 with this test).
                h = 1.0
            elif spec == 'auto':
                h = select_by_ess(kde.log_kernel_at(z), target, policy.h_range[0], hi)
            elif isinstance(spec, str):
                h = min(rule_factor(spec, self.N, joint), hi)
            elif callable(spec):
                h = float(spec(X, Y))
            else:
                h = float(spec)
            if h != kde.h:    # the EnKPF at g = 1 was built at its bandwidth
                kde.set_bandwidth(h)
            return kde, h
        if self.sigma_x == 'auto' or self.sigma_y == 'auto':
            sx_scale, sy_scale = coordinate_scale(X, 'states'), coordinate_scale(Y, 'measurements')
            log_prior = None if prior is None else log_prior_weights(prior, self.N)

            def lw_at(f):
                r = (Y - z) / (f * sy_scale)
                lk = -0.5 * np.einsum('ij,ij->i', r, r)
                return lk if log_prior is None else lk + log_prior
            f = select_by_ess(lw_at, target, policy.h_range[0], 1.0)
        sx = f * sx_scale if self.sigma_x == 'auto' else \
            resolve_bandwidth(self.sigma_x, X, Y, "sigma_x", joint)
        sy = f * sy_scale if self.sigma_y == 'auto' else \
            resolve_bandwidth(self.sigma_y, Y, X, "sigma_y", joint)
        auto = self.sigma_x == 'auto' or self.sigma_y == 'auto'
        return ConditionalKDE(X, Y, sx, sy, weights=prior), (f if auto else None)

    # --- Gaussian core (etkf.py) hook ---
    def _auto_inflation(self, hz, z, R, r=None, spectrum=None):
        """``inflation='auto'``: this update's anomaly factor and the adaptive state after it.

        Returns ``('finite-size', lam)`` (the ETKF's own EnKF-N factor) when
        the predicted-measurement anomalies span the observation space
        (rank ``r = dim_z``), else ``(f, lam)`` with the geometric blend
        ``log f = (r / m) log l_N + (1 - r / m) log f_M`` of the EnKF-N
        factor ``l_N`` (:func:`~filterpy_diffusion.etkf.finite_size_factor`)
        and Miyoshi's ``f_M = sqrt(max(lambda, 1))``
        (:func:`~filterpy_diffusion.inflation.innovation_lambda`, whose
        running estimate ``lam`` it updates). Why: EnKF-N's hyperprior
        treats the forecast as a sample of ``N(x_b, B)`` and weighs the
        innovation in the ``r`` directions the ensemble spans; with
        ``N - 1 < m`` the ensemble is rank-deficient in observation space,
        and on DAPPER's ``Lorenz96.sakov2008`` (global, N = 20) EnKF-N alone
        over-disperses (rmv.a 0.30 against rmse.a 0.24) while Miyoshi's
        estimator, which uses all ``m`` innovation components and carries
        its estimate in time, does not. Each gets the share of the ``m``
        directions it is the estimator for. Tuning seeds 3000-3002, N = 20
        / 40: rmse.a 0.182 / 0.178 (EnKF-N alone 0.247 / 0.179, Miyoshi
        alone 0.187 / 0.181, ``EnKF('Sqrt', infl=1.02)`` 0.182 / 0.178).
        A singular R (no whitened frame): Miyoshi's alone. ``spectrum``:
        :func:`~filterpy_diffusion.etkf.whitened_spectrum` of ``(hz, z, R)``
        if already computed (it gives ``r`` too, when ``r`` is None).
        """
        if is_singular(R):
            lam = self._innovation_lambda(hz, z, R)
            return float(np.sqrt(max(lam, 1.0))), lam
        if spectrum is None and (r is None or r < self.dim_z):
            spectrum = whitened_spectrum(hz, z, R)
        if r is None:
            r = spectrum_rank(spectrum)
        if self._finite_size_core(r):
            return 'finite-size', self.inflation_mean
        lam = self._innovation_lambda(hz, z, R)
        share = r / self.dim_z
        log_f = (share * np.log(finite_size_inflation(*spectrum, len(hz), self.xN))
                 + (1.0 - share) * 0.5 * np.log(max(lam, 1.0)))
        return float(np.exp(log_f)), lam

    def _finite_size_core(self, r):
        """Whether the core's inflation is the finite-size factor, for a forecast of rank ``r``.

        ``inflation='auto'`` is when the forecast spans the observation
        space (:meth:`_auto_inflation`); R positive definite.
        """
        return self.inflation == 'finite-size' or (self.inflation == 'auto' and r >= self.dim_z)

    def _core_inflation(self, hz, z, R, r=None, spectrum=None):
        """The ETKF core's ``inflation=`` argument and the adaptive state after this update.

        ``r`` (the rank the rule uses) and ``spectrum`` (of ``(hz, z, R)``):
        see :meth:`_auto_inflation`.
        """
        if self.inflation == 'auto':
            return self._auto_inflation(hz, z, R, r, spectrum)
        if self.inflation == 'adaptive':
            lam_post = self._innovation_lambda(hz, z, R)
            return np.sqrt(max(lam_post, 1.0)), lam_post
        if self.inflation == 'finite-size':
            return 'finite-size', self.inflation_mean
        return float(self.inflation or 1.0), self.inflation_mean

    def _gaussian_core(self, X, hz, z, R):
        """The ETKF analysis of the un-inflated forecast ``X`` with ``hx`` values ``hz``."""
        check_whitening(R, self.dim_z)    # a clear error for a singular R, before any use
        w = self.weights
        if not (w == w[0]).all():
            raise ValueError("the ETKF core (kernel='etkf' or gaussian_core='etkf') transforms an "
                             "equally weighted ensemble; resample the weighted ensemble first, "
                             "or use kernel='covariance' or 'enkpf', which honour prior weights")
        infl, lam_post = self._core_inflation(hz, z, R)
        new, info = etkf_analysis(X, hz, z, R, inflation=infl, rot=self.rot, rng=self.rng,
                                  xN=self.xN)
        return {'sigmas': new, 'ess': float(self.N), 'log_likelihood': info['log_likelihood'],
                'h': None, 'bandwidth_x': None, 'bandwidth_y': None,
                'inflation_factor': info['inflation'], 'inflation_mean': lam_post,
                'n_clusters': 1, 'n_evaluations': 0, 'kernel_used': 'etkf', 'gamma': None,
                'K': info['K'], 'S': info['S'], 'SI': np.asarray(self.inv(info['S']), dtype=float)}
    # --- end Gaussian core hook ---

    def _bridge(self, X, z, R, hz=None, kernels=False, labels=None, informed_dim=None,
                rest_test=True, spectrum=None):
        """kernel='bridge': exact-likelihood weights for ``L^gamma``, the ETKF for the rest.

        :func:`filterpy_diffusion.bridge.bridge_analysis` with the ETKF core
        (this filter's inflation; the random rotation only when ``gamma = 0``,
        as rotating resampled members would make them Gaussian again). The
        weights it returns are carried to the next cycle.

        ``kernels`` (kernel='auto'): the rest ``L^(1 - gamma)``, the only
        step that assumes a Gaussian forecast, goes to the covariance kernel
        instead of the ETKF when the resampled ensemble has two modes, or
        is one non-Gaussian mode with members enough for the kernel
        (:meth:`_rest_kernel`); and a move jitters each copy within its own
        mode of the forecast. Carried weights need neither test, and a
        resampled ensemble is tested only if ``rest_test``: the caller's
        test of the forecast saw a gap. Its members are copies of forecast
        members with a jitter no wider than their mode, so a forecast
        without a gap along any of the screen's directions leaves gaps only
        between the copies' clumps, which the screen takes for modes (on
        the speed benchmark's Gaussian N = 100, d = 3 input it let the
        full search run on most moves: tests/test_policy.py).
        ``informed_dim``: the forecast's ``r`` for ``hz``, if the caller has
        it, and ``spectrum`` its :func:`~filterpy_diffusion.etkf.whitened_spectrum`.
        """
        check_whitening(R, self.dim_z)
        if hz is None:
            hz = self._measure(X)
        w = self.weights
        gain = self._gain(X, hz, R, None if (w == w[0]).all() else w)
        lam = {'post': self.inflation_mean}
        # EnKF-N's estimate presumes one Gaussian forecast: no floor for one
        # the mode test split (z then tells its modes apart, or the kernel
        # would have the update).
        one_mode = labels is None or labels.max() == 0
        rest = {}
        floored = self.policy.core_inflation_floor and one_mode
        full = []

        def floor():
            # The forecast's own finite-size factor for the whole z, once.
            if not full:
                full.append(finite_size_factor(hz, z, R, self.xN) if spectrum is None
                            else finite_size_inflation(*spectrum, self.N, self.xN))
            return full[0]

        # A particle-filter move has no core. Policy.shrink_jitter: it keeps the weighted
        # covariance and takes the forecast's finite-size factor instead of the plain
        # jitter's widening, wherever the core's inflation is finite-size (inflation='auto'
        # only when the forecast spans the observations), split forecast or not: the
        # plain jitter widened those too (one mode only lost wiljes2017). Off by default.
        shrink = self.policy.shrink_jitter and self.policy.core_inflation_floor
        r_f = informed_dim    # the forecast's rank; the bridge computes it if still None
        if shrink and self.inflation == 'auto' and r_f is None:
            r_f = informed_dimension(hz, R)
        shrink = shrink and self._finite_size_core(r_f)

        def core(Xm, hzm, zz, Rg, gamma):
            # The forecast's rank for the inflation rule: every copy of a
            # resampled member is jittered with the forecast's weighted
            # covariance, so the resampled anomalies keep its span.
            r, own = informed_dim, None
            if kernels and rest_test:
                # Once: the mode floor and the inflation.
                own = whitened_spectrum(hzm, zz, Rg)
                r = spectrum_rank(own)
                out = self._rest_kernel(Xm, hzm, zz, Rg, r)
                if out is not None:
                    rest.update(out)
                    return out['sigmas']
            infl, lam['post'] = self._core_inflation(hzm, zz, Rg, r, own)
            # Policy.core_inflation_floor: at least the forecast's factor for the whole z.
            lo = floor() if (infl == 'finite-size' and floored) else None
            # Xm, hzm and zz are checked (bridge_analysis): without etkf_analysis' checks.
            new, info = _etkf_analysis(Xm, hzm, zz, Rg, inflation=infl, inflation_floor=lo,
                                       rot=self.rot and gamma == 0, rng=self.rng, xN=self.xN)
            lam['factor'] = info['inflation']
            return new

        # The forecast's modes (the caller's test, when it ran one) for the jitter.
        modes = None if not kernels else (
            (lambda Xm, hzm: labels) if labels is not None
            else (lambda Xm, hzm: self._mode_labels(np.hstack([Xm, hzm]))))
        new, log_w, info = bridge_analysis(X, self.log_weights, z, R, self._measure, core,
                                           self.rng, members_per_dim=self.members_per_dim, hz=hz,
                                           resample_fraction=self.policy.resample_fraction,
                                           modes=modes, informed_dim=r_f,
                                           move_members=self.policy.move_members,
                                           max_jitter=self.policy.move_max_jitter,
                                           shrink_jitter=shrink,
                                           move_inflation=floor if shrink else None,
                                           process_noise=self._move_process_noise())
        out = {'h': None, 'bandwidth_x': None, 'bandwidth_y': None,
               'inflation_factor': info.get('move_inflation', lam.get('factor', 1.0)),
               'inflation_mean': lam['post'],
               'n_clusters': 1, 'n_evaluations': 0, 'kernel_used': 'bridge'}
        out.update({k: v for k, v in rest.items() if k in out})
        return {**out, 'sigmas': new, 'log_weights': log_w, 'ess': float(info['ess']),
                'gamma': float(info['gamma']), **gain}

    def _move_process_noise(self):
        """``Q`` for a move's jitter (``Policy.move_jitter_minus_q``), or None.

        The next ``predict()`` adds ``N(0, Q)`` to every member, which
        separates the copies a move makes; their jitter supplies only the
        rest of Scott's kernel (:func:`~filterpy_diffusion.bridge.bridge_analysis`).
        """
        return as_covariance(self.Q, "Q", self.dim_x) if self.policy.move_jitter_minus_q else None

    def _rest_kernel(self, X, hz, z, R, r):
        """kernel='auto': the covariance-kernel analysis of an equally weighted ``X``, or None.

        None (the ETKF is the update) unless ``(x_i, hx(x_i))`` has two
        separated modes, or one that fails the normality test with at least
        ``policy.kernel_members_per_dim`` members per joint dimension (and
        then the kernel's automatic h stays at most ``policy.kernel_max_h``).
        ``r``: :func:`~filterpy_diffusion.bridge.informed_dimension` of ``(hz, R)``.
        """
        joint = np.hstack([X, hz])
        labels = self._mode_labels(joint, uniform=True, min_members=self._mode_floor(r))
        if labels.max() == 0 and not self._non_gaussian_with_members(joint):
            return None
        out = self._kernel_update('covariance', X, z, R, hz=hz, labels=labels, uniform=True,
                                  fallback=(lambda: None) if labels.max() == 0 else None,
                                  hold=self._modes_alike(hz, labels))
        return out

    def _analysis(self, z, R):
        X = self.sigmas    # update() has checked it: a finite float (N, dim_x) array
        if self.simulations == 1:
            return self._analysis_of(X, z, R)
        hz, R, noise = self._synthetic(X)
        return {**self._analysis_of(X, z, R, hz), **noise}

    def _analysis_of(self, X, z, R, hz=None):
        """The update of the forecast ``X``; ``hz``: its ``hx`` values if already measured."""
        if self.kernel in ('enkpf', 'etkf', 'bridge') and is_singular(R):
            how = {'enkpf': "whitens by R and weights members by N(z; ., R / (1 - g))",
                   'etkf': "whitens by R^-1/2",
                   'bridge': "weights members by N(z; hx(x), R) and whitens by R^-1/2"}
            raise ValueError(
                f"R is singular (a noise-free measurement component): kernel={self.kernel!r} "
                f"{how[self.kernel]}, which has no density for noise-free components. Use "
                f"kernel='covariance' (or 'auto', which switches to it for a singular R), or "
                f"give those components a small positive variance")
        if self.kernel == 'etkf':    # the Gaussian core: no measurement noise drawn
            return self._gaussian_core(X, self._measure(X) if hz is None else hz, z, R)
        if self.kernel == 'bridge':
            return self._bridge(X, z, R, hz)
        if self.kernel == 'auto':
            return self._auto(X, z, R, hz)
        return self._kernel_update(self.kernel, X, z, R, hz=hz)

    def _auto(self, X, z, R, hz=None):
        """kernel='auto': measure once; the bridge, with a kernel for its Gaussian step where needed.

        With ``gaussian_core='etkf'`` or ``'enkpf'`` the mode and normality
        tests run on the forecast and choose between that core and the
        covariance kernel.
        """
        if self._likelihood_free:
            # No hx and no R to split: the covariance kernel on (x, y), with
            # the hold decided on the simulated measurements.
            return self._kernel_update('covariance', X, z, R, hold=None)
        if hz is None:
            hz = self._measure(X)
        joint = np.hstack([X, hz])
        # Once: the mode floor, the bridge's thresholds and the core's inflation floor.
        spectrum, r = self._forecast_spectrum(hz, z, R)
        labels, searched = self._mode_labels(joint, min_members=self._mode_floor(r),
                                             return_searched=True)

        def core():
            if self.gaussian_core == 'bridge':
                return self._bridge(X, z, R, hz, kernels=True, labels=labels, informed_dim=r,
                                    rest_test=searched, spectrum=spectrum)
            if self.gaussian_core == 'etkf':
                return self._gaussian_core(X, hz, z, R)
            return self._kernel_update('enkpf', X, z, R, hz=hz, labels=np.zeros(self.N, int))
        if labels.max() == 0 and not is_singular(R):
            if self._non_gaussian_with_members(joint):
                return self._kernel_update('covariance', X, z, R, hz=hz, labels=labels,
                                           fallback=core)
            return core()
        hold = self._modes_alike(hz, labels)
        if (labels.max() > 0 and not hold and self.gaussian_core == 'bridge'
                and not is_singular(R) and self._evidence_decides(X, hz, z, R, labels)):
            # z tells the modes apart: exact weights pick between them (the
            # bridge's jitter stays within each mode). The per-mode kernel
            # is for a z that cannot, where weights alone let the masses of
            # mirror-image modes drift (toy-abs, l63-z).
            return core()
        # Two modes, each with its own mean, covariance and gain; or a
        # singular R, whose noise-free components the covariance kernel
        # conditions on through cov(hx) + R alone.
        return self._kernel_update('covariance', X, z, R, hz=hz, labels=labels, hold=hold)

    def _modes_alike(self, hz, labels):
        """Whether two modes ``labels`` predict measurements ``hz`` no test tells apart.

        Their ``hx`` values share one mean by Hotelling's test
        (:func:`~filterpy_diffusion.clustering.mode_difference_pvalue` above
        ``Policy.mode_difference_alpha``; members unweighted). The evidence
        of a mode is the mean of ``N(z; hx(x_i), R)`` over its members, so
        modes whose ``hx`` values share one distribution have one evidence
        for every ``z`` (mirror images under ``|x|``; Lorenz-63's lobes seen
        through ``z``): a difference their members show is sampling noise,
        and they keep their masses.
        """
        return bool(labels.max() > 0 and self.policy.mode_difference_alpha < 1
                    and mode_difference_pvalue(hz, labels) > self.policy.mode_difference_alpha)

    def _non_gaussian_with_members(self, joint):
        """The opt-in normality rule: a one-mode ``joint`` the kernel should take instead."""
        policy = self.policy
        return (self.N >= policy.kernel_members_per_dim * joint.shape[1]
                and gaussian_pvalue(joint) <= policy.normality_alpha)

    def _mode_evidence(self):
        """ClusteredKDE's ``evidence`` for ``Policy.mode_evidence``."""
        return 'auto' if self.policy.mode_evidence == 'monte-carlo' else 'gaussian'

    def _evidence_decides(self, X, hz, z, R, labels):
        """Whether z all but rules out one of the modes ``labels``.

        True when, by the modes' evidence (``Policy.mode_evidence``) and
        their masses, the weaker mode's posterior share is below ``1 / N``:
        less than one member's worth, so exact weights lose nothing by
        deciding. With ``Policy.decision_threshold = t > 0`` the evidence is
        first shrunk at ``t`` standard errors (ClusteredKDE's shrinkage).
        """
        w = self.weights
        prior = None if (w == w[0]).all() else w
        t = self.policy.decision_threshold
        lw = None
        if t > 0:    # opt-in: decide only beyond t standard errors of the evidence
            kde = ClusteredKDE(X, hz, 0.5, labels, R=R, predictions=hz, shrink_evidence=True,
                               evidence_threshold=t, weights=prior, evidence=self._mode_evidence())
            lw = kde.cluster_log_weights(z)
        elif self.policy.mode_evidence == 'monte-carlo':
            # The member likelihoods alone; no Gaussian is fitted per mode.
            lw = monte_carlo_cluster_log_weights(gaussian_log_likelihood(z, hz, R), labels, prior)
        if lw is None:    # 'gaussian', or no member of a mode explains z
            kde = ClusteredKDE(X, hz, 0.5, labels, R=R, predictions=hz, shrink_evidence=False,
                               weights=prior, evidence='gaussian')
            lw = kde.cluster_log_weights(z)
        return bool(np.min(lw - logsumexp(lw)) < -np.log(self.N))

    def _kernel_update(self, kernel, X, z, R, hz=None, labels=None, fallback=None,
                       uniform=False, hold=False):
        """The analysis by one conditional KDE (``kernel``: 'covariance', 'enkpf' or 'isotropic').

        ``hz``: the forecast's ``hx`` values when the caller (kernel='auto')
        measured them already, with the mode test's ``labels``; inflation then
        scales ``hz`` with the states (exact for a linear ``hx`` within each
        mode) instead of calling ``hx`` again, and the measurement noise is
        drawn once, after it. ``fallback``: the one-mode core, taken instead
        when the covariance kernel's automatic h exceeds ``policy.kernel_max_h``
        (near h = 1 the kernel redraws every member from almost one Gaussian,
        which the core does better by moving each member). ``uniform``: ``X``
        is equally weighted whatever ``self.weights`` holds (the bridge's
        resampled ensemble). ``hold``: two modes keep their prior masses
        (:meth:`_modes_alike`); None: decided here, on the simulated
        measurements the modes were found on (kernel='auto' with a
        simulator, whose ``y = hx(x) + noise`` share one mean where the
        ``hx`` values do).
        """
        # Non-uniform prior weights enter every kernel as log pi_i on its
        # components and through weighted moments; uniform ones change nothing.
        w = self.weights
        prior = None if uniform or (w == w[0]).all() else w
        measured = hz is not None
        Y = None
        if not measured:
            hz, Y = self._measurements(X, R)
        if labels is None:
            labels = self._labels(kernel, X, hz, Y)
        if hold is None:
            hold = self._modes_alike(Y if hz is None else hz, labels)
        sampler = self._sampler_for(kernel)
        lam_post = self.inflation_mean
        mode = self.inflation
        if mode == 'auto':       # only with hx (a simulator resolves 'auto' to 'adaptive')
            mode, lam_post = self._auto_inflation(hz, z, R)
        if mode == 'adaptive':
            lam_post = self._adaptive_lambda(hz, Y, z, R)
            f = np.sqrt(max(lam_post, 1.0))
        elif mode == 'finite-size':
            f = finite_size_factor(hz, z, R, self.xN)
        else:
            f = float(mode or 1.0)
        if f != 1.0:
            # Around each cluster's own mean: inflating a bimodal ensemble
            # about the global mean would push its modes apart.
            X = X.copy()   # never write into self.sigmas
            hz = hz.copy() if measured else hz
            for k in range(labels.max() + 1):
                rows = labels == k
                X[rows] = _inflated(X[rows], f, None if prior is None else prior[rows])
                if measured:
                    hz[rows] = _inflated(hz[rows], f, None if prior is None else prior[rows])
            if not measured:
                hz, Y = self._measurements(X, R)
        if measured:
            Y = hz + self._gaussian_noise(R, len(X))

        # filterpy's K, S, SI of the forecast analysed (after inflation); a
        # simulator gives only the total spread cov(y) = HPH^T + R.
        gain = self._gain(X, Y if hz is None else hz, np.zeros_like(R) if hz is None else R, prior)
        kde, h = self._kde(kernel, X, hz, Y, z, R, labels, prior, hold)
        if fallback is not None and h > self.policy.kernel_max_h:
            return fallback()
        parts = getattr(kde, 'parts', [kde])
        if kernel == 'covariance':
            # Kernel standard deviations, pooled over clusters.
            share = ([p.N / self.N for p in parts] if prior is None
                     else [prior[rows].sum() for rows in getattr(kde, 'members', [slice(None)])])
            bx = kde.h * np.sqrt(sum(s * np.diag(p.Cxx) for s, p in zip(share, parts)))
            by = kde.h * np.sqrt(sum(s * np.diag(p.Cyy) for s, p in zip(share, parts)))
        elif kernel == 'enkpf':
            bx, by = kde.kernel_std()
        else:
            bx, by = kde.sigma_x, kde.sigma_y
        # The largest log kernel value of the KDE itself (0 at a perfect match).
        ref = float(np.max(kde.log_kernel(z)))
        if ref < _LOG_TINY:
            # Log-space weights stay finite: all weight goes to the member(s)
            # whose simulated measurement is nearest to z.
            warnings.warn(
                f"observation z = {z} is {np.sqrt(-2 * ref):.3g} bandwidths from every simulated "
                f"measurement: every kernel weight underflows in linear space. Falling back to "
                f"log-space weights, which put all weight on the nearest member; the ensemble "
                f"may collapse. Check R, hx and the units of z.", RuntimeWarning, stacklevel=3)

        steps = self.steps
        if kernel == 'covariance' and not any((p.S_eigvals > 0).any() for p in parts):
            # Every member is the same state: S = 0 and every component is the
            # (Kalman-shifted) mean. Carry on with that point; Q spreads it again.
            warnings.warn(
                "states ensemble has (near) zero spread in every coordinate; the analysis "
                "is that single state. Increase Q or re-initialize the filter.",
                RuntimeWarning, stacklevel=3)
            new = kde.centres(z)
        elif kernel == 'enkpf':
            new = sample(kde.conditional(z), self.N, self.rng, sampler, steps,
                         **self.sampler_options)
        elif kernel == 'covariance':
            # Systematic shares per cluster, then each cluster's own sampler.
            counts = [self.N] if len(parts) == 1 else np.bincount(
                systematic_resample(np.exp(kde.cluster_log_weights(z)), self.rng, self.N),
                minlength=len(parts))
            new = []
            for p, n in zip(parts, counts):
                if n == 0:
                    continue
                mixture, origin, T = p.whitened(z)
                new.append(origin + sample(mixture, n, self.rng, sampler, steps,
                                           **self.sampler_options) @ T.T)
            new = np.concatenate(new)
        else:
            new = sample(kde.conditional(z), self.N, self.rng, sampler, steps,
                         **self.sampler_options)
        solver = self.sampler_options.get('solver', 'dpm2m')
        default_steps = {'ode': DEFAULT_ODE_STEPS, 'sde': DEFAULT_SDE_STEPS}.get(sampler, 0)
        return {
            'sigmas': new,
            'ess': kish_ess(kde.weights(z)),
            'log_likelihood': kde.log_marginal(z),
            'h': h,
            'bandwidth_x': bx,
            'bandwidth_y': by,
            'inflation_factor': f,
            'inflation_mean': lam_post,
            'n_clusters': len(parts),
            'n_evaluations': number_of_evaluations(sampler, steps or default_steps, solver),
            'kernel_used': kernel,
            'gamma': None,
            **gain,
        }

    def _repr_extras(self):
        return [("kernel", self.kernel), ("kernel_used", self.kernel_used),
                ("bandwidth", self.bandwidth),
                ("sigma_x", self.sigma_x), ("sigma_y", self.sigma_y), ("h", self.h),
                ("bandwidth_x", self.bandwidth_x), ("bandwidth_y", self.bandwidth_y),
                ("inflation", self.inflation), ("inflation_factor", self.inflation_factor),
                ("clusters", self.clusters), ("n_clusters", self.n_clusters),
                ("sampler", self.sampler), ("steps", self.steps),
                ("simulations", self.simulations)]


def _is_auto(spec):
    return isinstance(spec, str) and spec == 'auto'

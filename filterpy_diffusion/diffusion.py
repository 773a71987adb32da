"""Noise schedules and reverse-time samplers for a closed-form mixture score.

The variance-exploding process adds noise of level ``sigma`` to a sample of a
:class:`~filterpy_diffusion.mixture.GaussianMixture`. In the mixture's frame,
coordinate j of a component has total standard deviation
``t_j = sqrt(v_j + sigma^2)`` and the probability-flow ODE
``dx/dsigma = -sigma * score`` becomes, per coordinate,

    du_j / dt_j = (u_j - D_j(u, sigma)) / t_j,

where ``D = sum_i wbar_i(u) c_i`` is the closed-form denoiser (posterior mean
of the component centre). Because the kernel variance ``v`` is positive, the
flow is smooth all the way down to ``sigma = 0``: there is no singularity to
stop short of.

Samplers start from exact draws of the noised mixture at ``sigma_max`` (well
above the spread of the components, chosen from the data) and integrate down
to 0 on a Karras/EDM schedule in t:

* ``'exact'``     pick a component by weight, add kernel noise (the oracle).
* ``'ode'``       probability-flow ODE, solver ``'dpm2m'`` (second-order
                  multistep exponential integrator, DPM-Solver++(2M); one
                  denoiser evaluation per step) or ``'heun'`` (EDM's Heun
                  method; two evaluations per step).
* ``'sde'``       reverse-time SDE with the ancestral (first-order
                  stochastic exponential) step, exact for a single Gaussian.
"""
import inspect
import numbers

import numpy as np

from ._validation import as_generator
from .mixture import GaussianMixture

__all__ = ["DEFAULT_ODE_STEPS", "DEFAULT_SDE_STEPS", "SIGMA_MAX_FACTOR", "RHO", "SAMPLERS",
           "ODE_SOLVERS", "default_sigma_max", "karras_schedule", "karras_sigmas", "dpm2m",
           "number_of_evaluations", "sample_exact", "sample_ode", "sample_sde", "sample",
           "sampler_keywords", "check_sampler_options"]

#: Default number of ODE steps (one denoiser evaluation each with 'dpm2m').
#: Chosen from the step/accuracy curve in ``benchmarks/sampler_steps.py``.
DEFAULT_ODE_STEPS = 12
#: Default number of SDE steps.
DEFAULT_SDE_STEPS = 40
#: sigma_max is this multiple of the mixture's largest standard deviation.
SIGMA_MAX_FACTOR = 10.0
#: Exponent of the Karras/EDM schedule (EDM's recommended value).
RHO = 7.0

SAMPLERS = ('exact', 'ode', 'sde')
ODE_SOLVERS = ('dpm2m', 'heun')


def default_sigma_max(mixture, factor=SIGMA_MAX_FACTOR):
    """``factor`` times the largest standard deviation of the mixture (at sigma = 0).

    The largest eigenvalue of the mixture covariance bounds the spread of the
    components in every direction, so the noised mixture at this level is
    close to a single broad Gaussian.
    """
    lam = mixture.max_variance()     # cached on the mixture: one eigvalsh per mixture
    return factor * float(np.sqrt(max(lam, mixture.var.max())))


def karras_schedule(mixture, steps, sigma_max=None, rho=RHO):
    """Noise levels ``sigma_0 = sigma_max > ... > sigma_steps = 0``, ndarray (steps + 1,).

    Spaced as in Karras et al. (2022) in the *total* standard deviation
    ``t = sqrt(v + sigma^2)`` (with v the smallest kernel variance), which
    runs from ``t_max`` to ``sqrt(v) > 0``: steps concentrate where the
    mixture still has structure, not at sigma << kernel width where nothing
    changes (:func:`karras_sigmas`).
    """
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    smax = default_sigma_max(mixture) if sigma_max is None else float(sigma_max)
    if not np.isfinite(smax) or smax <= 0:
        raise ValueError(f"sigma_max must be positive and finite, got {smax}")
    return karras_sigmas(float(mixture.var.min()), smax, int(steps), rho)


def karras_sigmas(v, sigma_max, steps, rho=RHO):
    """The Karras/EDM noise levels for kernel variance ``v``, batched over its shape.

    Parameters
    ----------
    v : float or ndarray (B,)
        Kernel variance (> 0) of each mixture of a batch.
    sigma_max : float or ndarray (B,)
        Starting noise level of each.
    steps : int >= 1
    rho : float, default :data:`RHO`

    Returns
    -------
    ndarray (steps + 1,) or (steps + 1, B)
        ``sigma_0 = sigma_max > ... > sigma_steps = 0``, equally spaced in
        ``t^(1/rho)`` with ``t = sqrt(v + sigma^2)``.
    """
    batched = bool(np.ndim(v) or np.ndim(sigma_max))
    # Always on arrays: numpy's SIMD power on arrays and its scalar power can
    # differ in the last bit, and a domain of the local filter must get the
    # schedule its mixture would get alone.
    v = np.atleast_1d(np.asarray(v, dtype=float))
    smax = np.atleast_1d(np.asarray(sigma_max, dtype=float))
    tmax, tmin = np.sqrt(v + smax ** 2), np.sqrt(v)
    i = (np.arange(int(steps) + 1) / int(steps))[:, None]
    t = (tmax ** (1 / rho) + i * (tmin ** (1 / rho) - tmax ** (1 / rho))) ** rho
    sig = np.sqrt(np.maximum(t ** 2 - v, 0.0))
    sig[0], sig[-1] = smax, 0.0
    return sig if batched else sig[:, 0]


def number_of_evaluations(sampler, steps, solver='dpm2m'):
    """Denoiser (score) evaluations of the whole ensemble used by a sampler."""
    if sampler == 'exact':
        return 0
    if sampler == 'ode' and solver == 'heun':
        return 2 * steps - 1  # the last Heun corrector sits at sigma = 0, where the drift is 0
    return steps


def sample_exact(mixture, n, rng=None):
    """Exact draws from the mixture: ndarray (n, d).

    Stratified (systematic component choice, scrambled-Sobol noise) and in
    component order: where every component is chosen once (n equally
    weighted components), row i is drawn from component i.
    """
    return mixture.sample(int(n), rng, ordered=True)


def sample_ode(mixture, n, rng=None, steps=DEFAULT_ODE_STEPS, sigma_max=None,
               solver='dpm2m', rho=RHO):
    """Integrate the probability-flow ODE from ``sigma_max`` to 0.

    Parameters
    ----------
    mixture : GaussianMixture
        Target density, e.g. ``ConditionalKDE.conditional(z)``.
    n : int
        Number of samples.
    rng : None, int or numpy.random.Generator
        Only the starting draws at ``sigma_max`` are random.
    steps : int
        Integration steps (default :data:`DEFAULT_ODE_STEPS`).
    sigma_max : float, optional
        Starting noise level; default :func:`default_sigma_max`.
    solver : {'dpm2m', 'heun'}
        Second-order fixed-step integrator.

    Returns
    -------
    ndarray (n, d)
    """
    if solver not in ODE_SOLVERS:
        raise ValueError(f"solver must be one of {ODE_SOLVERS}, got {solver!r}")
    rng = as_generator(rng)
    sig = karras_schedule(mixture, steps, sigma_max, rho)
    u = mixture.to_frame(mixture.sample(int(n), rng, sigma=sig[0]))
    if solver == 'heun':
        u = _heun(mixture, u, sig)
    else:
        u = _dpm2m(mixture, u, sig)
    return mixture.from_frame(u)


def _total_vars(mixture, sig):
    """Total variances ``v + sigma_k^2`` of a schedule: ndarray (steps + 1, d).

    For an isotropic kernel (every coordinate the same) the (steps + 1,)
    column instead: the same numbers, and scalar arithmetic on the ensemble
    is cheaper than broadcasting a (d,) vector over it.
    """
    tv = np.stack([mixture.total_var(s) for s in sig])
    return tv[:, 0].copy() if np.all(tv == tv[:, :1]) else tv


def _dpm2m(mixture, u, sig):
    return dpm2m(mixture.denoise_frame, u, _total_vars(mixture, sig))


def dpm2m(denoise, u, tv):
    """DPM-Solver++(2M) for the probability-flow ODE in the frame of diagonal kernels.

    In ``lambda = -log t`` per frame coordinate (``t = sqrt(tv)`` differs by
    coordinate when the kernel is anisotropic, or when the coordinates are a
    batch of independent mixtures with their own schedules).

    Parameters
    ----------
    denoise : callable ``denoise(u, tv_k) -> ndarray like u``
        The denoiser in the frame at total variance ``tv_k`` (one row of tv).
    u : ndarray (n, d)
        Start, a draw at total variance ``tv[0]``.
    tv : ndarray (steps + 1,) or (steps + 1, d)
        Total variances ``v + sigma_k^2`` of the schedule, decreasing.

    Returns
    -------
    ndarray (n, d)
    """
    # The schedule's t, ratios and step sizes are computed once; u is
    # updated in place.
    t = np.sqrt(tv)
    ratio = t[1:] / t[:-1]
    h = np.log(t[:-1] / t[1:])
    u = np.array(u, dtype=float)
    D_prev = None
    for k in range(len(tv) - 1):
        D = denoise(u, tv[k])
        if D_prev is None:
            D_eff = D.copy()
        else:
            # h = 0 only where a coordinate has no spread (t constant): there
            # ratio = 1 and D_eff is multiplied by 0, so any finite r will do.
            r = h[k - 1] / np.where(h[k] > 0, h[k], 1.0)
            r = np.where(r > 0, r, 1.0)
            D_eff = D * (1 + 0.5 / r)
            D_eff -= (0.5 / r) * D_prev
        u *= ratio[k]
        D_eff *= 1 - ratio[k]
        u += D_eff
        D_prev = D
    return u


def _heun(mixture, u, sig):
    tvs = _total_vars(mixture, sig)

    def drift(u, k):
        d = mixture.denoise_frame(u, tvs[k])
        d -= u
        d *= -sig[k] / tvs[k]
        return d

    for k in range(len(sig) - 1):
        s, s_next = sig[k], sig[k + 1]
        d = drift(u, k)
        u_e = u + (s_next - s) * d
        d_next = drift(u_e, k + 1) if s_next > 0 else 0.0
        u = u + (s_next - s) * 0.5 * (d + d_next)
    return u


def sample_sde(mixture, n, rng=None, steps=DEFAULT_SDE_STEPS, sigma_max=None, rho=RHO):
    """Integrate the reverse-time SDE from ``sigma_max`` to 0 with ancestral steps.

    Each step draws from the exact reverse transition of a single Gaussian
    component centred at the current denoiser output, so the sampler is exact
    for N = 1 and first order in general. Returns ndarray (n, d).
    """
    rng = as_generator(rng)
    sig = karras_schedule(mixture, steps, sigma_max, rho)
    u = mixture.to_frame(mixture.sample(int(n), rng, sigma=sig[0]))
    tvs = _total_vars(mixture, sig)
    for k in range(len(sig) - 1):
        tv, tv_next = tvs[k], tvs[k + 1]
        D = mixture.denoise_frame(u, tv)
        a = tv_next / tv
        D *= 1 - a
        u = a * u
        u += D
        noise = rng.standard_normal(u.shape)
        noise *= np.sqrt(tv_next * (1 - a))
        u += noise
    return mixture.from_frame(u)


def sample(mixture, n, rng=None, sampler='ode', steps=None, **options):
    """Draw n samples from ``mixture`` with the named sampler ('exact', 'ode' or 'sde')."""
    if not isinstance(mixture, GaussianMixture):
        raise ValueError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if mixture.dim == 0:
        # No coordinates (a whitened cluster of one repeated state): every
        # sample is the empty point, and nothing needs drawing.
        return np.zeros((n, 0))
    if sampler == 'exact':
        return sample_exact(mixture, n, rng)
    if sampler == 'ode':
        return sample_ode(mixture, n, rng, DEFAULT_ODE_STEPS if steps is None else steps, **options)
    if sampler == 'sde':
        return sample_sde(mixture, n, rng, DEFAULT_SDE_STEPS if steps is None else steps, **options)


_SAMPLER_FUNCTIONS = {'exact': sample_exact, 'ode': sample_ode, 'sde': sample_sde}


def sampler_keywords(sampler):
    """The ``**options`` keywords :func:`sample` passes on to the named sampler, a tuple."""
    if sampler not in _SAMPLER_FUNCTIONS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    skip = ('mixture', 'n', 'rng', 'steps')
    return tuple(p for p in inspect.signature(_SAMPLER_FUNCTIONS[sampler]).parameters
                 if p not in skip)


def check_sampler_options(sampler, options):
    """Validate ``options`` for ``sample(..., sampler, **options)``; returns them as a dict.

    Raises ValueError naming an unknown keyword (with the accepted ones) or
    a bad value, so a typo fails at construction, not at the first update.
    """
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(f"sampler_options must be a dict of keyword arguments, got "
                         f"{type(options).__name__}")
    accepted = sampler_keywords(sampler)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"sampler_options {unknown} are not accepted by sampler={sampler!r}; "
                         f"it accepts {list(accepted) or 'none'}")
    for key, value in options.items():
        if key == 'solver':
            if value not in ODE_SOLVERS:
                raise ValueError(f"sampler_options['solver'] must be one of {ODE_SOLVERS}, "
                                 f"got {value!r}")
        elif key == 'sigma_max' and value is None:
            continue
        elif not (isinstance(value, numbers.Real) and not isinstance(value, bool)
                  and np.isfinite(value) and value > 0):
            raise ValueError(f"sampler_options[{key!r}] must be a positive finite number, "
                             f"got {value!r}")
    return dict(options)

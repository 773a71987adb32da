"""Stitching: one spatially continuous analysis ensemble from d separately sampled domains.

Member i of the analysis must be one spatially continuous state although
every domain j has its own mixture ``sum_i w_ij N(m_ij, S_j)``
(:class:`~.algebra.LocalKDE`). Two sources of randomness break continuity
when drawn independently per domain: the choice of component and the kernel
noise. ``stitching`` combines a *selection* rule and a *noise* rule:

selection (member i's component in domain j is the inverse CDF of the
local weights, members in their original order, at a uniform ``u_ij``):

* ``'independent'``: ``u_ij`` i.i.d. per domain (local multinomial resampling);
* ``'shared'``: one ``u_i`` per member shared by every domain: where the
  local weights are similar the member picks the same component;
* ``'systematic'``: ``u_i = (i + U) / N`` with one ``U`` per cycle: local
  systematic resampling whose slots follow the member order, so where the
  local weights are uniform member i keeps its own component i (the EnKF
  limit h -> 1 keeps member identity), and neighbouring domains with
  similar weights make the same choices.

noise (``x_ij = m_{c_ij, j} + sqrt(S_j) xi_ij`` with ``xi_ij ~ N(0, 1)``):

* ``'independent'``: ``xi_ij`` i.i.d. (white noise in space);
* ``'shared'``: one ``xi_i`` per member for every domain (a constant offset:
  perfectly correlated in space);
* ``'ensemble'``: ``xi_ij = sum_k G_ik t_jk`` with ``G`` an (N, N) standard
  normal matrix drawn once per cycle and ``t_j`` the unit-length vector of
  domain j's LETKF analysis anomalies (``A_j T_j``, whose sample variance
  is exactly ``Pa_j``; the perturbed-observation anomalies of the centres
  would carry the sampling noise of the simulated observations into the
  noise's spatial structure). Each ``xi_ij`` is exactly N(0, 1), and two
  domains' noises have the correlation of their analysis anomalies: the
  kernel noise is a random combination of ensemble anomalies, as smooth in
  space as the ensemble.
* ``'rotation'``: ``xi_.j = sqrt(N - 1) Omega t_j`` with ``Omega`` a
  Haar-random rotation of the mean-zero subspace of R^N (one per cycle,
  :func:`filterpy_diffusion.etkf.rotate_anomalies`). The same spatial
  correlation as ``'ensemble'``, and moreover every domain's noise has
  exactly zero sample mean and sample variance 1 (ddof 1): the kernel noise
  adds spread but no error to the ensemble mean, as a random rotation of
  the ETKF (Sakov and Oke 2008).

Named schemes are in :data:`STITCHING`; any (selection, noise) tuple is
accepted. The Kalman shift ``K_j (z~ - y~_i)`` of the centres is already
smooth in j.

The ODE sampler integrates the probability-flow ODE of every domain's 1-D
mixture at once: :func:`filterpy_diffusion.diffusion.dpm2m` on the Karras
schedule of :func:`filterpy_diffusion.diffusion.karras_sigmas`, with the
domains as the coordinates of a batch, starting from draws of the noised
mixtures made with the same stitching rules; a 1-D flow is monotone, so
coherent starting noise gives coherent samples.
"""
import numpy as np

from ..diffusion import DEFAULT_ODE_STEPS, RHO, SIGMA_MAX_FACTOR, dpm2m, karras_sigmas
from ..etkf import rotate_anomalies
from ..resampling import inverse_cdf_rows

__all__ = ["sample_local", "STITCHING", "DEFAULT_STITCHING", "SAMPLERS"]

#: Named stitching schemes: (selection, noise). ``'rotation'`` is the default
#: of :class:`~filterpy_diffusion.localization.LocalDiffusionKDEFilter`
#: (:data:`DEFAULT_STITCHING`); how it was chosen (tuning seeds 0-2 of
#: l96-40, N = 10 and 20) is in ``docs/localization.md``, data in
#: ``docs/data/local_tuning.json``.
STITCHING = {
    "independent": ("independent", "independent"),
    "shared": ("shared", "shared"),
    "coherent": ("systematic", "rotation"),
    "rotation": ("independent", "rotation"),
}
#: Default stitching: independent selection per domain, kernel noise a random
#: rotation of the local ETKF anomalies (the smallest mean RMSE on the tuning
#: seeds at N = 10 and at N = 20; ``'coherent'`` before).
DEFAULT_STITCHING = "rotation"
_SELECTIONS = ("independent", "shared", "systematic")
_NOISES = ("independent", "shared", "ensemble", "rotation")
#: The local samplers: exact mixture draws, or the probability-flow ODE.
SAMPLERS = ("exact", "ode")
#: Largest (domains x points x components) block of the batched 1-D denoiser.
_BLOCK = 1 << 16

def _resolve_stitching(stitching):
    if isinstance(stitching, str):
        if stitching not in STITCHING:
            raise ValueError(f"stitching must be one of {sorted(STITCHING)} or a (selection, noise) "
                             f"tuple, got {stitching!r}")
        return STITCHING[stitching]
    try:
        sel, noise = stitching
    except (TypeError, ValueError):
        raise ValueError(f"stitching must be a name {sorted(STITCHING)} or a (selection, noise) "
                         f"tuple, got {stitching!r}") from None
    if sel not in _SELECTIONS or noise not in _NOISES:
        raise ValueError(f"stitching selection must be one of {_SELECTIONS} and noise one of "
                         f"{_NOISES}, got {stitching!r}")
    return sel, noise


# The batched inverse CDF is resampling.inverse_cdf_rows.
_inverse_cdf = inverse_cdf_rows


def _draw_start(kde, rng, selection, noise):
    """Components (d, N) and standard-normal noise (d, N) under the stitching rules."""
    d, N = kde.centres.shape
    if selection == "independent":
        u = rng.random((d, N))
    elif selection == "shared":
        u = np.broadcast_to(rng.random(N), (d, N))
    else:  # systematic, slots in member order
        u = np.broadcast_to((np.arange(N) + rng.random()) / N, (d, N))
    comp = _inverse_cdf(kde.log_weights, u)
    if noise == "independent":
        xi = rng.standard_normal((d, N))
    elif noise == "shared":
        xi = np.broadcast_to(rng.standard_normal(N), (d, N))
    else:
        nrm = np.sqrt(np.einsum('jn,jn->j', kde.anomalies, kde.anomalies))
        t = kde.anomalies / np.where(nrm > 0, nrm, 1.0)[:, None]     # (d, N), rows unit, mean 0
        if noise == "ensemble":   # member i gets sum_k G_ik t_jk
            xi = t @ rng.standard_normal((N, N)).T
        else:                     # rotation: sqrt(N-1) Omega t_j, Omega a random rotation fixing 1
            xi = np.sqrt(N - 1) * rotate_anomalies(t.T, rng).T
    return comp, xi


def _denoise_1d(U, tv, M, lw):
    """Denoiser of d independent 1-D mixtures: U (n, d) points, tv (d,), M and lw (d, N).

    Column j of the result is ``sum_i wbar_ij(U_.j) M_ji``, the posterior
    mean of domain j's component centre, computed in blocks of domains
    (the logits of one domain are (n, N)).
    """
    d, N = M.shape
    out = np.empty_like(U)
    step = max(1, _BLOCK // max(1, len(U) * N))
    for a in range(0, d, step):
        j = slice(a, a + step)
        logits = lw[j, None, :] - (U.T[j, :, None] - M[j, None, :]) ** 2 / (2 * tv[j, None, None])
        logits -= logits.max(-1, keepdims=True)
        p = np.exp(logits)
        out[:, j] = (np.einsum('jnc,jc->jn', p, M[j]) / p.sum(-1)).T
    return out


def _local_schedule(M, lw, v, steps, rho=RHO):
    """Total variances ``v + sigma_k^2`` (steps + 1, d) of every domain's Karras schedule.

    ``sigma_max`` is :data:`~filterpy_diffusion.diffusion.SIGMA_MAX_FACTOR`
    times the domain mixture's standard deviation, as
    :func:`~filterpy_diffusion.diffusion.default_sigma_max` for a 1-D mixture.
    """
    w = np.exp(lw)
    mbar = np.einsum('jn,jn->j', w, M)
    var_c = np.einsum('jn,jn->j', w, (M - mbar[:, None]) ** 2)
    sig = karras_sigmas(v, SIGMA_MAX_FACTOR * np.sqrt(v + var_c), steps, rho)
    return v + sig * sig


def _ode_local(M, lw, u, tv):
    """:func:`~filterpy_diffusion.diffusion.dpm2m` on every domain's 1-D mixture at once.

    M, lw: (d, N) centres and normalised log weights; u: (d, N) start at
    total variance tv[0]; tv: (steps + 1, d) from :func:`_local_schedule`.
    The domains are the coordinates of the solver's frame, each with its own
    schedule and its own mixture.
    """
    mbar = np.einsum('jn,jn->j', np.exp(lw), M)      # work relative to the mixture mean
    Mc = M - mbar[:, None]
    out = dpm2m(lambda U, tvk: _denoise_1d(U, tvk, Mc, lw), (u - mbar[:, None]).T, tv)
    return out.T + mbar[:, None]


def sample_local(kde, rng, sampler="exact", stitching=DEFAULT_STITCHING, steps=None):
    """Draw the stitched analysis ensemble from every domain's mixture.

    Parameters
    ----------
    kde : LocalKDE
    rng : numpy.random.Generator
    sampler : {'exact', 'ode'}
    stitching : str or (selection, noise)
        Named scheme (:data:`STITCHING`) or a tuple; see the module docstring.
    steps : int, optional
        ODE steps (default :data:`~filterpy_diffusion.diffusion.DEFAULT_ODE_STEPS`).

    Returns
    -------
    ndarray (N, d)
    """
    selection, noise = _resolve_stitching(stitching)
    comp, xi = _draw_start(kde, rng, selection, noise)
    M = kde.centres
    chosen = np.take_along_axis(M, comp, axis=1)
    if sampler == "exact":
        return (chosen + np.sqrt(kde.S)[:, None] * xi).T
    if sampler != "ode":
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    w = np.exp(kde.log_weights)
    mbar = np.einsum('jn,jn->j', w, M)
    var_c = np.einsum('jn,jn->j', w, (M - mbar[:, None]) ** 2)
    # A floor keeps every 1-D kernel proper where S = 0 (h Pa underflows, or
    # a domain whose members all coincide); the flow then returns the centres.
    v = np.maximum(kde.S, np.maximum(1e-12 * np.maximum(kde.Pa, var_c), 1e-300))
    tv = _local_schedule(M, kde.log_weights, v, DEFAULT_ODE_STEPS if steps is None else int(steps))
    start = chosen + np.sqrt(tv[0])[:, None] * xi
    return _ode_local(M, kde.log_weights, start, tv).T


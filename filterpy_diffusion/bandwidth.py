"""Bandwidth rules for the joint (state, measurement) kernel.

Conventions follow ``scipy.stats.gaussian_kde``: a rule (``'scott'``,
``'silverman'``) gives a dimensionless *factor* computed from the effective
sample size ``n = 1 / sum w^2`` and the joint dimension ``d + m``; the kernel
standard deviation of each coordinate is that factor times the coordinate's
ensemble standard deviation (the per-block, per-coordinate scaling the
isotropic kernel needs when x and y have different units). Unlike
``gaussian_kde``, a plain number is an *absolute* bandwidth (the kernel
standard deviation), as in :class:`~filterpy_diffusion.ConditionalKDE`.
A callable receives ``(states, measurements)`` and returns a bandwidth
(a positive float or a per-coordinate vector).
"""
import warnings

import numpy as np

RULES = ('scott', 'silverman')


def scott_factor(n, dim):
    """Scott's rule ``n ** (-1 / (dim + 4))``."""
    return float(n) ** (-1.0 / (dim + 4))


def silverman_factor(n, dim):
    """Silverman's rule ``(n (dim + 2) / 4) ** (-1 / (dim + 4))``."""
    return (float(n) * (dim + 2) / 4.0) ** (-1.0 / (dim + 4))


_FACTORS = {'scott': scott_factor, 'silverman': silverman_factor}


def coordinate_scale(a, name):
    """Per-coordinate standard deviation of an ensemble (N, k), floored when it collapsed.

    A coordinate with zero spread gets ``sqrt(eps) * (1 + |mean|)``, so the
    kernel stays a proper density; a ``RuntimeWarning`` says so, because a
    collapsed ensemble usually means Q or the initial P is too small.
    """
    std = a.std(axis=0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1])
    floor = np.sqrt(np.finfo(float).eps) * (1.0 + np.abs(a.mean(axis=0)))
    collapsed = std < floor
    if collapsed.any():
        warnings.warn(
            f"{name} ensemble has (near) zero spread in coordinates "
            f"{np.flatnonzero(collapsed).tolist()}; using the bandwidth floor "
            f"sqrt(eps)*(1+|mean|) there. Increase Q or re-initialize the filter.",
            RuntimeWarning, stacklevel=3)
    return np.where(collapsed, floor, std)


def rule_factor(rule, n, dim):
    """The dimensionless factor of a named rule."""
    try:
        return _FACTORS[rule](n, dim)
    except KeyError:
        raise ValueError(f"bandwidth rule must be one of {RULES}, got {rule!r}") from None


def resolve_bandwidth(spec, block, other, name, joint_dim):
    """Turn a bandwidth specification into a positive (k,) vector for one block.

    Parameters
    ----------
    spec : float, ndarray (k,), str or callable
        Absolute bandwidth, a rule name, or ``spec(states, measurements)``.
    block : ndarray (N, k)
        The block this bandwidth is for (states or measurements).
    other : ndarray (N, k')
        The other block (passed to a callable in (states, measurements) order).
    name : {'sigma_x', 'sigma_y'}
    joint_dim : int
        ``d + m``, the dimension the rule's factor is computed for.

    Returns
    -------
    ndarray (k,)
    """
    k = block.shape[1]
    if isinstance(spec, str):
        label = 'states' if name == 'sigma_x' else 'measurements'
        h = rule_factor(spec, len(block), joint_dim) * coordinate_scale(block, label)
    elif callable(spec):
        args = (block, other) if name == 'sigma_x' else (other, block)
        h = spec(*args)
    else:
        h = spec
    h = np.broadcast_to(np.asarray(h, dtype=float), (k,)) if np.ndim(h) == 0 else np.asarray(h, float)
    if h.shape != (k,) or not np.all(np.isfinite(h)) or np.any(h <= 0):
        raise ValueError(
            f"{name} must resolve to a positive finite scalar or a ({k},) vector, got {h!r}")
    return h.copy()


def effective_sample_size(log_weights):
    """``1 / sum w_i^2`` of normalised weights given (unnormalised) log weights.

    ``log_weights`` (N,) gives a float; (..., N) the ESS of every row, ndarray (...).
    """
    lw = np.asarray(log_weights, dtype=float)
    if lw.ndim > 1:
        w = np.exp(lw - lw.max(axis=-1, keepdims=True))
        return w.sum(-1) ** 2 / np.einsum('...i,...i->...', w, w)
    lw = lw - lw.max()
    w = np.exp(lw)
    return float(w.sum() ** 2 / (w @ w))


def select_by_ess(log_weights_at, target, lo, hi, iters=16, batch=None):
    """Smallest bandwidth in ``[lo, hi]`` whose weights keep ``ESS >= target``.

    The weights' ESS grows with the bandwidth (wider kernels weigh members
    more evenly), so bisection in ``log h`` finds the smallest bandwidth --
    the one that keeps the most non-Gaussian structure -- that still spreads
    the analysis over ``target`` effective members. Returns ``hi`` if even
    ``hi`` falls short, ``lo`` if ``lo`` already suffices. Sixteen halvings
    of ``log(hi / lo)`` pin h to about 0.01% -- far below the ESS's own
    sampling noise.

    Parameters
    ----------
    log_weights_at : callable ``h -> ndarray (N,)``
        Unnormalised log weights at bandwidth h. With ``batch``: ``h`` is an
        ndarray (batch,) and the result (batch, N), one row per problem.
    target : float
        Required effective sample size.
    lo, hi : float
        Search interval, ``0 < lo < hi``.
    iters : int, default 16
    batch : int, optional
        Solve ``batch`` independent searches at once (e.g. one per local
        domain): the same bisection, elementwise.

    Returns
    -------
    float, or ndarray (batch,) with ``batch``
    """
    if batch is not None:
        return _select_by_ess_batch(log_weights_at, target, lo, hi, iters, int(batch))
    if effective_sample_size(log_weights_at(lo)) >= target:
        return lo
    if effective_sample_size(log_weights_at(hi)) < target:
        return hi
    a, b = np.log(lo), np.log(hi)
    for _ in range(iters):
        c = 0.5 * (a + b)
        if effective_sample_size(log_weights_at(np.exp(c))) >= target:
            b = c
        else:
            a = c
    return float(np.exp(b))


def _select_by_ess_batch(log_weights_at, target, lo, hi, iters, n):
    """:func:`select_by_ess` for n problems at once, elementwise the same steps."""
    lo_ok = effective_sample_size(log_weights_at(np.full(n, lo))) >= target
    hi_bad = effective_sample_size(log_weights_at(np.full(n, hi))) < target
    h = np.full(n, float(hi))
    h[lo_ok] = lo
    todo = ~(lo_ok | hi_bad)
    if todo.any():
        a, b = np.full(n, np.log(lo)), np.full(n, np.log(hi))
        for _ in range(iters):
            c = 0.5 * (a + b)
            ok = effective_sample_size(log_weights_at(np.exp(c))) >= target
            b = np.where(ok, c, b)
            a = np.where(ok, a, c)
        h[todo] = np.exp(b[todo])
    return h

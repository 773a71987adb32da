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
from __future__ import annotations

import warnings
from typing import Callable, Optional, Union

import numpy as np
import numpy.typing as npt

from .weights import effective_sample_size, effective_sample_size_rows

__all__ = ["RULES", "scott_factor", "silverman_factor", "coordinate_scale", "rule_factor",
           "resolve_bandwidth", "effective_sample_size", "select_by_ess", "select_by_ess_rows"]

RULES = ('scott', 'silverman')


def scott_factor(n: float, dim: int) -> float:
    """Scott's rule ``n ** (-1 / (dim + 4))``."""
    return float(n) ** (-1.0 / (dim + 4))


def silverman_factor(n: float, dim: int) -> float:
    """Silverman's rule ``(n (dim + 2) / 4) ** (-1 / (dim + 4))``."""
    return (float(n) * (dim + 2) / 4.0) ** (-1.0 / (dim + 4))


_FACTORS = {'scott': scott_factor, 'silverman': silverman_factor}


def coordinate_scale(a: np.ndarray, name: str) -> np.ndarray:
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


def rule_factor(rule: str, n: float, dim: int) -> float:
    """The dimensionless factor of a named rule."""
    try:
        return _FACTORS[rule](n, dim)
    except KeyError:
        raise ValueError(f"bandwidth rule must be one of {RULES}, got {rule!r}") from None


def resolve_bandwidth(spec: Union[float, npt.ArrayLike, str, Callable], block: np.ndarray,
                      other: np.ndarray, name: str, joint_dim: int) -> np.ndarray:
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


def select_by_ess(log_weights_at: Callable[[float], np.ndarray], target: float, lo: float,
                  hi: float, iters: int = 16,
                  batch: Optional[int] = None) -> Union[float, np.ndarray]:
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
        # n searches at once: log_weights_at(h (n,)) gives (n, N) rows
        return select_by_ess_rows(lambda h: effective_sample_size_rows(log_weights_at(h)),
                                  target, lo, hi, int(batch), iters)

    def ess_at(h):
        return np.array([effective_sample_size(log_weights_at(float(h[0])))])
    return float(select_by_ess_rows(ess_at, target, lo, hi, 1, iters)[0])


def select_by_ess_rows(ess_at: Callable[[np.ndarray], np.ndarray], target: Union[float, np.ndarray],
                       lo: float, hi: float, d: int, iters: int = 16) -> np.ndarray:
    """:func:`select_by_ess` for d independent searches at once (one per domain).

    The one bisection: row j gets the smallest ``h_j`` in ``[lo, hi]`` with
    ``ess_at(h)[j] >= target``, ``lo`` if ``lo`` already suffices and ``hi``
    if even ``hi`` falls short, after ``iters`` halvings of ``log(hi /
    lo)``. Rows are independent, so each row's answer is what the scalar
    search would give it.

    Parameters
    ----------
    ess_at : callable ``h (d,) -> ndarray (d,)``
        Effective sample size of every row's weights at its bandwidth.
    target : float or ndarray (d,)
    lo, hi : float
        Search interval, ``0 < lo < hi``.
    d : int
        Number of rows.
    iters : int, default 16

    Returns
    -------
    ndarray (d,)

    Examples
    --------
    >>> import numpy as np
    >>> from filterpy_diffusion.bandwidth import select_by_ess_rows
    >>> from filterpy_diffusion.weights import effective_sample_size_rows
    >>> dist2 = np.array([[0.0, 1.0, 4.0, 9.0], [0.0, 0.0, 0.0, 0.0]])   # (d, N)
    >>> ess_at = lambda h: effective_sample_size_rows(-0.5 * dist2 / (h * h)[:, None])
    >>> h = select_by_ess_rows(ess_at, 2.0, 1e-3, 10.0, 2)
    >>> bool(abs(ess_at(h)[0] - 2.0) < 1e-3), float(h[1])     # row 1: equal weights at any h
    (True, 0.001)
    """
    lo_ok = ess_at(np.full(d, lo)) >= target
    hi_bad = ess_at(np.full(d, hi)) < target
    a, c = np.full(d, np.log(lo)), np.full(d, np.log(hi))
    if not (lo_ok | hi_bad).all():
        for _ in range(iters):
            mid = 0.5 * (a + c)
            ok = ess_at(np.exp(mid)) >= target
            c = np.where(ok, mid, c)
            a = np.where(ok, a, mid)
    h = np.exp(c)
    h[lo_ok] = lo
    h[hi_bad & ~lo_ok] = hi
    return h

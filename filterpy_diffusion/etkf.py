"""The Gaussian core: a deterministic ensemble-transform Kalman update (ETKF).

Where the likelihood is Gaussian, ``N(z; hx(x), R)`` with ``hx`` given, the
analysis moves the ensemble mean by the Kalman gain of the ensemble
covariance and transforms the anomalies with the symmetric square root of
the ensemble-space posterior covariance (Bishop et al. 2001; Hunt et al.
2007; Sakov and Oke 2008), instead of perturbing the observations: no
sampling noise is added, and the analysis mean and covariance are exactly
the Kalman update of the forecast's (for linear ``hx``).

Inflation of the forecast anomalies may be fixed or estimated every update
by the finite-size ("EnKF-N") rule of Bocquet (2011) and Bocquet, Raanes and
Hannart (2015): the forecast ensemble is treated as a finite sample of an
unknown Gaussian, the prior of the state becomes a Student-like density in
ensemble space, and the inflation is the mode of its scale given ``z``. The
derivation is in ``docs/gaussian-core.md``.

Everything happens in the frame whitened by ``R``'s Cholesky factor and uses
one thin SVD of the ``(N, dim_z)`` whitened predicted-measurement anomalies,
so the cost is ``O(N dim_z min(N, dim_z) + N dim_x min(N, dim_z))`` and no
``N x N`` matrix is formed unless a rotation or the transform is asked for.
``R`` must be positive definite here (a singular ``R`` has no whitened
frame; a ValueError says so).
"""
from __future__ import annotations

import numbers
from typing import Union

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize_scalar

from ._validation import (RngLike, as_covariance, as_ensemble, as_generator, as_vector,
                          check_inflation, cholesky_factor, triangular_solve)
from .weights import logsumexp

__all__ = ["INFLATIONS", "finite_size_coefficients", "finite_size_inflation",
           "mean_preserving_rotation", "rotate_anomalies", "check_whitening",
           "whitened_spectrum", "spectrum_rank", "finite_size_factor", "etkf_analysis"]

#: The string values of ``inflation`` besides a float and None.
INFLATIONS = ('finite-size',)
#: Largest log squared inflation ``u = log l^2`` the finite-size search tries:
#: e^(2u), in its curvature, stays within float range.
U_MAX = float(np.floor(0.5 * np.log(np.finfo(float).max)))
_LOG_2PI = np.log(2.0 * np.pi)
_EPS = np.finfo(float).eps
#: 0, 1, ..., 256: the finite-size search's grid in units of its step (:func:`_grid`).
_GRID_STEPS = np.arange(257.0)


def finite_size_coefficients(s: np.ndarray, N: int, xN: float = 1.0) -> tuple[float, float]:
    """Coefficients ``(eps_N, c_L)`` of the finite-size prior's inflation cost.

    The EnKF-N cost of the inflation ``l`` (the anomaly factor) is
    ``sum_i du_i^2 / (l^2 s_i^2 + N - 1) + eps_N / l^2 + c_L log l^2``
    (see :func:`finite_size_inflation`). Without data its mode is
    ``l^2 = eps_N / c_L``; Bocquet's values ``eps_N = (N + 1) / N``,
    ``c_L = N / (N - 1)`` put it below 1, which must not happen when the
    observations carry no information (nothing then corrects it). Following
    Bocquet, Raanes and Hannart (2015, eq. 36) the mode is moved to
    ``(eps_N / c_L)^(1 - t)`` with ``t = mean(1 / (1 + s_i^2 / (N - 1)))``
    over the N ensemble-space directions (1 with no information, so then the
    mode is 1); ``xN`` multiplies both coefficients, sharpening (``xN > 1``)
    or flattening the hyperprior around that mode.

    Parameters
    ----------
    s : ndarray (r,)
        Singular values of the whitened predicted-measurement anomalies
        ``(hz_i - mean) L^-T``, r <= N.
    N : int
        Ensemble size.
    xN : float > 0, default 1
        Certainty of the hyperprior (DAPPER's ``xN``).

    Returns
    -------
    eps_N, c_L : float
    """
    N1 = N - 1
    eN = (N + 1) / N
    cL = N / N1
    mode = eN / cL
    # Mean over all N directions; those without data (s = 0) contribute 1.
    t = ((N1 / (s ** 2 + N1)).sum() + (N - len(s))) / N
    corr = np.sqrt(mode ** t)
    return xN * eN / corr, xN * cL * corr


def finite_size_inflation(s: np.ndarray, du: np.ndarray, N: int, xN: float = 1.0) -> float:
    """The finite-size (EnKF-N) inflation: the global minimiser of the dual cost.

    Minimises, over ``u = log l^2``,
    ``D(u) = sum_i du_i^2 / (e^u s_i^2 + N - 1) + eps_N e^-u + c_L u``
    (Bocquet, Raanes and Hannart 2015, the dual of the primal ensemble-space
    cost ``0.5 |d - Y w|^2_R + 0.5 (N - 1) c_L log(eps_N + |w|^2)``).
    Every stationary point has ``eps_N / c_L < e^u < (eps_N + sum du_i^2 /
    s_i^2) / c_L``; the cost is scanned on a grid between those bounds, and the best
    grid point is refined by bounded Brent search, so the global minimum is
    found even when the cost has two.

    Parameters
    ----------
    s : ndarray (r,)
        Singular values of the whitened predicted-measurement anomalies.
    du : ndarray (r,)
        The whitened innovation in the corresponding right singular basis.
    N : int
        Ensemble size.
    xN : float > 0, default 1
        See :func:`finite_size_coefficients`.

    Returns
    -------
    float
        The anomaly inflation factor ``l`` (> 0; may be below 1).
    """
    N1 = N - 1
    eN, cL = finite_size_coefficients(s, N, xN)
    s2, du2 = s ** 2, du ** 2

    # In u = log l^2, with q_i = e^u s_i^2 + N - 1 and w2_i = du_i^2 s_i^2:
    # D'(u) = c_L - eps_N e^-u - e^u sum w2_i / q_i^2 and D''(u) = eps_N e^-u
    # - e^u sum w2_i / q_i^2 + 2 e^2u sum w2_i s_i^2 / q_i^3.
    w2 = du2 * s2

    def cost(u):
        # u: the grid (n,) or one point (a float); methods, not np.sum: no wrapper per call.
        e = np.exp(u)
        return (du2 / (np.multiply.outer(e, s2) + N1)).sum(axis=-1) + eN / e + cL * u

    def slope_curvature(u, curvature=True):
        e = np.exp(u)
        iq = 1.0 / (e * s2 + N1)
        a = e * (w2 @ (iq * iq))
        if not curvature:     # the bracket test needs the sign of the slope only
            return cL - a - eN / e
        return cL - a - eN / e, -a + 2.0 * e * e * (w2 @ (s2 * iq ** 3)) + eN / e

    lo = np.log(eN / cL)
    if not (w2 > 0).any():
        return float(np.exp(0.5 * lo))   # no information: the prior's mode
    # Beyond e^u = (eps_N + sum du_i^2 / s_i^2) / c_L the slope is positive
    # (each e s^2 / (e s^2 + N - 1)^2 <= 1 / (e s^2)), so every stationary
    # point lies in [lo, hi]. Stopping at the first rising point instead
    # misses a second, deeper minimum beyond it.
    informed = (s2 > 0) & (du2 > 0)
    with np.errstate(divide='ignore'):    # in logs: s_i^2 may be subnormal
        hi = logsumexp(np.concatenate((np.log(du2[informed]) - np.log(s2[informed]), [np.log(eN)])))
    hi = hi - np.log(cL) + 1e-9
    # Where e^(2u) would overflow the curvature, search only up to U_MAX:
    # cost(u) > c_L u there, so a minimum at most c_L U_MAX is the global one.
    capped = hi > U_MAX
    hi = min(hi, U_MAX)
    hi = max(hi, lo + 1e-6)
    grid = _grid(lo, hi)
    costs = cost(grid)
    k = int(costs.argmin())
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    if slope_curvature(a, False) < 0 < slope_curvature(b, False):
        u = _newton_bisection(slope_curvature, a, b)
    else:    # two stationary points between neighbouring grid points: no sign bracket
        u = minimize_scalar(cost, bounds=(a, b), method='bounded',
                            options={'xatol': 1e-10 * max(1.0, abs(grid[k]))}).x
    cu = cost(u)
    u, cu = (u, cu) if cu <= costs[k] else (grid[k], costs[k])
    if capped and cu > cL * U_MAX:
        raise FloatingPointError(
            f"finite-size inflation has no minimum below l^2 = exp({U_MAX:g}): the innovation "
            f"is far outside the ensemble's spread in observation space (check z, R and hx, "
            f"and that the ensemble has not collapsed)")
    return float(np.exp(0.5 * u))


def _grid(lo, hi):
    """``np.linspace(lo, hi, 257)`` bit for bit, by its own arithmetic, without its overhead."""
    step = (hi - lo) / 256
    if not step > 0:
        return np.linspace(lo, hi, 257)
    y = _GRID_STEPS * step
    y += lo
    y[-1] = hi
    return y


def _newton_bisection(fg, a, b, tol=1e-12, maxiter=100):
    """Root of ``f`` in ``[a, b]`` with ``f(a) < 0 < f(b)``: Newton steps kept in the bracket.

    ``fg(u)`` returns ``(f(u), f'(u))``.
    """
    u = 0.5 * (a + b)
    for _ in range(maxiter):
        g, h = fg(u)
        if g == 0.0:    # else b = u, and a Newton step to u is outside (a, b): bisection
            return u
        if g < 0:
            a = u
        else:
            b = u
        step = g / h if h > 0 else np.inf
        new = u - step
        if not a < new < b:
            new = 0.5 * (a + b)
        if abs(new - u) <= tol * max(1.0, abs(u)) or b - a <= tol * max(1.0, abs(u)):
            return new
        u = new
    return u


def mean_preserving_rotation(N: int, rng: RngLike) -> np.ndarray:
    """A random orthogonal ``(N, N)`` matrix ``Q`` with ``Q 1 = 1``.

    Haar-distributed on the orthogonal group of the complement of the ones
    vector: ``Q = H diag(1, O) H``, with ``H`` the Householder reflection
    that swaps ``e_1`` and ``1 / sqrt(N)``, and ``O`` a Haar orthogonal
    ``(N - 1, N - 1)`` matrix (QR of a Gaussian matrix with the signs of
    R's diagonal fixed; Mezzadri 2007). Applied to centred anomalies it
    keeps them centred and keeps their sample covariance.

    Parameters
    ----------
    N : int >= 2
    rng : None, int or numpy.random.Generator

    Returns
    -------
    ndarray (N, N)
    """
    rng = as_generator(rng)
    B = np.eye(N)
    B[1:, 1:] = _haar(N - 1, N - 1, rng)
    return _householder_ones(_householder_ones(B).T).T


def rotate_anomalies(A: np.ndarray, rng: RngLike) -> np.ndarray:
    """``Q A`` for centred anomalies ``A`` and a Haar mean-preserving rotation ``Q``, without ``Q``.

    Same distribution as ``mean_preserving_rotation(N, rng) @ A`` at
    ``O(N d min(N, d))`` instead of ``O(N^3)``: in the frame ``H`` whose
    first axis is ``1 / sqrt(N)`` the anomalies are ``[0; B]``, and for Haar
    ``O`` and the thin QR ``B = Q_B R_B``, ``O Q_B`` is a uniformly random
    orthonormal frame, drawn as the sign-fixed QR of a Gaussian matrix.

    Parameters
    ----------
    A : ndarray (N, d)
        Anomalies with zero column means.
    rng : None, int or numpy.random.Generator

    Returns
    -------
    ndarray (N, d)
    """
    rng = as_generator(rng)
    N, d = A.shape
    B = _householder_ones(A)[1:]
    r = min(N - 1, d)
    if r == N - 1:    # as many columns as the rotated space: the full rotation is no dearer
        out = _haar(N - 1, N - 1, rng) @ B
    else:
        Qb, Rb = np.linalg.qr(B)
        out = _haar(N - 1, r, rng) @ Rb
    return _householder_ones(np.vstack([np.zeros((1, d)), out]))


def _haar(n, k, rng):
    """A uniformly random ``(n, k)`` orthonormal frame (Mezzadri 2007)."""
    q, r = np.linalg.qr(rng.standard_normal((n, k)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def _householder_ones(M):
    """``H @ M`` for the reflection ``H`` (symmetric, orthogonal) with ``H e_1 = 1 / sqrt(N)``."""
    N = M.shape[0]
    v = np.full(N, -1.0 / np.sqrt(N))
    v[0] += 1.0
    vv = v @ v
    if vv == 0.0:   # N == 1
        return M.copy()
    return M - np.outer(v, (2.0 / vv) * (v @ M))


def check_whitening(R: npt.ArrayLike, m: int) -> np.ndarray:
    """Lower Cholesky factor ``L`` (``R = L L^T``) of a positive definite R, or a ValueError.

    Parameters
    ----------
    R : ndarray (m, m) or float
    m : int

    Returns
    -------
    ndarray (m, m), lower triangular
    """
    return cholesky_factor(as_covariance(R, "R", m),
                           "(the ETKF needs a positive definite R: it works in the frame "
                           "whitened by R^-1/2)",
                           "Add a small noise variance to the exactly observed components.")


def _whitened_svd(Y, d, L, ref):
    """Thin SVD ``U s V^T`` of ``Y L^-T`` (N, m) and the whitened innovation ``L^-1 d``.

    ``Y`` are anomalies about the mean ``ref`` (m,): singular values at the
    rounding level of ``ref`` are set to 0. Members equal up to rounding
    have no spread, and a finite-size inflation of ~1e16 applied to their
    rounding residue would move the mean.
    """
    Yw = triangular_solve(L, Y.T).T
    U, s, Vt = np.linalg.svd(Yw, full_matrices=False)       # r = min(N, m)
    s = np.where(s > _rounding_level(s, L, ref, Y.shape), s, 0.0)
    return U, s, Vt, triangular_solve(L, d)


def _rounding_level(s, L, ref, shape):
    """Singular values of whitened anomalies at or below this are rounding residue.

    ``s`` (descending) of ``(Y - ref) L^-T`` for ``Y`` of ``shape`` (N, m):
    the SVD's own error, ``max(N, m) eps s_1``, plus that of the
    subtraction of the mean ``ref`` (m,), ``sqrt(N m) eps max|L^-1 ref|``
    (members far from the origin and close together leave a residue of
    their mean's rounding, which the SVD's own tolerance takes for spread).
    """
    N, m = shape
    ref_w = triangular_solve(L, np.asarray(ref, dtype=float))
    return 4 * _EPS * (np.sqrt(N * m) * np.abs(ref_w).max() + max(N, m) * (s[0] if s.size else 0))


def finite_size_factor(hz: npt.ArrayLike, z: npt.ArrayLike, R: npt.ArrayLike,
                       xN: float = 1.0) -> float:
    """The finite-size (EnKF-N) inflation factor of the anomalies for this update.

    The same ``l`` that ``etkf_analysis(..., inflation='finite-size')`` uses,
    for analyses other than the ETKF (applied as a prior inflation).

    Parameters
    ----------
    hz : ndarray (N, dim_z)
        Predicted measurements of the forecast members.
    z : ndarray (dim_z,)
    R : ndarray (dim_z, dim_z), positive definite
    xN : float > 0, default 1

    Returns
    -------
    float
    """
    s, du = whitened_spectrum(hz, z, R)
    return finite_size_inflation(s, du, len(hz), xN)


def whitened_spectrum(hz: npt.ArrayLike, z: npt.ArrayLike,
                      R: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """What the finite-size estimate reads from a forecast: ``s`` and ``du``.

    ``s`` are the singular values of the whitened predicted-measurement
    anomalies ``(hz_i - mean) L^-T`` (``R = L L^T``; values at rounding
    level set to 0, so ``count_nonzero(s)`` is
    :func:`filterpy_diffusion.bridge.informed_dimension`'s rank) and ``du``
    the whitened innovation ``L^-1 (z - mean)`` in their right singular
    basis. One SVD serves both the rank and
    :func:`finite_size_inflation` (``finite_size_factor`` is
    ``finite_size_inflation(*whitened_spectrum(hz, z, R), N, xN)``).

    Parameters
    ----------
    hz : ndarray (N, dim_z)
    z : ndarray (dim_z,)
    R : ndarray (dim_z, dim_z), positive definite

    Returns
    -------
    s, du : ndarray (min(N, dim_z),)
    """
    hz = as_ensemble(hz, "hz", min_rows=2)
    m = hz.shape[1]
    z = as_vector(z, "z", m)
    return _spectrum(hz, z, check_whitening(R, m))


def spectrum_rank(spectrum: tuple[np.ndarray, np.ndarray]) -> int:
    """The informed dimension a :func:`whitened_spectrum` carries: its non-zero ``s``.

    ``whitened_spectrum`` sets the singular values at rounding level to 0,
    so this is :func:`filterpy_diffusion.bridge.informed_dimension`'s rank
    of the same ``(hz, R)`` without a second SVD.

    Parameters
    ----------
    spectrum : (s, du) from :func:`whitened_spectrum`

    Returns
    -------
    int
    """
    return int(np.count_nonzero(spectrum[0]))


def _spectrum(hz, z, L):
    """:func:`whitened_spectrum` of a checked ``hz`` (N >= 2) and ``z``, with ``R``'s factor ``L``."""
    yb = hz.mean(0)
    _, s, Vt, dw = _whitened_svd(hz - yb, z - yb, L, yb)
    return s, Vt @ dw


def mean_weights(U, s, du, l1=1.0):
    """Weights ``w`` of the ETKF analysis mean ``mean(X) + w^T A``, batched over leading axes.

    ``w = U diag(l^2 s / (l^2 s^2 + N - 1)) du``, from the thin SVD ``U s V^T``
    of the whitened predicted-measurement anomalies and the whitened
    innovation ``du`` in the basis V.

    Parameters
    ----------
    U : ndarray (..., N, r)
    s : ndarray (..., r)
    du : ndarray (..., r)
    l1 : float or ndarray (...,), default 1
        Prior anomaly inflation (one per batch entry, or shared).

    Returns
    -------
    ndarray (..., N)
    """
    l2 = np.asarray(l1, dtype=float)[..., None] ** 2
    dg = l2 * s ** 2 + (U.shape[-2] - 1)
    c = l2 * s * du / dg
    return U @ c if U.ndim == 2 else (U @ c[..., None])[..., 0]


def transform_anomalies(A, U, s, l1=1.0):
    """The symmetric square-root transform ``l T A``, batched over leading axes.

    ``T = sqrt(N - 1) (l^2 Y R^-1 Y^T + (N - 1) I)^-1/2 = I + U diag(c) U^T``
    with ``c = sqrt((N - 1) / (l^2 s^2 + N - 1)) - 1``: U spans the informed
    directions only, elsewhere T is the identity. ``T 1 = 1``, so centred
    anomalies stay centred.

    Parameters
    ----------
    A : ndarray (..., N, n)
        Forecast anomalies.
    U : ndarray (..., N, r)
        Left singular vectors of the whitened predicted-measurement anomalies.
    s : ndarray (..., r)
        Their singular values.
    l1 : float or ndarray (...,), default 1
        Prior anomaly inflation (one per batch entry, or shared).

    Returns
    -------
    ndarray (..., N, n)
    """
    N1 = U.shape[-2] - 1
    l1 = np.asarray(l1, dtype=float)
    c = np.sqrt(N1 / (l1[..., None] ** 2 * s ** 2 + N1)) - 1.0
    return l1[..., None, None] * (A + U @ (c[..., :, None] * (np.swapaxes(U, -1, -2) @ A)))


def etkf_analysis(X: npt.ArrayLike, hz: npt.ArrayLike, z: npt.ArrayLike, R: npt.ArrayLike, *,
                  inflation: Union[None, float, str] = None, rot: bool = False,
                  rng: RngLike = None, xN: float = 1.0,
                  inflation_floor: Union[None, float] = None,
                  return_transform: bool = False) -> tuple[np.ndarray, dict]:
    """One ensemble-transform Kalman analysis (symmetric square root, mean-preserving).

    With forecast anomalies ``A = X - mean(X)`` and ``Y = hz - mean(hz)``,
    both multiplied by the prior inflation ``l``, the analysis is
    ``X_a = mean(X) + w^T A + l T A`` with ``T = sqrt(N - 1) (l^2 Y R^-1
    Y^T + (N - 1) I)^-1/2`` and ``w = l^2 (l^2 Y R^-1 Y^T + (N - 1) I)^-1
    Y R^-1 (z - mean(hz))``: the Kalman update of the inflated ensemble's
    mean and covariance, deterministic and with ``T 1 = 1``.

    Parameters
    ----------
    X : ndarray (N, dim_x)
        Forecast ensemble.
    hz : ndarray (N, dim_z)
        ``hx`` of every member (noise-free).
    z : ndarray (dim_z,)
        Measurement.
    R : ndarray (dim_z, dim_z) or float
        Measurement noise covariance, symmetric positive definite.
    inflation : None, float > 0 or 'finite-size', default None
        Prior inflation of the anomalies (applied to ``A`` and ``Y`` alike,
        so ``hx`` is not called again): None is none, a float is the
        factor ``l``, ``'finite-size'`` estimates ``l`` from this update by
        :func:`finite_size_inflation` (EnKF-N).
    rot : bool, default False
        Follow the transform by a random mean-preserving rotation
        (:func:`mean_preserving_rotation`), which leaves the analysis mean
        and covariance unchanged but stops the members' shape from
        degenerating over many cycles (DAPPER's ``rot=True``). Drawn by
        :func:`rotate_anomalies`, ``O(N dim_x min(N, dim_x))``; with
        ``return_transform`` the explicit ``(N, N)`` rotation is drawn
        instead (same distribution, other numbers).
    rng : None, int or numpy.random.Generator
        Source of the rotation (unused without ``rot``).
    xN : float > 0, default 1
        Certainty of the finite-size hyperprior (:func:`finite_size_coefficients`).
    inflation_floor : None or float > 0, default None
        With ``inflation='finite-size'``, the factor used is at least this
        (the bridge passes the forecast's own finite-size factor, so a core
        that sees only part of the likelihood never inflates less than the
        whole would have asked for).
    return_transform : bool, default False
        Also return the ``(N, N)`` matrix ``T_a`` (with inflation and
        rotation) of ``X_a = mean + w^T A + T_a A`` as ``info['T']``.

    Returns
    -------
    Xa : ndarray (N, dim_x)
        Analysis ensemble.
    info : dict
        ``'inflation'`` the factor ``l`` used; ``'K'`` (dim_x, dim_z) the
        Kalman gain of the inflated ensemble; ``'S'`` (dim_z, dim_z) its
        innovation covariance ``l^2 cov(hz) + R``; ``'log_likelihood'``
        ``log N(z; mean(hz), S)``; ``'w'`` (N,) the mean's weights on ``A``;
        ``'T'`` if asked for.

    Examples
    --------
    >>> import numpy as np
    >>> from filterpy_diffusion.etkf import etkf_analysis
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 2))
    >>> Xa, info = etkf_analysis(X, X[:, :1], np.array([0.5]), np.eye(1) * 0.1)
    >>> Xa.shape, info['K'].shape
    ((20, 2), (2, 1))
    """
    X = as_ensemble(X, "X", min_rows=2)
    N = X.shape[0]
    hz = as_ensemble(hz, "hz")
    if hz.shape[0] != N:
        raise ValueError(f"hz must have one row per member of X, shape ({N}, dim_z), got {hz.shape}")
    z = as_vector(z, "z", hz.shape[1])
    return _etkf_analysis(X, hz, z, R, inflation=inflation, rot=rot, rng=rng, xN=xN,
                          inflation_floor=inflation_floor, return_transform=return_transform)


def _etkf_analysis(X, hz, z, R, *, inflation=None, rot=False, rng=None, xN=1.0,
                   inflation_floor=None, return_transform=False):
    """:func:`etkf_analysis` of a checked ``X`` (N >= 2), ``hz`` (N, m) and ``z`` (m,)."""
    N, m = hz.shape
    L = check_whitening(R, m)
    inflation = check_inflation(inflation, INFLATIONS, minimum=0)
    if inflation_floor is not None:
        if inflation != 'finite-size':
            raise ValueError(f"inflation_floor bounds the estimated factor of "
                             f"inflation='finite-size'; got inflation={inflation!r}")
        inflation_floor = check_inflation(inflation_floor, (), minimum=0, name="inflation_floor")
    if not (isinstance(xN, numbers.Real) and np.isfinite(xN) and xN > 0):
        raise ValueError(f"xN must be a positive float, got {xN!r}")
    N1 = N - 1

    mu = X.mean(0)
    A = X - mu
    yb = hz.mean(0)
    U, s, Vt, dw = _whitened_svd(hz - yb, z - yb, L, yb)
    du = Vt @ dw
    if inflation is None:
        l1 = 1.0
    elif inflation == 'finite-size':
        l1 = finite_size_inflation(s, du, N, xN)
        if inflation_floor is not None:
            l1 = max(l1, inflation_floor)
    else:
        l1 = inflation
    l2 = l1 * l1
    dg = l2 * s ** 2 + N1                                    # eigenvalues of the ensemble-space Hessian

    w = mean_weights(U, s, du, l1)
    Aa = transform_anomalies(A, U, s, l1)
    Rot = None
    if rot and return_transform:
        Rot = mean_preserving_rotation(N, rng)
        Aa = Rot @ Aa
    elif rot:
        Aa = rotate_anomalies(Aa, rng)
    Xa = mu + w @ A + Aa

    # K = l^2 A^T U diag(s / dg) V^T L^-1, the gain of the inflated ensemble.
    M = ((l2 * (A.T @ U)) * (s / dg)) @ Vt
    K = triangular_solve(L, M.T, trans=True).T
    Cyy = (hz - yb).T @ (hz - yb) / N1
    S = l2 * Cyy + R
    logdet = 2.0 * np.log(np.diag(L)).sum() + np.log(dg / N1).sum()
    quad = dw @ dw - (du ** 2 * (l2 * s ** 2) / dg).sum()
    info = {'inflation': l1, 'K': K, 'S': S, 'w': w,
            'log_likelihood': float(-0.5 * (m * _LOG_2PI + logdet + quad))}
    if return_transform:
        c = np.sqrt(N1 / dg) - 1.0
        T = np.eye(N) + (U * c) @ U.T
        T = l1 * (T if Rot is None else Rot @ T)
        info['T'] = T
    return Xa, info

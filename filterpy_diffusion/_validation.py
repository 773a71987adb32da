"""Input checks and random-generator handling shared by every module.

Every check raises ``ValueError`` with a message that says what was wrong and
what was expected, so a user can fix the call without reading our code.
"""
from __future__ import annotations

import numbers
from typing import Optional, Union

import numpy as np
import numpy.typing as npt
from scipy.linalg import LinAlgError, lapack

__all__ = ["RngLike", "MAGNITUDE_HEADROOM", "magnitude_limit", "check_magnitude",
           "as_generator", "as_ensemble", "as_vector", "as_bandwidth", "as_covariance",
           "is_singular", "psd_factor", "cholesky_factor", "triangular_solve", "check_inflation"]

#: What every ``rng`` argument accepts: None (fresh OS entropy), an int seed,
#: a SeedSequence or a Generator (used as is).
RngLike = Union[None, int, np.random.SeedSequence, np.random.Generator]

#: Headroom of :func:`magnitude_limit`: inflation (variance x 10), sums
#: such as ``2 e - a (b_i + b_j)`` and chained products stay finite.
MAGNITUDE_HEADROOM = 64
_FLOAT_MAX = np.finfo(float).max


def magnitude_limit(n_terms: int) -> float:
    """Largest ``|value|`` whose squares, summed over ``n_terms`` terms, cannot overflow.

    ``sqrt(float max / (MAGNITUDE_HEADROOM * n_terms))``: the filters sum
    squared deviations, whitened distances and anomaly products over up to
    ``N * (dim_x + dim_z)`` terms (about 7e151 for N = 100 in 6 dimensions);
    beyond it they overflow to inf and later to NaN, far from the real cause.
    Variances (entries of P, Q, R) are limited by its square.
    """
    return float(np.sqrt(_FLOAT_MAX / (MAGNITUDE_HEADROOM * max(int(n_terms), 1))))


def check_magnitude(a: npt.ArrayLike, name: str, limit: float, squared: bool = False,
                    hint: str = "rescale the units of the model") -> None:
    """Raise ValueError if ``|a|`` exceeds ``limit`` (``limit ** 2`` for a covariance)."""
    if squared:
        limit = limit * limit
    a = np.asarray(a, dtype=float)
    if a.size and np.abs(a).max() > limit:
        kind = "entries" if squared else "values"
        raise ValueError(
            f"{name} has {kind} up to {np.max(np.abs(a)):.3g}, beyond the supported {limit:.2g}"
            f" (squared distances and covariances would overflow); {hint}")


def as_generator(rng: RngLike) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from ``None``, an int seed or a Generator.

    ``None`` draws fresh OS entropy (not the global numpy RNG).
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence)):
        return np.random.default_rng(rng)
    raise ValueError(
        f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def as_ensemble(a: npt.ArrayLike, name: str, dim: Optional[int] = None,
                min_rows: int = 1) -> np.ndarray:
    """Check an ensemble: a finite float array of shape (N, dim) with N >= min_rows."""
    a = np.asarray(a, dtype=float)
    if a.ndim == 1 and dim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, dim), got shape {a.shape}")
    if dim is not None and a.shape[1] != dim:
        hint = " (is it transposed?)" if a.shape[0] == dim else ""
        raise ValueError(
            f"{name} must have shape (N, {dim}), got {a.shape}{hint}")
    if a.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (members), got {a.shape[0]}")
    if not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name} must be finite; found {a[tuple(bad)]} at index {tuple(bad)}")
    return a


def as_vector(v: npt.ArrayLike, name: str, dim: int) -> np.ndarray:
    """Check a finite vector of length ``dim``; accepts (dim,), (dim, 1) or a scalar when dim == 1."""
    v = np.asarray(v, dtype=float)
    if v.ndim == 0 and dim == 1:
        v = v.reshape(1)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.shape != (dim,):
        raise ValueError(f"{name} must have shape ({dim},), got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite (no NaN or inf), got {v}")
    return v


def as_bandwidth(h: npt.ArrayLike, name: str, dim: int) -> np.ndarray:
    """A positive finite bandwidth: a scalar, or a vector of length ``dim`` (one per coordinate)."""
    h = np.asarray(h, dtype=float)
    if h.ndim == 1 and h.shape != (dim,):
        raise ValueError(f"{name} must be a positive scalar or have shape ({dim},), got {h.shape}")
    if h.ndim > 1:
        raise ValueError(f"{name} must be a positive scalar or a 1-D array, got shape {h.shape}")
    if not np.isfinite(h).all() or (h <= 0).any():
        raise ValueError(f"{name} must be positive and finite, got {h}")
    return h


def as_covariance(P: npt.ArrayLike, name: str, dim: int,
                  allow_singular: bool = True) -> np.ndarray:
    """Check a symmetric positive (semi-)definite (dim, dim) matrix; scalars mean P * I."""
    P = np.asarray(P, dtype=float)
    if P.ndim == 0:
        P = np.eye(dim) * P
    elif P.ndim == 1 and P.shape == (dim,):
        P = np.diag(P)
    if P.shape != (dim, dim):
        raise ValueError(f"{name} must have shape ({dim}, {dim}) or be a scalar, got {P.shape}")
    return _remembered(('cov', allow_singular), P, lambda: _checked_covariance(P, name, allow_singular))


def _checked_covariance(P, name, allow_singular):
    if not np.isfinite(P).all():
        raise ValueError(f"{name} must be finite")
    scale = max(np.abs(P).max(), np.finfo(float).tiny)
    if not (np.array_equal(P, P.T) or np.allclose(P, P.T, rtol=1e-8, atol=1e-12 * scale)):
        raise ValueError(f"{name} must be symmetric; max |{name} - {name}.T| = {np.abs(P - P.T).max():.3g}")
    eig = np.linalg.eigvalsh(0.5 * P + 0.5 * P.T)
    tol = -1e-10 * scale
    if eig.min() < tol or (not allow_singular and eig.min() <= 0):
        kind = "semi-definite" if allow_singular else "definite"
        raise ValueError(f"{name} must be positive {kind}; smallest eigenvalue is {eig.min():.3g}")
    return 0.5 * P + 0.5 * P.T


def is_singular(C: npt.ArrayLike) -> bool:
    """Whether a symmetric PSD matrix is singular to working precision.

    True if its smallest eigenvalue is at most ``dim * eps`` times its
    largest (or it is zero): a noise-free component of a measurement
    covariance R, which cannot be inverted.
    """
    C = np.atleast_2d(np.asarray(C, dtype=float))

    def singular():
        ev = np.linalg.eigvalsh(C)
        return bool(ev.min() <= len(ev) * np.finfo(float).eps * max(ev.max(), 0.0))
    return _remembered('singular', C, singular)


def psd_factor(C: npt.ArrayLike) -> np.ndarray:
    """A square root ``L`` with ``L @ L.T == C`` for a symmetric PSD matrix.

    An eigendecomposition rather than Cholesky, so singular covariances (a
    noise-free state component, ``Q = 0``) work; rounding can make tiny
    eigenvalues slightly negative, which are clipped to zero.
    """
    lam, V = np.linalg.eigh(C)
    return V * np.sqrt(lam.clip(0.0, None))


def cholesky_factor(R: npt.ArrayLike, why: str, fix: str) -> np.ndarray:
    """The lower Cholesky factor of a positive definite ``R``, or a ValueError.

    ``why`` says what needs the factor and ``fix`` what to do about a
    singular ``R``; the message names R's smallest eigenvalue.
    """
    R = np.atleast_2d(np.asarray(R, dtype=float))

    def factor():
        try:
            L = np.linalg.cholesky(R)
        except np.linalg.LinAlgError:
            L = None
        if L is None or np.any(np.diag(L) <= 0):
            raise ValueError(f"R must be positive definite {why}; it is singular (smallest "
                             f"eigenvalue {np.linalg.eigvalsh(R).min():.3g}). {fix}")
        return L
    return _remembered('cholesky', R, factor)


#: Results of the checks and factors above for the matrices seen last, by
#: content: one update checks the same R (and R / (1 - gamma)) five or six
#: times across the modules it passes through, an eigendecomposition each.
#: Failures raise and are not kept; arrays are returned as copies.
_REMEMBERED: dict = {}
_REMEMBERED_ENTRIES = 16
_REMEMBERED_MAX_SIZE = 4096
#: Larger matrices (the Q of a 1000-variable model) are kept apart, each
#: beside a copy it is compared with (O(d^2)) instead of a byte key: an
#: unchanged Q then costs predict() no O(d^3) check and factor (d = 1000:
#: 0.4 s per call before). Least recently used first out: an update's
#: R / (1 - gamma) changes every cycle and must not push out Q and R,
#: which take six entries between them.
_REMEMBERED_LARGE: list = []
_REMEMBERED_LARGE_ENTRIES = 12


def _remembered(kind, A, compute):
    if A.size > _REMEMBERED_MAX_SIZE:
        return _remembered_large(kind, A, compute)
    key = (kind, A.shape, A.tobytes())
    try:
        out = _REMEMBERED[key]
    except KeyError:
        out = compute()
        if len(_REMEMBERED) >= _REMEMBERED_ENTRIES:
            _REMEMBERED.pop(next(iter(_REMEMBERED)), None)
        _REMEMBERED[key] = out
    return out.copy() if isinstance(out, np.ndarray) else out


def _remembered_large(kind, A, compute):
    # A strided sample of about 64 entries rejects a different matrix
    # before the full O(d^2) comparison.
    step = max(1, A.size // 64)
    sample = A.ravel()[::step]
    for i, entry in enumerate(_REMEMBERED_LARGE):
        if (entry[0] == kind and entry[1].shape == A.shape
                and np.array_equal(entry[1].ravel()[::step], sample)
                and np.array_equal(entry[1], A)):
            out = entry[2]
            _REMEMBERED_LARGE.append(_REMEMBERED_LARGE.pop(i))
            break
    else:
        out = compute()
        if len(_REMEMBERED_LARGE) >= _REMEMBERED_LARGE_ENTRIES:
            _REMEMBERED_LARGE.pop(0)
        _REMEMBERED_LARGE.append((kind, A.copy(), out))
    return out.copy() if isinstance(out, np.ndarray) else out


def triangular_solve(L: np.ndarray, B: np.ndarray, lower: bool = True,
                     trans: bool = False) -> np.ndarray:
    """``scipy.linalg.solve_triangular(L, B, lower=lower, trans=trans)``, bit for bit, without its wrapper.

    The same LAPACK ``dtrtrs`` call with the same arguments (like scipy, a
    C-ordered ``L`` is passed transposed with ``lower`` and ``trans``
    flipped). At the sizes of one update (m = 3, N = 100) scipy's wrapper,
    with its finiteness checks and batching, costs five times the solve, and
    an update makes about twenty. ``L`` and ``B`` must be finite: callers
    pass validated ensembles and Cholesky factors.
    """
    L = np.asarray(L, dtype=float)
    B = np.asarray(B, dtype=float)
    if L.flags.f_contiguous:
        x, info = lapack.dtrtrs(L, B, lower=int(lower), trans=int(trans))
    else:
        x, info = lapack.dtrtrs(L.T, B, lower=int(not lower), trans=int(not trans))
    if info > 0:
        raise LinAlgError(f"singular triangular matrix: zero at diagonal {info - 1}")
    if info < 0:
        raise ValueError(f"illegal value in argument {-info} of LAPACK dtrtrs")
    return x


def check_inflation(inflation: Union[None, str, float], names: tuple,
                    minimum: float = 1.0, name: str = "inflation") -> Union[None, str, float]:
    """``inflation`` if it is None, one of ``names`` or a finite float ``>= minimum``, else a ValueError.

    ``minimum = 0`` means a positive factor (a deflation below 1 allowed).
    Numbers are returned as float. ``name``: the argument, for the message.
    """
    if inflation is None or (isinstance(inflation, str) and inflation in names):
        return inflation
    if (isinstance(inflation, numbers.Real) and not isinstance(inflation, bool)
            and np.isfinite(inflation) and (inflation > 0 if minimum == 0 else inflation >= minimum)):
        return float(inflation)
    bound = "> 0" if minimum == 0 else f">= {minimum:g}"
    choices = ", ".join([repr(n) for n in names] + ["None"])
    raise ValueError(f"{name} must be {choices} or a float {bound} (the anomaly "
                     f"factor), got {inflation!r}")

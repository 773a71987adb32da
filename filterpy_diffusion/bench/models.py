"""Dynamical systems and measurement operators of the benchmark, written for whole ensembles.

Everything here is written once for a whole ensemble (DAPPER style): a state
is ``(d,)``, an ensemble is ``(N, d)``, cyclic neighbours come from
``np.roll`` on the last axis and one RK4 step advances every member at once.

The models and measurement operators are module-level classes (frozen
dataclasses with ``__call__``), not lambdas or closures, so that filters
holding them can be pickled and shipped to worker processes. They are
filterpy's ``fx(x, dt)`` and ``hx(x)``: any filter of the package takes them.

References
----------
.. [1] E. N. Lorenz, "Deterministic nonperiodic flow", J. Atmos. Sci. 20
   (1963) 130-141.
.. [2] E. N. Lorenz, "Predictability: a problem partly solved", ECMWF
   Seminar on Predictability (1996).
.. [3] P. N. Raanes et al., DAPPER, https://github.com/nansencenter/DAPPER
"""
from dataclasses import dataclass
from typing import Tuple

import numpy as np

__all__ = [
    "lorenz63", "lorenz96", "rk4_step", "integrate",
    "LorenzModel", "RandomWalkModel",
    "IdentityObs", "AbsObs", "CubicObs", "ComponentObs",
]

# ---------------------------------------------------------------------------
# Tendencies and integration
# ---------------------------------------------------------------------------

def lorenz63(x, s=10.0, r=28.0, b=8.0 / 3.0):
    """Lorenz-63 tendency ``dx/dt``.

    ``dx = s (y - x)``, ``dy = x (r - z) - y``, ``dz = x y - b z``.

    Parameters
    ----------
    x : ndarray (3,) or (N, 3)
        One state or an ensemble (members in rows).
    s, r, b : float
        Prandtl number, Rayleigh number and geometric factor.

    Returns
    -------
    dxdt : ndarray, same shape as ``x``
    """
    x = np.asarray(x, dtype=float)
    if x.shape[-1:] != (3,):
        raise ValueError(f"lorenz63 needs states of length 3 in the last axis, got shape {x.shape}")
    x0, x1, x2 = x[..., 0], x[..., 1], x[..., 2]
    return np.stack([s * (x1 - x0), x0 * (r - x2) - x1, x0 * x1 - b * x2], axis=-1)


def lorenz96(x, F=8.0):
    """Lorenz-96 tendency ``dx_j = (x_{j+1} - x_{j-2}) x_{j-1} - x_j + F`` (cyclic).

    Parameters
    ----------
    x : ndarray (d,) or (N, d), d >= 4
        One state or an ensemble (members in rows).
    F : float
        Forcing.

    Returns
    -------
    dxdt : ndarray, same shape as ``x``
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 0 or x.shape[-1] < 4:
        # below 4 the neighbours j-2, j-1, j+1 are not distinct
        raise ValueError(f"lorenz96 needs d >= 4 in the last axis, got shape {x.shape}")
    # np.roll(x, k)[j] == x[j - k]
    xp1 = np.roll(x, -1, axis=-1)
    xm2 = np.roll(x, 2, axis=-1)
    xm1 = np.roll(x, 1, axis=-1)
    return (xp1 - xm2) * xm1 - x + F


def rk4_step(f, x, dt):
    """One classical fourth-order Runge-Kutta step of the autonomous ODE ``dx/dt = f(x)``.

    Parameters
    ----------
    f : callable
        Tendency, ``f(x) -> dxdt`` of the same shape as ``x``.
    x : ndarray (d,) or (N, d)
    dt : float

    Returns
    -------
    x_new : ndarray, same shape as ``x``
    """
    x = np.asarray(x, dtype=float)
    k1 = f(x)
    k2 = f(x + 0.5 * dt * k1)
    k3 = f(x + 0.5 * dt * k2)
    k4 = f(x + dt * k3)
    return x + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def integrate(f, x, dt, nsteps):
    """Advance ``x`` by ``nsteps`` RK4 steps of size ``dt``.

    Parameters
    ----------
    f : callable
        Tendency, ``f(x) -> dxdt``.
    x : ndarray (d,) or (N, d)
    dt : float
    nsteps : int, >= 0

    Returns
    -------
    x_new : ndarray, same shape as ``x`` (a new array even when ``nsteps == 0``)
    """
    if int(nsteps) != nsteps or nsteps < 0:
        raise ValueError(f"nsteps must be a non-negative integer, got {nsteps}")
    x = np.array(x, dtype=float)
    for _ in range(int(nsteps)):
        x = rk4_step(f, x, dt)
    return x


# ---------------------------------------------------------------------------
# Models (filterpy ``fx(x, dt)``) -- picklable
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LorenzModel:
    """Forecast model ``fx(x, dt)`` advancing one assimilation cycle of Lorenz-63/96.

    Parameters
    ----------
    system : {'l63', 'l96'}
    dt_int : float
        Internal RK4 step.
    obs_every : int
        RK4 steps per call (one cycle).
    F : float
        Lorenz-96 forcing (ignored for 'l63').

    Notes
    -----
    ``__call__(x, dt=None)`` takes ``x`` of shape (d,) or (N, d) and returns
    the same shape. The ``dt`` argument exists only to match filterpy's
    ``fx(x, dt)`` signature and is ignored: the cycle length is fixed by
    ``dt_int * obs_every`` so a filter cannot silently change the problem.

    Examples
    --------
    >>> fx = LorenzModel('l96', dt_int=0.05, obs_every=1)
    >>> fx(np.full(40, 8.0), dt=None)[:3]
    array([8., 8., 8.])
    """
    system: str
    dt_int: float
    obs_every: int
    F: float = 8.0

    def __post_init__(self):
        if self.system not in ("l63", "l96"):
            raise ValueError(f"system must be 'l63' or 'l96', got {self.system!r}")
        if not (np.isfinite(self.dt_int) and self.dt_int > 0):
            raise ValueError(f"dt_int must be positive, got {self.dt_int}")
        if int(self.obs_every) != self.obs_every or self.obs_every < 1:
            raise ValueError(f"obs_every must be a positive integer, got {self.obs_every}")

    def tendency(self, x):
        """``dx/dt`` for ``x`` of shape (d,) or (N, d)."""
        if self.system == "l63":
            return lorenz63(x)
        return lorenz96(x, self.F)

    def __call__(self, x, dt=None):
        return integrate(self.tendency, x, self.dt_int, self.obs_every)


@dataclass(frozen=True)
class RandomWalkModel:
    """Identity forecast ``fx(x, dt) = x`` of a random walk; its noise is the problem's ``Q``.

    ``__call__(x, dt=None)`` takes (d,) or (N, d) and returns a copy of the same shape.
    """

    def __call__(self, x, dt=None):
        return np.array(x, dtype=float)


# ---------------------------------------------------------------------------
# Measurement operators (filterpy ``hx(x)``) -- picklable
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class IdentityObs:
    """``hx(x) = x``; (d,) -> (d,), (N, d) -> (N, d)."""

    def __call__(self, x):
        return np.array(x, dtype=float)

    def dim_z(self, dim):
        """Observation size for a state of size ``dim``."""
        return dim


@dataclass(frozen=True)
class AbsObs:
    """``hx(x) = |x|`` componentwise; (d,) -> (d,), (N, d) -> (N, d)."""

    def __call__(self, x):
        return np.abs(np.asarray(x, dtype=float))

    def dim_z(self, dim):
        """Observation size for a state of size ``dim``."""
        return dim


@dataclass(frozen=True)
class CubicObs:
    """``hx(x) = x**3 / divisor`` componentwise; (d,) -> (d,), (N, d) -> (N, d).

    Parameters
    ----------
    divisor : float
        100 for l63-cubic, 10 for l96-20-cubic.
    """
    divisor: float = 1.0

    def __post_init__(self):
        if not (np.isfinite(self.divisor) and self.divisor != 0):
            raise ValueError(f"divisor must be finite and non-zero, got {self.divisor}")

    def __call__(self, x):
        return np.asarray(x, dtype=float) ** 3 / self.divisor

    def dim_z(self, dim):
        """Observation size for a state of size ``dim``."""
        return dim


@dataclass(frozen=True)
class ComponentObs:
    """Observe some components: ``hx(x) = x[..., indices]``.

    Parameters
    ----------
    indices : tuple of int
        ``(2,)`` observes z only (l63-z).

    Notes
    -----
    (d,) -> (m,), (N, d) -> (N, m) with ``m = len(indices)``; a single index
    still gives a trailing axis of length 1, so ``z`` is always a vector.
    """
    indices: Tuple[int, ...] = (0,)

    def __post_init__(self):
        idx = tuple(int(i) for i in np.atleast_1d(self.indices))
        if not idx:
            raise ValueError("indices must name at least one component")
        object.__setattr__(self, "indices", idx)

    def __call__(self, x):
        return np.asarray(x, dtype=float)[..., list(self.indices)]

    def dim_z(self, dim):
        """Observation size for a state of size ``dim``."""
        return len(self.indices)


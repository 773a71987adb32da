"""The taper and the local observation lists of every state variable.

Observation ``l`` at distance ``r_jl`` from state variable ``j`` enters
domain ``j`` with the taper weight ``rho(r_jl / c)`` (Gaspari-Cohn by
default: 0 from ``2c`` on); :class:`LocalObs` holds every domain's list,
padded to one ``(d, k_max)`` shape so the local algebra can be batched.
"""
from dataclasses import dataclass
import numbers

import numpy as np

__all__ = ["gaspari_cohn", "LocalObs", "local_observations", "local_observations_from_callable",
           "DEFAULT_RADIUS"]


#: Default Gaspari-Cohn half-width ``c`` in grid points (taper 0.21 at c, 0
#: from 2c = 14 on). Measured for the local KDE filter on l96-40 (tuning
#: seeds 0-2, 500 cycles; ``python benchmarks/localization.py --dims 40
#: --N 10 20 40 --seeds 0 1 2 --cycles 500 --spinup 100 --filters
#: ldkf:radius=4 ...``), RMSE for c = 4 / 5 / 6 / 7 / 8:
#: N = 10: 0.250 / 0.252 / 0.237 / 0.234 / 0.235;
#: N = 20: 0.234 / 0.233 / 0.210 / 0.205 / 0.204;
#: N = 40: 0.226 / 0.214 / 0.203 / 0.198 / 0.195.
#: c = 7 is within 0.003 of the best at every N and cheaper than 8 (the
#: cost grows with the 2 (2c - 1) + 1 local observations). It matches the
#: "localization radius 4" of the LETKF literature, whose taper is
#: exp(-1/2) at the radius: c = 1.82 * 4 = 7.3 in this convention.
DEFAULT_RADIUS = 7.0


def gaspari_cohn(r):
    """Gaspari-Cohn fifth-order piecewise rational taper (GC99 eq. 4.10).

    Parameters
    ----------
    r : float or ndarray
        Distance divided by the half-width ``c`` (``r = dist / c``); the sign
        is ignored.

    Returns
    -------
    rho : float or ndarray, same shape as ``r``
        1 at ``r = 0``, decreasing, 0 for ``r >= 2`` (distance >= 2c): a
        compactly supported correlation function (positive definite in up to
        three dimensions), close to ``exp(-(dist/c)^2 * 5/6)`` near 0.

    Notes
    -----
    For ``0 <= r <= 1``: ``-r^5/4 + r^4/2 + 5 r^3/8 - 5 r^2/3 + 1``;
    for ``1 < r < 2``: ``r^5/12 - r^4/2 + 5 r^3/8 + 5 r^2/3 - 5 r + 4 - 2/(3 r)``.

    Examples
    --------
    >>> import numpy as np
    >>> from filterpy_diffusion.localization import gaspari_cohn
    >>> gaspari_cohn(np.array([0.0, 1.0, 2.0, 3.0])).round(4)
    array([1.    , 0.2083, 0.    , 0.    ])
    """
    r = np.abs(np.asarray(r, dtype=float))
    out = np.zeros_like(r)
    inner = r <= 1.0
    outer = (r > 1.0) & (r < 2.0)
    x = r[inner]
    out[inner] = (((-0.25 * x + 0.5) * x + 0.625) * x - 5.0 / 3.0) * x * x + 1.0
    x = r[outer]
    out[outer] = ((((x / 12.0 - 0.5) * x + 0.625) * x + 5.0 / 3.0) * x - 5.0) * x + 4.0 \
        - 2.0 / (3.0 * x)
    # Rounding near r = 2 can leave -1e-16; a taper is never negative.
    np.maximum(out, 0.0, out=out)
    return out if out.ndim else float(out)


@dataclass(frozen=True, eq=False)
class LocalObs:
    """Local observation lists of every state variable, padded for batching.

    Attributes
    ----------
    indices : ndarray (d, k_max) of int
        Row j: indices of the observations that domain j uses (padding: 0).
    taper : ndarray (d, k_max)
        Their taper weights ``rho`` in (0, 1] (padding: 0).
    mask : ndarray (d, k_max) of bool
        True for real entries, False for padding.

    Notes
    -----
    ``k_max >= 1`` even when no domain sees an observation, so the batched
    arrays are never empty; a row of padding leaves its variable unchanged
    by the analysis (its weights are uniform and its Kalman gain is 0).
    """
    indices: np.ndarray
    taper: np.ndarray
    mask: np.ndarray

    def __post_init__(self):
        idx = np.array(self.indices, dtype=np.intp)
        tap = np.array(self.taper, dtype=float)
        mask = np.array(self.mask, dtype=bool)
        if idx.ndim != 2 or idx.shape[1] < 1 or tap.shape != idx.shape or mask.shape != idx.shape:
            raise ValueError(f"indices, taper and mask must share one shape (d, k_max >= 1), got "
                             f"{idx.shape}, {tap.shape}, {mask.shape}")
        if np.any(idx < 0):
            raise ValueError("observation indices must be >= 0")
        if not np.all(np.isfinite(tap)) or np.any(tap[mask] <= 0) or np.any(tap > 1):
            raise ValueError("taper weights of real entries must be in (0, 1]")
        tap[~mask] = 0.0
        idx[~mask] = 0
        for name, a in (("indices", idx), ("taper", tap), ("mask", mask)):
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    @property
    def dim_x(self):
        """Number of local domains (state variables)."""
        return self.indices.shape[0]

    @property
    def k_max(self):
        """Padded number of observations per domain."""
        return self.indices.shape[1]

    @property
    def counts(self):
        """ndarray (d,): number of observations in each domain."""
        return self.mask.sum(axis=1)

    def lists(self):
        """Unpadded ``[(indices_j, taper_j), ...]`` per domain."""
        return [(self.indices[j][self.mask[j]], self.taper[j][self.mask[j]])
                for j in range(self.dim_x)]

    def observed(self, idx):
        """The lists for a measurement of the components ``idx`` only (missing observations).

        Entries of observations not in ``idx`` are dropped and the others
        renumbered to positions in ``idx``, keeping their order and taper:
        the same lists as built from the observed components' positions.
        """
        idx = np.asarray(idx, dtype=np.intp)
        new = np.full(max(int(self.indices.max()), int(idx.max()) if idx.size else 0) + 1, -1, np.intp)
        new[idx] = np.arange(idx.size)
        ren = np.where(self.mask, new[self.indices], -1)
        keep = ren >= 0
        k_max = max(1, int(keep.sum(axis=1).max()))
        # A stable sort moves each row's kept entries first, in their order.
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k_max]
        mask = np.take_along_axis(keep, order, axis=1)
        return LocalObs(np.where(mask, np.take_along_axis(ren, order, axis=1), 0),
                        np.where(mask, np.take_along_axis(self.taper, order, axis=1), 0.0), mask)

    def check(self, dim_x, dim_z):
        """Raise ValueError unless these lists fit a (dim_x,) state and (dim_z,) measurement."""
        if self.dim_x != dim_x:
            raise ValueError(f"local observation lists are for {self.dim_x} state variables, "
                             f"the state has dim_x = {dim_x}")
        if self.mask.any() and self.indices[self.mask].max() >= dim_z:
            raise ValueError(f"local observation index {self.indices[self.mask].max()} is out of "
                             f"range for dim_z = {dim_z}")


def _positions(p, n, name):
    p = np.asarray(p, dtype=float)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim != 1 or p.shape[0] != n:
        raise ValueError(f"{name} must have one position per {'state variable' if name.startswith('state') else 'observation'}: "
                         f"shape ({n},), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} must be finite")
    return p


def _check_radius(radius):
    if isinstance(radius, bool) or not isinstance(radius, numbers.Real) \
            or not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius (the taper's half-width c, in the units of the positions) must be a "
                         f"positive finite number, got {radius!r}")
    return float(radius)


def _local_radius(radius, local_obs):
    """The taper half-width: DEFAULT_RADIUS for None; an error with local_obs, which has its own weights."""
    if radius is None:
        return DEFAULT_RADIUS
    if local_obs is not None:
        raise ValueError(f"radius sets the taper of state_positions/obs_positions; local_obs "
                         f"brings its own taper weights, so radius={radius!r} would be ignored; "
                         f"drop radius")
    return _check_radius(radius)


def _pack(within, taper):
    """Padded (d, k_max) lists from a (d, m) membership matrix and taper values."""
    d = within.shape[0]
    k_max = max(1, int(within.sum(axis=1).max())) if within.size else 1
    if within.shape[1] == 0:
        return LocalObs(np.zeros((d, 1), np.intp), np.zeros((d, 1)), np.zeros((d, 1), bool))
    # A stable sort puts each row's members first, in observation order.
    order = np.argsort(~within, axis=1, kind="stable")[:, :k_max]
    mask = np.take_along_axis(within, order, axis=1)
    tap = np.where(mask, np.take_along_axis(taper, order, axis=1), 0.0)
    return LocalObs(np.where(mask, order, 0), tap, mask)


def local_observations(state_positions, obs_positions, radius, domain_length=None,
                       taper=gaspari_cohn):
    """Observations within the taper's support of every state variable, with their weights.

    Parameters
    ----------
    state_positions : ndarray (d,)
        Position of every state variable on a line (or circle).
    obs_positions : ndarray (m,)
        Position of every observation.
    radius : float > 0
        Half-width ``c`` of the taper: the weight of an observation at
        distance ``r`` is ``taper(r / c)``; Gaspari-Cohn is 0 from ``r = 2c``
        on, so each domain keeps the observations closer than ``2c``.
    domain_length : float > 0, optional
        Length ``L`` of a periodic domain (Lorenz-96: ``L = d`` with
        positions ``0, ..., d - 1``): distances wrap around,
        ``min(|s - o| mod L, L - |s - o| mod L)``. None: distances on a line.
    taper : callable ``taper(r) -> rho``, default :func:`gaspari_cohn`
        Vectorized, ``rho(0) = 1``, in [0, 1]; observations with ``rho = 0``
        are left out.

    Returns
    -------
    LocalObs
        ``indices``, ``taper``, ``mask`` of shape (d, k_max).

    Examples
    --------
    >>> import numpy as np
    >>> from filterpy_diffusion.localization import local_observations
    >>> loc = local_observations(np.arange(10), np.arange(10), radius=1.0, domain_length=10)
    >>> loc.indices[0][loc.mask[0]]
    array([0, 1, 9])
    """
    radius = _check_radius(radius)
    s = _positions(state_positions, np.size(state_positions), "state_positions")
    o = _positions(obs_positions, np.size(obs_positions), "obs_positions")
    dist = np.abs(s[:, None] - o[None, :])
    if domain_length is not None:
        L = float(domain_length)
        if not np.isfinite(L) or L <= 0:
            raise ValueError(f"domain_length must be a positive number (periodic domain), got {domain_length!r}")
        dist = np.mod(dist, L)
        dist = np.minimum(dist, L - dist)
    rho = np.asarray(taper(dist / radius), dtype=float)
    if rho.shape != dist.shape or not np.all(np.isfinite(rho)) or np.any(rho < 0) or np.any(rho > 1 + 1e-12):
        raise ValueError("taper must map an array of distances / radius to weights in [0, 1] of the same shape")
    rho = np.minimum(rho, 1.0)
    return _pack(rho > 0, rho)


def local_observations_from_callable(local_obs, dim_x, dim_z):
    """Padded lists from a callable ``local_obs(j) -> (indices, weights)``, j = 0 .. dim_x - 1.

    ``indices`` are distinct observation indices in ``[0, dim_z)`` and
    ``weights`` their taper weights in (0, 1] (the same length).
    """
    if not callable(local_obs):
        raise TypeError(f"local_obs must be callable, got {type(local_obs).__name__}")
    rows = []
    for j in range(dim_x):
        out = local_obs(j)
        try:
            idx, w = out
        except (TypeError, ValueError):
            raise ValueError(f"local_obs({j}) must return (indices, weights), got {out!r}") from None
        idx = np.atleast_1d(np.asarray(idx))
        w = np.atleast_1d(np.asarray(w, dtype=float))
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"local_obs({j}) returned non-integer indices {idx}")
        if idx.ndim != 1 or w.shape != idx.shape:
            raise ValueError(f"local_obs({j}) must return 1-D indices and weights of the same length, "
                             f"got shapes {idx.shape} and {w.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= dim_z or len(np.unique(idx)) != idx.size):
            raise ValueError(f"local_obs({j}) returned indices {idx}; expected distinct integers in [0, {dim_z})")
        if not np.all(np.isfinite(w)) or np.any(w <= 0) or np.any(w > 1):
            raise ValueError(f"local_obs({j}) returned weights {w}; expected values in (0, 1]")
        rows.append((idx.astype(np.intp), w))
    k_max = max([1] + [len(r[0]) for r in rows])
    indices = np.zeros((dim_x, k_max), np.intp)
    tap = np.zeros((dim_x, k_max))
    mask = np.zeros((dim_x, k_max), bool)
    for j, (idx, w) in enumerate(rows):
        indices[j, :idx.size], tap[j, :idx.size], mask[j, :idx.size] = idx, w, True
    return LocalObs(indices, tap, mask)


def _build_local(dim_x, dim_z, state_positions, obs_positions, domain_length, local_obs, radius):
    if local_obs is not None:
        if state_positions is not None or obs_positions is not None or domain_length is not None:
            raise ValueError("give either local_obs or state_positions/obs_positions/domain_length, not both")
        loc = local_obs if isinstance(local_obs, LocalObs) else \
            local_observations_from_callable(local_obs, dim_x, dim_z)
        loc.check(dim_x, dim_z)
        return loc
    if state_positions is None or obs_positions is None:
        raise ValueError(
            "localization needs state_positions (dim_x,) and obs_positions (dim_z,) (with "
            "domain_length for a periodic domain), or a local_obs callable; e.g. for Lorenz-96 "
            "observed everywhere: state_positions=np.arange(d), obs_positions=np.arange(d), "
            "domain_length=d")
    s = _positions(state_positions, dim_x, "state_positions")
    o = _positions(obs_positions, dim_z, "obs_positions")
    return local_observations(s, o, radius, domain_length)


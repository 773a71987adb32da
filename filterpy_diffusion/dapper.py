"""Our filters as DAPPER methods: ``xps += DiffusionKDE(N=20)`` beside ``xps += EnKF_N(N=20)``.

`DAPPER <https://github.com/nansencenter/DAPPER>`_ (>= 1.8.1, Python >=
3.12; ``pip install filterpy-diffusion[dapper]``) is the data-assimilation
field's benchmark suite: its methods are dataclasses derived from
``dapper.da_methods.da_method`` that take a ``HiddenMarkovModel`` and fill
``xp.stats``. :class:`DiffusionKDE` and :class:`LocalDiffusionKDE` are such
methods, wrapping :class:`~filterpy_diffusion.DiffusionKDEFilter` and
:class:`~filterpy_diffusion.LocalDiffusionKDEFilter`, so they work in
``xpList``, ``xp.assimilate(HMM, xx, yy)``, ``xp.stats.average_in_time()``,
``xp.avrgs.rmse.a``, ``tabulate_avrgs()`` and DAPPER's plotting.

Every keyword option of the underlying filter is a dataclass field of the
method, with the filter's default (so ``xpList`` tables show the options
in which experiments differ, and ``dapper.xp_launch.combinator`` can vary
them); the fields are read from the filter's signature, so new options
appear here by themselves.

How a DAPPER twin experiment drives the filter (as DAPPER's ``EnKF``):

* the initial ensemble is ``HMM.X0.sample(N)``;
* at every model step ``(k, ko, t, dt)`` of ``HMM.tseq.ticker`` the filter's
  ``predict()`` runs ``fx(E, dt) = HMM.Dyn(E, t - dt, dt)`` on the whole
  ensemble (``vectorized=True``) and adds process noise of covariance
  ``dt * HMM.Dyn.noise.C`` (DAPPER's ``'Stoch'`` treatment);
* at an observation time ``ko`` the filter's ``update(yy[ko], R)`` uses
  ``hx = HMM.Obs(ko)`` and ``R = HMM.Obs(ko).noise.C``;
* ``stats.assess`` records the forecast (``'f'``) and analysis (``'a'``) at
  every ``ko`` and the ensemble at every step (``'i'``), with the member
  weights when they are not uniform.

Randomness follows DAPPER's convention: DAPPER draws from its own generator
``dapper.tools.seeding.rng``, set by ``dapper.set_seed(sd)``. The initial
ensemble comes from it, and so does the seed of the filter's own
``numpy.random.Generator`` (one draw right after the initial ensemble), so
``set_seed(sd)`` before ``assimilate`` makes a run bit-identical. The field
``rng`` (an int) gives the filter a fixed seed instead.

Examples
--------
>>> import dapper as dpr                                    # doctest: +SKIP
>>> import dapper.da_methods as da                          # doctest: +SKIP
>>> from dapper.mods.Lorenz63.sakov2012 import HMM          # doctest: +SKIP
>>> from filterpy_diffusion.dapper import DiffusionKDE     # doctest: +SKIP
>>> HMM = HMM.copy(); HMM.tseq.Ko = 100                     # doctest: +SKIP
>>> dpr.set_seed(3000); xx, yy = HMM.simulate()             # doctest: +SKIP
>>> xps = dpr.xpList()                                      # doctest: +SKIP
>>> xps += da.EnKF_N(N=20, rot=True)                        # doctest: +SKIP
>>> xps += DiffusionKDE(N=20)                               # doctest: +SKIP
>>> for xp in xps:                                          # doctest: +SKIP
...     xp.assimilate(HMM, xx, yy); xp.stats.average_in_time()
>>> print(xps.tabulate_avrgs(["rmse.a", "rmv.a"]))          # doctest: +SKIP
"""
from __future__ import annotations

import inspect
import numbers
from collections.abc import Iterable
from typing import Any, Callable

import numpy as np

try:
    import dapper.tools.seeding as _seeding
    from dapper.da_methods import da_method
    from dapper.tools.progressbar import progbar
except ImportError as err:  # pragma: no cover - exercised only without DAPPER
    raise ImportError(
        "filterpy_diffusion.dapper needs DAPPER (>= 1.8.1, Python >= 3.12): "
        "pip install filterpy-diffusion[dapper]") from err

from .ensemble import ensemble_moments
from .filter import DiffusionKDEFilter
from .localization import (DEFAULT_RADIUS, LocalDiffusionKDEFilter, LocalObs,
                           local_observations_from_callable)

__all__ = ["DiffusionKDE", "LocalDiffusionKDE", "GC_RADIUS_FACTOR", "DEFAULT_LOC_RAD",
           "filter_options", "localizer_local_obs"]

#: DAPPER's Gaspari-Cohn taper (``dapper.tools.localization.dist2coeff``,
#: tag ``'GC'``) has half-width ``c = 1.82 * loc_rad`` (so that the taper is
#: ``exp(-1/2)`` at ``loc_rad``); our ``radius`` is ``c`` itself.
GC_RADIUS_FACTOR = 1.82
#: Default ``loc_rad`` of :class:`LocalDiffusionKDE`: the DAPPER radius whose
#: Gaspari-Cohn taper is our default half-width
#: :data:`~filterpy_diffusion.localization.DEFAULT_RADIUS` (7 / 1.82 = 3.85,
#: about the ``loc_rad=4`` used with DAPPER's LETKF on Lorenz-96).
DEFAULT_LOC_RAD = DEFAULT_RADIUS / GC_RADIUS_FACTOR

# Options the adapter sets itself: the generator (from DAPPER's seeding),
# whole-ensemble calls of HMM.Dyn / HMM.Obs, and measurements from HMM.Obs + R.
_ADAPTER_SET = frozenset({"rng", "vectorized", "simulate", "simulations"})
# The local filter's geometry comes from HMM.Obs.localizer (see loc_rad).
_LOCAL_GEOMETRY = frozenset({"state_positions", "obs_positions", "domain_length", "local_obs",
                             "radius"})


def filter_options(filter_cls: type, exclude: Iterable[str] = ()) -> dict:
    """Keyword options of a filter's constructor, with their defaults.

    Parameters
    ----------
    filter_cls : type
        :class:`~filterpy_diffusion.DiffusionKDEFilter` or
        :class:`~filterpy_diffusion.LocalDiffusionKDEFilter`.
    exclude : iterable of str
        Names to leave out.

    Returns
    -------
    dict
        ``{name: default}`` of the keyword-only parameters, in signature order.
    """
    exclude = set(exclude)
    return {p.name: p.default for p in inspect.signature(filter_cls.__init__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in exclude}


def localizer_local_obs(localizer: Callable, dim_x: int, dim_z: int, loc_rad: float,
                        taper: str = "GC") -> LocalObs:
    """Our padded local observation lists from a DAPPER ``Obs.localizer``.

    Parameters
    ----------
    localizer : callable
        DAPPER's ``localizer(radius, direction, tag)`` (e.g. from
        ``dapper.tools.localization.nd_Id_localization``): with direction
        ``'x2y'`` it returns ``(batches, obs_taperer)``, the state index
        batches and a function of a batch giving its observation indices
        and taper coefficients.
    dim_x, dim_z : int
        State and observation dimensions.
    loc_rad : float > 0
        DAPPER's localization radius.
    taper : str, default 'GC'
        DAPPER's taper tag (``'GC'``, ``'Gauss'``, ``'Step'``, ...).

    Returns
    -------
    LocalObs
        Every state variable gets the observations and taper weights of
        its batch, exactly as DAPPER's ``LETKF`` analyses that batch.
    """
    if isinstance(loc_rad, bool) or not isinstance(loc_rad, numbers.Real) \
            or not np.isfinite(loc_rad) or loc_rad <= 0:
        raise ValueError(f"loc_rad must be a positive finite number (DAPPER's localization "
                         f"radius), got {loc_rad!r}")
    batches, obs_taperer = localizer(loc_rad, "x2y", taper)
    owner = np.full(dim_x, -1)
    for b, batch in enumerate(batches):
        owner[np.asarray(batch, dtype=np.intp)] = b
    if np.any(owner < 0):
        raise ValueError(f"HMM.Obs.localizer's batches leave state variables "
                         f"{np.flatnonzero(owner < 0)} without a batch")
    lists = [obs_taperer(batch) for batch in batches]
    return local_observations_from_callable(lambda j: lists[owner[j]], dim_x, dim_z)


def _generator(spec):
    if spec is None:
        # One draw from DAPPER's generator: dapper.set_seed fixes the run.
        return np.random.default_rng(int(_seeding.rng.integers(2 ** 63)))
    if isinstance(spec, bool) or not isinstance(spec, numbers.Integral):
        raise ValueError(f"rng must be None (seed from DAPPER's generator) or an int seed, "
                         f"got {spec!r}")
    return np.random.default_rng(int(spec))


def _weights(w, carries_weights):
    # DAPPER's Stats drops its weight series the first time it is given
    # w=None, so a filter that may carry weights later (the bridge, which
    # is also the default's one-mode update) always passes them, as
    # DAPPER's PartFilt does.
    if carries_weights:
        return w
    return None if np.all(w == w[0]) else w


def _noise_cov(noise, dim):
    C = noise.C
    if isinstance(C, numbers.Number) and C == 0:
        return np.zeros((dim, dim))
    return np.array(C.full, dtype=float)


def _run(xp, HMM, yy, filter_cls, options, local_obs=None):
    """Drive ``filter_cls`` through DAPPER's time sequence, filling ``xp.stats``."""
    tseq = HMM.tseq
    E = HMM.X0.sample(xp.N)
    rng = _generator(xp.rng)

    step = {"t0": 0.0}      # start time of the current model step

    def fx(E, dt):
        return HMM.Dyn(E, step["t0"], dt)

    Obs = HMM.Obs(0)
    x, P = ensemble_moments(E)
    extra = {} if local_obs is None else {"local_obs": local_obs(Obs)}
    f = filter_cls(x, P, Obs.M, tseq.dt, xp.N, Obs, fx, rng=rng, vectorized=True,
                   **options, **extra)
    # The filter's constructor drew an ensemble from N(x, P); DAPPER's X0 sample replaces it.
    f.sigmas = np.array(E, dtype=float)
    f.x, f.P = x, P
    # The bridge (kernel='bridge', and the default's one-mode update) carries weights.
    carries_weights = bool(getattr(f, "carries_weights", False))
    xp.stats.assess(0, E=E, w=_weights(np.full(xp.N, 1.0 / xp.N), carries_weights))
    Qc = _noise_cov(HMM.Dyn.noise, HMM.Dyn.M)
    for k, ko, t, dt in progbar(tseq.ticker):
        step["t0"] = t - dt
        f.dt = dt
        f.Q = dt * Qc
        f.predict()
        if ko is not None:
            xp.stats.assess(k, ko, "f", E=f.sigmas, w=_weights(f.weights, carries_weights))
            now = HMM.Obs(ko)
            if now is not Obs:      # a time-dependent operator
                if now.M != f.dim_z:
                    raise ValueError(f"HMM.Obs({ko}) has {now.M} observations, HMM.Obs(0) has "
                                     f"{f.dim_z}; a time-varying observation dimension is not "
                                     f"supported")
                Obs = now
                f.hx = Obs
                if local_obs is not None:
                    f.local = local_obs(Obs)
            f.update(yy[ko], R=_noise_cov(Obs.noise, Obs.M))
        xp.stats.assess(k, ko, E=f.sigmas, w=_weights(f.weights, carries_weights))


def _make_method(name, filter_cls, exclude, extra, assimilate, doc):
    annotations = {"N": int}
    namespace = {"__module__": __name__, "__qualname__": name, "__doc__": doc}
    for key, default in {**filter_options(filter_cls, _ADAPTER_SET | set(exclude)),
                         **extra}.items():
        annotations[key] = Any
        namespace[key] = default
    annotations["rng"] = Any
    namespace["rng"] = None
    namespace["__annotations__"] = annotations
    namespace["assimilate"] = assimilate
    return type(name, (da_method,), namespace)


def _options(xp, filter_cls, exclude):
    return {key: getattr(xp, key) for key in filter_options(filter_cls, _ADAPTER_SET | set(exclude))}


def _assimilate_global(self, HMM, xx, yy):
    _run(self, HMM, yy, DiffusionKDEFilter, _options(self, DiffusionKDEFilter, ()))


def _assimilate_local(self, HMM, xx, yy):
    def local_obs(Obs):
        if getattr(Obs, "localizer", None) is None:
            raise ValueError(
                "LocalDiffusionKDE takes its geometry from HMM.Obs.localizer, which is None for "
                "this HMM; set one, e.g. Obs.localizer = "
                "dapper.tools.localization.nd_Id_localization((Nx,), (1,)) for a periodic 1-D "
                "grid observed everywhere")
        return localizer_local_obs(Obs.localizer, HMM.Dyn.M, Obs.M, self.loc_rad, self.taper)
    _run(self, HMM, yy, LocalDiffusionKDEFilter,
         _options(self, LocalDiffusionKDEFilter, _LOCAL_GEOMETRY), local_obs)


_COMMON_DOC = """
    Parameters
    ----------
    N : int
        Ensemble size, >= 2.
    rng : None or int, default None
        None: the filter's generator is seeded by one draw from DAPPER's
        ``dapper.tools.seeding.rng`` (so ``dapper.set_seed`` governs the
        run); an int seeds it directly.
    **options
        Any keyword option of :class:`~filterpy_diffusion.{cls}` except
        ``rng``, ``vectorized`` and ``simulate`` (set by the adapter){more};
        each is a dataclass field with the filter's default.

    Attributes
    ----------
    stats, avrgs
        DAPPER's statistics, after ``assimilate`` / ``stats.average_in_time()``.
"""

DiffusionKDE = _make_method(
    "DiffusionKDE", DiffusionKDEFilter, (), {}, _assimilate_global,
    "DAPPER method running :class:`~filterpy_diffusion.DiffusionKDEFilter` (global analysis).\n"
    + _COMMON_DOC.format(cls="DiffusionKDEFilter", more="")
    + """
    Examples
    --------
    >>> xps += DiffusionKDE(N=20)                               # doctest: +SKIP
    >>> xps += DiffusionKDE(N=20, kernel='enkpf')               # doctest: +SKIP
    """)

LocalDiffusionKDE = _make_method(
    "LocalDiffusionKDE", LocalDiffusionKDEFilter, _LOCAL_GEOMETRY,
    {"loc_rad": DEFAULT_LOC_RAD, "taper": "GC"}, _assimilate_local,
    "DAPPER method running :class:`~filterpy_diffusion.LocalDiffusionKDEFilter`.\n\n"
    "    The geometry is DAPPER's: ``HMM.Obs.localizer(loc_rad, 'x2y', taper)`` (as for\n"
    "    DAPPER's ``LETKF``) gives every state batch its observations and taper weights,\n"
    "    so it runs on e.g. ``Lorenz96.sakov2008`` with no geometry arguments.\n"
    + _COMMON_DOC.format(
        cls="LocalDiffusionKDEFilter",
        more=" and the geometry (``state_positions``, ``obs_positions``, ``domain_length``, "
             "``local_obs``, ``radius``)")
    + """    loc_rad : float > 0, default :data:`DEFAULT_LOC_RAD` (3.85)
        DAPPER's localization radius; with ``taper='GC'`` the Gaspari-Cohn
        half-width is ``1.82 * loc_rad`` (our default radius 7 at 3.85).
    taper : str, default 'GC'
        DAPPER's taper tag.

    Examples
    --------
    >>> from dapper.mods.Lorenz96.sakov2008 import HMM          # doctest: +SKIP
    >>> xps += LocalDiffusionKDE(N=20)                          # doctest: +SKIP
    >>> xps += LETKF(N=20, infl=1.02, rot=True, loc_rad=4)      # doctest: +SKIP
    """)

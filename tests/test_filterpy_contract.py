"""filterpy's EnsembleKalmanFilter contract on every ensemble filter: K, S, SI, inv, initialize.

Reference values come from filterpy's own ``EnsembleKalmanFilter`` run on the
same forecast ensemble, never from this package's output.
"""
import numpy as np
import pytest
from filterpy.kalman import EnsembleKalmanFilter

from filterpy_diffusion import DiffusionKDEFilter
from filterpy_diffusion.ensemble import ensemble_gain
from filterpy_diffusion.localization import LETKF, LocalDiffusionKDEFilter, LocalObs
from filterpy_diffusion.particle import ParticleFilter

DIM_X, DIM_Z = 3, 2
HM = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])


def fx(x, dt):
    # Mildly nonlinear, so the ensemble is not Gaussian after a few cycles.
    return x + dt * np.sin(x[..., ::-1])


def hx(x):
    return x @ HM.T


def local_obs(j):
    return np.array([0, 1]), np.array([1.0, 0.5])


def make(cls, seed=0, N=30, **kw):
    if cls in (LETKF, LocalDiffusionKDEFilter):
        kw.setdefault("local_obs", local_obs)
    f = cls(np.array([0.5, -0.2, 1.0]), np.eye(DIM_X), DIM_Z, 0.3, N, hx, fx, rng=seed, **kw)
    f.Q = 0.05 * np.eye(DIM_X)
    f.R = np.array([[0.3, 0.05], [0.05, 0.2]])
    return f


# Inflation off, so the analysis sees exactly the forecast filterpy sees.
FILTERS = [
    (DiffusionKDEFilter, dict(inflation=None)),
    (DiffusionKDEFilter, dict(inflation=None, kernel='covariance')),
    (DiffusionKDEFilter, dict(inflation=None, kernel='isotropic')),
    (DiffusionKDEFilter, dict(inflation=None, kernel='bridge')),
    (ParticleFilter, {}),
    (LocalDiffusionKDEFilter, dict(inflation=None)),
    (LETKF, dict(inflation=None)),
]
IDS = ["dkf", "dkf-cov", "dkf-iso", "dkf-bridge", "pf", "ldkf", "letkf"]
ZS = [np.array([0.6, 0.3]), np.array([0.9, 0.1]), np.array([1.4, -0.2]), np.array([1.7, 0.4])]


def filterpy_enkf(ens, R):
    e = EnsembleKalmanFilter(ens.mean(0), np.eye(DIM_X), DIM_Z, 0.3, len(ens), hx, fx)
    e.sigmas = ens.copy()
    e.x = ens.mean(0)
    e.R = R.copy()
    return e


@pytest.mark.parametrize("cls, kw", FILTERS, ids=IDS)
def test_attributes_have_filterpys_shapes_and_start_at_zero(cls, kw):
    ref = filterpy_enkf(np.zeros((30, DIM_X)), np.eye(DIM_Z))
    f = make(cls, **kw)
    assert f.inv is np.linalg.inv
    for name in ("K", "S", "SI"):
        assert getattr(f, name).shape == getattr(ref, name).shape
        assert not getattr(f, name).any()
    f.predict(); f.update(ZS[0])
    for name in ("K", "S", "SI"):
        assert getattr(f, name).shape == getattr(ref, name).shape
        assert getattr(f, name).any()
    f.initialize(np.zeros(DIM_X), np.eye(DIM_X))
    for name in ("K", "S", "SI"):
        assert not getattr(f, name).any()


@pytest.mark.parametrize("cls, kw", FILTERS, ids=IDS)
def test_gain_equals_filterpys_enkf_on_the_same_forecast(cls, kw):
    f = make(cls, seed=4, **kw)
    for z in ZS[:2]:
        f.predict(); f.update(z)
    f.predict()
    if cls is ParticleFilter:
        f.weights = np.full(f.N, 1.0 / f.N)   # filterpy's members are equally weighted
    ens = f.sigmas.copy()
    ref = filterpy_enkf(ens, f.R)
    ref.update(ZS[2])
    f.update(ZS[2])
    np.testing.assert_allclose(f.S, ref.S, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(f.SI, ref.SI, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f.K, ref.K, rtol=1e-10, atol=1e-12)


def test_particle_filter_gain_uses_the_prior_weights():
    f = make(ParticleFilter, seed=2, resample_threshold=0.0)
    f.predict(); f.update(ZS[0])
    w = f.weights.copy()
    assert np.ptp(w) > 0
    f.predict()
    X = f.sigmas.copy()
    f.update(ZS[1])
    # Reference: weighted moments written out from the definition.
    xm, hm = w @ X, w @ hx(X)
    A, B = X - xm, hx(X) - hm
    c = 1.0 / (1.0 - w @ w)
    S = c * (B.T * w) @ B + f.R
    np.testing.assert_allclose(f.S, S, rtol=1e-12)
    np.testing.assert_allclose(f.K, c * (A.T * w) @ B @ np.linalg.inv(S), rtol=1e-10)


@pytest.mark.parametrize("cls, kw", FILTERS, ids=IDS)
def test_a_replaced_inv_is_used(cls, kw):
    calls = []

    def my_inv(S):
        calls.append(S.copy())
        return 2.0 * np.linalg.inv(S)

    f, g = make(cls, seed=1, **kw), make(cls, seed=1, **kw)
    g.inv = my_inv
    f.predict(); g.predict()
    f.update(ZS[0]); g.update(ZS[0])
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], g.S)
    np.testing.assert_allclose(g.SI, 2.0 * f.SI, rtol=1e-12)
    np.testing.assert_allclose(g.K, 2.0 * f.K, rtol=1e-12)
    # The diagnostics never feed back into the analysis.
    np.testing.assert_array_equal(g.sigmas, f.sigmas)


def test_with_a_simulator_S_is_the_covariance_of_the_simulated_measurements():
    def simulate(x, rng):      # noise-free, so the simulated measurements are hx(x)
        return hx(x)

    f = make(DiffusionKDEFilter, seed=3, inflation=None, simulate=simulate, kernel='covariance')
    f.predict()
    X = f.sigmas.copy()
    f.update(ZS[0])
    Y = hx(X)
    np.testing.assert_allclose(f.S, np.cov(Y.T), rtol=1e-12)        # R does not enter
    np.testing.assert_allclose(f.K, np.cov(X.T, Y.T)[:DIM_X, DIM_X:] @ np.linalg.inv(f.S),
                               rtol=1e-10)


def test_ensemble_gain_falls_back_to_the_pseudo_inverse_for_a_singular_S():
    X = np.random.default_rng(0).normal(size=(5, 2))
    hz = np.c_[X[:, 0], X[:, 0]]          # two identical measurement rows: rank-1 S at R = 0
    K, S, SI = ensemble_gain(X, hz, np.zeros((2, 2)))
    np.testing.assert_allclose(SI, np.linalg.pinv(S), atol=1e-12)
    assert K.shape == (2, 2) and np.all(np.isfinite(K))


# -------------------------------------------------------------- initialize
def _same(a, b, path):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), path
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == 'f'), path
    elif isinstance(a, np.random.Generator):
        assert a.bit_generator.state == b.bit_generator.state, path
    elif isinstance(a, LocalObs):
        for name in ("indices", "taper", "mask"):
            _same(getattr(a, name), getattr(b, name), f"{path}.{name}")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            _same(u, v, f"{path}[{i}]")
    else:
        assert type(a) is type(b) and (a is b or a == b), f"{path}: {a!r} != {b!r}"


def assert_same_state(f, g):
    assert vars(f).keys() == vars(g).keys(), set(vars(f)) ^ set(vars(g))
    for k in vars(f):
        _same(vars(f)[k], vars(g)[k], k)


ALL = [
    (DiffusionKDEFilter, {}),                       # adaptive inflation, kernel='auto'
    (DiffusionKDEFilter, dict(kernel='covariance', clusters=2)),
    (DiffusionKDEFilter, dict(kernel='isotropic')),
    (DiffusionKDEFilter, dict(kernel='bridge')),
    (ParticleFilter, dict(jitter=0.2)),
    (LocalDiffusionKDEFilter, {}),
    (LETKF, dict(inflation='adaptive')),
]


@pytest.mark.parametrize("cls, kw", ALL, ids=["dkf", "dkf-cov2", "dkf-iso", "dkf-bridge", "pf", "ldkf", "letkf"])
def test_initialize_gives_a_fresh_filter(cls, kw):
    x0, P0 = np.array([0.5, -0.2, 1.0]), np.eye(DIM_X)
    used = make(cls, seed=7, **kw)
    for z in ZS:
        used.predict(); used.update(z, R=0.5 * used.R if z is ZS[1] else None)
    fresh = make(cls, seed=7, **kw)
    used.rng.bit_generator.state = np.random.default_rng(7).bit_generator.state
    used.initialize(x0, P0)
    assert_same_state(used, fresh)
    for f in (used, fresh):
        for z in ZS:
            f.predict(); f.update(z)
    assert_same_state(used, fresh)


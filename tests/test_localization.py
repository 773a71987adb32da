"""Domain localization: taper, local observation lists, batched local KDEs, LETKF, filters."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from filterpy_diffusion.bandwidth import select_by_ess
from filterpy_diffusion.diffusion import _dpm2m, karras_schedule
from filterpy_diffusion.localization.stitching import _local_schedule, _ode_local
from filterpy_diffusion.etkf import etkf_analysis
from filterpy_diffusion.filter import H_RANGE
from filterpy_diffusion.kde import CovarianceKDE
from filterpy_diffusion.localization import (
    DEFAULT_LETKF_INFLATION, LETKF, LocalDiffusionKDEFilter, LocalKDE, gaspari_cohn, local_covariance_kde,
    local_observations, local_observations_from_callable, sample_local)
from filterpy_diffusion.mixture import GaussianMixture
from filterpy_diffusion.systems import IdentityObs, LorenzModel


# ---------------------------------------------------------------- taper
def _gc_published(r):
    """GC99 eq. (4.10) in exact rational arithmetic, r = |distance| / c."""
    r = Fraction(r)
    if r <= 1:
        return -r ** 5 / 4 + r ** 4 / 2 + Fraction(5, 8) * r ** 3 - Fraction(5, 3) * r ** 2 + 1
    if r < 2:
        return (r ** 5 / 12 - r ** 4 / 2 + Fraction(5, 8) * r ** 3 + Fraction(5, 3) * r ** 2
                - 5 * r + 4 - Fraction(2, 3) / r)
    return Fraction(0)


def test_gaspari_cohn_properties():
    assert gaspari_cohn(0.0) == 1.0
    assert np.all(gaspari_cohn(np.array([2.0, 2.5, 7.0, 1e9])) == 0.0)
    r = np.linspace(0, 2, 2001)
    rho = gaspari_cohn(r)
    assert np.all(np.diff(rho) <= 0) and np.all(rho >= 0) and rho[-1] == 0
    np.testing.assert_array_equal(gaspari_cohn(-r), rho)          # distance sign is ignored
    for x in ["0.25", "0.5", "1", "1.25", "1.5", "1.75", "1.99"]:
        assert gaspari_cohn(float(x)) == pytest.approx(float(_gc_published(Fraction(x))),
                                                       rel=1e-12, abs=1e-15)
    # continuous at r = 1 from both sides
    assert gaspari_cohn(1 - 1e-9) == pytest.approx(gaspari_cohn(1 + 1e-9), abs=1e-8)


# ---------------------------------------------------------------- local lists
def test_local_observations_wrap_around_on_a_periodic_grid():
    loc = local_observations(np.arange(10), np.arange(10), radius=1.0, domain_length=10)
    # radius (half-width) 1: support |dist| < 2, so distances 0 and 1 only
    assert loc.indices.shape == (10, 3) and loc.mask.all()
    lists = loc.lists()
    np.testing.assert_array_equal(lists[0][0], [0, 1, 9])
    np.testing.assert_array_equal(lists[9][0], [0, 8, 9])
    np.testing.assert_allclose(lists[0][1], [1.0, gaspari_cohn(1.0), gaspari_cohn(1.0)])
    # on a line the ends do not wrap: padded rows with a mask
    line = local_observations(np.arange(10), np.arange(10), radius=1.0)
    np.testing.assert_array_equal(line.lists()[0][0], [0, 1])
    assert line.counts.tolist() == [2] + [3] * 8 + [2]
    assert not line.mask[0, 2] and line.taper[0, 2] == 0
    # observations between grid points and a wider radius
    loc = local_observations(np.arange(40), np.arange(20) * 2.0 + 0.5, radius=4.0, domain_length=40)
    idx, w = loc.lists()[0]
    obs = np.arange(20) * 2.0 + 0.5
    dist = np.minimum(np.abs(obs[idx]), 40 - np.abs(obs[idx]))
    assert set(idx) == {i for i in range(20) if min(obs[i], 40 - obs[i]) < 8}
    np.testing.assert_allclose(w, gaspari_cohn(dist / 4.0))


def test_local_observations_from_callable():
    loc = local_observations_from_callable(lambda j: ([j, (j + 1) % 4], [1.0, 0.5]), 4, 4)
    np.testing.assert_array_equal(loc.lists()[3][0], [3, 0])
    with pytest.raises(ValueError, match=r"local_obs\(0\) returned indices"):
        local_observations_from_callable(lambda j: ([5], [1.0]), 4, 4)
    with pytest.raises(ValueError, match="weights"):
        local_observations_from_callable(lambda j: ([0], [0.0]), 4, 4)


# ---------------------------------------------------------------- batched vs loop
def _linear(x, dt):
    return x


def _hx(X, m=5):
    """A nonlinear observation of (N, d) states: (N, m)."""
    d = X.shape[-1]
    return np.stack([X[..., (2 * i) % d] + 0.2 * X[..., (2 * i + 1) % d] ** 2 for i in range(m)], -1)


def _random_problem(seed, N=30, d=7, m=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, d)) @ rng.normal(size=(d, d)) * 0.5 + 1.0
    hz = _hx(X, m)
    G = rng.normal(size=(m, m))
    R = G @ G.T / m + 0.5 * np.eye(m)           # correlated observation errors
    Y = hz + rng.multivariate_normal(np.zeros(m), R, size=N)
    z = hz.mean(0) + rng.normal(size=m)
    loc = local_observations(np.arange(d), np.arange(m) * d / m + 0.3, radius=1.2, domain_length=d)
    return X, hz, Y, z, R, loc


@pytest.mark.parametrize("bandwidth", ["auto", 0.4])
def test_batched_local_kdes_equal_a_per_domain_loop(bandwidth):
    X, hz, Y, z, R, loc = _random_problem(3)
    N = X.shape[0]
    kde = local_covariance_kde(X, hz, Y, z, R, loc, bandwidth, ess_target=0.5)
    assert kde.centres.shape == (X.shape[1], N)
    for j, (idx, rho) in enumerate(loc.lists()):
        s = np.sqrt(rho)
        # Domain j is the covariance kernel on (x_j, sqrt(rho) hx + v) with the local R block.
        pred = hz[:, idx] * s
        meas = pred + (Y - hz)[:, idx]
        ref = CovarianceKDE(X[:, [j]], meas, 0.5, R=R[np.ix_(idx, idx)], predictions=pred)
        zj = s * z[idx]
        h = select_by_ess(ref.log_kernel_at(zj), 0.5 * N, *H_RANGE) if bandwidth == "auto" \
            else bandwidth
        ref.set_bandwidth(h)
        assert kde.h[j] == pytest.approx(h, rel=1e-9)
        np.testing.assert_allclose(kde.log_weights[j], ref.log_weights(zj), atol=1e-9)
        np.testing.assert_allclose(kde.centres[j], ref.centres(zj)[:, 0], rtol=1e-10, atol=1e-12)
        assert kde.S[j] == pytest.approx(ref.S_eigvals[0], rel=1e-9)


def test_letkf_equals_a_per_domain_loop():
    X, hz, Y, z, R, loc = _random_problem(4, N=12)
    R = np.diag(np.diag(R))
    N, d = X.shape
    # rot=False: the textbook symmetric-root transform, without the random rotation.
    f = LETKF(np.zeros(d), np.eye(d), R.shape[0], 1.0, N, _hx, _linear, local_obs=loc,
              inflation=1.1, rot=False)
    f.R = R
    f.sigmas = X.copy()
    f.update(z)
    Xi = X.mean(0) + 1.1 * (X - X.mean(0))
    hz = _hx(Xi)
    ref = np.empty_like(X)
    for j, (idx, rho) in enumerate(loc.lists()):
        Yb = hz[:, idx] - hz[:, idx].mean(0)
        Rinv = np.diag(rho / np.diag(R)[idx])                  # R-localization
        Pt = np.linalg.inv((N - 1) * np.eye(N) + Yb @ Rinv @ Yb.T)
        wbar = Pt @ Yb @ Rinv @ (z[idx] - hz[:, idx].mean(0))
        ev, V = np.linalg.eigh((N - 1) * Pt)
        T = V @ np.diag(np.sqrt(ev)) @ V.T
        a = Xi[:, j] - Xi[:, j].mean()
        ref[:, j] = Xi[:, j].mean() + a @ (wbar[:, None] + T)
    np.testing.assert_allclose(f.sigmas, ref, atol=1e-12)


def test_letkf_is_the_etkf_core_per_domain():
    # One ETKF: domain j of the LETKF is etkf_analysis of x_j on its
    # R-localized observations (scaled by sqrt(rho), the same as R / rho).
    X, hz, Y, z, R, loc = _random_problem(6, N=12)
    N, d = X.shape
    f = LETKF(np.zeros(d), np.eye(d), R.shape[0], 1.0, N, _hx, _linear, local_obs=loc,
              inflation=None, rot=False)
    f.R = R
    f.sigmas = X.copy()
    f.update(z)
    for j, (idx, rho) in enumerate(loc.lists()):
        s = np.sqrt(rho)
        Xa, _ = etkf_analysis(X[:, [j]], hz[:, idx] * s, z[idx] * s, R[np.ix_(idx, idx)])
        np.testing.assert_allclose(f.sigmas[:, j], Xa[:, 0], rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(lw=hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(2, 12)),
                     elements=st.floats(-5.0, 5.0)),
       frac=st.floats(0.05, 1.0))
def test_batched_bandwidth_search_is_the_scalar_search_per_row(lw, frac):
    # The local filter's bandwidth search is bandwidth.select_by_ess batched
    # over domains: row by row it returns what the scalar search returns.
    lo, hi = H_RANGE
    at = lambda h: lw / np.asarray(h)[..., None] ** 2           # ESS grows with h
    target = frac * lw.shape[1]
    batch = select_by_ess(at, target, lo, hi, batch=len(lw))
    for j in range(len(lw)):
        assert batch[j] == select_by_ess(lambda h: lw[j] / h ** 2, target, lo, hi)


def test_docstrings_are_not_assembled_at_run_time():
    import inspect
    import filterpy_diffusion.localization as pkg
    from filterpy_diffusion.localization import algebra, filters, stitching, taper
    for mod in (pkg, algebra, filters, stitching, taper):
        assert "__doc__ =" not in inspect.getsource(mod) and ".__doc__.replace" not in \
            inspect.getsource(mod)
    for cls in (LocalDiffusionKDEFilter, LETKF):
        assert "state_positions : ndarray (dim_x,), optional" in cls.__doc__
        assert "{local}" not in cls.__doc__


def test_letkf_rotation_keeps_the_analysis_mean_and_covariance():
    X, hz, Y, z, R, loc = _random_problem(4, N=12)
    N, d = X.shape
    out = {}
    for rot, seed in ((False, 0), (True, 0), (True, 0), (True, 1)):
        f = LETKF(np.zeros(d), np.eye(d), R.shape[0], 1.0, N, _hx, _linear, local_obs=loc,
                  rot=rot, rng=seed)
        f.R = np.diag(np.diag(R))
        f.sigmas = X.copy()
        f.update(z)
        out.setdefault((rot, seed), []).append(f.sigmas.copy())
    plain, rotated = out[(False, 0)][0], out[(True, 0)][0]
    np.testing.assert_allclose(rotated.mean(0), plain.mean(0), atol=1e-12)
    np.testing.assert_allclose(np.cov(rotated.T), np.cov(plain.T), atol=1e-10)
    assert np.abs(rotated - plain).max() > 1e-3                 # the members do move
    np.testing.assert_array_equal(out[(True, 0)][0], out[(True, 0)][1])   # same seed, same run
    assert not np.array_equal(out[(True, 0)][0], out[(True, 1)][0])


def test_letkf_defaults_are_inflated_and_rotated():
    f = _l96_filter(LETKF, 0)
    assert f.inflation == DEFAULT_LETKF_INFLATION and f.rot is True
    f.predict()
    f.update(np.full(12, 8.0))
    assert f.inflation_factor == DEFAULT_LETKF_INFLATION
    with pytest.raises(ValueError, match="rot must be True or False"):
        _l96_filter(LETKF, 0, rot="yes")


def _letkf_l96_rmse(seed, N, cycles=200, d=40, **kw):
    # Deterministic Lorenz-96 (Q = 0, R = I, dt = 0.05, all observed) as sakov2008.
    fx = LorenzModel("l96", 0.05, 1)
    rng = np.random.default_rng(seed)
    x = np.full(d, 8.0) + rng.normal(size=d)
    for _ in range(300):
        x = fx(x)
    f = LETKF(x + 0.03 * rng.normal(size=d), 0.001 * np.eye(d), d, 0.05, N, IdentityObs(), fx,
              state_positions=np.arange(d), obs_positions=np.arange(d), domain_length=d,
              rng=seed, vectorized=True, **kw)
    f.Q, f.R = np.zeros((d, d)), np.eye(d)
    err = []
    for _ in range(cycles):
        x = fx(x)
        f.predict()
        f.update(x + rng.normal(size=d))
        err.append(np.sqrt(np.mean((f.x - x) ** 2)))
    return np.mean(err[100:])


def test_letkf_defaults_beat_no_inflation_on_deterministic_lorenz96():
    # N = 10 < d: without inflation the spread is too small (sampling error),
    # the default 1.02 with rotation corrects it (0.20 vs 0.23 here).
    default = np.mean([_letkf_l96_rmse(s, 10) for s in range(3)])
    plain = np.mean([_letkf_l96_rmse(s, 10, inflation=1.0, rot=False) for s in range(3)])
    assert default < 0.95 * plain and default < 0.25


def test_batched_ode_equals_the_package_sampler_per_domain():
    # The local ODE is diffusion.dpm2m batched over domains: per domain it is
    # the package's solver on the domain's 1-D GaussianMixture and its schedule.
    X, hz, Y, z, R, loc = _random_problem(5, N=15)
    kde = local_covariance_kde(X, hz, Y, z, R, loc, 0.5)
    rng = np.random.default_rng(0)
    v = kde.S
    start = kde.centres[:, :1] + 3.0 * rng.normal(size=kde.centres.shape)
    tv = _local_schedule(kde.centres, kde.log_weights, v, 10)
    out = _ode_local(kde.centres, kde.log_weights, start, tv)
    for j in range(X.shape[1]):
        mix = GaussianMixture(kde.centres[j][:, None], kde.log_weights[j], v[j])
        sig = karras_schedule(mix, 10)
        np.testing.assert_allclose(tv[:, j], v[j] + sig ** 2, rtol=1e-12)
        ref = mix.from_frame(_dpm2m(mix, mix.to_frame(start[j][:, None]), sig))[:, 0]
        np.testing.assert_allclose(out[j], ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("stitching", ["independent", "shared", "coherent", "rotation",
                                       ("systematic", "ensemble")])
def test_stitched_draws_have_each_domains_mixture_moments(stitching):
    rng = np.random.default_rng(1)
    d, N = 3, 50
    M = rng.normal(size=(d, N)) * 2
    lw = np.log(rng.dirichlet(np.ones(N), size=d))
    S = np.array([0.1, 0.5, 1.0])
    D = rng.normal(size=(d, N))
    kde = LocalKDE(centres=M, log_weights=lw, S=S, h=np.full(d, 0.5), ess=None, mean=None,
                   Pa=S * 4, anomalies=D - D.mean(1, keepdims=True), gain=None)
    draws = np.concatenate([sample_local(kde, rng, "exact", stitching) for _ in range(500)])
    w = np.exp(lw)
    mean = np.sum(w * M, 1)
    var = S + np.sum(w * M ** 2, 1) - mean ** 2
    # 25,000 draws: the standard error of the mean is 0.0063 sd. Systematic
    # selection and rotation noise make each ensemble's sample moments exact
    # in the ddof=1 sense, which is within 1/N = 2% of the pooled variance.
    assert np.all(np.abs(draws.mean(0) - mean) < 0.04 * np.sqrt(var)), (draws.mean(0), mean)
    np.testing.assert_allclose(draws.var(0), var, rtol=0.06)


# ---------------------------------------------------------------- filters
def test_huge_radius_and_h_to_1_give_the_enkf_analysis_mean():
    rng = np.random.default_rng(7)
    d, m, N = 5, 3, 4000
    H = rng.normal(size=(m, d))
    Rm = np.diag([0.5, 1.0, 2.0])
    Lp = rng.normal(size=(d, d)) / np.sqrt(d)
    X = rng.normal(size=(N, d)) @ Lp.T + 1.0
    z = H @ np.ones(d) + np.array([1.0, -0.5, 0.3])
    f = LocalDiffusionKDEFilter(np.zeros(d), np.eye(d), m, 1.0, N, lambda x: x @ H.T, _linear,
                                state_positions=np.arange(d), obs_positions=[0.0, 2.0, 4.0],
                                radius=1e6, bandwidth=0.999, inflation=None, rng=1,
                                vectorized=True)
    f.R = Rm
    f.sigmas = X.copy()
    f.update(z)
    A = X - X.mean(0)
    Hb = A @ H.T
    K = (A.T @ Hb) @ np.linalg.inv(Hb.T @ Hb + (N - 1) * Rm)
    mean = X.mean(0) + K @ (z - H @ X.mean(0))
    Pa = A.T @ A / (N - 1) - K @ (Hb.T @ A) / (N - 1)
    se = np.sqrt(np.diag(Pa) / N)
    assert np.all(np.abs(f.x - mean) < 5 * se), (f.x - mean) / se
    np.testing.assert_allclose(np.diag(f.P), np.diag(Pa), rtol=0.1)
    assert np.all(f.h == 0.999)


def _l96_filter(cls, seed, d=12, N=10, **kw):
    f = cls(np.full(d, 8.0), np.eye(d), d, 0.05, N, IdentityObs(), LorenzModel("l96", 0.05, 1),
            state_positions=np.arange(d), obs_positions=np.arange(d), domain_length=d,
            rng=seed, vectorized=True, **kw)
    f.Q = 0.01 * np.eye(d)
    return f


@pytest.mark.parametrize("kw", [{}, {"sampler": "ode", "steps": 4}, {"stitching": "independent"}])
def test_same_seed_is_bit_identical(kw):
    zs = np.random.default_rng(0).normal(8.0, 1.0, size=(4, 12))
    runs = []
    for seed in (3, 3, 4):
        f = _l96_filter(LocalDiffusionKDEFilter, seed, kernel="covariance", **kw)
        for z in zs:
            f.predict()
            f.update(z)
        runs.append(f.sigmas.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    assert f.h.shape == (12,) and np.all((f.h > 0) & (f.h < 1))


def test_filters_track_lorenz96_briefly():
    # A smoke test of the whole cycle: both filters stay near a truth.
    d = 20
    fx = LorenzModel("l96", 0.05, 1)
    rng = np.random.default_rng(2)
    x = fx(np.full(d, 8.0) + rng.normal(size=d), None)
    for _ in range(200):
        x = fx(x, None)
    filters = [_l96_filter(LocalDiffusionKDEFilter, 0, d=d, N=15),
               _l96_filter(LETKF, 0, d=d, N=15, inflation=1.05)]
    for f in filters:
        f.sigmas = x + rng.normal(size=(15, d))
        f.Q = np.zeros((d, d))
    errs = [[] for _ in filters]
    for k in range(60):
        x = fx(x, None)
        z = x + rng.normal(size=d)
        for f, e in zip(filters, errs):
            f.predict()
            f.update(z)
            e.append(np.sqrt(np.mean((f.x - x) ** 2)))
    for e in errs:
        assert np.mean(e[20:]) < 0.6


def test_bad_input_raises_value_error():
    d = 8
    args = (np.zeros(d), np.eye(d), d, 1.0, 5, IdentityObs(), _linear)
    ok = dict(state_positions=np.arange(d), obs_positions=np.arange(d), domain_length=d)
    for cls in (LocalDiffusionKDEFilter, LETKF):
        with pytest.raises(ValueError, match=r"state_positions must have one position per state variable: shape \(8,\)"):
            cls(*args, **{**ok, "state_positions": np.arange(d - 1)})
        with pytest.raises(ValueError, match=r"obs_positions .* shape \(8,\)"):
            cls(*args, **{**ok, "obs_positions": np.arange(d + 2)})
        with pytest.raises(ValueError, match="radius .* must be a positive finite number"):
            cls(*args, **ok, radius=-1.0)
        with pytest.raises(ValueError, match="radius"):
            cls(*args, **ok, radius=0)
        with pytest.raises(ValueError, match="needs state_positions"):
            cls(*args)
        with pytest.raises(ValueError, match="not both"):
            cls(*args, **ok, local_obs=lambda j: ([j], [1.0]))
        with pytest.raises(ValueError, match="domain_length"):
            cls(*args, **{**ok, "domain_length": -3})
        with pytest.raises(ValueError, match="inflation"):
            cls(*args, **ok, inflation=0.5)
        with pytest.raises(ValueError, match="a float >= 1"):
            cls(*args, **ok, inflation=np.inf)
    with pytest.raises(ValueError, match="inflation"):
        LETKF(*args, **ok, inflation="auto")            # the local filter's, not the LETKF's
    for bad in [dict(kernel="bridge"), dict(rot=1), dict(policy={"members_per_dim": 2}),
                dict(stitching="smooth"), dict(stitching=("systematic", "pink")),
                dict(bandwidth=1.5), dict(bandwidth="scott"), dict(sampler="sde"),
                dict(ess_target=0.0), dict(steps=0)]:
        with pytest.raises(ValueError):
            LocalDiffusionKDEFilter(*args, **ok, **bad)
    with pytest.raises(ValueError, match=r"local_obs\(2\) returned indices"):
        LETKF(*args, local_obs=lambda j: ([j if j != 2 else 99], [1.0]))


@pytest.mark.parametrize("sampler", ["exact", "ode"])
def test_collapsed_ensemble_gives_a_finite_analysis(sampler):
    f = _l96_filter(LocalDiffusionKDEFilter, 0, sampler=sampler, inflation=None)
    f.sigmas = np.full((10, 12), 3.0)
    f.update(np.full(12, 4.0))
    np.testing.assert_allclose(f.sigmas, 3.0)      # no spread: nothing to update with


def test_deepcopy_continues_identically_and_attributes_are_set():
    import copy
    f = _l96_filter(LocalDiffusionKDEFilter, 5, kernel="covariance")
    f.predict()
    f.update(np.full(12, 8.5))
    g = copy.deepcopy(f)
    for h in (f, g):
        h.predict()
        h.update(np.full(12, 7.5))
    np.testing.assert_array_equal(f.sigmas, g.sigmas)
    assert f.local_ess.shape == (12,) and f.ess == pytest.approx(f.local_ess.mean())
    # 'auto' reaches the ESS target in every domain unless h hit its upper end
    assert np.all((f.local_ess >= 0.9 * f.N * (1 - 1e-9)) | (f.h == H_RANGE[1]))
    assert f.bandwidth_x.shape == (12,) and f.inflation_factor >= 1.0
    f.update(None)                                 # filterpy's skip still works
    assert "LocalDiffusionKDEFilter object" in repr(f)


def test_local_obs_object_is_validated():
    from filterpy_diffusion.localization import LocalObs
    with pytest.raises(ValueError, match="taper"):
        LocalObs(np.zeros((3, 1), int), np.full((3, 1), 2.0), np.ones((3, 1), bool))
    with pytest.raises(ValueError, match="share one shape"):
        LocalObs(np.zeros((3, 2), int), np.ones((3, 1)), np.ones((3, 1), bool))
    loc = LocalObs(np.full((4, 1), 7), np.ones((4, 1)), np.ones((4, 1), bool))
    with pytest.raises(ValueError, match="out of range for dim_z = 4"):
        LETKF(np.zeros(4), np.eye(4), 4, 1.0, 5, IdentityObs(), _linear, local_obs=loc)
    with pytest.raises(ValueError, match="for 4 state variables"):
        LETKF(np.zeros(5), np.eye(5), 5, 1.0, 5, IdentityObs(), _linear, local_obs=loc)


# ---------------------------------------------------------------- the local Gaussian core
def test_local_finite_size_inflation_is_the_global_core_per_domain():
    # Domain j of LETKF(inflation='finite-size') is etkf_analysis of x_j on its
    # R-localized observations with that domain's own EnKF-N inflation.
    X, hz, Y, z, R, loc = _random_problem(6, N=12)
    N, d = X.shape
    f = LETKF(np.zeros(d), np.eye(d), R.shape[0], 1.0, N, _hx, _linear, local_obs=loc,
              inflation="finite-size", rot=False)
    f.R = R
    f.sigmas = X.copy()
    f.update(z)
    ls = []
    for j, (idx, rho) in enumerate(loc.lists()):
        s = np.sqrt(rho)
        Xa, info = etkf_analysis(X[:, [j]], hz[:, idx] * s, z[idx] * s, R[np.ix_(idx, idx)],
                                 inflation="finite-size")
        np.testing.assert_allclose(f.sigmas[:, j], Xa[:, 0], rtol=1e-8, atol=1e-10)
        ls.append(info["inflation"])
    assert len(set(np.round(ls, 6))) > 1            # the domains' factors differ
    assert f.inflation_factor == pytest.approx(np.mean(ls))


def test_local_filter_is_the_local_etkf_at_small_n():
    # N = 10 with 12 observations in reach of every domain: r = N - 1, so
    # N <= members_per_dim (r + 1) and 'auto' is the local ETKF with
    # per-domain finite-size inflation: the same members as that LETKF.
    zs = np.random.default_rng(1).normal(8.0, 1.0, size=(3, 12))
    f = _l96_filter(LocalDiffusionKDEFilter, 7)
    g = _l96_filter(LETKF, 7, inflation="finite-size")
    for z in zs:
        for h in (f, g):
            h.predict()
            h.update(z)
        assert f.kernel_used == "etkf" and f.h is None and f.bandwidth_x is None
        np.testing.assert_array_equal(f.sigmas, g.sigmas)
    assert f.local_inflation.shape == (12,) and f.ess == f.N
    np.testing.assert_allclose(f.inflation_factor, f.local_inflation.mean())


def test_local_rule_moves_to_the_kernel_with_members_per_informed_direction():
    from filterpy_diffusion.localization.algebra import _whitened, local_informed_dimension
    from filterpy_diffusion.policy import Policy
    d, N = 12, 40
    z = np.random.default_rng(2).normal(8.0, 1.0, size=d)

    def run(**kw):
        f = _l96_filter(LocalDiffusionKDEFilter, 3, N=N, radius=1.0, **kw)
        X = f.sigmas.copy()
        w = _whitened(X, X, z, f.R, f.local)
        r = int(local_informed_dimension(w).max())
        f.update(z)
        return f, r
    f, r = run()
    # radius 1: observations at distance < 2 only, three per domain
    assert r == 3 and N > Policy().members_per_dim * (r + 1)
    assert f.kernel_used == "covariance" and f.h.shape == (d,)
    c = N / (r + 1)                                   # the boundary: N <= c (r + 1) is the core
    assert run(policy=Policy(members_per_dim=c))[0].kernel_used == "etkf"
    assert run(policy=Policy(members_per_dim=c - 0.01))[0].kernel_used == "covariance"
    assert run(kernel="etkf")[0].kernel_used == "etkf"
    assert run(kernel="covariance", policy=Policy(members_per_dim=c))[0].kernel_used == "covariance"


def test_local_rule_skips_the_frame_only_where_no_domain_could_ask_for_the_core(monkeypatch):
    # No domain's rank exceeds min(N - 1, k_max), so beyond members_per_dim
    # (min(N - 1, k_max) + 1) members the frame is not built; at the bound
    # it is, and the rule itself decides.
    import filterpy_diffusion.localization.filters as lf
    from filterpy_diffusion.policy import Policy
    d, N = 12, 40
    z = np.random.default_rng(2).normal(8.0, 1.0, size=d)
    calls = []
    real = lf._whitened
    monkeypatch.setattr(lf, "_whitened", lambda *a, **k: calls.append(1) or real(*a, **k))

    def run(c):
        calls.clear()
        f = _l96_filter(LocalDiffusionKDEFilter, 3, N=N, radius=1.0, policy=Policy(members_per_dim=c))
        f.update(z)
        return f.kernel_used, len(calls), f.local.indices.shape[1]
    k_max = run(1.0)[2]
    c = N / (min(N - 1, k_max) + 1)
    assert run(c - 0.01) == ("covariance", 0, k_max)          # the frame skipped
    used, built, _ = run(c)
    assert built == 1 and used == "etkf"

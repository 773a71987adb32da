"""DiffusionKDEFilter: filterpy drop-in behaviour, reference answers, bad input."""
import copy
import pickle
import warnings

import numpy as np
import pytest
from filterpy.kalman import KalmanFilter

from filterpy_diffusion import DiffusionKDEFilter
from filterpy_diffusion.bandwidth import scott_factor, silverman_factor
from kalman_twin import assert_close_to_kalman, run_with_kalman

F = np.array([[1.0, 1.0], [0.0, 1.0]])
H = np.array([[1.0, 0.0]])


def fx(x, dt):
    return F @ x


def hx(x):
    return H @ x


def fx_vec(X, dt):
    return X @ F.T


def hx_vec(X):
    return X @ H.T


def make(N=50, seed=0, **kw):
    f = DiffusionKDEFilter(np.array([0.0, 1.0]), np.eye(2), 1, 1.0, N, hx, fx, rng=seed, **kw)
    f.R = np.array([[0.5]])
    f.Q = np.eye(2) * 0.02
    return f


ZS = [1.1, 1.9, 3.2, 3.9, 5.1]


def run(f, zs=ZS):
    for z in zs:
        f.predict()
        f.update(np.array([z]))
    return f


def test_linear_gaussian_matches_kalman_filter():
    # Large N, exact sampler and small bandwidths: the conditional KDE tends to
    # the exact Bayes posterior, which for this problem is the Kalman filter's.
    N = 20_000
    f = make(N, seed=1, sampler='exact', kernel='isotropic', sigma_x=0.01, sigma_y=0.03,
             inflation=None)
    kf = KalmanFilter(dim_x=2, dim_z=1)
    kf.x, kf.P, kf.F, kf.H = np.array([0.0, 1.0]), np.eye(2), F, H
    kf.R, kf.Q = np.array([[0.5]]), np.eye(2) * 0.02
    for z in ZS:
        f.predict(); f.update(np.array([z]))
        kf.predict(); kf.update(np.array([z]))
        # Monte-Carlo error of a weighted sample is set by its ESS; the
        # analysis is resampled from weights with ESS >= several hundred.
        assert f.ess > 300
        sd = np.sqrt(np.diag(kf.P))
        assert np.all(np.abs(f.x - kf.x) < 5 * sd / np.sqrt(f.ess)), (f.x, kf.x)
        np.testing.assert_allclose(np.diag(f.P), np.diag(kf.P), rtol=5 * np.sqrt(2 / f.ess) + 0.02)
        corr = f.P[0, 1] / np.sqrt(f.P[0, 0] * f.P[1, 1])
        kcorr = kf.P[0, 1] / np.sqrt(kf.P[0, 0] * kf.P[1, 1])
        assert abs(corr - kcorr) < 5 / np.sqrt(f.ess)


@pytest.mark.parametrize("kernel", ['auto', 'covariance'])
def test_defaults_match_kalman_filter_on_linear_gaussian(kernel):
    # The linear-Gaussian target, at N = 400 instead of 2000: the default (kernel
    # 'auto', here the EnKPF mixture) and the covariance kernel, each with
    # automatic bandwidth and adaptive inflation, after 20 cycles.
    f = make(400, seed=21, kernel=kernel)
    assert_close_to_kalman(f, run_with_kalman(f))


@pytest.mark.parametrize("sampler", ['ode', 'sde', 'exact'])
def test_same_seed_bit_identical_different_seed_differs(sampler):
    a = run(make(seed=3, sampler=sampler))
    b = run(make(seed=3, sampler=sampler))
    c = run(make(seed=4, sampler=sampler))
    assert np.array_equal(a.sigmas, b.sigmas) and np.array_equal(a.P, b.P)
    assert not np.array_equal(a.sigmas, c.sigmas)


def test_generator_rng_is_used_not_global():
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    run(make(rng=None) if False else make(seed=np.random.default_rng(5)))
    assert np.array_equal(np.random.get_state()[1], state)


def test_rule_bandwidths_recorded_from_prior_ensemble():
    f = make(N=80, seed=6, kernel='isotropic', sigma_x='scott', sigma_y='silverman',
             inflation=None)
    f.predict()
    prior = f.sigmas.copy()
    f.update(np.array([1.0]))
    expected_x = scott_factor(80, 3) * prior.std(axis=0, ddof=1)
    np.testing.assert_allclose(f.bandwidth_x, expected_x, rtol=1e-12)
    assert f.bandwidth_y.shape == (1,)
    # sigma_y scales the std of the simulated measurements H x + v, v ~ N(0, R).
    sy_ref = silverman_factor(80, 3) * np.sqrt(prior[:, 0].var(ddof=1) + 0.5)
    assert abs(f.bandwidth_y[0] / sy_ref - 1) < 0.35
    assert 1 <= f.ess <= 80 and np.isfinite(f.log_likelihood)


def test_float_and_callable_bandwidths():
    f = make(kernel='isotropic', sigma_x=0.3, sigma_y=lambda X, Y: 0.1 * Y.std())
    f.predict(); f.update(np.array([1.0]))
    np.testing.assert_array_equal(f.bandwidth_x, [0.3, 0.3])
    assert f.bandwidth_y.shape == (1,) and f.bandwidth_y[0] > 0


def test_update_none_copies_like_filterpy():
    f = make()
    f.predict()
    before = f.sigmas.copy()
    f.update(None)
    assert np.array_equal(f.sigmas, before)
    assert np.array_equal(f.x_post, f.x) and np.array_equal(f.P_post, f.P)
    assert f.z.shape == (1, 1) and f.z[0, 0] is None


def test_batch_filter_equals_manual_loop():
    zs = [np.array([1.0]), None, np.array([3.0]), np.array([4.2])]
    a = make(seed=9)
    means, covs = a.batch_filter(zs)
    b = make(seed=9)
    for k, z in enumerate(zs):
        b.predict()
        b.update(z)
        assert np.array_equal(means[k], b.x) and np.array_equal(covs[k], b.P)
    assert means.shape == (4, 2) and covs.shape == (4, 2, 2)


def test_deepcopy_and_pickle_continue_identically():
    f = run(make(seed=10), ZS[:2])
    g, h = copy.deepcopy(f), pickle.loads(pickle.dumps(f))
    for k in (f, g, h):
        run(k, ZS[2:])
    assert np.array_equal(f.sigmas, g.sigmas) and np.array_equal(f.sigmas, h.sigmas)


def test_vectorized_equals_per_member():
    a = run(make(seed=11))
    b = DiffusionKDEFilter(np.array([0.0, 1.0]), np.eye(2), 1, 1.0, 50, hx_vec, fx_vec,
                           rng=11, vectorized=True)
    b.R, b.Q = np.array([[0.5]]), np.eye(2) * 0.02
    run(b)
    np.testing.assert_allclose(a.sigmas, b.sigmas, rtol=1e-12, atol=1e-12)


def test_simulator_replaces_hx_and_R():
    calls = []

    def simulate(x, rng):  # heavy-tailed sensor noise
        calls.append(1)
        return H @ x + rng.standard_t(3, size=1)
    f = make(N=40, simulate=simulate)
    f.R = np.array([[1e-12]])  # ignored when a simulator is given
    f.predict(); f.update(np.array([1.0]))
    assert len(calls) == 40
    assert f.bandwidth_y[0] > 0.1  # the spread comes from the t noise, not R


def test_sigmas_may_be_set_directly():
    f = make(N=30, seed=12)
    f.sigmas = np.column_stack([np.linspace(-1, 1, 30), np.linspace(0.5, 1.5, 30)])
    f.update(np.array([0.5]))
    assert abs(f.x[0] - 0.5) < 0.5 and f.sigmas.shape == (30, 2)


def test_multimodal_posterior_is_kept():
    # x seen through |x|: the ensemble stays on both signs.
    def hx_abs(x):
        return np.abs(x)

    def fx_id(x, dt):
        return x
    f = DiffusionKDEFilter(np.zeros(1), np.eye(1) * 4, 1, 1.0, 400, hx_abs, fx_id, rng=13,
                           kernel='isotropic', sigma_x=0.05, sigma_y=0.05)
    f.R, f.Q = np.array([[0.01]]), np.array([[1e-4]])
    for _ in range(3):
        f.predict(); f.update(np.array([1.5]))
    assert 0.25 < np.mean(f.sigmas[:, 0] > 0) < 0.75
    assert np.median(np.abs(np.abs(f.sigmas[:, 0]) - 1.5)) < 0.3


# -- bad input: a clear ValueError and the filter exactly as before ----------

def snapshot(f):
    return f.x.copy(), f.P.copy(), f.sigmas.copy()


def assert_unchanged(f, snap):
    for a, b in zip(snapshot(f), snap):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("z, match", [
    (np.array([1.0, 2.0]), r"z must have shape \(dim_z,\)"),
    (np.array([np.nan]), "z contains NaN or inf"),
    (np.array([np.inf]), "z contains NaN or inf"),
])
def test_bad_z(z, match):
    f = make(); f.predict()
    snap = snapshot(f)
    with pytest.raises(ValueError, match=match):
        f.update(z)
    assert_unchanged(f, snap)


def test_hx_wrong_size_and_non_finite():
    f = make(); f.predict()
    snap = snapshot(f)
    f.hx = lambda x: np.array([x[0], x[1]])
    with pytest.raises(ValueError, match=r"hx returned shape \(2,\) for member 0; expected \(dim_z,\)"):
        f.update(np.array([1.0]))
    assert_unchanged(f, snap)
    f.hx = lambda x: np.array([np.nan if x[0] > 0 else x[0]])
    with pytest.raises(ValueError, match="hx returned NaN or inf"):
        f.update(np.array([1.0]))
    assert_unchanged(f, snap)


def test_fx_non_finite():
    f = make()
    snap = snapshot(f)
    f.fx = lambda x, dt: x / 0.0 if x[0] > 0 else x
    with np.errstate(divide='ignore', invalid='ignore'), \
            pytest.raises(ValueError, match="fx returned NaN or inf for member"):
        f.predict()
    assert_unchanged(f, snap)


@pytest.mark.parametrize("P, match", [
    (np.array([[1.0, 0.5], [0.0, 1.0]]), "P must be symmetric"),
    (np.array([[1.0, 0.0], [0.0, -1.0]]), "P must be positive semi-definite"),
])
def test_bad_P(P, match):
    with pytest.raises(ValueError, match=match):
        DiffusionKDEFilter(np.zeros(2), P, 1, 1.0, 10, hx, fx)


def test_too_few_members_and_bad_options():
    with pytest.raises(ValueError, match="N must be at least 2"):
        DiffusionKDEFilter(np.zeros(2), np.eye(2), 1, 1.0, 1, hx, fx)
    with pytest.raises(ValueError, match="sampler must be one of"):
        make(sampler='rk45')
    with pytest.raises(ValueError, match="sigma_x rule must be one of"):
        make(kernel='isotropic', sigma_x='scot')
    with pytest.raises(ValueError, match="sigma_y must be a positive"):
        make(kernel='isotropic', sigma_y=-1.0)
    with pytest.raises(ValueError, match="set bandwidth= "):
        make(kernel='covariance', sigma_x=0.3)   # isotropic bandwidths with the covariance kernel
    with pytest.raises(ValueError, match="kernel must be one of"):
        make(kernel='gaussian')
    with pytest.raises(ValueError, match=r"must be 'auto', a rule"):
        make(bandwidth=1.5)
    with pytest.raises(ValueError, match="inflation must be"):
        make(inflation=0.5)
    with pytest.raises(ValueError, match="ess_target"):
        make(ess_target=0.0)


def test_callable_bandwidth_returning_garbage_leaves_state():
    f = make(kernel='isotropic', sigma_x=lambda X, Y: -1.0); f.predict()
    snap = snapshot(f)
    with pytest.raises(ValueError, match="sigma_x must resolve to a positive"):
        f.update(np.array([1.0]))
    assert_unchanged(f, snap)


@pytest.mark.parametrize("kernel", ['covariance', 'isotropic'])
def test_collapsed_ensemble_warns_and_carries_on(kernel):
    f = make(N=20, kernel=kernel)
    f.sigmas = np.tile([1.0, 2.0], (20, 1))
    with pytest.warns(RuntimeWarning, match="zero spread"):
        f.update(np.array([1.0]))
    assert np.all(np.isfinite(f.sigmas)) and np.all(np.isfinite(f.P))
    f.predict()            # Q spreads it out again
    f.update(np.array([1.2]))
    assert np.all(np.isfinite(f.sigmas)) and f.P[0, 0] > 0


@pytest.mark.parametrize("sampler", ['ode', 'exact'])
def test_one_cluster_of_a_repeated_state_is_that_state(sampler):
    # One cluster spread out, the other 20 copies of one state (a bridge
    # move can leave those): that cluster's conditional is its point, and
    # its sampler has nothing to diffuse. It raised a ValueError
    # (DAPPER Lorenz63.wiljes2017, N = 30, tuning seed 3012).
    X = np.vstack([np.random.default_rng(0).normal(size=(20, 2)), np.full((20, 2), 10.0)])
    f = DiffusionKDEFilter(np.zeros(2), np.eye(2), 1, 1.0, 40, lambda x: x[:1] ** 2,
                           lambda x, dt: x, kernel='covariance', sampler=sampler, rng=0)
    f.sigmas, f.R = X.copy(), np.array([[2500.0]])
    f.update(np.array([50.0]))
    assert f.n_clusters == 2
    at_point = np.all(f.sigmas == 10.0, axis=1)
    assert 0 < at_point.sum() < 40
    assert np.all(np.abs(f.sigmas[~at_point]) < 6)       # the spread cluster's draws


def test_far_observation_warns_and_stays_finite():
    f = make(N=30, kernel='covariance'); f.predict()
    with pytest.warns(RuntimeWarning, match="underflows"):
        f.update(np.array([1e6]))
    assert np.all(np.isfinite(f.sigmas)) and f.ess == pytest.approx(1.0)


def test_far_observation_with_the_default_gives_the_etkf_update():
    # The bridge gives a likelihood fraction to its weights only while they
    # keep enough effective members; a far z leaves them almost none, so the
    # update is the ETKF's finite, unweighted one, not a collapse. (Its
    # finite-size inflation reads the huge innovation as a far too small
    # prior spread, as DAPPER's EnKF_N does, and moves the ensemble to z.)
    f = make(N=30); f.predict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f.update(np.array([1e6]))
    assert f.kernel_used == 'bridge' and f.gamma < 1e-3
    assert np.all(np.isfinite(f.sigmas)) and np.all(f.weights == 1 / 30)


def test_no_warning_for_ordinary_update():
    f = make(N=30); f.predict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f.update(np.array([1.0]))


def test_repr_is_filterpy_style():
    r = repr(make())
    assert r.startswith("DiffusionKDEFilter object")
    for label in ("dim_x = 2", "x = ", "P = ", "Q = ", "R = ", "sigmas = ", "sampler = None", "kernel = auto"):
        assert label in r

"""EnKPFDensity (likelihood-splitting kernel) and DiffusionKDEFilter(kernel='enkpf')."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy.stats import multivariate_normal

from filterpy_diffusion import DiffusionKDEFilter
from filterpy_diffusion.policy import Policy
from filterpy_diffusion.kde import EnKPFDensity
from kalman_twin import F, H, Q, R, assert_close_to_kalman, run_with_kalman


def gaussian_prior(rng, N, d, m, R_scale=0.5):
    A = rng.normal(size=(d, d)) / np.sqrt(d)
    Pxx = A @ A.T + 0.5 * np.eye(d)
    H = rng.normal(size=(m, d))
    R = R_scale * np.eye(m) + 0.1 * np.ones((m, m))
    X = rng.multivariate_normal(np.zeros(d), Pxx, size=N)
    return X, X @ H.T, H, Pxx, R


def kalman(Pxx, H, R, z):
    S = H @ Pxx @ H.T + R
    K = Pxx @ H.T @ np.linalg.inv(S)
    return K @ z, Pxx - K @ S @ K.T, S


@pytest.mark.parametrize("g", [1.0, 0.7, 0.3, 0.1, 0.03])
def test_conditional_moments_equal_kalman_update_for_every_g(g):
    rng = np.random.default_rng(1)
    X, P, H, Pxx, R = gaussian_prior(rng, 40_000, 3, 2)
    z = np.array([0.7, -0.4])
    mix = EnKPFDensity(X, P, R, g).conditional(z)
    mean_ref, cov_ref, _ = kalman(Pxx, H, R, z)
    ess = 1 / np.sum(mix.weights ** 2)
    sd = np.sqrt(np.diag(cov_ref))
    assert np.all(np.abs(mix.mean() - mean_ref) < 5 * sd / np.sqrt(ess) + 0.01 * sd)
    np.testing.assert_allclose(mix.cov(), cov_ref, atol=(5 / np.sqrt(ess) + 0.02) * sd.max() ** 2)


@pytest.mark.parametrize("g", [1.0, 0.5, 0.05])
def test_log_marginal_is_the_gaussian_evidence(g):
    rng = np.random.default_rng(2)
    X, P, H, Pxx, R = gaussian_prior(rng, 40_000, 2, 2)
    z = np.array([0.3, 1.1])
    _, _, S = kalman(Pxx, H, R, z)
    ref = multivariate_normal(np.zeros(2), S).logpdf(z)
    assert EnKPFDensity(X, P, R, g).log_marginal(z) == pytest.approx(ref, abs=0.02)


def test_g_one_is_the_stochastic_enkf():
    rng = np.random.default_rng(3)
    X, P, H, Pxx, R = gaussian_prior(rng, 30, 3, 2)
    z = np.array([0.5, -0.2])
    dens = EnKPFDensity(X, P, R, 1.0)
    np.testing.assert_allclose(dens.weights(z), np.full(30, 1 / 30), rtol=1e-12)
    A, B = X - X.mean(0), P - P.mean(0)
    Cxp, Cpp = A.T @ B / 29, B.T @ B / 29
    K = Cxp @ np.linalg.inv(Cpp + R)
    np.testing.assert_allclose(dens.centres(z), X + (z - P) @ K.T, atol=1e-12)
    S = (dens.S_basis * dens.S_eigvals) @ dens.S_basis.T
    np.testing.assert_allclose(S, K @ R @ K.T, atol=1e-12)


def test_small_g_is_the_particle_filter():
    rng = np.random.default_rng(4)
    X, P, H, Pxx, R = gaussian_prior(rng, 30, 3, 2)
    z = np.array([0.5, -0.2])
    dens = EnKPFDensity(X, P, R, 1e-12)
    lw = multivariate_normal(z, R).logpdf(P)
    np.testing.assert_allclose(dens.weights(z), np.exp(lw - lw.max()) / np.exp(lw - lw.max()).sum(),
                               rtol=1e-6)
    np.testing.assert_allclose(dens.centres(z), X, atol=1e-10)
    assert dens.S_eigvals.max() < 1e-10


@given(seed=st.integers(0, 2**32 - 1), N=st.integers(3, 40), d=st.integers(1, 5),
       m=st.integers(1, 4), g=st.floats(0.01, 1.0), sigma=st.sampled_from([0.0, 0.1, 1.0]))
def test_score_is_gradient_of_log_prob(seed, N, d, m, g, sigma):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, d))
    P = np.tanh(X @ rng.normal(size=(d, m))) + 0.1 * rng.normal(size=(N, m))
    dens = EnKPFDensity(X, P, 0.3 * np.eye(m), g)
    z = P[0] + 0.3 * rng.normal(size=m)
    x = dens.centres(z)[rng.integers(N)] + 0.3 * rng.normal(size=d)
    # Where S is singular (m < d) the density is a ridge of width 1e-6 of the
    # largest S eigenvalue; test with noise so finite differences resolve it.
    sigma = max(sigma, 0.1)
    eps = 1e-5
    fd = np.array([(dens.log_prob(x + eps * e, z, sigma) - dens.log_prob(x - eps * e, z, sigma))
                   / (2 * eps) for e in np.eye(d)])
    np.testing.assert_allclose(dens.score(x, z, sigma), fd, rtol=1e-4,
                               atol=1e-5 * (1 + np.abs(fd).max()))


@given(seed=st.integers(0, 2**32 - 1), N=st.integers(2, 50), g=st.floats(1e-4, 1.0),
       shift=st.floats(-50, 50))
def test_weights_are_a_probability_vector_and_match_the_search_function(seed, N, g, shift):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 2))
    P = X ** 2
    dens = EnKPFDensity(X, P, 0.1 * np.eye(2), g)
    z = P.mean(0) + shift
    w = dens.weights(z)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    lk = dens.log_kernel_at(z)(g)
    np.testing.assert_allclose(np.exp(lk - lk.max()) / np.exp(lk - lk.max()).sum(), w, atol=1e-12)


@given(seed=st.integers(0, 2**32 - 1), g=st.floats(0.01, 1.0))
def test_invariant_to_a_linear_change_of_measurement_units(seed, g):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(20, 3))
    P = np.sin(X[:, :2]) + X[:, 1:] ** 2
    R = 0.2 * np.eye(2)
    z = P[0] + 0.1
    A = rng.normal(size=(2, 2)) + 3 * np.eye(2)
    a = EnKPFDensity(X, P, R, g)
    b = EnKPFDensity(X, P @ A.T, A @ R @ A.T, g)
    np.testing.assert_allclose(b.weights(A @ z), a.weights(z), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(b.centres(A @ z), a.centres(z), rtol=1e-7, atol=1e-9)


def test_bad_input_raises():
    X = np.random.default_rng(5).normal(size=(10, 2))
    with pytest.raises(ValueError, match="split factor"):
        EnKPFDensity(X, X, np.eye(2), 0.0)
    with pytest.raises(ValueError, match="same number of rows"):
        EnKPFDensity(X, X[:9], np.eye(2))
    with pytest.raises(ValueError, match="R"):
        EnKPFDensity(X, X, np.zeros((2, 2)))


# -- the normality test behind bandwidth='auto' -----------------------------

def test_normality_pvalue_keeps_its_level_on_gaussian_forecasts():
    rejected = 0
    for seed in range(300):
        X, P, _, _, R = gaussian_prior(np.random.default_rng(seed), 50, 4, 3, R_scale=0.05)
        p = EnKPFDensity(X, P, R).normality_pvalue()
        assert 0.0 <= p <= 1.0
        rejected += p <= 0.01
    assert rejected <= 9    # Binomial(300, 0.01) exceeds 9 with probability < 0.001


def test_normality_pvalue_detects_skewed_forecasts_in_informative_directions():
    detected = 0
    for seed in range(50):
        X = np.random.default_rng(seed).normal(size=(100, 2))
        detected += EnKPFDensity(X, np.exp(X), 0.01 * np.eye(2)).normality_pvalue() <= 0.01
    assert detected >= 48
    X = np.random.default_rng(0).normal(size=(100, 2))
    # Forecast variance far below the noise: no informative direction to test.
    assert EnKPFDensity(X, np.exp(X), 1e3 * np.eye(2)).normality_pvalue() == 1.0
    # Too few members for the kurtosis test.
    assert EnKPFDensity(X[:19], np.exp(X[:19]), 0.01 * np.eye(2)).normality_pvalue() == 1.0


@given(seed=st.integers(0, 2**32 - 1))
def test_normality_pvalue_ignores_measurement_units_and_member_order(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    P = np.c_[np.exp(0.5 * X[:, 0]), X[:, 1] + 0.3 * X[:, 2] ** 2]
    R = 0.05 * np.eye(2)
    A = rng.normal(size=(2, 2)) + 3 * np.eye(2)
    order = rng.permutation(40)
    p = EnKPFDensity(X, P, R).normality_pvalue()
    assert EnKPFDensity(X, P @ A.T, A @ R @ A.T).normality_pvalue() == pytest.approx(p, rel=1e-6, abs=1e-12)
    assert EnKPFDensity(X[order], P[order], R).normality_pvalue() == pytest.approx(p, rel=1e-6, abs=1e-12)


# -- the filter ------------------------------------------------------------

def linear_filter(N, seed, **kw):
    f = DiffusionKDEFilter(np.array([0.0, 1.0]), np.eye(2), 1, 1.0, N, lambda x: H @ x,
                           lambda x, dt: F @ x, rng=seed, kernel='enkpf', **kw)
    f.R, f.Q = R, Q
    return f


@pytest.mark.parametrize("options", [dict(), dict(bandwidth=1.0, sampler='exact')])
def test_enkpf_filter_matches_kalman_filter(options):
    f = linear_filter(400, 21, **options)
    assert_close_to_kalman(f, run_with_kalman(f))
    assert 0 < f.h <= 1 and f.bandwidth_y.shape == (1,)


def test_enkpf_filter_rejects_a_simulator_and_allows_g_one():
    with pytest.raises(ValueError, match="enkpf"):
        DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, 10, lambda x: x, lambda x, dt: x,
                           kernel='enkpf', simulate=lambda x, rng: x + rng.normal(size=1))
    linear_filter(10, 0, bandwidth=1.0)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, 10, lambda x: x, lambda x, dt: x,
                           bandwidth=1.0)


def test_enkpf_filter_is_reproducible():
    runs = []
    for _ in range(2):
        f = linear_filter(30, 7)
        for z in ([0.3], [1.2], [2.0]):
            f.predict(); f.update(np.array(z))
        runs.append(f.sigmas.copy())
    assert np.array_equal(*runs)


def test_auto_g_is_the_enkf_for_gaussian_forecasts_and_below_one_for_skewed_ones():
    f = linear_filter(100, 3)
    gs = []
    for z in np.linspace(0.0, 3.0, 20):
        f.predict(); f.update(np.array([z]))
        gs.append(f.h)
    assert np.mean(np.array(gs) == 1.0) >= 0.9
    s = DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, 100, np.exp, lambda x, dt: x,
                           rng=2, kernel='enkpf', vectorized=True)
    s.R = np.array([[0.01]])
    s.update(np.array([1.0]))
    assert s.h < 1.0 and s.ess >= 0.9 * 100 * (1 - 1e-6)


# -- kernel='auto' ---------------------------------------------------------

def test_auto_kernel_picks_the_bridge_for_one_mode_and_covariance_for_two():
    f = DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, 200, lambda x: x, lambda x, dt: x,
                           rng=2, vectorized=True)
    f.predict(); f.update(np.array([0.5]))
    assert f.kernel_used == 'bridge' and f.gamma is not None and f.n_evaluations == 0
    # Two mirror-image modes seen through |x|: z cannot tell them apart, so
    # the covariance kernel fitted per mode, sampled by the ODE; so too with
    # the ETKF as the one-mode core.
    for core in ('bridge', 'etkf'):
        g = DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, 200, np.abs, lambda x, dt: x,
                               rng=3, gaussian_core=core, vectorized=True)
        g.R, g.Q = np.array([[0.01]]), np.array([[0.01]])
        rng = np.random.default_rng(4)
        g.sigmas = np.r_[rng.normal(1, 0.1, 100), rng.normal(-1, 0.1, 100)][:, None]
        g.predict(); g.update(np.array([1.0]))
        assert g.kernel_used == 'covariance' and g.n_clusters == 2 and g.n_evaluations == 12
        assert g.gamma is None
    # A simulator has no R to split: always the covariance kernel.
    s = DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, 50, lambda x: x, lambda x, dt: x,
                           rng=5, kernel='auto', simulate=lambda x, rng: x + rng.normal(size=1))
    s.update(np.array([0.3]))
    assert s.kernel_used == 'covariance' and not s.carries_weights


@pytest.mark.parametrize("N, z, expected", [(60, [1.5, 0.2], 'covariance'),
                                             (39, [1.5, 0.2], 'bridge'),
                                             (60, [6.0, 0.2], 'bridge')])
def test_auto_kernel_on_a_skewed_one_mode_ensemble(N, z, expected):
    # One skewed mode (lognormal in x, y = x + noise): the mode test does not
    # fire, the normality test fails. With Policy.kernel_members_per_dim
    # members per joint dimension (dim_x + dim_z = 4, so N >= 40) the
    # covariance kernel takes it, at the policy's mode_ess_target; with
    # fewer, the bridge. A far z needs h near 1 for that ESS (above
    # Policy.kernel_max_h), and the bridge takes over.
    # (on the forecast: gaussian_core='etkf'; the default's bridge runs the
    # same rule on its resampled ensemble, where it still needs a Gaussian step)
    policy = Policy(kernel_members_per_dim=10.0)     # the opt-in rule on
    f = DiffusionKDEFilter(np.zeros(2), np.eye(2), 2, 1.0, N, lambda x: x, lambda x, dt: x,
                           rng=4, inflation=None, vectorized=True, gaussian_core='etkf',
                           policy=policy)
    f.R = 0.25 * np.eye(2)
    rng = np.random.default_rng(5)
    f.sigmas = np.c_[rng.lognormal(0.0, 0.8, N), rng.normal(size=N)]
    f.update(np.array(z))
    assert (N >= policy.kernel_members_per_dim * 4) == (N >= 40)
    assert Policy().kernel_members_per_dim == float('inf')    # off by default
    expected = {'bridge': 'etkf'}.get(expected, expected)
    assert f.kernel_used == expected and f.n_clusters == 1
    if expected == 'covariance':
        # the smallest h whose ESS reaches the target (h < 1: the target binds)
        target = policy.mode_ess_target * N
        assert f.h <= policy.kernel_max_h and target * (1 - 1e-6) <= f.ess < target + 0.01 * N
    # the rule off: the bridge, always
    g = DiffusionKDEFilter(np.zeros(2), np.eye(2), 2, 1.0, N, lambda x: x, lambda x, dt: x,
                           rng=4, inflation=None, vectorized=True, gaussian_core='etkf')
    g.R, g.sigmas = f.R, np.c_[np.random.default_rng(5).lognormal(0.0, 0.8, N),
                               np.random.default_rng(5).normal(size=N)]
    g.update(np.array(z))
    assert g.kernel_used == 'etkf'


@pytest.mark.parametrize("core", ['bridge', 'etkf', 'enkpf'])
def test_auto_one_mode_update_is_exactly_the_chosen_core(core):
    # kernel='auto' on a one-mode ensemble measures hx once, runs the
    # deterministic mode test (no draws) and hands over: bit-identical to
    # the core chosen as the kernel itself.
    def make(**kw):
        f = DiffusionKDEFilter(np.zeros(2), np.eye(2), 1, 1.0, 40, lambda x: x[:1],
                               lambda x, dt: x + dt * np.array([x[1], 0.0]), rng=11, **kw)
        f.R *= 0.3
        f.Q = 0.01 * np.eye(2)
        return f
    # (the normality rule off: here it may send a one-mode update to the kernel)
    a = make(gaussian_core=core, policy=Policy(kernel_members_per_dim=float('inf')))
    b = make(kernel=core)
    assert a.inflation == b.inflation
    for z in (0.2, 0.5, 0.1, 0.9):
        a.predict(); a.update(np.array([z]))
        b.predict(); b.update(np.array([z]))
        assert a.kernel_used == b.kernel_used == core
        assert np.array_equal(a.sigmas, b.sigmas) and np.array_equal(a.weights, b.weights)


def test_auto_kernel_matches_kalman_filter():
    f = DiffusionKDEFilter(np.array([0.0, 1.0]), np.eye(2), 1, 1.0, 400, lambda x: H @ x,
                           lambda x, dt: F @ x, rng=21)
    f.R, f.Q = R, Q
    assert_close_to_kalman(f, run_with_kalman(f))


@pytest.mark.parametrize("hx, z, expected", [(np.abs, 1.0, 'covariance'), (lambda x: x, 1.0, 'bridge')])
def test_two_modes_go_to_the_kernel_only_when_z_cannot_tell_them_apart(hx, z, expected):
    # Modes at -1 and +1. Seen through |x| they are mirror images, equally
    # likely whatever z: the per-mode kernel, whose evidence shrinkage keeps
    # the masses. Seen through x, z = 1 rules out the mode at -1 (its share
    # far below 1 / N): exact weights decide, in the bridge.
    N = 200
    f = DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, N, hx, lambda x, dt: x,
                           rng=3, vectorized=True)
    f.R, f.Q = np.array([[0.01]]), np.array([[0.01]])
    rng = np.random.default_rng(4)
    f.sigmas = np.r_[rng.normal(1, 0.1, N // 2), rng.normal(-1, 0.1, N // 2)][:, None]
    f.update(np.array([z]))
    assert f.kernel_used == expected
    if expected == 'covariance':
        assert f.n_clusters == 2 and (f.sigmas[:, 0] > 0).mean() == 0.5
    else:
        assert f.weights @ (f.sigmas[:, 0] > 0) > 1 - 1 / N

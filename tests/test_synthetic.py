"""simulations=k: hx and R estimated from a black-box simulator (filterpy_diffusion.synthetic)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import integrate, stats

from filterpy_diffusion import DiffusionKDEFilter
from filterpy_diffusion.synthetic import (averaged_noise_covariance, pooled_noise_covariance,
                                          simulation_moments)

from kalman_twin import F, H, Q, R, assert_close_to_kalman, run_with_kalman

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


def fx(X, dt):
    return X @ F.T


def no_hx(X):
    raise AssertionError("hx must not be called with simulations > 1")


def simulate(X, rng):
    """The twin's measurement, hx(x) + N(0, R), as a black box."""
    return X @ H.T + rng.standard_normal((len(X), 1)) * np.sqrt(R[0, 0])


def make(N=2000, seed=0, **options):
    f = DiffusionKDEFilter(np.array([0.0, 1.0]), np.eye(2), 1, 1.0, N, no_hx, fx, rng=seed,
                           vectorized=True, simulate=simulate, **options)
    f.Q = Q
    f.R = np.eye(1) * 99.0    # ignored: R is estimated
    return f


# -- the pure functions ------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(arrays(float, st.tuples(st.integers(2, 4), st.integers(1, 6), st.integers(1, 3)),
              elements=finite))
def test_simulation_moments_are_member_means_and_summed_covariances(Y):
    k, N, m = Y.shape
    mean, scatter, dof = simulation_moments(Y)
    np.testing.assert_allclose(mean, Y.mean(axis=0), atol=1e-12)
    # (k - 1) times each member's sample covariance of its draws, summed.
    ref = sum((k - 1) * np.cov(Y[:, i].T, ddof=1).reshape(m, m) for i in range(N))
    np.testing.assert_allclose(scatter, ref, atol=1e-9)
    assert dof == N * (k - 1)


@settings(max_examples=60, deadline=None)
@given(arrays(float, st.tuples(st.integers(1, 5), st.integers(1, 6)), elements=finite),
       st.integers(1, 8))
def test_pooled_covariance_keeps_variances_and_is_positive_definite(A, dof):
    # A rank-deficient scatter (fewer rows than m) whenever rows < m.
    m = A.shape[1]
    S = A.T @ A + np.diag(np.full(m, 0.1))
    Rp = pooled_noise_covariance(S, dof)
    np.testing.assert_allclose(np.diag(Rp), np.diag(S) / dof, rtol=1e-12)
    off = ~np.eye(m, dtype=bool)
    np.testing.assert_allclose(Rp[off], S[off] / (dof + m + 1), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(Rp, Rp.T)
    assert np.linalg.eigvalsh(Rp).min() > 0


def test_pooled_covariance_of_many_draws_is_the_sample_covariance():
    rng = np.random.default_rng(3)
    C = np.array([[1.0, 0.6], [0.6, 2.0]])
    Y = rng.multivariate_normal(np.zeros(2), C, size=(2, 50000))
    _, S, dof = simulation_moments(Y)
    np.testing.assert_allclose(pooled_noise_covariance(S, dof), C, atol=0.05)


def test_averaged_noise_makes_member_weights_unbiased_likelihoods():
    # E_e[N(z; h + e, R (1 - 1/k))] over e ~ N(0, R / k) is N(z; h, R).
    r, h, z = 0.7, 0.3, 1.4
    for k in (2, 3, 10):
        rk = averaged_noise_covariance(np.array([[r]]), k)[0, 0]

        def integrand(e, rk=rk, k=k):
            return stats.norm.pdf(z, h + e, np.sqrt(rk)) * stats.norm.pdf(e, 0, np.sqrt(r / k))
        expected, _ = integrate.quad(integrand, -20, 20)
        assert expected == pytest.approx(stats.norm.pdf(z, h, np.sqrt(r)), rel=1e-7)


@pytest.mark.parametrize("bad", [
    (lambda: simulation_moments(np.zeros((1, 3, 2)))),       # one simulation per member
    (lambda: simulation_moments(np.full((2, 3, 2), np.nan))),
    (lambda: pooled_noise_covariance(np.eye(2), 0)),
    (lambda: pooled_noise_covariance(-np.eye(2), 3)),
    (lambda: pooled_noise_covariance(np.ones((2, 3)), 3)),
    (lambda: averaged_noise_covariance(np.eye(2), 1)),
    (lambda: averaged_noise_covariance(np.eye(2), True)),
])
def test_bad_input_is_a_value_error(bad):
    with pytest.raises(ValueError):
        bad()


# -- the filter ----------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_etkf_core_on_simulations_matches_kalman_filter(seed):
    # The core on (mean of 2 draws, R (1 - 1/2)) has the Kalman gain and
    # covariance in expectation; N = 2000: the 0.1 sd / 15% target.
    f = make(seed=seed, kernel='etkf', simulations=2, inflation=None)
    kf = run_with_kalman(f)
    assert_close_to_kalman(f, kf, mean_sd=0.1, var_rtol=0.15)
    assert f.R_estimate[0, 0] == pytest.approx(R[0, 0], rel=0.03)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_default_on_simulations_matches_kalman_filter(seed):
    # The bridge weighs members by unbiased but noisy likelihoods: the
    # N = 400 tolerance of the other filters' tests at N = 2000.
    f = make(seed=seed, simulations=4, inflation=None)
    kf = run_with_kalman(f)
    assert f.kernel_used == 'bridge'
    assert_close_to_kalman(f, kf)


@pytest.mark.parametrize("kernel", ['covariance', 'enkpf', 'isotropic', 'bridge'])
def test_every_kernel_runs_on_the_estimates(kernel):
    # hx would raise; the estimate converges to R; the analysis follows z.
    f = make(N=400, seed=4, kernel=kernel, simulations=3)
    kf = run_with_kalman(f, cycles=10)
    assert f.kernel_used == kernel
    assert f.R_estimate[0, 0] == pytest.approx(R[0, 0], rel=0.1)
    assert abs(f.x[0] - kf.x[0]) < np.sqrt(kf.P[0, 0])


def test_without_estimation_the_etkf_core_is_refused():
    with pytest.raises(ValueError, match="simulations=k >= 2"):
        make(kernel='etkf')
    make(kernel='etkf', simulations=2)    # estimated hx and R: allowed


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "2"])
def test_simulations_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match="simulations must be a positive integer"):
        make(simulations=value)


@pytest.mark.parametrize("k", [1, 3])
def test_hx_may_be_none_with_a_simulator(k):
    f = DiffusionKDEFilter(np.array([0.0, 1.0]), np.eye(2), 1, 1.0, 200, None, fx, rng=2,
                           vectorized=True, simulate=simulate, simulations=k)
    f.Q = Q
    kf = run_with_kalman(f, cycles=10)
    assert f.hx is None
    assert abs(f.x[0] - kf.x[0]) < np.sqrt(kf.P[0, 0])
    with pytest.raises(TypeError, match=r"hx must be callable \(or None with simulate=\)"):
        DiffusionKDEFilter(np.zeros(2), np.eye(2), 1, 1.0, 20, None, fx)


def test_simulations_need_a_simulator():
    with pytest.raises(ValueError, match="needs simulate="):
        DiffusionKDEFilter(np.zeros(2), np.eye(2), 1, 1.0, 20, lambda X: X @ H.T, fx,
                           vectorized=True, simulations=3)


def test_estimate_pools_over_updates_and_weights_carry():
    f = make(N=50, simulations=3)
    assert f.R_estimate is None and f.carries_weights
    f.predict()
    f.update(np.array([0.5]))
    assert f._noise_dof == 50 * 2
    first = f.R_estimate.copy()
    f.predict()
    f.update(np.array([1.5]))
    assert f._noise_dof == 2 * 50 * 2
    assert f.R_estimate[0, 0] != first[0, 0]
    f.initialize(np.array([0.0, 1.0]), np.eye(2))
    assert f.R_estimate is None


def test_same_seed_is_bit_identical():
    runs = []
    for _ in range(2):
        f = make(N=60, seed=7, simulations=2)
        for z in (0.4, 1.1, 2.3):
            f.predict()
            f.update(np.array([z]))
        runs.append((f.sigmas.copy(), f.R_estimate.copy()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_failed_update_leaves_estimate_and_rng_unchanged():
    calls = {"n": 0, "fail": False}

    def flaky(X, rng):
        calls["n"] += 1
        y = simulate(X, rng)
        return np.full_like(y, np.nan) if calls["fail"] else y
    f = DiffusionKDEFilter(np.array([0.0, 1.0]), np.eye(2), 1, 1.0, 40, no_hx, fx, rng=0,
                           vectorized=True, simulate=flaky, simulations=2)
    f.predict()
    f.update(np.array([0.5]))
    f.predict()
    before = (f.sigmas.copy(), f._noise_scatter.copy(), f._noise_dof, f.rng.bit_generator.state)
    calls["fail"] = True
    with pytest.raises(ValueError, match="simulate returned NaN"):
        f.update(np.array([1.0]))
    np.testing.assert_array_equal(f.sigmas, before[0])
    np.testing.assert_array_equal(f._noise_scatter, before[1])
    assert f._noise_dof == before[2] and f.rng.bit_generator.state == before[3]


def test_missing_components_use_their_block_and_the_estimate_keeps_every_component():
    C = np.array([[0.3, 0.1], [0.1, 0.5]])
    L = np.linalg.cholesky(C)

    def sim2(X, rng):
        return X + rng.standard_normal(X.shape) @ L.T
    f = DiffusionKDEFilter(np.zeros(2), np.eye(2), 2, 1.0, 400, no_hx, lambda X, dt: X,
                           rng=0, vectorized=True, simulate=sim2, simulations=2)
    f.Q = np.eye(2) * 0.01
    f.predict()
    f.update(np.array([0.2, -0.1]))
    f.predict()
    f.update(np.ma.masked_array([0.3, 0.0], mask=[False, True]))
    assert f.R_estimate.shape == (2, 2)
    assert f._noise_dof == 2 * 400
    np.testing.assert_allclose(f.R_estimate, C, atol=0.06)
    assert np.all(f.K[:, 1] == 0)

"""The EnKF-PF bridge: weights, the gamma rule, the move, and its limits."""
import numpy as np
import pytest
from filterpy.kalman import KalmanFilter
from hypothesis import example, given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import multivariate_normal

from filterpy_diffusion.bridge import (
    MAX_MOVE_JITTER, MEMBERS_PER_DIM, RESAMPLE_FRACTION, bridge_analysis, effective_sample_size,
    informed_dimension, jitter_factor, likelihood_fraction, normalised_weights,
    regularised_resample, required_ess, resample_threshold, state_allows_move,
    tempered_log_weights, weighted_mean)

finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False)


def log_weight_arrays(min_size=2, max_size=40):
    return st.integers(min_size, max_size).flatmap(lambda n: arrays(float, n, elements=finite))


def sqrt_core(X, hz, z, R, gamma):
    """Reference ensemble square-root Kalman update (symmetric ensemble-space transform).

    Exact for linear hx: the analysis mean and sample covariance are the
    Kalman update of the ensemble's. Thin SVD of the whitened anomalies, so
    no (N, N) eigenproblem.
    """
    N = X.shape[0]
    A, Y = X - X.mean(0), hz - hz.mean(0)
    Li = np.linalg.inv(np.linalg.cholesky(R))
    U, s, Vt = np.linalg.svd(Y @ Li.T / np.sqrt(N - 1), full_matrices=False)
    d = Vt @ (Li @ (z - hz.mean(0)))
    w = U @ (s * d / (1 + s ** 2)) / np.sqrt(N - 1)
    TA = A + U @ ((1 / np.sqrt(1 + s ** 2) - 1)[:, None] * (U.T @ A))
    return X.mean(0) + w @ A + TA


def weighted_moments(X, log_w):
    w = normalised_weights(log_w)
    m = w @ X
    A = X - m
    return m, (w[:, None] * A).T @ A / (1 - np.sum(w * w))


# ---------------------------------------------------------------- weights
@given(log_weight_arrays(), finite)
def test_ess_between_one_and_n_and_shift_invariant(log_w, shift):
    n = effective_sample_size(log_w)
    assert 1 - 1e-9 <= n <= log_w.size * (1 + 1e-9)
    assert np.isclose(effective_sample_size(log_w + shift), n, rtol=1e-9)


def test_ess_extremes():
    assert effective_sample_size(np.zeros(7)) == pytest.approx(7)
    assert effective_sample_size(np.array([0.0, -np.inf, -np.inf])) == pytest.approx(1)


@given(log_weight_arrays(max_size=30), st.floats(0, 1))
def test_ess_non_increasing_in_gamma_from_equal_weights(log_lik, g):
    """The claim that makes the crossing unique: ESS(gamma) is non-increasing."""
    z = np.zeros_like(log_lik)
    a = effective_sample_size(tempered_log_weights(z, log_lik, g))
    b = effective_sample_size(tempered_log_weights(z, log_lik, min(1.0, g + 0.05)))
    assert b <= a * (1 + 1e-9)


# ---------------------------------------------------------------- the gamma rule
@given(log_weight_arrays(min_size=3), st.floats(0.05, 1.0))
def test_likelihood_fraction_is_the_largest_that_keeps_the_ess(log_lik, frac):
    N = log_lik.size
    n_req = 1 + frac * (N - 1)
    z = np.zeros(N)
    rtol = 1e-8
    g = likelihood_fraction(z, log_lik, n_req, rtol=rtol)
    assert 0.0 <= g <= 1.0
    assert effective_sample_size(tempered_log_weights(z, log_lik, g)) >= n_req * (1 - 1e-9)
    if g < 1.0:
        assert effective_sample_size(tempered_log_weights(z, log_lik, g + 2 * rtol)) < n_req


def test_likelihood_fraction_ends():
    ll = np.array([0.0, -1.0, -50.0, -3.0])
    assert likelihood_fraction(np.zeros(4), ll, 1.0) == 1.0
    # the current weights already fail: nothing more is weighted
    assert likelihood_fraction(np.array([0.0, -40, -40, -40]), ll, 2.0) == 0.0
    # an impossible member (-inf) is fine at gamma = 0 and excluded for gamma > 0
    g = likelihood_fraction(np.zeros(3), np.array([0.0, -np.inf, -1.0]), 1.5)
    assert g == 1.0


def test_required_ess_is_c_times_r_plus_one_and_independent_of_n():
    assert required_ess(3) == MEMBERS_PER_DIM * 4
    assert required_ess(0, members_per_dim=1) == 1.0
    with pytest.raises(ValueError, match="members_per_dim"):
        required_ess(3, members_per_dim=0.5)
    with pytest.raises(ValueError, match="informed_dim"):
        required_ess(-1)


@given(st.integers(1, 10 ** 6), st.integers(0, 50), st.floats(1.0, 10.0), st.floats(0.0, 1.0))
def test_resample_threshold_is_the_floor_or_rho_n_whichever_is_larger(N, r, c, rho):
    n = resample_threshold(N, r, c, rho)
    floor = required_ess(r, c)
    assert n >= floor and n >= rho * N and n in (floor, rho * N)
    assert resample_threshold(N, r, c, 0.0) == floor
    # It grows with N (the Monte Carlo variance bound 1 / (rho N) vanishes) ...
    assert resample_threshold(4 * N, r, c, rho) >= n
    # ... and is the default fraction unless told otherwise.
    assert resample_threshold(N, r, c) == resample_threshold(N, r, c, RESAMPLE_FRACTION)


def test_resample_threshold_rejects_bad_fractions():
    for bad in (-0.1, 1.5, np.nan, True):
        with pytest.raises(ValueError, match="resample_fraction must be"):
            resample_threshold(10, 1, 2.0, bad)
    with pytest.raises(ValueError, match="N must be"):
        resample_threshold(0, 1)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 12), st.integers(1, 6), st.integers(1, 6))
@example(seed=1273, N=2, d=1, m=2)     # two close members far from 0: the mean's rounding
def test_informed_dimension_is_the_generic_rank(seed, N, d, m):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, d))
    H = rng.normal(size=(m, d))
    assert informed_dimension(X @ H.T, np.eye(m) * 0.3) == min(N - 1, d, m)


@settings(max_examples=60, deadline=None)
@given(arrays(float, st.tuples(st.integers(2, 12), st.integers(1, 6)),
              elements=st.floats(-50.0, 50.0, allow_nan=False)),
       st.integers(1, 4), st.floats(0.05, 3.0), st.integers(0, 2**31))
@example(hz=np.array([[1e8, 1e8], [1e8 + 1e-7, 1e8]]), copies=1, r2=0.3, seed=0)
def test_whitened_spectrum_gives_the_informed_dimension_and_the_finite_size_factor(
        hz, copies, r2, seed):
    # One SVD serves the filter's rank and its inflation floor: both must be
    # what the two public functions compute apart, on full-rank ensembles,
    # repeated members (rank below N - 1) and rounding-level spread.
    from filterpy_diffusion.etkf import finite_size_factor, finite_size_inflation, whitened_spectrum
    hz = np.repeat(hz, copies, axis=0)
    m = hz.shape[1]
    R = r2 * np.eye(m) + 0.1 * r2 * np.ones((m, m))
    z = hz.mean(0) + np.random.default_rng(seed).normal(size=m)
    from filterpy_diffusion.etkf import spectrum_rank
    s, du = whitened_spectrum(hz, z, R)
    assert s.shape == du.shape == (min(len(hz), m),)
    assert spectrum_rank((s, du)) == informed_dimension(hz, R)
    assert finite_size_inflation(s, du, len(hz)) == finite_size_factor(hz, z, R)


# ---------------------------------------------------------------- the move
def test_regularised_resample_equal_weights_is_a_copy():
    X = np.arange(12.0).reshape(6, 2)
    Xn, info = regularised_resample(X, np.zeros(6), 0)
    assert np.array_equal(Xn, X) and info['indices'] is None and Xn is not X


def test_regularised_resample_keeps_singletons_and_jitters_copies():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    log_w = rng.normal(size=50) * 2
    Xn, info = regularised_resample(X, log_w, 5)
    idx = info['indices']
    counts = np.bincount(idx, minlength=50)[idx]
    assert np.array_equal(Xn[counts == 1], X[idx[counts == 1]])
    assert np.all(np.any(Xn[counts > 1] != X[idx[counts > 1]], axis=1))
    assert info['n_jittered'] == np.sum(counts > 1)
    assert info['h'] == jitter_factor(effective_sample_size(log_w), 3)
    Xm, _ = regularised_resample(X, log_w, 5)
    assert np.array_equal(Xn, Xm)          # same seed, bit-identical


def test_regularised_resample_jitter_has_the_scott_scaled_weighted_covariance():
    """Two members share the weight: copies spread as N(x_i, h^2 C_w)."""
    N = 2000
    X = np.zeros((N, 2))
    X[0], X[1] = [1.0, 0.0], [-1.0, 0.0]
    log_w = np.full(N, -np.inf)
    log_w[:2] = 0.0
    Xn, info = regularised_resample(X, log_w, 3)
    _, C = weighted_moments(X, log_w)
    copies = Xn[info['indices'] == 0] - X[0]
    emp = np.cov(copies.T)
    assert np.allclose(emp, info['h'] ** 2 * C, atol=0.1 * info['h'] ** 2 * C[0, 0])


def test_regularised_resample_shrink_keeps_the_weighted_mean_and_covariance():
    """shrink=True: the resampled, jittered ensemble has the weighted moments.

    Without shrinking the jittered copies are wider by about ``1 + h^2``
    (here h^2 ~ 0.085), the variance bias the filter's particle-filter moves
    must not accumulate.
    """
    rng = np.random.default_rng(7)
    N = 20000
    X = rng.normal(size=(N, 2)) @ np.array([[1.0, 0.5], [0.0, 1.0]])
    log_w = -0.5 * ((X[:, 0] - 0.8) / 0.08) ** 2
    m, C = weighted_moments(X, log_w)
    Xs, info = regularised_resample(X, log_w, 3, shrink=True)
    Xj, _ = regularised_resample(X, log_w, 3)
    sd = np.sqrt(np.diag(C))
    assert np.all(np.abs(Xs.mean(0) - m) < 0.02 * sd)
    np.testing.assert_allclose(np.diag(np.cov(Xs.T)), np.diag(C), rtol=0.03)
    assert np.all(np.diag(np.cov(Xj.T)) > (1 + 0.5 * info['h'] ** 2) * np.diag(C))
    # Members drawn once are still kept as they are.
    once = np.bincount(info['indices'], minlength=N)[info['indices']] == 1
    assert np.array_equal(Xs[once], X[info['indices'][once]])


def test_regularised_resample_single_survivor_jitters_with_the_ensemble_covariance():
    X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    Xn, info = regularised_resample(X, np.array([0.0, -np.inf, -np.inf, -np.inf]), 0)
    assert np.all(np.isfinite(Xn)) and info['n_jittered'] == 4
    assert np.unique(Xn, axis=0).shape[0] == 4


def test_regularised_resample_jitter_leaves_out_the_process_noise():
    """process_noise=Q: copies spread as N(x_i, (h^2 C_w - Q)_+), the kernel less Q."""
    N = 4000
    X = np.zeros((N, 2))
    X[0], X[1] = [1.0, 1.0], [-1.0, -1.0]      # C_w = [[2, 2], [2, 2]] (unbiased, two members)
    log_w = np.full(N, -np.inf)
    log_w[:2] = 0.0
    _, C = weighted_moments(X, log_w)
    h2 = jitter_factor(2.0, 2) ** 2
    Q = np.diag([0.5 * h2 * C[0, 0], 2.0 * h2 * C[1, 1]])
    Xn, info = regularised_resample(X, log_w, 3, process_noise=Q)
    emp = np.cov((Xn[info['indices'] == 0] - X[0]).T)
    lam, V = np.linalg.eigh(h2 * C - Q)                 # one eigenvalue of each sign here
    assert lam[0] < 0 < lam[1]
    expected = (V * np.clip(lam, 0, None)) @ V.T
    np.testing.assert_allclose(emp, expected, atol=0.08 * h2 * C[0, 0])
    # Q above the whole kernel: no jitter at all; Q = 0: the whole kernel, bit for bit.
    Xq, info_q = regularised_resample(X, log_w, 3, process_noise=2 * h2 * C + np.eye(2))
    assert np.array_equal(Xq, X[info_q['indices']])
    X0, _ = regularised_resample(X, log_w, 3, process_noise=np.zeros((2, 2)))
    assert np.array_equal(X0, regularised_resample(X, log_w, 3)[0])


@pytest.mark.parametrize("bad", [np.eye(3), -np.eye(2), np.array([[1.0, 2.0], [0.0, 1.0]])])
def test_regularised_resample_rejects_a_bad_process_noise(bad):
    with pytest.raises(ValueError, match="process_noise"):
        regularised_resample(np.arange(8.0).reshape(4, 2), np.log([0.7, 0.1, 0.1, 0.1]), 0,
                             process_noise=bad)


def test_jitter_factor_vanishes_as_n_eff_grows():
    assert jitter_factor(1, 3) == 1.0
    assert jitter_factor(1e6, 3) < jitter_factor(100, 3) < jitter_factor(10, 3) < 1.0


# ---------------------------------------------------------------- the limits
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 5), st.floats(1.0, 20.0))
def test_rank_deficient_ensemble_is_exactly_the_gaussian_core(seed, N, c):
    """N <= r + 1 with c >= 1: n_required >= N, gamma = 0, the core's answer bit for bit."""
    rng = np.random.default_rng(seed)
    m = N + 1
    X = rng.normal(size=(N, m))
    z = rng.normal(size=m)
    R = np.eye(m) * 0.5
    Xa, lw, info = bridge_analysis(X, np.zeros(N), z, R, lambda X: X, sqrt_core, rng,
                                   members_per_dim=c)
    assert info['informed_dim'] == N - 1 and info['n_required'] >= N
    assert info['gamma'] == 0.0 and info['moved']
    assert np.array_equal(Xa, sqrt_core(X, X, z, R, 0.0))
    assert np.array_equal(lw, np.zeros(N))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 16), N=st.integers(4, 40), d=st.integers(2, 12),
       m=st.integers(1, 3))
@example(seed=0, N=10, d=3, m=1)      # N = c (d + 1): the core, as 'state' gives there
@example(seed=0, N=11, d=3, m=1)      # above c (d + 1), but Scott's h^2 = 11^(-2/7) > 1/2
@example(seed=0, N=12, d=3, m=1)      # both conditions met: a move is allowed
@example(seed=0, N=40, d=10, m=3)     # N > c (d + 1) = 27.5, but h^2 = 40^(-1/7) > 1/2
def test_move_members_auto_is_the_core_on_too_large_a_state_and_nothing_new_otherwise(seed, N, d,
                                                                                    m):
    """move_members='auto': no move unless N > c (min(N - 1, d) + 1), the members a fully
    observed state of this size needs, and Scott's h^2 for N members in min(N - 1, d)
    directions is below MAX_MOVE_JITTER; where both hold, the plain rule bit for bit."""
    m = min(m, d - 1)                        # fewer observed than state directions
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, d)) * np.linspace(1.0, 2.0, d)
    log_w = rng.normal(size=N) * 0.3        # carried weights too
    z = X[0, :m] + rng.normal(size=m)
    R = np.eye(m) * 0.5

    def hx(X):
        return X[:, :m]
    gated = bridge_analysis(X, log_w, z, R, hx, sqrt_core, seed, move_members='auto')
    plain = bridge_analysis(X, log_w, z, R, hx, sqrt_core, seed)
    k = min(N - 1, d)
    if N <= MEMBERS_PER_DIM * (k + 1) or N ** (-2.0 / (k + 4)) >= MAX_MOVE_JITTER:
        Xa, lw, info = gated
        assert info['counted_dim'] == max(info['informed_dim'], k)
        assert info['n_required'] >= N and info['gamma'] == 0.0 and info['moved']
        # gamma = 0: the carried weights alone are resampled, then the core.
        ref = regularised_resample(X, log_w - log_w.max(), seed)[0]
        assert np.array_equal(Xa, sqrt_core(ref, hx(ref), z, R, 0.0))
        assert np.array_equal(lw, np.zeros(N))
    else:
        assert gated[2] == plain[2]
        assert np.array_equal(gated[0], plain[0]) and np.array_equal(gated[1], plain[1])


def test_state_allows_move_boundaries_and_bad_input():
    # Scott's h^2 = N^(-2 / (d + 4)) reaches 1/2 at N = 2^((d + 4) / 2): 11.3 for
    # d = 3, exactly 128 for d = 10 (not below 1/2 there); c (d + 1) = 10 for d = 3.
    assert MAX_MOVE_JITTER == 0.5 and MEMBERS_PER_DIM == 2.5
    assert not state_allows_move(10, 3) and not state_allows_move(11, 3)
    assert state_allows_move(12, 3)
    assert not state_allows_move(128, 10) and state_allows_move(129, 10)
    assert not state_allows_move(10 ** 6, 40)
    # Only the state's directions the ensemble spans count, min(N - 1, dim_x):
    # 19 of 1000 at N = 20 (Scott's h^2 = 20^(-2/23) > 1/2, c * 20 > 20).
    assert not state_allows_move(20, 1000)
    # max_jitter = 1 leaves the members' count alone.
    assert state_allows_move(40, 10, max_jitter=1.0) and not state_allows_move(27, 10, max_jitter=1.0)
    for bad in ({'N': 1, 'dim_x': 3}, {'N': 20.0, 'dim_x': 3}, {'N': 20, 'dim_x': 0},
                {'N': 20, 'dim_x': 3, 'max_jitter': 0.0}, {'N': 20, 'dim_x': 3, 'max_jitter': 1.5},
                {'N': 20, 'dim_x': 3, 'members_per_dim': 0.5}):
        with pytest.raises(ValueError):
            state_allows_move(**bad)


def test_many_members_fixed_dimension_is_a_particle_filter_step():
    """N -> infinity at fixed d: gamma -> 1, members kept, exact-likelihood weights carried."""
    rng = np.random.default_rng(2)
    R = np.array([[0.5]])
    z = np.array([0.7])
    gammas = []
    for N in (5, 50, 5000):
        X = rng.normal(size=(N, 2))
        log_w = rng.normal(size=N) * 0.1
        Xa, lw, info = bridge_analysis(X, log_w, z, R, lambda X: X[:, :1], sqrt_core, rng)
        gammas.append(info['gamma'])
    assert gammas[-1] == 1.0 and gammas[0] < 1.0
    assert np.array_equal(Xa, X) and not info['moved']
    ll = multivariate_normal(mean=z, cov=R).logpdf(X[:, :1])
    assert np.allclose(lw, log_w + ll - np.max(log_w + ll))


def test_carried_weights_are_resampled_below_rho_n_though_above_the_floor():
    """ESS between c (r + 1) and rho N: a particle-filter move (gamma = 1), no core.

    The floor alone (resample_fraction=0, the rule before) carries these
    weights; the relative threshold resamples them.
    """
    rng = np.random.default_rng(4)
    N = 100
    X = rng.normal(size=(N, 2))
    log_w = np.full(N, -np.inf)
    log_w[:6] = 0.0          # six members carry the weight: ESS <= 6 < rho N
    z, R = np.array([0.1]), np.array([[50.0]])     # a flat likelihood keeps ESS near 6

    def no_core(*args):
        raise AssertionError("the Gaussian core must not run when gamma = 1")

    hx = lambda X: X[:, :1]    # noqa: E731
    Xc, lwc, infoc = bridge_analysis(X, log_w, z, R, hx, no_core, 0, resample_fraction=0.0)
    assert infoc['n_required'] < infoc['ess'] < 0.1 * N      # between the floor and rho N
    assert not infoc['moved'] and np.array_equal(Xc, X)       # the floor alone carries
    Xa, lw, info = bridge_analysis(X, log_w, z, R, hx, no_core, 0)
    assert info['n_resample'] == resample_threshold(N, 1) > info['ess']
    assert info['moved'] and info['gamma'] == 1.0
    assert np.array_equal(lw, np.zeros(N))
    assert np.unique(Xa, axis=0).shape[0] > 6        # the copies were jittered apart
    # Every member descends from one of the six weighted ones (copies jittered).
    near = np.min(np.linalg.norm(Xa[:, None, :] - X[None, :6, :], axis=2), axis=1)
    assert np.all(near < np.max(np.linalg.norm(X[:6] - X[:6].mean(0), axis=1)) * 3)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(3, 60), st.floats(0.05, 5.0), st.floats(0.0, 1.0),
       st.floats(0.0, 3.0))
def test_after_every_analysis_weights_keep_the_threshold_or_were_reset(seed, N, r_scale, rho,
                                                                       w_scale):
    """Carried weights keep ESS >= n_resample; a move leaves equal weights."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 2))
    log_w = rng.normal(size=N) * w_scale
    R = np.eye(1) * r_scale
    z = rng.normal(size=1)
    Xa, lw, info = bridge_analysis(X, log_w, z, R, lambda X: X[:, :1], sqrt_core, rng,
                                   resample_fraction=rho)
    assert info['n_resample'] == resample_threshold(N, info['informed_dim'], MEMBERS_PER_DIM, rho)
    if info['moved']:
        assert np.array_equal(lw, np.zeros(N))
    else:
        assert info['gamma'] == 1.0 and np.array_equal(Xa, X)
        assert effective_sample_size(lw) >= info['n_resample']


@pytest.mark.parametrize("c, rho, regime", [(1.0, 0.0, "carry"), (1.0, RESAMPLE_FRACTION, "pf"),
                                            (300.0, RESAMPLE_FRACTION, "split"),
                                            (2000.0, RESAMPLE_FRACTION, "core")])
def test_linear_gaussian_matches_kalman_for_every_gamma(c, rho, regime):
    """The tempered split is exact: weights for L^gamma, Kalman with R / (1 - gamma).

    'carry': gamma = 1 and the weights are carried; 'pf': ESS(w L) < rho N,
    so gamma = 1 and the ensemble is resampled (no core), here with the
    variance-keeping jitter (the plain one widens copies by 1 + h^2).
    """
    rng = np.random.default_rng(11)
    N, d = 4000, 2
    H = np.array([[1.0, 0.5], [0.0, 1.0]])
    R = np.diag([0.5, 0.8])
    P0 = np.array([[4.0, 1.0], [1.0, 3.0]])
    X = rng.multivariate_normal([1.0, -1.0], P0, size=N)
    z = np.array([2.0, 0.5])
    Xa, lw, info = bridge_analysis(X, np.zeros(N), z, R, lambda X: X @ H.T, sqrt_core, rng,
                                   members_per_dim=c, resample_fraction=rho,
                                   shrink_jitter=True)
    g = info['gamma']
    assert {"carry": g == 1.0 and not info['moved'], "pf": g == 1.0 and info['moved'],
            "split": 0.0 < g < 1.0, "core": g == 0.0}[regime]
    kf = KalmanFilter(dim_x=d, dim_z=2)
    kf.x, kf.P, kf.H, kf.R = X.mean(0), np.cov(X.T), H, R
    kf.update(z)
    m, P = weighted_moments(Xa, lw)
    sd = np.sqrt(np.diag(kf.P))
    assert np.all(np.abs(m - kf.x) < 0.1 * sd)
    assert np.allclose(np.diag(P), np.diag(kf.P), rtol=0.15)


# ---------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    X = np.zeros((4, 2)) + np.arange(4)[:, None]
    hx = lambda X: X          # noqa: E731
    z, R = np.zeros(2), np.eye(2)
    with pytest.raises(ValueError, match="log weights must have shape"):
        bridge_analysis(X, np.zeros(3), z, R, hx, sqrt_core, 0)
    with pytest.raises(ValueError, match="members_per_dim"):
        bridge_analysis(X, np.zeros(4), z, R, hx, sqrt_core, 0, members_per_dim=0.9)
    with pytest.raises(ValueError, match="resample_fraction must be"):
        bridge_analysis(X, np.zeros(4), z, R, hx, sqrt_core, 0, resample_fraction=2.0)
    with pytest.raises(ValueError, match="move_members must be one of"):
        bridge_analysis(X, np.zeros(4), z, R, hx, sqrt_core, 0, move_members=True)
    with pytest.raises(ValueError, match="log weights must not be NaN"):
        bridge_analysis(X, np.array([0, np.nan, 0, 0]), z, R, hx, sqrt_core, 0)
    with pytest.raises(ValueError, match="positive definite"):
        bridge_analysis(X, np.zeros(4), z, np.zeros((2, 2)), hx, sqrt_core, 0)
    with pytest.raises(ValueError, match="one row per member"):
        bridge_analysis(X, np.zeros(4), z, R, lambda X: X[:2], sqrt_core, 0)
    for bad in (np.nan, -1.0, 0.0, np.inf, True, "1.1"):
        rng = np.random.default_rng(0)
        state = rng.bit_generator.state
        with pytest.raises(ValueError, match="move_inflation must be"):
            bridge_analysis(X, np.zeros(4), z, R, hx, sqrt_core, rng, move_inflation=bad)
        assert rng.bit_generator.state == state      # refused before any draw
    with pytest.raises(ValueError, match="log_lik must not be NaN"):
        likelihood_fraction(np.zeros(2), np.array([0.0, np.nan]), 1.0)
    with pytest.raises(ValueError, match="n_required"):
        likelihood_fraction(np.zeros(2), np.zeros(2), 0.0)


@pytest.mark.parametrize("regime", ["carry", "pf", "split"])
def test_move_inflation_scales_only_a_particle_filter_move(regime):
    # A callable factor is asked for only at a gamma = 1 move, where it scales
    # the resampled anomalies by max(1, l) about their mean; carried weights
    # and a move with a core are left to the core's own inflation.
    rng0 = np.random.default_rng(5)
    N = 400
    X = rng0.normal(size=(N, 1))
    z = {"carry": 0.2, "pf": 1.0, "split": 3.0}[regime]
    calls = []

    def factor():
        calls.append(1)
        return 1.3

    args = (X, np.zeros(N), np.array([z]), np.array([[0.1]]), lambda X: X, sqrt_core)
    Xa, _, info = bridge_analysis(*args, 1, move_inflation=factor)
    Xb, _, _ = bridge_analysis(*args, 1)
    Xc, _, _ = bridge_analysis(*args, 1, move_inflation=0.7)      # below 1: no deflation
    pf = info['gamma'] == 1.0 and info['moved']
    assert {"carry": not info['moved'], "pf": pf, "split": 0 < info['gamma'] < 1}[regime]
    assert len(calls) == int(pf)
    np.testing.assert_array_equal(Xc, Xb)
    if pf:
        m = Xb.mean(0)
        np.testing.assert_allclose(Xa, m + 1.3 * (Xb - m), rtol=0, atol=1e-12)
        assert info['move_inflation'] == 1.3
    else:
        np.testing.assert_array_equal(Xa, Xb)


def test_no_member_can_explain_z_names_the_cause():
    X = np.zeros((4, 1)) + np.arange(4)[:, None]
    with pytest.raises(FloatingPointError, match="zero posterior weight"):
        bridge_analysis(X, np.array([0.0, -np.inf, -np.inf, -np.inf]), np.array([1e200]),
                        np.eye(1), lambda X: X, sqrt_core, 0)


def test_weighted_mean():
    X = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert np.allclose(weighted_mean(X, np.log([0.25, 0.75])), [1.5, 2.5])


@given(st.integers(2, 10_000), st.integers(1, 500))
def test_move_dimension_is_what_n_members_span(N, dim_x):
    from filterpy_diffusion.bridge import move_dimension
    X = np.random.default_rng(0).normal(size=(N, dim_x)) if N * dim_x <= 20_000 else None
    d = move_dimension(N, dim_x)
    assert d == min(N - 1, dim_x)
    if X is not None:
        assert d == np.linalg.matrix_rank(X - X.mean(0))

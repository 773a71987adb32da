"""DiffusionKDEFilter(kernel='bridge'): the EnKF-PF bridge as a filter.

The maths of the bridge is tested in test_bridge.py; here its wiring: the
filter limits (Kalman at large N, the pure ETKF when N is too small for any
weighting), carried weights, options.
"""
import numpy as np
import pytest
from scipy.special import softmax

from filterpy_diffusion import DiffusionKDEFilter
from filterpy_diffusion.bridge import MEMBERS_PER_DIM, RESAMPLE_FRACTION, bridge_analysis
from filterpy_diffusion.etkf import etkf_analysis, finite_size_factor
from filterpy_diffusion.policy import Policy
from filterpy_diffusion.weights import weighted_moments
from kalman_twin import F, H, Q, R, assert_close_to_kalman, run_with_kalman


def make(N, seed=0, **kw):
    f = DiffusionKDEFilter(np.array([0.0, 1.0]), np.eye(2), 1, 1.0, N, lambda x: H @ x,
                           lambda x, dt: F @ x, kernel='bridge', rng=seed, **kw)
    f.R, f.Q = R.copy(), Q.copy()
    return f


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_linear_gaussian_matches_kalman_filter_at_large_N(seed):
    # The target, with the defaults (plain Scott jitter). Before the
    # relative resampling threshold rho N the weights fell to ESS ~ c (r + 1)
    # = 4 of 2000 before a move and the mean was 0.13 / 0.36 / 0.09
    # posterior sd off on these seeds.
    f = make(2000, seed=seed, inflation=None)
    kf = run_with_kalman(f)
    assert_close_to_kalman(f, kf, mean_sd=0.1, var_rtol=0.15)


def test_the_jitter_less_q_removes_the_widening_of_the_kalman_limit():
    # Policy.move_jitter_minus_q: with Q = 0.02 I the next forecast separates a
    # move's copies by Q, and the jitter adds only (h^2 C_w - Q)_+. Ten filter
    # seeds on one truth, N = 2000, every default: the variances against
    # KalmanFilter average within 2% of 1; the whole kernel leaves them higher.
    def ratios(policy):
        out = []
        for seed in range(10):
            f = DiffusionKDEFilter(np.array([0.0, 1.0]), np.eye(2), 1, 1.0, 2000,
                                   lambda x: H @ x, lambda x, dt: F @ x, rng=seed, policy=policy)
            f.R, f.Q = R.copy(), Q.copy()
            kf = run_with_kalman(f)
            out.append(np.diag(f.P) / np.diag(kf.P))
        return np.mean(out, axis=0)
    rule, whole = ratios(Policy()), ratios(Policy(move_jitter_minus_q=False))
    assert np.all(np.abs(rule - 1) < 0.02), rule
    assert np.all(whole > rule + 0.01), (whole, rule)


def test_weights_are_carried_while_the_weighted_step_keeps_enough_members():
    f = make(400, seed=1)
    f.predict()
    f.update(np.array([0.3]))
    # One observed direction: the first likelihood leaves more than
    # rho N = RESAMPLE_FRACTION * 400 effective members, so the whole
    # likelihood goes to the weights and nothing moves.
    assert f.gamma == 1.0 and RESAMPLE_FRACTION * 400 <= f.ess < 400
    assert not np.all(f.weights == f.weights[0])
    before = f.sigmas.copy()
    f.predict()   # members move, weights are kept
    assert not np.array_equal(before, f.sigmas)
    assert not np.all(f.weights == f.weights[0])


def test_too_few_members_for_any_weighting_is_the_etkf():
    # N = 2 <= r + 1: n_required >= N, gamma = 0, the analysis is the ETKF
    # core with finite-size inflation (and its rotation), on the same draws.
    f = make(2, seed=4)
    f.predict()
    X = f.sigmas.copy()
    state = f.rng.bit_generator.state
    f.update(np.array([0.7]))
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    Xa, _ = etkf_analysis(X, X @ H.T, np.array([0.7]), R, inflation='finite-size', rot=True,
                          rng=rng)
    assert f.gamma == 0.0
    np.testing.assert_array_equal(f.sigmas, Xa)
    np.testing.assert_array_equal(f.weights, np.full(2, 0.5))


def test_options():
    assert make(20).members_per_dim == MEMBERS_PER_DIM
    assert make(20).inflation == 'auto'          # decided per update, next test
    with pytest.raises(ValueError, match="members_per_dim"):
        DiffusionKDEFilter(np.zeros(2), np.eye(2), 1, 1.0, 20, lambda x: x[:1], lambda x, dt: x,
                           kernel='covariance', members_per_dim=3)
    with pytest.raises(ValueError, match="members_per_dim"):
        DiffusionKDEFilter(np.zeros(2), np.eye(2), 1, 1.0, 20, lambda x: x[:1], lambda x, dt: x,
                           gaussian_core='etkf', members_per_dim=3)
    with pytest.raises(ValueError, match="members_per_dim must be"):
        make(20, members_per_dim=0.5)
    with pytest.raises(ValueError, match="sampler"):
        make(20, sampler='ode')
    with pytest.raises(ValueError, match="R is singular|positive definite"):
        f = make(20)
        f.predict()
        f.update(np.array([0.1]), R=np.zeros((1, 1)))


@pytest.mark.parametrize("kernel", ["etkf", "bridge", "auto"])
def test_auto_inflation_is_finite_size_when_the_ensemble_spans_the_observations(kernel):
    # inflation='auto': EnKF-N while the predicted measurements have rank dim_z;
    # with N - 1 < dim_z the geometric blend of EnKF-N's and Miyoshi's factors,
    # weighted by the spanned share r / dim_z.
    from filterpy_diffusion.etkf import finite_size_factor
    from filterpy_diffusion.inflation import innovation_lambda
    rng = np.random.default_rng(4)
    for N, m in [(10, 3), (5, 8)]:
        H = rng.normal(size=(m, m))

        def make_f(**kw):
            return DiffusionKDEFilter(np.zeros(m), np.eye(m), m, 1.0, N, lambda x: x @ H.T,
                                      lambda x, dt: x, kernel=kernel, rng=1, vectorized=True, **kw)
        f = make_f()
        hz = f.sigmas @ H.T
        z = 3.0 + rng.normal(size=m)           # far from the ensemble: inflation is needed
        if N - 1 >= m:
            ref, lam = make_f(inflation='finite-size'), 1.0
        else:
            share = (N - 1) / m                # the rank of N generic members' anomalies
            lam = innovation_lambda(hz, z, f.R, 1.0, f.inflation_var)
            factor = np.exp(share * np.log(finite_size_factor(hz, z, f.R))
                            + (1 - share) * 0.5 * np.log(max(lam, 1.0)))
            ref = make_f(inflation=float(factor))
        f.update(z)
        ref.update(z)
        np.testing.assert_allclose(f.sigmas, ref.sigmas, rtol=1e-12, atol=1e-12)
        assert f.inflation_factor == pytest.approx(ref.inflation_factor, rel=1e-12)
        assert f.inflation_factor > 1.0 and f.inflation_mean == lam   # only Miyoshi carries state


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_move_inflates_at_least_by_the_forecast_finite_size_factor(seed):
    # A narrow-enough ensemble for weights to take part of the likelihood
    # (0 < gamma < 1): the core sees R / (1 - gamma), whose weaker
    # innovation asks for less inflation than the whole z does. With
    # Policy.core_inflation_floor the move uses the forecast's factor for
    # the whole z there; everything before the core is the same draw.
    d, N, z = 3, 40, np.full(3, 1.5)
    X = np.random.default_rng(seed).normal(size=(N, d))
    out = {}
    for floor in (True, False):
        f = DiffusionKDEFilter(np.zeros(d), np.eye(d), d, 1.0, N, lambda x: x, lambda x, dt: x,
                               kernel='bridge', rng=seed, policy=Policy(core_inflation_floor=floor))
        f.R = 0.5 * np.eye(d)
        f.sigmas = X.copy()
        f.update(z)
        out[floor] = f
    l_full = finite_size_factor(X, z, 0.5 * np.eye(d))
    on, off = out[True], out[False]
    assert 0 < on.gamma == off.gamma < 1
    assert off.inflation_factor < l_full          # the floor binds here
    assert on.inflation_factor == pytest.approx(max(off.inflation_factor, l_full), rel=1e-12)
    assert not np.allclose(on.sigmas, off.sigmas)


def test_no_inflation_floor_for_a_forecast_the_mode_test_split():
    # The floor is EnKF-N's estimate for one Gaussian forecast; a forecast
    # split into modes (whose move the bridge gets because z tells them
    # apart) keeps the core's own factor.
    d, N, z, R = 3, 40, np.full(3, 1.5), 0.5 * np.eye(3)
    X = np.random.default_rng(0).normal(size=(N, d))
    split = (np.arange(N) >= N // 2).astype(int)
    factors = {}
    for name, labels in (('one', np.zeros(N, int)), ('split', split)):
        f = DiffusionKDEFilter(np.zeros(d), np.eye(d), d, 1.0, N, lambda x: x, lambda x, dt: x,
                               rng=0)
        out = f._bridge(X, z, R, kernels=True, labels=labels, rest_test=False)
        assert 0 < out['gamma'] < 1
        factors[name] = out['inflation_factor']
    l_full = finite_size_factor(X, z, R)
    assert factors['one'] == pytest.approx(l_full, rel=1e-12)
    assert factors['split'] < l_full



#: The opt-in variance-keeping particle-filter move.
SHRINK = Policy(shrink_jitter=True)


def _pf_move(policy, N=400, seed=0):
    """A forecast whose whole likelihood leaves fewer than rho N but more than
    c (r + 1) effective members: a particle-filter move (gamma = 1, no core)."""
    d, z, R = 3, np.full(3, 1.0), 0.5 * np.eye(3)
    X = np.random.default_rng(seed).normal(size=(N, d))
    f = DiffusionKDEFilter(np.zeros(d), np.eye(d), d, 1.0, N, lambda x: x, lambda x, dt: x,
                           kernel='bridge', rng=seed, policy=policy)
    f.R = R
    f.Q = np.zeros((d, d))    # a deterministic model: the jitter is Scott's whole kernel
    f.sigmas = X.copy()
    f.rng_before = np.random.default_rng()
    f.rng_before.bit_generator.state = f.rng.bit_generator.state
    f.update(z)
    assert f.gamma == 1.0 and np.all(f.weights == f.weights[0])    # moved, weights reset
    return f, X, z, R


def _never(*args):
    raise AssertionError("a particle-filter move runs no core")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_particle_filter_move_keeps_the_weighted_covariance_and_takes_the_floor(seed):
    # Policy.shrink_jitter: no core runs at gamma = 1, so the move keeps the
    # weighted covariance (Liu-West) and takes the floor a core would get:
    # the shrunk resample's anomalies scaled by l_full about their mean, on
    # the same draws as bridge_analysis with the filter's generator.
    on, X, z, R = _pf_move(SHRINK, seed=seed)
    shrunk, _, info = bridge_analysis(X, np.zeros(len(X)), z, R, lambda X: X, _never,
                                      on.rng_before, shrink_jitter=True)
    assert info['gamma'] == 1.0 and info['moved']
    l_full = finite_size_factor(X, z, R)
    assert l_full > 1.0 and on.inflation_factor == pytest.approx(l_full, rel=1e-12)
    m = shrunk.mean(0)
    np.testing.assert_allclose(on.sigmas, m + l_full * (shrunk - m), rtol=0, atol=1e-12)


@pytest.mark.parametrize("policy", [Policy(), Policy(shrink_jitter=False),
                                    SHRINK.replace(core_inflation_floor=False)])
def test_without_the_floor_a_particle_filter_move_is_the_plain_jitter(policy):
    # The default, and shrinking without the floor it is paired with: the
    # plain Scott jitter, whose widening of the copies is its spread.
    f, X, z, R = _pf_move(policy)
    plain, _, _ = bridge_analysis(X, np.zeros(len(X)), z, R, lambda X: X, _never, f.rng_before)
    assert f.inflation_factor == 1.0
    np.testing.assert_allclose(f.sigmas, plain, rtol=0, atol=1e-12)


def test_a_shrunk_particle_filter_move_keeps_the_weighted_covariance():
    # The jittered copies are drawn towards the weighted mean first, so the
    # move keeps the weighted covariance (times the floor, about 1.0004
    # here); the plain Scott jitter widens the copies by 1 + h^2.
    N = 4000
    keep, X, z, R = _pf_move(SHRINK, N=N)
    wide, _, _, _ = _pf_move(Policy(shrink_jitter=False), N=N)
    lw = -0.5 * np.einsum('ij,jk,ik->i', X - z, np.linalg.inv(R), X - z)
    _, _, A, _, cov = weighted_moments(X, None, softmax(lw))
    C = cov(A, A)
    np.testing.assert_allclose(np.diag(np.cov(keep.sigmas.T)), np.diag(C), rtol=0.06)
    assert np.all(np.diag(np.cov(wide.sigmas.T)) > 1.1 * np.diag(C))


def test_a_move_jitters_its_copies_by_the_kernel_less_the_process_noise():
    # Policy.move_jitter_minus_q: the next predict() adds N(0, Q) to every
    # member, so the copies get only (h^2 C_w - Q)_+; with Q = 0 (a
    # deterministic model, every DAPPER set-up) nothing changes, bit for bit.
    f0, X, z, R = _pf_move(Policy())
    off, _, _, _ = _pf_move(Policy(move_jitter_minus_q=False))
    np.testing.assert_array_equal(f0.sigmas, off.sigmas)
    for Q in (0.02 * np.eye(3), 10.0 * np.eye(3)):
        f = DiffusionKDEFilter(np.zeros(3), np.eye(3), 3, 1.0, len(X), lambda x: x,
                               lambda x, dt: x, kernel='bridge', rng=0)
        f.R, f.Q, f.sigmas = R, Q, X.copy()
        before = np.random.default_rng()
        before.bit_generator.state = f.rng.bit_generator.state
        f.update(z)
        ref, _, _ = bridge_analysis(X, np.zeros(len(X)), z, R, lambda X: X, _never, before,
                                    process_noise=Q)
        np.testing.assert_allclose(f.sigmas, ref, rtol=0, atol=1e-12)
    # Q = 10 I is above Scott's whole kernel: every analysis member is a forecast member.
    assert all(np.any(np.all(X == row, axis=1)) for row in f.sigmas)
    assert not all(np.any(np.all(X == row, axis=1)) for row in f0.sigmas)


def test_a_particle_filter_move_takes_the_floor_on_a_split_forecast_too():
    # Unlike a move's core, a particle-filter move of a forecast the mode
    # test split still gets the forecast's factor (the plain jitter it
    # replaces widened those copies too); each copy shrinks towards its
    # own mode's weighted mean.
    N, d, z, R = 400, 3, np.full(3, 1.0), 0.5 * np.eye(3)
    X = np.random.default_rng(0).normal(size=(N, d))
    split = (X[:, 0] > 0).astype(int)
    f = DiffusionKDEFilter(np.zeros(d), np.eye(d), d, 1.0, N, lambda x: x, lambda x, dt: x, rng=0,
                           policy=SHRINK)
    out = f._bridge(X, z, R, kernels=True, labels=split, rest_test=False)
    assert out['gamma'] == 1.0 and np.all(out['log_weights'] == 0)
    l_full = finite_size_factor(X, z, R)
    assert l_full > 1.0 and out['inflation_factor'] == pytest.approx(l_full, rel=1e-12)

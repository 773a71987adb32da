"""The Gaussian core: ETKF analysis, finite-size (EnKF-N) inflation, mean-preserving rotation."""
import numpy as np
import pytest
from hypothesis import example, given, strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import multivariate_normal

from filterpy_diffusion import DiffusionKDEFilter
from filterpy_diffusion.etkf import (etkf_analysis, finite_size_coefficients, finite_size_factor,
                                     finite_size_inflation,
                                     mean_preserving_rotation, rotate_anomalies)
from kalman_twin import F, H, Q, R, assert_close_to_kalman, run_with_kalman

floats = st.floats(-5.0, 5.0, allow_nan=False, allow_infinity=False)


@st.composite
def linear_problem(draw, N_min=2):
    """Forecast ensemble X (N, d), linear H (m, d), positive definite R, measurement z."""
    N = draw(st.integers(N_min, 25))
    d = draw(st.integers(1, 5))
    m = draw(st.integers(1, 5))
    X = draw(arrays(float, (N, d), elements=floats))
    Hm = draw(arrays(float, (m, d), elements=st.floats(-2.0, 2.0)))
    B = draw(arrays(float, (m, m), elements=st.floats(-1.0, 1.0)))
    R = B @ B.T + draw(st.floats(0.05, 3.0)) * np.eye(m)
    z = draw(arrays(float, (m,), elements=floats))
    return X, Hm, R, z


def kalman_of_ensemble(X, Hm, R, z, l=1.0):
    """Kalman update of the ensemble's mean and (inflated by l^2) unbiased covariance."""
    mu = X.mean(0)
    P = l * l * np.atleast_2d(np.cov(X.T, ddof=1))
    S = Hm @ P @ Hm.T + R
    K = np.linalg.solve(S, Hm @ P).T
    return mu + K @ (z - Hm @ mu), P - K @ S @ K.T, K, S


def scale(X, R):
    return 1.0 + np.abs(X).max() ** 2 + np.abs(R).max()


@given(linear_problem(), st.sampled_from([None, 0.7, 1.3]))
def test_moments_are_the_kalman_update_of_the_ensemble(problem, inflation):
    X, Hm, R, z = problem
    Xa, info = etkf_analysis(X, X @ Hm.T, z, R, inflation=inflation)
    l = 1.0 if inflation is None else inflation
    mean, cov, K, S = kalman_of_ensemble(X, Hm, R, z, l)
    tol = 1e-9 * scale(X, R) * (1 + np.abs(z).max())
    np.testing.assert_allclose(Xa.mean(0), mean, atol=tol)
    np.testing.assert_allclose(np.atleast_2d(np.cov(Xa.T, ddof=1)), cov, atol=tol)
    np.testing.assert_allclose(info['K'], K, atol=tol)
    np.testing.assert_allclose(info['S'], S, atol=tol)
    assert info['inflation'] == l


@given(linear_problem(), st.booleans(), st.sampled_from([None, 1.2, 'finite-size']),
       st.integers(0, 2**32 - 1))
def test_transform_preserves_the_mean_and_reproduces_the_ensemble(problem, rot, inflation, seed):
    X, Hm, R, z = problem
    Xa, info = etkf_analysis(X, X @ Hm.T, z, R, inflation=inflation, rot=rot, rng=seed,
                             return_transform=True)
    T, l, N = info['T'], info['inflation'], len(X)
    # Rows and columns of T sum to l: T maps centred anomalies to centred ones.
    np.testing.assert_allclose(T.sum(1), np.full(N, l), atol=1e-10 * l)
    np.testing.assert_allclose(T.sum(0), np.full(N, l), atol=1e-10 * l)
    A = X - X.mean(0)
    np.testing.assert_allclose(Xa, X.mean(0) + info['w'] @ A + T @ A,
                               atol=1e-9 * scale(X, R) * (1 + np.abs(z).max()))


@given(linear_problem(), st.sampled_from([None, 'finite-size']), st.integers(0, 2**32 - 1))
def test_rotation_leaves_the_moments_unchanged(problem, inflation, seed):
    X, Hm, R, z = problem
    a, _ = etkf_analysis(X, X @ Hm.T, z, R, inflation=inflation)
    b, _ = etkf_analysis(X, X @ Hm.T, z, R, inflation=inflation, rot=True, rng=seed)
    tol = 1e-9 * scale(X, R) * (1 + np.abs(z).max())
    np.testing.assert_allclose(b.mean(0), a.mean(0), atol=tol)
    np.testing.assert_allclose(np.cov(b.T), np.cov(a.T), atol=tol)


@given(st.integers(2, 40), st.integers(0, 2**32 - 1))
def test_rotation_is_orthogonal_and_fixes_the_ones_vector(N, seed):
    Qr = mean_preserving_rotation(N, seed)
    np.testing.assert_allclose(Qr @ Qr.T, np.eye(N), atol=1e-12)
    np.testing.assert_allclose(Qr @ np.ones(N), np.ones(N), atol=1e-12)
    assert np.array_equal(Qr, mean_preserving_rotation(N, seed))


def test_rotation_is_random_on_the_complement():
    # Haar on the complement of 1: E[Q] = projection on 1 (the rest averages to 0).
    N = 5
    mean = np.mean([mean_preserving_rotation(N, s) for s in range(4000)], axis=0)
    np.testing.assert_allclose(mean, np.full((N, N), 1.0 / N), atol=0.05)


@given(arrays(float, st.tuples(st.integers(2, 30), st.integers(1, 8)), elements=floats),
       st.integers(0, 2**32 - 1))
def test_rotate_anomalies_keeps_mean_and_covariance(X, seed):
    A = X - X.mean(0)
    B = rotate_anomalies(A, seed)
    tol = 1e-10 * (1 + np.abs(X).max() ** 2)
    np.testing.assert_allclose(B.sum(0), 0.0, atol=tol * len(X))
    np.testing.assert_allclose(B.T @ B, A.T @ A, atol=tol * len(X))


@pytest.mark.parametrize("N, d", [(6, 2), (4, 5)])
def test_rotate_anomalies_has_the_distribution_of_the_explicit_rotation(N, d):
    # One rotated member: e_0 = 1/N + p with |p|^2 = 1 - 1/N, and Q^T p is uniform on the
    # sphere of 1-perp (dimension N - 1), so E[(QA)_0 (QA)_0^T] = A^T A / N.
    A = np.random.default_rng(9).normal(size=(N, d))
    A -= A.mean(0)
    rows = np.array([rotate_anomalies(A, s)[0] for s in range(4000)])
    ref = np.array([(mean_preserving_rotation(N, s) @ A)[0] for s in range(4000)])
    scale2 = np.abs(A.T @ A).max() / N
    for r in (rows, ref):
        np.testing.assert_allclose(r.T @ r / len(r), A.T @ A / N, atol=0.06 * scale2)
        np.testing.assert_allclose(r.mean(0), 0.0, atol=0.05 * np.sqrt(scale2))


@given(linear_problem(N_min=3), st.sampled_from([0.5, 1.0, 2.0]))
# A spread of 1e-161 in observation space: s^2 is subnormal and sum du^2 / s^2
# overflowed the search bound, which raised although the minimum is ordinary.
@example(problem=(np.array([[0.0], [1.0], [1.0]]), np.array([[8.45609271e-162]]), np.eye(1),
                  np.ones(1)), xN=0.5)
def test_finite_size_inflation_is_the_global_minimum_of_the_primal_cost(problem, xN):
    # Primal EnKF-N cost (Bocquet et al. 2015), x = mean + w A:
    # J(w) = 0.5 |z - H mean - w Y|^2_R + 0.5 (N - 1) c_L log(eps_N + |w|^2).
    # Its minimiser is the ETKF mean at some inflation l; the finite-size l
    # must beat every other l, and be a stationary point:
    # l^2 = (eps_N + |w|^2) / c_L.
    X, Hm, R, z = problem
    N = len(X)
    hz = X @ Hm.T
    Y = hz - hz.mean(0)
    Ri = np.linalg.inv(R)
    s = np.sqrt(np.clip(np.linalg.eigvalsh(Y @ Ri @ Y.T), 0, None))[::-1][:min(N, len(z))]
    eN, cL = finite_size_coefficients(s, N, xN)

    def J(w):
        r = z - hz.mean(0) - w @ Y
        return 0.5 * r @ Ri @ r + 0.5 * (N - 1) * cL * np.log(eN + w @ w)

    def w_at(l):    # the Gaussian (ETKF) mean weights for prior covariance l^2 A^T A / (N - 1)
        G = l * l * Y @ Ri @ Y.T + (N - 1) * np.eye(N)
        return l * l * np.linalg.solve(G, Y @ Ri @ (z - hz.mean(0)))

    Xa, info = etkf_analysis(X, hz, z, R, inflation='finite-size', xN=xN)
    l, w = info['inflation'], info['w']
    np.testing.assert_allclose(w, w_at(l), atol=1e-8 * (1 + np.abs(w).max()))
    best = J(w)
    scaleJ = 1e-8 * (1 + abs(best))
    for lg in np.geomspace(0.05, 50, 41):
        assert best <= J(w_at(lg)) + scaleJ
    if np.any(s > 1e-6):
        assert l * l == pytest.approx((eN + w @ w) / cL, rel=1e-6)


def test_finite_size_inflation_raises_when_only_an_overflowing_inflation_fits():
    # A spread of 1e-150 against an innovation of 1e10: every l^2 up to
    # exp(U_MAX) leaves the innovation's cost far above c_L U_MAX, so the
    # minimum is beyond float range, and the error says why.
    with pytest.raises(FloatingPointError, match="no minimum below"):
        finite_size_inflation(np.array([1e-150]), np.array([1e10]), 10)
    # The same spread with an ordinary innovation has an ordinary minimum.
    assert 0 < finite_size_inflation(np.array([1e-150]), np.array([1.0]), 10) < 10


def test_finite_size_inflation_is_one_without_information():
    # R -> infinity: the mode correction leaves no inflation (nor deflation).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 3))
    for N_R in (1e8, 1e12):
        l = finite_size_factor(X, np.array([1.0, 0.0, -1.0]), N_R * np.eye(3))
        assert l == pytest.approx(1.0, abs=1e-6)


def test_finite_size_inflation_grows_with_the_innovation():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 3))
    ls = [finite_size_factor(X, np.full(3, k), np.eye(3)) for k in (0.0, 2.0, 5.0, 10.0)]
    assert np.all(np.diff(ls) > 0) and ls[-1] > 2


# ---------------------------------------------------------------- DAPPER
def _dapper_enkf_n(X, hz_of, z, R, **options):
    """DAPPER's EnKF_N analysis of the forecast ensemble X (one cycle, no rotation)."""
    dpr_mods = pytest.importorskip("dapper.mods", reason="dapper is not installed")
    import dapper.da_methods as da
    import dapper.da_methods.ensemble as dens
    N, d = X.shape
    m = len(z)
    tseq = dpr_mods.Chronology(dt=1, dko=1, K=1, BurnIn=0)
    Dyn = dpr_mods.Operator(M=d, model=lambda E, t, dt: X.copy(), noise=0)
    Obs = dpr_mods.Operator(M=m, model=hz_of, noise=dpr_mods.GaussRV(C=R))
    HMM = dpr_mods.HiddenMarkovModel(Dyn, Obs, tseq, dpr_mods.GaussRV(C=1.0, M=d))
    got = []
    orig = dens.post_process

    def capture(E, infl, rot):
        got.append(E.copy())
        return orig(E, infl, rot)
    xx = np.zeros((tseq.K + 1, d))
    yy = np.empty(tseq.Ko + 1, dtype=object)
    yy[0] = z
    xp = da.EnKF_N(N=N, **options)
    try:
        dens.post_process = capture
        xp.assimilate(HMM, xx, yy)
    finally:
        dens.post_process = orig
    return got[0], float(xp.stats.infl.a[0])


@pytest.mark.parametrize("N, d, m, nonlinear", [(10, 3, 3, False), (20, 3, 3, True),
                                                 (5, 8, 8, False), (30, 40, 20, True),
                                                 (12, 6, 2, False)])
@pytest.mark.parametrize("options", [{}, {'dual': True}, {'xN': 2.0}])
def test_finite_size_agrees_with_dapper_enkf_n(N, d, m, nonlinear, options):
    pytest.importorskip("dapper", reason="dapper is not installed")
    rng = np.random.default_rng(N * 1000 + d * 10 + m)
    X = rng.normal(size=(N, d)) * rng.uniform(0.5, 2.0, size=d) + 3.0
    Hm = rng.normal(size=(m, d)) / np.sqrt(d)

    def hz_of(E):
        out = E @ Hm.T
        return out + 0.2 * out ** 2 if nonlinear else out
    B = rng.normal(size=(m, m)) / np.sqrt(m)
    R = B @ B.T + 0.3 * np.eye(m)
    x_true = X.mean(0) + 2.0 * rng.normal(size=d)
    z = hz_of(x_true[None])[0] + rng.multivariate_normal(np.zeros(m), R)
    E_dapper, l_dapper = _dapper_enkf_n(X, hz_of, z, R, **options)
    Xa, info = etkf_analysis(X, hz_of(X), z, R, inflation='finite-size',
                             xN=options.get('xN', 1.0))
    # DAPPER stops Newton at |step| < 1e-4; we minimise to ~1e-10.
    assert info['inflation'] == pytest.approx(l_dapper, rel=1e-4)
    spread = np.sqrt(np.mean(np.var(X, axis=0)))
    np.testing.assert_allclose(Xa, E_dapper, atol=1e-3 * spread, rtol=0)


# ---------------------------------------------------------------- filter
def fx(x, dt):
    return F @ x


def hx(x):
    return H @ x


def make(N=50, seed=0, **kw):
    f = DiffusionKDEFilter(np.array([0.0, 1.0]), np.eye(2), 1, 1.0, N, hx, fx, rng=seed, **kw)
    f.R, f.Q = R.copy(), Q.copy()
    return f


@pytest.mark.parametrize("kw", [dict(kernel='etkf', inflation=None, rot=False),
                                dict(kernel='etkf', inflation='finite-size'),
                                dict(kernel='auto', gaussian_core='etkf', inflation=None)])
def test_gaussian_core_matches_kalman_filter_at_N_2000(kw):
    # Target: N = 2000, 20 cycles, mean within 0.1 sd, variances within 15%.
    f = make(2000, seed=7, **kw)
    kf = run_with_kalman(f)
    assert f.kernel_used == 'etkf'
    assert_close_to_kalman(f, kf, mean_sd=0.1, var_rtol=0.15)


def test_etkf_kernel_sets_gain_and_innovation_covariance():
    f = make(30, seed=1, kernel='etkf', inflation=1.1)
    f.predict()
    X = f.sigmas.copy()
    f.update(np.array([0.4]))
    _, _, K, S = kalman_of_ensemble(X, H, R, np.array([0.4]), 1.1)
    np.testing.assert_allclose(f.K, K, atol=1e-12)
    np.testing.assert_allclose(f.S, S, atol=1e-12)
    assert f.inflation_factor == 1.1 and f.ess == 30
    ref = multivariate_normal(X.mean(0) @ H.T, S).logpdf(np.array([0.4]))
    assert f.log_likelihood == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("xN", [1.0, 2.0])
def test_finite_size_inflation_for_other_kernels_uses_the_same_factor(xN):
    f = make(40, seed=2, kernel='enkpf', inflation='finite-size', xN=xN)
    f.predict()
    X = f.sigmas.copy()
    z = np.array([3.0])
    f.update(z)
    assert f.inflation_factor == finite_size_factor(X @ H.T, z, R, xN)


def test_rotation_is_reproducible_from_the_seed():
    a, b, c = (make(20, seed=s, kernel='etkf') for s in (3, 3, 4))
    for f in (a, b, c):
        for z in (0.5, 1.2, 2.2):
            f.predict()
            f.update(np.array([z]))
    assert np.array_equal(a.sigmas, b.sigmas) and not np.array_equal(a.sigmas, c.sigmas)


def test_without_rotation_the_update_draws_nothing():
    a, b = make(20, seed=3, kernel='etkf', rot=False), make(20, seed=4, kernel='etkf', rot=False)
    b.sigmas = a.sigmas.copy()
    state = b.rng.bit_generator.state
    a.update(np.array([0.7]))
    b.update(np.array([0.7]))
    assert np.array_equal(a.sigmas, b.sigmas) and b.rng.bit_generator.state == state


def test_singular_R_is_a_clear_error_and_leaves_the_filter_unchanged():
    f = make(20, seed=5, kernel='etkf', rot=True)
    f.predict()
    before, state = f.sigmas.copy(), f.rng.bit_generator.state
    with pytest.raises(ValueError, match="R is singular.*kernel='covariance'"):
        f.update(np.array([1.0]), R=np.zeros((1, 1)))
    assert np.array_equal(f.sigmas, before) and f.rng.bit_generator.state == state
    # The core itself says what it needs.
    with pytest.raises(ValueError, match="positive definite R"):
        etkf_analysis(f.sigmas, f.sigmas[:, :1], np.array([1.0]), np.zeros((1, 1)))


@pytest.mark.parametrize("kw, match", [
    (dict(gaussian_core='pf'), "gaussian_core"),
    (dict(kernel='etkf', rot=1), "rot"),
    (dict(kernel='etkf', simulate=lambda x, rng: x[:1]), "kernel='etkf' needs hx"),
    (dict(inflation='finite-size', kernel='covariance', simulate=lambda x, rng: x[:1]),
     "inflation='finite-size' needs hx"),
    (dict(kernel='etkf', clusters=2), "clusters"),
    (dict(inflation='finite size'), "inflation"),
    (dict(kernel='etkf', xN=-1.0), "xN"),
])
def test_constructor_rejects_bad_gaussian_core_options(kw, match):
    with pytest.raises(ValueError, match=match):
        make(**kw)


@pytest.mark.parametrize("bad, match", [(dict(inflation=-1.0), "inflation"),
                                        (dict(inflation='Miyoshi'), "inflation"),
                                        (dict(xN=0.0), "xN"),
                                        (dict(inflation_floor=1.1), "inflation_floor"),
                                        (dict(inflation=1.2, inflation_floor=1.1),
                                         "inflation_floor"),
                                        (dict(inflation='finite-size', inflation_floor=0.0),
                                         "inflation_floor"),
                                        (dict(inflation='finite-size',
                                              inflation_floor=float('nan')), "inflation_floor")])
def test_etkf_analysis_rejects_bad_options(bad, match):
    X = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(ValueError, match=match):
        etkf_analysis(X, X[:, :1], np.zeros(1), np.eye(1), **bad)


@given(linear_problem(N_min=3), st.floats(0.5, 2.0))
def test_inflation_floor_is_the_larger_of_the_estimate_and_the_floor(problem, floor):
    # The floor changes nothing but the factor: the analysis is the ETKF at
    # max(l_N, floor), bit for bit, and l_N where the estimate is larger.
    X, Hm, R, z = problem
    hz = X @ Hm.T
    Xa, info = etkf_analysis(X, hz, z, R, inflation='finite-size', inflation_floor=floor)
    l_N = finite_size_factor(hz, z, R)
    assert info['inflation'] == max(l_N, floor)
    Xb, _ = etkf_analysis(X, hz, z, R, inflation=max(l_N, floor))
    np.testing.assert_array_equal(Xa, Xb)


def test_newton_bisection_stops_at_an_exact_root():
    # An exact zero of f once made the bracket's end the iterate, so every
    # later Newton step fell outside it and bisection ran to the tolerance.
    from filterpy_diffusion.etkf import _newton_bisection
    calls = []

    def fg(u):
        calls.append(u)
        return u - 0.25, 1.0
    assert _newton_bisection(fg, 0.0, 1.0) == 0.25
    assert len(calls) == 2


def test_finite_size_inflation_finds_the_deeper_of_two_minima():
    # Regression (hypothesis counterexample): two equal members and one
    # informative observation give a dual cost with a shallow minimum near
    # l = 1.16 and the global one near l = 8.38; the scan once stopped at the
    # first rising point and returned the shallow one.
    X = np.array([[0.125], [0.0], [0.0]])
    R, z = np.array([[0.125]]), np.array([1.0])
    N, hz = len(X), X.copy()
    Y = hz - hz.mean(0)
    s = np.sqrt(np.clip(np.linalg.eigvalsh(Y @ Y.T / R[0, 0]), 0, None))[::-1][:1]
    eN, cL = finite_size_coefficients(s, N, 0.5)
    _, info = etkf_analysis(X, hz, z, R, inflation='finite-size', xN=0.5)
    d = z - hz.mean(0)

    def dual(l):   # brute force, independent of the implementation's scan
        G = l * l * Y @ Y.T / R[0, 0] + (N - 1) * np.eye(N)
        w = l * l * np.linalg.solve(G, Y @ d / R[0, 0])
        r = d - w @ Y
        return 0.5 * r @ r / R[0, 0] + 0.5 * (N - 1) * cL * np.log(eN + w @ w)
    grid = np.geomspace(0.01, 100, 4001)
    best = grid[np.argmin([dual(l) for l in grid])]
    assert abs(info['inflation'] - best) < 0.01 * best


@pytest.mark.parametrize("rot", [False, True])
def test_members_equal_up_to_rounding_are_not_moved(rot):
    # Regression (hypothesis counterexample in CI): six identical members whose
    # mean differs from them by rounding; the finite-size rule saw the ~1e-16
    # residue as spread, inflated it by ~1e16 and moved the mean.
    X = np.full((6, 3), 0.95921843)
    Hm = np.full((1, 3), 1.9375)
    Xa, info = etkf_analysis(X, X @ Hm.T, np.array([0.0]), np.array([[0.0625]]),
                             inflation='finite-size', rot=rot, rng=0)
    np.testing.assert_allclose(Xa, X, rtol=0, atol=1e-12)

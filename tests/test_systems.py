"""Tests of the benchmark systems, twin experiments and the toy-abs grid filter."""
import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.integrate import solve_ivp, trapezoid
from scipy.stats import kstest, norm

from filterpy_diffusion.systems import (
    PROBLEMS, AbsObs, ComponentObs, CubicObs, IdentityObs, LorenzModel, Problem,
    RandomWalkModel, get_problem, grid_posterior_toy_abs, integrate, lorenz63, lorenz96,
    point_mass_filter_1d, rk4_step, sample_grid, twin_experiment)

S, R_, B = 10.0, 28.0, 8.0 / 3.0


# --- tendencies -------------------------------------------------------------

@pytest.mark.parametrize("d", [4, 10, 40])
def test_lorenz96_forcing_is_fixed_point(d):
    # (F - F) F - F + F == 0 exactly in floating point
    F = 8.0
    x = np.full(d, F)
    assert_array_equal(lorenz96(x, F), 0.0)
    assert_array_equal(integrate(lorenz96, x, 0.05, 100), x)
    X = np.full((5, d), F)
    assert_array_equal(integrate(lorenz96, X, 0.05, 100), X)


def test_lorenz96_matches_loop_definition():
    rng = np.random.default_rng(1)
    d, F = 7, 8.0
    x = rng.standard_normal(d) * 3
    # written independently, with explicit modular indices
    expected = np.array([(x[(j + 1) % d] - x[(j - 2) % d]) * x[(j - 1) % d] - x[j] + F
                         for j in range(d)])
    assert_allclose(lorenz96(x, F), expected, rtol=1e-14, atol=1e-14)


def test_lorenz96_advection_conserves_energy():
    # sum_j x_j (x_{j+1} - x_{j-2}) x_{j-1} telescopes to 0: only damping and
    # forcing change the energy, dE/dt = -|x|^2 + F sum x
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 20)) * 4
    adv = lorenz96(x, 0.0) + x
    assert_allclose(np.sum(x * adv, axis=1), 0.0, atol=1e-10)


def test_lorenz63_fixed_points():
    assert_array_equal(lorenz63(np.zeros(3)), 0.0)
    c = np.sqrt(B * (R_ - 1))
    for sgn in (1.0, -1.0):
        x = np.array([sgn * c, sgn * c, R_ - 1])
        # exact zero up to the rounding of c^2 = b (r - 1) ~ 72
        assert_allclose(lorenz63(x), 0.0, atol=1e-12)


def test_lorenz63_matches_definition_on_ensemble():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((8, 3)) * 10
    x, y, z = X.T
    expected = np.column_stack([S * (y - x), x * (R_ - z) - y, x * y - B * z])
    assert_allclose(lorenz63(X), expected, rtol=1e-14, atol=1e-12)


def test_tendency_rejects_wrong_dimension():
    with pytest.raises(ValueError, match="length 3"):
        lorenz63(np.zeros(4))
    with pytest.raises(ValueError, match="d >= 4"):
        lorenz96(np.zeros(3))


# --- integration ------------------------------------------------------------

def test_lorenz63_trajectories_stay_bounded():
    rng = np.random.default_rng(4)
    x = np.array([1.0, 1.0, 1.0]) + 5 * rng.standard_normal((20, 3))
    # the attractor lies within |x|, |y| < 30, 0 < z < 55; 100 is a loose box
    # that only a blow-up of the integrator would leave
    worst = 0.0
    for _ in range(10_000):
        x = rk4_step(lorenz63, x, 0.01)
        worst = max(worst, np.abs(x).max())
    assert np.all(np.isfinite(x))
    assert worst < 100


def test_lorenz96_energy_bounded():
    # from dE/dt = -2E + F sum x <= -2E + F sqrt(d) sqrt(2E), E cannot grow
    # beyond max(E0, d F^2 / 2) along the exact flow; allow 1% for RK4
    rng = np.random.default_rng(5)
    d, F = 40, 8.0
    x = F + rng.standard_normal((5, d))
    E0 = 0.5 * np.sum(x ** 2, axis=1)
    bound = np.maximum(E0, d * F ** 2 / 2) * 1.01
    for _ in range(2000):
        x = rk4_step(lorenz96, x, 0.05)
        assert np.all(0.5 * np.sum(x ** 2, axis=1) <= bound)


def _dop853(f, x0, T):
    sol = solve_ivp(lambda t, x: f(x), (0.0, T), x0, method="DOP853", rtol=1e-12, atol=1e-12)
    return sol.y[:, -1]


def test_rk4_agrees_with_dop853():
    rng = np.random.default_rng(6)
    T = 0.5
    x0 = np.array([1.0, 2.0, 20.0]) + rng.standard_normal(3)
    # global error ~ C dt^4; at dt = 2.5e-3 with L63's C ~ 1e4 this is ~4e-7
    assert_allclose(integrate(lorenz63, x0, 0.0025, 200), _dop853(lorenz63, x0, T), atol=2e-6)
    x0 = 8.0 + rng.standard_normal(10)
    assert_allclose(integrate(lorenz96, x0, 0.00625, 80), _dop853(lorenz96, x0, T), atol=1e-4)


def test_rk4_is_fourth_order():
    rng = np.random.default_rng(7)
    T = 0.5
    x0 = np.array([1.0, 2.0, 20.0]) + rng.standard_normal(3)
    ref = _dop853(lorenz63, x0, T)
    e1 = np.abs(integrate(lorenz63, x0, 0.01, 50) - ref).max()
    e2 = np.abs(integrate(lorenz63, x0, 0.005, 100) - ref).max()
    # halving dt divides a 4th-order error by 2^4 = 16 (a 3rd/5th-order
    # method would give 8/32)
    assert 13 < e1 / e2 < 20


def test_ensemble_integration_equals_per_member():
    rng = np.random.default_rng(8)
    for f, X in [(lorenz63, rng.standard_normal((6, 3)) * 5),
                 (lorenz96, 8 + rng.standard_normal((6, 12)))]:
        together = integrate(f, X, 0.01, 50)
        apart = np.array([integrate(f, x, 0.01, 50) for x in X])
        assert_allclose(together, apart, rtol=1e-13, atol=1e-13)


def test_integrate_returns_copy_and_checks_nsteps():
    x = np.ones(3)
    y = integrate(lorenz63, x, 0.01, 0)
    y[0] = 5
    assert x[0] == 1
    with pytest.raises(ValueError, match="nsteps"):
        integrate(lorenz63, x, 0.01, -1)


# --- models and measurement operators ---------------------------------------

def test_lorenz_model_advances_obs_every_steps_and_ignores_dt():
    rng = np.random.default_rng(9)
    fx = LorenzModel("l63", 0.01, 10)
    X = rng.standard_normal((4, 3)) * 5
    expected = X.copy()
    for _ in range(10):
        expected = rk4_step(lorenz63, expected, 0.01)
    assert_allclose(fx(X, 123.0), expected, rtol=0, atol=0)
    assert_allclose(fx(X[1], None), expected[1], rtol=1e-13, atol=1e-13)
    fx96 = LorenzModel("l96", 0.05, 1, F=5.0)
    x = 5.0 + rng.standard_normal(10)
    assert_allclose(fx96(x, 0.0), rk4_step(lambda v: lorenz96(v, 5.0), x, 0.05), rtol=0, atol=0)


def test_random_walk_model_is_identity_copy():
    x = np.array([[0.5], [-0.3]])
    y = RandomWalkModel()(x, 1.0)
    assert_array_equal(y, x)
    assert y is not x


@pytest.mark.parametrize("hx, d, m", [
    (IdentityObs(), 5, 5), (AbsObs(), 5, 5), (CubicObs(10.0), 5, 5),
    (ComponentObs((2,)), 3, 1), (ComponentObs((0, 2)), 3, 2)])
def test_measurement_shapes(hx, d, m):
    rng = np.random.default_rng(10)
    X = rng.standard_normal((7, d))
    assert hx(X).shape == (7, m)
    assert hx(X[0]).shape == (m,)
    assert_allclose(hx(X)[3], hx(X[3]))
    assert hx.dim_z(d) == m


def test_measurement_values():
    x = np.array([-2.0, 1.0, 3.0])
    assert_array_equal(AbsObs()(x), [2.0, 1.0, 3.0])
    assert_allclose(CubicObs(100.0)(x), [-0.08, 0.01, 0.27], rtol=1e-14)
    assert_array_equal(ComponentObs((2,))(x), [3.0])


def test_callables_and_problems_pickle():
    rng = np.random.default_rng(11)
    for p in PROBLEMS.values():
        X = rng.standard_normal((4, p.dim)) + (8.0 if p.system == "l96" else 0.0)
        for f, args in [(p.fx, (None,)), (p.hx, ())]:
            g = pickle.loads(pickle.dumps(f))
            assert_array_equal(g(X, *args), f(X, *args))
            assert_array_equal(g(X[0], *args), f(X[0], *args))
        q = pickle.loads(pickle.dumps(p))
        assert q.name == p.name and q.cycles == p.cycles
        assert_array_equal(q.R, p.R)
        assert_array_equal(q.fx(X, None), p.fx(X, None))


# --- problems ---------------------------------------------------------------

def test_problem_table():
    assert set(PROBLEMS) == {"toy-abs", "l63-full", "l63-z", "l63-cubic",
                             "l96-10-abs", "l96-20-cubic", "l96-40"}
    expected = {  # name: dim, dim_z, dt_int, obs_every, R diag, Q diag, cycles, spinup, lost
        "toy-abs": (1, 1, None, 1, 0.01, 0.01, 100, 0, None),
        "l63-full": (3, 3, 0.01, 10, 4.0, 0.01, 1000, 100, 3),
        "l63-z": (3, 1, 0.01, 10, 4.0, 0.01, 1000, 100, None),
        "l63-cubic": (3, 3, 0.01, 10, 4.0, 0.01, 1000, 100, 3),
        "l96-10-abs": (10, 10, 0.05, 1, 1.0, 0.01, 1000, 200, 2),
        "l96-20-cubic": (20, 20, 0.05, 1, 1.0, 0.01, 1000, 200, 2),
        "l96-40": (40, 40, 0.05, 1, 1.0, 0.0, 1000, 200, 2),
    }
    for name, (d, m, dt, oe, r, q, K, sp, lost) in expected.items():
        p = PROBLEMS[name]
        assert (p.dim, p.dim_z, p.dt_int, p.obs_every, p.cycles, p.spinup, p.lost_threshold) == \
            (d, m, dt, oe, K, sp, lost), name
        assert_allclose(p.R, r * np.eye(m), rtol=1e-14)
        assert_allclose(p.Q, q * np.eye(d), rtol=1e-14)
        assert p.hx(np.ones((2, d))).shape == (2, m)
    assert [n for n, p in PROBLEMS.items() if p.bimodal] == ["toy-abs", "l63-z"]
    x = np.array([-2.0, 1.0, 3.0])
    assert_allclose(PROBLEMS["l63-cubic"].hx(x), x ** 3 / 100)
    assert_allclose(PROBLEMS["l96-20-cubic"].hx(np.full(20, 2.0)), np.full(20, 0.8))


def test_problem_arrays_are_read_only():
    with pytest.raises(ValueError):
        PROBLEMS["l63-full"].R[0, 0] = 1.0


def test_get_problem_overrides_and_errors():
    p = get_problem("l63-full", cycles=20, spinup=5)
    assert (p.cycles, p.spinup) == (20, 5)
    assert PROBLEMS["l63-full"].cycles == 1000
    assert isinstance(p, Problem)
    with pytest.raises(ValueError, match="unknown problem"):
        get_problem("l63")
    with pytest.raises(ValueError, match="unknown Problem field"):
        get_problem("l63-full", cycle=3)
    with pytest.raises(ValueError, match="spinup"):
        get_problem("l63-full", cycles=10, spinup=10)


# --- twin experiments -------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_twin_shapes_and_reproducibility(name):
    p = get_problem(name, cycles=30, spinup=0)
    a = twin_experiment(p, seed=5, N=12)
    b = twin_experiment(p, seed=5, N=12)
    c = twin_experiment(p, seed=6, N=12)
    assert a.truth.shape == (31, p.dim)
    assert a.observations.shape == (30, p.dim_z)
    assert a.initial_ensemble.shape == (12, p.dim)
    for f in ("truth", "observations", "initial_ensemble"):
        assert_array_equal(getattr(a, f), getattr(b, f))
        assert not np.array_equal(getattr(a, f), getattr(c, f))
    assert a.filter_seed == b.filter_seed != c.filter_seed
    assert isinstance(a.filter_seed, int)
    assert len({a.filter_seed, a.reference_seed}) == 2
    # truth and observations come from their own streams: N does not change them
    d = twin_experiment(p, seed=5, N=40)
    assert_array_equal(a.truth, d.truth)
    assert_array_equal(a.observations, d.observations)


def test_lorenz_truth_follows_model_without_noise():
    p = get_problem("l63-full", cycles=20, spinup=0)
    tw = twin_experiment(p, seed=1, N=5)
    for k in range(20):
        assert_array_equal(tw.truth[k + 1], p.fx(tw.truth[k], None))


@pytest.mark.parametrize("name, cycles", [("l63-full", 1000), ("l63-z", 1000),
                                          ("l96-20-cubic", 300), ("l96-10-abs", 300)])
def test_observation_noise_is_R(name, cycles):
    p = get_problem(name, cycles=cycles, spinup=0)
    tw = twin_experiment(p, seed=2, N=5)
    res = tw.observations - p.hx(tw.truth[1:])
    std = np.linalg.solve(np.linalg.cholesky(p.R), res.T).ravel()
    n = std.size
    # sample mean ~ N(0, 1/n), sample variance ~ 1 +- sqrt(2/n): 4-sigma bands
    assert abs(std.mean()) < 4 / np.sqrt(n)
    assert abs(std.var() - 1) < 4 * np.sqrt(2 / n)


def test_lorenz_truth_is_on_attractor_and_initial_ensemble_around_it():
    p = get_problem("l63-full", cycles=10, spinup=0)
    tw = twin_experiment(p, seed=3, N=2000)
    # after 2000 spin-up steps the state is inside the attractor's box
    assert np.all(np.abs(tw.truth[:, :2]) < 30) and np.all((tw.truth[:, 2] > 0) & (tw.truth[:, 2] < 55))
    dev = tw.initial_ensemble - tw.truth[0]
    assert np.all(np.abs(dev.mean(axis=0)) < 4 / np.sqrt(2000))
    assert_allclose(np.cov(dev.T), np.eye(3), atol=4 * np.sqrt(2 / 2000))


def test_toy_abs_truth_and_bimodal_ensemble():
    p = get_problem("toy-abs", cycles=2000)
    tw = twin_experiment(p, seed=4, N=200)
    assert tw.truth[0, 0] == 1.0
    inc = np.diff(tw.truth[:, 0])
    # increments N(0, 0.1^2): sample std within 4 sigma of 0.1 (sd ~ 0.1/sqrt(2n))
    assert abs(inc.std() - 0.1) < 4 * 0.1 / np.sqrt(2 * inc.size)
    assert abs(inc.mean()) < 4 * 0.1 / np.sqrt(inc.size)
    e = tw.initial_ensemble[:, 0]
    top, bottom = e[:100], e[100:]
    assert np.all(top > 0.5) and np.all(bottom < -0.5)  # 5 sigma from each mode
    for half, m in ((top, 1.0), (bottom, -1.0)):
        assert abs(half.mean() - m) < 4 * 0.1 / np.sqrt(100)
        assert abs(half.std(ddof=1) - 0.1) < 4 * 0.1 / np.sqrt(200)
    odd = twin_experiment(p, seed=4, N=7).initial_ensemble[:, 0]
    assert np.sum(odd > 0) == 4


def test_l63_z_initial_ensemble_samples_attractor():
    p = get_problem("l63-z", cycles=10, spinup=0)
    tw = twin_experiment(p, seed=5, N=100)
    E = tw.initial_ensemble
    assert np.all(np.abs(E[:, :2]) < 30) and np.all((E[:, 2] > 0) & (E[:, 2] < 55))
    # both lobes of the attractor, and an attractor-sized spread (std of x is
    # ~8 on the attractor), far wider than an N(truth, I) ensemble
    assert np.any(E[:, 0] > 0) and np.any(E[:, 0] < 0)
    assert E[:, 0].std() > 4 and E[:, 2].std() > 4
    assert len(np.unique(E[:, 0])) == 100


# --- point-mass filter ------------------------------------------------------

def test_grid_posterior_integrates_to_one():
    p = get_problem("toy-abs", cycles=40)
    tw = twin_experiment(p, seed=6, N=10)
    grid, dens = grid_posterior_toy_abs(tw.observations)
    assert dens.shape == (40, grid.size)
    assert np.all(dens >= 0)
    assert_allclose(trapezoid(dens, grid, axis=1), 1.0, atol=1e-9)
    # |x| is observed, so the posterior is symmetric up to the asymmetric
    # prior; it keeps mass on both signs
    assert np.all(trapezoid(dens * (grid > 0), grid, axis=1) > 0.01)


def test_grid_posterior_one_cycle_matches_direct_bayes():
    rng = np.random.default_rng(7)
    z = abs(1.0 + rng.normal(0, np.sqrt(0.02))) + rng.normal(0, 0.1)
    grid, dens = grid_posterior_toy_abs(np.array([[z]]))
    x = grid
    # predicted prior in closed form: each mixture component N(+-1, 0.01)
    # convolved with N(0, 0.01) is N(+-1, 0.02)
    prior = 0.5 * norm.pdf(x, 1, np.sqrt(0.02)) + 0.5 * norm.pdf(x, -1, np.sqrt(0.02))
    post = prior * norm.pdf(z, np.abs(x), 0.1)
    post /= trapezoid(post, x)
    # the grid filter's sampled kernel has 50 points per std: its error is far
    # below 1e-6 of the peak
    assert_allclose(dens[0], post, atol=1e-6 * post.max())


def test_point_mass_filter_gaussian_is_kalman():
    # linear-Gaussian case: the grid filter must reproduce the Kalman filter
    grid = np.linspace(-6, 6, 6001)
    m, P, q, r = 0.3, 0.5 ** 2, 0.2 ** 2, 0.4 ** 2
    zs = np.array([0.5, 0.1, -0.2])
    dens = point_mass_filter_1d(grid, norm.pdf(grid, m, np.sqrt(P)), np.sqrt(q),
                                lambda z, x: -0.5 * (z[0] - x) ** 2 / r, zs)
    for k, z in enumerate(zs):
        P = P + q
        K = P / (P + r)
        m, P = m + K * (z - m), (1 - K) * P
        assert_allclose(dens[k], norm.pdf(grid, m, np.sqrt(P)), atol=1e-6)


def test_point_mass_filter_warns_on_narrow_grid():
    grid = np.linspace(-1, 1, 201)
    with pytest.warns(RuntimeWarning, match="widen the grid"):
        point_mass_filter_1d(grid, np.ones(201), 0.1, lambda z, x: 0.0 * x, np.zeros(3))


def test_sample_grid_matches_density():
    rng = np.random.default_rng(8)
    grid = np.linspace(-4, 4, 4001)
    dens = norm.pdf(grid, 0.3, 0.5)
    x = sample_grid(grid, dens, 20000, rng)
    assert x.shape == (20000, 1)
    # KS statistic below the 0.1% critical value 1.95 / sqrt(n); the cell
    # jitter removes the lattice, so all values are distinct
    assert kstest(x[:, 0], norm(0.3, 0.5).cdf).statistic < 1.95 / np.sqrt(20000)
    assert len(np.unique(x)) == 20000


def test_sample_grid_reproducible():
    grid = np.linspace(-1, 1, 101)
    d = np.ones(101)
    assert_array_equal(sample_grid(grid, d, 50, 3), sample_grid(grid, d, 50, np.random.default_rng(3)))

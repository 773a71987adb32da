"""ConditionalKDE: weights, normalised log density and closed-form score."""
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy import integrate, stats

from filterpy_diffusion import ConditionalKDE
from filterpy_diffusion import mixture as mixture_module


@st.composite
def kde_problems(draw):
    """A random ensemble, bandwidths over four orders of magnitude and a query point."""
    N = draw(st.integers(1, 60))
    d = draw(st.integers(1, 8))
    m = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = 10.0 ** draw(st.floats(-1, 1))
    X = rng.normal(size=(N, d)) * scale
    Y = rng.normal(size=(N, m)) * scale
    sx = 10.0 ** draw(st.floats(-2, 2))
    sy = 10.0 ** draw(st.floats(-2, 2))
    sigma = draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0, 10.0])) * sx
    z = rng.normal(size=m) * scale
    far = draw(st.booleans())
    sbar = np.sqrt(sx**2 + sigma**2)
    if far:  # 1e3 bandwidths away from every member
        direction = rng.normal(size=d)
        x = X.mean(0) + direction / np.linalg.norm(direction) * (1e3 * sbar + np.abs(X).max())
    else:
        x = X[rng.integers(N)] + rng.normal(size=d) * sbar
    return ConditionalKDE(X, Y, sx, sy), x, z, sigma


@given(kde_problems())
def test_score_is_gradient_of_log_prob(problem):
    kde, x, z, sigma = problem
    g = kde.score(x, z, sigma)
    sbar = np.sqrt(kde.sigma_x**2 + sigma**2)
    h = 1e-5 * sbar
    E = np.eye(kde.dim_x) * h
    lp = kde.log_prob(np.vstack([x + E, x - E]), z, sigma)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(lp))
    fd = (lp[:kde.dim_x] - lp[kde.dim_x:]) / (2 * h)
    # The score's natural scale is |x - x_i| / sbar^2; the central difference
    # is exact for quadratics, so what is left is truncation (relative to
    # the spacing of the components) and roundoff in log p (~1e-16 |log p|).
    scale = (np.abs(x - kde.states).max() + sbar) / sbar**2
    roundoff = 1e-15 * (np.abs(lp).max() + 1) / h
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-6 * scale + 10 * roundoff)


@given(kde_problems())
def test_weights_are_a_probability_vector_invariant_to_permutation(problem):
    kde, _, z, _ = problem
    w = kde.weights(z)
    assert w.shape == (kde.N,)
    assert np.all(w >= 0) and np.all(np.isfinite(w))
    assert abs(w.sum() - 1) < 1e-12
    perm = np.random.default_rng(0).permutation(kde.N)
    kde_p = ConditionalKDE(kde.states[perm], kde.measurements[perm], kde.sigma_x, kde.sigma_y)
    np.testing.assert_allclose(kde_p.weights(z), w[perm], rtol=1e-10, atol=1e-300)


def test_weights_become_uniform_as_sigma_y_grows():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(40, 2)), rng.normal(size=(40, 3))
    z = np.array([0.5, -1.0, 2.0])
    spread = [np.ptp(ConditionalKDE(X, Y, 1.0, sy).weights(z)) for sy in (1.0, 10.0, 1e3, 1e6)]
    assert spread[0] > 1e-2
    assert all(a > b for a, b in zip(spread, spread[1:]))
    np.testing.assert_allclose(ConditionalKDE(X, Y, 1.0, 1e6).weights(z), 1 / 40, rtol=1e-9)


def test_weights_match_brute_force_gaussian_kernel():
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(25, 2)), rng.normal(size=(25, 2))
    z = np.array([0.3, 0.1])
    k = np.array([stats.multivariate_normal(y, 0.7**2 * np.eye(2)).pdf(z) for y in Y])
    np.testing.assert_allclose(ConditionalKDE(X, Y, 0.5, 0.7).weights(z), k / k.sum(), rtol=1e-12)


def test_log_prob_matches_brute_force_mixture():
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(30, 3)), rng.normal(size=(30, 1))
    kde = ConditionalKDE(X, Y, 0.4, 0.5)
    z, sigma = np.array([0.2]), 0.3
    w = np.array([stats.norm(y, 0.5).pdf(z[0]) for y in Y[:, 0]])
    w /= w.sum()
    pts = rng.normal(size=(7, 3))
    ref = [np.log(sum(wi * stats.multivariate_normal(xi, (0.4**2 + sigma**2) * np.eye(3)).pdf(p)
                      for wi, xi in zip(w, X))) for p in pts]
    np.testing.assert_allclose(kde.log_prob(pts, z, sigma), ref, rtol=1e-10)


@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_log_prob_is_normalised_1d(sigma):
    rng = np.random.default_rng(6)
    kde = ConditionalKDE(rng.normal(size=(20, 1)), rng.normal(size=(20, 2)), 0.3, 0.8)
    z = np.array([0.1, -0.4])
    val, err = integrate.quad(lambda t: np.exp(kde.log_prob(np.array([t]), z, sigma)),
                              -np.inf, np.inf, limit=200)
    assert abs(val - 1) < 1e-8


def test_log_prob_is_normalised_2d():
    rng = np.random.default_rng(7)
    kde = ConditionalKDE(rng.normal(size=(15, 2)), rng.normal(size=(15, 1)), 0.4, 0.5)
    g = np.linspace(-6, 6, 601)
    G = np.stack(np.meshgrid(g, g, indexing='ij'), -1).reshape(-1, 2)
    p = np.exp(kde.log_prob(G, [0.3], 0.2)).reshape(601, 601)
    total = integrate.trapezoid(integrate.trapezoid(p, g, axis=1), g)
    assert abs(total - 1) < 1e-6


def test_single_member_gives_gaussian_score_and_density():
    x1, sx, sigma = np.array([1.0, -2.0, 0.5]), 0.7, 0.4
    kde = ConditionalKDE(x1[None], [[3.0]], sx, 1.0)
    pts = np.random.default_rng(8).normal(size=(5, 3)) * 3
    var = sx**2 + sigma**2
    np.testing.assert_allclose(kde.score(pts, [100.0], sigma), -(pts - x1) / var, rtol=1e-12)
    ref = stats.multivariate_normal(x1, var * np.eye(3)).logpdf(pts)
    np.testing.assert_allclose(kde.log_prob(pts, [100.0], sigma), ref, rtol=1e-12)


def test_far_observation_does_not_underflow_to_nan():
    rng = np.random.default_rng(9)
    X, Y = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    kde = ConditionalKDE(X, Y, 0.1, 0.01)
    z = np.array([1e4, -1e4])  # every kernel weight is exp(-1e12) in linear space
    w = kde.weights(z)
    assert np.all(np.isfinite(w)) and abs(w.sum() - 1) < 1e-12
    # All the weight goes to the member whose y is nearest to z.
    assert w.argmax() == np.argmin(np.sum((Y - z) ** 2, axis=1))
    assert np.all(np.isfinite(kde.score(X, z))) and np.all(np.isfinite(kde.log_prob(X, z)))
    assert np.isfinite(kde.log_marginal(z))


def test_log_marginal_matches_brute_force():
    rng = np.random.default_rng(10)
    X, Y = rng.normal(size=(12, 1)), rng.normal(size=(12, 2))
    kde = ConditionalKDE(X, Y, 0.3, np.array([0.5, 0.9]))
    z = np.array([0.2, -0.3])
    ref = np.log(np.mean([stats.multivariate_normal(y, np.diag([0.25, 0.81])).pdf(z) for y in Y]))
    assert abs(kde.log_marginal(z) - ref) < 1e-12


def test_vector_bandwidths_equal_scaled_isotropic_kde():
    # A per-coordinate bandwidth is an isotropic KDE on rescaled coordinates.
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(30, 2)), rng.normal(size=(30, 1))
    s = np.array([0.5, 2.0])
    a = ConditionalKDE(X, Y, 0.3 * s, 0.4)
    b = ConditionalKDE(X / s, Y, 0.3, 0.4)
    x = rng.normal(size=(4, 2))
    np.testing.assert_allclose(a.log_prob(x, [0.1]), b.log_prob(x / s, [0.1]) - np.log(s).sum())
    np.testing.assert_allclose(a.score(x, [0.1]), b.score(x / s, [0.1]) / s)


def test_chunked_evaluation_equals_one_block(monkeypatch):
    rng = np.random.default_rng(12)
    kde = ConditionalKDE(rng.normal(size=(300, 4)), rng.normal(size=(300, 2)), 0.3, 0.5)
    x, z = rng.normal(size=(257, 4)), np.array([0.0, 0.5])
    full = kde.score(x, z, 0.1), kde.log_prob(x, z, 0.1)
    monkeypatch.setattr(mixture_module, "_BLOCK_ELEMENTS", 300 * 7)  # 7 rows a block
    kde2 = ConditionalKDE(kde.states, kde.measurements, 0.3, 0.5)
    np.testing.assert_allclose(kde2.score(x, z, 0.1), full[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(kde2.log_prob(x, z, 0.1), full[1], rtol=1e-12)


def test_ten_thousand_members_in_bounded_memory():
    # M = N = 10,000, d = 40: an (M, N) block would be 800 MB, (M, N, d) 32 GB.
    rng = np.random.default_rng(13)
    N, d = 10_000, 40
    X = rng.normal(size=(N, d)).astype(float)
    kde = ConditionalKDE(X, X[:, :3], 1.0, 1.0)
    tracemalloc.start()
    g = kde.score(X, np.zeros(3), 0.5)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert g.shape == (N, d) and np.all(np.isfinite(g))
    assert peak < 400e6, f"peak {peak/1e6:.0f} MB"


@pytest.mark.parametrize("args, match", [
    ((np.zeros((5, 2)), np.zeros((4, 1)), 1.0, 1.0), "same number of rows"),
    ((np.zeros((0, 2)), np.zeros((0, 1)), 1.0, 1.0), "at least 1"),
    ((np.zeros((5, 2)), np.zeros((5, 1)), 0.0, 1.0), "sigma_x must be positive"),
    ((np.zeros((5, 2)), np.zeros((5, 1)), 1.0, -1.0), "sigma_y must be positive"),
    ((np.zeros((5, 2)), np.zeros((5, 1)), np.nan, 1.0), "sigma_x must be positive"),
    ((np.zeros((5, 2)), np.zeros((5, 1)), [1.0, 2.0, 3.0], 1.0), r"shape \(2,\)"),
    ((np.full((5, 2), np.nan), np.zeros((5, 1)), 1.0, 1.0), "states must be finite"),
    ((np.zeros((5, 2)), np.full((5, 1), np.inf), 1.0, 1.0), "measurements must be finite"),
    ((np.zeros((5, 2, 1)), np.zeros((5, 1)), 1.0, 1.0), "2-D array"),
])
def test_bad_construction_raises_clear_error(args, match):
    with pytest.raises(ValueError, match=match):
        ConditionalKDE(*args)


def test_bad_queries_raise_clear_errors():
    kde = ConditionalKDE(np.zeros((5, 2)) + np.arange(5)[:, None], np.zeros((5, 1)), 1.0, 1.0)
    with pytest.raises(ValueError, match=r"z must have shape \(1,\)"):
        kde.weights([1.0, 2.0])
    with pytest.raises(ValueError, match="z must be finite"):
        kde.weights([np.nan])
    with pytest.raises(ValueError, match=r"x must have shape \(2,\) or \(M, 2\)"):
        kde.score(np.zeros(3), [0.0])
    with pytest.raises(ValueError, match="sigma"):
        kde.log_prob(np.zeros(2), [0.0], sigma=-1.0)

"""Tests of RMSE, spread, exact 2-Wasserstein distance and lost-track."""
import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.linalg import sqrtm

from filterpy_diffusion.metrics import lost_track, rmse, spread, wasserstein2


# --- rmse / spread ----------------------------------------------------------

X = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])


def test_rmse_hand_computed():
    # mean (3, 5), error (1, 2): sqrt((1 + 4) / 2)
    assert_allclose(rmse(X, [2.0, 3.0]), np.sqrt(2.5), rtol=1e-15)
    # weights (1, 1, 0): mean of the first two members is (2, 3) = truth
    assert_allclose(rmse(X, [2.0, 3.0], weights=[1.0, 1.0, 0.0]), 0.0, atol=1e-15)
    # 1-D ensemble given as (N,)
    assert_allclose(rmse([1.0, 2.0, 6.0], 1.0), 2.0, rtol=1e-15)


def test_spread_hand_computed():
    # ddof=1 variances: (1, 3, 5) -> 4, (2, 4, 9) -> 26 / 2 = 13
    assert_allclose(spread(X), np.sqrt((4 + 13) / 2), rtol=1e-15)
    # equal weights are ddof=1
    assert_allclose(spread(X, weights=np.ones(3)), spread(X), rtol=1e-14)
    # weights (1, 1, 0): ddof=1 variance of the first two, (1, 3) -> 2, (2, 4) -> 2
    assert_allclose(spread(X, weights=[2.0, 2.0, 0.0]), np.sqrt(2.0), rtol=1e-14)


def test_rmse_spread_input_errors():
    with pytest.raises(ValueError, match="transposed"):
        rmse(X.T, [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        rmse(np.array([[np.nan, 1.0]]), [0.0, 0.0])
    with pytest.raises(ValueError, match="finite"):
        rmse(X, [np.nan, 0.0])
    with pytest.raises(ValueError, match="weights"):
        rmse(X, [0.0, 0.0], weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        spread(X, weights=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="at least 2"):
        spread(X[:1])


# --- W2 ---------------------------------------------------------------------

def test_w2_identical_is_zero():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 3))
    assert wasserstein2(a, a) == 0.0
    # order of the members does not matter
    assert wasserstein2(a, a[rng.permutation(50)]) == 0.0


def test_w2_symmetric():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((40, 2))
    b = rng.standard_normal((40, 2)) + 1
    assert_allclose(wasserstein2(a, b), wasserstein2(b, a), rtol=1e-12)
    c = rng.standard_normal((15, 2))
    assert_allclose(wasserstein2(a, c), wasserstein2(c, a), rtol=1e-7)


def test_w2_one_dimensional_is_sorted_matching():
    # in 1-D the monotone (sorted) coupling is optimal
    rng = np.random.default_rng(2)
    a = rng.standard_normal(300)
    b = rng.exponential(size=300)
    expected = np.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2))
    assert_allclose(wasserstein2(a, b), expected, rtol=1e-12)
    assert_allclose(wasserstein2(a[:, None], b[:, None]), expected, rtol=1e-12)


def test_w2_translation_is_norm_of_shift():
    # W2^2(mu, nu) = |mean difference|^2 + W2^2 of the centred measures
    rng = np.random.default_rng(3)
    a = rng.standard_normal((60, 3))
    c = np.array([0.3, -1.2, 2.0])
    assert_allclose(wasserstein2(a, a + c), np.linalg.norm(c), rtol=1e-10)


def test_w2_gaussian_closed_form():
    rng = np.random.default_rng(4)
    n = 1500
    m1, S1 = np.array([0.0, 0.0]), np.array([[1.0, 0.0], [0.0, 0.25]])
    m2, S2 = np.array([3.0, -1.0]), np.array([[2.0, 0.5], [0.5, 1.0]])
    r2 = sqrtm(S2)
    exact = np.sqrt(np.sum((m1 - m2) ** 2)
                    + np.trace(S1 + S2 - 2 * np.real(sqrtm(r2 @ S1 @ r2))))
    L1, L2 = np.linalg.cholesky(S1), np.linalg.cholesky(S2)
    a = m1 + rng.standard_normal((n, 2)) @ L1.T
    b = m2 + rng.standard_normal((n, 2)) @ L2.T
    a2 = m1 + rng.standard_normal((n, 2)) @ L1.T
    b2 = m2 + rng.standard_normal((n, 2)) @ L2.T
    # triangle inequality: |W2(a, b) - W2(mu, nu)| <= W2(a, mu) + W2(b, nu),
    # and W2(a, mu) is about W2(a, a2) / sqrt(2) for an independent a2 ~ mu,
    # so W2(a, a2) + W2(b, b2) bounds the sampling error with margin
    tol = wasserstein2(a, a2) + wasserstein2(b, b2)
    assert tol < 0.3 * exact  # the check is informative
    assert abs(wasserstein2(a, b) - exact) < tol


def test_w2_unequal_sizes_lp_matches_assignment():
    # b duplicated is the same empirical measure as b
    rng = np.random.default_rng(5)
    a = rng.standard_normal((25, 2))
    b = rng.standard_normal((25, 2)) * 2 + 1
    assert_allclose(wasserstein2(a, np.vstack([b, b])), wasserstein2(a, b), rtol=1e-7)


def test_w2_lp_single_point():
    # every point of a must go to the single point of b
    rng = np.random.default_rng(6)
    a = rng.standard_normal((7, 3))
    b = rng.standard_normal((1, 3))
    assert_allclose(wasserstein2(a, b), np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1))), rtol=1e-7)


def test_w2_input_errors():
    with pytest.raises(ValueError, match="same dimension"):
        wasserstein2(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        wasserstein2(np.array([0.0, np.nan]), np.zeros(2))
    with pytest.raises(ValueError, match="2-D"):
        wasserstein2(np.zeros((2, 2, 2)), np.zeros((2, 2)))


# --- lost track -------------------------------------------------------------

def test_lost_track():
    assert lost_track([1.0, 2.0, 4.0], 2.0) is True  # mean 7/3 > 2
    assert lost_track([1.0, 2.0, 3.0], 2.0) is False  # mean 2 is not > 2
    assert lost_track([100.0], None) is False
    assert lost_track([1.0, np.nan], 3.0) is True  # a diverged filter
    with pytest.raises(ValueError, match="non-empty"):
        lost_track([], 1.0)

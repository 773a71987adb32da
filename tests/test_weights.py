"""weights.py: the one logsumexp / weight normalisation / ESS; resampling.py's regularisation."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import logsumexp as scipy_logsumexp

from filterpy_diffusion import bandwidth, bridge, ensemble, mixture, particle, resampling, weights
from filterpy_diffusion.weights import (check_log_weights, check_weights, effective_sample_size,
                                        kish_ess, logsumexp, normalise_weights,
                                        normalised_weights, weighted_anomaly_factor,
                                        weighted_moments)

log_weight_arrays = arrays(np.float64, st.integers(1, 40),
                           elements=st.floats(-700, 700, allow_nan=False, allow_infinity=False))


@settings(max_examples=200, deadline=None)
@given(log_weight_arrays, st.floats(-1e3, 1e3))
def test_ess_is_kish_of_the_normalised_weights_and_shift_invariant(lw, shift):
    # Reference: normalise with scipy's logsumexp, then 1 / sum w^2.
    w = np.exp(lw - scipy_logsumexp(lw))
    n = effective_sample_size(lw)
    assert n == pytest.approx(1.0 / np.sum(w * w), rel=1e-9)
    assert 1.0 - 1e-12 <= n <= lw.size * (1 + 1e-12)
    assert effective_sample_size(lw + shift) == pytest.approx(n, rel=1e-9)
    assert kish_ess(np.exp(lw - lw.max())) == n


@settings(max_examples=100, deadline=None)
@given(log_weight_arrays)
def test_normalised_weights_sum_to_one_and_match_the_softmax(lw):
    w = normalised_weights(lw)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(w, np.exp(lw - scipy_logsumexp(lw)), rtol=1e-9, atol=1e-300)


@settings(max_examples=100, deadline=None)
@given(log_weight_arrays)
def test_logsumexp_matches_scipy(a):
    assert logsumexp(a) == pytest.approx(scipy_logsumexp(a), rel=1e-12, abs=1e-12)


def test_equal_weights_give_exactly_n_and_zero_weights_count_for_nothing():
    assert effective_sample_size(np.zeros(7)) == 7.0
    assert effective_sample_size(np.full(5, -3.2)) == 5.0
    assert effective_sample_size(np.array([0.0, -np.inf, -np.inf])) == 1.0
    assert kish_ess(np.full(9, 0.25)) == 9.0
    # No member with any weight (a bandwidth search at a kernel so narrow that
    # every log kernel underflows): no effective member, below any target.
    assert effective_sample_size(np.full(4, -np.inf)) == 0.0
    assert logsumexp(np.full(3, -np.inf)) == -np.inf


def test_bad_weights_raise_clear_errors():
    with pytest.raises(ValueError, match="must not be NaN or"):
        effective_sample_size(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="must not be NaN or"):
        effective_sample_size(np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        effective_sample_size(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="all -inf"):
        normalised_weights(np.full(3, -np.inf))
    with pytest.raises(ValueError, match=r"log_w must have shape \(N,\) = \(4,\)"):
        check_log_weights(np.zeros(3), "log_w", N=4)
    with pytest.raises(ValueError, match=r"w must have shape \(N,\) = \(4,\)"):
        check_weights(np.ones(3), "w", N=4)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        check_weights(np.ones((2, 2)))
    with pytest.raises(ValueError, match="non-negative and not all zero"):
        normalise_weights(np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="non-negative and not all zero"):
        normalise_weights(np.zeros(3))


def test_normalise_weights_cannot_overflow():
    w = normalise_weights(np.array([1e308, 1e308, 0.0]))
    np.testing.assert_array_equal(w, [0.5, 0.5, 0.0])


def test_one_implementation_of_each_helper():
    # The old locations re-export the one implementation instead of a copy.
    assert bridge.effective_sample_size is weights.effective_sample_size
    assert bandwidth.effective_sample_size is weights.effective_sample_size
    assert bridge.normalised_weights is weights.normalised_weights
    assert mixture.logsumexp is weights.logsumexp
    assert particle.scott_factor is bandwidth.scott_factor
    assert bridge.jitter_factor is resampling.jitter_factor
    assert bridge.regularised_resample is resampling.regularised_resample
    assert ensemble.kish_ess is weights.kish_ess


# ------------------------------------------------------------ jitter_duplicates
def test_jitter_duplicates_keeps_singletons_and_scales_the_weighted_covariance():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 2)) * [1.0, 3.0]
    w = np.array([0.4, 0.3, 0.1, 0.1, 0.05, 0.05])
    idx = np.array([0, 0, 1, 1, 2, 3])
    Xn, n = resampling.jitter_duplicates(X, w, idx, 0.0, np.random.default_rng(0))
    assert n == 4
    np.testing.assert_array_equal(Xn, X[idx])          # h = 0: exactly the copies
    # Many draws of the jitter of member 0: covariance h^2 C_w.
    h, draws = 0.5, []
    g = np.random.default_rng(2)
    for _ in range(4000):
        Xn, _ = resampling.jitter_duplicates(X, w, idx, h, g)
        draws.append(Xn[0] - X[0])
        np.testing.assert_array_equal(Xn[4:], X[[2, 3]])
    m = w @ X
    Cw = (X - m).T @ ((X - m) * w[:, None]) / (1.0 - w @ w)
    np.testing.assert_allclose(np.cov(np.array(draws).T), h * h * Cw, rtol=0.1, atol=0.02)


def test_jitter_duplicates_with_one_member_holding_all_weight_uses_the_ensemble_covariance():
    X = np.arange(12.0).reshape(4, 3) ** 1.5
    w = np.array([1.0, 0.0, 0.0, 0.0])
    g = np.random.default_rng(0)
    draws = np.array([resampling.jitter_duplicates(X, w, np.zeros(4, int), 1.0, g)[0][0] - X[0]
                      for _ in range(3000)])
    np.testing.assert_allclose(np.cov(draws.T), np.cov(X.T), rtol=0.15, atol=1e-6)


def test_jitter_duplicates_draws_through_the_smaller_side_when_dim_exceeds_n():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4, 50))
    w = np.array([0.5, 0.3, 0.1, 0.1])
    Xn, n = resampling.jitter_duplicates(X, w, np.array([0, 0, 1, 2]), 0.3, rng)
    assert n == 2
    # The jitter lies in the span of the weighted anomalies (rank <= N - 1).
    A = X - w @ X
    coef, *_ = np.linalg.lstsq(A.T, (Xn[:2] - X[0]).T, rcond=None)
    np.testing.assert_allclose(A.T @ coef, (Xn[:2] - X[0]).T, atol=1e-10)


# ------------------------------------------------------------ batched forms
@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 12)),
              elements=st.floats(-300, 300, allow_nan=False, allow_infinity=False)))
def test_row_ess_is_the_ess_of_each_row(lw):
    rows = weights.effective_sample_size_rows(lw)
    assert rows.shape == lw.shape[:1]
    for j in range(lw.shape[0]):
        assert rows[j] == pytest.approx(effective_sample_size(lw[j]), rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 10)),
              elements=st.floats(0.0, 1.0)),
       arrays(np.float64, 6, elements=st.floats(0.0, 1.0, exclude_max=True)))
def test_row_inverse_cdf_matches_the_one_dimensional_inversion(w, u):
    w[:, 0] += 1e-3                      # every row has some weight
    U = np.broadcast_to(u, (w.shape[0], u.size))
    with np.errstate(divide="ignore"):
        idx = resampling.inverse_cdf_rows(np.log(w), U)
    for j in range(w.shape[0]):
        c = np.cumsum(w[j]) / w[j].sum()
        # Member i owns [c[i-1], c[i]); a zero-weight member owns nothing.
        i = idx[j]
        assert np.all(w[j][i] > 0)
        lower = np.where(i > 0, c[np.maximum(i - 1, 0)], 0.0)
        assert np.all(lower <= u + 1e-12) and np.all((u < c[i] + 1e-12) | (i == w.shape[1] - 1))


# ------------------------------------------------------------ the one ESS bisection
def test_ess_bisection_finds_the_exact_bandwidth_of_two_members():
    # Log weights 0 and -D / (2 h^2): with e = exp(-D / (2 h^2)) the ESS is
    # (1 + e)^2 / (1 + e^2), so ESS = t solves a quadratic in e.
    D, t = 3.0, 1.5
    # (1 + e)^2 = t (1 + e^2)  ->  (1 - t) e^2 + 2 e + (1 - t) = 0, root in (0, 1)
    e = (-2 + np.sqrt(4 - 4 * (1 - t) ** 2)) / (2 * (1 - t))
    h_exact = np.sqrt(-D / (2 * np.log(e)))
    lw = lambda h: np.array([0.0, -D / (2 * h * h)])      # noqa: E731
    h = bandwidth.select_by_ess(lw, t, 1e-3, 10.0)
    assert h == pytest.approx(h_exact, rel=1e-3)
    # Rows are independent: a batch of the same search and two trivial rows.
    rows = bandwidth.select_by_ess_rows(
        lambda hs: np.array([effective_sample_size(lw(hs[0])), 2.0, 1.0]), t, 1e-3, 10.0, 3)
    assert rows[0] == h and rows[1] == 1e-3 and rows[2] == 10.0


@given(arrays(float, st.tuples(st.integers(2, 12), st.integers(1, 4)),
                  elements=st.floats(-100, 100, width=64)),
       st.data())
def test_weighted_moments_is_numpys_reliability_weighted_covariance(X, data):
    N, d = X.shape
    w = data.draw(arrays(float, N, elements=st.floats(0.01, 10, width=64)))
    Y = X[:, ::-1] ** 2
    mx, my, A, B, cov = weighted_moments(X, Y, w)
    ref = np.cov(np.hstack([X, Y]).T, aweights=w, ddof=1).reshape(2 * d, 2 * d)
    scale = 1.0 + np.abs(np.hstack([X, Y])).max() ** 2
    np.testing.assert_allclose(mx, np.average(X, axis=0, weights=w), atol=1e-12 * scale)
    np.testing.assert_allclose(cov(A, A), ref[:d, :d], atol=1e-9 * scale)
    np.testing.assert_allclose(cov(A, B), ref[:d, d:], atol=1e-9 * scale)
    np.testing.assert_allclose(cov(B, B), ref[d:, d:], atol=1e-9 * scale)
    # The jitter's factor is the same estimate: C12^T C12 = cov(A, A).
    C12 = weighted_anomaly_factor(X, w / w.sum())
    assert C12.shape == (N, d)
    np.testing.assert_allclose(C12.T @ C12, ref[:d, :d], atol=1e-9 * scale)


def test_weighted_moments_is_zero_when_one_member_holds_all_the_weight():
    X = np.arange(6.0).reshape(3, 2)
    mx, my, A, B, cov = weighted_moments(X, None, np.array([0.0, 1.0, 0.0]))
    np.testing.assert_array_equal(mx, X[1])
    assert my is None and B is None
    np.testing.assert_array_equal(cov(A, A), np.zeros((2, 2)))

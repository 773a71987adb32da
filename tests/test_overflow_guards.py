"""Overflow guards that name the real cause.

Each input near the float limits is either assimilated to a finite, right
answer or rejected with a ValueError naming that input, with the filter's
state and random generator exactly as before the call.
"""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from filterpy_diffusion import ConditionalKDE, DiffusionKDEFilter
from filterpy_diffusion._validation import magnitude_limit
from filterpy_diffusion.inflation import innovation_lambda


def fx(x, dt):
    return x


def hx(x):
    return x.copy()


def _filter(**kw):
    args = dict(x=np.zeros(2), P=np.eye(2), dim_z=2, dt=1.0, N=40, hx=hx, fx=fx, rng=0)
    args.update(kw)
    return DiffusionKDEFilter(**args)


def _state(f):
    return [np.array(v, dtype=object) if v is None else v for v in (
        f.sigmas, f.x, f.P, f.x_prior, f.P_prior, f.x_post, f.P_post, f.weights, f.Q, f.R,
        f.inflation_mean, f.z)] + [f.rng.bit_generator.state]


def _assert_unchanged(f, before):
    for a, b in zip(before, _state(f)):
        np.testing.assert_equal(a, b)


def _rejected(f, call, match):
    before = [np.copy(v) if isinstance(v, np.ndarray) else v for v in _state(f)]
    with pytest.raises(ValueError, match=match):
        call()
    _assert_unchanged(f, before)


def test_the_value_limit_keeps_the_documented_l63_cubic_case():
    # l63-cubic, N = 100 (tests/data/cyy_rounding_l63_cubic.npz): hx = x^3
    # reached 1.8e150 and was assimilated; the limit for N * (3 + 3) terms allows it.
    assert 1.8e150 < magnitude_limit(100 * 6) < 1e153


def test_huge_R_is_an_uninformative_observation():
    f = _filter()
    f.R = 1e300 * np.eye(2)
    f.predict()
    prior = f.x.copy()
    f.update(np.array([0.5, -0.3]))
    # K = P (P + R)^-1 ~ 1e-300: the EnKF the default picks leaves the forecast.
    np.testing.assert_allclose(f.x, prior, atol=1e-12)
    assert np.isfinite(f.inflation_mean) and abs(f.inflation_mean - 1.0) < 1e-9
    hz = np.random.default_rng(1).standard_normal((30, 2))
    lam = innovation_lambda(hz, np.array([0.5, -0.3]), 1e300 * np.eye(2), 1.3, 0.01)
    assert abs(lam - 1.3) < 1e-9
    assert 1e300 < f._max_magnitude ** 2 < 1e306
    f.R = 1e306 * np.eye(2)
    _rejected(f, lambda: f.update(np.zeros(2)), r"^R has entries up to 1e\+306")


def test_huge_state_is_named():
    with pytest.raises(ValueError, match=r"^x has values up to 1e\+300"):
        _filter(x=np.full(2, 1e300))
    f = _filter()
    _rejected(f, lambda: f.initialize(np.full(2, 1e300), np.eye(2)), r"^x has values up to 1e\+300")
    f.sigmas = np.full((40, 2), 1e300)
    with pytest.raises(ValueError, match=r"^sigmas has values up to 1e\+300"):
        f.update(np.zeros(2))


@pytest.mark.parametrize("value", [1e200, 1e308])
def test_huge_measurement_function_is_named(value):
    f = _filter(hx=lambda x: np.full(2, value))
    f.predict()
    _rejected(f, lambda: f.update(np.array([0.5, -0.3])), r"^hx's output has values up to")


def test_huge_z_is_named_and_a_far_z_falls_back_to_log_weights():
    f = _filter()
    f.predict()
    _rejected(f, lambda: f.update(np.full(2, 1e200)), r"^z has values up to 1e\+200")
    # Within range but 1e100 bandwidths from every simulated measurement: the
    # documented fallback, a RuntimeWarning and all weight on the nearest member.
    for kernel in ("covariance", "isotropic"):
        g = _filter(kernel=kernel)
        g.predict()
        with pytest.warns(RuntimeWarning, match="bandwidths from every simulated measurement"):
            g.update(np.full(2, 1e100))
        assert np.all(np.isfinite(g.sigmas)) and g.ess == pytest.approx(1.0)


def test_huge_initial_covariance_is_named():
    with pytest.raises(ValueError, match=r"^P has entries up to 1e\+308"):
        _filter(P=1e308 * np.eye(2))
    f = _filter()
    _rejected(f, lambda: f.initialize(np.zeros(2), 1e308 * np.eye(2)), r"^P has entries up to")
    # Within the variance limit, but the draws would leave the value range.
    _rejected(f, lambda: f.initialize(np.zeros(2), f._max_magnitude ** 2 * np.eye(2)),
              r"^the initial ensemble x \+ N\(0, P\) has values")


def test_predict_that_overflows_the_moments_is_named():
    f = _filter(fx=lambda x, dt: 1e200 * x)
    _rejected(f, f.predict, r"^fx's output has values up to")
    g = _filter()
    g.Q = 1e306 * np.eye(2)
    _rejected(g, g.predict, r"^Q has entries up to 1e\+306")
    # Q at the limit: finite variances, but members beyond the value range.
    g.Q = g._max_magnitude ** 2 * np.eye(2)
    _rejected(g, g.predict, r"^the propagated ensemble \(fx\(x\) \+ process noise\) has values")


def test_log_prob_with_a_huge_noise_level_is_named():
    rng = np.random.default_rng(0)
    kde = ConditionalKDE(rng.normal(size=(5, 1)), rng.normal(size=(5, 1)), 1.0, 1.0)
    assert np.isfinite(kde.log_prob(np.array([0.0]), [0.0], sigma=magnitude_limit(1)))
    with pytest.raises(ValueError, match=r"sigma \(diffusion noise level\) must be at most"):
        kde.log_prob(np.array([0.0]), [0.0], sigma=1e200)


@pytest.mark.parametrize("distance", [1e5, 1e9, 1e140])
def test_weights_of_equally_far_members_stay_equal(distance):
    kde = ConditionalKDE(np.array([[0.0], [1.0]]), np.array([[0.0], [0.0]]), 1.0, 1.0)
    np.testing.assert_array_equal(kde.weights([distance]), [0.5, 0.5])


def _exact_log_weights(Y, z, s):
    """Exact rational ``-(|y_i - z|^2 - |y_0 - z|^2) / (2 s^2)`` of the float inputs, then floats."""
    F = [Fraction(float(v)) for v in Y[:, 0]]
    zf, sf = Fraction(float(z)), Fraction(float(s))
    return np.array([float(-((y - zf) ** 2 - (F[0] - zf) ** 2) / (2 * sf * sf)) for y in F])


@given(hnp.arrays(float, st.tuples(st.integers(2, 6), st.just(1)), elements=st.floats(-3, 3)),
       st.floats(1e3, 1e12) | st.floats(-1e12, -1e3) | st.floats(-5, 5), st.floats(0.1, 10))
def test_weights_match_exact_arithmetic(Y, z, s):
    kde = ConditionalKDE(np.zeros_like(Y), Y, 1.0, s)
    lw = _exact_log_weights(Y, z, s)
    ref = np.exp(lw - lw.max())
    w = kde.weights([z])
    np.testing.assert_allclose(w, ref / ref.sum(), rtol=1e-9, atol=1e-12)
    assert abs(w.sum() - 1.0) < 1e-14


@pytest.mark.parametrize("distance", [1e9, 1e100])
def test_far_weights_of_the_covariance_kernels_are_exact(distance):
    from filterpy_diffusion.kde import CovarianceKDE, EnKPFDensity
    X = np.array([[0.3], [-1.0], [0.5], [2.0]])
    Y = np.array([[-1.0], [2.0], [2.0], [0.0]])     # members 1 and 2 tie, nearest to a far z
    for kde in (CovarianceKDE(X, Y, 0.5), EnKPFDensity(X, Y, np.eye(1), 0.5)):
        np.testing.assert_allclose(kde.weights([distance]), [0.0, 0.5, 0.5, 0.0], atol=1e-300)
        mix = kde.conditional([distance])
        np.testing.assert_allclose(np.exp(mix.log_weights), [0.0, 0.5, 0.5, 0.0], atol=1e-300)

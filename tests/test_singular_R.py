"""Singular R (noise-free measurement components).

Every kernel and inflation setting either assimilates a positive
semi-definite R (a noise-free linear component then ends at z) or raises a
ValueError saying that R is singular and what to do, never a LinAlgError.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from filterpy_diffusion import (LETKF, DiffusionKDEFilter, LocalDiffusionKDEFilter,
                                ParticleFilter)
from filterpy_diffusion.filter import KERNELS
from filterpy_diffusion.inflation import LAMBDA_RANGE, _lambda_in_s_frame, innovation_lambda

SINGULAR_R = {"zero": np.zeros((2, 2)), "diag(0, 1)": np.diag([0.0, 1.0])}
INFLATIONS = ["adaptive", 1.1, None]
Z = np.array([0.5, -0.3])


def fx(x, dt):
    return x


def hx(x):
    return x.copy()


def _state(f):
    return (f.sigmas.copy(), f.x.copy(), f.P.copy(), f.weights.copy(),
            getattr(f, "inflation_mean", None), f.rng.bit_generator.state)


@pytest.mark.parametrize("rname", SINGULAR_R)
@pytest.mark.parametrize("inflation", INFLATIONS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_singular_R_every_kernel_and_inflation(kernel, inflation, rname):
    R = SINGULAR_R[rname]
    f = DiffusionKDEFilter(np.zeros(2), np.eye(2), 2, 1.0, 50, hx, fx, kernel=kernel,
                           inflation=inflation, rng=0)
    f.R = R
    f.predict()
    if kernel in ("enkpf", "etkf", "bridge"):    # they need a density N(z; ., R)
        before = _state(f)
        with pytest.raises(ValueError, match="R is singular.*kernel='covariance'"):
            f.update(Z)
        for a, b in zip(before, _state(f)):
            np.testing.assert_equal(a, b)
        return
    prior_sd = np.sqrt(np.diag(f.P))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f.update(Z)
    assert np.all(np.isfinite(f.sigmas))
    free = np.diag(R) == 0
    if kernel == "isotropic":
        # The isotropic kernel smooths the delta likelihood with its bandwidth,
        # so it does not pin the component at z; its mean lands within half a
        # prior sd of z (at most 0.39 sd over seeds 0-19). A ratio to the
        # prior's own error is ill-conditioned when the prior mean is near z.
        assert np.all(np.abs(f.x[free] - Z[free]) < 0.5 * prior_sd[free])
    else:
        # A Kalman-type update of a noise-free linear component puts every member at z
        # (up to the mixture's floor of 1e-12 on the relative kernel variance).
        np.testing.assert_allclose(f.sigmas[:, free], np.broadcast_to(Z[free], (50, free.sum())),
                                   atol=1e-6)


def _local(cls):
    return cls(np.zeros(2), np.eye(2), 2, 1.0, 30, hx, fx, state_positions=np.arange(2.0),
               obs_positions=np.arange(2.0), radius=1.0, rng=0)


@pytest.mark.parametrize("rname", SINGULAR_R)
@pytest.mark.parametrize("make", [
    lambda: ParticleFilter(np.zeros(2), np.eye(2), 2, 1.0, 30, hx, fx, rng=0),
    lambda: _local(LocalDiffusionKDEFilter),
    lambda: _local(LETKF),
], ids=["particle", "local-diffusion", "letkf"])
def test_singular_R_other_filters_say_what_to_do(make, rname):
    f = make()
    f.R = SINGULAR_R[rname]
    f.predict()
    before = _state(f)
    with pytest.raises(ValueError, match="singular.*(small positive variance|log_likelihood_fn)"):
        f.update(Z)
    for a, b in zip(before, _state(f)):
        np.testing.assert_equal(a, b)


def test_masked_noise_free_component_makes_R_regular_again():
    # The observed block of R is what counts: a missing noise-free component
    # leaves a positive definite R for the particle filter.
    f = ParticleFilter(np.zeros(2), np.eye(2), 2, 1.0, 30, hx, fx, rng=0)
    f.R = np.diag([0.0, 1.0])
    f.predict()
    f.update(np.ma.array(Z, mask=[1, 0]))
    assert np.all(np.isfinite(f.x))


@given(hnp.arrays(float, (12, 1), elements=st.floats(-3, 3)),
       st.floats(-5, 5), st.floats(0.01, 4), st.floats(0.6, 3), st.floats(1e-4, 1))
def test_s_frame_equals_miyoshi_in_one_dimension(hz, z, r, lam_b, v_b):
    # The singular-R estimator is the same estimator as Miyoshi's where both exist.
    Bm = hz - hz.mean(0)
    if not np.any(Bm):
        return
    R = np.array([[r]])
    d = np.array([z]) - hz.mean(0)
    a = innovation_lambda(hz, np.array([z]), R, lam_b, v_b)
    b = _lambda_in_s_frame(Bm, d, R, lam_b, v_b)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@given(hnp.arrays(float, (15, 3), elements=st.floats(-3, 3)), st.floats(0.6, 3))
def test_lambda_with_zero_R_is_finite_and_in_range(hz, lam_b):
    lam = innovation_lambda(hz, np.array([0.5, 0.1, -2.0]), np.zeros((3, 3)), lam_b, 0.01)
    assert np.isfinite(lam) and (lam == lam_b or LAMBDA_RANGE[0] <= lam <= LAMBDA_RANGE[1])


def test_lambda_with_zero_R_uses_the_noise_free_innovation():
    # hx spread 1, innovation 3 sd in a noise-free component: inflate strongly.
    hz = np.random.default_rng(0).standard_normal((200, 1))
    hz = (hz - hz.mean()) / hz.std(ddof=1)
    lam = innovation_lambda(hz, np.array([3.0]), np.zeros((1, 1)), 1.0, 1.0)
    # lam_o = d^2 / var = 9; with v_o = 2 and v_b = 1: (2 * 1 + 1 * 9) / 3
    np.testing.assert_allclose(lam, (2 * 1.0 + 1.0 * 9.0) / 3.0, rtol=1e-9)

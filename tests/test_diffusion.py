"""Diffusion samplers against exact sampling of the same mixture."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from filterpy_diffusion import ConditionalKDE, GaussianMixture
from filterpy_diffusion.diffusion import (
    DEFAULT_ODE_STEPS, default_sigma_max, dpm2m, karras_schedule, karras_sigmas, sample)


def bimodal_mixture():
    rng = np.random.default_rng(20)
    x = np.concatenate([rng.normal(-2, 0.4, (40, 2)), rng.normal(2, 0.4, (40, 2))])
    y = np.abs(x[:, :1]) + rng.normal(0, 0.3, (80, 1))
    return ConditionalKDE(x, y, 0.3, 0.3).conditional([2.0])


def check_moments(X, mix, n_se=4.0):
    """Sample mean and covariance within n_se Monte-Carlo standard errors of the exact ones."""
    n = len(X)
    m, C = mix.mean(), mix.cov()
    se_mean = np.sqrt(np.diag(C) / n)
    assert np.all(np.abs(X.mean(0) - m) < n_se * se_mean), (X.mean(0), m)
    # For the variance of a non-Gaussian variable: se^2 = (mu4 - var^2) / n; use
    # the exact-sample kurtosis for mu4 via a large exact draw.
    ref = mix.sample(200_000, 999)
    mu4 = np.mean((ref - m) ** 4, axis=0)
    se_var = np.sqrt((mu4 - np.diag(C) ** 2) / n)
    assert np.all(np.abs(np.diag(np.cov(X, rowvar=False)) - np.diag(C)) < n_se * se_var), \
        (np.diag(np.cov(X, rowvar=False)), np.diag(C))


def test_exact_sampler_matches_mixture_moments():
    mix = bimodal_mixture()
    check_moments(sample(mix, 20_000, 1, 'exact'), mix)


@pytest.mark.parametrize("sampler, steps, opts", [
    ('ode', 64, {'solver': 'dpm2m'}),
    ('ode', 128, {'solver': 'heun'}),
    ('sde', 400, {}),
])
def test_diffusion_sampler_at_enough_steps_matches_exact(sampler, steps, opts):
    mix = bimodal_mixture()
    check_moments(sample(mix, 20_000, 2, sampler, steps, **opts), mix)


@pytest.mark.parametrize("sampler, steps", [('ode', 4), ('sde', 4)])
def test_moment_check_rejects_too_few_steps(sampler, steps):
    # The check above must be able to fail: four steps are visibly off.
    mix = bimodal_mixture()
    with pytest.raises(AssertionError):
        check_moments(sample(mix, 20_000, 2, sampler, steps), mix)


def test_ode_default_steps_within_three_percent_in_covariance():
    mix = bimodal_mixture()
    X = sample(mix, 40_000, 3, 'ode')
    C = mix.cov()
    assert np.linalg.norm(np.cov(X, rowvar=False) - C) / np.linalg.norm(C) < 0.03


def test_ode_sampler_separates_modes_like_exact():
    mix = bimodal_mixture()
    X, E = sample(mix, 20_000, 4, 'ode'), sample(mix, 20_000, 5, 'exact')
    p_ode, p_ex = np.mean(X[:, 0] > 0), np.mean(E[:, 0] > 0)
    assert abs(p_ode - p_ex) < 4 * np.sqrt(2 * 0.25 / 20_000)


@pytest.mark.parametrize("sampler", ['exact', 'ode', 'sde'])
def test_same_seed_bit_identical_different_seed_differs(sampler):
    mix = bimodal_mixture()
    a = sample(mix, 100, 7, sampler)
    b = sample(mix, 100, np.random.default_rng(7), sampler)
    c = sample(mix, 100, 8, sampler)
    assert a.shape == (100, 2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_single_component_sde_is_exact_and_ode_transports_gaussian():
    # With N = 1 the ancestral step is the exact reverse transition, and the
    # ODE is the linear map u -> u * t_next / t: both give N(m, v).
    mix = GaussianMixture(np.array([[1.0, -1.0]]), [0.0], np.array([0.25, 4.0]))
    for sampler in ('sde', 'ode'):
        X = sample(mix, 50_000, 11, sampler, 5)
        np.testing.assert_allclose(X.mean(0), [1.0, -1.0], atol=4 * np.sqrt(4.0 / 50_000))
        np.testing.assert_allclose(X.var(0), [0.25, 4.0], rtol=4 * np.sqrt(2 / 50_000))


@settings(max_examples=20)
@given(shift=st.floats(-1e3, 1e3), scale=st.floats(0.01, 100.0))
def test_ode_sampler_is_equivariant_to_shift_and_scale(shift, scale):
    mix = bimodal_mixture()
    moved = GaussianMixture(mix.centres * scale + shift, mix.log_weights, mix.var * scale**2)
    a = sample(mix, 50, 3, 'ode', 8)
    b = sample(moved, 50, 3, 'ode', 8)
    np.testing.assert_allclose(b, a * scale + shift, rtol=1e-9, atol=1e-9 * (abs(shift) + scale))


def test_sigma_max_is_well_above_the_spread():
    mix = bimodal_mixture()
    spread = np.sqrt(np.linalg.eigvalsh(mix.cov()).max())
    assert default_sigma_max(mix) >= 5 * spread
    big = GaussianMixture(mix.centres * 100, mix.log_weights, mix.var * 1e4)
    assert np.isclose(default_sigma_max(big), 100 * default_sigma_max(mix))
    sig = karras_schedule(mix, DEFAULT_ODE_STEPS)
    assert sig[0] == default_sigma_max(mix) and sig[-1] == 0.0 and np.all(np.diff(sig) < 0)


def test_anisotropic_mixture_ode_matches_exact():
    rng = np.random.default_rng(12)
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    mix = GaussianMixture(rng.normal(size=(30, 3)) * 2, rng.normal(size=30),
                          np.array([0.05, 0.5, 2.0]), basis=Q)
    check_moments(sample(mix, 20_000, 13, 'ode', 64), mix)


def test_bad_sampler_arguments():
    mix = bimodal_mixture()
    with pytest.raises(ValueError, match="sampler must be one of"):
        sample(mix, 10, 0, 'euler')
    with pytest.raises(ValueError, match="solver must be one of"):
        sample(mix, 10, 0, 'ode', 8, solver='rk45')
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        sample(mix, 10, 0, 'ode', 0)
    with pytest.raises(ValueError, match="rng must be"):
        sample(mix, 10, 'seed', 'exact')


def test_stratified_component_counts_are_floor_or_ceil():
    from filterpy_diffusion.mixture import pick_components
    rng = np.random.default_rng(30)
    w = rng.dirichlet(np.ones(17))
    for _ in range(50):
        counts = np.bincount(pick_components(w, 40, rng, systematic=True), minlength=17)
        assert np.all(counts >= np.floor(40 * w)) and np.all(counts <= np.ceil(40 * w))


def test_stratified_draws_are_marginally_exact_and_balance_modes():
    # Two equal, well separated modes: the share of draws in the + mode has
    # variance 0.25/n for i.i.d. draws; stratified draws must do much better,
    # while each draw keeps the right marginal (mean and variance per mode).
    mix = GaussianMixture(np.array([[-3.0, 0.0], [3.0, 0.0]]), [0.0, 0.0], 0.25)
    share = {True: [], False: []}
    for rep in range(300):
        for strat in (True, False):
            X = mix.sample(50, rep, stratified=strat)
            share[strat].append(np.mean(X[:, 0] > 0))
    assert np.var(share[False]) > 0.5 * 0.25 / 50          # i.i.d. noise is there
    assert np.var(share[True]) < 0.1 * np.var(share[False])
    X = np.concatenate([mix.sample(64, r) for r in range(200)])
    pos = X[X[:, 0] > 0]
    assert abs(pos[:, 0].mean() - 3.0) < 4 * 0.5 / np.sqrt(len(pos))
    assert abs(pos[:, 1].var() / 0.25 - 1) < 4 * np.sqrt(2 / len(pos))


def test_stratified_normal_rows_are_standard_normal():
    from scipy import stats
    from filterpy_diffusion.mixture import stratified_normal
    Z = np.concatenate([stratified_normal(100, 3, np.random.default_rng(r)) for r in range(100)])
    for j in range(3):
        assert stats.kstest(Z[:, j], 'norm').pvalue > 1e-3
    assert np.abs(np.corrcoef(Z, rowvar=False) - np.eye(3)).max() < 0.05


@pytest.mark.parametrize("d", [2, 8, 14, 20, 40, 100, 1000])
def test_sobol_min_bits_is_enough_for_scipy(d):
    # Regression: Sobol(d, bits=7) for d = 40 silently returns wrong points
    # (scipy prints an ignored ValueError), so 20 members in 40-D drew
    # noise near -37. The minimum is the degree of dimension d's polynomial.
    import warnings
    from scipy.stats import qmc
    from filterpy_diffusion.mixture import sobol_min_bits
    bits = max(4, sobol_min_bits(d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        low = qmc.Sobol(d, scramble=False, bits=bits).random(16)
        ref = qmc.Sobol(d, scramble=False, bits=30).random(16)
    np.testing.assert_array_equal(low, np.floor(ref * 2**bits) / 2**bits)


def test_stratified_normal_in_high_dimension_with_few_points():
    # The first 2^m points of a (scrambled) Sobol sequence are stratified in
    # every coordinate: 32 points put exactly 8 in each quarter of [0, 1).
    # With too few bits (the regression above) some coordinates do not.
    from scipy.special import ndtr
    from filterpy_diffusion.mixture import stratified_normal
    for r in range(5):
        U = ndtr(stratified_normal(32, 40, np.random.default_rng(r)))
        for j in range(40):
            assert np.array_equal(np.bincount((U[:, j] * 4).astype(int), minlength=4), [8, 8, 8, 8])


def test_stratified_draws_depend_on_the_generator_state_only():
    from filterpy_diffusion.mixture import stratified_normal
    a = np.random.default_rng(3)
    b = np.random.Generator(np.random.PCG64(99))     # another SeedSequence, same state
    b.bit_generator.state = a.bit_generator.state
    np.testing.assert_array_equal(stratified_normal(40, 3, a), stratified_normal(40, 3, b))
    # Rewinding a generator (as a failed step does) replays the same points.
    state = a.bit_generator.state
    first = stratified_normal(40, 3, a)
    a.bit_generator.state = state
    np.testing.assert_array_equal(stratified_normal(40, 3, a), first)


# ---------------------------------------------------------------- batched schedule and solver
@settings(max_examples=30, deadline=None)
@given(v=hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(1e-4, 10.0)),
       factor=st.floats(1.5, 50.0), steps=st.integers(1, 20))
def test_batched_karras_sigmas_equal_the_schedule_of_each_mixture(v, factor, steps):
    # One schedule per batch column, bit-identical to the unbatched schedule
    # of that column's mixture (the local filter batches it over domains).
    smax = factor * np.sqrt(v)
    sig = karras_sigmas(v, smax, steps)
    assert sig.shape == (steps + 1, len(v))
    for j in range(len(v)):
        mix = GaussianMixture(np.zeros((1, 1)), [0.0], v[j])
        np.testing.assert_array_equal(sig[:, j], karras_schedule(mix, steps, smax[j]))
    assert np.all(sig[0] == smax) and np.all(sig[-1] == 0) and np.all(np.diff(sig, axis=0) < 0)


@pytest.mark.parametrize("mix", ["isotropic", "anisotropic"])
def test_ode_sampler_is_dpm2m_on_the_mixture_denoiser(mix):
    # sample_ode is the shared solver dpm2m on the mixture's denoiser, unchanged.
    if mix == "isotropic":
        mix = bimodal_mixture()
    else:
        rng = np.random.default_rng(12)
        Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        mix = GaussianMixture(rng.normal(size=(30, 3)) * 2, rng.normal(size=30),
                              np.array([0.05, 0.5, 2.0]), basis=Q)
    sig = karras_schedule(mix, 9)
    u0 = mix.to_frame(mix.sample(64, np.random.default_rng(4), sigma=sig[0]))
    tv = np.stack([mix.total_var(s) for s in sig])
    tv = tv[:, 0] if np.all(tv == tv[:, :1]) else tv
    out = mix.from_frame(dpm2m(mix.denoise_frame, u0, tv))
    np.testing.assert_array_equal(out, sample(mix, 64, 4, 'ode', 9))


def test_dpm2m_batch_with_a_coordinate_without_spread_stays_finite():
    # A batch column whose schedule is constant (no spread at all) has step
    # size 0: the solver must leave it at its denoised value, not divide by 0.
    tv = np.stack([np.linspace(4.0, 0.25, 6), np.full(6, 0.25)], axis=1)   # (steps + 1, 2)
    u = np.array([[1.0, 0.3], [-1.0, 0.3]])
    out = dpm2m(lambda U, tvk: np.zeros_like(U), u, tv)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[:, 1], 0.3)          # ratio 1: nothing moves
    np.testing.assert_allclose(out[:, 0], u[:, 0] * np.sqrt(0.25 / 4.0))   # the linear flow


@pytest.mark.parametrize("sampler", ['exact', 'ode', 'sde'])
def test_a_mixture_without_coordinates_samples_the_empty_point(sampler):
    # A whitened cluster of one repeated state has no coordinates: every
    # sampler returns n empty rows and draws nothing (the ODE's noise scale
    # took the largest of no eigenvalues and raised).
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    out = sample(GaussianMixture(np.zeros((5, 0)), np.zeros(5), 1.0), 7, rng, sampler)
    assert out.shape == (7, 0)
    assert rng.bit_generator.state == state

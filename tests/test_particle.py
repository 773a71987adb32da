"""Tests of the SIR particle filter and the resampling schemes.

Resamplers are tested on their statistics (unbiased offspring counts), the
filter against closed forms (Gaussian likelihoods from scipy, the Kalman
filter for a linear-Gaussian model) with tolerances derived from N.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy.stats import multivariate_normal
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import KalmanFilter

from filterpy_diffusion.particle import (
    COLLAPSE_CYCLES, DEFAULT_REG, DEFAULT_RESAMPLE_THRESHOLD, ParticleFilter,
    gaussian_log_likelihood, multinomial_resample, residual_resample, scott_factor,
    stratified_resample, systematic_resample)
from filterpy_diffusion.systems import LorenzModel

RESAMPLERS = [systematic_resample, stratified_resample, multinomial_resample, residual_resample]


def fx_cv(x, dt):
    return np.stack([x[..., 0] + dt * x[..., 1], x[..., 1]], axis=-1)


def hx_pos(x):
    return x[..., :1]


X0 = np.array([0.0, 1.0])
P0 = np.diag([4.0, 1.0])


def make(N=200, seed=0, **kw):
    f = ParticleFilter(X0, P0, 1, 1.0, N, hx_pos, fx_cv, rng=np.random.default_rng(seed), **kw)
    f.Q = Q_discrete_white_noise(2, 1.0, 0.1)
    f.R = np.array([[0.5]])
    return f


# ---------------------------------------------------------------- resampling
# N w = [2.4, 0, 0.4, 1.6, 0, 1.2, 2.0, 0.4]: fractional, integer and zero expectations.
W = np.array([0.3, 0.0, 0.05, 0.2, 0.0, 0.15, 0.25, 0.05])


def offspring_counts(resample, weights, reps, seed):
    rng = np.random.default_rng(seed)
    N = len(weights)
    return np.array([np.bincount(resample(weights, rng), minlength=N) for _ in range(reps)])


@pytest.mark.parametrize("resample", RESAMPLERS)
def test_resampling_is_unbiased(resample):
    reps, N = 20000, len(W)
    counts = offspring_counts(resample, W, reps, seed=101)
    assert np.all(counts.sum(axis=1) == N)
    # Multinomial has the largest per-particle variance N w (1 - w) of these
    # schemes, so its standard error bounds theirs.
    se = np.sqrt(N * W * (1 - W) / reps)
    assert np.all(np.abs(counts.mean(axis=0) - N * W) <= 4.5 * se + 1e-12)
    assert np.all(counts[:, W == 0] == 0)


def test_systematic_counts_are_floor_or_ceil():
    counts = offspring_counts(systematic_resample, W, 2000, seed=102)
    Nw = len(W) * W
    assert np.all((counts == np.floor(Nw)) | (counts == np.ceil(Nw)))
    # Both values occur for a fractional expectation (not a deterministic scheme).
    assert set(np.unique(counts[:, 0])) == {2, 3}


def test_residual_keeps_the_integer_parts():
    counts = offspring_counts(residual_resample, W, 2000, seed=103)
    assert np.all(counts >= np.floor(len(W) * W))


@pytest.mark.parametrize("resample", RESAMPLERS)
@pytest.mark.parametrize("w", [[0, 0, 1.0, 0], [1.0, 0, 0, 0], [0, 0, 0, 1.0],
                               [0.5, 0, 0, 0.5], [1e-300, 1.0, 0, 0]])
def test_zero_weights_never_get_offspring(resample, w):
    w = np.array(w)
    rng = np.random.default_rng(104)
    for _ in range(200):
        idx = resample(w, rng)
        assert np.all(w[idx] > 0)


class _ExtremeUniforms:
    """Stands in for a Generator whose uniforms sit at the ends of [0, 1)."""

    def __init__(self, u):
        self.u = u

    def random(self, size=None):
        return self.u if size is None else np.full(size, self.u)


@pytest.mark.parametrize("resample", RESAMPLERS)
@pytest.mark.parametrize("u", [0.0, np.nextafter(1.0, 0.0)])
@pytest.mark.parametrize("w", [[0.0, 1.0], [0.0, 0.3, 0.7, 0.0], [0.1] * 10 + [0.0],
                               [1.0, 0.0, 0.0], [1e308, 1e308, 0.0]])
def test_extreme_uniforms_stay_on_positive_weights(resample, u, w):
    # u = 0 must not pick a leading zero-weight member; u just below 1 can
    # round (k + u) / N up to 1.0, which must not index past the last member
    # with weight. Huge weights must not overflow the normalisation.
    w = np.array(w)
    idx = resample(w, _ExtremeUniforms(u))
    assert idx.shape == w.shape and np.all((idx >= 0) & (idx < len(w)))
    assert np.all(w[idx] > 0)


@pytest.mark.parametrize("resample", RESAMPLERS)
@pytest.mark.parametrize("w, msg", [([0.5, -0.1, 0.6], "non-negative"),
                                    ([0.0, 0.0], "not all zero"),
                                    ([0.5, np.nan], "finite"),
                                    ([[0.5, 0.5]], "1-D")])
def test_resamplers_reject_invalid_weights(resample, w, msg):
    with pytest.raises(ValueError, match=msg):
        resample(np.array(w), np.random.default_rng(0))


@given(w=st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40)
       .filter(lambda w: sum(w) > 0),
       seed=st.integers(0, 2 ** 32 - 1))
def test_resampler_properties(w, seed):
    w = np.array(w)
    N = len(w)
    for resample in RESAMPLERS:
        idx = resample(w, np.random.default_rng(seed))
        assert idx.shape == (N,) and np.issubdtype(idx.dtype, np.integer)
        assert np.all((idx >= 0) & (idx < N))
        assert np.all(w[idx] > 0)
        assert np.all(np.diff(idx) >= 0)        # all four return sorted indices
    counts = np.bincount(systematic_resample(w, np.random.default_rng(seed)), minlength=N)
    Nw = N * w / w.sum()
    assert np.all(counts >= np.floor(Nw - 1e-9)) and np.all(counts <= np.ceil(Nw + 1e-9))


# ---------------------------------------------------------------- likelihood
def test_gaussian_log_likelihood_matches_scipy():
    rng = np.random.default_rng(105)
    A = rng.normal(size=(3, 3))
    R = A @ A.T + 0.1 * np.eye(3)
    z, hz = rng.normal(size=3), rng.normal(size=(50, 3))
    expected = np.array([multivariate_normal(h, R).logpdf(z) for h in hz])
    assert np.allclose(gaussian_log_likelihood(z, hz, R), expected, rtol=1e-12, atol=1e-12)


def test_gaussian_log_likelihood_overflow_is_minus_inf_not_nan():
    R = np.array([[1.0, 0.9], [0.9, 1.0]])
    ll = gaussian_log_likelihood(np.array([1e308, -1e308]), np.array([[-1e308, 1e308], [0, 0]]), R)
    assert ll[0] == -np.inf and not np.isnan(ll).any()


def test_singular_R_is_diagnosed():
    f = make()
    f.predict()
    with pytest.raises(ValueError, match="R must be positive definite for a Gaussian likelihood"):
        f.update(1.0, R=0.0)


# ---------------------------------------------------------------- weighting
def test_weights_follow_bayes_rule_across_cycles_in_log_space():
    f = make(N=100, resample_threshold=0.0)          # never resample: pure importance weights
    R = f.R
    f.predict()
    s1 = f.sigmas.copy()
    lik1 = np.array([multivariate_normal(h, R).pdf(1.0) for h in s1[:, :1]])
    f.update(1.0)
    assert np.allclose(f.weights, lik1 / lik1.sum(), rtol=1e-10)
    # log p(z) estimate: log of the prior-weighted (here uniform) mean likelihood.
    assert f.log_likelihood == pytest.approx(np.log(lik1.mean()), rel=1e-12)
    assert f.ess == pytest.approx(lik1.sum() ** 2 / np.sum(lik1 ** 2), rel=1e-10)
    assert not f.resampled

    w1 = f.weights.copy()
    f.predict()
    assert np.array_equal(f.weights, w1)             # predict keeps the weights
    s2 = f.sigmas.copy()
    lik2 = np.array([multivariate_normal(h, R).pdf(2.5) for h in s2[:, :1]])
    f.update(2.5)
    assert np.allclose(f.weights, w1 * lik2 / np.sum(w1 * lik2), rtol=1e-10)
    assert f.log_likelihood == pytest.approx(np.log(np.sum(w1 * lik2)), rel=1e-12)
    assert np.allclose(f.x, np.average(s2, axis=0, weights=f.weights), rtol=1e-12)


def test_tiny_weights_survive_in_log_space():
    # Likelihoods ~exp(-2000) would be exactly zero after exp; their ratios
    # must still be kept.
    f = make(N=4, resample_threshold=0.0,
             log_likelihood_fn=lambda z, hz: np.array([-2000.0, -2001.0, -2002.0, -2003.0]))
    f.update(0.0)
    w = np.exp(-np.arange(4.0))
    assert np.allclose(f.weights, w / w.sum(), rtol=1e-12)
    assert f.log_likelihood == pytest.approx(-2000.0 + np.log(w.sum() / 4), rel=1e-12)


def test_resamples_when_ess_below_threshold():
    f = make(N=500, resample_threshold=0.5, reg=0.0)
    f.predict()
    before = f.sigmas.copy()
    lik = np.array([multivariate_normal(h, f.R).pdf(4.0) for h in before[:, :1]])
    ess = lik.sum() ** 2 / np.sum(lik ** 2)
    assert ess < 0.5 * f.N                           # the setting forces a resample
    f.update(4.0)
    assert f.resampled and f.ess == pytest.approx(ess, rel=1e-10)
    assert np.allclose(f.weights, 1 / f.N, rtol=1e-12)
    # reg=0, no jitter: every new particle is a copy of an old one, with positive likelihood.
    rows = {tuple(r) for r in before}
    assert all(tuple(r) in rows for r in f.sigmas)
    assert np.allclose(f.x, f.sigmas.mean(axis=0), atol=1e-14)


def test_no_resampling_above_threshold():
    f = make(N=200, resample_threshold=0.5, log_likelihood_fn=lambda z, hz: np.zeros(len(hz)))
    f.predict()
    s = f.sigmas.copy()
    f.update(0.0)
    assert not f.resampled and np.array_equal(f.sigmas, s) and f.ess == pytest.approx(200)


def _identity_resample(weights, rng):
    return np.arange(len(weights))


def test_jitter_adds_noise_with_scaled_weighted_covariance():
    N, jitter = 20000, 0.3
    # ll slightly below 0 for one particle: ESS < N, so threshold 1 resamples;
    # the identity "resampler" isolates the jitter noise.
    def ll(z, hz):
        out = np.zeros(len(hz))
        out[0] = -1.0
        return out
    f = make(N=N, seed=106, resample_threshold=1.0, jitter=jitter, log_likelihood_fn=ll,
             resampler=_identity_resample)
    f.predict()
    s = f.sigmas.copy()
    w = np.ones(N)
    w[0] = np.exp(-1.0)
    C = np.cov(s.T, aweights=w / w.sum(), ddof=1)
    f.update(0.0)
    assert f.resampled
    d = f.sigmas - s
    target = jitter ** 2 * C
    se = np.sqrt((np.outer(np.diag(target), np.diag(target)) + target ** 2) / N)
    assert np.all(np.abs(np.cov(d.T) - target) < 5 * se)


def test_zero_likelihood_everywhere_keeps_prior_weights_with_warning():
    f = make(N=50, resample_threshold=0.0,
             log_likelihood_fn=lambda z, hz: np.where(hz[:, 0] > 1e9, 0.0, -np.inf))
    f.predict()
    f.weights = np.linspace(1, 2, 50)
    s, w = f.sigmas.copy(), f.weights.copy()
    with pytest.warns(RuntimeWarning, match="zero likelihood"):
        f.update(0.0)
    assert np.array_equal(f.sigmas, s) and np.allclose(f.weights, w, rtol=1e-14)
    assert f.log_likelihood == -np.inf and not np.isnan(f.x).any()


def test_single_surviving_particle_gives_zero_covariance_not_nan():
    f = make(N=20, resample_threshold=0.0,
             log_likelihood_fn=lambda z, hz: np.where(np.arange(len(hz)) == 3, 0.0, -np.inf))
    f.predict()
    s = f.sigmas.copy()
    f.update(0.0)
    assert np.array_equal(f.x, s[3]) and np.array_equal(f.P, np.zeros((2, 2)))
    assert f.ess == pytest.approx(1.0)


@pytest.mark.parametrize("ll, msg", [(lambda z, hz: np.full(len(hz), np.nan), "returned nan for particle 0"),
                                     (lambda z, hz: np.zeros(3), r"returned shape \(3,\)")])
def test_bad_log_likelihood_fn_rejected_and_state_unchanged(ll, msg):
    f = make(N=20, log_likelihood_fn=ll)
    f.predict()
    x, P, s = f.x.copy(), f.P.copy(), f.sigmas.copy()
    with pytest.raises(ValueError, match=msg):
        f.update(0.0)
    assert np.array_equal(f.x, x) and np.array_equal(f.P, P) and np.array_equal(f.sigmas, s)


def test_constructor_options_validated():
    with pytest.raises(ValueError, match="cannot use a measurement simulator"):
        make(simulate=lambda x, rng: x[:1])
    with pytest.raises(ValueError, match="resample_threshold must be in"):
        make(resample_threshold=1.5)
    with pytest.raises(ValueError, match="jitter must be"):
        make(jitter=-0.1)


# ---------------------------------------------------------------- Kalman reference
def test_matches_kalman_filter_on_linear_gaussian_model():
    N, dt = 20000, 1.0
    Q = Q_discrete_white_noise(2, dt, 0.1)
    R = np.array([[1.0]])
    kf = KalmanFilter(dim_x=2, dim_z=1)
    kf.x, kf.P = X0.copy(), P0.copy()
    kf.F, kf.H, kf.Q, kf.R = np.array([[1.0, dt], [0.0, 1.0]]), np.array([[1.0, 0.0]]), Q, R
    # reg=0: the plain bootstrap filter is consistent; regularisation biases
    # the covariance by design (by up to (reg h)^2 C), which N = 20000 resolves.
    pf = ParticleFilter(X0, P0, 1, dt, N, hx_pos, fx_cv, rng=np.random.default_rng(107),
                        vectorized=True, reg=0.0, resample_threshold=0.5)
    pf.Q, pf.R = Q, R

    # Resampling duplicates particles, so the effective sample behind the
    # estimates is smaller than N; N/10 is a conservative stand-in.
    n_eff = N / 10
    zs = [1.3, 1.7, 3.6, 3.9, 5.2, 5.8]
    for z in zs:
        kf.predict()
        pf.predict()
        kf.update(z)
        pf.update(z)
        m, C = kf.x.ravel(), kf.P
        se_mean = np.sqrt(np.diag(C) / n_eff)
        se_cov = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C ** 2) / n_eff)
        assert np.all(np.abs(pf.x - m) < 5 * se_mean)
        assert np.all(np.abs(pf.P - C) < 5 * se_cov)
        # log p(z | past): relative MC error of a mean likelihood ~ 1/sqrt(n_eff).
        assert abs(pf.log_likelihood - kf.log_likelihood) < 5 / np.sqrt(n_eff)


# ---------------------------------------------------------------- defaults on a deterministic model
def _l63_truth_and_obs(seed, cycles):
    # sakov2012: Lorenz-63, Q = 0, R = 2 I, all observed every 0.25 time units.
    fx = LorenzModel("l63", 0.01, 25)
    rng = np.random.default_rng(seed)
    x = np.array([1.509, -1.531, 25.46]) + rng.normal(size=3)
    for _ in range(20):                          # onto the attractor
        x = fx(x)
    x0 = x + np.sqrt(2.0) * rng.normal(size=3)   # prior mean, X0 = N(x0, 2 I) as sakov2012
    xs, zs = [], []
    for _ in range(cycles):
        x = fx(x)
        xs.append(x)
        zs.append(x + np.sqrt(2.0) * rng.normal(size=3))
    return fx, x0, np.array(xs), np.array(zs)


def _l63_pf(fx, x0, seed, **kw):
    f = ParticleFilter(x0, 2.0 * np.eye(3), 3, 0.25, 100, lambda x: x, fx, rng=seed,
                       vectorized=True, **kw)
    f.Q = np.zeros((3, 3))
    f.R = 2.0 * np.eye(3)
    return f


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defaults_keep_track_of_deterministic_lorenz63(seed):
    # Climatological RMSE is about 8; without regularisation (the old
    # defaults) every run collapses onto one particle and loses track.
    fx, x0, xs, zs = _l63_truth_and_obs(seed, 300)
    f = _l63_pf(fx, x0, seed)
    err = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)      # no collapse warning either
        for x, z in zip(xs, zs):
            f.predict()
            f.update(z)
            err.append(np.sqrt(np.mean((f.x - x) ** 2)))
    assert np.mean(err[50:]) < 1.5


def test_collapse_onto_one_particle_warns():
    # reg=0 with Q = 0: resampling only copies members, until all are one.
    fx, x0, xs, zs = _l63_truth_and_obs(0, 100)
    f = _l63_pf(fx, x0, 0, reg=0.0, resample_threshold=0.5)
    with pytest.warns(RuntimeWarning) as caught:
        for z in zs:
            f.predict()
            f.update(z)
    assert any("collapsed: all 100 particles are identical" in str(w.message) for w in caught)
    assert np.all(f.sigmas == f.sigmas[0])


def test_persistent_weight_collapse_warns():
    # ESS of 1 (one particle carries all weight) in COLLAPSE_CYCLES updates, never resampled.
    f = make(N=20, resample_threshold=0.0,
             log_likelihood_fn=lambda z, hz: np.where(np.arange(len(hz)) == 3, 0.0, -np.inf))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for _ in range(COLLAPSE_CYCLES - 1):
            f.predict()
            f.update(0.0)
    assert f.low_ess_updates == COLLAPSE_CYCLES - 1
    f.predict()
    with pytest.warns(RuntimeWarning, match=f"distinct particles < 2 .* in {COLLAPSE_CYCLES} consecutive"):
        f.update(0.0)


def test_collapse_onto_a_few_copied_particles_warns():
    # 50 copies each of two particles, the likelihood favouring one: the ESS
    # over copies stays 50, the weight per distinct particle is ~(1, 0).
    f = ParticleFilter(X0, P0, 1, 1.0, 100, hx_pos, lambda x, dt: x, rng=0, resample_threshold=0.0,
                       reg=0.0, vectorized=True)
    f.Q = np.zeros((2, 2))
    f.sigmas = np.repeat([[0.0, 0.0], [3.0, 0.0]], 50, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for _ in range(COLLAPSE_CYCLES - 1):
            f.predict()
            f.update(0.0)
    assert f.ess > 49 and f.distinct_ess < 1.01
    f.predict()
    with pytest.warns(RuntimeWarning, match="distinct particles < 2"):
        f.update(0.0)


# ---------------------------------------------------------------- regularisation statistics
def _pairs_resample(weights, rng):
    # every member 0 .. N/2 - 1 twice: all resampled members are duplicates
    return np.repeat(np.arange(len(weights) // 2), 2)


def test_regularisation_jitter_has_scott_scaled_weighted_covariance():
    N, reg = 20000, 1.7
    def ll(z, hz):                               # smooth, non-uniform weights
        return -0.5 * (hz[:, 0] - 1.0) ** 2
    f = make(N=N, seed=108, resample_threshold=1.0, reg=reg, log_likelihood_fn=ll,
             resampler=_pairs_resample)
    f.predict()
    s = f.sigmas.copy()
    w = np.exp(ll(None, s[:, :1]))
    w /= w.sum()
    C = np.cov(s.T, aweights=w, ddof=1)          # numpy's weighted covariance, the reference
    f.update(0.0)
    assert f.resampled
    d = f.sigmas - s[_pairs_resample(w, None)]
    target = (reg * N ** (-1.0 / (2 + 4))) ** 2 * C
    se = np.sqrt((np.outer(np.diag(target), np.diag(target)) + target ** 2) / N)
    assert np.all(np.abs(np.cov(d.T) - target) < 5 * se)
    assert np.all(np.abs(d.mean(0)) < 5 * np.sqrt(np.diag(target) / N))


def test_regularisation_leaves_members_drawn_once_untouched():
    def once_except_first(weights, rng):         # member 0 twice, 1 .. N-2 once
        return np.concatenate([[0], np.arange(len(weights) - 1)])
    f = make(N=50, resample_threshold=1.0, log_likelihood_fn=lambda z, hz: -np.arange(len(hz)) * 1e-3,
             resampler=once_except_first)
    f.predict()
    s = f.sigmas.copy()
    f.update(0.0)
    assert f.resampled
    np.testing.assert_array_equal(f.sigmas[2:], s[1:-1])
    assert not np.array_equal(f.sigmas[0], f.sigmas[1]) and not np.array_equal(f.sigmas[0], s[0])


def test_degenerate_weights_jitter_with_the_unweighted_covariance():
    # One particle holds all the weight: the weighted covariance is 0, the
    # jitter falls back to the ensemble's spread instead of vanishing.
    f = make(N=4000, resample_threshold=0.5,
             log_likelihood_fn=lambda z, hz: np.where(np.arange(len(hz)) == 3, 0.0, -np.inf))
    f.predict()
    s = f.sigmas.copy()
    f.update(0.0)
    target = (DEFAULT_REG * scott_factor(4000, 2)) ** 2 * np.cov(s.T)
    se = np.sqrt((np.outer(np.diag(target), np.diag(target)) + target ** 2) / 4000)
    assert np.all(np.abs(np.cov(f.sigmas.T) - target) < 5 * se)


# ---------------------------------------------------------------- resampler signatures
def test_filterpy_resamplers_are_called_with_weights_only():
    from filterpy.monte_carlo import stratified_resample as fp_stratified
    calls = []
    def spy(weights):
        calls.append(weights.copy())
        return fp_stratified(weights)
    f = make(N=300, resample_threshold=1.0, reg=0.0, resampler=spy)
    f.predict()
    s = f.sigmas.copy()
    np.random.seed(5)
    f.update(2.0)
    assert f.resampled and len(calls) == 1
    np.random.seed(5)
    np.testing.assert_array_equal(f.sigmas, s[fp_stratified(calls[0])])


@pytest.mark.parametrize("name", ["systematic_resample", "stratified_resample",
                                  "multinomial_resample", "residual_resample"])
def test_every_filterpy_resampler_runs(name):
    import filterpy.monte_carlo as mc
    f = make(N=100, resample_threshold=1.0, resampler=getattr(mc, name))
    np.random.seed(0)
    for z in [1.0, 2.0]:
        f.predict()
        f.update(z)
    assert f.resampled and np.all(np.isfinite(f.sigmas))


def test_our_resamplers_get_the_filters_rng():
    seen = []
    def spy(weights, rng):
        seen.append(rng)
        return systematic_resample(weights, rng)
    f = make(N=100, resample_threshold=1.0, resampler=spy)
    f.predict()
    f.update(1.0)
    assert seen == [f.rng]


def test_resampler_signature_is_read_not_probed():
    # A TypeError raised inside a (weights, rng) resampler propagates as is:
    # the filter does not retry it with another signature.
    def broken(weights, rng):
        raise TypeError("inside the resampler")
    f = make(N=50, resample_threshold=1.0, resampler=broken)
    f.predict()
    with pytest.raises(TypeError, match="inside the resampler"):
        f.update(1.0)
    with pytest.raises(TypeError, match=r"resampler\(weights, rng\) .* or resampler\(weights\)"):
        make(resampler=lambda: None)
    with pytest.raises(TypeError, match="signature"):
        make(resampler=lambda a, b, c: None)
    f.resampler = lambda w: np.arange(len(w))       # reassigning re-reads the signature
    assert not f._resampler_takes_rng


def test_reg_and_jitter_options_validated():
    with pytest.raises(ValueError, match="not both"):
        make(reg=1.0, jitter=0.1)
    with pytest.raises(ValueError, match="reg must be"):
        make(reg=-1.0)
    with pytest.raises(ValueError, match="reg must be"):
        make(reg=np.nan)
    f = make()
    assert f.reg == DEFAULT_REG and f.jitter is None
    assert f.resample_threshold == DEFAULT_RESAMPLE_THRESHOLD

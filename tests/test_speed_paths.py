"""The fast paths of GaussianMixture and the samplers equal the straightforward maths.

``GaussianMixture.denoise_frame`` / ``score`` / ``log_prob`` compute squared
distances as one matrix product with cached centre norms, exponentiate
without a row-max pass and fall back to the max-shifted softmax for rows far
from every centre; the samplers precompute their schedules and update in
place. Every test here compares against a brute-force computation written
out in the test (explicit differences, an (M, N, d) tensor), to 1e-10
relative, across isotropic, per-coordinate and rotated-basis mixtures, with
chunking forced small. Memory at M = N = 10,000, d = 40 is bounded. No
wall-time assertions.
"""
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.special import logsumexp, softmax

import filterpy_diffusion.mixture as mixture_module
from filterpy_diffusion import GaussianMixture
from filterpy_diffusion.diffusion import default_sigma_max, karras_schedule, sample

RTOL = 1e-10


# -- brute-force references ---------------------------------------------------
def brute(mix, X, sigma=0.0, tv=None):
    """log p_sigma(x), denoiser D(x) and score by explicit differences over all components."""
    d = mix.dim
    tv = mix.var + sigma ** 2 if tv is None else np.broadcast_to(np.asarray(tv, float), (d,))
    B = np.eye(d) if mix.basis is None else mix.basis
    diff = (X @ B)[:, None, :] - (mix.centres @ B)[None, :, :]          # (M, N, d)
    L = mix.log_weights[None, :] - 0.5 * np.sum(diff ** 2 / tv, axis=2)
    logp = logsumexp(L, axis=1) - 0.5 * np.sum(np.log(2 * np.pi * tv))
    D = softmax(L, axis=1) @ mix.centres
    score = (((D - X) @ B) / tv) @ B.T
    return logp, D, score


def brute_denoise_frame(mix, U, tv):
    """Denoiser in the mixture's frame by explicit differences (frame of ``mix.to_frame``)."""
    C = mix.to_frame(mix.centres)
    tv = np.broadcast_to(np.asarray(tv, float), (mix.dim,))
    L = mix.log_weights[None, :] - 0.5 * np.sum((U[:, None, :] - C[None]) ** 2 / tv, axis=2)
    return softmax(L, axis=1) @ C


def assert_close(a, b, scale, rtol=RTOL):
    err = np.max(np.abs(np.asarray(a) - np.asarray(b)))
    assert err <= rtol * scale, f"max error {err:.3g} > {rtol:g} x scale {scale:.3g}"


def make_mixture(rng, N, d, kind, offset=0.0, spread=2.0, kernel=0.3, dead=0):
    """A mixture of one of the kinds the package builds."""
    centres = rng.normal(size=(N, d)) * spread + offset
    lw = rng.normal(size=N) * 3.0
    if dead:
        lw[rng.choice(N, size=min(dead, N - 1), replace=False)] = -np.inf
    basis = None
    if kind == 'isotropic':
        var = kernel ** 2
    elif kind == 'per-coordinate':
        var = (kernel * rng.uniform(0.3, 3.0, size=d)) ** 2
    elif kind == 'rotated':
        var = (kernel * rng.uniform(0.3, 3.0, size=d)) ** 2
        basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    elif kind == 'rotated-isotropic':
        var = kernel ** 2
        basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    else:
        raise ValueError(kind)
    return GaussianMixture(centres, lw, var, basis)


KINDS = ['isotropic', 'per-coordinate', 'rotated', 'rotated-isotropic']


def check_against_brute(mix, X, sigma):
    logp, D, score = brute(mix, X, sigma)
    spread = np.max(np.abs(mix.centres - mix.mean())) + np.sqrt(mix.var.max() + sigma ** 2)
    assert_close(mix.denoise(X, sigma) - mix.mean(), D - mix.mean(), spread)
    assert_close(mix.score(X, sigma), score, np.max(np.abs(score)))
    assert_close(mix.log_prob(X, sigma), logp, max(1.0, np.max(np.abs(logp))))


# -- denoiser, score and density ----------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sigma", [0.0, 0.7, 25.0])
@pytest.mark.parametrize("block_rows", [None, 3])
def test_fast_path_equals_brute_force(kind, sigma, block_rows, monkeypatch):
    rng = np.random.default_rng(1)
    N, d = 60, 7
    mix = make_mixture(rng, N, d, kind, offset=50.0)
    if block_rows is not None:
        monkeypatch.setattr(mixture_module, "_BLOCK_ELEMENTS", N * block_rows)
    X = mix.centres[rng.integers(0, N, 41)] + rng.normal(size=(41, d)) * rng.uniform(0.1, 3.0)
    check_against_brute(mix, X, sigma)
    # a single point (d,) goes through the same path
    logp, D, score = brute(mix, X[:1], sigma)
    assert_close(mix.score(X[0], sigma), score[0], np.max(np.abs(score)))


@pytest.mark.parametrize("kind", KINDS)
def test_denoise_frame_with_any_total_variance(kind):
    # denoise_frame takes tv directly: a scalar, a uniform vector, or a
    # non-uniform vector even for an isotropic mixture (no isotropic shortcut then).
    rng = np.random.default_rng(2)
    mix = make_mixture(rng, 40, 5, kind)
    U = rng.normal(size=(30, 5)) * 2
    spread = np.max(np.abs(mix.to_frame(mix.centres)))
    for tv in [0.5, np.full(5, 0.5), rng.uniform(0.05, 2.0, size=5)]:
        assert_close(mix.denoise_frame(U, tv), brute_denoise_frame(mix, U, tv), spread)


@pytest.mark.parametrize("kind", KINDS)
def test_points_far_from_every_centre_use_the_max_shifted_fallback(kind, monkeypatch):
    # Hundreds of kernel widths away every exp(l_ij) underflows without a
    # shift: those rows must be recomputed, not returned as 0/0.
    rng = np.random.default_rng(3)
    N, d = 50, 4
    mix = make_mixture(rng, N, d, kind, kernel=0.05)
    calls = []
    original = GaussianMixture._responsibilities

    def spy(self, u, tv):
        calls.append(len(u))
        return original(self, u, tv)
    monkeypatch.setattr(GaussianMixture, "_responsibilities", spy)
    near = mix.centres[:5] + rng.normal(size=(5, d)) * 0.05
    far = mix.centres[:5] + rng.normal(size=(5, d)) * 40.0        # ~800 kernel widths
    X = np.concatenate([near, far])
    for sigma in [0.0, 0.01]:
        logp, D, score = brute(mix, X, sigma)
        got = mix.denoise(X, sigma)
        assert np.all(np.isfinite(got))
        assert_close(got - mix.mean(), D - mix.mean(), np.max(np.abs(mix.centres - mix.mean())))
        assert_close(mix.score(X, sigma), score, np.max(np.abs(score)))
        assert_close(mix.log_prob(X, sigma), logp, np.max(np.abs(logp)))
    assert calls and max(calls) <= 5, "only the far rows take the fallback"


@pytest.mark.parametrize("kind", KINDS)
def test_zero_weight_components_are_dropped_exactly(kind, monkeypatch):
    rng = np.random.default_rng(4)
    N, d = 80, 6
    mix = make_mixture(rng, N, d, kind, dead=30)
    assert np.sum(mix.log_weights == -np.inf) == 30
    monkeypatch.setattr(mixture_module, "_BLOCK_ELEMENTS", N * 4)
    X = mix.centres[rng.integers(0, N, 33)] + rng.normal(size=(33, d))
    for sigma in [0.0, 1.0]:
        check_against_brute(mix, X, sigma)
    # the same mixture without the dead components is the same density
    live = np.isfinite(mix.log_weights)
    twin = GaussianMixture(mix.centres[live], mix.log_weights[live], mix.var, mix.basis)
    assert_close(twin.log_prob(X, 0.3), mix.log_prob(X, 0.3), np.max(np.abs(mix.log_prob(X, 0.3))))


@settings(max_examples=40)
@given(N=st.integers(1, 40), d=st.integers(1, 9), M=st.integers(1, 30),
       kind=st.sampled_from(KINDS), sigma=st.sampled_from([0.0, 0.1, 3.0]),
       rows=st.integers(1, 8), offset=st.sampled_from([0.0, 1e3]), seed=st.integers(0, 2 ** 16))
def test_fast_path_equals_brute_force_property(N, d, M, kind, sigma, rows, offset, seed):
    rng = np.random.default_rng(seed)
    mix = make_mixture(rng, N, d, kind, offset=offset)
    X = mix.centres[rng.integers(0, N, M)] + rng.normal(size=(M, d)) * rng.uniform(0.05, 5.0)
    saved = mixture_module._BLOCK_ELEMENTS
    mixture_module._BLOCK_ELEMENTS = N * rows
    try:
        check_against_brute(mix, X, sigma)
    finally:
        mixture_module._BLOCK_ELEMENTS = saved


def test_mixture_caches_do_not_change_results_between_calls():
    # The isotropic centre factor and the anisotropic squared centres are
    # built on first use; later calls (other noise levels, other points)
    # must not see stale values.
    rng = np.random.default_rng(5)
    for kind in KINDS:
        mix = make_mixture(rng, 30, 4, kind)
        X = rng.normal(size=(10, 4))
        for sigma in [2.0, 0.0, 0.5, 2.0]:
            check_against_brute(mix, X, sigma)


def test_sigma_max_cache_equals_direct_eigenvalue():
    rng = np.random.default_rng(6)
    for kind in KINDS:
        mix = make_mixture(rng, 50, 6, kind)
        lam = np.linalg.eigvalsh(mix.cov()).max()
        direct = 10.0 * np.sqrt(max(lam, mix.var.max()))
        assert default_sigma_max(mix) == pytest.approx(direct, rel=1e-12)
        assert default_sigma_max(mix) == default_sigma_max(mix)
        np.testing.assert_allclose(mix.cov(0.3), mix.cov(0.3))


# -- samplers: in-place, precomputed schedules vs the straightforward loops ----
def ref_dpm2m(mix, u, sig):
    D_prev, h_prev = None, None
    for s, s_next in zip(sig[:-1], sig[1:]):
        t, t_next = np.sqrt(mix.var + s ** 2), np.sqrt(mix.var + s_next ** 2)
        D = brute_denoise_frame(mix, u, t ** 2)
        h = np.log(t / t_next)
        D_eff = D if D_prev is None else (1 + 0.5 * h / h_prev) * D - (0.5 * h / h_prev) * D_prev
        u = (t_next / t) * u + (1 - t_next / t) * D_eff
        D_prev, h_prev = D, h
    return u


def ref_heun(mix, u, sig):
    def drift(u, s):
        tv = mix.var + s ** 2
        return -s * (brute_denoise_frame(mix, u, tv) - u) / tv
    for s, s_next in zip(sig[:-1], sig[1:]):
        d = drift(u, s)
        u_e = u + (s_next - s) * d
        d_next = drift(u_e, s_next) if s_next > 0 else 0.0
        u = u + (s_next - s) * 0.5 * (d + d_next)
    return u


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("solver", ['dpm2m', 'heun'])
def test_ode_sampler_equals_straightforward_loop(kind, solver, monkeypatch):
    rng = np.random.default_rng(7)
    mix = make_mixture(rng, 30, 3, kind, offset=10.0)
    monkeypatch.setattr(mixture_module, "_BLOCK_ELEMENTS", 30 * 4)
    steps = 9
    sig = karras_schedule(mix, steps)
    start = mix.to_frame(mix.sample(25, np.random.default_rng(8), sigma=sig[0]))
    ref = mix.from_frame((ref_dpm2m if solver == 'dpm2m' else ref_heun)(mix, start, sig))
    got = sample(mix, 25, np.random.default_rng(8), 'ode', steps, solver=solver)
    assert_close(got, ref, np.max(np.abs(ref - mix.mean())))


@pytest.mark.parametrize("kind", KINDS)
def test_sde_sampler_equals_straightforward_loop(kind):
    rng = np.random.default_rng(9)
    mix = make_mixture(rng, 30, 3, kind)
    steps = 12
    sig = karras_schedule(mix, steps)
    g = np.random.default_rng(10)
    u = mix.to_frame(mix.sample(20, g, sigma=sig[0]))
    for s, s_next in zip(sig[:-1], sig[1:]):
        tv, tv_next = mix.var + s ** 2, mix.var + s_next ** 2
        a = tv_next / tv
        u = (a * u + (1 - a) * brute_denoise_frame(mix, u, tv)
             + np.sqrt(tv_next * (1 - a)) * g.standard_normal(u.shape))
    ref = mix.from_frame(u)
    got = sample(mix, 20, np.random.default_rng(10), 'sde', steps)
    assert_close(got, ref, np.max(np.abs(ref - mix.mean())))


# -- memory ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ['isotropic', 'rotated'])
def test_ten_thousand_points_and_members_in_bounded_memory(kind):
    # M = N = 10,000, d = 40: an (M, N) block would be 800 MB. The fast
    # path holds one (chunk, N) block plus O((M + N) d) arrays.
    rng = np.random.default_rng(11)
    N, d = 10_000, 40
    mix = make_mixture(rng, N, d, kind, kernel=1.0)
    X = mix.centres + rng.normal(size=(N, d))
    tracemalloc.start()
    try:
        g = mix.score(X, 0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert g.shape == (N, d) and np.all(np.isfinite(g))
    assert peak < 120e6, f"peak {peak / 1e6:.0f} MB"
    # spot-check a few rows against brute force
    rows = rng.integers(0, N, 3)
    assert_close(g[rows], brute(mix, X[rows], 0.5)[2], np.max(np.abs(g[rows])), rtol=1e-9)

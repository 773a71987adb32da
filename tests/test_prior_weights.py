"""Non-uniform prior member weights in the analysis, and member identity of exact sampling.

References are written from the definitions (``np.cov`` with ``aweights``,
duplicated ensembles), never taken from the code under test.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from filterpy_diffusion import ConditionalKDE, DiffusionKDEFilter
from filterpy_diffusion.kde import ClusteredKDE, CovarianceKDE, EnKPFDensity
from filterpy_diffusion.localization import LETKF, LocalDiffusionKDEFilter

finite = st.floats(-5, 5, allow_nan=False, allow_infinity=False)


@given(X=arrays(float, (6, 2), elements=finite), Y=arrays(float, (6, 1), elements=finite),
       counts=arrays(np.int64, 6, elements=st.integers(0, 3)), z=finite,
       sx=st.floats(0.1, 3), sy=st.floats(0.1, 3))
def test_weighted_conditional_kde_equals_the_duplicated_ensemble(X, Y, counts, z, sx, sy):
    if counts.sum() == 0:
        counts = counts + 1
    weighted = ConditionalKDE(X, Y, sx, sy, weights=counts)
    dup = ConditionalKDE(np.repeat(X, counts, axis=0), np.repeat(Y, counts, axis=0), sx, sy)
    w_dup = np.bincount(np.repeat(np.arange(6), counts), weights=dup.weights([z]), minlength=6)
    np.testing.assert_allclose(weighted.weights([z]), w_dup, rtol=1e-9, atol=1e-300)
    assert np.all(weighted.weights([z])[counts == 0] == 0)
    np.testing.assert_allclose(weighted.log_marginal([z]), dup.log_marginal([z]), rtol=1e-10,
                               atol=1e-10)
    xs = np.array([[0.3, -0.2], [1.0, 2.0]])
    np.testing.assert_allclose(weighted.log_prob(xs, [z]), dup.log_prob(xs, [z]), rtol=1e-9,
                               atol=1e-9)


def _ensemble(seed=0, N=40):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, 2)) * [1.0, 2.0] + [0.0, 1.0]
    X[:, 1] += 0.5 * X[:, 0]
    P = X[:, :1] + 0.3 * X[:, 1:] ** 2 / 4
    w = rng.uniform(0.2, 2.0, N)
    return X, P, w / w.sum()


def test_covariance_kde_uses_weighted_moments_and_component_weights():
    X, P, w = _ensemble()
    R = np.array([[0.4]])
    Y = P + np.random.default_rng(1).normal(size=P.shape) * 0.6
    kde = CovarianceKDE(X, Y, 0.5, R=R, predictions=P, weights=w)
    C = np.cov(np.hstack([X, P]).T, aweights=w)          # reliability weights, 1 - sum w^2
    np.testing.assert_allclose(kde.Cxx, C[:2, :2], rtol=1e-12)
    np.testing.assert_allclose(kde.Cyy, C[2:, 2:] + R, rtol=1e-12)
    np.testing.assert_allclose(kde.K, C[:2, 2:] @ np.linalg.inv(C[2:, 2:] + R), rtol=1e-10)
    np.testing.assert_allclose(kde.mean_x, w @ X, rtol=1e-12)
    # Component weights: pi_i times the kernel at the weighted shrinkage centres.
    z = np.array([0.7])
    a = np.sqrt(1 - 0.25)
    cy = w @ Y + a * (Y - w @ Y)
    lk = np.log(w) - 0.5 * ((z - cy[:, 0]) ** 2) / (0.25 * kde.Cyy[0, 0])
    np.testing.assert_allclose(kde.log_weights(z), lk - np.logaddexp.reduce(lk), atol=1e-10)


def test_enkpf_density_at_g1_shifts_members_with_the_weighted_gain():
    X, P, w = _ensemble(2)
    R = np.array([[0.5]])
    z = np.array([1.2])
    dens = EnKPFDensity(X, P, R, 1.0, weights=w)
    C = np.cov(np.hstack([X, P]).T, aweights=w)
    K = C[:2, 2:] @ np.linalg.inv(C[2:, 2:] + R)
    np.testing.assert_allclose(dens.centres(z), X + (z - P) @ K.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dens.weights(z), w, rtol=1e-10)      # g = 1: the prior weights


def test_clustered_kde_cluster_mass_is_the_prior_weight():
    X, P, w = _ensemble(3)
    X[:20] += 8.0
    labels = (np.arange(40) >= 20).astype(int)
    R = np.array([[0.5]])
    z = np.array([0.3])
    kde = ClusteredKDE(X, P, 0.5, labels, R=R, predictions=P, shrink_evidence=False, weights=w,
                       evidence="gaussian")
    ev = np.array([p.log_evidence(z) for p in kde.parts])
    mass = np.array([w[:20].sum(), w[20:].sum()])
    np.testing.assert_allclose(kde.log_marginal(z), np.logaddexp.reduce(np.log(mass) + ev),
                               rtol=1e-12)
    for rows, part in zip(kde.members, kde.parts):
        C = np.cov(X[rows].T, aweights=w[rows])
        np.testing.assert_allclose(part.Cxx, C, rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda X, P, w: ConditionalKDE(X, P, 0.5, 0.5, weights=w),
    lambda X, P, w: CovarianceKDE(X, P + 0.1, 0.3, R=np.eye(1), predictions=P, weights=w),
    lambda X, P, w: EnKPFDensity(X, P, np.eye(1), 0.4, weights=w),
    lambda X, P, w: ClusteredKDE(X, P + 0.1, 0.3, np.arange(len(X)) % 2, R=np.eye(1),
                                 predictions=P, weights=w),
], ids=["isotropic", "covariance", "enkpf", "clustered"])
def test_a_zero_prior_weight_removes_the_member(make):
    X, P, w = _ensemble(4)
    w[[3, 17]] = 0.0
    kde = make(X, P, w)
    z = np.array([0.5])
    mix = kde.conditional(z) if hasattr(kde, 'conditional') else None
    weights = kde.weights(z)
    assert weights[3] == 0 and weights[17] == 0 and np.isclose(weights.sum(), 1)
    if mix is not None:
        assert mix.weights[3] == 0 and mix.weights[17] == 0


# -------------------------------------------------------------- filters
H = np.array([[1.0, 0.0]])


def fx(x, dt):
    return x + dt * np.array([x[1], -0.1 * x[0]])


def hx(x):
    return H @ x


def make(seed=0, N=40, **kw):
    f = DiffusionKDEFilter(np.array([0.0, 1.0]), np.diag([1.0, 4.0]), 1, 0.5, N, hx, fx,
                           rng=seed, inflation=None, **kw)
    f.R = np.array([[0.3]])
    f.Q = 0.01 * np.eye(2)
    return f


KERNELS = [dict(kernel='covariance'), dict(kernel='covariance', sampler='exact'),
           dict(kernel='enkpf'), dict(kernel='enkpf', bandwidth=1.0),
           dict(kernel='isotropic'), dict(kernel='covariance', clusters=2)]


@pytest.mark.parametrize("kw", KERNELS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_non_uniform_prior_weights_change_the_analysis(kw):
    f, g = make(**kw), make(**kw)
    for h in (f, g):
        h.predict()
    heavy = f.sigmas[:, 0] > np.median(f.sigmas[:, 0])
    w = np.where(heavy, 4.0, 1.0)
    g.weights = w
    f.update(0.2); g.update(0.2)
    assert not np.array_equal(f.sigmas, g.sigmas)
    # The heavy members pull the analysis their way.
    assert g.x[0] > f.x[0]
    np.testing.assert_array_equal(g.weights, np.full(g.N, 1 / g.N))   # a drawn ensemble


def _off_gain(f):
    # Unit vector orthogonal to the gain: the EnKF leaves x_i's coordinate along it unchanged.
    k = f.K[:, 0]
    return np.array([k[1], -k[0]]) / np.hypot(*k)


def test_at_g1_analysis_member_i_is_forecast_member_is_kalman_shifted_component():
    f = make(seed=5, kernel='enkpf', bandwidth=1.0, sampler='exact')
    f.predict(); f.update(0.4); f.predict()
    before = f.sigmas.copy()
    f.update(-0.3)
    u = _off_gain(f)
    # Along u, the component x_i + K (z - hx(x_i)) is x_i; the kernel noise K R K^T is along K.
    scale = np.ptp(before @ u)
    np.testing.assert_allclose(f.sigmas @ u, before @ u, atol=1e-5 * scale)


def test_a_zero_prior_weight_member_gives_no_analysis_component():
    f = make(seed=6, kernel='enkpf', bandwidth=1.0, sampler='exact')
    f.predict()
    before = f.sigmas.copy()
    w = np.ones(f.N)
    w[7] = 0.0
    f.weights = w
    f.update(0.1)
    u = _off_gain(f)
    src = np.abs((f.sigmas @ u)[:, None] - (before @ u)[None, :]).argmin(axis=1)
    assert 7 not in src
    assert sorted(set(src)) == [i for i in range(f.N) if i != 7]    # each other member kept


@pytest.mark.parametrize("cls", [LocalDiffusionKDEFilter, LETKF])
def test_local_filters_reject_non_uniform_prior_weights(cls):
    d = 4
    f = cls(np.zeros(d), np.eye(d), d, 1.0, 8, lambda x: x, lambda x, dt: x, rng=0,
            state_positions=np.arange(d), obs_positions=np.arange(d), domain_length=d)
    f.predict()
    w = np.linspace(1, 2, 8)
    f.weights = w
    sigmas, state = f.sigmas.copy(), f.rng.bit_generator.state
    with pytest.raises(ValueError, match="not uniform.*Resample first"):
        f.update(np.zeros(d))
    np.testing.assert_array_equal(f.sigmas, sigmas)
    assert f.rng.bit_generator.state == state


@pytest.mark.parametrize("stratified", [True, False])
def test_ordered_sampling_draws_the_same_set_in_component_order(stratified):
    from filterpy_diffusion.mixture import GaussianMixture
    centres = np.arange(12.0)[:, None] * [10.0, -10.0]       # far apart: a draw shows its component
    mix = GaussianMixture(centres, np.zeros(12), 0.5)
    free = mix.sample(12, np.random.default_rng(3), stratified=stratified)
    kept = mix.sample(12, np.random.default_rng(3), stratified=stratified, ordered=True)
    np.testing.assert_array_equal(np.sort(kept.view('f8,f8'), axis=0),
                                  np.sort(free.view('f8,f8'), axis=0))
    if stratified:     # systematic choice: each equally weighted component exactly once
        np.testing.assert_array_equal(np.rint(kept[:, 0] / 10), np.arange(12))

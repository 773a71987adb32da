"""Ensemble splitting (clustering.py), ClusteredKDE and DiffusionKDEFilter(clusters=...)."""
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import multivariate_normal

from filterpy_diffusion import DiffusionKDEFilter
from filterpy_diffusion.clustering import (bonferroni_normaltest, gaussian_bic, gaussian_pvalue,
                                           min_cluster_size, separation, split_ensemble,
                                           two_means)
from filterpy_diffusion.kde import ClusteredKDE, CovarianceKDE, monte_carlo_cluster_log_weights


def two_blobs(rng, n0, n1, d, gap, sd=1.0):
    """Two isotropic Gaussian blobs ``gap`` standard deviations apart along a random direction."""
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    A = rng.normal(size=(n0, d)) * sd
    B = rng.normal(size=(n1, d)) * sd + gap * sd * u
    labels = np.r_[np.zeros(n0, int), np.ones(n1, int)]
    return np.vstack([A, B]), labels


def same_partition(a, b):
    return np.array_equal(a, b) or np.array_equal(a, 1 - b)


@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 4), n0=st.integers(15, 60),
       n1=st.integers(15, 60), gap=st.floats(10.0, 40.0))
@example(seed=8118, d=1, n0=15, n1=15, gap=10.0)
@example(seed=43040, d=2, n0=45, n1=15, gap=10.0)   # every start but the unscaled axis missed it
def test_auto_recovers_two_well_separated_blobs(seed, d, n0, n1, gap):
    Z, truth = two_blobs(np.random.default_rng(seed), n0, n1, d, gap)
    labels = split_ensemble(Z)
    assert labels.max() == 1
    # Every row within 3 sd of its own blob's centre is placed with its blob.
    # A farther one may go either way: seed 8118 (d = 1, 15 + 15 rows) drew
    # blob 1 with a sample sd of 0.5 plus a row 3.3 sd out, which its fitted
    # Gaussian makes likelier in blob 0 (sample sd 1.1).
    u = np.random.default_rng(seed).normal(size=d)     # two_blobs' first draw: the direction
    centres = np.stack([np.zeros(d), gap * u / np.linalg.norm(u)])
    inside = np.linalg.norm(Z - centres[truth], axis=1) < 3.0
    assert same_partition(labels[inside], truth[inside])


def test_auto_recovers_blobs_that_standardised_2_means_cuts_at_a_tilt():
    # A miss hypothesis found: 2-D, 15 + 15 rows 10 sd apart. Standardising
    # shrinks the gap to ~2 units across unit spread, every 2-means start
    # (the principal axes of a 2x2 correlation matrix are the diagonals)
    # ends at a tilted cut, and classification EM keeps rows 6 and 7 in the
    # far cluster (separation 3.99 < 4): the ensemble was kept whole.
    Z, truth = two_blobs(np.random.default_rng(39), 15, 15, d=2, gap=10.0)
    assert same_partition(split_ensemble(Z), truth)
    assert same_partition(split_ensemble(Z, clusters=2), truth)


@pytest.mark.parametrize("seed", range(5))
def test_auto_keeps_a_gaussian_ensemble_whole(seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3, 3))
    Z = rng.normal(size=(400, 3)) @ A.T
    assert split_ensemble(Z).max() == 0
    # clusters=2 splits it anyway, 'auto' only where the data say so.
    assert split_ensemble(Z, clusters=2).max() == 1


@pytest.mark.parametrize("seed", range(5))
def test_auto_keeps_a_rank_deficient_joint_ensemble_whole(seed):
    # (x, H x): the joint covariance is singular. Singular cluster
    # covariances must not be mistaken for a better fit (a regression).
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 2))
    Z = np.hstack([X, X @ np.array([[1.0], [0.5]])])
    assert split_ensemble(Z).max() == 0


def test_halves_of_one_gaussian_are_not_separated():
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(20_000, 1))
    labels = (Z[:, 0] > 0).astype(int)
    # Means +-0.798, pooled sd 0.603: 2.65 apart, below the 4 sd threshold.
    assert separation(Z, labels) == pytest.approx(2 * np.sqrt(2 / np.pi) / np.sqrt(1 - 2 / np.pi),
                                                  rel=0.02)


def test_too_small_clusters_are_not_split_off():
    rng = np.random.default_rng(4)
    Z, _ = two_blobs(rng, 60, min_cluster_size(2) - 1, 2, 30.0)
    assert split_ensemble(Z).max() == 0
    assert split_ensemble(Z, clusters=2).max() == 0


def test_bic_prefers_the_true_split_to_a_wrong_one():
    Z, truth = two_blobs(np.random.default_rng(5), 40, 40, 2, 8.0)
    wrong = (np.arange(80) % 2).astype(int)
    assert gaussian_bic(Z, truth) < gaussian_bic(Z, np.zeros(80, int)) < gaussian_bic(Z, wrong)


def test_split_is_deterministic_and_ignores_row_order():
    Z, _ = two_blobs(np.random.default_rng(6), 30, 50, 3, 12.0)
    perm = np.random.default_rng(7).permutation(80)
    a = split_ensemble(Z)
    assert np.array_equal(a, split_ensemble(Z))
    assert same_partition(split_ensemble(Z[perm]), a[perm])
    assert all(lab.shape == (80,) for lab in two_means(Z))


@pytest.mark.parametrize("bad", [0, 3, 'two', 1.5, True])
def test_bad_clusters_value_raises(bad):
    with pytest.raises(ValueError, match="clusters"):
        split_ensemble(np.zeros((10, 2)), clusters=bad)


# -- ClusteredKDE ------------------------------------------------------------

def bimodal_joint(rng, N, d=2, m=1, gap=8.0):
    X, labels = two_blobs(rng, N // 2, N - N // 2, d, gap)
    H = rng.normal(size=(m, d))
    HX = np.abs(X) @ H.T          # different local slopes in each blob
    R = 0.3 * np.eye(m)
    Y = HX + rng.normal(size=(N, m)) * np.sqrt(0.3)
    return X, Y, HX, R, labels


def test_one_cluster_is_the_covariance_kde():
    rng = np.random.default_rng(8)
    X, Y, HX, R, _ = bimodal_joint(rng, 30)
    z = Y.mean(0) + 0.2
    a = CovarianceKDE(X, Y, 0.4, R=R, predictions=HX)
    b = ClusteredKDE(X, Y, 0.4, np.zeros(30, int), R=R, predictions=HX)
    x = rng.normal(size=(7, 2))
    for sigma in (0.0, 0.5):
        np.testing.assert_allclose(b.log_prob(x, z, sigma), a.log_prob(x, z, sigma), rtol=1e-10)
        np.testing.assert_allclose(b.score(x, z, sigma), a.score(x, z, sigma), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.weights(z), a.weights(z), rtol=1e-10)
    np.testing.assert_allclose(b.centres(z), a.centres(z))


@given(seed=st.integers(0, 2**32 - 1), N=st.integers(8, 40), d=st.integers(1, 4),
       h=st.floats(0.05, 0.95), sigma=st.sampled_from([0.0, 0.1, 1.0]))
def test_clustered_score_is_gradient_of_log_prob(seed, N, d, h, sigma):
    rng = np.random.default_rng(seed)
    X, Y, HX, R, labels = bimodal_joint(rng, N, d)
    kde = ClusteredKDE(X, Y, h, labels, R=R, predictions=HX)
    z = Y[0] + rng.normal()
    x = X[rng.integers(N)] + rng.normal(size=d)
    eps = 1e-5
    fd = np.array([(kde.log_prob(x + eps * e, z, sigma) - kde.log_prob(x - eps * e, z, sigma))
                   / (2 * eps) for e in np.eye(d)])
    g = kde.score(x, z, sigma)
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-5 * (1 + np.abs(fd).max()))


@given(seed=st.integers(0, 2**32 - 1), N=st.integers(8, 60), h=st.floats(0.01, 0.99),
       shift=st.floats(-30, 30))
def test_clustered_weights_are_a_probability_vector(seed, N, h, shift):
    rng = np.random.default_rng(seed)
    X, Y, HX, R, labels = bimodal_joint(rng, N)
    kde = ClusteredKDE(X, Y, h, labels, R=R, predictions=HX)
    w = kde.weights(Y.mean(0) + shift)
    assert np.all(w >= 0) and np.isfinite(w).all()
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    lw = kde.log_kernel_at(Y.mean(0) + shift)(h)
    np.testing.assert_allclose(np.exp(lw - lw.max()) / np.exp(lw - lw.max()).sum(), w, atol=1e-12)


def test_cluster_weights_are_the_gaussian_evidence_times_the_share():
    rng = np.random.default_rng(9)
    X, Y, HX, R, labels = bimodal_joint(rng, 50, d=2, m=2)
    kde = ClusteredKDE(X, Y, 0.5, labels, R=R, predictions=HX, shrink_evidence=False,
                       evidence='gaussian')
    z = HX[labels == 0].mean(0) + 0.5
    ref = []
    for k in (0, 1):
        P = HX[labels == k]
        ref.append((labels == k).mean() * multivariate_normal(P.mean(0), np.cov(P.T) + R).pdf(z))
    np.testing.assert_allclose(np.exp(kde.cluster_log_weights(z)), np.array(ref) / sum(ref),
                               rtol=1e-9)
    # The member weights of each cluster add up to its cluster weight.
    w = kde.weights(z)
    np.testing.assert_allclose([w[labels == k].sum() for k in (0, 1)],
                               np.exp(kde.cluster_log_weights(z)), rtol=1e-9)


def test_monte_carlo_cluster_weights_are_the_particle_filter_masses():
    # evidence='monte-carlo' (the default with R and predictions): W_c is
    # sum_{i in c} w_i N(z; hx_i, R), the exact weights' mass of cluster c,
    # computed here with scipy, for equal and for carried prior weights.
    rng = np.random.default_rng(19)
    X, Y, HX, R, labels = bimodal_joint(rng, 50, d=2, m=2)
    for prior in (None, rng.uniform(0.2, 2.0, size=len(X))):
        kde = ClusteredKDE(X, Y, 0.5, labels, R=R, predictions=HX, shrink_evidence=False,
                           weights=prior)
        assert kde.evidence == 'monte-carlo'
        w = np.ones(len(X)) if prior is None else prior
        # Two observations in turn on one density: each gets its own evidence.
        for z in (HX[labels == 0].mean(0) + 0.5, HX[labels == 1].mean(0) - 0.3):
            lik = multivariate_normal(np.zeros(2), R).pdf(z - HX)
            mass = np.array([(w * lik)[labels == k].sum() for k in (0, 1)])
            np.testing.assert_allclose(np.exp(kde.cluster_log_weights(z)), mass / mass.sum(),
                                       rtol=1e-9)
            within = np.array([(w * lik)[labels == k].sum() / w[labels == k].sum()
                               for k in (0, 1)])
            np.testing.assert_allclose(kde.log_evidence(z), np.log(within), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(arrays(float, st.integers(4, 30), elements=st.floats(-30.0, 0.0)),
       # No subnormal weights: normalised, they round to zero, a mass the
       # function rightly refuses though the drawn weight is positive.
       arrays(float, st.integers(4, 30), elements=st.floats(0.0, 5.0, allow_subnormal=False)),
       st.integers(0, 2**32 - 1))
def test_monte_carlo_cluster_log_weights_are_the_likelihood_masses(log_lik, w, seed):
    # The filter's mode rule reads the clusters' masses from the member
    # likelihoods alone: sum_{i in c} w_i L_i / sum_i w_i L_i, written here
    # in linear space; None where a cluster has no likelihood at all.
    n = min(len(log_lik), len(w))
    log_lik, w = log_lik[:n], w[:n]
    labels = np.random.default_rng(seed).permutation(np.arange(n) % 2)
    if min(w[labels == k].sum() for k in (0, 1)) == 0:
        with pytest.raises(ValueError, match="positive total prior weight|not all zero"):
            monte_carlo_cluster_log_weights(log_lik, labels, w)
        return
    mass = np.array([(w * np.exp(log_lik))[labels == k].sum() for k in (0, 1)])
    out = monte_carlo_cluster_log_weights(log_lik, labels, w)
    if (mass == 0).any():
        assert out is None
    else:
        np.testing.assert_allclose(np.exp(out), mass / mass.sum(), rtol=1e-9, atol=1e-300)
    # Uniform weights: the same as no weights, bit for bit.
    np.testing.assert_array_equal(monte_carlo_cluster_log_weights(log_lik, labels, np.ones(n)),
                                  monte_carlo_cluster_log_weights(log_lik, labels))


def test_monte_carlo_cluster_log_weights_equal_the_kdes_unshrunk_weights():
    rng = np.random.default_rng(29)
    X, Y, HX, R, labels = bimodal_joint(rng, 40, d=2, m=2)
    prior = rng.uniform(0.2, 2.0, size=len(X))
    z = HX[labels == 0].mean(0) + 0.4
    kde = ClusteredKDE(X, Y, 0.5, labels, R=R, predictions=HX, shrink_evidence=False,
                       weights=prior)
    lik = multivariate_normal(np.zeros(2), R).logpdf(z - HX)
    np.testing.assert_array_equal(monte_carlo_cluster_log_weights(lik, labels, prior),
                                  kde.cluster_log_weights(z))
    lik[labels == 1] = -np.inf
    assert monte_carlo_cluster_log_weights(lik, labels, prior) is None
    with pytest.raises(ValueError, match="labels must have shape"):
        monte_carlo_cluster_log_weights(lik, labels[:-1])


@settings(max_examples=40, deadline=None)
@given(arrays(float, st.integers(3, 30), elements=st.floats(-3.0, 3.0)),
       arrays(float, st.integers(3, 30), elements=st.floats(0.1, 5.0)))
def test_monte_carlo_evidence_variance_is_the_delta_method_of_a_weighted_mean(hx, w):
    # One cluster of n members: log of the weighted mean likelihood, whose
    # delta-method variance is sum_i v_i^2 (L_i / Lbar - 1)^2 (v the
    # normalised prior weights), written here from that formula.
    n = min(len(hx), len(w))
    hx, w = hx[:n, None], w[:n]
    X = np.c_[hx[:, 0] + 0.1 * np.arange(n)]
    R, z = np.array([[0.5]]), np.array([0.3])
    kde = ClusteredKDE(X, hx, 0.5, np.zeros(n, int), R=R, predictions=hx, weights=w)
    L = np.exp(-0.5 * (z[0] - hx[:, 0]) ** 2 / 0.5)
    v = w / w.sum()
    Lbar = v @ L
    np.testing.assert_allclose(kde.log_evidence_var(z), [np.sum(v ** 2 * (L / Lbar - 1) ** 2)],
                               rtol=1e-8, atol=1e-14)


def test_monte_carlo_evidence_falls_back_to_gaussian_when_no_member_explains_z(monkeypatch):
    # A cluster whose every member has zero likelihood (log -inf, an
    # underflow) has no Monte Carlo evidence: the clusters' Gaussian
    # evidence is used for that z instead of a NaN mass.
    import filterpy_diffusion.kde as kde_module
    rng = np.random.default_rng(23)
    X, Y, HX, R, labels = bimodal_joint(rng, 30, d=2, m=2)
    z = HX.mean(0)
    kde = ClusteredKDE(X, Y, 0.5, labels, R=R, predictions=HX)
    real = kde_module.gaussian_log_likelihood
    monkeypatch.setattr(kde_module, "gaussian_log_likelihood",
                        lambda *a: np.where(labels == 0, -np.inf, real(*a)))
    gauss = ClusteredKDE(X, Y, 0.5, labels, R=R, predictions=HX, evidence='gaussian')
    np.testing.assert_array_equal(kde.log_evidence(z), gauss.log_evidence(z))
    np.testing.assert_array_equal(kde.cluster_log_weights(z), gauss.cluster_log_weights(z))
    assert np.isfinite(kde.cluster_log_weights(z)).all()


def test_evidence_falls_back_to_gaussian_without_member_likelihoods():
    rng = np.random.default_rng(21)
    X, Y, HX, R, labels = bimodal_joint(rng, 30, d=2, m=2)
    assert ClusteredKDE(X, Y, 0.5, labels).evidence == 'gaussian'          # no R, no hx
    singular = np.diag([R[0, 0], 0.0])
    assert ClusteredKDE(X, Y, 0.5, labels, R=singular, predictions=HX).evidence == 'gaussian'
    with pytest.raises(ValueError, match="evidence='monte-carlo'"):
        ClusteredKDE(X, Y, 0.5, labels, evidence='monte-carlo')
    with pytest.raises(ValueError, match="evidence must be one of"):
        ClusteredKDE(X, Y, 0.5, labels, R=R, predictions=HX, evidence='exact')


def test_evidence_shrinkage_ignores_noise_and_keeps_real_differences():
    # Mirror-image clusters measured through abs(x): the exact cluster
    # weights are equal; shrinkage keeps the sampling noise of the cluster
    # means from moving them. An observation that only one cluster
    # explains still decides.
    rng = np.random.default_rng(10)
    drift = []
    for _ in range(200):
        X = np.r_[rng.normal(1.0, 0.15, 40), rng.normal(-1.0, 0.15, 40)][:, None]
        labels = np.r_[np.zeros(40, int), np.ones(40, int)]
        HX = np.abs(X)
        R = np.array([[0.01]])
        z = np.array([0.75])   # 1.5 prior sd off the mean: the noise is amplified
        W = [np.exp(ClusteredKDE(X, HX, 0.5, labels, R=R, predictions=HX,
                                 shrink_evidence=s).cluster_log_weights(z))[0] for s in (True, False)]
        drift.append(np.abs(np.array(W) - 0.5))
    drift = np.array(drift)
    assert drift[:, 0].mean() < 0.5 * drift[:, 1].mean()
    # A real difference: two clusters with different |x|.
    X = np.r_[rng.normal(1.0, 0.1, 40), rng.normal(-2.0, 0.1, 40)][:, None]
    kde = ClusteredKDE(X, np.abs(X), 0.5, labels, R=R, predictions=np.abs(X))
    assert np.exp(kde.cluster_log_weights(np.array([1.0])))[0] > 0.999


@pytest.mark.parametrize("evidence", ["monte-carlo", "gaussian"])
def test_evidence_threshold_ignores_differences_within_t_standard_errors(evidence):
    rng = np.random.default_rng(14)
    X = np.r_[rng.normal(1.0, 0.15, 40), rng.normal(-1.0, 0.15, 40)][:, None]
    labels = np.r_[np.zeros(40, int), np.ones(40, int)]
    HX, R, z = np.abs(X), np.array([[0.01]]), np.array([0.75])

    def weight0(**kw):
        kde = ClusteredKDE(X, HX, 0.5, labels, R=R, predictions=HX, evidence=evidence, **kw)
        return np.exp(kde.cluster_log_weights(z))[0], kde
    raw, kde = weight0(shrink_evidence=False)
    ell = kde.log_evidence(z)
    if evidence == "gaussian":     # the clusters' own Gaussian evidence
        np.testing.assert_array_equal(ell, [p.log_evidence(z) for p in kde.parts])
    ratio = abs(ell[0] - ell[1]) / np.sqrt(kde.log_evidence_var(z).sum())
    assert raw != pytest.approx(0.5, abs=1e-3)
    # Within t standard errors: the shares, here equal.
    assert weight0(evidence_threshold=1.01 * ratio)[0] == pytest.approx(0.5, abs=1e-12)
    # Beyond: part of the way from the shares to the raw evidence.
    w = weight0(evidence_threshold=0.5 * ratio)[0]
    assert min(0.5, raw) < w < max(0.5, raw)
    assert weight0(evidence_threshold=0.0)[0] == pytest.approx(raw, rel=1e-12)


def test_clustered_kde_validates_labels():
    X = np.random.default_rng(11).normal(size=(10, 2))
    with pytest.raises(ValueError, match="labels must have shape"):
        ClusteredKDE(X, X[:, :1], 0.5, np.zeros(9, int))
    with pytest.raises(ValueError, match="at least 2 members"):
        ClusteredKDE(X, X[:, :1], 0.5, np.r_[np.zeros(9, int), 1])


# -- the filter ------------------------------------------------------------

def abs_filter(N, seed, clusters, **kw):
    kw.setdefault('kernel', 'covariance')   # the clustered kernel itself (the default may weight)
    f = DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, N, lambda x: np.abs(x),
                           lambda x, dt: x, rng=seed, vectorized=True, clusters=clusters, **kw)
    f.R = np.array([[0.1 ** 2]])
    f.Q = np.array([[0.1 ** 2]])
    rng = np.random.default_rng(seed + 1000)
    f.sigmas = np.r_[rng.normal(1.0, 0.1, N // 2), rng.normal(-1.0, 0.1, N - N // 2)][:, None]
    return f


def test_clusters_give_each_mode_its_own_kalman_update():
    # Prior 0.5 N(1, 0.1^2) + 0.5 N(-1, 0.1^2), z = |x| + N(0, 0.1^2) = 1.1:
    # each mode's update is the Kalman update of the local slope +-1,
    # mean +-1.05 and variance 0.005; the modes keep equal mass.
    N = 600
    f = abs_filter(N, 12, 'auto', inflation=None, sampler='exact')
    f.update(np.array([1.1]))
    x = f.sigmas[:, 0]
    assert f.n_clusters == 2
    assert abs((x > 0).mean() - 0.5) < 0.05
    for sign in (1, -1):
        mode = x[np.sign(x) == sign]
        assert abs(mode.mean() - sign * 1.05) < 4 * np.sqrt(0.005 / len(mode))
        assert mode.var() == pytest.approx(0.005, rel=0.3)
    # One global gain cannot do this: its modes are pulled towards 0.
    g = abs_filter(N, 12, 1, inflation=None, sampler='exact')
    g.update(np.array([1.1]))
    gx = g.sigmas[:, 0]
    assert abs(np.abs(gx).mean() - 1.05) > 3 * abs(np.abs(x).mean() - 1.05)


@pytest.mark.parametrize("sampler", ['ode', 'exact'])
def test_clustered_filter_is_reproducible_and_leaves_inputs_alone(sampler):
    runs = []
    for _ in range(2):
        f = abs_filter(60, 13, 'auto', sampler=sampler)
        prior = f.sigmas.copy()
        given_array = f.sigmas
        f.predict()
        f.sigmas = given_array = f.sigmas.copy()
        before = given_array.copy()
        f.update(np.array([1.2]))
        assert np.array_equal(given_array, before)   # inflation never writes into it
        assert f.n_clusters == 2 and np.isfinite(f.sigmas).all()
        runs.append(f.sigmas)
        assert not np.array_equal(prior, f.sigmas)
    assert np.array_equal(runs[0], runs[1])


def test_evidence_threshold_of_the_filter_holds_mirror_modes_in_balance():
    # Mirror-image modes seen through |x|: with an unreachable threshold the
    # two modes keep exactly their shares; with none (t = 0) the sampling
    # noise of the cluster evidence moves members between them.
    def positive_share(t):
        f = abs_filter(60, 15, 'auto', evidence_threshold=t, sampler='exact')
        shares = []
        for z in (1.1, 0.9, 1.0, 1.2, 0.95, 1.05):
            f.predict(); f.update(np.array([z]))
            assert f.n_clusters == 2
            shares.append((f.sigmas[:, 0] > 0).mean())
        return np.array(shares)
    assert np.all(positive_share(1e6) == 0.5)
    assert np.any(positive_share(0.0) != 0.5)
    with pytest.raises(ValueError, match="evidence_threshold"):
        abs_filter(20, 0, 'auto', evidence_threshold=float('nan'))


def test_clusters_option_is_validated():
    with pytest.raises(ValueError, match="clusters must be"):
        abs_filter(20, 0, 3)
    with pytest.raises(ValueError, match="isotropic"):
        abs_filter(20, 0, 2, kernel='isotropic')
    # 'auto' (the default) splits only the covariance kernel.
    f = abs_filter(40, 0, 'auto', kernel='isotropic')
    f.update(np.array([1.0]))
    assert f.n_clusters == 1
    with pytest.raises(ValueError, match="evidence_threshold"):
        ClusteredKDE(np.zeros((4, 1)) + np.arange(4)[:, None], np.arange(4.0)[:, None], 0.5,
                     np.r_[0, 0, 1, 1], evidence_threshold=-1.0)


# -- gaussian_pvalue: the one-mode normality test of kernel='auto' ---------------

def test_gaussian_pvalue_holds_its_level_on_gaussian_ensembles():
    # Correlated Gaussian ensembles in 4-D: the Bonferroni test at 0.01
    # rejects at most about 1% of them (binomial sd over 200 draws: 0.7%).
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    p = [gaussian_pvalue(rng.normal(size=(60, 4)) @ A.T + 5.0) for _ in range(200)]
    assert np.mean(np.array(p) <= 0.01) <= 0.03


def test_gaussian_pvalue_rejects_skewed_and_bimodal_ensembles():
    rng = np.random.default_rng(1)
    skewed = np.c_[rng.normal(size=60), rng.lognormal(size=60), rng.normal(size=60)]
    assert gaussian_pvalue(skewed) < 1e-4
    # Two overlapping modes (2 sd apart: too close for split_ensemble).
    Z, _ = two_blobs(rng, 100, 100, d=2, gap=2.0)
    Z[:, 0] = np.sign(Z[:, 0] - Z[:, 0].mean()) * np.abs(Z[:, 0]) ** 0.5   # flatten the centre
    assert gaussian_pvalue(Z) < 1e-3


@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(1e-3, 1e3), shift=st.floats(-1e3, 1e3))
def test_gaussian_pvalue_is_invariant_to_coordinate_scale_and_shift(seed, scale, shift):
    rng = np.random.default_rng(seed)
    Z = np.c_[rng.normal(size=40), rng.gamma(2.0, size=40)]
    W = Z * np.array([scale, 1.0 / scale]) + shift
    assert gaussian_pvalue(W) == pytest.approx(gaussian_pvalue(Z), rel=1e-6, abs=1e-12)


def test_gaussian_pvalue_linear_measurement_and_small_ensembles():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(80, 2))
    # (x, H x) is rank-deficient: the redundant axis is dropped, not tested as noise.
    assert gaussian_pvalue(X) > 0.01 and gaussian_pvalue(np.c_[X, 2 * X[:, :1] - X[:, 1:]]) > 0.01
    assert gaussian_pvalue(rng.lognormal(size=(19, 2))) == 1.0   # too few rows
    assert bonferroni_normaltest(np.empty((50, 0))) == 1.0
    assert bonferroni_normaltest(np.ones((50, 2))) == 1.0          # constant columns
    with pytest.raises(ValueError, match="ensemble"):
        gaussian_pvalue(np.array([[1.0, np.nan], [0.0, 1.0]]))


# -- the screen of the default's mode test ----------------------------------

from hypothesis.extra.numpy import arrays  # noqa: E402

from filterpy_diffusion.clustering import axis_separations  # noqa: E402


def brute_axis_separation(x, n_min):
    """The 1-D 2-means cut by trying every threshold of the sorted column."""
    x = np.sort(x)
    N = len(x)
    best, sep = -1.0, 0.0
    for n in range(n_min, N - n_min + 1):
        a, b = x[:n], x[n:]
        between = n * (N - n) / N * (b.mean() - a.mean()) ** 2
        if between > best:
            within = ((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
            total = ((x - x.mean()) ** 2).sum()
            sd = np.sqrt(within / (N - 2)) if within > 1e-9 * total else 0.0
            gap = abs(b.mean() - a.mean())
            best, sep = between, (gap / sd if sd > 0 else (np.inf if gap > 0 else 0.0))
    return sep


@given(arrays(float, st.tuples(st.integers(6, 40), st.integers(1, 3)),
              elements=st.floats(-100, 100, allow_nan=False, width=32)),
       st.integers(1, 3))
def test_axis_separations_is_the_best_two_means_cut_of_each_column(R, n_min):
    got = axis_separations(R, n_min)
    for j in range(R.shape[1]):
        want = brute_axis_separation(R[:, j], n_min)
        assert got[j] == pytest.approx(want, rel=1e-6, abs=1e-6)


def test_axis_separations_of_gaussian_halves_and_of_a_gap():
    rng = np.random.default_rng(0)
    # one Gaussian: the median cut, 2 sqrt(2/pi) / sqrt(1 - 2/pi) = 2.66 apart
    half = 2 * np.sqrt(2 / np.pi) / np.sqrt(1 - 2 / np.pi)
    assert axis_separations(rng.normal(size=(20000, 1)), 5)[0] == pytest.approx(half, rel=0.02)
    x = np.r_[rng.normal(size=5000), rng.normal(size=5000) + 8.0][:, None]
    assert axis_separations(x, 5)[0] == pytest.approx(8.0, rel=0.03)


@pytest.mark.parametrize("seed", range(5))
def test_screen_keeps_every_split_of_well_separated_modes(seed):
    # Mode spread small along the gap and large across it (the |x| case):
    # the principal axes miss the gap, the kurtosis directions do not.
    rng = np.random.default_rng(seed)
    N = 200
    x = np.r_[rng.normal(1, 0.05, N // 2), rng.normal(-1, 0.05, N // 2)]
    Z = np.c_[x, rng.normal(size=N) * 3, rng.normal(size=N)]
    full = split_ensemble(Z, 'auto')
    assert full.max() == 1
    assert same_partition(split_ensemble(Z, 'auto', screen=3.0), full)


def test_screen_skips_the_search_on_gaussian_ensembles():
    rng = np.random.default_rng(1)
    calls = 0
    for _ in range(20):
        Z = rng.normal(size=(400, 4))
        lab = split_ensemble(Z, 'auto', screen=3.0)
        assert lab.max() == 0
        # a screen no cut can pass is the same decision, without the search
        assert np.array_equal(lab, split_ensemble(Z, 'auto', screen=np.inf))
        calls += 1
    assert calls == 20


@given(arrays(float, st.tuples(st.integers(6, 14), st.integers(15, 40)),
              elements=st.integers(-1000, 1000).map(lambda i: i / 100.0)))
def test_frames_of_wide_rows_match_an_svd(Z):
    # (Entries on a grid of 0.01: spreads near 1e-200 square to zero in any
    # Gram matrix, where only an SVD of the rows would still see them.)
    # More columns than rows (a 1000-variable joint ensemble): the frame
    # comes from the N x N Gram matrix. Its reduced rows must be the
    # principal coordinates of the standardised rows, up to the axes'
    # signs and order within a repeated singular value: the same Gram
    # matrix R R^T as the SVD's U_k S_k, so every criterion in the frame
    # (BIC, separation, the screen's whitened directions) is unchanged.
    from filterpy_diffusion.clustering import _frames, _standardised
    U = _standardised(Z)
    _, R = _frames(Z)[::2]
    s = np.linalg.svd(U, compute_uv=False)
    k = int(np.sum(s > 1e-6 * max(s[0], np.finfo(float).tiny)))
    assert R.shape == (len(Z), k)
    scale = max(s[0] ** 2, 1.0)
    np.testing.assert_allclose(R @ R.T, U @ U.T, atol=1e-8 * scale)
    np.testing.assert_allclose(np.sort(np.linalg.svd(R, compute_uv=False))[::-1], s[:k],
                               rtol=1e-7, atol=1e-9 * max(s[0], 1.0))

"""CovarianceKDE: covariance-shaped kernel with Liu-West shrinkage."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from filterpy_diffusion.bandwidth import effective_sample_size, select_by_ess
from filterpy_diffusion.diffusion import sample
from filterpy_diffusion.kde import CovarianceKDE


def gaussian_joint(rng, N, d, m, R_scale=0.5):
    A = rng.normal(size=(d, d)) / np.sqrt(d)
    Pxx = A @ A.T + 0.5 * np.eye(d)
    H = rng.normal(size=(m, d))
    R = R_scale * np.eye(m)
    X = rng.multivariate_normal(np.zeros(d), Pxx, size=N)
    HX = X @ H.T
    Y = HX + rng.multivariate_normal(np.zeros(m), R, size=N)
    return X, Y, HX, H, Pxx, R


@pytest.mark.parametrize("h", [0.1, 0.3, 0.6, 0.9])
def test_shrunk_kde_conditional_moments_equal_kalman_update(h):
    # For a Gaussian joint ensemble the shrunk KDE is N(mu, C) in the large-N
    # limit, so its conditional is the Kalman update for every h.
    rng = np.random.default_rng(1)
    N, d, m = 40_000, 3, 2
    X, Y, HX, H, Pxx, R = gaussian_joint(rng, N, d, m)
    z = np.array([0.7, -0.4])
    kde = CovarianceKDE(X, Y, h, R=R, predictions=HX)
    mix = kde.conditional(z)
    S = H @ Pxx @ H.T + R
    K = Pxx @ H.T @ np.linalg.inv(S)
    mean_ref, cov_ref = K @ z, Pxx - K @ S @ K.T
    # Weighted sample moments: Monte-Carlo error set by the ESS of the weights.
    ess = 1 / np.sum(mix.weights ** 2)
    sd = np.sqrt(np.diag(cov_ref))
    assert np.all(np.abs(mix.mean() - mean_ref) < 5 * sd / np.sqrt(ess) + 0.01 * sd)
    np.testing.assert_allclose(mix.cov(), cov_ref, atol=(5 / np.sqrt(ess) + 0.02) * sd.max() ** 2)


def test_without_shrinkage_the_kde_is_inflated_by_one_plus_h2():
    rng = np.random.default_rng(2)
    X, Y, HX, H, Pxx, R = gaussian_joint(rng, 20_000, 2, 1)
    h = 0.7
    shrunk = CovarianceKDE(X, Y, h, R=R, predictions=HX)
    plain = CovarianceKDE(X, Y, h, R=R, predictions=HX, shrink=False)
    # The KDE's x-covariance is that of its centres plus the kernel's.
    cxx = np.cov(X, rowvar=False)
    for kde, factor in [(shrunk, 1.0), (plain, 1 + h * h)]:
        centres = kde.mean_x + kde.a * (X - kde.mean_x)
        total = np.cov(centres, rowvar=False) + h * h * kde.Cxx
        np.testing.assert_allclose(total, factor * cxx, rtol=1e-10)


@given(seed=st.integers(0, 2**32 - 1), N=st.integers(2, 40), d=st.integers(1, 6),
       m=st.integers(1, 4), h=st.floats(0.05, 0.95), sigma=st.sampled_from([0.0, 0.1, 1.0]))
def test_score_is_gradient_of_log_prob(seed, N, d, m, h, sigma):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, d))
    HX = np.tanh(X[:, :1]) + rng.normal(size=(N, m)) * 0.3
    R = np.eye(m) * 0.2
    Y = HX + rng.normal(size=(N, m)) * np.sqrt(0.2)
    kde = CovarianceKDE(X, Y, h, R=R, predictions=HX)
    z = rng.normal(size=m)
    x = X[rng.integers(N)] + rng.normal(size=d) * 0.3
    g = kde.score(x, z, sigma)
    lam_min = kde.conditional(z).var.min() + sigma ** 2
    step = 1e-5 * np.sqrt(lam_min)
    E = np.eye(d) * step
    lp = kde.log_prob(np.vstack([x + E, x - E]), z, sigma)
    fd = (lp[:d] - lp[d:]) / (2 * step)
    assert np.all(np.isfinite(g))
    scale = np.abs(g).max() + 1.0 / np.sqrt(lam_min)
    np.testing.assert_allclose(g, fd, atol=1e-4 * scale + 1e-6 * np.abs(lp).max() / step)


@given(seed=st.integers(0, 2**32 - 1), N=st.integers(2, 50), m=st.integers(1, 5),
       h=st.floats(0.01, 0.99))
def test_weights_are_a_probability_vector(seed, N, m, h):
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(N, 2)), rng.normal(size=(N, m)) * 3
    w = CovarianceKDE(X, Y, h).weights(rng.normal(size=m) * 10)
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-12 and np.all(np.isfinite(w))


def test_known_R_makes_Cyy_invertible_with_fewer_members_than_measurements():
    rng = np.random.default_rng(3)
    N, d, m = 5, 10, 20
    X = rng.normal(size=(N, d))
    HX = np.hstack([X, X])
    R = np.eye(m)
    Y = HX + rng.normal(size=(N, m))
    kde = CovarianceKDE(X, Y, 0.5, R=R, predictions=HX)
    assert kde.ridge == 0.0 and np.all(np.linalg.eigvalsh(kde.Cyy) >= 1 - 1e-12)
    kde_sim = CovarianceKDE(X, Y, 0.5)   # no R: ridge regularisation, recorded
    assert kde_sim.ridge > 0
    w = kde.weights(np.zeros(m))
    assert np.all(np.isfinite(w))


def test_h_to_one_gives_enkf_analysis():
    rng = np.random.default_rng(4)
    X, Y, HX, H, Pxx, R = gaussian_joint(rng, 60, 3, 2)
    kde = CovarianceKDE(X, Y, 1 - 1e-8, R=R, predictions=HX)   # a = 1.4e-4
    z = np.array([0.3, 0.1])
    w = kde.weights(z)
    np.testing.assert_allclose(w, 1 / 60, rtol=1e-2)
    mean = X.mean(0) + kde.K @ (z - Y.mean(0))
    np.testing.assert_allclose(kde.centres(z), np.tile(mean, (60, 1)), atol=1e-2)


@pytest.mark.parametrize("N, d", [(200, 3), (12, 20)])
def test_whitened_ode_sampling_matches_exact(N, d):
    # The ODE runs in the kernel's whitened coordinates (dropping the null
    # space of S when N <= d); mapped back it must match exact sampling.
    rng = np.random.default_rng(5)
    X = rng.normal(size=(N, d)) * np.linspace(0.5, 2.0, d)
    HX = np.abs(X[:, :2]) + X[:, :2]
    R = np.eye(2) * 0.3
    Y = HX + rng.normal(size=(N, 2)) * np.sqrt(0.3)
    kde = CovarianceKDE(X, Y, 0.4, R=R, predictions=HX)
    z = Y[0]
    mix, origin, T = kde.whitened(z)
    X_ode = origin + sample(mix, 20_000, 6, 'ode', 48) @ T.T
    X_exact = kde.conditional(z).sample(20_000, 7)
    full = kde.conditional(z)
    sd = np.sqrt(np.diag(full.cov()))
    assert np.all(np.abs(X_ode.mean(0) - full.mean()) < 5 * sd / np.sqrt(20_000) + 1e-9)
    assert np.all(np.abs(X_exact.mean(0) - full.mean()) < 5 * sd / np.sqrt(20_000) + 1e-9)
    np.testing.assert_allclose(np.cov(X_ode, rowvar=False), full.cov(), atol=0.05 * sd.max() ** 2)


def test_select_by_ess_finds_smallest_bandwidth_reaching_target():
    rng = np.random.default_rng(8)
    y = rng.normal(size=(100, 1))

    def lw(h):
        return -0.5 * ((y[:, 0] - 0.3) / h) ** 2
    h = select_by_ess(lw, 50.0, 1e-3, 10.0)
    assert effective_sample_size(lw(h)) >= 50.0
    assert effective_sample_size(lw(h * 0.99)) < 50.0
    assert select_by_ess(lw, 1.0, 1e-3, 10.0) == 1e-3      # already enough at lo
    assert select_by_ess(lw, 101.0, 1e-3, 10.0) == 10.0    # unreachable: hi


def test_bad_h_and_shapes():
    X, Y = np.zeros((5, 2)) + np.arange(5)[:, None], np.arange(5.0)[:, None]
    for h in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match=r"h \(covariance-kernel bandwidth factor\)"):
            CovarianceKDE(X, Y, h)
    with pytest.raises(ValueError, match="same number of rows"):
        CovarianceKDE(X, Y[:4], 0.5)
    with pytest.raises(ValueError, match="at least 2"):
        CovarianceKDE(X[:1], Y[:1], 0.5)


def test_cyy_rounding_regression_huge_predictions():
    # Regression (l63-cubic, N = 100, seed 104, cycle 64; the ensemble saved
    # at the failure): a scattered ensemble (|x| ~ 1e50) made cov(x**3/100)
    # ~ 1e300 with eigenvalues -4e280 from rounding, so cov + R failed its
    # Cholesky. The filter has lost track there, but the KDE must stay well
    # defined (and the run be scored as lost) rather than raise.
    import pathlib
    d = np.load(pathlib.Path(__file__).parent / "data" / "cyy_rounding_l63_cubic.npz")
    kde = CovarianceKDE(d["X"], d["Y"], 0.5, R=d["R"], predictions=d["HX"])
    assert kde.ridge > 0
    assert np.all(np.isfinite(np.linalg.cholesky(kde.Cyy)))
    w = kde.weights(d["Y"][0])
    assert np.all(np.isfinite(w)) and abs(w.sum() - 1) < 1e-12

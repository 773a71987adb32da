"""Tests of the shared EnsembleFilter machinery (filterpy_diffusion.ensemble).

The base is exercised through two concrete filters: a perturbed-observation
EnKF written here (a minimal use of the ``_analysis`` hook) and the
ParticleFilter. Expected values come from numpy/scipy/filterpy references
computed in the test, never from this package's output.
"""
import copy
import functools
import pickle

import numpy as np
import pytest
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import EnsembleKalmanFilter, KalmanFilter

from filterpy_diffusion import DiffusionKDEFilter
from filterpy_diffusion.ensemble import EnsembleFilter, ensemble_moments
from filterpy_diffusion.particle import DEFAULT_REG, DEFAULT_RESAMPLE_THRESHOLD, ParticleFilter


# Module-level models so filters pickle. Written with `...` indexing so the
# same function serves one member (2,) and the whole ensemble (N, 2), with
# elementwise arithmetic (bit-identical either way).
def fx_cv(x, dt):
    return np.stack([x[..., 0] + dt * x[..., 1], x[..., 1]], axis=-1)


def hx_pos(x):
    return x[..., :1]


def fx_identity(x, dt):
    return x


def fx_inf_if_far(x, dt):
    # Diverges (inf) for a member whose position is beyond 50.
    return np.where(x[0] > 50, np.inf, x)


def hx_nan_if_far(x):
    return np.array([np.nan if x[0] > 50 else x[0]])


def hx_wrong_size(x):
    return x            # (2,) although dim_z == 1


def fx_edits_input(x, dt):
    x += 1.0            # a careless model that mutates its argument
    return x


class PerturbedObsEnKF(EnsembleFilter):
    """The smallest useful analysis: stochastic EnKF with K = Cxy Cyy^-1."""

    def _analysis(self, z, R):
        y = self._simulate_measurements(self.sigmas, R)
        X = self.sigmas - self.sigmas.mean(axis=0)
        Y = y - y.mean(axis=0)
        K = np.linalg.solve(Y.T @ Y, Y.T @ X).T
        return {"sigmas": self.sigmas + (z - y) @ K.T, "K": K}


X0 = np.array([0.0, 1.0])
P0 = np.diag([4.0, 1.0])
FILTERS = [PerturbedObsEnKF, ParticleFilter]


def make(cls=PerturbedObsEnKF, N=50, seed=0, **kw):
    kw.setdefault("hx", hx_pos)
    kw.setdefault("fx", fx_cv)
    f = cls(X0, P0, 1, 1.0, N, rng=np.random.default_rng(seed), **kw)
    f.Q = Q_discrete_white_noise(2, 1.0, 0.1)
    f.R = np.array([[0.5]])
    return f


def snapshot(f):
    return {"x": f.x.copy(), "P": f.P.copy(), "sigmas": np.array(f.sigmas, copy=True),
            "weights": f.weights.copy(), "x_prior": f.x_prior.copy(), "x_post": f.x_post.copy(),
            "rng": copy.deepcopy(f.rng.bit_generator.state), "ess": f.ess}


def assert_unchanged(f, snap):
    assert np.array_equal(f.x, snap["x"])
    assert np.array_equal(f.P, snap["P"])
    assert np.array_equal(f.sigmas, snap["sigmas"])
    assert np.array_equal(f.weights, snap["weights"])
    assert np.array_equal(f.x_prior, snap["x_prior"])
    assert np.array_equal(f.x_post, snap["x_post"])
    assert f.rng.bit_generator.state == snap["rng"]
    assert f.ess == snap["ess"]


def run(f, zs):
    out = []
    for z in zs:
        f.predict()
        f.update(z)
        out.append((f.x.copy(), f.P.copy(), f.sigmas.copy()))
    return out


def assert_same_runs(a, b):
    for (xa, Pa, sa), (xb, Pb, sb) in zip(a, b):
        assert np.array_equal(xa, xb) and np.array_equal(Pa, Pb) and np.array_equal(sa, sb)


ZS = [1.2, 1.9, 3.4, 3.8, 5.1, 6.3, 6.8, 8.2, 9.1, 9.7]


# ---------------------------------------------------------------- construction
def test_attributes_match_filterpy_enkf():
    np.random.seed(1)   # filterpy's EnKF draws from the global RNG (test only)
    ref = EnsembleKalmanFilter(X0, P0, 1, 0.5, 30, hx_pos, fx_cv)
    f = PerturbedObsEnKF(X0, P0, 1, 0.5, 30, hx_pos, fx_cv, rng=1)
    for name in ["dim_x", "dim_z", "dt", "N"]:
        assert getattr(f, name) == getattr(ref, name)
    for name in ["x", "P", "x_prior", "P_prior", "x_post", "P_post", "Q", "R"]:
        assert np.array_equal(getattr(f, name), getattr(ref, name)), name
    assert f.z.shape == ref.z.shape and all(v is None for v in f.z.ravel())
    assert f.sigmas.shape == ref.sigmas.shape == (30, 2)
    assert f.hx is hx_pos and f.fx is fx_cv
    assert np.array_equal(f.weights, np.full(30, 1 / 30))
    assert f.log_likelihood is None and f.ess is None
    assert isinstance(f.rng, np.random.Generator)


def test_base_class_has_no_analysis():
    f = EnsembleFilter(X0, P0, 1, 1.0, 10, hx_pos, fx_cv, rng=0)
    f.predict()
    with pytest.raises(NotImplementedError, match="_analysis"):
        f.update(1.0)


@pytest.mark.parametrize("N", [1, 0, -3, 2.5, True])
def test_N_below_two_rejected(N):
    with pytest.raises(ValueError, match="N must be at least 2 ensemble members, got"):
        PerturbedObsEnKF(X0, P0, 1, 1.0, N, hx_pos, fx_cv, rng=0)


@pytest.mark.parametrize("dim_z", [0, -1, 1.5])
def test_dim_z_rejected(dim_z):
    with pytest.raises(ValueError, match="dim_z must be an integer >= 1"):
        PerturbedObsEnKF(X0, P0, dim_z, 1.0, 10, hx_pos, fx_cv, rng=0)


def test_x_must_be_1d_and_finite():
    with pytest.raises(ValueError, match=r"x must be a 1-D array .* got shape \(2, 1\); pass x.ravel"):
        PerturbedObsEnKF(X0[:, None], P0, 1, 1.0, 10, hx_pos, fx_cv, rng=0)
    with pytest.raises(ValueError, match="x must be finite"):
        PerturbedObsEnKF(np.array([0.0, np.nan]), P0, 1, 1.0, 10, hx_pos, fx_cv, rng=0)


@pytest.mark.parametrize("cls", FILTERS)
@pytest.mark.parametrize("P, msg", [
    (np.array([[1.0, 0.5], [0.0, 1.0]]), "P must be symmetric"),
    (np.array([[1.0, 2.0], [2.0, 1.0]]), "P must be positive semi-definite; smallest eigenvalue is -1"),
    (np.eye(3), r"P must have shape \(2, 2\)"),
])
def test_bad_P_rejected_by_constructor_and_initialize(cls, P, msg):
    with pytest.raises(ValueError, match=msg):
        cls(X0, P, 1, 1.0, 10, hx_pos, fx_cv, rng=0)
    f = make(cls)
    f.predict()
    f.update(1.0)
    snap = snapshot(f)
    with pytest.raises(ValueError, match=msg):
        f.initialize(X0, P)
    assert_unchanged(f, snap)


def test_scalar_P_means_multiple_of_identity():
    f = PerturbedObsEnKF(X0, 3.0, 1, 1.0, 10, hx_pos, fx_cv, rng=0)
    assert np.array_equal(f.P, 3.0 * np.eye(2))


# ---------------------------------------------------------------- initialize
def test_initialize_samples_N_x_P():
    N = 20000
    f = PerturbedObsEnKF(X0, P0, 1, 1.0, N, hx_pos, fx_cv, rng=np.random.default_rng(3))
    assert np.array_equal(f.x, X0) and np.array_equal(f.P, P0)   # the given moments, as filterpy
    m, C = f.sigmas.mean(axis=0), np.cov(f.sigmas.T)
    # Monte-Carlo standard errors: sqrt(P_ii / N) for the mean, P_ii sqrt(2 / N) for variances.
    assert np.all(np.abs(m - X0) < 5 * np.sqrt(np.diag(P0) / N))
    assert np.all(np.abs(np.diag(C) - np.diag(P0)) < 5 * np.diag(P0) * np.sqrt(2 / N))
    assert abs(C[0, 1]) < 5 * np.sqrt(P0[0, 0] * P0[1, 1] / N)


def test_initialize_with_singular_P_stays_on_its_range():
    v = np.array([1.0, 2.0])
    P = np.outer(v, v)          # rank 1: all mass on the line x0 + t v
    f = PerturbedObsEnKF(X0, P, 1, 1.0, 500, hx_pos, fx_cv, rng=4)
    perp = np.array([2.0, -1.0])
    assert np.max(np.abs((f.sigmas - X0) @ perp)) < 1e-12
    assert np.std((f.sigmas - X0) @ v) > 1.0


def test_initialize_resets_weights_and_diagnostics():
    f = make(ParticleFilter, resample_threshold=0.0)
    f.predict()
    f.update(1.0)
    assert f.ess < f.N and f.log_likelihood is not None
    f.initialize(np.array([5.0, 0.0]), np.eye(2))
    assert np.array_equal(f.weights, np.full(f.N, 1 / f.N))
    assert f.ess is None and f.log_likelihood is None
    assert np.array_equal(f.x_prior, [5.0, 0.0]) and np.array_equal(f.P_post, np.eye(2))


# ---------------------------------------------------------------- predict
def test_predict_moments_are_the_unbiased_ensemble_moments():
    f = make(N=40)
    f.predict()
    assert np.allclose(f.x, f.sigmas.mean(axis=0), rtol=0, atol=1e-14)
    assert np.allclose(f.P, np.cov(f.sigmas.T, ddof=1), rtol=1e-12, atol=1e-14)
    assert np.array_equal(f.x_prior, f.x) and np.array_equal(f.P_prior, f.P)
    assert f.x_prior is not f.x


def test_predict_keeps_weights_and_uses_weighted_moments():
    f = make(N=40)
    w = np.random.default_rng(5).random(40)
    f.weights = w
    f.predict()
    wn = w / w.sum()
    assert np.allclose(f.weights, wn, rtol=1e-14)
    assert np.allclose(f.x, np.average(f.sigmas, axis=0, weights=wn), rtol=1e-12)
    # numpy's aweights with ddof=1 use 1 / (1 - sum w^2) for normalised w.
    assert np.allclose(f.P, np.cov(f.sigmas.T, aweights=wn, ddof=1), rtol=1e-12)


def test_ensemble_moments_degenerate_weights_give_zero_covariance():
    s = np.random.default_rng(6).normal(size=(5, 2))
    x, P = ensemble_moments(s, np.array([0.0, 1.0, 0.0, 0.0, 0.0]))
    assert np.array_equal(x, s[1]) and np.array_equal(P, np.zeros((2, 2)))


@pytest.mark.parametrize("Q", [np.array([[0.5, 0.2], [0.2, 0.3]]),
                               np.array([[1.0, 1.0], [1.0, 1.0]])])   # singular
def test_predict_adds_process_noise_with_covariance_Q(Q):
    N = 20000
    f = PerturbedObsEnKF(X0, P0, 1, 1.0, N, hx_pos, fx_identity, rng=np.random.default_rng(7))
    f.Q = Q
    before = f.sigmas.copy()
    f.predict()
    d = f.sigmas - before
    C = np.cov(d.T)
    se = np.sqrt((np.outer(np.diag(Q), np.diag(Q)) + Q ** 2) / N)
    assert np.all(np.abs(d.mean(axis=0)) < 5 * np.sqrt(np.diag(Q) / N))
    assert np.all(np.abs(C - Q) < 5 * se)
    if np.linalg.matrix_rank(Q) == 1:
        assert np.max(np.abs(d @ np.array([1.0, -1.0]))) < 1e-12


def test_predict_with_zero_Q_is_the_model_only():
    f = make()
    f.Q = np.zeros((2, 2))
    expected = np.array([fx_cv(s, 1.0) for s in f.sigmas])
    f.predict()
    assert np.array_equal(f.sigmas, expected)


@pytest.mark.parametrize("cls", FILTERS)
def test_Q_of_wrong_shape_rejected_and_state_unchanged(cls):
    f = make(cls)
    f.predict()
    f.update(1.0)
    f.Q = np.eye(3)
    snap = snapshot(f)
    with pytest.raises(ValueError, match=r"Q must have shape \(2, 2\) or be a scalar, got \(3, 3\)"):
        f.predict()
    assert_unchanged(f, snap)
    f.Q = np.array([[1.0, 0.3], [0.0, 1.0]])
    with pytest.raises(ValueError, match="Q must be symmetric"):
        f.predict()
    assert_unchanged(f, snap)


@pytest.mark.parametrize("cls", FILTERS)
@pytest.mark.parametrize("vectorized", [False, True])
def test_fx_non_finite_member_rejected_and_state_unchanged(cls, vectorized):
    f = make(cls, fx=fx_inf_if_far if not vectorized else
             (lambda s, dt: np.where(s[:, :1] > 50, np.inf, s)), vectorized=vectorized)
    s = f.sigmas.copy()
    s[3, 0] = 100.0
    f.sigmas = s
    snap = snapshot(f)
    with pytest.raises(ValueError, match=r"fx returned NaN or inf for member 3 .*\(N, dim_x\) = \(50, 2\)"):
        f.predict()
    assert_unchanged(f, snap)


def test_fx_wrong_shape_rejected():
    f = make(fx=lambda x, dt: np.append(x, 0.0))
    snap = snapshot(f)
    with pytest.raises(ValueError, match=r"fx returned shape \(3,\) for member 0; expected \(dim_x,\) = \(2,\)"):
        f.predict()
    assert_unchanged(f, snap)
    g = make(fx=lambda s, dt: s.T, vectorized=True)
    with pytest.raises(ValueError, match=r"fx returned shape \(2, 50\) .*expected \(N, dim_x\) = \(50, 2\)"):
        g.predict()


def test_fx_that_mutates_its_input_cannot_touch_the_ensemble():
    f = make(fx=fx_edits_input)
    f.Q = np.zeros((2, 2))
    s = f.sigmas
    kept = s.copy()
    f.predict()
    assert np.array_equal(s, kept)                 # the old array object untouched
    assert np.array_equal(f.sigmas, kept + 1.0)


# ---------------------------------------------------------------- update: bad input
@pytest.mark.parametrize("cls", FILTERS)
@pytest.mark.parametrize("z, msg", [
    (np.array([1.0, 2.0]), r"z must have shape \(dim_z,\) = \(1,\) .*got \(2,\)"),
    (np.array([np.nan]), r"z contains NaN or inf \(component 0: nan\)"),
    (np.array([np.inf]), r"z contains NaN or inf \(component 0: inf\)"),
    (-np.inf, r"z contains NaN or inf"),
])
def test_bad_z_rejected_and_state_unchanged(cls, z, msg):
    f = make(cls)
    f.predict()
    snap = snapshot(f)
    with pytest.raises(ValueError, match=msg):
        f.update(z)
    assert_unchanged(f, snap)


@pytest.mark.parametrize("cls", FILTERS)
def test_hx_wrong_size_rejected_and_state_unchanged(cls):
    f = make(cls, hx=hx_wrong_size)
    f.predict()
    snap = snapshot(f)
    with pytest.raises(ValueError, match=r"hx returned shape \(2,\) for member 0; expected \(dim_z,\) = \(1,\)"):
        f.update(1.0)
    assert_unchanged(f, snap)


@pytest.mark.parametrize("cls", FILTERS)
def test_hx_nan_rejected_and_state_unchanged(cls):
    f = make(cls, hx=hx_nan_if_far)
    f.predict()
    s = f.sigmas.copy()
    s[7, 0] = 60.0
    f.sigmas = s
    snap = snapshot(f)
    with pytest.raises(ValueError, match=r"hx returned NaN or inf for member 7"):
        f.update(1.0)
    assert_unchanged(f, snap)


@pytest.mark.parametrize("cls", FILTERS)
def test_bad_R_rejected_and_state_unchanged(cls):
    f = make(cls)
    f.predict()
    snap = snapshot(f)
    with pytest.raises(ValueError, match="R must be positive semi-definite"):
        f.update(1.0, R=np.array([[-1.0]]))
    with pytest.raises(ValueError, match=r"R must have shape \(1, 1\)"):
        f.update(1.0, R=np.eye(2))
    assert_unchanged(f, snap)


def test_sigmas_set_with_wrong_shape_is_diagnosed():
    f = make()
    f.sigmas = f.sigmas.T
    with pytest.raises(ValueError, match=r"sigmas must have shape \(N, dim_x\) = \(50, 2\), got \(2, 50\) \(is it transposed\?\)"):
        f.predict()


# ---------------------------------------------------------------- update: semantics
@pytest.mark.parametrize("cls", FILTERS)
def test_update_none_copies_moments_and_keeps_ensemble(cls):
    f = make(cls)
    f.predict()
    s, w = f.sigmas.copy(), f.weights.copy()
    f.update(None)
    assert f.z.shape == (1, 1) and f.z[0, 0] is None
    assert np.array_equal(f.x_post, f.x) and f.x_post is not f.x
    assert np.array_equal(f.P_post, f.P) and f.P_post is not f.P
    assert np.array_equal(f.sigmas, s) and np.array_equal(f.weights, w)


@pytest.mark.parametrize("cls", FILTERS)
def test_z_shapes_accepted_alike(cls):
    results = []
    for z in [2.0, np.array([2.0]), np.array([[2.0]]), [2.0]]:
        f = make(cls, seed=11)
        f.predict()
        f.update(z)
        results.append((f.x, f.P, f.sigmas))
        assert np.array_equal(f.z, [2.0])
    for r in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(r, results[0]))


def test_update_sets_posterior_from_the_ensemble_and_extra_attributes():
    f = make()
    f.predict()
    f.update(1.5, R=0.25)
    assert np.allclose(f.x, f.sigmas.mean(axis=0), rtol=0, atol=1e-14)
    assert np.allclose(f.P, np.cov(f.sigmas.T), rtol=1e-12)
    assert np.array_equal(f.x_post, f.x) and np.array_equal(f.P_post, f.P)
    assert f.K.shape == (2, 1)                   # extra key returned by the hook
    assert f.ess == pytest.approx(f.N)          # uniform analysis weights
    assert f.log_likelihood is None


class _Weighted(EnsembleFilter):
    # Returns the ensemble unchanged with unnormalised weights.
    def _analysis(self, z, R):
        return {"sigmas": self.sigmas, "weights": np.arange(1.0, self.N + 1)}


class _Reserved(EnsembleFilter):
    def _analysis(self, z, R):
        return {"sigmas": self.sigmas, "x": np.zeros(self.dim_x)}


class _BadShape(EnsembleFilter):
    def _analysis(self, z, R):
        return {"sigmas": self.sigmas[:-1]}


def test_hook_weights_are_normalised_and_give_ess():
    f = _Weighted(X0, P0, 1, 1.0, 4, hx_pos, fx_cv, rng=0)
    f.update(0.0)
    w = np.arange(1.0, 5.0) / 10.0
    assert np.allclose(f.weights, w, rtol=1e-15)
    assert np.allclose(f.log_weights, np.log(w), rtol=1e-14)
    assert f.ess == pytest.approx(1.0 / np.sum(w ** 2), rel=1e-14)
    assert np.allclose(f.x, w @ f.sigmas, rtol=1e-14)


@pytest.mark.parametrize("cls, msg", [(_Reserved, r"may not return \['x'\]"),
                                      (_BadShape, r"sigmas of shape \(3, 2\)")])
def test_hook_contract_violations_leave_state_unchanged(cls, msg):
    f = cls(X0, P0, 1, 1.0, 4, hx_pos, fx_cv, rng=0)
    snap = snapshot(f)
    with pytest.raises(ValueError, match=msg):
        f.update(0.0)
    assert_unchanged(f, snap)


def test_weights_setter_validates():
    f = make()
    with pytest.raises(ValueError, match=r"weights must have shape \(N,\) = \(50,\)"):
        f.weights = np.ones(3)
    with pytest.raises(ValueError, match="non-negative"):
        f.weights = -np.ones(50)
    f.log_weights = np.zeros(50)
    assert np.allclose(f.weights, 1 / 50)


# ---------------------------------------------------------------- measurement helpers
def test_simulated_measurements_without_simulator_are_hx_plus_N_0_R():
    N = 20000
    f = PerturbedObsEnKF(np.zeros(2), np.zeros((2, 2)), 2, 1.0, N, lambda x: 2 * x, fx_cv, rng=8)
    R = np.array([[1.0, 0.4], [0.4, 0.5]])
    s = np.tile([1.0, -1.0], (N, 1))
    y = f._simulate_measurements(s, R)
    d = y - [2.0, -2.0]
    se = np.sqrt((np.outer(np.diag(R), np.diag(R)) + R ** 2) / N)
    assert np.all(np.abs(np.cov(d.T) - R) < 5 * se)
    assert np.all(np.abs(d.mean(axis=0)) < 5 * np.sqrt(np.diag(R) / N))


class _OffsetSimulator:
    """A 'stochastic' simulator with deterministic noise (+0.5), recording its rng."""

    def __init__(self):
        self.rngs = []

    def __call__(self, x, rng):
        self.rngs.append(rng)
        return hx_pos(x) + 0.5


@pytest.mark.parametrize("vectorized", [False, True])
def test_simulate_replaces_hx_plus_R(vectorized):
    sim = _OffsetSimulator()
    f = make(simulate=sim, vectorized=vectorized)
    f.predict()
    state = copy.deepcopy(f.rng.bit_generator.state)
    y = f._simulate_measurements(f.sigmas, np.array([[100.0]]))
    assert np.array_equal(y, f.sigmas[:, :1] + 0.5)         # R ignored, noise is the simulator's
    assert f.rng.bit_generator.state == state               # no Gaussian draws by the base
    assert len(sim.rngs) == (1 if vectorized else f.N) and all(r is f.rng for r in sim.rngs)

    # The analysis then uses exactly those measurements.
    s = f.sigmas.copy()
    f.update(1.0)
    y = s[:, :1] + 0.5
    X, Y = s - s.mean(axis=0), y - y.mean(axis=0)
    K = (X.T @ Y) @ np.linalg.inv(Y.T @ Y)
    assert np.allclose(f.sigmas, s + (1.0 - y) @ K.T, rtol=1e-10, atol=1e-12)


def test_measure_vectorized_accepts_flat_output_for_dim_z_1():
    f = make(hx=lambda s: s[:, 0], vectorized=True)
    assert np.array_equal(f._measure(f.sigmas), f.sigmas[:, :1])


# ---------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("cls", FILTERS)
def test_same_seed_bit_identical_different_seed_differs(cls):
    a, b, c = (run(make(cls, seed=s), ZS) for s in (21, 21, 22))
    assert_same_runs(a, b)
    assert not np.array_equal(a[-1][0], c[-1][0])


def test_global_numpy_rng_never_touched():
    state = np.random.get_state()
    f = make(ParticleFilter, resample_threshold=1.0, jitter=0.1)
    run(f, ZS[:3])
    g = make()
    run(g, ZS[:3])
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


def test_int_seed_and_generator_agree():
    a = PerturbedObsEnKF(X0, P0, 1, 1.0, 20, hx_pos, fx_cv, rng=5)
    b = PerturbedObsEnKF(X0, P0, 1, 1.0, 20, hx_pos, fx_cv, rng=np.random.default_rng(5))
    assert np.array_equal(a.sigmas, b.sigmas)


@pytest.mark.parametrize("cls", FILTERS)
@pytest.mark.parametrize("clone", [copy.deepcopy, lambda f: pickle.loads(pickle.dumps(f))],
                         ids=["deepcopy", "pickle"])
def test_copies_continue_bit_identically(cls, clone):
    f = make(cls, seed=31)
    run(f, ZS[:4])
    g = clone(f)
    assert g.rng is not f.rng
    assert_same_runs(run(f, ZS[4:]), run(g, ZS[4:]))


class _FailsAfterDrawing(PerturbedObsEnKF):
    # Draws its perturbed observations, then fails while `fail` is set.
    fail = False

    def _analysis(self, z, R):
        out = super()._analysis(z, R)
        if self.fail:
            raise RuntimeError("analysis failed after drawing")
        return out


def test_failed_update_rewinds_rng_and_keeps_state():
    # A retry after a failure must draw the same numbers as a clean run.
    f = _FailsAfterDrawing(X0, P0, 1, 1.0, 30, hx_pos, fx_cv, rng=41)
    g = copy.deepcopy(f)
    f.predict()
    g.predict()
    f.fail = True
    snap = snapshot(f)
    with pytest.raises(RuntimeError, match="after drawing"):
        f.update(1.0)
    assert_unchanged(f, snap)
    f.fail = False
    f.update(1.0)
    g.update(1.0)
    assert np.array_equal(f.sigmas, g.sigmas)


@pytest.mark.parametrize("cls", FILTERS)
def test_vectorized_matches_per_member(cls):
    a = run(make(cls, seed=51), ZS)
    b = run(make(cls, seed=51, vectorized=True), ZS)
    assert_same_runs(a, b)


# ---------------------------------------------------------------- batch_filter
@pytest.mark.parametrize("cls", FILTERS)
def test_batch_filter_equals_manual_loop(cls):
    zs = [1.0, None, 3.1, np.array([4.2]), None, 5.8]
    Rs = [None, None, 0.3, np.array([[0.2]]), None, 1.0]
    f, g = make(cls, seed=61), make(cls, seed=61)
    means, covs = f.batch_filter(zs, Rs)
    assert means.shape == (6, 2) and covs.shape == (6, 2, 2)
    for k, (z, R) in enumerate(zip(zs, Rs)):
        g.predict()
        if z is None:
            prior = (g.x.copy(), g.P.copy())
        g.update(z, R)
        assert np.array_equal(means[k], g.x) and np.array_equal(covs[k], g.P)
        if z is None:                                # skipped: stores the prediction
            assert np.array_equal(means[k], prior[0]) and np.array_equal(covs[k], prior[1])
    assert np.array_equal(f.sigmas, g.sigmas)


def test_batch_filter_update_first():
    zs = [1.0, 2.0, None, 4.0]
    f, g = make(seed=62), make(seed=62)
    means, covs = f.batch_filter(zs, update_first=True)
    for k, z in enumerate(zs):
        g.update(z)
        assert np.array_equal(means[k], g.x) and np.array_equal(covs[k], g.P)
        g.predict()
    assert np.array_equal(f.sigmas, g.sigmas)


def test_batch_filter_Rs_length_checked():
    with pytest.raises(ValueError, match="Rs must have one entry per measurement"):
        make().batch_filter([1.0, 2.0], Rs=[1.0])


# ---------------------------------------------------------------- repr
def test_repr_in_filterpy_style():
    f = make(ParticleFilter)
    text = repr(f)
    lines = text.splitlines()
    assert lines[0] == "ParticleFilter object"
    for label in ["dim_x = 2", "dim_z = 1", "dt = 1.0", "x = [", "P = [[", "x_prior = ",
                  "P_prior = ", "Q = [[", "R = [[", "sigmas = [[", "hx = <function hx_pos",
                  "fx = <function fx_cv", f"resample_threshold = {DEFAULT_RESAMPLE_THRESHOLD}",
                  f"reg = {DEFAULT_REG}", "jitter = None"]:
        assert any(line.startswith(label) for line in lines), label
    assert repr(make()).startswith("PerturbedObsEnKF object\n")


# ---------------------------------------------------------------- swap-in for filterpy's EnKF
# The lead adds DiffusionKDEFilter here. Each entry is built with filterpy's
# positional signature only; ours get a fixed seed through functools.partial.
SWAP_IN = [
    pytest.param(EnsembleKalmanFilter, id="filterpy-EnKF"),
    pytest.param(functools.partial(ParticleFilter, rng=71), id="ParticleFilter"),
    pytest.param(functools.partial(PerturbedObsEnKF, rng=72), id="PerturbedObsEnKF"),
    pytest.param(functools.partial(DiffusionKDEFilter, rng=73), id="DiffusionKDEFilter"),
    # The published isotropic kernel with Scott bandwidths adds kernel noise
    # every cycle and drifts 0.36 RMS from the Kalman mean here (limit 0.2).
    pytest.param(functools.partial(DiffusionKDEFilter, rng=73, kernel='isotropic',
                                   sigma_x='scott', sigma_y='scott', inflation=None),
                 id="DiffusionKDEFilter-isotropic-scott",
                 marks=pytest.mark.xfail(strict=True, reason="isotropic rule-of-thumb kernel inflates P")),
]


@pytest.mark.parametrize("factory", SWAP_IN)
def test_swap_in_for_filterpy_enkf(factory):
    np.random.seed(70)      # only filterpy's EnKF reads the global RNG
    dt, R, Q = 1.0, 1.0, Q_discrete_white_noise(2, 1.0, 0.01)
    rng = np.random.default_rng(70)
    truth, zs = [], []
    xt = np.array([0.0, 1.0])
    for _ in range(30):
        xt = fx_cv(xt, dt) + rng.multivariate_normal(np.zeros(2), Q)
        truth.append(xt)
        zs.append(np.array([xt[0] + rng.normal(0, np.sqrt(R))]))

    kf = KalmanFilter(dim_x=2, dim_z=1)
    kf.x, kf.P, kf.F, kf.H = X0.copy(), P0.copy(), np.array([[1.0, dt], [0, 1]]), np.array([[1.0, 0]])
    kf.R *= R
    kf.Q = Q

    f = factory(X0.copy(), P0.copy(), 1, dt, 300, hx_pos, fx_cv)
    f.R *= R
    f.Q = Q
    gaps = []
    for z in zs:
        f.predict()
        f.update(z)
        kf.predict()
        kf.update(z)
        assert f.x.shape == (2,) and f.P.shape == (2, 2)
        assert np.all(np.isfinite(f.x)) and np.allclose(f.P, f.P.T)
        assert np.linalg.eigvalsh(f.P).min() > -1e-10
        gaps.append(f.x - kf.x.ravel())
    # Linear-Gaussian problem: every filter should track the exact Kalman
    # mean to well within the posterior spread (position sd ~0.5 here).
    gaps = np.array(gaps)[10:]
    assert np.sqrt(np.mean(gaps[:, 0] ** 2)) < 0.2
    assert np.sqrt(np.mean(gaps[:, 1] ** 2)) < 0.1

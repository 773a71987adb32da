"""The policy object: every threshold of the automatic update, validated and honoured."""
import dataclasses

import numpy as np
import pytest

from filterpy_diffusion import DiffusionKDEFilter, clustering
from filterpy_diffusion.policy import DEFAULT_POLICY, Policy


def abs_filter(N=100, seed=3, **kw):
    """Two separated modes seen through |x|: the mode test splits them."""
    kw.setdefault('gaussian_core', 'etkf')   # the mode test on the forecast itself
    f = DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, N, np.abs, lambda x, dt: x,
                           rng=seed, vectorized=True, **kw)
    f.R, f.Q = np.array([[0.01]]), np.array([[0.01]])
    rng = np.random.default_rng(seed + 1)
    f.sigmas = np.r_[rng.normal(1, 0.1, N // 2), rng.normal(-1, 0.1, N - N // 2)][:, None]
    return f


def test_default_policy_is_the_filters_and_is_frozen():
    f = DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, 10, lambda x: x, lambda x, dt: x)
    assert f.policy == Policy() == DEFAULT_POLICY
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.policy.min_separation = 1.0


@pytest.mark.parametrize("field, bad", [
    ("mode_axes", 0), ("mode_axes", 1.5), ("mode_screen", 0.0), ("min_separation", -1.0),
    ("refine_separation", float('nan')), ("evidence_threshold", -0.1),
    ("members_per_dim", 0.5), ("ess_target", 0.0), ("ess_target", 1.5),
    ("mode_ess_target", -0.2), ("enkpf_ess_target", 2.0), ("normality_alpha", 0.0),
    ("h_range", (0.5, 0.1)), ("h_range", (0.0, 0.5)), ("h_range", 0.3),
    ("inflation_var", 0.0), ("xN", -1.0), ("members_per_dim", True),
    ("kernel_members_per_dim", 0.0), ("kernel_max_h", 1.5), ("move_members", "all"),
    ("mode_evidence", "auto"), ("mode_evidence", None),
    ("move_max_jitter", 0.0), ("move_max_jitter", 1.5), ("decision_threshold", -1.0),
    ("decision_threshold", float('nan')), ("inflation_range", (0.0, 2.0)),
    ("inflation_range", (1.5, 2.0)), ("inflation_range", (0.5, 0.9)),
    ("inflation_range", (0.5, float('inf'))), ("inflation_range", (0.5, float('nan'))),
    ("inflation_range", (0.5,)), ("inflation_range", 2.0), ("inflation_range", (True, 2.0)),
    ("resample_fraction", -0.1), ("resample_fraction", 1.5), ("resample_fraction", float("nan"))])
def test_bad_fields_are_a_value_error_naming_the_field(field, bad):
    with pytest.raises(ValueError, match=f"Policy.{field}"):
        Policy(**{field: bad})


def test_policy_must_be_a_policy():
    with pytest.raises(ValueError, match="policy must be"):
        DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, 10, lambda x: x, lambda x, dt: x,
                           policy={'min_separation': 2.0})


def test_keyword_shorthands_set_the_policy_fields():
    p = Policy(members_per_dim=3.0, xN=2.0, evidence_threshold=5.0)
    f = DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, 10, lambda x: x, lambda x, dt: x,
                           members_per_dim=3.0, xN=2.0, evidence_threshold=5.0)
    assert f.policy == p
    assert (f.members_per_dim, f.xN, f.evidence_threshold) == (3.0, 2.0, 5.0)
    with pytest.raises(ValueError, match="members_per_dim"):
        DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, 10, lambda x: x, lambda x, dt: x,
                           members_per_dim=0.5)


def test_mode_thresholds_are_honoured():
    # The default splits the |x| modes; a separation threshold above their
    # gap, or a screen no direction can pass, keeps them as one mode.
    f = abs_filter()
    f.update(np.array([1.0]))
    assert f.kernel_used == 'covariance' and f.n_clusters == 2
    for p in (Policy(min_separation=1e3, kernel_members_per_dim=np.inf),
              Policy(mode_screen=1e3, kernel_members_per_dim=np.inf)):
        g = abs_filter(policy=p)
        g.update(np.array([1.0]))
        assert g.kernel_used == 'etkf' and g.n_clusters == 1


def test_mode_evidence_reaches_both_uses_of_the_modes_evidence(monkeypatch):
    # The per-mode kernel and the rule that lets z rule a mode out both weigh
    # the modes by Policy.mode_evidence: the members' likelihoods by default,
    # the Gaussian evidence with 'gaussian'.
    # The rule reads the Monte Carlo masses from the member likelihoods
    # (kde.monte_carlo_cluster_log_weights), the Gaussian ones from a
    # ClusteredKDE built for the purpose.
    import filterpy_diffusion.filter as fmod
    seen = []
    real, real_mc = fmod.ClusteredKDE, fmod.monte_carlo_cluster_log_weights

    def recording(*a, **k):
        kde = real(*a, **k)
        seen.append((k.get('shrink_evidence', True), kde.evidence))
        return kde

    def recording_mc(*a, **k):
        seen.append((False, 'monte-carlo'))
        return real_mc(*a, **k)
    monkeypatch.setattr(fmod, "ClusteredKDE", recording)
    monkeypatch.setattr(fmod, "monte_carlo_cluster_log_weights", recording_mc)
    # Mirror-image modes, which Policy.mode_difference_alpha holds without
    # asking the rule: off here, so that the rule runs.
    for p, kind in ((Policy(mode_difference_alpha=1.0), 'monte-carlo'),
                    (Policy(mode_evidence='gaussian', mode_difference_alpha=1.0), 'gaussian')):
        seen.clear()
        f = abs_filter(policy=p, gaussian_core='bridge')
        f.update(np.array([1.0]))
        assert f.kernel_used == 'covariance' and f.n_clusters == 2
        assert [s for s, _ in seen] == [False, True]         # the rule, then the kernel
        assert {e for _, e in seen} == {kind}


def _decision_case(far):
    """Two |x| modes of 10 members, z = 1: the positive mode's members all explain z, the
    negative mode's one member at |x| = 1.15 (Monte Carlo evidence from one member, share
    about 0.03 < 1 / N) or, with ``far``, none (|x| = 2, share about e^-50)."""
    pos = np.linspace(0.98, 1.02, 10)
    neg = -np.full(10, 2.0) if far else -np.r_[1.15, np.full(9, 1.4)]
    X = np.r_[pos, neg][:, None]
    return X, np.abs(X), np.array([1.0]), np.array([[0.01]]), np.r_[np.zeros(10, int), np.ones(10, int)]


def test_decision_threshold_decides_only_beyond_its_standard_errors():
    from filterpy_diffusion.kde import ClusteredKDE
    for t, far, decides in ((0.0, False, True), (5.0, False, False), (0.0, True, True),
                            (5.0, True, True)):
        f = abs_filter(N=20, policy=Policy(decision_threshold=t), gaussian_core='bridge')
        X, hz, z, R, labels = _decision_case(far)
        assert f._evidence_decides(X, hz, z, R, labels) is decides, (t, far)
    # The near case is a one-member estimate: its difference is within 5
    # standard errors, beyond 3 (the shrinkage the rule reads).
    X, hz, z, R, labels = _decision_case(False)
    kde = ClusteredKDE(X, hz, 0.5, labels, R=R, predictions=hz, shrink_evidence=False)
    d = abs(np.subtract(*kde.log_evidence(z)))
    assert 3 < d / np.sqrt(kde.log_evidence_var(z).sum()) < 5
    assert np.exp(kde.cluster_log_weights(z)).min() < 1 / 20


def test_decision_threshold_keeps_mirror_modes_that_z_cannot_tell_apart():
    # toy-abs at N = 20, 30 cycles, seeds 0-9, without the rule that holds
    # modes alike in hx (mode_difference_alpha = 1): on some runs z rules
    # out one of the two mirror-image modes by sampling noise and the run
    # goes on with fewer than 5 members on one side. At 5 standard errors
    # fewer runs do; so do fewer with the default, which holds such modes.
    from filterpy_diffusion.bench import build_filter, resolve_problem, twin_experiment
    problem = resolve_problem("toy-abs", 30, 0)

    def runs_losing_a_mode(spec):
        lost = 0
        for seed in range(10):
            twin = twin_experiment(problem, seed, 20)
            f = build_filter(f"dkf:policy={spec}", problem, twin.initial_ensemble,
                             twin.filter_seed)
            fewest = 20
            for k in range(problem.cycles):
                f.predict()
                f.update(twin.observations[k])
                fewest = min(fewest, (f.sigmas > 0).sum(), (f.sigmas < 0).sum())
            lost += fewest < 5
        return lost
    off = runs_losing_a_mode("{'decision_threshold': 0.0, 'mode_difference_alpha': 1.0}")
    assert off >= 2
    assert runs_losing_a_mode("{'decision_threshold': 5.0, 'mode_difference_alpha': 1.0}") < off
    assert runs_losing_a_mode("{}") < off


def test_mode_ess_target_sets_the_split_kernels_bandwidth():
    hs = {}
    for target in (0.3, 0.9):
        f = abs_filter(N=200, policy=Policy(mode_ess_target=target), inflation=None)
        f.update(np.array([1.05]))
        assert f.kernel_used == 'covariance' and f.n_clusters == 2
        hs[target] = f.h
    assert hs[0.3] < hs[0.9]


def test_members_per_dim_of_the_policy_moves_the_bridge():
    # More members per informed dimension demanded: the weights may take
    # less of the likelihood.
    gammas = []
    for c in (1.0, 20.0):
        f = DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, 60, lambda x: x, lambda x, dt: x,
                               rng=4, policy=Policy(members_per_dim=c))
        f.R = np.array([[0.05]])
        f.update(np.array([0.8]))
        gammas.append(f.gamma)
    assert gammas[0] > gammas[1]


def test_move_members_state_counts_the_unobserved_directions(monkeypatch):
    # Ten state variables, one observed, N = 12: the weights see r = 1
    # direction (c (r + 1) = 5 < 12, so they take part of the likelihood),
    # but a move redraws min(N - 1, 10) = 10 (c * 11 > 12): with 'state'
    # the update is the Gaussian core alone, the ETKF of the forecast.
    from filterpy_diffusion.bridge import MEMBERS_PER_DIM
    d, N = 10, 12
    rng = np.random.default_rng(7)
    X = rng.normal(size=(N, d)) @ np.diag(np.linspace(1.0, 2.0, d))
    z = np.array([0.9])
    R = np.array([[0.2]])
    seen = {}
    import filterpy_diffusion.filter as filt
    original = filt.bridge_analysis

    def spy(*a, **kw):
        out = original(*a, **kw)
        seen.setdefault(kw['move_members'], []).append(out[2])
        return out
    monkeypatch.setattr(filt, 'bridge_analysis', spy)
    results = {}
    for members in ('informed', 'state', 'auto'):
        f = DiffusionKDEFilter(np.zeros(d), np.eye(d), 1, 1.0, N, lambda x: x[..., :1],
                               lambda x, dt: x, rng=3, policy=Policy(move_members=members),
                               vectorized=True)
        f.R = R
        f.sigmas = X.copy()
        f.update(z)
        results[members] = (f.gamma, np.array(f.sigmas))
    # 'auto' (the default): the state needs c * 11 > 12 members for a move,
    # so it is the core alone too, bit for bit.
    assert results['auto'][0] == 0.0 and np.array_equal(results['auto'][1], results['state'][1])
    informed, state = seen['informed'][0], seen['state'][0]
    assert informed['informed_dim'] == state['informed_dim'] == 1
    assert informed['counted_dim'] == 1 and state['counted_dim'] == min(N - 1, d)
    assert state['n_required'] == MEMBERS_PER_DIM * (min(N - 1, d) + 1) > N
    assert results['informed'][0] > 0 and results['state'][0] == 0.0
    # The core alone: the (rotated, finite-size inflated) ETKF of the forecast.
    core = DiffusionKDEFilter(np.zeros(d), np.eye(d), 1, 1.0, N, lambda x: x[..., :1],
                              lambda x, dt: x, rng=3, kernel='etkf', vectorized=True)
    core.R = R
    core.sigmas = X.copy()
    core.update(z)
    np.testing.assert_allclose(results['state'][1].mean(0), np.asarray(core.sigmas).mean(0),
                               rtol=1e-10, atol=1e-12)


def test_move_members_auto_weights_as_informed_where_the_state_is_small():
    # Three state variables, one observed, N = 30 > c (3 + 1): a move is
    # affordable on the whole state, so 'auto' is 'informed' bit for bit
    # (the floor counts r = 1), while 'state' keeps more members.
    rng = np.random.default_rng(9)
    X = rng.normal(size=(30, 3)) * np.array([1.0, 2.0, 3.0])
    out, infos = {}, {}
    import filterpy_diffusion.filter as filt
    original = filt.bridge_analysis
    for members in ('auto', 'informed', 'state'):
        def spy(*a, **kw):
            res = original(*a, **kw)
            infos[members] = res[2]
            return res
        filt.bridge_analysis = spy
        try:
            f = DiffusionKDEFilter(np.zeros(3), np.eye(3), 1, 1.0, 30, lambda x: x[..., :1],
                                   lambda x, dt: x, rng=4, policy=Policy(move_members=members),
                                   vectorized=True)
            f.R = np.array([[0.05]])
            f.sigmas = X.copy()
            f.update(np.array([1.5]))
        finally:
            filt.bridge_analysis = original
        out[members] = (f.gamma, np.array(f.sigmas))
    assert infos['auto']['counted_dim'] == 1 and infos['state']['counted_dim'] == 3
    assert 0.0 < out['auto'][0] and out['auto'][0] == out['informed'][0]
    assert np.array_equal(out['auto'][1], out['informed'][1])
    assert out['state'][0] < out['auto'][0]


def test_move_members_auto_keeps_the_core_on_a_large_fully_observed_state():
    # Ten variables, all observed, N = 60: the weights would move (c (r + 1)
    # = 27.5 < 60), but Scott's jitter for 60 members in 10 directions adds
    # more than half a copy's variance, so 'auto' is the Gaussian core, bit
    # for bit kernel='etkf', while 'informed' moves.
    from filterpy_diffusion.bridge import MAX_MOVE_JITTER
    d, N = 10, 60
    assert N ** (-2.0 / (d + 4)) >= MAX_MOVE_JITTER
    rng = np.random.default_rng(11)
    X = rng.normal(size=(N, d)) * np.linspace(1.0, 2.0, d)
    z = X[3] + 0.3
    out = {}
    for name, kw in (('auto', {}), ('informed', {'policy': Policy(move_members='informed')}),
                     ('etkf', {'kernel': 'etkf'}), ('no gate', {'policy': Policy(move_max_jitter=1.0)})):
        f = DiffusionKDEFilter(np.zeros(d), np.eye(d), d, 1.0, N, lambda x: x, lambda x, dt: x,
                               rng=6, vectorized=True, **kw)
        f.R = 0.5 * np.eye(d)
        f.sigmas = X.copy()
        f.update(z)
        out[name] = (f.gamma, np.array(f.sigmas))
    assert out['auto'][0] == 0.0 and np.array_equal(out['auto'][1], out['etkf'][1])
    assert out['informed'][0] > 0.0 and out['no gate'][0] == out['informed'][0]
    assert np.array_equal(out['no gate'][1], out['informed'][1])


def test_move_members_state_changes_nothing_when_the_observations_span_the_state():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(40, 3))
    out = []
    for members in ('informed', 'state', 'auto'):
        f = DiffusionKDEFilter(np.zeros(3), np.eye(3), 3, 1.0, 40, lambda x: x, lambda x, dt: x,
                               rng=5, policy=Policy(move_members=members), vectorized=True)
        f.R = 0.3 * np.eye(3)
        f.sigmas = X.copy()
        f.update(np.array([0.5, -0.2, 0.1]))
        out.append((f.gamma, np.array(f.sigmas)))
    assert out[0][0] == out[1][0] == out[2][0]
    assert np.array_equal(out[0][1], out[1][1]) and np.array_equal(out[0][1], out[2][1])


def test_the_bridges_gaussian_step_alone_consults_the_mode_and_normality_tests(monkeypatch):
    # kernel='auto' with the bridge: only a move with gamma < 1 has a
    # Gaussian step, and only there may the kernel replace the ETKF.
    # The resampled ensemble is tested only when the forecast's screen saw
    # a gap (its full search ran).
    calls, searched = [], []
    original = DiffusionKDEFilter._rest_kernel
    original_labels = DiffusionKDEFilter._mode_labels

    def spy(self, *a):
        calls.append(True)
        return original(self, *a)

    def spy_labels(self, *a, return_searched=False, **k):
        out = original_labels(self, *a, return_searched=return_searched, **k)
        if return_searched:             # the forecast's test
            searched.append(out[1])
        return out
    monkeypatch.setattr(DiffusionKDEFilter, "_rest_kernel", spy)
    monkeypatch.setattr(DiffusionKDEFilter, "_mode_labels", spy_labels)
    f = DiffusionKDEFilter(np.zeros(2), np.eye(2) * 4, 2, 1.0, 30, lambda x: x,
                           lambda x, dt: x, rng=6)
    f.R = np.eye(2) * 0.05
    f.Q = np.eye(2) * 0.5
    rng = np.random.default_rng(7)
    tested = 0
    for _ in range(12):
        f.predict()
        before = len(calls)
        f.update(rng.normal(size=2))
        assert (len(calls) > before) == (f.gamma < 1 and searched[-1]), (f.gamma, searched[-1])
        tested += len(calls) > before
    assert 0 < tested


def test_a_resampled_ensemble_of_a_forecast_without_a_gap_is_not_searched(monkeypatch):
    # The speed benchmark's input: a Gaussian forecast (N = 100, d = m = 3)
    # whose full likelihood leaves fewer than c (r + 1) effective members, so
    # every update is a move with gamma < 1. The resampled copies form
    # clumps that passed the mode screen; the forecast shows no gap, so the
    # full search must not run on them; with the forecast's screen taken as
    # passed, it runs on most of them.
    rng = np.random.default_rng([0, 100, 3])
    L = np.eye(3) + rng.normal(size=(3, 3)) / np.sqrt(3)
    X0 = rng.normal(size=(100, 3)) @ L.T
    z = rng.normal(size=3) @ L.T + rng.normal(size=3)
    searches = []
    original = clustering._two_means

    def spy(*a, **k):
        searches.append(True)
        return original(*a, **k)
    monkeypatch.setattr(clustering, "_two_means", spy)

    def run(seed):
        f = DiffusionKDEFilter(np.zeros(3), np.eye(3), 3, 1.0, 100, lambda X: X.copy(),
                               lambda x, dt: x, rng=seed, vectorized=True)
        f.Q = np.zeros((3, 3))    # copies jittered by Scott's whole kernel (no Q to count)
        f.sigmas = X0.copy()
        f.update(z)
        assert f.gamma < 1 and f.kernel_used == 'bridge'
    for seed in range(10):
        run(seed)
    assert not searches
    original_labels = DiffusionKDEFilter._mode_labels

    def always_searched(self, *a, return_searched=False, **k):
        out = original_labels(self, *a, return_searched=return_searched, **k)
        return (out[0], True) if return_searched else out
    monkeypatch.setattr(DiffusionKDEFilter, "_mode_labels", always_searched)
    for seed in range(10):
        run(seed)
    assert len(searches) >= 5


@pytest.mark.parametrize("make", ["global", "local"])
def test_inflation_range_bounds_the_adaptive_estimate(make):
    # A forecast 10 noise sd wide of every observation: Miyoshi's estimate
    # from this one innovation wants lambda far above 1.5; the range stops it.
    from filterpy_diffusion.inflation import LAMBDA_RANGE
    from filterpy_diffusion.localization import LocalDiffusionKDEFilter
    assert Policy().inflation_range == LAMBDA_RANGE
    d = 4

    def build(policy):
        args = (np.zeros(d), np.eye(d), d, 1.0, 30, lambda X: X, lambda X, dt: X)
        kw = dict(rng=0, vectorized=True, inflation='adaptive', policy=policy)
        if make == "global":
            f = DiffusionKDEFilter(*args, **kw)
        else:
            f = LocalDiffusionKDEFilter(*args, state_positions=np.arange(d),
                                        obs_positions=np.arange(d, dtype=float), radius=2.0, **kw)
        f.R = 0.1 * np.eye(d)
        f.sigmas = np.random.default_rng(1).normal(0.0, 0.1, (30, d))
        f.update(np.full(d, 10.0))
        return f.inflation_mean
    assert build(None) > 1.5
    assert build(Policy(inflation_range=(0.5, 1.5))) == 1.5


def test_the_local_filter_takes_the_policys_inflation_var():
    from filterpy_diffusion.localization import LocalDiffusionKDEFilter
    f = LocalDiffusionKDEFilter(np.zeros(3), np.eye(3), 3, 1.0, 10, lambda X: X, lambda X, dt: X,
                                state_positions=np.arange(3), obs_positions=np.arange(3.0),
                                radius=2.0, policy=Policy(inflation_var=0.25))
    assert f.inflation_var == 0.25


def test_resample_fraction_of_the_policy_sets_the_bridges_threshold():
    # A weak observation of a 1-D state: the weights keep an ESS near N,
    # above 0.3 N, so the default carries them; at resample_fraction = 1
    # any loss of ESS resamples, and the weights are equal again.
    from filterpy_diffusion.bridge import RESAMPLE_FRACTION
    assert Policy().resample_fraction == RESAMPLE_FRACTION

    def weights_after(policy):
        f = DiffusionKDEFilter(np.zeros(1), np.eye(1), 1, 1.0, 200, lambda X: X, lambda X, dt: X,
                               rng=0, vectorized=True, policy=policy)
        f.R = np.array([[4.0]])
        f.sigmas = np.random.default_rng(1).normal(0.0, 1.0, (200, 1))
        f.update(np.array([0.5]))
        return f.weights
    carried = weights_after(None)
    assert carried.max() > carried.min() * 1.01
    resampled = weights_after(Policy(resample_fraction=1.0))
    assert np.ptp(resampled) == 0 and resampled.sum() == pytest.approx(1.0)

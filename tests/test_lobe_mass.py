"""benchmarks/lobe_mass.py: its W2 is the benchmark's; its floor samples the reference the benchmark scores against."""
import numpy as np
import pytest

from filterpy_diffusion.bench import resolve_problem, run_one
from filterpy_diffusion.bench.reference import reference_posterior
from benchmark_scripts import load

KW = dict(cycles=40, spinup=10)


def test_trace_scores_as_the_benchmark_and_counts_every_scored_update():
    lobe_mass = load("lobe_mass")
    r = lobe_mass.trace(30, 5, ref_particles=400, **KW)
    ref = run_one("l63-z", "dkf", 30, 5, ref_particles=400, **KW)
    assert r["w2"] == pytest.approx(ref["w2"], rel=1e-12)
    assert sum(v["updates"] for v in r["share_change"].values()) == KW["cycles"] - KW["spinup"]
    assert r["w2_share_reference"] >= 0 and r["w2_share_half"] >= 0


def test_with_share_sets_the_lobe_share_and_keeps_the_lobes_members():
    lobe_mass = load("lobe_mass")
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(5, 1, (30, 3)), rng.normal(-5, 1, (10, 3))])
    Y = lobe_mass._with_share(X, 0.5, rng)
    assert Y.shape == X.shape and (Y[:, 0] > 0).sum() == 20
    assert {tuple(r) for r in Y} <= {tuple(r) for r in X}
    one = X[:30]
    np.testing.assert_array_equal(lobe_mass._with_share(one, 0.5, rng), one)


def test_floor_is_scored_against_the_benchmarks_reference():
    lobe_mass = load("lobe_mass")
    problem = resolve_problem("l63-z", KW["cycles"], KW["spinup"])
    # The hook sees the same cloud the cached reference was resampled from.
    seen = {}
    lobe_mass._particle_reference(
        problem, lobe_mass.twin_experiment(problem, 5, 2), [20], 400,
        on_scored=lambda j, X, w: seen.setdefault(j, (X.copy(), w.copy())))
    ref = reference_posterior(problem, 5, [20], 400)
    assert sorted(seen) == list(range(len(ref.cycles)))
    for j, (X, w) in seen.items():
        support = {tuple(r) for r in X[w > 0]}
        assert {tuple(r) for r in ref.samples[20][j]} <= support
    fl = lobe_mass.floor([20], 5, ref_particles=400, **KW)
    assert 0 <= fl["reference_share_mean_abs_gap"] <= 0.5
    assert all(v >= 0 for v in fl["floor"]["20"].values())

"""benchmarks/mode_paths.py: its W2 is the benchmark's, its tallies cover every scored cycle."""
import pytest

from filterpy_diffusion.bench import run_one
from benchmark_scripts import load


def test_mode_paths_scores_as_the_benchmark_and_counts_every_scored_cycle():
    mode_paths = load("mode_paths")
    kw = dict(cycles=40, spinup=10)
    r = mode_paths.trace("l63-z", 30, 5, ref_particles=400, **kw)
    ref = run_one("l63-z", "dkf", 30, 5, ref_particles=400, **kw)
    assert r["w2"] == pytest.approx(ref["w2"], rel=1e-12)
    assert sum(r["paths"].values()) == kw["cycles"] - kw["spinup"]
    assert sum(v["cycles"] for v in r["w2_by_path"].values()) >= 1
    for d in r["evidence_decided"]:
        assert min(d["gaussian_share"], d["monte_carlo_share"]) >= 0
        assert d["monte_carlo_share"] < 1 / 30       # the rule that recorded it (the default)
    assert 0 <= r["mean_lobe_share_gap"] <= 1

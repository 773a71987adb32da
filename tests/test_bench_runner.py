"""Tests of the bench package's runner: CLI end to end, determinism across executors, tuning protocol."""
import json
import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import filterpy.kalman.ensemble_kalman_filter as filterpy_enkf
from filterpy_diffusion import bench as bm
from filterpy_diffusion.bench import (FILTERS, RECORD_FIELDS, TIMING_FIELDS, FilterEntry,
                                      choose_knob, filterpy_rng, main, parse_filter_spec,
                                      reference_posterior, run_benchmark, run_one)
from filterpy_diffusion.bench import reference as bench_reference
from filterpy_diffusion.bench.report import _jsonable
from filterpy_diffusion.ensemble import ensemble_moments

# A tiny but real configuration: both kinds of reference (particle, grid),
# all three kinds of filter (diffusion, EnKF, particle), tuning included.
TINY = ["--problems", "l63-full", "toy-abs", "--filters", "dkf", "enkf", "sir",
        "--N", "10", "--seeds", "100", "--tuning-seeds", "0",
        "--cycles", "20", "--spinup", "5", "--ref-particles", "500", "--no-progress"]
TINY_KW = dict(problems=["l63-full", "toy-abs"], filters=["dkf", "enkf", "sir"], Ns=[10],
               seeds=[100], tuning_seeds=[0], cycles=20, spinup=5, ref_particles=500,
               progress=False)

FIELD_TYPES = {
    "problem": (str,), "filter": (str,), "N": (int,), "seed": (int,),
    "knob": (float, type(None)), "tuning_seeds": (list, type(None)), "cycles": (int,),
    "spinup": (int,), "rmse": (float, type(None)), "spread": (float, type(None)),
    "w2": (float, type(None)), "lost": (bool,), "diverged": (bool,), "error": (str, type(None)),
    "analysis_time": (float,), "wall_time": (float,), "n_evaluations": (int, type(None)),
    "bandwidth_x": (list, type(None)), "bandwidth_y": (list, type(None)), "warnings": (list,),
}


def _without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


@pytest.fixture(scope="module")
def tiny_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    assert main(TINY + ["--workers", "1", "--out", str(out)]) == 0
    return out


def test_main_writes_documented_records(tiny_json):
    doc = json.loads(tiny_json.read_text())
    assert set(doc) == {"meta", "records", "tuning", "snapshots"}
    assert doc["meta"]["command"].startswith("python -m filterpy_diffusion.bench ")
    assert set(doc["meta"]["versions"]) >= {"numpy", "scipy", "filterpy", "filterpy_diffusion"}
    assert set(doc["meta"]["problems"]) == {"l63-full", "toy-abs"}
    recs = doc["records"]
    assert [(r["problem"], r["filter"]) for r in recs] == [
        (p, f) for p in ("l63-full", "toy-abs") for f in ("dkf", "enkf", "sir")]
    for r in recs:
        assert tuple(r) == RECORD_FIELDS
        for field, types in FIELD_TYPES.items():
            assert isinstance(r[field], types), (field, r[field])
        assert r["N"] == 10 and r["seed"] == 100 and r["cycles"] == 20 and r["spinup"] == 5
        assert not r["diverged"] and r["error"] is None
        assert r["rmse"] > 0 and r["spread"] > 0 and r["w2"] > 0    # both problems have references
        assert r["analysis_time"] > 0
    dkf = [r for r in recs if r["filter"] == "dkf"]
    assert all(r["knob"] is None and r["tuning_seeds"] is None for r in dkf)
    # The default's kernel (and so a bandwidth) runs on toy-abs's two modes;
    by_problem = {r["problem"]: r for r in dkf}
    assert all(r["n_evaluations"] is not None for r in dkf)
    assert len(by_problem["toy-abs"]["bandwidth_x"]) == 1
    # N = 10 <= members_per_dim (r + 1) for r = 3: no weights, no modes, no kernel.
    assert by_problem["l63-full"]["bandwidth_x"] is None
    enkf = [r for r in recs if r["filter"] == "enkf"]
    assert all(r["knob"] in bm.INFLATION_FACTORS and r["n_evaluations"] is None for r in enkf)


def test_table_reprints_from_json(tiny_json, capsys):
    assert main(["table", str(tiny_json)]) == 0
    text = capsys.readouterr().out
    assert "RMSE" in text and "W2" in text and "Chosen knobs" in text
    for name in ("l63-full", "toy-abs", "dkf", "enkf", "sir"):
        assert name in text
    assert main(["table", str(tiny_json), "--markdown"]) == 0
    md = capsys.readouterr().out
    assert "| problem | N | dkf | enkf | sir |" in md


def test_knobs_are_chosen_on_tuning_seeds_only(tiny_json):
    doc = json.loads(tiny_json.read_text())
    tuning = doc["tuning"]
    assert tuning and {r["seed"] for r in tuning} == {0}
    assert not {r["seed"] for r in tuning} & {r["seed"] for r in doc["records"]}
    for r in doc["records"]:
        spec = parse_filter_spec(r["filter"])
        if not spec.tuned:
            continue
        runs = [t for t in tuning if (t["problem"], t["filter"], t["N"]) == (r["problem"], r["filter"], r["N"])]
        assert sorted(t["knob"] for t in runs) == sorted(spec.grid)
        objective = "w2" if r["problem"] == "toy-abs" else "rmse"
        assert r["knob"] == choose_knob(spec.grid, runs, objective)
        assert r["tuning_seeds"] == [0]


def test_process_pool_matches_in_process_and_tunes_on_tuning_seeds(tiny_json):
    seen = []
    pool = run_benchmark(workers=2, on_job=lambda *job: seen.append(job), **TINY_KW)
    serial = json.loads(tiny_json.read_text())
    assert _without_timing(_jsonable(pool["records"])) == _without_timing(serial["records"])
    assert _without_timing(_jsonable(pool["tuning"])) == _without_timing(serial["tuning"])
    # the hook sees every job: tuning jobs use seed 0 only, reporting jobs seed 100 only
    assert {seed for kind, *_, seed, _ in seen if kind == "tune"} == {0}
    assert {seed for kind, *_, seed, _ in seen if kind == "report"} == {100}


def test_dask_cluster_matches_in_process(tiny_json, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        out = tmp_path / "dask.json"
        assert main(TINY + ["--scheduler", cluster.scheduler_address, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["executor"].startswith("dask")
    serial = json.loads(tiny_json.read_text())
    assert _without_timing(doc["records"]) == _without_timing(serial["records"])


@pytest.mark.parametrize("spec, knob", [("dkf", None), ("enkf", 1.05), ("sir", 0.1),
                                        ("sir:resample_threshold=0.5", 0.1)])
def test_same_seed_gives_identical_metrics(spec, knob):
    kw = dict(cycles=15, spinup=3, knob=knob, ref_particles=300)
    a = run_one("l63-full", spec, 10, 7, **kw)
    b = run_one("l63-full", spec, 10, 7, **kw)
    c = run_one("l63-full", spec, 10, 8, **kw)
    assert _without_timing([a]) == _without_timing([b])
    assert a["rmse"] != c["rmse"]
    assert np.isfinite(a["w2"])


def test_enkf_runs_never_touch_the_global_rng():
    state = np.random.get_state()
    run_one("l63-full", "enkf", 10, 3, cycles=5, spinup=0, knob=1.1, compute_w2=False)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


def test_filterpy_rng_restores_module_attribute_even_on_error():
    original = filterpy_enkf.multivariate_normal
    rng = np.random.default_rng(0)
    with pytest.raises(RuntimeError, match="boom"):
        with filterpy_rng(rng):
            assert filterpy_enkf.multivariate_normal == rng.multivariate_normal
            raise RuntimeError("boom")
    assert filterpy_enkf.multivariate_normal is original
    with filterpy_rng(rng):
        pass
    assert filterpy_enkf.multivariate_normal is original


class _Exploding:
    """A filter that raises at its third update (a stand-in for divergence)."""

    def __init__(self, ensemble):
        self.sigmas = np.array(ensemble, dtype=float)
        self.calls = 0

    def predict(self):
        pass

    def update(self, z):
        self.calls += 1
        if self.calls == 3:
            raise FloatingPointError("ensemble blew up")


def test_diverged_run_is_recorded_not_raised(monkeypatch, tmp_path):
    monkeypatch.setitem(FILTERS, "boom", FilterEntry(lambda p, ens, seed, knob: _Exploding(ens)))
    r = run_one("l63-full", "boom", 10, 1, cycles=10, spinup=2, ref_particles=200)
    assert r["diverged"] and "FloatingPointError at cycle 2: ensemble blew up" == r["error"]
    assert math.isnan(r["rmse"]) and math.isnan(r["w2"]) and r["lost"]
    # NaN is written as null and read back as NaN
    path = tmp_path / "d.json"
    bm.write_json({"meta": {"problems": {"l63-full": {"reference": "particle"}}}, "records": [r]}, path)
    assert json.loads(path.read_text())["records"][0]["rmse"] is None
    back = bm.read_json(path)["records"][0]
    assert math.isnan(back["rmse"]) and math.isnan(back["w2"])


def test_choose_knob_counts_lost_runs_as_infinite():
    def rec(knob, rmse, lost=False):
        return {"knob": knob, "rmse": rmse, "lost": lost, "diverged": False}
    runs = [rec(1.0, 0.5), rec(1.0, 0.6, lost=True), rec(1.1, 0.9), rec(1.1, 0.8), rec(1.2, 0.7),
            rec(1.2, 0.7)]
    assert choose_knob([1.0, 1.1, 1.2], runs, "rmse") == 1.2
    # ties go to the earlier grid value
    assert choose_knob([1.1, 1.0], [rec(1.0, 0.5), rec(1.1, 0.5)], "rmse") == 1.1
    # everything lost: fewest lost runs wins
    assert choose_knob([1.0, 1.1], [rec(1.0, 9, True), rec(1.0, 9, True), rec(1.1, 9, True),
                                    rec(1.1, 0.5)], "rmse") == 1.1


def test_a_policy_dict_in_a_spec_is_the_filters_policy():
    from filterpy_diffusion.bench import build_filter, resolve_problem, twin_experiment
    from filterpy_diffusion.policy import Policy
    problem = resolve_problem("toy-abs", 3, 0)
    twin = twin_experiment(problem, 0, 20)
    for name in ("dkf", "dkf-cov"):
        f = build_filter(f"{name}:policy={{'decision_threshold': 5.0, 'xN': 2.0}}", problem,
                         twin.initial_ensemble, twin.filter_seed)
        assert f.policy == Policy(decision_threshold=5.0, xN=2.0)
    with pytest.raises(TypeError, match="no_such_field"):
        build_filter("dkf:policy={'no_such_field': 1}", problem, twin.initial_ensemble, 0)


def test_dkf_sim_is_the_default_given_only_a_simulator_of_hx_plus_noise():
    from filterpy_diffusion.bench import build_filter, resolve_problem, twin_experiment
    problem = resolve_problem("l63-full", 3, 0)
    twin = twin_experiment(problem, 0, 20)
    f = build_filter("dkf-sim", problem, twin.initial_ensemble, twin.filter_seed)
    assert f.simulate is not None and f.kernel == 'auto'
    X = np.random.default_rng(1).normal(size=(4000, problem.dim))
    noise = f.simulate(X, np.random.default_rng(2)) - np.asarray(problem.hx(X))
    # hx(x) + N(0, R): zero mean, covariance R within sampling error
    np.testing.assert_allclose(noise.mean(axis=0), 0.0, atol=4 * np.sqrt(np.diag(problem.R).max() / 4000))
    np.testing.assert_allclose(np.cov(noise.T), problem.R, rtol=0.1, atol=0.1 * np.max(problem.R))
    rec = run_one("l63-full", "dkf-sim", 10, 0, cycles=3, spinup=0)
    assert np.isfinite(rec["rmse"]) and rec["error"] is None
    with pytest.raises(ValueError, match="no knob"):
        build_filter("dkf-sim:knob=0.3", problem, twin.initial_ensemble, 0)


def test_parse_filter_spec():
    s = parse_filter_spec("dkf:kernel=isotropic,steps=8,sampler_options={'solver': 'heun', 'rho': 5.0}")
    assert s.name == "dkf" and not s.tuned
    assert s.options == {"kernel": "isotropic", "steps": 8,
                         "sampler_options": {"solver": "heun", "rho": 5.0}}
    assert parse_filter_spec("dkf-exact").options == {"kernel": "covariance", "clusters": 1,
                                                      "sampler": "exact"}
    fixed = parse_filter_spec("enkf:knob=1.05")
    assert fixed.fixed_knob == 1.05 and not fixed.tuned
    assert parse_filter_spec("sir:grid=(0.0, 0.3)").grid == (0.0, 0.3)
    with pytest.raises(ValueError, match="unknown filter 'nope'"):
        parse_filter_spec("nope")
    with pytest.raises(ValueError, match="not of the form key=value"):
        parse_filter_spec("dkf:steps")
    with pytest.raises(ValueError, match="has no knob"):
        parse_filter_spec("dkf:knob=0.3")
    with pytest.raises(ValueError, match="needs its inflation knob"):
        run_one("l63-full", "enkf", 10, 0, cycles=3, spinup=0)


def test_reference_disk_cache_gives_the_same_samples(tmp_path, monkeypatch):
    problem = bm.resolve_problem("l63-z", 13, 2)
    a = reference_posterior(problem, 5, [10, 20], particles=400, cache_dir=str(tmp_path))
    assert [f.suffix for f in tmp_path.iterdir()] == [".npz"]
    monkeypatch.setattr(bench_reference, "_REFERENCE_CACHE", {})
    b = reference_posterior(problem, 5, [20], particles=400, cache_dir=str(tmp_path))
    assert np.array_equal(a.samples[20], b.samples[20]) and np.array_equal(a.cycles, b.cycles)
    assert a.samples[10].shape == (2, 10, 3) and list(a.cycles) == [2, 12]
    # the N-point draw does not depend on which other sizes were drawn with it
    monkeypatch.setattr(bench_reference, "_REFERENCE_CACHE", {})
    c = reference_posterior(problem, 5, [20], particles=400)
    assert np.array_equal(a.samples[20], c.samples[20])


def test_toy_abs_reference_is_the_bimodal_grid_posterior():
    ref = reference_posterior(bm.resolve_problem("toy-abs", 30, 0), 0, [400])
    X = ref.samples[400]                     # (3 W2 cycles, 400, 1)
    assert X.shape == (3, 400, 1)
    # both modes of |x| are populated, roughly evenly, as the balance says
    frac = (X[..., 0] > 0).mean(axis=1)
    assert np.all(np.abs(frac - 0.5) < 0.2) and np.all(ref.balance > 0.3)


def test_reference_samples_keep_the_mass_between_the_lobes():
    # The reference's N points are stratified: each lobe's share of them is
    # within one point of the posterior's, where N i.i.d. draws would be off
    # by sqrt(N / 4) points (about 5 at N = 100) and that error would be
    # part of every filter's W2.
    ref = reference_posterior(bm.resolve_problem("toy-abs", 30, 0), 0, [100])
    pos = (ref.samples[100][..., 0] > 0).sum(axis=1)
    assert np.all(np.abs(pos - 100 * (1 - ref.balance)) <= 1)   # the truth's lobe is the larger
    # l63-z: the particle cloud's lobes lie along its leading axis; a cut
    # across that axis through the cloud's mean splits them.
    problem = bm.resolve_problem("l63-z", 13, 2)
    cuts = []

    def keep(j, X, w):
        m, P = ensemble_moments(X, w)
        v = np.linalg.eigh(P)[1][:, -1]                 # the leading principal axis
        cuts.append((m, v, float(w[(X - m) @ v > 0].sum())))
    ref = bench_reference._particle_reference(problem, bm.twin_experiment(problem, 5, 2), [50],
                                              2000, on_scored=keep)
    for S, (m, v, mass) in zip(ref.samples[50], cuts):
        assert 0.3 < mass < 0.7                                    # both lobes hold mass
        assert abs(np.sum((S - m) @ v > 0) - 50 * mass) < 1 + 1e-9


@settings(max_examples=40, deadline=None)
@given(w=hnp.arrays(float, st.integers(2, 60), elements=st.floats(0.0, 1.0)),
       n=st.integers(1, 80), gap=st.floats(3.0, 50.0), seed=st.integers(0, 2 ** 32 - 1))
def test_reference_subsample_is_stratified_along_the_leading_axis(w, n, gap, seed):
    # Two mirror clusters along a random direction: every cut across the
    # leading axis (here the gap between them) gets its mass to within one
    # point, whatever the weights and the row order.
    assume(w.sum() > 0)
    w = w / w.sum()
    rng = np.random.default_rng(seed)
    M = w.size
    side = rng.permutation(np.arange(M) % 2).astype(bool)
    u = rng.standard_normal(3)
    u /= np.linalg.norm(u)
    X = np.where(side[:, None], 1.0, -1.0) * gap / 2 * u + 0.1 * rng.standard_normal((M, 3))
    assume(0 < w[side].sum() < 1)
    (S,) = bench_reference.reference_subsample(X, w, {n: rng}).values()
    assert S.shape == (n, 3)
    rows = [int(np.flatnonzero((X == s).all(axis=1))[0]) for s in S]   # every point is a particle
    assert all(w[i] > 0 for i in rows)
    assert abs(sum(side[i] for i in rows) - n * w[side].sum()) < 1 + 1e-9


@settings(max_examples=40, deadline=None)
@given(dens=hnp.arrays(float, 41, elements=st.floats(0.0, 10.0)), n=st.integers(1, 200),
       seed=st.integers(0, 2 ** 32 - 1))
# A total below the smallest normal float: the CDF scaled by it lost its digits.
@example(dens=np.r_[5e-324, np.zeros(40)], n=3, seed=1)
def test_stratified_grid_sample_matches_every_interval_to_one_point(dens, n, seed):
    assume(dens.sum() > 0)
    grid = np.linspace(-2.0, 2.0, 41)
    x = bm.sample_grid(grid, dens, n, seed, stratified=True)[:, 0]
    dx = grid[1] - grid[0]
    cdf = np.cumsum(dens) / dens.sum()
    for j in range(40):                       # the cut between cells j and j + 1
        assert abs(np.sum(x < grid[j] + dx / 2) - n * cdf[j]) < 1 + 1e-9


def test_table_merges_sweeps_split_over_files(tiny_json, tmp_path):
    # A sweep split by filter group reads back as one document.
    doc = json.loads(tiny_json.read_text())
    parts = []
    for group in (("dkf",), ("enkf", "sir")):
        part = dict(doc, records=[r for r in doc["records"] if r["filter"] in group],
                    tuning=[t for t in doc["tuning"] if t["filter"] in group])
        path = tmp_path / f"{group[0]}.json"
        path.write_text(json.dumps(part))
        parts.append(str(path))
    merged = bm.read_results(parts)
    key = lambda r: (r["problem"], r["filter"], r["N"], r["seed"])
    assert sorted(map(key, merged["records"])) == sorted(map(key, doc["records"]))
    assert len(merged["tuning"]) == len(doc["tuning"])
    assert main(["table", *parts, "--markdown"]) == 0


# --- localized filters (ldkf, letkf) -------------------------------------------------------

LOCAL = ["--problems", "l96-40", "--filters", "ldkf", "letkf", "--N", "10", "--seeds", "100",
         "--tuning-seeds", "0", "--cycles", "30", "--spinup", "5", "--workers", "1", "--no-progress"]


def test_local_filters_run_on_l96_40_with_letkf_inflation_tuned(tmp_path):
    out = tmp_path / "local.json"
    assert main(LOCAL + ["--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    recs = {r["filter"]: r for r in doc["records"]}
    assert set(recs) == {"ldkf", "letkf"}
    for r in recs.values():
        assert r["problem"] == "l96-40" and r["N"] == 10 and r["cycles"] == 30
        assert not r["diverged"] and r["error"] is None and not r["lost"]
        assert math.isfinite(r["rmse"]) and 0 < r["rmse"] < 1 and r["spread"] > 0
        assert r["w2"] is None and r["analysis_time"] > 0
    ldkf, letkf = recs["ldkf"], recs["letkf"]
    assert ldkf["knob"] is None and ldkf["tuning_seeds"] is None
    # N = 10 with every domain seeing more than N - 1 observations: the local ETKF (no kernel)
    assert ldkf["bandwidth_x"] is None and ldkf["n_evaluations"] == 0
    # LETKF inflation tuned over the whole shared grid on the tuning seed only
    assert FILTERS["letkf"].grid == bm.LETKF_INFLATION and FILTERS["letkf"].knob_name == "inflation"
    tuning = [t for t in doc["tuning"] if t["filter"] == "letkf"]
    assert sorted(t["knob"] for t in tuning) == sorted(bm.LETKF_INFLATION)
    assert {t["seed"] for t in tuning} == {0} and not any(t["filter"] == "ldkf" for t in doc["tuning"])
    assert letkf["knob"] == choose_knob(bm.LETKF_INFLATION, tuning, "rmse")
    assert letkf["tuning_seeds"] == [0]
    assert doc["meta"]["settings"]["knob_names"]["letkf"] == "inflation"


def test_local_builders_use_the_cyclic_grid_layout():
    problem = bm.resolve_problem("l96-20-cubic", 2, 0)
    layout = bm.grid_layout(problem)
    assert np.array_equal(layout["state_positions"], np.arange(20))
    assert np.array_equal(layout["obs_positions"], np.arange(20)) and layout["domain_length"] == 20
    assert bm.local_problems() == ["l96-10-abs", "l96-20-cubic", "l96-40"]
    ens = np.random.default_rng(0).normal(size=(10, 20))
    f = bm.build_filter("letkf", problem, ens, 3, knob=1.02)
    assert f.inflation == 1.02 and f.local is not None and np.array_equal(f.sigmas, ens)
    g = bm.build_filter("ldkf:radius=4", problem, ens, 3)
    assert g.radius == 4 and g.inflation == "auto" and g.kernel == "auto"
    with pytest.raises(ValueError, match="no knob"):
        bm.build_filter(bm.FilterSpec("ldkf", "ldkf", {}, None, None), problem, ens, 3, knob=1.1)


@pytest.mark.parametrize("spec, knob", [("ldkf", None), ("letkf", 1.05)])
@pytest.mark.parametrize("problem", ["l63-full", "l63-z", "toy-abs"])
def test_local_filters_reject_problems_without_a_grid(spec, knob, problem):
    with pytest.raises(ValueError, match=r"needs a spatial grid.*'l96-40'") as info:
        run_one(problem, spec, 10, 0, cycles=3, spinup=0, knob=knob, compute_w2=False)
    assert repr(problem) in str(info.value) and "--problems" in str(info.value)


def test_cli_reports_unsupported_problem_before_any_run(capsys):
    # one clean line, no traceback, and nothing is run (the l96-40 runs would come first)
    seen = []
    with pytest.raises(ValueError, match=r"'ldkf' on 'l63-full'.*needs a spatial grid"):
        run_benchmark(problems=["l96-40", "l63-full"], filters=["ldkf"], Ns=[10], seeds=[100],
                      tuning_seeds=[0], cycles=5, spinup=1, workers=1, progress=False,
                      on_job=lambda *job: seen.append(job))
    assert seen == []
    with pytest.raises(SystemExit, match=r"^error: 'letkf' on 'l63-full'.*\['l96-10-abs', "
                                         r"'l96-20-cubic', 'l96-40'\]"):
        main(["--problems", "l96-40", "l63-full", "--filters", "dkf", "letkf", "--N", "10",
              "--seeds", "100", "--cycles", "5", "--workers", "1", "--no-progress"])
    with pytest.raises(SystemExit, match=r"^error: 'ldkf:foo=1' on 'l96-40'.*unexpected keyword"):
        main(["--problems", "l96-40", "--filters", "ldkf:foo=1", "--N", "10", "--seeds", "100",
              "--cycles", "5", "--workers", "1", "--no-progress"])


def test_default_problems_leave_out_those_a_local_filter_cannot_run(tmp_path, capsys):
    out = tmp_path / "default.json"
    assert main(["--filters", "ldkf", "--N", "10", "--seeds", "100", "--cycles", "5",
                 "--spinup", "1", "--workers", "1", "--no-progress", "--out", str(out)]) == 0
    assert "leaving out ['toy-abs', 'l63-full', 'l63-z', 'l63-cubic']" in capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["meta"]["settings"]["problems"] == bm.local_problems()
    assert all(math.isfinite(r["rmse"]) for r in doc["records"])


def test_localization_script_uses_the_registry_builders():
    from benchmark_scripts import load
    script = load("localization")
    assert script.GRIDS["letkf"] is bm.LETKF_INFLATION
    assert script.GRIDS["enkf"] is bm.INFLATION_FACTORS and script.GRIDS["sir"] is bm.JITTERS
    problem = script.l96_problem(12, cycles=20, spinup=5)       # a dimension not in PROBLEMS
    for s in ("ldkf", "letkf:knob=1.05"):
        r = script.run(s, problem, 10, 100)
        assert r["error"] is None and math.isfinite(r["rmse"]) and r["rmse"] < 1

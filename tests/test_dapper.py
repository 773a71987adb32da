"""Our filters as DAPPER methods, against a real DAPPER (skipped where it is not installed)."""
import itertools
import os

import numpy as np
import pytest

os.environ.setdefault("DAPPER_LIVEPLOTTING", "false")
if os.environ.get("FILTERPY_DIFFUSION_REQUIRE_DAPPER"):
    import dapper as dpr          # CI on Python 3.12 (.ci/run): fail, do not skip
else:
    dpr = pytest.importorskip(
        "dapper", reason="DAPPER is not installed (it needs Python >= 3.12): "
                         "pip install -e '.[dapper]' to run the DAPPER interop tests")
import dapper.da_methods as da                                    # noqa: E402
import dapper.mods as modelling                                   # noqa: E402
import dapper.tools.seeding as seeding                            # noqa: E402
from dapper.tools.localization import nd_Id_localization          # noqa: E402

from filterpy_diffusion import DiffusionKDEFilter, LocalDiffusionKDEFilter   # noqa: E402
from filterpy_diffusion.dapper import (DEFAULT_LOC_RAD, GC_RADIUS_FACTOR,     # noqa: E402
                                       DiffusionKDE, LocalDiffusionKDE, filter_options,
                                       localizer_local_obs)
from filterpy_diffusion.ensemble import ensemble_moments          # noqa: E402
from filterpy_diffusion.localization import local_observations    # noqa: E402

TRUTH_SEED, METHOD_SEED = 3000, 77


def _short(module, cycles, burnin):
    HMM = module.HMM.copy()
    HMM.tseq.Ko = cycles
    HMM.tseq.BurnIn = burnin
    return HMM


@pytest.fixture(scope="module")
def l63():
    import dapper.mods.Lorenz63.sakov2012 as m
    HMM = _short(m, 20, 1.0)           # dto 0.25: cycles 5-20 are scored
    dpr.set_seed(TRUTH_SEED)
    return (HMM,) + HMM.simulate()


@pytest.fixture(scope="module")
def l96():
    import dapper.mods.Lorenz96.sakov2008 as m
    HMM = _short(m, 25, 0.25)          # dto 0.05: cycles 6-25 are scored
    dpr.set_seed(TRUTH_SEED)
    return (HMM,) + HMM.simulate()


def _run(xp, HMM, xx, yy, seed=METHOD_SEED):
    dpr.set_seed(seed)
    xp.assimilate(HMM, xx, yy)
    xp.stats.average_in_time()
    return xp


def _assert_filled(xp, HMM):
    """Forecast and analysis stats at every observation time, finite, and different."""
    f, a = xp.stats.err.rms.f, xp.stats.err.rms.a
    assert f.shape == a.shape == (HMM.tseq.Ko + 1,)
    assert np.all(np.isfinite(f)) and np.all(np.isfinite(a))
    assert np.all(np.isfinite(xp.stats.spread.a))
    assert not np.array_equal(f, a)          # the analysis did something
    for key in ("rmse", "rmv"):
        for sub in "fa":
            assert np.isfinite(getattr(getattr(xp.avrgs, key), sub).val)


def test_assimilate_sakov2012_gives_finite_stats(l63):
    HMM, xx, yy = l63
    xp = _run(DiffusionKDE(N=10), HMM, xx, yy)
    _assert_filled(xp, HMM)
    # It tracks the truth: far below the climatological RMSE (7.6 on this set-up).
    assert xp.avrgs.rmse.a.val < 2.0


def test_assimilate_sakov2008_local_needs_no_geometry(l96):
    HMM, xx, yy = l96
    xp = _run(LocalDiffusionKDE(N=10), HMM, xx, yy)
    _assert_filled(xp, HMM)
    assert xp.avrgs.rmse.a.val < 1.0          # climatology: 3.6


def test_global_on_sakov2008_and_local_without_localizer(l63, l96):
    HMM, xx, yy = l96
    _assert_filled(_run(DiffusionKDE(N=10, kernel="enkpf"), HMM, xx, yy), HMM)
    HMM, xx, yy = l63
    with pytest.raises(ValueError, match="HMM.Obs.localizer"):
        LocalDiffusionKDE(N=10).assimilate(HMM, xx, yy)


def test_tabulate_avrgs_shows_methods_and_options(l96):
    HMM, xx, yy = l96
    xps = dpr.xpList()
    xps += da.EnKF_N(N=10, rot=True)
    xps += DiffusionKDE(N=10)
    xps += DiffusionKDE(N=10, kernel="enkpf")
    for xp in xps:
        _run(xp, HMM, xx, yy)
    table = xps.tabulate_avrgs(["rmse.a", "rmv.a"], colorize=False)
    lines = table.splitlines()
    assert "kernel" in lines[0] and "rmse.a" in lines[0] and "rmv.a" in lines[0]
    assert sum("DiffusionKDE" in line for line in lines) == 2
    assert any("EnKF_N" in line for line in lines) and any("enkpf" in line for line in lines)
    # The options are dataclass fields with the filter's defaults.
    assert xps[1].kernel == filter_options(DiffusionKDEFilter)["kernel"]
    assert xps[1] != xps[2]


def test_options_are_the_filters_keyword_options():
    fields = set(DiffusionKDE.__dataclass_fields__) - {"stats", "avrgs", "N", "rng"}
    # DAPPER gives hx and R: no simulator, so none of its options.
    assert fields == set(filter_options(DiffusionKDEFilter,
                                        {"rng", "vectorized", "simulate", "simulations"}))
    local = set(LocalDiffusionKDE.__dataclass_fields__) - {"stats", "avrgs", "N", "rng"}
    assert local == set(filter_options(
        LocalDiffusionKDEFilter, {"rng", "vectorized", "simulate", "state_positions",
                                  "obs_positions", "domain_length", "local_obs", "radius"})) \
        | {"loc_rad", "taper"}
    with pytest.raises(TypeError):
        DiffusionKDE(N=10, kernell="enkpf")


def test_methods_pickle_like_dappers():
    # xpList.launch stores experiments with dill; the generated classes pickle by reference.
    import pickle
    xp = LocalDiffusionKDE(N=12, loc_rad=2.0, stitching="independent")
    back = pickle.loads(pickle.dumps(xp))
    assert type(back) is LocalDiffusionKDE and back == xp and back.da_method == "LocalDiffusionKDE"


def test_same_seed_gives_identical_stats(l96):
    HMM, xx, yy = l96
    a = _run(DiffusionKDE(N=10), HMM, xx, yy)
    b = _run(DiffusionKDE(N=10), HMM, xx, yy)
    c = _run(DiffusionKDE(N=10), HMM, xx, yy, seed=METHOD_SEED + 1)
    for sub in "fa":
        assert np.array_equal(getattr(a.stats.err.rms, sub), getattr(b.stats.err.rms, sub))
        assert np.array_equal(getattr(a.stats.spread, sub), getattr(b.stats.spread, sub))
    assert a.avrgs.rmse.a.val == b.avrgs.rmse.a.val
    assert not np.array_equal(a.stats.err.rms.a, c.stats.err.rms.a)


def _direct_rmse(filter_cls, HMM, xx, yy, N, seed, fixed_rng=None, weighted=False, **kw):
    """Our filter driven by hand on DAPPER's truth: time-mean analysis RMSE after burn-in."""
    tseq = HMM.tseq
    dpr.set_seed(seed)
    E = HMM.X0.sample(N)
    rng = fixed_rng if fixed_rng is not None else int(seeding.rng.integers(2 ** 63))
    clock = [0.0]
    Obs = HMM.Obs(0)
    f = filter_cls(*ensemble_moments(E), Obs.M, tseq.dt, N, Obs,
                   lambda X, dt: HMM.Dyn(X, clock[0], dt), rng=rng, vectorized=True, **kw)
    f.sigmas = E.copy()
    f.Q = np.zeros((HMM.Nx, HMM.Nx))         # Q = 0 on both set-ups
    err = []
    for k, ko, t, dt in tseq.ticker:
        clock[0], f.dt = t - dt, dt         # the ticker's dt (t_k - t_k-1), as DAPPER's EnKF
        f.predict()
        if ko is not None:
            f.update(yy[ko], R=Obs.noise.C.full)
            if tseq.tto[ko] > tseq.BurnIn:
                mean = f.weights @ f.sigmas if weighted else f.sigmas.mean(0)
                err.append(np.sqrt(np.mean((mean - xx[k]) ** 2)))
    return np.mean(err)


@pytest.mark.parametrize("fixed_rng", [None, 12345])
def test_rmse_equals_the_filter_driven_directly(l63, fixed_rng):
    HMM, xx, yy = l63
    xp = _run(DiffusionKDE(N=10, rng=fixed_rng), HMM, xx, yy)
    # The default's one-mode update is the bridge, which carries weights:
    # DAPPER's rmse is then of the weighted mean.
    direct = _direct_rmse(DiffusionKDEFilter, HMM, xx, yy, 10, METHOD_SEED, fixed_rng,
                          weighted=True)
    np.testing.assert_allclose(xp.avrgs.rmse.a.val, direct, rtol=1e-12)


def test_bridge_carries_weights_into_dappers_stats(l63):
    # DAPPER drops its weight series at the first w=None; the bridge's weights
    # become non-uniform later, so they must be passed from the start.
    HMM, xx, yy = l63
    xp = _run(DiffusionKDE(N=60, kernel='bridge'), HMM, xx, yy)
    direct = _direct_rmse(DiffusionKDEFilter, HMM, xx, yy, 60, METHOD_SEED, weighted=True,
                          kernel='bridge')
    assert np.isfinite(xp.avrgs.rmse.a.val)
    np.testing.assert_allclose(xp.avrgs.rmse.a.val, direct, rtol=1e-12)
    assert np.any(np.nanstd(xp.stats.w.a, axis=1) > 0)    # weighted analyses were recorded


def test_local_rmse_equals_the_filter_driven_directly(l96):
    HMM, xx, yy = l96
    xp = _run(LocalDiffusionKDE(N=10), HMM, xx, yy)
    loc = localizer_local_obs(HMM.Obs(0).localizer, HMM.Nx, HMM.Obs(0).M, DEFAULT_LOC_RAD)
    direct = _direct_rmse(LocalDiffusionKDEFilter, HMM, xx, yy, 10, METHOD_SEED, local_obs=loc)
    assert xp.avrgs.rmse.a.val == direct


def test_localizer_matches_our_gaspari_cohn_lists():
    # One state variable per batch: DAPPER's GC taper of radius loc_rad is our
    # Gaspari-Cohn of half-width 1.82 loc_rad (DAPPER drops coefficients <= 1e-3).
    d, loc_rad = 30, 2.5
    loc = localizer_local_obs(nd_Id_localization((d,), (1,)), d, d, loc_rad)
    ours = local_observations(np.arange(d), np.arange(d), GC_RADIUS_FACTOR * loc_rad,
                              domain_length=d)
    for (i1, w1), (i2, w2) in zip(loc.lists(), ours.lists()):
        keep = w2 > 1e-3
        o1, o2 = np.argsort(i1), np.argsort(i2[keep])
        assert np.array_equal(i1[o1], i2[keep][o2])
        np.testing.assert_allclose(w1[o1], w2[keep][o2], rtol=1e-12)
    with pytest.raises(ValueError, match="loc_rad"):
        localizer_local_obs(nd_Id_localization((d,), (1,)), d, d, -1.0)


def test_model_sees_dappers_times_and_the_stats_every_step():
    # A non-autonomous model that records its (t, dt) calls: ours must
    # call HMM.Dyn with the same times as DAPPER's EnKF.
    calls = []

    def step(x, t, dt):
        calls.append((round(t, 10), dt))
        return x + dt * np.cos(t)

    tseq = modelling.Chronology(dt=0.1, dko=3, Ko=6, BurnIn=0.0)
    HMM = modelling.HiddenMarkovModel(
        modelling.Operator(M=2, model=step, noise=0),
        modelling.Operator(**modelling.partial_Id_Obs(2, np.arange(1)), noise=0.5),
        tseq, modelling.GaussRV(C=1.0, M=2))
    dpr.set_seed(5)
    xx, yy = HMM.simulate()
    calls.clear()
    dpr.set_seed(6)
    da.EnKF("Sqrt", N=8).assimilate(HMM, xx, yy)
    theirs, calls[:] = list(calls), []
    xp = DiffusionKDE(N=8, kernel="enkpf")
    dpr.set_seed(6)
    xp.assimilate(HMM, xx, yy, store_i=True)
    assert calls == theirs and len(calls) == tseq.K
    # 'i' stats at every model step, 'f' and 'a' at every observation.
    assert np.all(np.isfinite(xp.stats.err.rms.i)) and xp.stats.err.rms.i.shape == (tseq.K + 1,)
    assert np.all(np.isfinite(xp.stats.err.rms.f)) and np.all(np.isfinite(xp.stats.err.rms.a))


def test_time_dependent_obs_operator_is_used_at_its_time():
    used = []

    def observe(i):
        def model(E):
            used.append(i)
            return E[..., [i]]
        return modelling.Operator(M=1, model=model, noise=0.5)

    ops = [observe(0), observe(1)]
    tseq = modelling.Chronology(dt=0.1, dko=2, Ko=5, BurnIn=0.0)
    HMM = modelling.HiddenMarkovModel(
        modelling.Operator(M=2, model=lambda x, t, dt: x, noise=0),
        modelling.TimeDependentOperator(lambda ko: ops[ko % 2]), tseq, modelling.GaussRV(C=1.0, M=2))
    dpr.set_seed(5)
    xx, yy = HMM.simulate()
    used.clear()
    xp = DiffusionKDE(N=6, kernel="enkpf", inflation=None)
    dpr.set_seed(6)
    xp.assimilate(HMM, xx, yy)
    # Each analysis measures the ensemble with HMM.Obs(ko) (however often it calls hx).
    assert [i for i, _ in itertools.groupby(used)] == [ko % 2 for ko in range(tseq.Ko + 1)]
    ops[1] = modelling.Operator(M=2, model=lambda E: E, noise=0.5)
    with pytest.raises(ValueError, match="time-varying observation dimension"):
        DiffusionKDE(N=6).assimilate(HMM, xx, yy)


def test_dappers_plots_work(l96):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import dapper.tools.viz as viz
    HMM, xx, yy = l96
    xp = _run(LocalDiffusionKDE(N=10), HMM, xx, yy)
    before = set(plt.get_fignums())
    viz.plot_rank_histogram(xp.stats)
    viz.plot_err_components(xp.stats)
    new = set(plt.get_fignums()) - before
    assert len(new) == 2 and all(plt.figure(n).axes for n in new)
    for n in new:
        plt.close(n)


def test_compare_scripts_letkf_n_is_dappers_untuned_adaptive_letkf(l96):
    # benchmarks/dapper_compare.py's LETKF_N: DAPPER's LETKF with its local
    # finite-size inflation (xN = 1) and no tuned factor; it runs on a
    # localized set-up and differs from the tuned LETKF.
    from benchmark_scripts import load
    mod = load("dapper_compare")
    xp = mod.METHODS["LETKF_N"](10)
    assert isinstance(xp, da.LETKF) and xp.xN == 1.0 and xp.infl == 1.0 and xp.loc_rad == 4
    assert "LETKF_N" in mod.NEEDS_LOCALIZER
    runs = [_run(mod.METHODS[name](10), *l96) for name in ("LETKF_N", "LETKF")]
    _assert_filled(runs[0], l96[0])
    assert runs[0].avrgs.rmse.a.val != runs[1].avrgs.rmse.a.val


def test_compare_script_reports_when_every_run_crashed(tmp_path, capsys):
    # DAPPER's own table raises when no run has rmse.a; the script must still
    # print its summary and write the JSON, with the crashes counted.
    import json

    from benchmark_scripts import load
    mod = load("dapper_compare")
    out = tmp_path / "crashed.json"
    mod.main(["--hmm", "Lorenz63.sakov2012", "--N", "10", "--seeds", str(TRUTH_SEED),
              "--cycles", "8", "--burnin", "0.5", "--variant", "crashes_always=sampler:'nonsense'",
              "--json", str(out)])
    (row,) = json.loads(out.read_text())["means"]
    assert row["crashed"] == row["seeds"] == 1 and row["rmse_a"] is None
    assert "every run crashed" in capsys.readouterr().out

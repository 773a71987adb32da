"""Localized filters on Lorenz-96 with 40 and 100 variables.

Twin experiments with the settings of ``l96-40`` (F = 8, dt 0.05, every
variable observed, R = I, Q = 0, 1000 cycles, 200 spin-up, lost track when
the time-mean RMSE exceeds 2), for d = 40 and d = 100, comparing

* ``ldkf``: :class:`~filterpy_diffusion.localization.LocalDiffusionKDEFilter`
  with its defaults (automatic bandwidth, adaptive inflation, Gaspari-Cohn
  half-width 7, ``'rotation'`` stitching, exact sampling);
* ``letkf``: our :class:`~filterpy_diffusion.localization.LETKF` (the same
  localization), multiplicative inflation tuned on the tuning seeds;
* ``enkf``: filterpy's ``EnsembleKalmanFilter`` through
  :mod:`filterpy_diffusion.bench` (perturbed observations, no
  localization), inflation tuned;
* ``sir``: our :class:`~filterpy_diffusion.ParticleFilter` (bootstrap,
  resampling every cycle), jitter tuned.

Tuning follows the benchmark protocol (:mod:`filterpy_diffusion.bench.runner`): every grid value runs on the tuning seeds,
per (problem, N); the knob with the fewest lost runs, then the smallest mean
RMSE, is used on the reporting seeds. A tuning run is stopped early (and
counted as lost) once the mean RMSE of 100 scored cycles exceeds 3, far
above the threshold 2 (the climatological RMSE of Lorenz-96 is about 3.6):
this keeps the grids of the non-localized filters, which lose track at
small N, affordable. Reporting runs always run to the end.

Commands::

    python benchmarks/localization.py --quick            # l96-40, N = 20, 2 seeds, 300 cycles (20 s)
    python benchmarks/localization.py                    # the full table (about an hour, 1 core)
    python benchmarks/localization.py --dims 40 --N 20 --seeds 100 101 102
    python benchmarks/localization.py --experiment stitching --dims 40 --N 10 20 --seeds 0 1 2 \
        --cycles 500 --spinup 100 --abort
    python benchmarks/localization.py --experiment sampler --dims 40 --N 20 --seeds 0 1 2 \
        --cycles 500 --spinup 100 --abort
    python benchmarks/localization.py --experiment radius --dims 40 --N 20 --seeds 0 1 2 \
        --cycles 500 --spinup 100
    python benchmarks/localization.py --experiment ess --dims 40 --N 20 --seeds 0 1 2 \
        --cycles 500 --spinup 100

(the defaults' design experiments -- radius, ESS target, stitching, sampler
-- use the tuning seeds 0-2; ``--abort`` stops a run as lost once 100 scored
cycles average an RMSE above 3, as tuning runs do; ``docs/localization.md``
and ``docs/data/local_tuning.json`` hold their results).

Filters are specs of the benchmark registry, ``name:key=value,...``
(:func:`filterpy_diffusion.bench.parse_filter_spec`), e.g.
``ldkf:stitching='independent'`` or ``letkf:knob=1.05`` (fixed knob: no
tuning). Set ``OPENBLAS_NUM_THREADS=1`` for meaningful timings.
"""
import argparse
import dataclasses
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from filterpy_diffusion.bench import (FILTERS, IdentityObs, build_filter,  # noqa: E402
                                      lorenz96_problem, parse_filter_spec,
                                      twin_experiment)
from filterpy_diffusion.metrics import lost_track, rmse  # noqa: E402

#: Tuning grids of the knobbed filters: the benchmark registry's (letkf:
#: ``bench.LETKF_INFLATION``, enkf: ``INFLATION_FACTORS``, sir: ``JITTERS``).
GRIDS = {name: FILTERS[name].grid for name in ("letkf", "enkf", "sir")}
DEFAULT_FILTERS = ("ldkf", "letkf", "enkf", "sir")
#: A tuning run whose mean RMSE over 100 scored cycles exceeds this is stopped as lost.
ABORT_RMSE = 3.0


def l96_problem(d, cycles=None, spinup=None):
    """``l96-40``'s settings with ``d`` variables (and optional cycles/spin-up).

    :func:`~filterpy_diffusion.bench.lorenz96_problem` with identity
    observations, ``R = I`` and ``Q = 0``: for d = 40 exactly ``l96-40``.
    """
    base = lorenz96_problem(f"l96-{d}", d, IdentityObs(), np.zeros((d, d)))
    c = base.cycles if cycles is None else int(cycles)
    s = int(round(base.spinup * c / base.cycles)) if spinup is None else int(spinup)
    return dataclasses.replace(base, cycles=c, spinup=s)


def parse(spec):
    """``name:key=value,...`` -> (name, options, fixed knob or None), by the registry's parser."""
    fs = parse_filter_spec(spec)
    if fs.name not in DEFAULT_FILTERS:
        raise SystemExit(f"unknown filter {fs.name!r}; choose from {list(DEFAULT_FILTERS)}")
    return fs.name, fs.options, fs.fixed_knob


def build(spec, problem, ensemble, seed, knob):
    """The benchmark registry's filter (``filterpy_diffusion.bench.FILTERS``)."""
    fixed = parse(spec)[2]
    return build_filter(spec, problem, ensemble, seed, fixed if fixed is not None else knob)


def run(spec, problem, N, seed, knob=None, abort=False):
    """One twin experiment; returns a record dict."""
    tw = twin_experiment(problem, seed, N)
    f = build(spec, problem, tw.initial_ensemble, tw.filter_seed, knob)
    K, S = problem.cycles, problem.spinup
    r = np.full(K, np.nan)
    t_cycle, t_an, error = [], [], None
    for k in range(K):
        try:
            t0 = time.perf_counter()
            f.predict()
            t1 = time.perf_counter()
            f.update(tw.observations[k])
            t2 = time.perf_counter()
        except Exception as e:       # a diverged run is a result
            error = f"{type(e).__name__} at cycle {k}: {str(e)[:200]}"
            break
        t_cycle.append(t2 - t0)
        t_an.append(t2 - t1)
        X = np.asarray(f.sigmas, dtype=float)
        if not np.all(np.isfinite(X)):
            error = f"non-finite ensemble at cycle {k}"
            break
        r[k] = rmse(X, tw.truth[k + 1], getattr(f, "weights", None))
        if abort and k >= S + 100 and np.mean(r[k - 99:k + 1]) > ABORT_RMSE:
            error = f"aborted at cycle {k}: mean RMSE of the last 100 cycles > {ABORT_RMSE}"
            break
    scored = r[S:]
    done = error is None
    return {
        "filter": spec, "problem": problem.name, "N": N, "seed": seed, "knob": knob,
        "rmse": float(scored.mean()) if done else float("nan"),
        "lost": bool(lost_track(scored, problem.lost_threshold)) if done else True,
        "error": error,
        "ms_cycle": 1e3 * float(np.mean(t_cycle)) if t_cycle else float("nan"),
        "ms_analysis": 1e3 * float(np.median(t_an)) if t_an else float("nan"),
        "h_median": float(np.median(f.h)) if getattr(f, "h", None) is not None else None,
    }


def tune(spec, problem, N, seeds, grid, log):
    """Knob with the fewest lost tuning runs, then the smallest mean RMSE."""
    best, key_best = None, None
    for g in grid:
        recs = [run(spec, problem, N, s, g, abort=True) for s in seeds]
        lost = sum(r["lost"] for r in recs)
        ok = [r["rmse"] for r in recs if not r["lost"]]
        key = (lost, np.mean(ok) if ok else np.inf)
        log(f"    tune {spec} N={N} knob={g}: lost {lost}/{len(seeds)}, rmse {key[1]:.4f}")
        if key_best is None or key < key_best:
            best, key_best = g, key
    return best


def summarise(recs):
    r = np.array([x["rmse"] for x in recs if not x["lost"]])
    lost = sum(x["lost"] for x in recs)
    allr = np.array([x["rmse"] for x in recs])
    ok = np.isfinite(allr)
    return {
        "rmse_mean": float(allr[ok].mean()) if ok.any() else float("nan"),
        "rmse_std": float(allr[ok].std(ddof=1)) if ok.sum() > 1 else 0.0,
        "rmse_mean_kept": float(r.mean()) if r.size else float("nan"),
        "lost": lost, "n": len(recs),
        "ms_cycle": float(np.mean([x["ms_cycle"] for x in recs])),
        "ms_analysis": float(np.mean([x["ms_analysis"] for x in recs])),
    }


def table(rows, title):
    print(f"\n{title}")
    print("| problem | N | filter | knob | RMSE (mean ± std) | lost | ms/cycle | ms/analysis |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        s = row["summary"]
        knob = "-" if row["knob"] is None else f"{row['knob']:g}"
        print(f"| {row['problem']} | {row['N']} | {row['filter']} | {knob} | "
              f"{s['rmse_mean']:.3f} ± {s['rmse_std']:.3f} | {s['lost']}/{s['n']} | "
              f"{s['ms_cycle']:.2f} | {s['ms_analysis']:.2f} |", flush=True)


def compact(paths, out):
    """Merge ``--out`` JSON files into one small table (``docs/data/local_tuning.json``).

    One entry per (experiment command, N, filter): RMSE per seed (None for a
    lost run), mean over the kept runs, lost count, ms per analysis.
    """
    runs = []
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        argv = data["argv"]
        cmd = "python benchmarks/localization.py " + " ".join(
            a for a in argv[1:] if not a.endswith(".json") and a != "--out")
        rows = []
        for row in data["rows"]:
            recs = row["records"]
            kept = [r["rmse"] for r in recs if not r["lost"]]
            rows.append({"problem": row["problem"], "N": row["N"], "filter": row["filter"],
                         "seeds": [r["seed"] for r in recs],
                         "rmse": [None if r["lost"] else round(r["rmse"], 4) for r in recs],
                         "rmse_mean_kept": round(float(np.mean(kept)), 4) if kept else None,
                         "lost": sum(r["lost"] for r in recs),
                         "ms_analysis": round(row["summary"]["ms_analysis"], 2)})
        runs.append({"command": cmd, "rows": rows})
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as fh:
        json.dump({"note": "tuning seeds only; ms_analysis measured on a shared, loaded machine",
                   "runs": runs}, fh, indent=1)
        fh.write("\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiment", choices=("table", "stitching", "radius", "ess", "sampler"),
                   default="table")
    p.add_argument("--dims", type=int, nargs="+", default=[40, 100])
    p.add_argument("--N", type=int, nargs="+", default=[10, 20, 40, 100])
    p.add_argument("--filters", nargs="+", default=list(DEFAULT_FILTERS))
    p.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    p.add_argument("--tuning-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--cycles", type=int, default=None)
    p.add_argument("--spinup", type=int, default=None)
    p.add_argument("--quick", action="store_true",
                   help="l96-40, N = 20, seeds 100 101, tuning seed 0, 300 cycles / 60 spin-up")
    p.add_argument("--abort", action="store_true",
                   help=f"stop a run as lost once 100 scored cycles average an RMSE above "
                        f"{ABORT_RMSE} (as tuning runs do)")
    p.add_argument("--out", default=None, help="write the records as JSON")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--compact", nargs="+", metavar="JSON",
                   help="merge --out files into --to (no runs)")
    p.add_argument("--to", default=os.path.join("docs", "data", "local_tuning.json"))
    a = p.parse_args(argv)
    if a.compact:
        compact(a.compact, a.to)
        return []
    if a.quick:
        a.dims, a.N, a.seeds, a.tuning_seeds = [40], [20], [100, 101], [0]
        a.cycles = a.cycles or 300
        a.spinup = a.spinup or 60
    log = (lambda *x: None) if a.quiet else (lambda *x: print(*x, file=sys.stderr, flush=True))

    stitchings = ["'independent'", "'shared'", "('independent','rotation')",
                  "('shared','rotation')", "('systematic','independent')",
                  "('systematic','shared')", "('systematic','ensemble')", "'coherent'"]
    # ('independent','rotation') is the named scheme 'rotation', the default.
    experiments = {
        # at the default bandwidth (median h ~ 0.99), then at ESS target 0.5
        # (h ~ 0.93) where the weights and hence the selection rule matter more
        "stitching": [f"ldkf:stitching={s}" for s in stitchings]
                     + [f"ldkf:ess_target=0.5,stitching={s}" for s in
                        ("'independent'", "('independent','rotation')", "('shared','rotation')",
                         "'coherent'")],
        "radius": [f"ldkf:radius={c}" for c in (2, 3, 4, 5, 6, 7, 8, 10)]
                  + [f"letkf:radius={c}" for c in (2, 3, 4, 5, 6, 7, 8, 10)],
        "ess": [f"ldkf:ess_target={t}" for t in (0.5, 0.7, 0.8, 0.9, 0.95)],
        "sampler": ["ldkf", "ldkf:sampler='ode'", "ldkf:sampler='ode',steps=24"],
    }
    filters = a.filters if a.experiment == "table" else experiments[a.experiment]
    rows = []
    for d in a.dims:
        problem = l96_problem(d, a.cycles, a.spinup)
        for N in a.N:
            for spec in filters:
                name, opts, fixed = parse(spec)
                knob = fixed
                if knob is None and name in GRIDS:
                    knob = tune(spec, l96_problem(d, a.cycles, a.spinup), N, a.tuning_seeds,
                                GRIDS[name], log)
                t0 = time.perf_counter()
                recs = [run(spec, problem, N, s, knob, abort=a.abort) for s in a.seeds]
                row = {"problem": problem.name, "N": N, "filter": spec, "knob": knob,
                       "records": recs, "summary": summarise(recs)}
                rows.append(row)
                log(f"  {problem.name} N={N} {spec} knob={knob}: "
                    + " ".join(f"{r['rmse']:.3f}{'(lost)' if r['lost'] else ''}" for r in recs)
                    + f"  [{time.perf_counter() - t0:.0f} s]")
    title = (f"{a.experiment}: seeds {a.seeds}, tuning seeds {a.tuning_seeds}, "
             f"cycles {problem.cycles}, spin-up {problem.spinup}")
    table(rows, title)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as fh:
            json.dump({"argv": sys.argv, "rows": rows}, fh, indent=1, default=float)
    return rows


if __name__ == "__main__":
    main()

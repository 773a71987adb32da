"""The benchmark runner: one twin experiment per run, the tuning protocol, the driver.

Protocol
--------
Every run is one twin experiment ``twin_experiment(problem, seed, N)``: the
seed fixes the truth, the observations, the initial ensemble, the filter's
generator (``twin.filter_seed``) and the reference sampler
(``twin.reference_seed``), so a run is a pure function of
``(problem, filter, N, seed, knob)`` and gives the same record on any
executor. A filter with a knob (``dkf-tuned``: bandwidth factor, ``enkf``:
multiplicative inflation, ``sir``: jitter) is run on the tuning seeds for
every value of its grid, separately per (problem, N); the knob with the
smallest mean score over the tuning seeds (RMSE, or W2 for the bimodal
problems toy-abs and l63-z) is then used on the reporting seeds. A lost or
diverged tuning run scores +inf; concretely knobs are ranked by (number of
lost or diverged tuning runs, mean score of the others), ties going to the
earlier grid value. Filters with automatic settings (``dkf``, ``dkf-ode``,
``dkf-sde``, ``dkf-exact``) are reported with no tuning at all.

Records
-------
The JSON file is ``{"meta": {...}, "records": [...], "tuning": [...],
"snapshots": [...]}``. ``meta`` holds the command line, versions of
python/numpy/scipy/filterpy/this package, the UTC date, the settings
(problems, filters with their grids, N, seeds, tuning seeds, reference
particles, executor) and the configuration of every problem. ``records``
has one entry per (problem, filter, N, reporting seed), sorted by the
order of ``--problems``, ``--filters``, then N and seed; ``tuning`` has the
same fields for every tuning run (with ``w2`` null for problems scored by
RMSE); ``snapshots`` (only with ``--plots``) holds a few analysis ensembles
of the bimodal problems. NaN (diverged runs) is written as ``null``.

Fields of a record:

=================  =================  ==================================================
field              type               meaning
=================  =================  ==================================================
problem            str                problem name (``PROBLEMS``)
filter             str                filter spec as given (``'enkf'``, ``'dkf:steps=8'``)
N                  int                ensemble size
seed               int                twin-experiment seed
knob               float or null      knob used (chosen by tuning, or fixed); null if none
tuning_seeds       list[int] or null  seeds the knob was tuned on; null if not tuned
cycles, spinup     int                cycles run and cycles discarded before scoring
rmse               float              time mean over scored cycles of the RMSE of the
                                      analysis mean (weighted mean for weighted ensembles)
spread             float              time mean of the analysis spread
w2                 float or null      mean W2 over every 10th scored cycle; null for
                                      problems without a reference
lost               bool               ``metrics.lost_track`` with the problem's threshold
diverged           bool               the filter raised or produced a non-finite ensemble
                                      (its metrics are then NaN)
error              str or null        the exception or non-finite message if diverged
analysis_time      float              median over cycles of the wall time of ``update``, s
wall_time          float              wall time of the whole run (twin, filter, scores), s
n_evaluations      int or null        score evaluations per update (median over cycles)
                                      for filters that count them
bandwidth_x        list or null       median over cycles of ``bandwidth_x`` per
                                      coordinate, for filters that have it
bandwidth_y        list or null       likewise ``bandwidth_y``
warnings           list[str]          distinct warnings raised during the run,
                                      ``"<count>x <Category>: <message>"`` (at most 5)
=================  =================  ==================================================

:func:`run_one` adds ``ensembles`` (analysis and reference ensembles at the
cycles in ``keep_cycles``) only when asked to; the driver moves them to
``snapshots``.
"""
import dataclasses
import datetime
import math
import os
import platform
import re
import time
import warnings
from collections import Counter, defaultdict

import numpy as np
import scipy

import filterpy

from .. import __version__
from ..metrics import lost_track, rmse, spread, wasserstein2
from ..particle import systematic_resample
from .executors import Progress, make_executor
from .problems import PROBLEMS, get_problem, resolve_problem
from .reference import (REFERENCE_PARTICLES, W2_EVERY, Reference, reference_job,
                        reference_posterior)
from .registry import build_filter, check_filters, parse_filter_spec
from .twin import problem_config, twin_experiment

__all__ = ["run_one", "choose_knob", "objective_name", "run_benchmark",
           "RECORD_FIELDS", "TIMING_FIELDS", "QUICK", "DEFAULT_PROBLEMS", "DEFAULT_FILTERS",
           "DEFAULT_N", "DEFAULT_SEEDS", "DEFAULT_TUNING_SEEDS", "DEFAULT_OUT"]

DEFAULT_PROBLEMS = tuple(PROBLEMS)
# dkf-ode is left out: with the current defaults it is the same filter as dkf.
DEFAULT_FILTERS = ("dkf", "dkf-sde", "dkf-exact", "dkf-tuned", "enkf", "sir")
DEFAULT_N = (10, 20, 50, 100, 250)
DEFAULT_SEEDS = (100, 101, 102, 103, 104)
DEFAULT_TUNING_SEEDS = (0, 1, 2)
DEFAULT_OUT = os.path.join("results", "bench.json")

#: ``--quick``: a small version of the comparison on real problems (minutes on 2 cores).
QUICK = {
    "problems": ("l63-full", "l63-z", "toy-abs"),
    "filters": ("dkf", "enkf", "sir"),
    "N": (20, 100),
    "seeds": (100, 101),
    "tuning_seeds": (0,),
    "max_cycles": 300,
    "max_spinup": 50,
    "out": os.path.join("results", "quick.json"),
    "plots": os.path.join("results", "quick_plots"),
}

#: Fields of every record, in output order (see the module docstring).
RECORD_FIELDS = (
    "problem", "filter", "N", "seed", "knob", "tuning_seeds", "cycles", "spinup",
    "rmse", "spread", "w2", "lost", "diverged", "error",
    "analysis_time", "wall_time", "n_evaluations", "bandwidth_x", "bandwidth_y", "warnings",
)
#: Fields that measure time and so differ between otherwise identical runs.
TIMING_FIELDS = ("analysis_time", "wall_time")


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------

def _median_vector(vs):
    if not vs:
        return None
    return [float(v) for v in np.median(np.stack([np.atleast_1d(np.asarray(v, float)) for v in vs]),
                                        axis=0)]


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _summarise_warnings(caught, limit=5):
    # numbers replaced by '#', so one warning repeated with new values counts once
    counts = Counter(f"{w.category.__name__}: {_NUMBER.sub('#', str(w.message).splitlines()[0])[:160]}"
                     for w in caught)
    return [f"{n}x {msg}" for msg, n in counts.most_common(limit)]


def _uniform_sample(X, w, rng):
    # an unweighted N-point version of a weighted ensemble, for W2
    if w is None or np.allclose(w, w[0]):
        return X
    return X[systematic_resample(np.asarray(w, float), rng, X.shape[0])]


def run_one(problem_name, filter_spec, N, seed, cycles=None, spinup=None, knob=None, *,
            reference=None, compute_w2=True, ref_particles=REFERENCE_PARTICLES, cache_dir=None,
            keep_cycles=None, tuning_seeds=None):
    """Run one twin experiment with one filter and score it.

    Parameters
    ----------
    problem_name : str
        A key of :data:`~filterpy_diffusion.bench.problems.PROBLEMS`.
    filter_spec : str or FilterSpec
        A :data:`FILTERS` name with optional options (:func:`parse_filter_spec`).
    N : int
        Ensemble size.
    seed : int
        Twin-experiment seed (truth, observations, initial ensemble, filter
        and reference streams all derive from it).
    cycles, spinup : int, optional
        Overrides of the problem's cycles and spin-up (:func:`resolve_problem`).
    knob : float, optional
        The knob of a tuned filter (required for them unless fixed in the spec).
    reference : Reference, optional
        Precomputed reference (must hold samples for ``N``); computed (and
        cached) here when needed and not given.
    compute_w2 : bool, default True
        Score W2 for problems with a reference (tuning runs of problems
        scored by RMSE skip it).
    ref_particles : int
        Particles of the bootstrap reference, when computed here.
    cache_dir : str, optional
        Reference cache directory.
    keep_cycles : sequence of int, optional
        Keep the analysis ensemble (and the reference sample, if any) at
        these cycles in an extra ``ensembles`` field.
    tuning_seeds : sequence of int, optional
        Recorded as the record's ``tuning_seeds`` (the driver's bookkeeping).

    Returns
    -------
    record : dict
        The fields of :data:`RECORD_FIELDS` (module docstring), plus
        ``ensembles`` when ``keep_cycles`` is given.
    """
    t_start = time.perf_counter()
    problem = resolve_problem(problem_name, cycles, spinup)
    spec = parse_filter_spec(filter_spec) if isinstance(filter_spec, str) else filter_spec
    N, seed = int(N), int(seed)
    if spec.fixed_knob is not None and knob is None:
        knob = spec.fixed_knob
    knob = None if knob is None else float(knob)
    twin = twin_experiment(problem, seed, N)

    with_w2 = compute_w2 and problem.reference is not None
    if with_w2:
        if reference is None or N not in reference.samples:
            reference = reference_posterior(problem, seed, [N], ref_particles, cache_dir)
        ref_cycles = {int(k): j for j, k in enumerate(reference.cycles)}
        ref_samples = reference.samples[N]
    keep = {int(k) for k in (keep_cycles or ())}
    kept = {}

    # Constructor errors are configuration mistakes, not divergence: let them raise.
    f = build_filter(spec, problem, twin.initial_ensemble, twin.filter_seed, knob)

    K = problem.cycles
    rmses = np.full(K, np.nan)
    spreads = np.full(K, np.nan)
    w2s = []
    times, evals, bws_x, bws_y = [], [], [], []
    score_rng = np.random.default_rng([twin.filter_seed, 1])
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(K):
            try:
                f.predict()
                t0 = time.perf_counter()
                f.update(twin.observations[k])
                times.append(time.perf_counter() - t0)
            except Exception as e:      # a diverged run is a result, not a crash
                error = f"{type(e).__name__} at cycle {k}: {str(e)[:300]}"
                break
            X = np.asarray(f.sigmas, dtype=float)
            if not np.all(np.isfinite(X)):
                error = f"non-finite analysis ensemble at cycle {k}"
                break
            w = getattr(f, "weights", None)
            rmses[k] = rmse(X, twin.truth[k + 1], w)
            spreads[k] = spread(X, w)
            if getattr(f, "n_evaluations", None) is not None:
                evals.append(f.n_evaluations)
            if getattr(f, "bandwidth_x", None) is not None:
                bws_x.append(f.bandwidth_x)
            if getattr(f, "bandwidth_y", None) is not None:
                bws_y.append(f.bandwidth_y)
            if (with_w2 and k in ref_cycles) or k in keep:
                Xu = _uniform_sample(X, w, score_rng)
                if with_w2 and k in ref_cycles:
                    w2s.append(wasserstein2(Xu, ref_samples[ref_cycles[k]]))
                if k in keep:
                    kept[k] = {"ensemble": Xu.tolist(),
                               "reference": (ref_samples[ref_cycles[k]].tolist()
                                             if with_w2 and k in ref_cycles else None)}

    diverged = error is not None
    scored = rmses[problem.spinup:]
    nan = float("nan")
    record = {
        "problem": problem.name,
        "filter": spec.spec,
        "N": N,
        "seed": seed,
        "knob": knob,
        "tuning_seeds": None if tuning_seeds is None else [int(s) for s in tuning_seeds],
        "cycles": int(K),
        "spinup": int(problem.spinup),
        "rmse": nan if diverged else float(scored.mean()),
        "spread": nan if diverged else float(spreads[problem.spinup:].mean()),
        "w2": (nan if diverged else float(np.mean(w2s))) if with_w2 else None,
        "lost": bool(lost_track(scored, problem.lost_threshold)),
        "diverged": diverged,
        "error": error,
        "analysis_time": float(np.median(times)) if times else nan,
        "wall_time": 0.0,
        "n_evaluations": int(np.median(evals)) if evals else None,
        "bandwidth_x": _median_vector(bws_x),
        "bandwidth_y": _median_vector(bws_y),
        "warnings": _summarise_warnings(caught),
    }
    if keep_cycles is not None:
        record["ensembles"] = {str(k): v for k, v in sorted(kept.items())}
    record["wall_time"] = time.perf_counter() - t_start
    return record


# ---------------------------------------------------------------------------
# Tuning
# ---------------------------------------------------------------------------

def objective_name(problem):
    """The tuning score of a problem: 'w2' for the bimodal problems, else 'rmse'."""
    return "w2" if problem.bimodal else "rmse"


def choose_knob(grid, records, objective):
    """The knob minimising the mean tuning score; lost or diverged runs count as +inf.

    Parameters
    ----------
    grid : sequence of float
        Knob values in preference order (ties go to the earlier one).
    records : iterable of dict
        Tuning records with ``knob``, ``lost``, ``diverged`` and the objective.
    objective : {'rmse', 'w2'}

    Returns
    -------
    knob : float
        Ranked by (number of bad runs, mean score of the others): with at
        least one knob free of bad runs this is exactly "minimise the mean,
        bad runs = +inf"; when every knob has bad runs it still prefers the
        fewest.
    """
    by = defaultdict(list)
    for r in records:
        by[float(r["knob"])].append(r)

    def rank(i_knob):
        i, g = i_knob
        runs = by.get(float(g), [])
        vals = [r[objective] for r in runs]
        bad = [r["lost"] or r["diverged"] or v is None or not np.isfinite(v) for r, v in zip(runs, vals)]
        good = [v for v, b in zip(vals, bad) if not b]
        if not runs:
            return (math.inf, math.inf, i)
        return (sum(bad), float(np.mean(good)) if good else math.inf, i)

    return float(min(enumerate(grid), key=rank)[1])


# ---------------------------------------------------------------------------
# The benchmark driver
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class _Job:
    kind: str                 # 'ref', 'tune' or 'report'
    problem: str
    seed: int
    filter: str = None
    N: int = None
    knob: float = None

    @property
    def label(self):
        if self.kind == "ref":
            return f"reference {self.problem} seed={self.seed}"
        k = "" if self.knob is None else f" knob={self.knob:g}"
        return f"{self.kind} {self.problem} {self.filter} N={self.N} seed={self.seed}{k}"


def _order_key(problems, filters):
    pi = {p: i for i, p in enumerate(problems)}
    fi = {f: i for i, f in enumerate(filters)}
    return lambda r: (pi[r["problem"]], fi[r["filter"]], r["N"], r["seed"],
                      -math.inf if r["knob"] is None else r["knob"])


def run_benchmark(problems=DEFAULT_PROBLEMS, filters=DEFAULT_FILTERS, Ns=DEFAULT_N,
                  seeds=DEFAULT_SEEDS, tuning_seeds=DEFAULT_TUNING_SEEDS, cycles=None,
                  spinup=None, max_cycles=None, max_spinup=None,
                  ref_particles=REFERENCE_PARTICLES, cache_dir=None, workers=None,
                  scheduler=None, snapshots=False, progress=True, on_job=None):
    """Run the tuning protocol and the reporting runs; return the JSON document.

    Parameters
    ----------
    problems : sequence of str
    filters : sequence of str
        Filter specs (:func:`parse_filter_spec`).
    Ns, seeds, tuning_seeds : sequence of int
        Ensemble sizes, reporting seeds and tuning seeds.
    cycles, spinup : int, optional
        Overrides for every problem (:func:`resolve_problem`).
    max_cycles, max_spinup : int, optional
        Caps instead of overrides (``--quick``): toy-abs keeps its 100 cycles.
    ref_particles : int
        Particles of the Lorenz-63 reference filter.
    cache_dir : str, optional
        Reference cache directory.
    workers : int, optional
        Local processes (1: in-process); default ``os.cpu_count()``.
    scheduler : str, optional
        Dask scheduler address; overrides ``workers``.
    snapshots : bool
        Keep analysis ensembles of the bimodal problems (first reporting
        seed, largest N, the three W2 cycles where the reference is most
        evenly split between the mirror modes) for the posterior plots.
    progress : bool
        Show progress on stderr.
    on_job : callable ``(job_kind, problem, filter, N, seed, knob) -> None``, optional
        Called in this process for every job as it completes (a hook for tests).

    Returns
    -------
    dict
        ``{"meta", "records", "tuning", "snapshots"}`` (module docstring).
    """
    problems, Ns = list(problems), sorted({int(n) for n in Ns})
    seeds, tuning_seeds = [int(s) for s in seeds], [int(s) for s in tuning_seeds]
    if not (problems and filters and Ns and seeds):
        raise ValueError("need at least one problem, filter, N and reporting seed")
    specs = {f: parse_filter_spec(f) for f in filters}
    if len(specs) != len(list(filters)):
        raise ValueError(f"duplicate filter specs in {list(filters)}")
    tuned = [f for f, s in specs.items() if s.tuned]
    if tuned and not tuning_seeds:
        raise ValueError(f"filters {tuned} need tuning seeds")
    overlap = sorted(set(seeds) & set(tuning_seeds)) if tuned else []
    if overlap:
        raise ValueError(f"reporting seeds {overlap} are also tuning seeds; the protocol keeps them apart")

    probs = {}
    for name in problems:
        base = get_problem(name)
        c, s = cycles, spinup
        if max_cycles is not None and c is None:
            c = min(base.cycles, int(max_cycles))
        if max_spinup is not None and s is None:
            s = min(base.spinup, int(max_spinup))
        probs[name] = resolve_problem(name, c, s)
    # Fail on a typo in a spec or an unsupported problem now, not after hours of other runs.
    check_filters(problems, list(specs.values()), Ns[0])

    def pc(name):
        return probs[name].cycles, probs[name].spinup

    # --- jobs
    ref_jobs, tune_jobs, report_jobs = [], [], []
    for p in problems:
        prob = probs[p]
        need_ref_seeds = set()
        if prob.reference is not None:
            need_ref_seeds.update(seeds)
            if prob.bimodal and tuned:
                need_ref_seeds.update(tuning_seeds)
        ref_jobs += [_Job("ref", p, s) for s in sorted(need_ref_seeds)]
        for f in filters:
            for N in Ns:
                if specs[f].tuned:
                    tune_jobs += [_Job("tune", p, s, f, N, g)
                                  for s in tuning_seeds for g in specs[f].grid]
                report_jobs += [_Job("report", p, s, f, N) for s in seeds]

    # snapshot (problem, seed, N) for the posterior plots
    snap_N = Ns[-1]
    snap_seed = seeds[0]
    snap_problems = {p for p in problems if probs[p].bimodal} if snapshots else set()

    executor = make_executor(workers, scheduler)
    bar = Progress(len(ref_jobs) + len(tune_jobs) + len(report_jobs), progress)
    refs, knobs = {}, {}
    tune_records = defaultdict(list)
    n_tune_left = Counter((j.problem, j.filter, j.N) for j in tune_jobs)
    records, tuning, snaps = [], [], []
    waiting = ref_jobs + tune_jobs + report_jobs
    pending = {}

    def needs_ref(job):
        prob = probs[job.problem]
        if prob.reference is None:
            return False
        return job.kind == "report" or prob.bimodal

    def ready(job):
        if job.kind == "ref":
            return True
        if needs_ref(job) and (job.problem, job.seed) not in refs:
            return False
        if job.kind == "report" and specs[job.filter].tuned and (job.problem, job.filter, job.N) not in knobs:
            return False
        return True

    def submit(job):
        c, s = pc(job.problem)
        if job.kind == "ref":
            return executor.submit(reference_job, job.problem, c, s, job.seed, Ns,
                                   ref_particles, cache_dir)
        ref = None
        if needs_ref(job):
            full = refs[(job.problem, job.seed)]
            ref = Reference(full.cycles, {job.N: full.samples[job.N]}, full.balance)
        kw = dict(reference=ref, compute_w2=needs_ref(job), ref_particles=ref_particles,
                  cache_dir=cache_dir)
        if job.kind == "tune":
            return executor.submit(run_one, job.problem, job.filter, job.N, job.seed, c, s,
                                   job.knob, tuning_seeds=None, **kw)
        spec = specs[job.filter]
        if spec.tuned:
            job.knob = knobs[(job.problem, job.filter, job.N)]
        keep = None
        if job.problem in snap_problems and job.N == snap_N and job.seed == snap_seed:
            full = refs[(job.problem, job.seed)]
            best = np.argsort(-full.balance, kind="stable")[:3]
            keep = sorted(int(full.cycles[i]) for i in best)
        return executor.submit(run_one, job.problem, job.filter, job.N, job.seed, c, s, job.knob,
                               keep_cycles=keep, tuning_seeds=tuning_seeds if spec.tuned else None,
                               **kw)

    try:
        while waiting or pending:
            still = []
            for job in waiting:
                if ready(job):
                    pending[submit(job)] = job
                else:
                    still.append(job)
            waiting = still
            if not pending:
                raise RuntimeError(f"benchmark scheduler stalled with {len(waiting)} jobs waiting")
            for fut in executor.wait_first(list(pending)):
                job = pending.pop(fut)
                result = fut.result()
                bar.step(job.label)
                if on_job is not None:
                    on_job(job.kind, job.problem, job.filter, job.N, job.seed, job.knob)
                if job.kind == "ref":
                    refs[(job.problem, job.seed)] = result
                elif job.kind == "tune":
                    key = (job.problem, job.filter, job.N)
                    tune_records[key].append(result)
                    tuning.append(result)
                    n_tune_left[key] -= 1
                    if n_tune_left[key] == 0:
                        knobs[key] = choose_knob(specs[job.filter].grid, tune_records[key],
                                                 objective_name(probs[job.problem]))
                else:
                    ens = result.pop("ensembles", None)
                    if ens is not None:
                        snaps.append({"problem": job.problem, "filter": job.filter, "N": job.N,
                                      "seed": job.seed, "cycles": [int(k) for k in ens],
                                      "ensembles": [ens[k]["ensemble"] for k in ens],
                                      "reference": [ens[k]["reference"] for k in ens]})
                    records.append(result)
    finally:
        bar.close()
        executor.close()

    key = _order_key(problems, list(filters))
    records.sort(key=key)
    tuning.sort(key=key)
    snaps.sort(key=lambda s: (problems.index(s["problem"]), list(filters).index(s["filter"])))
    meta = {
        "command": None,
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "scipy": scipy.__version__, "filterpy": filterpy.__version__,
                     "filterpy_diffusion": __version__},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "executor": executor.description,
        "settings": {"problems": problems, "filters": list(filters),
                     "grids": {f: (list(s.grid) if s.tuned else None) for f, s in specs.items()},
                     "knob_names": {f: s.entry.knob_name for f, s in specs.items()},
                     "N": Ns, "seeds": seeds, "tuning_seeds": tuning_seeds,
                     "ref_particles": ref_particles, "w2_every": W2_EVERY},
        "problems": {p: problem_config(probs[p]) for p in problems},
    }
    return {"meta": meta, "records": records, "tuning": tuning, "snapshots": snaps}


"""Our filters beside DAPPER's methods on DAPPER's published twin experiments.

For a DAPPER HMM module (``Lorenz63.sakov2012``, ``Lorenz96.sakov2008``,
...), every seed simulates one truth and one observation sequence
(``dapper.set_seed(seed)``, ``HMM.simulate()``); every method then
assimilates those same ``xx, yy``, each starting from the same DAPPER
generator state (``set_seed(seed + 10**6)``), so all methods of a seed share
the truth and the initial-ensemble draw. Methods:

* ``DiffusionKDE``, ``LocalDiffusionKDE``: ours, defaults
  (:mod:`filterpy_diffusion.dapper`); the local one only where
  ``HMM.Obs.localizer`` is set;
* ``EnKF``: ``EnKF('Sqrt', N, infl=1.02, rot=True)``;
* ``EnKF_N``: ``EnKF_N(N, rot=True)``;
* ``LETKF``: ``LETKF(N, infl=1.02, rot=True, loc_rad=4)`` (needs a localizer);
* ``LETKF_N``: ``LETKF(N, rot=True, loc_rad=4, xN=1.0)``, the LETKF with
  DAPPER's local finite-size inflation instead of a tuned factor;
* ``PartFilt``: ``PartFilt(N, reg=2.4, NER=0.3)``.

``--methods`` takes these names; ``NAME@N1,N2`` runs a method at those N
only. ``--variant LABEL=KEY:VALUE,...`` adds one of ours with options (a
``DiffusionKDE``, or a ``LocalDiffusionKDE`` with ``local:1``; values are
Python literals, ``Policy(...)`` allowed), e.g.
``--variant c3=policy:Policy(members_per_dim=3.0)`` or
``--variant letkfN=local:1,kernel:'etkf'``: how the tuning runs of
docs/design-log.md were made. It prints DAPPER's table of every run (``xpList.tabulate_avrgs``:
rmse.a and rmv.a with DAPPER's confidence from the time series' auto-
correlation, plus wall and CPU time of ``assimilate``), then the mean over
seeds per method and N (with the standard error over seeds), and writes a
small JSON. On a shared machine the CPU time (``time.process_time``; run
with one BLAS thread) is the steadier measure of cost.

Commands (the tables of docs/dapper.md; 1 thread each)::

    export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
    python benchmarks/dapper_compare.py --hmm Lorenz63.sakov2012 --N 10 20 50 100 \\
        --seeds 100 101 102 --cycles 500 --json docs/data/dapper_sakov2012.json
    python benchmarks/dapper_compare.py --hmm Lorenz96.sakov2008 --N 20 40 \\
        --seeds 100 101 102 --cycles 500 --burnin 5 \\
        --methods DiffusionKDE LocalDiffusionKDE EnKF EnKF_N LETKF PartFilt@40 \\
        --json docs/data/dapper_sakov2008.json
    python benchmarks/dapper_compare.py --markdown docs/data/dapper_sakov2012.json
"""
import argparse
import importlib
import json
import os
import sys
import time

import numpy as np

# Batch runs: no live plotting (and no warning about the backend at import).
os.environ.setdefault("DAPPER_LIVEPLOTTING", "false")
try:
    import dapper as dpr
    import dapper.da_methods as da
    import dapper.mods as modelling
    import dapper.tools.progressbar as _pb
except ImportError:
    sys.exit("benchmarks/dapper_compare.py needs DAPPER (Python >= 3.12): "
             "pip install -e '.[dapper]'")
from tabulate import tabulate

from filterpy_diffusion.dapper import DiffusionKDE, LocalDiffusionKDE

#: The DAPPER configurations compared.
METHODS = {
    "DiffusionKDE": lambda N: DiffusionKDE(N=N),
    "LocalDiffusionKDE": lambda N: LocalDiffusionKDE(N=N),
    # Opt-in analyses: the ETKF core with
    # finite-size inflation, and the EnKF-PF bridge.
    "DiffusionKDE-etkf": lambda N: DiffusionKDE(N=N, kernel="etkf"),
    "DiffusionKDE-bridge": lambda N: DiffusionKDE(N=N, kernel="bridge"),
    "EnKF": lambda N: da.EnKF("Sqrt", N=N, infl=1.02, rot=True),
    "EnKF_N": lambda N: da.EnKF_N(N=N, rot=True),
    "LETKF": lambda N: da.LETKF(N=N, infl=1.02, rot=True, loc_rad=4),
    "LETKF_N": lambda N: da.LETKF(N=N, rot=True, loc_rad=4, xN=1.0),
    "PartFilt": lambda N: da.PartFilt(N=N, reg=2.4, NER=0.3),
}
NEEDS_LOCALIZER = {"LocalDiffusionKDE", "LETKF", "LETKF_N"}
#: Offset of the seed every method starts its assimilation from.
METHOD_SEED_OFFSET = 10 ** 6


def add_variant(spec):
    """``'LABEL=KEY:VALUE,...'`` -> a METHODS entry of ours with those options; returns LABEL."""
    from filterpy_diffusion.policy import Policy
    label, _, opts = spec.partition("=")
    if not label or label in METHODS:
        raise SystemExit(f"--variant needs a new LABEL=..., got {spec!r}")
    kw = {}
    for part in filter(None, opts.split(",")):
        key, _, value = part.partition(":")
        try:
            kw[key] = eval(value, {"__builtins__": {}, "Policy": Policy, "inf": float("inf")})
        except Exception as exc:
            raise SystemExit(f"--variant {spec!r}: cannot read {key}={value!r} ({exc})") from None
    cls = LocalDiffusionKDE if kw.pop("local", False) else DiffusionKDE
    METHODS[label] = lambda N: cls(N=N, **kw)
    if cls is LocalDiffusionKDE:
        NEEDS_LOCALIZER.add(label)
    return label


def load_hmm(name, cycles=None, burnin=None):
    """A copy of ``dapper.mods.<name>.HMM``, shortened to ``cycles`` observation cycles."""
    HMM = importlib.import_module(f"dapper.mods.{name}").HMM.copy()
    if not isinstance(HMM.Obs, modelling.TimeDependentOperator):
        # DAPPER 1.8.1 work-around: some modules (Lorenz63.wiljes2017) assign a
        # plain Operator to HMM.Obs after construction, and HMM.Obs(ko) then
        # calls the observation model on ko (HMM.simulate() crashes).
        print(f"note: {name} sets HMM.Obs to a plain Operator; wrapping it in "
              f"dapper.mods.TimeDependentOperator", file=sys.stderr)
        HMM.Obs = modelling.TimeDependentOperator(HMM.Obs)
    if cycles is not None:
        HMM.tseq.Ko = int(cycles)
    if burnin is not None:
        HMM.tseq.BurnIn = float(burnin)
    return HMM


def parse_methods(specs, Ns):
    """``['EnKF', 'PartFilt@40']`` -> ``{'EnKF': Ns, 'PartFilt': [40]}``."""
    out = {}
    for spec in specs:
        name, _, ns = spec.partition("@")
        if name not in METHODS:
            raise SystemExit(f"unknown method {name!r}; choose from {sorted(METHODS)}")
        out[name] = [int(n) for n in ns.split(",")] if ns else list(Ns)
    return out


def _scalar(avrgs, key):
    """(value, confidence) of a DAPPER average such as 'rmse.a'."""
    uq = avrgs
    for part in key.split("."):
        uq = getattr(uq, part)
    return round(float(uq.val), 5), round(float(uq.prec), 5)


def run(hmm_name, Ns, seeds, methods, cycles, burnin=None, progress=False):
    """Run every (method, N, seed); returns (xps, records)."""
    _pb.disable_progbar = not progress
    dpr.rc.liveplotting = False
    HMM = load_hmm(hmm_name, cycles, burnin)
    has_localizer = getattr(HMM.Obs(0), "localizer", None) is not None
    xps, records = dpr.xpList(), []
    for seed in seeds:
        dpr.set_seed(seed)
        xx, yy = HMM.simulate()
        for name, method_Ns in methods.items():
            if name in NEEDS_LOCALIZER and not has_localizer:
                continue
            for N in method_Ns:
                xp = METHODS[name](N)
                xp.seed = seed
                dpr.set_seed(seed + METHOD_SEED_OFFSET)
                t0, c0 = time.perf_counter(), time.process_time()
                xp.assimilate(HMM, xx, yy, fail_gently=True)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                xp.wall, xp.cpu = round(wall, 2), round(cpu, 2)
                rec = {"method": name, "N": N, "seed": seed, "time": round(wall, 3),
                       "cpu": round(cpu, 3)}
                if getattr(xp, "crashed", False):
                    rec.update(crashed=True)
                else:
                    xp.stats.average_in_time()
                    rec.update(zip(("rmse_a", "rmse_a_conf"), _scalar(xp.avrgs, "rmse.a")))
                    rec.update(zip(("rmv_a", "rmv_a_conf"), _scalar(xp.avrgs, "rmv.a")))
                    xp.stats = None        # keep memory small; avrgs stay
                xps.append(xp)
                records.append(rec)
                print(f"{name:18s} N={N:<4d} seed={seed}: rmse.a "
                      f"{rec.get('rmse_a', float('nan')):.4f}  {wall:.1f} s", file=sys.stderr)
    return xps, records


def summarise(records):
    """Mean over seeds per (method, N): rmse.a, rmv.a, their standard errors, time."""
    rows = {}
    for r in records:
        rows.setdefault((r["method"], r["N"]), []).append(r)
    out = []
    for (name, N), rs in rows.items():
        ok = [r for r in rs if not r.get("crashed")]
        row = {"method": name, "N": N, "seeds": len(rs), "crashed": len(rs) - len(ok),
               "time": round(float(np.mean([r["time"] for r in rs])), 3),
               "cpu": round(float(np.mean([r["cpu"] for r in rs])), 3)}
        for key in ("rmse_a", "rmv_a"):
            v = np.array([r[key] for r in ok])
            row[key] = round(float(v.mean()), 4) if v.size else None
            row[key + "_se"] = round(float(v.std(ddof=1) / np.sqrt(v.size)), 4) if v.size > 1 else None
        out.append(row)
    return sorted(out, key=lambda r: (r["N"], list(METHODS).index(r["method"])))  # variants last


def markdown(doc):
    """The means of a results JSON as a Markdown table (rows by N, then method)."""
    lines = ["| N | method | rmse.a | rmv.a | wall [s] | CPU [s] |", "|---|---|---|---|---|---|"]
    for r in doc["means"]:
        def fmt(key):
            if r[key] is None:
                return "-"
            return f"{r[key]:.3f}" + (f" ± {r[key + '_se']:.3f}" if r[key + "_se"] is not None else "")
        lost = f" ({r['crashed']} crashed)" if r["crashed"] else ""
        lines.append(f"| {r['N']} | {r['method']}{lost} | {fmt('rmse_a')} | {fmt('rmv_a')} | "
                     f"{r['time']:.1f} | {r['cpu']:.1f} |")
    return "\n".join(lines)


def write_json(path, doc):
    """Small JSON: one line per record."""
    def block(rows):
        return "[\n  " + ",\n  ".join(json.dumps(r) for r in rows) + "\n ]"
    head = {k: v for k, v in doc.items() if k not in ("runs", "means")}
    text = json.dumps(head)[:-1] + ',\n "runs": ' + block(doc["runs"]) + ',\n "means": ' \
        + block(doc["means"]) + "\n}\n"
    json.loads(text)     # a check that it is valid
    with open(path, "w") as fh:
        fh.write(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hmm", default="Lorenz63.sakov2012",
                   help="DAPPER module under dapper.mods holding HMM (default Lorenz63.sakov2012)")
    p.add_argument("--N", type=int, nargs="+", default=[10, 20, 50, 100])
    p.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102],
                   help="truth seeds (DAPPER refuses 0)")
    p.add_argument("--cycles", type=int, default=500, help="observation cycles (HMM.tseq.Ko)")
    p.add_argument("--burnin", type=float, default=None,
                   help="burn-in time (HMM.tseq.BurnIn; default the module's)")
    p.add_argument("--methods", nargs="*", default=None,
                   help="method names, NAME@N1,N2 for selected N only (default all; "
                        "none with --variant)")
    p.add_argument("--variant", nargs="+", default=[], metavar="LABEL=KEY:VALUE,...",
                   help="extra runs of ours with options (run at every --N)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--progress", action="store_true", help="show DAPPER's progress bars")
    p.add_argument("--markdown", metavar="JSON", default=None,
                   help="print the means of a results JSON as a Markdown table and exit")
    a = p.parse_args(argv)
    if a.markdown:
        with open(a.markdown) as fh:
            print(markdown(json.load(fh)))
        return
    if 0 in a.seeds:
        p.error("DAPPER's set_seed refuses seed 0")

    labels = [add_variant(v) for v in a.variant]
    names = a.methods if a.methods is not None else ([] if labels else list(METHODS))
    methods = parse_methods(names, a.N)
    methods.update({label: list(a.N) for label in labels})
    xps, records = run(a.hmm, a.N, a.seeds, methods, a.cycles, a.burnin, a.progress)
    HMM = load_hmm(a.hmm, a.cycles, a.burnin)
    print(f"{a.hmm}: {HMM.tseq}")
    if any("rmse_a" in r for r in records):
        print(xps.tabulate_avrgs(["rmse.a", "rmv.a"], colorize=False))
    else:    # DAPPER's table raises when no run has the statistic; ours below still reports
        print("every run crashed")
    summary = summarise(records)
    print("\nMean over seeds (+- standard error over seeds), wall and CPU time per run:")
    print(tabulate([[r["method"], r["N"], r["rmse_a"], r["rmse_a_se"], r["rmv_a"], r["rmv_a_se"],
                     r["time"], r["cpu"], r["crashed"]] for r in summary],
                   headers=["method", "N", "rmse.a", "+-", "rmv.a", "+-", "wall [s]", "cpu [s]",
                            "crashed"]))
    if a.json:
        doc = {"hmm": a.hmm, "cycles": a.cycles, "burnin": HMM.tseq.BurnIn,
               "seeds": a.seeds, "dapper": dpr.__version__, "runs": records, "means": summary}
        write_json(a.json, doc)
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()

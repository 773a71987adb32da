"""Command line of the benchmark: ``python -m filterpy_diffusion.bench``.

Command line
------------
::

    python -m filterpy_diffusion.bench --quick                  # a few minutes on 2 cores
    python -m filterpy_diffusion.bench [run] \\
        --problems l63-full l63-z ... --filters dkf enkf sir ... \\
        --N 10 20 50 100 250 --seeds 100 101 102 103 104 --tuning-seeds 0 1 2 \\
        [--cycles C] [--spinup S] [--ref-particles 20000] [--cache-dir DIR] \\
        [--out results/bench.json] [--plots results/plots] \\
        [--workers k | --scheduler ADDRESS] [--markdown] [--no-progress]
    python -m filterpy_diffusion.bench table results/bench.json [--markdown]
    python -m filterpy_diffusion.bench plot results/bench.json --plots results/plots

``--quick`` runs l63-full, l63-z and toy-abs with dkf, enkf and sir at
N = 20, 100 on reporting seeds 100, 101 and tuning seed 0, with at most 300
cycles (spin-up at most 50), and writes ``results/quick.json`` and plots in
``results/quick_plots`` unless ``--out``/``--plots`` are given; any explicit
option overrides its quick default.
``--cycles`` alone scales every problem's spin-up in proportion;
``--spinup`` alone keeps the problem's cycles.
Without ``--problems`` every problem that all the requested filters support
is run (the localized ``ldkf`` and ``letkf`` only run on the Lorenz-96
problems; the others are left out with a note on stderr). Before any run
every filter is built once on every problem (:func:`check_filters`): an
unsupported problem or a bad option stops the command with a one-line
message.
"""
import argparse
import os
import sys
import time

from .problems import PROBLEMS
from .reference import REFERENCE_PARTICLES
from .registry import FILTERS, check_filters, local_problems, parse_filter_spec
from .report import format_tables, make_plots, read_results, write_json
from .runner import (DEFAULT_FILTERS, DEFAULT_N, DEFAULT_OUT, DEFAULT_PROBLEMS, DEFAULT_SEEDS,
                     DEFAULT_TUNING_SEEDS, QUICK, run_benchmark)

__all__ = ["main"]

PROG = "python -m filterpy_diffusion.bench"


def _run_parser():
    p = argparse.ArgumentParser(
        prog=PROG + " [run]",
        description="Twin-experiment benchmark (filterpy_diffusion.bench): tune baselines on the tuning "
                    "seeds, run every filter on the reporting seeds, print tables, write JSON.")
    p.add_argument("--problems", nargs="+", metavar="P",
                   help=f"default: all of {list(PROBLEMS)} that every filter supports "
                        f"(ldkf, letkf: only {local_problems()})")
    p.add_argument("--filters", nargs="+", metavar="SPEC",
                   help=f"filter specs name[:key=value,...]; names {list(FILTERS)}; "
                        f"default {list(DEFAULT_FILTERS)}")
    p.add_argument("--N", nargs="+", type=int, help=f"ensemble sizes (default {list(DEFAULT_N)})")
    p.add_argument("--seeds", nargs="+", type=int,
                   help=f"reporting seeds (default {list(DEFAULT_SEEDS)})")
    p.add_argument("--tuning-seeds", nargs="+", type=int,
                   help=f"tuning seeds (default {list(DEFAULT_TUNING_SEEDS)})")
    p.add_argument("--cycles", type=int, help="override every problem's cycles (quick runs)")
    p.add_argument("--spinup", type=int, help="override every problem's spin-up")
    p.add_argument("--ref-particles", type=int, default=REFERENCE_PARTICLES,
                   help="particles of the Lorenz-63 reference filter (default %(default)s)")
    p.add_argument("--cache-dir", help="cache references here as .npz")
    p.add_argument("--out", help=f"JSON output (default {DEFAULT_OUT}; --quick: {QUICK['out']})")
    p.add_argument("--plots", help="directory for PNG plots (needs matplotlib)")
    p.add_argument("--workers", type=int, help="local processes, 1 = in-process (default: cpu count)")
    p.add_argument("--scheduler", help="Dask scheduler address (needs the 'dask' extra)")
    p.add_argument("--quick", action="store_true",
                   help="small comparison on real problems, a few minutes on 2 cores")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    return p


def _cmd_run(argv, command):
    a = _run_parser().parse_args(argv)
    q = QUICK if a.quick else {}
    filters = a.filters or q.get("filters", DEFAULT_FILTERS)
    try:
        specs = [parse_filter_spec(f) for f in filters]
    except ValueError as e:
        raise SystemExit(str(e))
    problems = a.problems or q.get("problems")
    if problems is None:
        # every problem that every filter supports (the local filters: Lorenz-96 only)
        problems = [p for p in DEFAULT_PROBLEMS if all(s.entry.supported(PROBLEMS[p]) for s in specs)]
        skipped = [p for p in DEFAULT_PROBLEMS if p not in problems]
        if not problems:
            raise SystemExit(f"no problem is supported by all of {list(filters)}; "
                             "run them separately or give --problems")
        if skipped:
            names = [s.spec for s in specs if not all(s.entry.supported(PROBLEMS[p]) for p in skipped)]
            print(f"note: --problems not given; leaving out {skipped} (not supported by {names})",
                  file=sys.stderr)
    for name in problems:
        if name not in PROBLEMS:
            raise SystemExit(f"unknown problem {name!r}; choose from {list(PROBLEMS)}")
    Ns = a.N or q.get("N", DEFAULT_N)
    try:
        check_filters(problems, specs, min(Ns))
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    out = a.out or q.get("out", DEFAULT_OUT)
    plots = a.plots or q.get("plots")
    t0 = time.perf_counter()
    doc = run_benchmark(
        problems=problems, filters=filters, Ns=Ns,
        seeds=a.seeds or q.get("seeds", DEFAULT_SEEDS),
        tuning_seeds=(a.tuning_seeds if a.tuning_seeds is not None
                      else q.get("tuning_seeds", DEFAULT_TUNING_SEEDS)),
        cycles=a.cycles, spinup=a.spinup,
        max_cycles=q.get("max_cycles"), max_spinup=q.get("max_spinup"),
        ref_particles=a.ref_particles, cache_dir=a.cache_dir, workers=a.workers,
        scheduler=a.scheduler, snapshots=bool(plots), progress=not a.no_progress)
    doc["meta"]["command"] = command
    doc["meta"]["elapsed_seconds"] = round(time.perf_counter() - t0, 1)
    write_json(doc, out)
    print(format_tables(doc, markdown=a.markdown))
    print(f"{len(doc['records'])} records written to {out} "
          f"({doc['meta']['elapsed_seconds']:.0f} s, {doc['meta']['executor']})")
    if plots:
        for path in make_plots(doc, plots):
            print(f"plot: {path}")
    return 0


def _cmd_table(argv):
    p = argparse.ArgumentParser(prog=PROG + " table",
                                description="Re-print the tables of benchmark JSON files.")
    p.add_argument("json", nargs="+")
    p.add_argument("--markdown", action="store_true", help="GitHub Markdown tables")
    a = p.parse_args(argv)
    doc = read_results(a.json)
    for cmd in filter(None, doc["meta"]["commands"]):
        print(("`" + cmd + "`") if a.markdown else f"command: {cmd}")
        print()
    print(format_tables(doc, markdown=a.markdown))
    return 0


def _cmd_plot(argv):
    p = argparse.ArgumentParser(prog=PROG + " plot",
                                description="Re-draw the plots of benchmark JSON files.")
    p.add_argument("json", nargs="+")
    p.add_argument("--plots", default=os.path.join("results", "plots"), help="output directory")
    a = p.parse_args(argv)
    for path in make_plots(read_results(a.json), a.plots):
        print(f"plot: {path}")
    return 0


def main(argv=None):
    """Command-line entry point; ``argv`` defaults to ``sys.argv[1:]``.

    Subcommands: ``run`` (the default), ``table JSON [JSON ...] [--markdown]``,
    ``plot JSON [JSON ...] [--plots DIR]``. Returns the exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = PROG + " " + " ".join(argv)
    if argv and argv[0] == "table":
        return _cmd_table(argv[1:])
    if argv and argv[0] == "plot":
        return _cmd_plot(argv[1:])
    if argv and argv[0] == "run":
        argv = argv[1:]
    return _cmd_run(argv, command.strip())

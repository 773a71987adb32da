"""The benchmark with an earlier commit's DiffusionKDEFilter beside today's, on today's protocol.

The benchmark's truths, reference posteriors and scores are today's code;
only the filter ``dkf-previous`` is another checkout's: its package is
imported from ``--checkout`` under another name (``fpd_previous``) and run
with its own defaults, exactly as the registry runs ``dkf``. So a change of
the protocol (e.g. the stratified W2 reference of design-log entry 47) can
be applied to an old default without running old benchmark code.

    git worktree add /tmp/previous 2bea172 --detach    # the default before issue 15
    python benchmarks/previous_default.py --checkout /tmp/previous \\
        --problems toy-abs l63-z --filters dkf-previous dkf --N 20 50 100 250 \\
        --seeds 100 101 102 103 104 --tuning-seeds 0 --workers 1 \\
        --out docs/data/bench_previous_default.json

Every option after ``--checkout DIR`` is the benchmark's
(``python -m filterpy_diffusion.bench --help``). Runs in-process only
(``--workers 1``): worker processes would not see the added filter.
"""
import argparse
import functools
import importlib.util
import os
import sys

from filterpy_diffusion.bench import registry
from filterpy_diffusion.bench.cli import _cmd_run

#: The registry name of the other checkout's default filter.
NAME = "dkf-previous"
#: The name its package is imported under (beside today's filterpy_diffusion).
MODULE = "fpd_previous"


def import_checkout(checkout):
    """The package ``<checkout>/filterpy_diffusion`` as the module :data:`MODULE`."""
    pkg = os.path.join(os.path.abspath(checkout), "filterpy_diffusion")
    init = os.path.join(pkg, "__init__.py")
    if not os.path.isfile(init):
        raise ValueError(f"--checkout must be a checkout of this repository (with "
                         f"filterpy_diffusion/__init__.py), got {checkout!r}")
    sys.modules.pop(MODULE, None)
    spec = importlib.util.spec_from_file_location(MODULE, init, submodule_search_locations=[pkg])
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module      # before exec: its relative imports resolve through it
    spec.loader.exec_module(module)
    return module


def register(checkout):
    """Add :data:`NAME` to the benchmark's registry: the checkout's DiffusionKDEFilter, defaults."""
    cls = import_checkout(checkout).DiffusionKDEFilter
    registry.FILTERS[NAME] = registry.FilterEntry(functools.partial(registry._dkf,
                                                                    filter_class=cls))
    return cls


def main(argv=None):
    """Returns the benchmark's exit status; the JSON records this script's command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], add_help=False)
    ap.add_argument("--checkout", required=True,
                    help="a checkout (e.g. a git worktree) of the commit whose default to run")
    args, rest = ap.parse_known_args(argv)
    workers = ([rest[i + 1] for i, a in enumerate(rest[:-1]) if a == "--workers"]
               + [a.split("=", 1)[1] for a in rest if a.startswith("--workers=")])
    if workers != ["1"] or "--scheduler" in rest:
        ap.error("the other checkout's filter is registered in this process only: "
                 "pass --workers 1 (and no --scheduler)")
    register(args.checkout)
    return _cmd_run(rest, " ".join(["python benchmarks/previous_default.py", *argv]))


if __name__ == "__main__":
    sys.exit(main())

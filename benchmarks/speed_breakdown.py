"""What one default update is made of: time per step, on the speed benchmark's input.

Wraps the steps of ``DiffusionKDEFilter(kernel='auto')``'s update (the mode
screen, the forecast's whitened SVD, the bridge's root search, resampling,
the ETKF core, the floor's finite-size solve, filterpy's gain attributes)
in timers and runs the update ``--repeats`` times on the ensemble and
observation of ``benchmarks/speed.py`` (same ``make_problem``), one BLAS
thread. Nested steps are included in their callers (``bridge_analysis``
contains the core), so the shares do not add up to 100%.

    OMP_NUM_THREADS=1 python benchmarks/speed_breakdown.py --N 100 --d 3 --json docs/data/speed_breakdown.json
"""
import argparse
import collections
import json
import os
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import speed  # noqa: E402

import filterpy_diffusion.bridge as bridge  # noqa: E402
import filterpy_diffusion.filter as filt  # noqa: E402
from filterpy_diffusion import DiffusionKDEFilter  # noqa: E402

#: (owner, attribute, label): the steps timed. Module-level names are the
#: ones the caller looks up (filter.py and bridge.py import them by name).
STEPS = [
    (filt.DiffusionKDEFilter, "_analysis", "analysis (all but the update's checks)"),
    (filt, "bridge_analysis", "bridge_analysis (weights, move, core)"),
    (filt, "_etkf_analysis", "ETKF core with its finite-size solve"),
    (filt.DiffusionKDEFilter, "_mode_labels", "mode screen of the forecast"),
    (bridge, "_regularised_resample", "resampling and jitter"),
    (filt, "finite_size_inflation", "the floor's finite-size solve"),
    (bridge, "_likelihood_fraction", "root search for gamma"),
    (filt.DiffusionKDEFilter, "_forecast_spectrum", "forecast's whitened SVD"),
    (filt.DiffusionKDEFilter, "_gain", "filterpy's K, S, SI"),
    (filt.DiffusionKDEFilter, "_measure", "hx calls"),
    (bridge, "gaussian_log_likelihood", "log likelihoods"),
]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--N", type=int, default=100)
    p.add_argument("--d", type=int, default=3)
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)

    spent = collections.Counter()

    def timed(fn, label):
        def wrapper(*args, **kw):
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                spent[label] += time.perf_counter() - t
        return wrapper

    for owner, name, label in STEPS:
        setattr(owner, name, timed(getattr(owner, name), label))

    X0, z, hx_vec, _ = speed.make_problem(a.N, a.d, a.seed, "identity")
    f = DiffusionKDEFilter(np.zeros(a.d), np.eye(a.d), a.d, 1.0, a.N, hx_vec, speed._fx,
                           rng=a.seed, vectorized=True)

    def one():
        f.sigmas = X0.copy()
        f.weights = np.full(a.N, 1.0 / a.N)
        f.update(z)

    for _ in range(30):      # warm-up
        one()
    spent.clear()
    t = time.perf_counter()
    for _ in range(a.repeats):
        one()
    total = (time.perf_counter() - t) / a.repeats
    rows = [(label, spent[label] / a.repeats) for _, _, label in STEPS]
    print(f"N = {a.N}, d = m = {a.d}: one update {1e3 * total:.3f} ms (mean of {a.repeats})")
    for label, s in rows:
        print(f"  {label:42s} {1e3 * s:7.3f} ms  {100 * s / total:5.1f}%")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"command": "python benchmarks/speed_breakdown.py " + " ".join(argv or sys.argv[1:]),
                       "N": a.N, "d": a.d, "repeats": a.repeats, "update_s": total,
                       "loadavg": list(os.getloadavg()),
                       "steps": {label: {"s": s, "share": s / total} for label, s in rows}},
                      fh, indent=1)


if __name__ == "__main__":
    main()

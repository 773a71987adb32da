"""Trace one benchmark run cycle by cycle: where and how a filter loses track.

Runs one filter of the benchmark registry on one twin experiment (problem,
N, seed; the same truth, observations and filter seed as
``python -m filterpy_diffusion.bench``) and prints, for every cycle in
the chosen window, the analysis RMSE, the ensemble spread, and what the
filter recorded (kernel used, clusters, h, ESS, inflation factor), next to
the truth and the ensemble mean. Ends with the time-mean RMSE after the
spin-up, as in the benchmark's tables.

    python benchmarks/trace_run.py --problem l63-cubic --N 20 --seed 104 --from 18 --to 40
"""
import argparse

import numpy as np

from filterpy_diffusion.bench import build_filter, resolve_problem, twin_experiment
from filterpy_diffusion.metrics import rmse, spread


def fmt(v):
    return "-" if v is None else f"{v:.3g}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", default="l63-cubic")
    ap.add_argument("--filter", default="dkf", help="a registry spec with a fixed knob if it has one")
    ap.add_argument("--N", type=int, default=20)
    ap.add_argument("--seed", type=int, default=104)
    ap.add_argument("--from", dest="start", type=int, default=0, help="first cycle printed")
    ap.add_argument("--to", dest="stop", type=int, default=50, help="cycle after the last printed")
    a = ap.parse_args(argv)

    problem = resolve_problem(a.problem)
    twin = twin_experiment(problem, a.seed, a.N)
    f = build_filter(a.filter, problem, twin.initial_ensemble, twin.filter_seed)
    print(f"{a.problem}, {a.filter}, N = {a.N}, seed {a.seed}")
    print("cycle   rmse  spread  kernel      ncl      h    ess  infl  truth -> mean")
    errors = np.empty(problem.cycles)
    for k in range(problem.cycles):
        f.predict()
        f.update(twin.observations[k])
        X = np.asarray(f.sigmas)
        truth = twin.truth[k + 1]
        errors[k] = rmse(X, truth)
        if a.start <= k < a.stop:
            print(f"{k:5d} {errors[k]:6.2f} {spread(X):7.2f}  "
                  f"{str(getattr(f, 'kernel_used', '-')):<10} {getattr(f, 'n_clusters', '-')!s:>3} "
                  f"{fmt(getattr(f, 'h', None)):>6} {fmt(getattr(f, 'ess', None)):>6} "
                  f"{fmt(getattr(f, 'inflation_factor', None)):>5}  "
                  f"{np.array2string(truth[:3], precision=1)} -> {np.array2string(X.mean(0)[:3], precision=1)}")
    print(f"time-mean RMSE after the {problem.spinup}-cycle spin-up: {errors[problem.spinup:].mean():.3f}")


if __name__ == "__main__":
    main()

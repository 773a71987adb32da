"""Lorenz-96 (d = 10) seen through |x|: DiffusionKDEFilter vs EnKF vs particle filter.

Problem ``l96-10-abs`` of ``BENCHMARKS.md`` (1000 cycles, 200 spin-up, lost
if the time-mean RMSE exceeds 2) at N = 50, run through the benchmark
driver: the EnKF's inflation and the particle filter's jitter are tuned on
seed 0, all three filters are reported on seeds 100 and 101, and
DiffusionKDEFilter runs with its defaults. Runs go to local processes (one
per core).

    python examples/lorenz96_comparison.py     # about a minute on 2 cores

The same table from the command line:

    python -m filterpy_diffusion.benchmark --problems l96-10-abs --filters dkf enkf sir \\
        --N 50 --seeds 100 101 --tuning-seeds 0 --out results/l96_comparison.json
"""
from filterpy_diffusion.benchmark import format_tables, run_benchmark


def main():
    doc = run_benchmark(problems=["l96-10-abs"], filters=["dkf", "enkf", "sir"], Ns=[50],
                        seeds=[100, 101], tuning_seeds=[0])
    print(format_tables(doc))
    for r in doc["records"]:
        status = "lost track" if r["lost"] else ("diverged: " + r["error"] if r["diverged"] else "")
        knob = "" if r["knob"] is None else f" (knob {r['knob']:g})"
        print(f"seed {r['seed']} {r['filter']:>4}{knob:<12} RMSE {r['rmse']:.3f}  "
              f"spread {r['spread']:.3f}  {status}")


if __name__ == "__main__":
    # the guard matters: worker processes re-import this file
    main()

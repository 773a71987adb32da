"""Lorenz-63 seen only through z: a bimodal posterior.

With only ``z`` observed, the model's symmetry (x, y) -> (-x, -y) leaves the
posterior with one mode on each lobe of the attractor. The reference is a
bootstrap particle filter with 20,000 particles and the true likelihood; the
score is the 2-Wasserstein distance (W2) between the analysis ensemble and an
equally large sample of the reference, at every 10th scored cycle
(``BENCHMARKS.md``, problem ``l63-z``, here shortened to 300 cycles).

The EnKF's inflation is tuned on seed 0 (mean W2 over its grid), as in the
benchmark protocol; DiffusionKDEFilter runs with its defaults.

    python examples/lorenz63_bimodal.py      # about a minute; saves lorenz63_bimodal.png
"""
import numpy as np

from filterpy_diffusion.benchmark import (INFLATION_FACTORS, choose_knob, reference_posterior,
                                          resolve_problem, run_one)

PROBLEM, N, SEED, TUNING_SEED = "l63-z", 100, 100, 0
CYCLES, SPINUP = 300, 50


def main():
    problem = resolve_problem(PROBLEM, CYCLES, SPINUP)
    print(f"{PROBLEM}: {CYCLES} cycles ({SPINUP} spin-up), N = {N}, reporting seed {SEED}")

    # EnKF inflation tuned on its own seed, never on the reporting seed
    tune_ref = reference_posterior(problem, TUNING_SEED, [N])
    tuning = [run_one(PROBLEM, "enkf", N, TUNING_SEED, CYCLES, SPINUP, knob=lam, reference=tune_ref)
              for lam in INFLATION_FACTORS]
    lam = choose_knob(INFLATION_FACTORS, tuning, "w2")
    print("EnKF inflation on seed 0: " + ", ".join(f"{r['knob']:g} -> W2 {r['w2']:.2f}" for r in tuning)
          + f"; chosen {lam:g}")

    ref = reference_posterior(problem, SEED, [N])
    # the W2 cycle where the reference is most evenly split between the lobes
    k = int(ref.cycles[np.argmax(ref.balance)])
    runs = {name: run_one(PROBLEM, spec, N, SEED, CYCLES, SPINUP, knob=knob, reference=ref,
                          keep_cycles=[k])
            for name, spec, knob in [("DiffusionKDEFilter", "dkf", None),
                                     (f"EnKF (inflation {lam:g})", "enkf", lam)]}

    print(f"\n{'filter':<24} {'W2':>6} {'RMSE':>6} {'spread':>7}  P(x > 0) at cycle {k}")
    for name, r in runs.items():
        E = np.asarray(r["ensembles"][str(k)]["ensemble"])
        print(f"{name:<24} {r['w2']:6.2f} {r['rmse']:6.2f} {r['spread']:7.2f}  {np.mean(E[:, 0] > 0):.2f}")
    R = ref.samples[N][list(ref.cycles).index(k)]
    print(f"{'reference PF':<24} {'0':>6} {'':>6} {'':>7}  {np.mean(R[:, 0] > 0):.2f}"
          f"  (20,000 particles; P(x > 0) = {1 - ref.balance.max():.2f} or {ref.balance.max():.2f})")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no picture")
        return
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4.5), sharex=True, sharey=True)
    for ax, (name, r) in zip(axes, runs.items()):
        E = np.asarray(r["ensembles"][str(k)]["ensemble"])
        ax.scatter(R[:, 0], R[:, 1], s=10, c="0.6", label=f"reference PF (N = {N} of 20,000)")
        ax.scatter(E[:, 0], E[:, 1], s=10, label=name)
        ax.set_title(f"{name}: W2 {r['w2']:.2f}", fontsize="medium")
        ax.set_xlabel("x")
        ax.legend(fontsize="small", loc="upper left")
    axes[0].set_ylabel("y")
    fig.suptitle(f"{PROBLEM} (only z observed), analysis ensembles at cycle {k}, seed {SEED}")
    fig.tight_layout()
    fig.savefig("lorenz63_bimodal.png", dpi=120)
    print("saved lorenz63_bimodal.png")


if __name__ == "__main__":
    main()

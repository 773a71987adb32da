"""Lorenz-63 seen only through z: does the filter keep both lobes of the posterior?

Set-up (the benchmark's problem ``l63-z``, shortened to 200 cycles):
Lorenz-63 (s = 10, r = 28, b = 8/3), RK4 with dt = 0.01, 10 steps per cycle;
only ``z`` is observed, with noise N(0, 2^2); the filters add model noise
Q = 0.1^2 I. The flow is symmetric under ``(x, y) -> (-x, -y)`` and ``z``
does not see the sign, so with a prior drawn from the (symmetric) attractor
the exact posterior puts mass 1/2 on each lobe at every cycle: P(x > 0) =
0.5. An ensemble on one lobe only has lost half of the posterior.

Filters, same observations, each ensemble drawn from the attractor (states
0.5 time units apart along a free run; no knowledge of the truth):

* ``DiffusionKDEFilter`` with its defaults, N = 100;
* the reference: our ``ParticleFilter`` with 20,000 particles (bootstrap,
  exact likelihood, resampling every cycle), the posterior up to Monte
  Carlo error.

Which cycles are shown (the rule): every 10th cycle after a 50-cycle
spin-up is checked, and all of them are printed: W2 between the filter's
ensemble and 100 reference particles, P(x > 0) of both, and the W2 between
two disjoint sets of 100 reference particles (the Monte Carlo floor). The
picture shows the three checked cycles where the reference is most evenly
split between the lobes, and the checked cycle where the filter's W2 is
largest (its worst). If the filter keeps one lobe, the output says so.

    python examples/lorenz63_bimodal.py   # about 20 s of CPU; saves lorenz63_bimodal.png
"""
import time

import numpy as np

from filterpy_diffusion import DiffusionKDEFilter, ParticleFilter
from filterpy_diffusion.metrics import wasserstein2

DT, STEPS = 0.01, 10                     # RK4 step, steps per cycle
R_STD, Q_STD = 2.0, 0.1
N, N_REF = 100, 20_000
CYCLES, SPINUP, EVERY = 200, 50, 10
SEED = 100


def l63(x, s=10.0, r=28.0, b=8.0 / 3.0):
    # rows are members: x[..., 0] is x, x[..., 1] y, x[..., 2] z
    x0, x1, x2 = x[..., 0], x[..., 1], x[..., 2]
    return np.stack([s * (x1 - x0), x0 * (r - x2) - x1, x0 * x1 - b * x2], axis=-1)


def run_rk4(x, nsteps):
    for _ in range(nsteps):
        k1 = l63(x)
        k2 = l63(x + 0.5 * DT * k1)
        k3 = l63(x + 0.5 * DT * k2)
        k4 = l63(x + DT * k3)
        x = x + DT / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def fx(x, dt):
    # one cycle, for one state (3,) or a whole ensemble (N, 3)
    return run_rk4(x, STEPS)


def hx(x):
    return x[..., 2:3]


def attractor_sample(rng, n, spacing=50):
    """``n`` states ``spacing`` RK4 steps apart along a free run from a perturbed start."""
    x = run_rk4(np.ones(3) + rng.standard_normal(3), 2000)
    out = np.empty((n, 3))
    for i in range(n):
        out[i] = x
        x = run_rk4(x, spacing)
    return out


def main():
    t0 = time.process_time()
    rng = np.random.default_rng(SEED)
    truth = [run_rk4(np.ones(3) + rng.standard_normal(3), 2000)]
    for _ in range(CYCLES):
        truth.append(fx(truth[-1], None))
    truth = np.array(truth)
    zs = hx(truth[1:]) + R_STD * rng.standard_normal((CYCLES, 1))

    def make(cls, n, seed, **options):
        f = cls(x=np.zeros(3), P=np.eye(3), dim_z=1, dt=DT * STEPS, N=n, hx=hx, fx=fx,
                rng=seed, vectorized=True, **options)
        f.Q = Q_STD ** 2 * np.eye(3)
        f.R = np.array([[R_STD ** 2]])
        return f

    dkf = make(DiffusionKDEFilter, N, 1)
    dkf.sigmas = attractor_sample(rng, N)
    ref = make(ParticleFilter, N_REF, 2, resample_threshold=1.0)
    # independent perturbed starts spun up: spread over the attractor
    ref.sigmas = run_rk4(np.ones(3) + rng.standard_normal((N_REF, 3)), 2000)

    rows, snaps = [], {}
    pick = np.random.default_rng(3)
    for k in range(CYCLES):
        for f in (dkf, ref):
            f.predict()
            f.update(zs[k])
        if k >= SPINUP and (k - SPINUP) % EVERY == 0:
            X, Y = dkf.sigmas, ref.sigmas             # both unweighted after the update
            idx = pick.permutation(N_REF)
            Y1, Y2 = Y[idx[:N]], Y[idx[N:2 * N]]
            rows.append((k, wasserstein2(X, Y1), wasserstein2(Y2, Y1),
                         np.mean(X[:, 0] > 0), np.mean(Y[:, 0] > 0)))
            snaps[k] = (X.copy(), Y1)

    print(f"Lorenz-63, only z observed (noise {R_STD:g}^2), {CYCLES} cycles, seed {SEED}; "
          f"DiffusionKDEFilter N = {N} vs reference particle filter N = {N_REF:,}")
    print(f"{'cycle':>5} {'W2 DKF':>7} {'W2 ref/ref':>10} {'P(x>0) DKF':>11} {'P(x>0) ref':>11}")
    for k, w2, floor, p_dkf, p_ref in rows:
        print(f"{k:5d} {w2:7.2f} {floor:10.2f} {p_dkf:11.2f} {p_ref:11.2f}")
    w2s = np.array([r[1] for r in rows])
    share = np.array([min(r[3], 1 - r[3]) for r in rows])
    floor = np.mean([r[2] for r in rows])
    print(f"mean W2: DKF {w2s.mean():.2f}, reference vs reference {floor:.2f}")
    one_lobe = share < 0.05
    if one_lobe.any():
        print(f"DiffusionKDEFilter keeps one lobe only (P(x>0) < 0.05 or > 0.95) at "
              f"{one_lobe.sum()} of {len(rows)} checked cycles: "
              f"{[r[0] for r, o in zip(rows, one_lobe) if o]}")
    else:
        print(f"DiffusionKDEFilter keeps both lobes at all {len(rows)} checked cycles "
              f"(smallest lobe share {share.min():.2f})")
    print(f"({time.process_time() - t0:.0f} s CPU)")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install matplotlib): no picture")
        return
    # the rule: the three checked cycles where the reference is most evenly
    # split, and the filter's worst checked cycle (largest W2)
    even = sorted(rows, key=lambda r: abs(r[4] - 0.5))[:3]
    worst = max(rows, key=lambda r: r[1])
    shown = sorted(even) + ([] if worst in even else [worst])
    fig, axes = plt.subplots(1, len(shown), figsize=(4.3 * len(shown), 4.3), sharex=True,
                             sharey=True)
    for ax, (k, w2, floor, p_dkf, p_ref) in zip(axes, shown):
        X, Y1 = snaps[k]
        ax.scatter(Y1[:, 0], Y1[:, 1], s=9, c="0.6", label=f"reference ({N} of {N_REF:,})")
        ax.scatter(X[:, 0], X[:, 1], s=9, label="DiffusionKDEFilter")
        tag = " (worst W2)" if (k, w2) == worst[:2] else ""
        ax.set_title(f"cycle {k}{tag}: W2 {w2:.2f} (floor {floor:.2f})\n"
                     f"P(x>0): DKF {p_dkf:.2f}, reference {p_ref:.2f}", fontsize="medium")
        ax.set_xlabel("x")
    axes[0].set_ylabel("y")
    axes[0].legend(fontsize="small", loc="upper left")
    fig.suptitle("Lorenz-63, only z observed: analysis ensembles at the three cycles where the "
                 "reference is most evenly split, and the filter's worst cycle", fontsize="medium")
    fig.tight_layout()
    fig.savefig("lorenz63_bimodal.png", dpi=110)
    print("saved lorenz63_bimodal.png")


if __name__ == "__main__":
    main()

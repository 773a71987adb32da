"""DiffusionKDEFilter with its defaults against the exact Kalman filter.

Constant-velocity target measured in position (R = 0.5, Q = 0.02 I), 20
cycles, N = 2000 by default; prints, for each seed, the gap between the
filter's mean and the Kalman mean in posterior standard deviations and the
ratio of the variances. The target: mean within 0.1 sd, variances
within 15%.

    python benchmarks/linear_gaussian.py [--N 2000] [--seeds 100 101 102 103 104]
        [--inflation none] [--policy "{'move_jitter_minus_q': False}"] [--json out.json]
"""
import argparse
import ast
import json

import numpy as np
from filterpy.kalman import KalmanFilter

from filterpy_diffusion import DiffusionKDEFilter
from filterpy_diffusion.policy import Policy

F = np.array([[1.0, 1.0], [0.0, 1.0]])
H = np.array([[1.0, 0.0]])


def fx(X, dt):
    return X @ F.T


def hx(X):
    return X @ H.T


def run(N, seed, cycles=20, **options):
    rng = np.random.default_rng(seed)
    f = DiffusionKDEFilter(np.array([0.0, 1.0]), np.eye(2), 1, 1.0, N, hx, fx,
                           rng=seed + 1000, vectorized=True, **options)
    f.R, f.Q = np.array([[0.5]]), np.eye(2) * 0.02
    kf = KalmanFilter(dim_x=2, dim_z=1)
    kf.x, kf.P, kf.F, kf.H = np.array([0.0, 1.0]), np.eye(2), F, H
    kf.R, kf.Q = np.array([[0.5]]), np.eye(2) * 0.02
    truth = np.array([0.0, 1.0])
    for _ in range(cycles):
        truth = F @ truth + rng.normal(size=2) * np.sqrt(0.02)
        z = H @ truth + rng.normal(size=1) * np.sqrt(0.5)
        f.predict(); f.update(z)
        kf.predict(); kf.update(z)
    sd = np.sqrt(np.diag(kf.P))
    return (f.x - kf.x) / sd, np.diag(f.P) / np.diag(kf.P)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--N', type=int, default=2000)
    ap.add_argument('--seeds', type=int, nargs='+', default=[100, 101, 102, 103, 104])
    ap.add_argument('--kernel', default='auto', help="'auto' (the default), 'covariance', 'enkpf', ...")
    ap.add_argument('--inflation', default='auto', help="'auto' (the default), 'none', or a factor")
    ap.add_argument('--policy', default=None,
                    help="Policy fields as a dict literal, e.g. \"{'move_jitter_minus_q': False}\"")
    ap.add_argument('--json', default=None, help="write the per-seed numbers here")
    a = ap.parse_args(argv)
    infl = {'auto': 'auto', 'none': None}[a.inflation] if a.inflation in ('auto', 'none') \
        else float(a.inflation)
    opts = {'kernel': a.kernel, 'inflation': infl}
    if a.policy:
        opts['policy'] = Policy(**ast.literal_eval(a.policy))
    print(f"N = {a.N}, 20 cycles, kernel = {a.kernel}, inflation = {a.inflation}")
    print(f"{'seed':>5} {'mean gap / sd (pos, vel)':>26} {'var ratio (pos, vel)':>22}")
    gaps, ratios = [], []
    for s in a.seeds:
        g, r = run(a.N, s, **opts)
        gaps.append(g); ratios.append(r)
        print(f"{s:5d} {g[0]:+12.3f} {g[1]:+12.3f} {r[0]:10.3f} {r[1]:10.3f}")
    rows = [{"seed": s, "mean_gap_sd": [round(float(v), 4) for v in g],
             "var_ratio": [round(float(v), 4) for v in r]} for s, g, r in zip(a.seeds, gaps, ratios)]
    gaps, ratios = np.abs(gaps), np.array(ratios)
    print(f"max |gap| = {gaps.max():.3f} sd (target 0.1); "
          f"max |var ratio - 1| = {np.abs(ratios - 1).max():.3f} (target 0.15); "
          f"mean var ratio = {ratios[:, 0].mean():.3f}, {ratios[:, 1].mean():.3f}")
    if a.json:
        cmd = (f"python benchmarks/linear_gaussian.py --N {a.N} --seeds {' '.join(map(str, a.seeds))}"
               f" --kernel {a.kernel} --inflation {a.inflation}"
               + (f' --policy "{a.policy}"' if a.policy else "") + f" --json {a.json}")
        with open(a.json, "w") as fh:
            json.dump({"command": cmd, "rows": rows, "max_gap_sd": round(float(gaps.max()), 4),
                       "max_var_error": round(float(np.abs(ratios - 1).max()), 4),
                       "mean_var_ratio": [round(float(v), 4) for v in ratios.mean(0)]}, fh)
            fh.write("\n")


if __name__ == '__main__':
    main()

"""Which analysis the default chooses on DAPPER's Lorenz63.sakov2012, and what it scores.

Drives ``DiffusionKDEFilter`` by hand on a DAPPER truth (``dapper.set_seed(seed)``,
``HMM.simulate()``; the initial ensemble after ``set_seed(seed + 10**6)``, as
``benchmarks/dapper_compare.py`` does) and counts ``kernel_used`` per update
(``covariance2``: the kernel split into two modes). The RMSE is of the
weighted analysis mean, over the last 80% of the cycles (not DAPPER's
``rmse.a`` bit for bit; for comparing variants of the default). Variants:

* ``default``: the defaults;
* ``bridge``: ``kernel='bridge'`` (no mode test);
* ``gate``: the defaults with ``Policy(kernel_members_per_dim=10)``, the old
  default's normality rule.

    python benchmarks/auto_paths_l63.py --N 20 50 100 --seeds 3000 --json docs/data/tuning/auto_paths_l63.json
"""
import argparse
import collections
import json
import os

for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_v, '1')

import numpy as np  # noqa: E402

from filterpy_diffusion import DiffusionKDEFilter  # noqa: E402
from filterpy_diffusion.policy import Policy  # noqa: E402

VARIANTS = {'default': {}, 'bridge': {'kernel': 'bridge'},
            'gate': {'policy': Policy(kernel_members_per_dim=10.0)}}


def run(N, seed, options, cycles=500):
    import dapper as dpr
    import dapper.mods.Lorenz63.sakov2012 as mod
    HMM = mod.HMM.copy()
    HMM.tseq.Ko = cycles - 1
    dpr.set_seed(seed)
    xx, yy = HMM.simulate()
    dpr.set_seed(seed + 10 ** 6)
    E = HMM.X0.sample(N)
    t = {'t0': 0.0}
    f = DiffusionKDEFilter(E.mean(0), np.cov(E.T), 3, HMM.tseq.dt, N, HMM.Obs(0),
                           lambda X, dt: HMM.Dyn(X, t['t0'], dt), rng=seed, vectorized=True,
                           **options)
    f.sigmas = E.copy()
    f.R = HMM.Obs(0).noise.C.full
    used, err = collections.Counter(), []
    for k, ko, tt, dt in HMM.tseq.ticker:
        t['t0'] = tt - dt
        f.dt = dt
        f.Q = np.zeros((3, 3))
        f.predict()
        if ko is not None:
            f.update(yy[ko])
            used[f.kernel_used + ('2' if f.n_clusters == 2 else '')] += 1
            err.append(float(np.sqrt(np.mean((f.weights @ f.sigmas - xx[k]) ** 2))))
    return {'N': N, 'seed': seed, 'kernel_used': dict(used),
            'rmse': float(np.mean(err[len(err) // 5:]))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--N', type=int, nargs='+', default=[20, 50, 100])
    ap.add_argument('--seeds', type=int, nargs='+', default=[3000])
    ap.add_argument('--variants', nargs='+', default=list(VARIANTS))
    ap.add_argument('--json')
    a = ap.parse_args()
    rows = []
    for name in a.variants:
        for N in a.N:
            for seed in a.seeds:
                r = {'variant': name, **run(N, seed, VARIANTS[name])}
                print(r, flush=True)
                rows.append(r)
    if a.json:
        with open(a.json, 'w') as fh:
            json.dump({'command': 'python benchmarks/auto_paths_l63.py ' + ' '.join(
                f'--{k} ' + ' '.join(map(str, v)) if isinstance(v, list) else f'--{k} {v}'
                for k, v in vars(a).items() if v is not None), 'rows': rows}, fh, indent=1)


if __name__ == '__main__':
    main()

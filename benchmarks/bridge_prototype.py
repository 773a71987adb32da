"""Side-by-side driver: the EnKF-PF bridge against DAPPER on DAPPER's truths.

Runs, on the truth and observations DAPPER simulates for one seed, the
bridge (``filterpy_diffusion.bridge.bridge_analysis`` with the Gaussian core
``filterpy_diffusion.etkf.etkf_analysis``, finite-size inflation, a random
rotation only at ``gamma = 0``) and DAPPER's ``EnKF_N(N, rot=True)`` plus
``PartFilt(N=100, reg=2.4, NER=0.3)`` (Lorenz63) or ``EnKF('Sqrt', N,
infl=1.02, rot=True)`` (Lorenz96), and prints rmse.a: the time mean, over
analysis times after DAPPER's burn-in, of ``sqrt(mean((mean_w(E) - x)^2))``.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/bridge_prototype.py \
        --problem l63 --N 10 20 50 100 --seeds 3000 3001 3002

Needs dapper==1.8.1. Tuning seeds only (3000-3002); see docs/bridge.md.
"""
import argparse
import time

import numpy as np

from filterpy_diffusion.bridge import MEMBERS_PER_DIM, bridge_analysis, weighted_mean
from filterpy_diffusion.etkf import etkf_analysis


def load(problem, Ko):
    if problem == 'l63':
        import dapper.mods.Lorenz63.sakov2012 as mod
    else:
        import dapper.mods.Lorenz96.sakov2008 as mod
    HMM = mod.HMM.copy()
    HMM.tseq.Ko = Ko
    return HMM


def run_bridge(HMM, xx, yy, N, seed, members_per_dim, rep=0):
    rng = np.random.default_rng([seed, rep])
    E = HMM.X0.mu + rng.standard_normal((N, HMM.Dyn.M)) @ np.atleast_2d(HMM.X0.C.Right)
    log_w = np.zeros(N)

    def core(X, hz, z, R, gamma):
        return etkf_analysis(X, hz, z, R, inflation='finite-size', rot=(gamma == 0), rng=rng)[0]

    errs, gammas, moves = [], [], 0
    for k, ko, t, dt in HMM.tseq.ticker:
        E = HMM.Dyn(E, t - dt, dt)
        if ko is None:
            continue
        Obs = HMM.Obs(ko)
        E, log_w, info = bridge_analysis(E, log_w, yy[ko], np.atleast_2d(Obs.noise.C.full), Obs,
                                         core, rng, members_per_dim=members_per_dim)
        gammas.append(info['gamma'])
        moves += info['moved']
        if HMM.tseq.masko[ko]:
            errs.append(np.sqrt(np.mean((weighted_mean(E, log_w) - xx[k]) ** 2)))
    return float(np.mean(errs)), float(np.mean(gammas)), moves


def run_dapper(HMM, xx, yy, xp):
    xp.assimilate(HMM, xx, yy)
    xp.stats.average_in_time()
    return float(xp.avrgs.rmse.a.val)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--problem', choices=('l63', 'l96'), default='l63')
    p.add_argument('--N', type=int, nargs='+', default=[10, 20, 50, 100])
    p.add_argument('--seeds', type=int, nargs='+', default=[3000, 3001, 3002])
    p.add_argument('--Ko', type=int, default=500)
    p.add_argument('--members-per-dim', type=float, default=MEMBERS_PER_DIM)
    p.add_argument('--reps', type=int, default=1,
                   help='independent bridge runs (ensemble and resampling streams) per truth')
    p.add_argument('--no-dapper', action='store_true')
    a = p.parse_args()
    import dapper as dpr
    import dapper.da_methods as da
    print(f"{'N':>4} {'seed':>5} {'bridge':>7} {'gamma':>6} {'moves':>5}  dapper  [per rep]")
    for N in a.N:
        rows = []
        for seed in a.seeds:
            HMM = load(a.problem, a.Ko)
            dpr.set_seed(seed)
            xx, yy = HMM.simulate()
            ref = {}
            if not a.no_dapper:
                if a.problem == 'l63':
                    ref['EnKF_N'] = run_dapper(HMM, xx, yy, da.EnKF_N(N=N, rot=True))
                    if N == 100:
                        ref['PartFilt'] = run_dapper(HMM, xx, yy,
                                                     da.PartFilt(N=100, reg=2.4, NER=0.3))
                else:
                    ref['Sqrt1.02'] = run_dapper(HMM, xx, yy,
                                                 da.EnKF('Sqrt', N=N, infl=1.02, rot=True))
            t0 = time.time()
            runs = [run_bridge(HMM, xx, yy, N, seed, a.members_per_dim, rep)
                    for rep in range(a.reps)]
            rmse, g, moves = np.mean(runs, 0)
            rows.append([rmse] + list(ref.values()))
            refs = ' '.join(f'{k} {v:.3f}' for k, v in ref.items())
            each = ' '.join(f'{r[0]:.3f}' for r in runs) if a.reps > 1 else ''
            print(f"{N:>4} {seed:>5} {rmse:7.3f} {g:6.2f} {moves:5.0f}  {refs}  {each}"
                  f"  ({time.time() - t0:.0f} s)", flush=True)
        print(f"{N:>4} {'mean':>5} " + ' '.join(f'{v:7.3f}' for v in np.mean(rows, 0)), flush=True)


if __name__ == '__main__':
    main()

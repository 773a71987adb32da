"""The mass between the lobes of l63-z: what it costs the default, and what a perfect sample scores.

l63-z is mirror-symmetric: the model, the noise, the observation of ``z``
and the initial ensemble are unchanged by ``(x, y, z) -> (-x, -y, z)``, so
the exact posterior gives each lobe (``x > 0``, ``x < 0``) mass 1/2 at every
cycle. W2 is scored, as in the benchmark, against N points resampled from a
20,000-particle bootstrap filter, whose lobe share wanders from 1/2 by its
own Monte Carlo error. For each run this prints:

* ``w2``: the default's W2 (the benchmark's number);
* ``w2_share_reference``, ``w2_share_half``: the same ensembles with their
  members redrawn within each lobe so that the lobe share is the
  reference's, or 1/2 (the exact one), everything else unchanged: how much
  of the W2 is the mass between the lobes, not the shape within them;
* ``share_change``: the change of the ensemble's lobe share at each update,
  by the path the update took (``covariance2``: the per-mode kernel;
  ``bridge_decided``: z ruled a mode out; ``bridge_both_lobes``: the bridge
  on a forecast with members on both lobes that the mode test called one
  mode; ``bridge_one_lobe``: at most 5% on the smaller lobe), as the sum
  of squared changes and the mean absolute change;
* ``floor``: W2 of N points drawn from the reference's own weighted cloud
  (``iid``), and from that cloud made mirror-symmetric (``mirror``, the
  best estimate of the exact posterior), against the benchmark's reference
  sample: what a filter that sampled the posterior itself would score.

    python benchmarks/lobe_mass.py --N 50 100 250 --seeds 0 1 2 \\
        --json docs/data/tuning/lobe_mass.json
"""
import argparse
import collections
import json
import os
import sys

import numpy as np

from filterpy_diffusion.bench import resolve_problem, twin_experiment
from filterpy_diffusion.bench.reference import REFERENCE_PARTICLES, _particle_reference
from filterpy_diffusion.bench.runner import _uniform_sample
from filterpy_diffusion.metrics import wasserstein2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mode_paths import scored_run  # a sibling script, not a package

MIRROR = np.array([-1.0, -1.0, 1.0])
#: Below this share of the smaller lobe a forecast counts as on one lobe.
ONE_LOBE = 0.05


def _share(X, w=None):
    pos = np.asarray(X)[:, 0] > 0
    return float(pos.mean() if w is None else (w / w.sum()) @ pos)


def _with_share(X, share, rng):
    """X's members redrawn within each lobe so that ``round(share N)`` lie on ``x > 0``."""
    pos, neg = X[X[:, 0] > 0], X[X[:, 0] <= 0]
    if len(pos) == 0 or len(neg) == 0:
        return X            # one lobe: nothing to redraw from
    n = int(round(share * len(X)))
    return np.vstack([pos[rng.integers(len(pos), size=n)],
                      neg[rng.integers(len(neg), size=len(X) - n)]])


def trace(N, seed, cache_dir=None, ref_particles=REFERENCE_PARTICLES, cycles=None, spinup=None):
    """One run of the default on l63-z (see the module docstring)."""
    problem, twin, f, ref, ref_at, score_rng = scored_run("l63-z", N, seed, cache_dir,
                                                          ref_particles, cycles, spinup)
    redraw = np.random.default_rng([seed, N, 7])
    decides, decided = f._evidence_decides, [False]

    def recording(*a):
        decided[0] = decides(*a)
        return decided[0]
    f._evidence_decides = recording
    w2 = collections.defaultdict(list)
    change = collections.defaultdict(list)
    for k in range(problem.cycles):
        f.predict()
        before = _share(f.sigmas, f.weights)
        decided[0] = False
        f.update(twin.observations[k])
        if k < problem.spinup:
            continue
        if f.kernel_used != "bridge":
            path = f"{f.kernel_used}{'' if f.n_clusters == 1 else f.n_clusters}"
        elif decided[0]:
            path = "bridge_decided"
        else:
            path = "bridge_one_lobe" if min(before, 1 - before) < ONE_LOBE else "bridge_both_lobes"
        change[path].append(_share(f.sigmas, f.weights) - before)
        if k in ref_at:
            Xu = _uniform_sample(np.asarray(f.sigmas), f.weights, score_rng)
            S = ref.samples[N][ref_at[k]]
            w2["w2"].append(wasserstein2(Xu, S))
            w2["w2_share_reference"].append(wasserstein2(_with_share(Xu, _share(S), redraw), S))
            w2["w2_share_half"].append(wasserstein2(_with_share(Xu, 0.5, redraw), S))
    out = {"N": N, "seed": seed, **{k: float(np.mean(v)) for k, v in w2.items()}}
    out["share_change"] = {p: {"updates": len(v), "sum_sq": float(np.sum(np.square(v))),
                               "mean_abs": float(np.mean(np.abs(v)))}
                           for p, v in sorted(change.items())}
    return out


def floor(Ns, seed, ref_particles=REFERENCE_PARTICLES, cycles=None, spinup=None):
    """W2 of N points drawn from the reference's own cloud (and its mirror image) at each scored cycle."""
    problem = resolve_problem("l63-z", cycles, spinup)
    twin = twin_experiment(problem, seed, 2)     # as reference_posterior: the truth and z do not depend on N
    rng = np.random.default_rng([seed, 11])
    draws = {N: {"iid": [], "mirror": []} for N in Ns}
    shares = []

    def score(j, X, w):
        shares.append(_share(X, w))
        both = np.vstack([X, X * MIRROR])
        for N in Ns:
            draws[N]["iid"].append((j, X[rng.choice(len(w), size=N, p=w)]))
            draws[N]["mirror"].append((j, both[rng.choice(len(both), size=N, p=np.r_[w, w] / 2)]))
    ref = _particle_reference(problem, twin, Ns, int(ref_particles), on_scored=score)
    return {"seed": seed, "reference_share_mean_abs_gap": float(np.mean(np.abs(np.subtract(shares, 0.5)))),
            "floor": {str(N): {kind: float(np.mean([wasserstein2(X, ref.samples[N][j]) for j, X in v]))
                               for kind, v in d.items()} for N, d in draws.items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--N", type=int, nargs="+", default=[50, 100, 250])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    runs = []
    for N in a.N:
        for seed in a.seeds:
            r = trace(N, seed, a.cache_dir)
            runs.append(r)
            print(f"N = {N:4d} seed {seed}: W2 {r['w2']:.2f}; lobe share set to the reference's "
                  f"{r['w2_share_reference']:.2f}, to 1/2 {r['w2_share_half']:.2f}; share change "
                  + ", ".join(f"{p} {v['updates']} updates sum sq {v['sum_sq']:.3f}"
                              for p, v in r["share_change"].items()))
    floors = [floor(a.N, seed) for seed in a.seeds]
    for fl in floors:
        print(f"seed {fl['seed']}: reference lobe share |gap to 1/2| {fl['reference_share_mean_abs_gap']:.3f}; "
              "perfect sample W2 " + ", ".join(f"N = {N}: iid {v['iid']:.2f} mirror {v['mirror']:.2f}"
                                              for N, v in fl["floor"].items()))
    if a.json:
        cmd = ("python benchmarks/lobe_mass.py --N " + " ".join(map(str, a.N)) + " --seeds "
               + " ".join(map(str, a.seeds)) + " --json " + a.json)
        with open(a.json, "w") as fh:
            json.dump({"command": cmd, "runs": runs, "floors": floors}, fh, separators=(",", ":"))
            fh.write("\n")


if __name__ == "__main__":
    main()

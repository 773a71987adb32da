"""Where the default loses W2 on a bimodal problem: its paths, cycle by cycle.

Runs ``dkf`` (the default) on one twin experiment of the benchmark (the
same truth, observations, filter seed and reference as ``python -m
filterpy_diffusion.bench``) and tallies, over the scored cycles:

* the path each update took (``kernel_used`` and the number of modes the
  analysis kept) and the mean W2 to the reference at the cycles scored on
  each path;
* every update where ``z`` ruled out one of two modes
  (``DiffusionKDEFilter._evidence_decides``: the weaker mode's posterior
  share below ``1 / N``, by ``Policy.mode_evidence``), with that share by
  the modes' Gaussian evidence next to the Monte Carlo one, ``sum_{i in
  k} w_i N(z; hx(x_i), R)`` from the members themselves
  (``ClusteredKDE(evidence=...)``);
* the reference's share of the lobe ``x > 0`` against the ensemble's
  (Lorenz-63 problems: the reference keeps the mirror-image modes near
  equal mass, the ensemble holds the mass of each mode as its member count).

    python benchmarks/mode_paths.py --problem l63-z --N 100 250 --seeds 0 1 2 \
        --json docs/data/tuning/mode_paths_l63z.json
"""
import argparse
import collections
import json

import numpy as np

from filterpy_diffusion.bench import build_filter, resolve_problem, twin_experiment
from filterpy_diffusion.bench.reference import REFERENCE_PARTICLES, reference_posterior
from filterpy_diffusion.bench.runner import _uniform_sample
from filterpy_diffusion.kde import ClusteredKDE
from filterpy_diffusion.metrics import wasserstein2


def _shares(f, X, hz, z, R, labels):
    """(Gaussian, Monte Carlo) posterior share of the weaker of two modes (unshrunk)."""
    w = f.weights
    out = []
    for evidence in ("gaussian", "monte-carlo"):
        kde = ClusteredKDE(X, hz, 0.5, labels, R=R, predictions=hz, shrink_evidence=False,
                           weights=None if (w == w[0]).all() else w, evidence=evidence)
        out.append(float(np.exp(kde.cluster_log_weights(z).min())))
    return tuple(out)


#: The benchmark's run of the default, to step by hand (:func:`scored_run`).
ScoredRun = collections.namedtuple("ScoredRun", "problem twin f ref ref_at score_rng")


def scored_run(problem_name, N, seed, cache_dir=None, ref_particles=REFERENCE_PARTICLES,
               cycles=None, spinup=None):
    """The benchmark's run of the default, to step by hand.

    Returns a :data:`ScoredRun`: ``problem``, ``twin`` (truth, observations,
    seeds), ``f`` (the default filter on the twin's initial ensemble), ``ref``
    (the reference posterior), ``ref_at`` (``{cycle: index into
    ref.samples[N]}``) and ``score_rng`` (the benchmark's scoring stream), as
    ``python -m filterpy_diffusion.bench`` builds them.
    """
    problem = resolve_problem(problem_name, cycles, spinup)
    twin = twin_experiment(problem, seed, N)
    ref = reference_posterior(problem, seed, [N], ref_particles, cache_dir)
    return ScoredRun(problem, twin, build_filter("dkf", problem, twin.initial_ensemble,
                                                 twin.filter_seed),
                     ref, {int(k): j for j, k in enumerate(ref.cycles)},
                     np.random.default_rng([twin.filter_seed, 1]))


def trace(problem_name, N, seed, cache_dir=None, ref_particles=REFERENCE_PARTICLES,
          cycles=None, spinup=None):
    """One run's record (see the module docstring); ``cycles``, ``spinup`` as the benchmark's."""
    problem, twin, f, ref, ref_at, score_rng = scored_run(problem_name, N, seed, cache_dir,
                                                          ref_particles, cycles, spinup)
    decided, k_now = [], [0]
    evidence = f._evidence_decides

    def recording(X, hz, z, R, labels):
        out = evidence(X, hz, z, R, labels)
        if out and k_now[0] >= problem.spinup:
            gauss, mc = _shares(f, X, hz, z, R, labels)
            decided.append({"cycle": k_now[0], "members": np.bincount(labels).tolist(),
                            "gaussian_share": gauss, "monte_carlo_share": mc})
        return out
    f._evidence_decides = recording
    paths, w2 = collections.Counter(), collections.defaultdict(list)
    lobe_gap = []
    for k in range(problem.cycles):
        k_now[0] = k
        f.predict()
        f.update(twin.observations[k])
        if k < problem.spinup:
            continue
        path = f"{f.kernel_used}{'' if f.n_clusters == 1 else f.n_clusters}"
        paths[path] += 1
        if k in ref_at:
            Xu = _uniform_sample(np.asarray(f.sigmas), f.weights, score_rng)
            S = ref.samples[N][ref_at[k]]
            w2[path].append(wasserstein2(Xu, S))
            lobe_gap.append(abs(float((Xu[:, 0] > 0).mean()) - float((S[:, 0] > 0).mean())))
    return {"problem": problem_name, "N": N, "seed": seed, "paths": dict(paths),
            "w2_by_path": {p: {"cycles": len(v), "w2": float(np.mean(v))} for p, v in w2.items()},
            "w2": float(np.mean(sum(w2.values(), []))),
            "mean_lobe_share_gap": float(np.mean(lobe_gap)),
            "evidence_decided": decided}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", default="l63-z")
    ap.add_argument("--N", type=int, nargs="+", default=[100, 250])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    rows = []
    for N in a.N:
        for seed in a.seeds:
            r = trace(a.problem, N, seed, a.cache_dir)
            rows.append(r)
            agree = sum(d["monte_carlo_share"] < 1.0 / N for d in r["evidence_decided"])
            print(f"N = {N:4d} seed {seed}: W2 {r['w2']:.2f}; paths {r['paths']}; W2 by path "
                  + ", ".join(f"{p} {v['w2']:.2f} ({v['cycles']})"
                              for p, v in sorted(r["w2_by_path"].items()))
                  + f"; z ruled out a mode {len(r['evidence_decided'])} times (Monte Carlo "
                  f"evidence agrees {agree}); lobe-share gap {r['mean_lobe_share_gap']:.3f}")
    if a.json:
        cmd = ("python benchmarks/mode_paths.py --problem " + a.problem + " --N "
               + " ".join(map(str, a.N)) + " --seeds " + " ".join(map(str, a.seeds))
               + " --json " + a.json)
        with open(a.json, "w") as fh:
            json.dump({"command": cmd, "rows": rows}, fh, separators=(",", ":"))
            fh.write("\n")


if __name__ == "__main__":
    main()

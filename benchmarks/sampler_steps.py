"""How the diffusion samplers' error falls with the number of steps.

Two conditional KDEs: a bimodal 2-D one (a state seen through
``|x_0|``) and a 40-D one (N = 250 correlated Gaussian members, observed
directly with noise). For each sampler and step count we draw ``n`` samples
and report the relative error of the sample covariance against the exact
mixture covariance (closed form), as ``max_j |C_jj - C*_jj| / C*_jj`` (the
largest relative variance error) and ``||C - C*||_F / ||C*||_F``. The same
numbers for exact sampling show the Monte-Carlo floor.

    python benchmarks/sampler_steps.py            # full table (about a minute)
    python benchmarks/sampler_steps.py --quick
"""
import argparse

import numpy as np

from filterpy_diffusion import ConditionalKDE
from filterpy_diffusion.diffusion import number_of_evaluations, sample


def bimodal_2d(rng):
    N = 200
    centres = np.where(rng.random(N)[:, None] < 0.5, -1.0, 1.0) * np.array([2.0, 0.0])
    x = centres + rng.normal(0, 0.5, (N, 2))
    y = np.abs(x[:, :1]) + rng.normal(0, 0.3, (N, 1))
    return ConditionalKDE(x, y, sigma_x=0.3, sigma_y=0.3), np.array([2.0])


def gaussian_40d(rng):
    N, d = 250, 40
    A = rng.normal(size=(d, d)) / np.sqrt(d)
    x = rng.normal(size=(N, d)) @ (np.eye(d) + A)
    y = x + rng.normal(size=(N, d))
    # Kernel and observation scale chosen so ~tens of members carry weight.
    return ConditionalKDE(x, y, sigma_x=0.4, sigma_y=4.0), x[0] + rng.normal(size=d)


def cov_errors(S, C):
    diag = np.abs(np.diag(S) - np.diag(C)) / np.diag(C)
    return diag.max(), np.linalg.norm(S - C) / np.linalg.norm(C)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('-n', type=int, default=None, help='samples per run')
    args = ap.parse_args(argv)
    n = args.n or (4000 if args.quick else 40000)
    steps_list = [4, 6, 8, 12, 16, 24, 32] if not args.quick else [6, 12, 24]
    variants = [('ode', 'dpm2m'), ('ode', 'heun'), ('sde', None)]
    print(f"n = {n} samples per cell; MC floor of the variance error ~ {2*np.sqrt(2/n):.3f} (2 s.e.)")
    for name, build in [('bimodal-2d', bimodal_2d), ('gaussian-40d', gaussian_40d)]:
        kde, z = build(np.random.default_rng(1))
        mix = kde.conditional(z)
        C = mix.cov()
        ess = 1 / np.sum(mix.weights ** 2)
        print(f"\n{name}: N = {kde.N}, d = {kde.dim_x}, ESS of weights = {ess:.1f}")
        print(f"{'sampler':>12} {'steps':>5} {'evals':>5} {'max var err':>11} {'rel Frob err':>12}")
        e = cov_errors(np.cov(sample(mix, n, 0, 'exact'), rowvar=False), C)
        print(f"{'exact':>12} {'-':>5} {0:5d} {e[0]:11.4f} {e[1]:12.4f}")
        for sampler, solver in variants:
            for steps in steps_list:
                opts = {'solver': solver} if solver else {}
                X = sample(mix, n, 0, sampler, steps, **opts)
                e = cov_errors(np.cov(X, rowvar=False), C)
                label = sampler + (f"/{solver}" if solver else "")
                nfe = number_of_evaluations(sampler, steps, solver or 'dpm2m')
                print(f"{label:>12} {steps:5d} {nfe:5d} {e[0]:11.4f} {e[1]:12.4f}")


if __name__ == '__main__':
    main()

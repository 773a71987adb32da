"""Speed of one analysis step: DiffusionKDEFilter against filterpy's EnKF and solve_ivp.

For every ensemble size N and dimension d = m of the grid, all variants run
in this one process on the SAME prior ensemble and observation, and each
time is the median over repeats of ONE ``update``:

* ``exact``, ``ode`` (its default steps), ``sde`` (its default steps):
  ``DiffusionKDEFilter.update`` with ``vectorized=True`` and that sampler;
* ``ivp``: the same update with the diffusion sampler replaced by the
  published approach: the probability-flow ODE ``dx/dsigma = -sigma s(x,
  sigma)`` of the whole flattened ensemble integrated by
  ``scipy.integrate.solve_ivp`` (RK45, rtol = atol = 1e-5) from the same
  ``sigma_max`` and the same exact starting draws down to 0. Its score is
  this package's (fast) ``GaussianMixture.score``, so the ratio measures the
  integrator, not a slower score; score evaluations are counted in the RHS;
* ``enkf``: ``filterpy.kalman.EnsembleKalmanFilter.update`` (per-member
  ``hx``; filterpy draws its noise from the global ``np.random``, seeded
  here before timing: this script only, never the package).

``samp ms`` is the time spent inside the sampler (``diffusion.sample`` or
the solve_ivp integration) during those same updates, ``overhead`` the
median of (update - sampler): the filter's own work (simulated
measurements, bandwidth selection, building the KDE, moments).

Accuracy is measured apart from timing, so that speed is never bought with
silent accuracy loss: the conditional mixture of one update is captured and
each sampler draws ``--acc-samples`` points from it. ``maxvar`` is the
largest relative error of a variance against the exact mixture covariance
(``GaussianMixture.cov()``), ``bias`` the mean signed relative variance
error (systematic widening or narrowing, with a much smaller Monte-Carlo
error than ``maxvar``), ``frob`` is ``||C - C*||_F / ||C*||_F``. The
``exact`` row is the Monte-Carlo floor. ``ode`` and ``ivp`` start from the
same draws, so ``(vs ivp ...)`` after the ``ode`` row, the RMS distance
between their end points over the mixture's RMS spread, is the fixed-step
solver's integration error, free of Monte-Carlo noise.

Peak memory is ``tracemalloc``'s peak during one extra update (numpy
reports its buffers to tracemalloc). Also reported: the log-log slope of
time against N at d = 40, time against the ODE's step count at N = 250,
d = 40, and one ``exact`` and one ``ode`` update at N = 10,000, d = 40.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/speed.py --out speed.json
    python benchmarks/speed.py --quick                 # < 1 minute

Before/after a change to the hot path, interleaved in one process (the
other load on the machine then favours neither):

    mkdir -p /tmp/base && git show REV:filterpy_diffusion/mixture.py > /tmp/base/mixture.py \
        && git show REV:filterpy_diffusion/diffusion.py > /tmp/base/diffusion.py
    python benchmarks/speed.py --ab /tmp/base

The thread variables default to 1 here (the speed targets are for one
core); ``--threads`` changes that.
"""
import argparse
import os
import sys


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='a subset that runs in under a minute')
    ap.add_argument('--out', help='write the results as JSON to this file')
    ap.add_argument('--n', default=None, help='comma-separated ensemble sizes (default 10,50,250,1000,5000)')
    ap.add_argument('--d', default=None, help='comma-separated dimensions d = m (default 3,10,40,100)')
    ap.add_argument('--acc-samples', type=int, default=None,
                    help='samples per sampler for the accuracy columns (default 20000; quick 4000)')
    ap.add_argument('--key-acc-samples', type=int, default=None,
                    help='accuracy samples at N = 250, d = 40 (default 100000; quick 20000)')
    ap.add_argument('--hx', choices=('identity', 'cubic'), default='identity',
                    help="measurement function: x, or x**3 / 10 (nonlinear)")
    ap.add_argument('--budget', type=float, default=None,
                    help='seconds of repeats per variant and cell (default 1.5; quick 0.25)')
    ap.add_argument('--threads', type=int, default=None, help='BLAS/OpenMP threads (default 1)')
    ap.add_argument('--no-big', action='store_true', help='skip the N = 10,000, d = 40 case')
    ap.add_argument('--no-accuracy', action='store_true', help='skip the accuracy draws')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--ab', metavar='DIR',
                    help='only an interleaved before/after comparison of update and sampler times '
                         'against mixture.py and diffusion.py taken from DIR (e.g. extracted with '
                         'git show), at N = 250, 1000 and d = 3, 40 (or --n/--d)')
    ap.add_argument('--ab-repeats', type=int, default=15)
    return ap.parse_args(argv)


ARGS = _parse(sys.argv[1:]) if __name__ == '__main__' else None
# Before numpy is imported: OpenBLAS reads these once.
_THREADS = str(ARGS.threads) if ARGS is not None and ARGS.threads else None
for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    if _THREADS is not None:
        os.environ[_var] = _THREADS
    else:
        os.environ.setdefault(_var, '1')

import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

import filterpy  # noqa: E402
from filterpy.kalman import EnsembleKalmanFilter  # noqa: E402

import filterpy_diffusion  # noqa: E402
import filterpy_diffusion.filter as filter_module  # noqa: E402
from filterpy_diffusion import DiffusionKDEFilter  # noqa: E402
from filterpy_diffusion.diffusion import (  # noqa: E402
    DEFAULT_ODE_STEPS, DEFAULT_SDE_STEPS, default_sigma_max, sample)

try:
    import threadpoolctl  # noqa: E402
except ImportError:  # optional
    threadpoolctl = None

SAMPLERS = ('exact', 'ode', 'sde')
VARIANTS = ('default', 'exact', 'ode', 'sde', 'ivp', 'enkf')
IVP_TOL = 1e-5
# Skip the solve_ivp reference where one run would take minutes: its cost is
# about (RK45 evaluations ~ 100-200) x N x M x d.
IVP_MAX_NNd = 1.0e9          # timing: N * N * d
IVP_ACC_MAX_NMd = 1.0e9      # accuracy: M * N * d


# -- the problem --------------------------------------------------------------
def make_problem(N, d, seed, hx_kind):
    """Correlated Gaussian prior ensemble (N, d), a truth, and z = hx(truth) + N(0, I)."""
    rng = np.random.default_rng([seed, N, d])
    A = rng.normal(size=(d, d)) / np.sqrt(d)
    L = np.eye(d) + A
    X0 = rng.normal(size=(N, d)) @ L.T
    truth = rng.normal(size=d) @ L.T
    if hx_kind == 'cubic':
        def hx_vec(X):
            return X ** 3 / 10.0
    else:
        def hx_vec(X):
            return X.copy()

    def hx_member(x):
        return hx_vec(x[None, :])[0]

    z = hx_vec(truth[None, :])[0] + rng.normal(size=d)
    return X0, z, hx_vec, hx_member


def _fx(x, dt):
    return x


def make_filter(X0, hx_vec, sampler, seed, steps=None):
    N, d = X0.shape
    # The covariance kernel, unsplit: every sampler draws from the same
    # mixture (the default kernel='auto' would switch to the EnKPF mixture
    # here, and clusters='auto' would add the split test's cost).
    return DiffusionKDEFilter(np.zeros(d), np.eye(d), d, 1.0, N, hx_vec, _fx, kernel='covariance',
                              clusters=1, sampler=sampler, steps=steps, rng=seed, vectorized=True)


# -- the published reference: solve_ivp over the flattened ensemble ----------
def sample_ivp(mixture, n, rng=None, counter=None, rtol=IVP_TOL, atol=IVP_TOL):
    """Probability-flow ODE of the flattened ensemble with RK45 from sigma_max to 0.

    Starts from the same exact draws of the noised mixture at the same
    ``default_sigma_max`` as ``sample(..., 'ode')``. ``counter`` (a list)
    gets one entry per RHS call (= one score evaluation of the ensemble).
    """
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    smax = default_sigma_max(mixture)
    x0 = mixture.sample(int(n), rng, sigma=smax)
    shape = x0.shape

    def rhs(s, y):
        if counter is not None:
            counter.append(s)
        return (-s) * mixture.score(y.reshape(shape), s).ravel()

    sol = solve_ivp(rhs, (smax, 0.0), x0.ravel(), method='RK45', rtol=rtol, atol=atol,
                    t_eval=[0.0])
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.y[:, -1].reshape(shape)


class _SamplerHook:
    """Temporarily route the filter's call to ``diffusion.sample``: capture the
    mixture and time the sampler inside each update, or replace the ODE
    sampler by :func:`sample_ivp`."""

    def __init__(self, replace_with_ivp=False):
        self.replace = replace_with_ivp
        self.mixture = None
        self.ivp_evals = []
        self.times = []
        self._orig = None

    def __enter__(self):
        self._orig = getattr(filter_module, 'sample', None)
        if self._orig is None:
            raise RuntimeError("filterpy_diffusion.filter has no 'sample' to hook")
        orig = self._orig

        def hooked(mixture, n, rng=None, sampler='ode', steps=None, **options):
            self.mixture = mixture
            t0 = time.perf_counter()
            if self.replace:
                counter = []
                out = sample_ivp(mixture, n, rng, counter)
                self.ivp_evals.append(len(counter))
            else:
                out = orig(mixture, n, rng, sampler, steps, **options)
            self.times.append(time.perf_counter() - t0)
            return out

        filter_module.sample = hooked
        return self

    def __exit__(self, *exc):
        filter_module.sample = self._orig
        return False


# -- measuring ----------------------------------------------------------------
def median_time(run, setup=None, budget=1.5, min_repeats=3, max_repeats=51):
    """Median wall time (s) of ``run()`` over repeats and the list of times; ``setup()`` is untimed."""
    times = []
    while len(times) < max_repeats and (len(times) < min_repeats or sum(times) < budget):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
        if len(times) == 1 and times[0] > 4 * budget:
            break          # one slow run is the measurement
    return float(np.median(times)), times


def interleaved(pairs, budget=1.5, min_repeats=5, max_repeats=201):
    """Median times of two ``(run, setup)`` pairs timed alternately, repeat by repeat.

    Returns ``{'default_s', 'enkf_s', 'ratio', 'repeats'}`` for the pairs
    (default, enkf): both medians come from the same stretch of time.
    """
    times = [[], []]
    while len(times[0]) < max_repeats and (len(times[0]) < min_repeats
                                           or sum(times[0]) + sum(times[1]) < 2 * budget):
        for k, (run, setup) in enumerate(pairs):
            setup()
            t0 = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t0)
    a, b = (float(np.median(t)) for t in times)
    return {'default_s': a, 'enkf_s': b, 'ratio': a / b, 'repeats': len(times[0])}


def timed_update(f, setup, z, budget, min_repeats=3, replace_with_ivp=False):
    """Median update time, and the median time of the sampler inside those same updates.

    Returns (update_s, sampler_s, overhead_s, repeats, hook); overhead is
    the median over repeats of (update - sampler) of the same run.
    """
    with _SamplerHook(replace_with_ivp) as hook:
        setup()
        f.update(z)                    # warm-up; captures the mixture
        hook.times.clear()
        t, times = median_time(lambda: f.update(z), setup, budget, min_repeats)
        inner = list(hook.times)
    if len(inner) != len(times):
        raise RuntimeError("the filter did not call diffusion.sample once per update")
    over = float(np.median(np.subtract(times, inner)))
    return t, float(np.median(inner)), over, len(times), hook


def peak_memory(run, setup=None):
    """tracemalloc peak (bytes) above the level at the start of ``run()``."""
    if setup is not None:
        setup()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base


def cov_errors(X, mixture):
    C = mixture.cov()
    S = np.cov(X, rowvar=False).reshape(C.shape)
    rel = (np.diag(S) - np.diag(C)) / np.diag(C)
    return {'maxvar': float(np.max(np.abs(rel))), 'bias': float(np.mean(rel)),
            'frob': float(np.linalg.norm(S - C) / np.linalg.norm(C))}


def accuracy(mixture, n, seed, with_ivp):
    """Covariance errors of n draws per sampler from one mixture.

    ``ode`` and ``ivp`` start from the same exact draws at sigma_max, so
    ``transport`` (RMS distance between their end points over the RMS
    spread of the mixture) is the fixed-step solver's integration error
    relative to RK45 at 1e-5, free of Monte-Carlo noise.
    """
    out, draws = {}, {}
    for s in SAMPLERS:
        draws[s] = sample(mixture, n, seed, s)
        out[s] = cov_errors(draws[s], mixture)
    if with_ivp:
        counter = []
        draws['ivp'] = sample_ivp(mixture, n, seed, counter)
        out['ivp'] = cov_errors(draws['ivp'], mixture)
        out['ivp']['evals'] = len(counter)
        spread = np.sqrt(np.trace(mixture.cov()))
        out['ode']['transport'] = float(
            np.sqrt(np.mean(np.sum((draws['ode'] - draws['ivp']) ** 2, axis=1))) / spread)
    for v in out.values():
        v['samples'] = n
    return out


def run_cell(N, d, args, samplers=SAMPLERS, with_ivp=True, with_enkf=True, with_accuracy=True,
             acc_samples=None, budget=None, steps_scan=None):
    budget = args.budget if budget is None else budget
    X0, z, hx_vec, hx_member = make_problem(N, d, args.seed, args.hx)
    cell = {'N': N, 'd': d, 'm': d, 'variants': {}}

    # The default filter first: what a user gets with no options.
    f = DiffusionKDEFilter(np.zeros(d), np.eye(d), d, 1.0, N, hx_vec, _fx, rng=args.seed,
                           vectorized=True)
    uniform = np.full(N, 1.0 / N)

    def setup(f=f):
        f.sigmas = X0.copy()
        f.weights = uniform     # the bridge carries weights; start each repeat afresh
    setup()
    f.update(z)
    t, reps = median_time(lambda: f.update(z), setup, budget)
    mem = peak_memory(lambda: f.update(z), setup)
    cell['variants']['default'] = {'update_s': t, 'repeats': len(reps), 'sampler_s': None,
                                   'overhead_s': None, 'evals': int(f.n_evaluations),
                                   'peak_bytes': int(mem), 'kernel_used': f.kernel_used}

    # filter variants: update time, sampler-only time, memory, evaluations
    mixture = None
    for s in samplers:
        f = make_filter(X0, hx_vec, s, args.seed)

        def setup(f=f):
            f.sigmas = X0.copy()
        t, ts, over, reps, hook = timed_update(f, setup, z, budget)
        mixture = hook.mixture
        mem = peak_memory(lambda: f.update(z), setup)
        cell['variants'][s] = {'update_s': t, 'repeats': reps, 'sampler_s': ts,
                               'overhead_s': over, 'evals': int(f.n_evaluations),
                               'peak_bytes': int(mem), 'mixture_dim': mixture.dim}

    ivp_ok = with_ivp and N * N * d <= IVP_MAX_NNd
    if ivp_ok:
        f = make_filter(X0, hx_vec, 'ode', args.seed)

        def setup(f=f):
            f.sigmas = X0.copy()
        t, ts, over, reps, hook = timed_update(f, setup, z, budget, min_repeats=1,
                                               replace_with_ivp=True)
        with _SamplerHook(replace_with_ivp=True):
            mem = peak_memory(lambda: f.update(z), setup)
        cell['variants']['ivp'] = {'update_s': t, 'repeats': reps, 'sampler_s': ts,
                                   'overhead_s': over, 'evals': int(np.median(hook.ivp_evals)),
                                   'peak_bytes': int(mem), 'mixture_dim': hook.mixture.dim}

    if with_enkf:
        e = EnsembleKalmanFilter(np.zeros(d), np.eye(d), d, 1.0, N, hx_member, _fx)
        e.R = np.eye(d)

        def setup():
            e.sigmas = X0.copy()
        np.random.seed(args.seed)      # filterpy uses the global RNG (this script only)
        setup()
        e.update(z)
        t, reps = median_time(lambda: e.update(z), setup, budget)
        mem = peak_memory(lambda: e.update(z), setup)
        cell['variants']['enkf'] = {'update_s': t, 'repeats': len(reps), 'sampler_s': None,
                                    'overhead_s': None,
                                    'evals': 0, 'peak_bytes': int(mem)}
        # The target ratio, with the two updates alternated repeat by repeat:
        # on a shared machine the speed of a process drifts (both updates ran
        # 1.7x slower in some processes than in others), and timing one after
        # the other then measures the drift as well.
        fd = DiffusionKDEFilter(np.zeros(d), np.eye(d), d, 1.0, N, hx_vec, _fx, rng=args.seed,
                                vectorized=True)

        def setup_default():
            fd.sigmas = X0.copy()
            fd.weights = uniform
        cell['default_vs_enkf'] = interleaved(
            [(lambda: fd.update(z), setup_default), (lambda: e.update(z), setup)], budget)

    enkf = cell['variants'].get('enkf', {}).get('update_s')
    for v in cell['variants'].values():
        v['ratio_enkf'] = v['update_s'] / enkf if enkf else None

    if with_accuracy and mixture is not None:
        n = acc_samples or args.acc_samples
        acc = accuracy(mixture, n, args.seed + 1,
                       with_ivp=ivp_ok and n * N * mixture.dim <= IVP_ACC_MAX_NMd)
        for k, a in acc.items():
            cell['variants'].setdefault(k, {})['accuracy'] = a
    return cell


def _fmt(x, spec, scale=1.0, width=8):
    return format(x * scale, spec) if x is not None else '-'.rjust(width)


def print_cell(cell):
    print(f"\nN = {cell['N']}, d = m = {cell['d']}")
    print(f"{'variant':>8} {'update ms':>10} {'x EnKF':>7} {'samp ms':>9} {'overhead':>9} "
          f"{'evals':>5} {'peak MB':>8} {'maxvar':>7} {'bias':>7} {'frob':>6} {'acc n':>6}")
    for name in VARIANTS:
        v = cell['variants'].get(name)
        if v is None:
            continue
        a = v.get('accuracy')
        acc = (f"{a['maxvar']:7.3f} {a['bias']:+7.3f} {a['frob']:6.3f} {a['samples']:6d}"
               if a else f"{'-':>7} {'-':>7} {'-':>6} {'-':>6}")
        if 'update_s' not in v:           # accuracy only (e.g. ivp too slow to time here)
            print(f"{name:>8} {'-':>10} {'-':>7} {'-':>9} {'-':>9} {'-':>5} {'-':>8} {acc}")
            continue
        samp = v.get('sampler_s')
        over = v.get('overhead_s')
        print(f"{name:>8} {_fmt(v['update_s'], '10.3f', 1e3, 10)} "
              f"{_fmt(v.get('ratio_enkf'), '7.2f', 1.0, 7)} {_fmt(samp, '9.3f', 1e3, 9)} "
              f"{_fmt(over, '9.3f', 1e3, 9)} {v['evals']:5d} {v['peak_bytes'] / 1e6:8.1f} {acc}"
              + (f"  (vs ivp {a['transport']:.1e})" if a and 'transport' in a else ""))


def loglog_slope(xs, ys):
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ok = np.isfinite(ys) & (ys > 0)
    if ok.sum() < 2:
        return None
    return float(np.polyfit(np.log(xs[ok]), np.log(ys[ok]), 1)[0])


def scaling_in_N(cells, d=40, n_min=250):
    """Log-log slope of update time (and sampler time) against N at fixed d."""
    rows = sorted((c for c in cells if c['d'] == d), key=lambda c: c['N'])
    out = {}
    for name in VARIANTS:
        for key in ('update_s', 'sampler_s'):
            pts = [(c['N'], c['variants'][name].get(key)) for c in rows
                   if name in c['variants'] and c['variants'][name].get(key) is not None]
            big = [(n, t) for n, t in pts if n >= n_min]
            if len(big) >= 2:
                out[f"{name}.{key}"] = {'slope': loglog_slope(*zip(*big)),
                                        'N': [n for n, _ in big]}
    return out


def scaling_in_steps(args, N=250, d=40, steps_list=(4, 8, 16, 32, 64)):
    """Update and sampler time of the ODE against its step count."""
    X0, z, hx_vec, _ = make_problem(N, d, args.seed, args.hx)
    rows = []
    for steps in steps_list:
        f = make_filter(X0, hx_vec, 'ode', args.seed, steps=steps)

        def setup(f=f):
            f.sigmas = X0.copy()
        t, ts, _, _, _ = timed_update(f, setup, z, args.budget)
        rows.append({'steps': steps, 'evals': int(f.n_evaluations), 'update_s': t, 'sampler_s': ts})
    s = np.array([r['steps'] for r in rows], float)
    out = {'N': N, 'd': d, 'rows': rows}
    for key in ('update_s', 'sampler_s'):
        y = np.array([r[key] for r in rows])
        b, a = np.polyfit(s, y, 1)
        out[key] = {'loglog_slope': loglog_slope(s, y), 'per_step_s': float(b),
                    'fixed_s': float(a)}
    return out


def big_case(args, N=10_000, d=40):
    """One exact and one ode update at N = 10,000, d = 40: time and tracemalloc peak."""
    X0, z, hx_vec, hx_member = make_problem(N, d, args.seed, args.hx)
    out = {'N': N, 'd': d}
    for s in ('default', 'exact', 'ode'):
        f = (DiffusionKDEFilter(np.zeros(d), np.eye(d), d, 1.0, N, hx_vec, _fx, rng=args.seed,
                                vectorized=True) if s == 'default'
             else make_filter(X0, hx_vec, s, args.seed))
        f.sigmas = X0.copy()
        tracemalloc.start()
        t0 = time.perf_counter()
        f.update(z)
        t = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[s] = {'update_s': t, 'peak_bytes': int(peak), 'evals': int(f.n_evaluations),
                  'finite': bool(np.all(np.isfinite(f.sigmas))),
                  'note': 'timed under tracemalloc (slower than untraced)'}
    e = EnsembleKalmanFilter(np.zeros(d), np.eye(d), d, 1.0, N, hx_member, _fx)
    e.R = np.eye(d)
    np.random.seed(args.seed)
    e.sigmas = X0.copy()
    t0 = time.perf_counter()
    e.update(z)
    out['enkf'] = {'update_s': time.perf_counter() - t0}
    return out


def load_baseline(directory):
    """``(GaussianMixture, sample)`` from mixture.py and diffusion.py in ``directory``.

    They are loaded as a package whose other modules (``_validation``)
    come from the installed filterpy_diffusion.
    """
    import importlib.util
    import types
    name = 'filterpy_diffusion_baseline'
    pkg = types.ModuleType(name)
    pkg.__path__ = [os.path.abspath(directory), os.path.dirname(filterpy_diffusion.__file__)]
    sys.modules[name] = pkg
    mods = {}
    for mod in ('_validation', 'mixture', 'diffusion'):
        path = os.path.join(directory, mod + '.py')
        if not os.path.exists(path):
            path = os.path.join(os.path.dirname(filterpy_diffusion.__file__), mod + '.py')
        spec = importlib.util.spec_from_file_location(f'{name}.{mod}', path)
        m = importlib.util.module_from_spec(spec)
        sys.modules[f'{name}.{mod}'] = m
        spec.loader.exec_module(m)
        mods[mod] = m
    return mods['mixture'].GaussianMixture, mods['diffusion'].sample


def _timed(sample_fn, sink):
    def timed(mixture, n, rng=None, sampler='ode', steps=None, **options):
        t0 = time.perf_counter()
        out = sample_fn(mixture, n, rng, sampler, steps, **options)
        sink.append(time.perf_counter() - t0)
        return out
    return timed


def ab_compare(args, Ns, ds):
    """Interleaved A/B: each repeat runs the baseline and the current code back to back.

    The baseline's GaussianMixture and sample replace the current ones in
    kde.py and filter.py for its runs; everything else (the filter, the
    bandwidth search, the problem) is shared. Alternating the two inside
    one loop keeps other load on the machine from favouring either.
    """
    import filterpy_diffusion.kde as kde_module
    base_mixture, base_sample = load_baseline(args.ab)
    cur_mixture, cur_sample = kde_module.GaussianMixture, filter_module.sample
    rows = []
    print(f"\nbefore = {args.ab}, after = {os.path.dirname(filterpy_diffusion.__file__)}; "
          f"{args.ab_repeats} interleaved repeats, medians")
    print(f"{'N':>5} {'d':>4} {'sampler':>7} {'update before':>13} {'after':>9} {'speedup':>7} "
          f"{'sampler before':>14} {'after':>9} {'speedup':>7}")
    for d in ds:
        for N in Ns:
            X0, z, hx_vec, _ = make_problem(N, d, args.seed, args.hx)
            for s in SAMPLERS:
                res = {}
                filters = {k: make_filter(X0, hx_vec, s, args.seed) for k in ('before', 'after')}
                times = {k: ([], []) for k in filters}
                for rep in range(args.ab_repeats + 1):
                    for k in ('before', 'after') if rep % 2 else ('after', 'before'):
                        inner = []
                        kde_module.GaussianMixture = base_mixture if k == 'before' else cur_mixture
                        filter_module.sample = _timed(base_sample if k == 'before' else cur_sample,
                                                      inner)
                        f = filters[k]
                        f.sigmas = X0.copy()
                        try:
                            t0 = time.perf_counter()
                            f.update(z)
                            t = time.perf_counter() - t0
                        finally:
                            kde_module.GaussianMixture = cur_mixture
                            filter_module.sample = cur_sample
                        if rep:                      # the first round is a warm-up
                            times[k][0].append(t)
                            times[k][1].append(inner[-1])
                kde_module.GaussianMixture = cur_mixture
                filter_module.sample = cur_sample
                for k in times:
                    res[k] = (float(np.median(times[k][0])), float(np.median(times[k][1])))
                (ub, sb), (ua, sa) = res['before'], res['after']
                rows.append({'N': N, 'd': d, 'sampler': s, 'update_before_s': ub,
                             'update_after_s': ua, 'sampler_before_s': sb, 'sampler_after_s': sa})
                print(f"{N:5d} {d:4d} {s:>7} {1e3 * ub:11.2f}ms {1e3 * ua:7.2f}ms {ub / ua:6.2f}x "
                      f"{1e3 * sb:12.3f}ms {1e3 * sa:7.3f}ms {sb / sa:6.2f}x")
                sys.stdout.flush()
    return rows


def environment():
    info = {
        'python': platform.python_version(), 'numpy': np.__version__, 'scipy': scipy.__version__,
        'filterpy': filterpy.__version__,
        'filterpy_diffusion': getattr(filterpy_diffusion, '__version__', None),
        'machine': platform.machine(), 'processor': platform.processor(),
        'cpu_count': os.cpu_count(),
        'env': {k: os.environ.get(k) for k in (
            'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS',
            'OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE')},
        'loadavg_start': os.getloadavg() if hasattr(os, 'getloadavg') else None,
        'default_ode_steps': DEFAULT_ODE_STEPS, 'default_sde_steps': DEFAULT_SDE_STEPS,
    }
    try:
        with open('/proc/cpuinfo') as fh:
            for line in fh:
                if line.startswith('model name'):
                    info['cpu'] = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    if threadpoolctl is not None:
        info['threadpools'] = [{k: p.get(k) for k in
                                ('user_api', 'internal_api', 'num_threads', 'version',
                                 'architecture')}
                               for p in threadpoolctl.threadpool_info()]
    return info


def print_header(info, args):
    print("Speed of one analysis step (median of repeats, one process, same ensemble and z)")
    print(f"python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}, "
          f"filterpy {info['filterpy']}; {info.get('cpu', info['processor'])}, "
          f"{info['cpu_count']} cpus")
    print("threads: " + ", ".join(f"{k}={v}" for k, v in info['env'].items() if v is not None))
    for k in ('OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'):
        if info['env'].get(k):
            print(f"WARNING: {k} is set ({info['env'][k]}): it can slow numpy's BLAS; "
                  f"unset it for representative numbers")
    if info.get('threadpools'):
        for p in info['threadpools']:
            print(f"threadpoolctl: {p['internal_api']} {p.get('version')} "
                  f"({p.get('architecture')}), {p['num_threads']} thread(s)")
    else:
        print("threadpoolctl: not installed (pip install threadpoolctl to report BLAS threads)")
    if info.get('loadavg_start'):
        print(f"load average at start: {info['loadavg_start'][0]:.2f} "
              f"(other processes on this machine inflate times)")
    print(f"hx = {args.hx}; ode = DPM-Solver++(2M), {DEFAULT_ODE_STEPS} steps; sde = ancestral, "
          f"{DEFAULT_SDE_STEPS} steps; ivp = solve_ivp RK45 rtol=atol={IVP_TOL:g} "
          f"(score evals counted)")


def summarise(result):
    """The speed targets at N = 250, d = 40, scaling exponents and the big case."""
    lines = []
    for c in result['cells']:      # the default first
        v = c['variants']
        if 'default_vs_enkf' in c:
            iv = c['default_vs_enkf']
            lines.append(f"N = {c['N']}, d = m = {c['d']}: default update "
                         f"{1e3 * iv['default_s']:.2f} ms = {iv['ratio']:.2f}x filterpy's EnKF "
                         f"({1e3 * iv['enkf_s']:.2f} ms; alternated, {iv['repeats']} repeats each; "
                         f"target <= 3x), analysis {v['default'].get('kernel_used')}")
    key = next((c for c in result['cells'] if c['N'] == 250 and c['d'] == 40), None)
    if key is not None:
        v = key['variants']
        enkf = v['enkf']['update_s']
        ode, ex = v['ode'], v['exact']
        acc = ode.get('accuracy') or {}
        floor = (ex.get('accuracy') or {}).get('maxvar')
        lines.append(f"N = 250, d = m = 40 (filterpy EnKF update {1e3 * enkf:.2f} ms):")
        lines.append(f"  ode  update {1e3 * ode['update_s']:.2f} ms = {ode['update_s'] / enkf:.1f}x EnKF "
                     f"(target <= 10x, stretch <= 3x); sampler alone {1e3 * ode['sampler_s']:.2f} ms = "
                     f"{ode['sampler_s'] / enkf:.1f}x EnKF")
        if acc:
            lines.append(f"       accuracy: max variance error {acc['maxvar']:.3f}, bias {acc['bias']:+.3f} "
                         f"(exact-sampling floor {floor:.3f}, {acc['samples']} samples; target 0.03)")
            if 'transport' in acc:
                lines.append(f"       end points vs solve_ivp from the same start: RMS distance "
                             f"{acc['transport']:.2e} of the mixture's RMS spread")
        if 'ivp' in v and 'update_s' in v['ivp']:
            iv = v['ivp']
            lines.append(f"       vs solve_ivp: update {iv['update_s'] / ode['update_s']:.1f}x faster, "
                         f"sampler {iv['sampler_s'] / ode['sampler_s']:.1f}x faster "
                         f"({iv['evals']} vs {ode['evals']} score evaluations; target >= 5x)")
            ia = iv.get('accuracy')
            if ia:
                lines.append(f"       solve_ivp accuracy: max variance error {ia['maxvar']:.3f}, "
                             f"bias {ia['bias']:+.3f}")
        lines.append(f"  exact update {1e3 * ex['update_s']:.2f} ms = {ex['update_s'] / enkf:.2f}x EnKF "
                     f"(target < 1x); sampler alone {1e3 * ex['sampler_s']:.3f} ms")
    if result.get('scaling_N'):
        lines.append("scaling exponent in N at d = 40 (log-log slope over N >= 250):")
        for k, v in result['scaling_N'].items():
            lines.append(f"  {k:<18} {v['slope']:.2f}  (N = {v['N']})")
    if result.get('scaling_steps'):
        st = result['scaling_steps']
        u, s = st['update_s'], st['sampler_s']
        lines.append(f"ODE time vs steps at N = {st['N']}, d = {st['d']}: update slope "
                     f"{u['loglog_slope']:.2f} ({1e3 * u['per_step_s']:.3f} ms/step + "
                     f"{1e3 * u['fixed_s']:.2f} ms), sampler slope {s['loglog_slope']:.2f} "
                     f"({1e3 * s['per_step_s']:.3f} ms/step + {1e3 * s['fixed_s']:.2f} ms)")
        for r in st['rows']:
            lines.append(f"  steps {r['steps']:3d}: update {1e3 * r['update_s']:8.2f} ms, "
                         f"sampler {1e3 * r['sampler_s']:8.2f} ms")
    if result.get('big'):
        b = result['big']
        for s in ('default', 'exact', 'ode'):
            lines.append(f"N = {b['N']}, d = {b['d']} {s}: {b[s]['update_s']:.2f} s (under tracemalloc), "
                         f"peak {b[s]['peak_bytes'] / 1e6:.0f} MB (target < 2000 MB), "
                         f"{'finite' if b[s]['finite'] else 'NON-FINITE'}")
        lines.append(f"N = {b['N']}, d = {b['d']} filterpy EnKF update: {b['enkf']['update_s']:.2f} s")
    return lines


def main(args):
    quick = args.quick
    if args.budget is None:
        args.budget = 0.25 if quick else 1.5
    if args.acc_samples is None:
        args.acc_samples = 4000 if quick else 20_000
    if args.key_acc_samples is None:
        args.key_acc_samples = 20_000 if quick else 100_000
    Ns = [int(x) for x in args.n.split(',')] if args.n else (
        [10, 250, 1000] if quick else [10, 50, 250, 1000, 5000])
    ds = [int(x) for x in args.d.split(',')] if args.d else ([3, 40] if quick else [3, 10, 40, 100])

    info = environment()
    print_header(info, args)
    if args.ab:
        Ns = [int(x) for x in args.n.split(',')] if args.n else [250, 1000]
        ds = [int(x) for x in args.d.split(',')] if args.d else [3, 40]
        result = {'environment': info, 'args': vars(args), 'ab': ab_compare(args, Ns, ds)}
        if args.out:
            with open(args.out, 'w') as fh:
                json.dump(result, fh, indent=1, default=float)
            print(f"wrote {args.out}")
        return result
    result = {'environment': info, 'args': vars(args), 'cells': []}
    t_start = time.perf_counter()
    warnings.simplefilter('ignore', RuntimeWarning)   # e.g. bandwidth floors on tiny ensembles
    for d in ds:
        for N in Ns:
            t0 = time.perf_counter()
            acc_n = args.key_acc_samples if (N, d) == (250, 40) else args.acc_samples
            cell = run_cell(N, d, args, with_accuracy=not args.no_accuracy, acc_samples=acc_n)
            cell['wall_s'] = time.perf_counter() - t0
            result['cells'].append(cell)
            print_cell(cell)
            sys.stdout.flush()
    if 40 in ds:
        result['scaling_N'] = scaling_in_N(result['cells'], 40)
        result['scaling_steps'] = scaling_in_steps(
            args, steps_list=(4, 8, 16, 32) if quick else (4, 8, 16, 32, 64))
    if not (quick or args.no_big):
        result['big'] = big_case(args)
    result['environment']['loadavg_end'] = os.getloadavg() if hasattr(os, 'getloadavg') else None
    result['environment']['maxrss_bytes'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result['wall_s'] = time.perf_counter() - t_start
    print("\nSummary")
    for line in summarise(result):
        print(line)
    print(f"\ntotal wall time {result['wall_s']:.0f} s; process max RSS "
          f"{result['environment']['maxrss_bytes'] / 1e6:.0f} MB; load average at end "
          f"{result['environment']['loadavg_end'][0]:.2f}")
    if args.out:
        with open(args.out, 'w') as fh:
            json.dump(result, fh, indent=1, default=float)
        print(f"wrote {args.out}")
    return result


if __name__ == '__main__':
    main(ARGS)

"""toy-abs: a 1-D random walk seen through ``|x|``; the posterior has two mirror modes.

Truth ``x_0 = 1``, ``x_{k+1} = x_k + N(0, 0.1^2)``; observation
``z_k = |x_{k+1}| + N(0, 0.1^2)``; 100 cycles, no spin-up. The initial
ensemble is an equal mixture of N(+1, 0.1^2) and N(-1, 0.1^2), so the sign
of ``x`` is never observed and the exact posterior (a grid filter,
:func:`~filterpy_diffusion.bench.reference.grid_posterior_toy_abs`) keeps
both modes. Scored by W2 to that posterior; no lost-track threshold.
"""
import numpy as np

from ..models import AbsObs, RandomWalkModel
from ..twin import Problem

__all__ = ["PROBLEM", "KNOWN"]

PROBLEM = Problem(
    name="toy-abs", system="random-walk", dim=1, dt_int=None, obs_every=1,
    hx=AbsObs(), dim_z=1, R=np.array([[0.1 ** 2]]), Q=np.array([[0.1 ** 2]]),
    cycles=100, spinup=0, lost_threshold=None, bimodal=True, fx=RandomWalkModel(),
    x0=(1.0,), truth_perturbation=0.0, truth_spinup_steps=0,
    truth_process_noise=True, initial="mixture", reference="grid")

#: What this problem gives, measured by ``KNOWN["command"]`` into ``KNOWN["json"]``
#: (reporting seeds 100-104; tuning seed 0; the problem's own cycles and spin-up;
#: dkf with its defaults, dkf-previous the default before issue 15 (2bea172,
#: ``/tmp/previous`` a worktree of it), dkf with the rule of design-log entry 50
#: off, the enkf inflation and the sir jitter tuned): mean over the reporting
#: seeds that kept track, 3 significant digits, None if none did; ``lost``: how
#: many seeds lost track or diverged.
KNOWN = {
    "json": "docs/data/bench_previous_default.json",
    "command": "python benchmarks/previous_default.py --checkout /tmp/previous --problems toy-abs l63-z --filters dkf-previous dkf dkf:policy={'mode_difference_alpha':1.0} enkf sir --N 20 50 100 250 --seeds 100 101 102 103 104 --tuning-seeds 0 --workers 1 --no-progress --out docs/data/bench_previous_default.json",
    "rmse": {
        "dkf-previous": {20: 0.937, 50: 0.933, 100: 0.903, 250: 0.914},
        "dkf": {20: 1.03, 50: 1.03, 100: 0.992, 250: 1.02},
        "dkf:policy={'mode_difference_alpha':1.0}": {20: 1.02, 50: 1.03, 100: 0.992, 250: 1.02},
        "enkf": {20: 0.688, 50: 1.2, 100: 0.914, 250: 1.13},
        "sir": {20: 0.506, 50: 1.24, 100: 0.65, 250: 1.41},
    },
    "w2": {
        "dkf-previous": {20: 0.322, 50: 0.395, 100: 0.299, 250: 0.273},
        "dkf": {20: 0.305, 50: 0.13, 100: 0.0756, 250: 0.0959},
        "dkf:policy={'mode_difference_alpha':1.0}": {20: 0.387, 50: 0.13, 100: 0.0756, 250: 0.0959},
        "enkf": {20: 1.18, 50: 0.881, 100: 0.781, 250: 0.743},
        "sir": {20: 1.16, 50: 1.1, 100: 0.885, 250: 0.745},
    },
    "lost": {},
}

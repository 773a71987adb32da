"""l63-full: Lorenz-63, every variable observed with noise 2^2 I.

dt 0.01, 10 RK4 steps per cycle, Q = 0.1^2 I, 1000 cycles (100 spin-up);
the truth starts at ``(1, 1, 1)`` + N(0, I) spun up for 2000 steps, the
initial ensemble is the truth + N(0, I). A near-Gaussian problem: the EnKF's
home ground. Lost track above a time-mean RMSE of 3; W2 to a bootstrap
particle filter with 20,000 particles.
"""
import numpy as np

from ..models import IdentityObs
from ..twin import lorenz63_problem

__all__ = ["PROBLEM", "KNOWN"]

PROBLEM = lorenz63_problem("l63-full", IdentityObs(), 3, 2.0 ** 2 * np.eye(3), 3.0, False)

#: What this problem gives, measured by ``KNOWN["command"]`` into ``KNOWN["json"]``
#: (reporting seeds 100, 101; tuning seed 0; 300 cycles, 50 spin-up;
#: dkf with its defaults, the enkf inflation and the sir jitter tuned): mean
#: over the reporting seeds that kept track, 3 significant digits, None if
#: none did; ``lost``: how many seeds lost track or diverged.
KNOWN = {
    "json": "docs/data/bench_quick.json",
    "command": 'python -m filterpy_diffusion.bench --quick --no-progress --workers 1 --out docs/data/bench_quick.json',
    "rmse": {
        "dkf": {20: 0.548, 100: 0.472},
        "enkf": {20: 0.549, 100: 0.544},
        "sir": {20: 0.487, 100: 0.458},
    },
    "w2": {
        "dkf": {20: 0.754, 100: 0.41},
        "enkf": {20: 0.731, 100: 0.621},
        "sir": {20: 0.84, 100: 0.442},
    },
    "lost": {'sir': {20: 1}},
}

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
#: (reporting seeds 100-104; tuning seeds 0-2; the problem's own cycles and spin-up;
#: dkf with its defaults, the enkf inflation and the sir jitter tuned): mean
#: over the reporting seeds that kept track, 3 significant digits, None if
#: none did; ``lost``: how many seeds lost track or diverged.
KNOWN = {
    "json": "docs/data/bench_grid.json",
    "command": 'python -m filterpy_diffusion.bench --filters dkf enkf sir --N 20 50 100 250 --seeds 100 101 102 103 104 --tuning-seeds 0 1 2 --workers 2 --no-progress --out docs/data/bench_grid.json',
    "rmse": {
        "dkf": {20: 0.478, 50: 0.446, 100: 0.419, 250: 0.407},
        "enkf": {20: 0.505, 50: 0.513, 100: 0.501, 250: 0.501},
        "sir": {20: 1.01, 50: 0.507, 100: 0.42, 250: 0.397},
    },
    "w2": {
        "dkf": {20: 0.655, 50: 0.515, 100: 0.394, 250: 0.269},
        "enkf": {20: 0.688, 50: 0.606, 100: 0.548, 250: 0.528},
        "sir": {20: 1.55, 50: 0.67, 100: 0.367, 250: 0.256},
    },
    "lost": {'sir': {20: 1}},
}

"""l63-cubic: Lorenz-63 seen through ``x^3 / 100`` componentwise, noise 2^2 I.

A strongly non-linear (but one-to-one) measurement of every variable;
otherwise the settings of ``l63-full``. Lost track above a time-mean RMSE
of 3.
"""
import numpy as np

from ..models import CubicObs
from ..twin import lorenz63_problem

__all__ = ["PROBLEM", "KNOWN"]

PROBLEM = lorenz63_problem("l63-cubic", CubicObs(100.0), 3, 2.0 ** 2 * np.eye(3), 3.0, False)

#: What this problem gives, measured by ``KNOWN["command"]`` into ``KNOWN["json"]``
#: (reporting seeds 100-104; tuning seeds 0-2; the problem's own cycles and spin-up;
#: dkf with its defaults, the enkf inflation and the sir jitter tuned): mean
#: over the reporting seeds that kept track, 3 significant digits, None if
#: none did; ``lost``: how many seeds lost track or diverged.
KNOWN = {
    "json": "docs/data/bench_grid.json",
    "command": 'python -m filterpy_diffusion.bench --filters dkf enkf sir --N 20 50 100 250 --seeds 100 101 102 103 104 --tuning-seeds 0 1 2 --workers 2 --no-progress --out docs/data/bench_grid.json',
    "rmse": {
        "dkf": {20: 0.139, 50: 0.116, 100: 0.108, 250: 0.106},
        "enkf": {20: 0.141, 50: 0.133, 100: 0.13, 250: 0.129},
        "sir": {20: 0.163, 50: 0.118, 100: 0.111, 250: 0.106},
    },
    "w2": {
        "dkf": {20: 0.245, 50: 0.188, 100: 0.151, 250: 0.116},
        "enkf": {20: 0.24, 50: 0.193, 100: 0.175, 250: 0.155},
        "sir": {20: 0.302, 50: 0.192, 100: 0.152, 250: 0.104},
    },
    "lost": {'sir': {20: 1}},
}

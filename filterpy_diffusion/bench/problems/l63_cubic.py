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
#: (reporting seeds 100, 101; tuning seed 0; 300 cycles, 50 spin-up;
#: dkf with its defaults, the enkf inflation and the sir jitter tuned): mean
#: over the reporting seeds that kept track, 3 significant digits, None if
#: none did; ``lost``: how many seeds lost track or diverged.
KNOWN = {
    "json": "docs/data/bench_other.json",
    "command": 'python -m filterpy_diffusion.bench --problems l63-cubic l96-10-abs l96-20-cubic l96-40 --filters dkf enkf sir --N 20 --seeds 100 101 --tuning-seeds 0 --cycles 300 --spinup 50 --no-progress --workers 1 --out docs/data/bench_other.json',
    "rmse": {
        "dkf": {20: 0.162},
        "enkf": {20: 0.137},
        "sir": {20: 0.171},
    },
    "w2": {
        "dkf": {20: 0.258},
        "enkf": {20: 0.27},
        "sir": {20: 0.267},
    },
    "lost": {},
}

"""l96-40: Lorenz-96 with 40 variables, every variable observed (noise I), no model noise.

The standard localization test bed (F = 8, dt 0.05, 1000 cycles, 200
spin-up, lost track above a time-mean RMSE of 2); the localized filters
(``ldkf``, ``letkf``) run here on the cyclic 1-D grid.
"""
import numpy as np

from ..models import IdentityObs
from ..twin import lorenz96_problem

__all__ = ["PROBLEM", "KNOWN"]

PROBLEM = lorenz96_problem("l96-40", 40, IdentityObs(), np.zeros((40, 40)))

#: What this problem gives, measured by ``KNOWN["command"]`` into ``KNOWN["json"]``
#: (reporting seeds 100, 101; tuning seed 0; 300 cycles, 50 spin-up;
#: dkf with its defaults, the enkf inflation and the sir jitter tuned): mean
#: over the reporting seeds that kept track, 3 significant digits, None if
#: none did; ``lost``: how many seeds lost track or diverged.
KNOWN = {
    "json": "docs/data/bench_other.json",
    "command": 'python -m filterpy_diffusion.bench --problems l63-cubic l96-10-abs l96-20-cubic l96-40 --filters dkf enkf sir --N 20 --seeds 100 101 --tuning-seeds 0 --cycles 300 --spinup 50 --no-progress --workers 1 --out docs/data/bench_other.json',
    "rmse": {
        "dkf": {20: 0.175},
        "enkf": {20: 0.325},
        "sir": {20: None},
    },
    "w2": None,
    "lost": {'sir': {20: 2}},
}

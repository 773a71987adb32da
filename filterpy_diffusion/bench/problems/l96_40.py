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
#: (reporting seeds 100-104; tuning seeds 0-2; the problem's own cycles and spin-up;
#: dkf with its defaults, the enkf inflation and the sir jitter tuned): mean
#: over the reporting seeds that kept track, 3 significant digits, None if
#: none did; ``lost``: how many seeds lost track or diverged.
KNOWN = {
    "json": "docs/data/bench_grid.json",
    "command": 'python -m filterpy_diffusion.bench --filters dkf enkf sir --N 20 50 100 250 --seeds 100 101 102 103 104 --tuning-seeds 0 1 2 --workers 2 --no-progress --out docs/data/bench_grid.json',
    "rmse": {
        "dkf": {20: 0.184, 50: 0.175, 100: 0.171, 250: 0.177},
        "enkf": {20: 0.355, 50: 0.203, 100: 0.185, 250: 0.175},
        "sir": {20: None, 50: None, 100: None, 250: None},
    },
    "w2": None,
    "lost": {'sir': {20: 5, 50: 5, 100: 5, 250: 5}},
}

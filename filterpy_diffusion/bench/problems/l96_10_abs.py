"""l96-10-abs: Lorenz-96 with 10 variables seen through ``|x|`` (noise I), Q = 0.1^2 I.

F = 8, one RK4 step of 0.05 per cycle, 1000 cycles (200 spin-up), lost
track above a time-mean RMSE of 2. The sign of each variable is not
observed, only its magnitude.
"""
import numpy as np

from ..models import AbsObs
from ..twin import lorenz96_problem

__all__ = ["PROBLEM", "KNOWN"]

PROBLEM = lorenz96_problem("l96-10-abs", 10, AbsObs(), 0.1 ** 2 * np.eye(10))

#: What this problem gives, measured by ``KNOWN["command"]`` into ``KNOWN["json"]``
#: (reporting seeds 100-104; tuning seeds 0-2; the problem's own cycles and spin-up;
#: dkf with its defaults, the enkf inflation and the sir jitter tuned): mean
#: over the reporting seeds that kept track, 3 significant digits, None if
#: none did; ``lost``: how many seeds lost track or diverged.
KNOWN = {
    "json": "docs/data/bench_grid.json",
    "command": 'python -m filterpy_diffusion.bench --filters dkf enkf sir --N 20 50 100 250 --seeds 100 101 102 103 104 --tuning-seeds 0 1 2 --workers 2 --no-progress --out docs/data/bench_grid.json',
    "rmse": {
        "dkf": {20: 0.282, 50: 0.266, 100: 0.261, 250: 0.326},
        "enkf": {20: 0.285, 50: 0.269, 100: 0.259, 250: 0.257},
        "sir": {20: None, 50: 0.361, 100: 0.357, 250: 0.878},
    },
    "w2": None,
    "lost": {'sir': {20: 5, 250: 1}},
}

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

KNOWN = None

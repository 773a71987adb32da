"""l96-20-cubic: Lorenz-96 with 20 variables seen through ``x^3 / 10`` (noise I), Q = 0.1^2 I.

The settings of ``l96-10-abs`` otherwise (F = 8, dt 0.05, 1000 cycles,
200 spin-up, lost track above a time-mean RMSE of 2).
"""
import numpy as np

from ..models import CubicObs
from ..twin import lorenz96_problem

__all__ = ["PROBLEM", "KNOWN"]

PROBLEM = lorenz96_problem("l96-20-cubic", 20, CubicObs(10.0), 0.1 ** 2 * np.eye(20))

KNOWN = None

"""l96-10-abs: Lorenz-96 with 10 variables seen through ``|x|`` (noise I), Q = 0.1^2 I.

F = 8, one RK4 step of 0.05 per cycle, 1000 cycles (200 spin-up), lost
track above a time-mean RMSE of 2. Each variable's sign is unobserved, so
the posterior can split; the dynamics usually tell the signs apart.
"""
import numpy as np

from ..models import AbsObs
from ..twin import lorenz96_problem

__all__ = ["PROBLEM", "KNOWN"]

PROBLEM = lorenz96_problem("l96-10-abs", 10, AbsObs(), 0.1 ** 2 * np.eye(10))

KNOWN = None

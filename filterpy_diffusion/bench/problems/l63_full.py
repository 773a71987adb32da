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

KNOWN = None

"""l63-cubic: Lorenz-63 seen through ``x^3 / 100`` componentwise, noise 2^2 I.

A strongly non-linear measurement of every variable (one-to-one, so the
posterior stays unimodal but skewed); otherwise the settings of
``l63-full``. Lost track above a time-mean RMSE of 3.
"""
import numpy as np

from ..models import CubicObs
from ..twin import lorenz63_problem

__all__ = ["PROBLEM", "KNOWN"]

PROBLEM = lorenz63_problem("l63-cubic", CubicObs(100.0), 3, 2.0 ** 2 * np.eye(3), 3.0, False)

KNOWN = None

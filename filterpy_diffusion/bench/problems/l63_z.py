"""l63-z: Lorenz-63 seen only through ``z``; the posterior is bimodal.

The model's symmetry ``(x, y) -> (-x, -y)`` leaves ``z`` (noise 2^2) blind to
the lobe, so the posterior has one mode on each lobe of the attractor. The
initial ensemble samples the attractor (states 50 steps apart along a free
run), not the truth's neighbourhood. Otherwise the settings of ``l63-full``.
Scored by W2 to a bootstrap particle filter with 20,000 particles; no
lost-track threshold.
"""
import numpy as np

from ..models import ComponentObs
from ..twin import lorenz63_problem

__all__ = ["PROBLEM", "KNOWN"]

PROBLEM = lorenz63_problem("l63-z", ComponentObs((2,)), 1, np.array([[2.0 ** 2]]), None, True,
                           initial="attractor")

KNOWN = None

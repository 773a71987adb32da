"""toy-abs: a 1-D random walk seen through ``|x|``; the posterior has two mirror modes.

Truth ``x_0 = 1``, ``x_{k+1} = x_k + N(0, 0.1^2)``; observation
``z_k = |x_{k+1}| + N(0, 0.1^2)``; 100 cycles, no spin-up. The initial
ensemble is an equal mixture of N(+1, 0.1^2) and N(-1, 0.1^2), so the sign
of ``x`` is never observed and the exact posterior (a grid filter,
:func:`~filterpy_diffusion.bench.reference.grid_posterior_toy_abs`) keeps
both modes. Scored by W2 to that posterior; no lost-track threshold.
"""
import numpy as np

from ..models import AbsObs, RandomWalkModel
from ..twin import Problem

__all__ = ["PROBLEM", "KNOWN"]

PROBLEM = Problem(
    name="toy-abs", system="random-walk", dim=1, dt_int=None, obs_every=1,
    hx=AbsObs(), dim_z=1, R=np.array([[0.1 ** 2]]), Q=np.array([[0.1 ** 2]]),
    cycles=100, spinup=0, lost_threshold=None, bimodal=True, fx=RandomWalkModel(),
    x0=(1.0,), truth_perturbation=0.0, truth_spinup_steps=0,
    truth_process_noise=True, initial="mixture", reference="grid")

KNOWN = None

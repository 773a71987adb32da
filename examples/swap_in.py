"""Swap filterpy's EnsembleKalmanFilter for DiffusionKDEFilter: one name changes.

The script below is filterpy's own EnKF example (a constant-velocity target
measured in position); the only edit is the class on the marked line.
Run: python examples/swap_in.py
"""
import numpy as np
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import EnsembleKalmanFilter  # noqa: F401  (the original)

from filterpy_diffusion import DiffusionKDEFilter


def hx(x):
    return np.array([x[0]])


F = np.array([[1., 1.],
              [0., 1.]])


def fx(x, dt):
    return np.dot(F, x)


x = np.array([0., 1.])
P = np.eye(2) * 100.
dt = 1.0
# f = EnsembleKalmanFilter(x=x, P=P, dim_z=1, dt=dt, N=100, hx=hx, fx=fx)
f = DiffusionKDEFilter(x=x, P=P, dim_z=1, dt=dt, N=100, hx=hx, fx=fx)   # <- the swap
std_noise = 3.
f.R *= std_noise**2
f.Q = Q_discrete_white_noise(2, dt, .01)

rng = np.random.default_rng(0)
truth = np.array([0., 1.])
for k in range(30):
    truth = F @ truth
    z = truth[0] + rng.normal(0, std_noise)
    f.predict()
    f.update(np.asarray([z]))
    if k % 5 == 4:
        print(f"step {k+1:2d}  truth {truth[0]:7.2f}  estimate {f.x[0]:7.2f} ± {np.sqrt(f.P[0, 0]):5.2f}"
              f"  (ESS {f.ess:5.1f})")

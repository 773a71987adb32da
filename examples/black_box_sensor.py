"""A black-box sensor: the filter can only call a stochastic simulator of it.

Lorenz-96 with 10 variables, each measured as |x_j| plus noise that the
user's code draws itself (``simulate(X, rng)``); neither ``hx`` nor ``R``
is handed to the filter (``hx=None``). Three runs on the same truth:

* ``simulations=1`` (the default): the likelihood-free path, the covariance
  kernel on one simulated measurement per member;
* ``simulations=4``: four draws per member estimate ``hx`` (their mean) and
  ``R`` (their scatter, pooled over updates), and the update is the one a
  user with ``hx`` and ``R`` gets (``R_estimate`` shows what was learnt);
* the default given the true ``hx`` and ``R``, for reference.

Run: python examples/black_box_sensor.py   (a few seconds)
"""
import numpy as np

from filterpy_diffusion import DiffusionKDEFilter
from filterpy_diffusion.systems import LorenzModel

d, N, cycles, spinup = 10, 50, 300, 100
fx = LorenzModel('l96', 0.05, 1)
noise_sd = 1.0


def hx(X):                      # what the sensor computes, hidden from the filter
    return np.abs(X)


def simulate(X, rng):           # the black box: one noisy reading per row of X
    return hx(X) + noise_sd * rng.standard_normal(X.shape)


rng = np.random.default_rng(1)
truth = np.full(d, 8.0) + rng.normal(0, 1, d)
for _ in range(200):            # onto the attractor
    truth = fx(truth[None], 0.05)[0]
truths, zs = [], []
for _ in range(cycles):
    truth = fx(truth[None], 0.05)[0] + rng.normal(0, 0.1, d)
    truths.append(truth)
    zs.append(hx(truth) + noise_sd * rng.standard_normal(d))

runs = {
    "simulate, simulations=1": {"hx": None, "simulate": simulate},
    "simulate, simulations=4": {"hx": None, "simulate": simulate, "simulations": 4},
    "hx and R given": {"hx": hx},
}
for name, options in runs.items():
    f = DiffusionKDEFilter(truths[0] + rng.normal(0, 1, d), np.eye(d), d, 0.05, N, fx=fx,
                           rng=0, vectorized=True, **options)
    f.Q = np.eye(d) * 0.01
    f.R = np.eye(d) * noise_sd ** 2      # used only by the run with hx
    errors = []
    for t, z in zip(truths, zs):
        f.predict()
        f.update(z)
        errors.append(np.sqrt(np.mean((f.x - t) ** 2)))
    line = f"{name:26s} RMSE {np.mean(errors[spinup:]):.3f}"
    if f.R_estimate is not None:
        line += f"   R_estimate: diagonal mean {np.diag(f.R_estimate).mean():.3f} (true 1)"
    print(line)

"""Lorenz-96 (d = 10) seen through |x|: DiffusionKDEFilter, filterpy's EnKF, a particle filter.

Every variable is observed through ``|x_j| + N(0, 1)`` once per 0.05 time
units (the benchmark's problem ``l96-10-abs``, here 500 cycles, 100 of them
spin-up), model noise Q = 0.1^2 I. All three filters get the same truth,
observations and initial ensemble N(truth_0, I) with N = 50 members and use
only the public API: ``DiffusionKDEFilter`` with its defaults, filterpy's
``EnsembleKalmanFilter`` with a fixed inflation of 1.05 and our
``ParticleFilter`` (bootstrap, jitter 0.2), neither tuned here. The score is
the time-mean RMSE of the analysis mean after the spin-up; a filter whose
RMSE exceeds 2 has lost track.

    python examples/lorenz96_comparison.py     # about 20 s of CPU

The tuned comparison (inflation and jitter chosen on separate seeds, several
seeds, JSON and tables) is the benchmark:
``python -m filterpy_diffusion.bench --problems l96-10-abs --filters dkf enkf sir --N 50``.
"""
import time

import numpy as np
from filterpy.kalman import EnsembleKalmanFilter

from filterpy_diffusion import DiffusionKDEFilter, ParticleFilter

D, F, DT, N = 10, 8.0, 0.05, 50
CYCLES, SPINUP = 500, 100
R_STD, Q_STD = 1.0, 0.1


def l96(x):
    # dx_j/dt = (x_{j+1} - x_{j-2}) x_{j-1} - x_j + F, cyclic; rows are members
    return (np.roll(x, -1, -1) - np.roll(x, 2, -1)) * np.roll(x, 1, -1) - x + F


def fx(x, dt):
    # one RK4 step, for one state (D,) or a whole ensemble (N, D)
    k1 = l96(x)
    k2 = l96(x + 0.5 * dt * k1)
    k3 = l96(x + 0.5 * dt * k2)
    k4 = l96(x + dt * k3)
    return x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def hx(x):
    return np.abs(x)


def twin(seed):
    """Truth (spun up onto the attractor) and its observations."""
    rng = np.random.default_rng(seed)
    x = np.full(D, F)
    x[0] += 0.01
    for _ in range(2000):
        x = fx(x, DT)
    truth = [x]
    for _ in range(CYCLES):
        truth.append(fx(truth[-1], DT))
    truth = np.array(truth)
    z = hx(truth[1:]) + R_STD * rng.standard_normal((CYCLES, D))
    return truth, z


class InflatedEnKF(EnsembleKalmanFilter):
    """filterpy's EnKF with multiplicative forecast inflation, X <- mean + lam (X - mean)."""

    def __init__(self, *args, inflation=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.inflation = inflation

    def predict(self):
        super().predict()
        self.sigmas = self.x + self.inflation * (self.sigmas - self.x)
        self.P = self.inflation ** 2 * self.P


def run(name, f, truth, z):
    t0 = time.process_time()
    err = []
    for k in range(CYCLES):
        f.predict()
        f.update(z[k])
        X = np.asarray(f.sigmas)
        w = getattr(f, "weights", None)
        mean = X.mean(axis=0) if w is None else w @ X
        err.append(np.sqrt(np.mean((mean - truth[k + 1]) ** 2)))
    rmse = float(np.mean(err[SPINUP:]))
    status = "lost track" if rmse > 2.0 else ""
    print(f"{name:<34} RMSE {rmse:6.3f}  {time.process_time() - t0:5.1f} s CPU  {status}")
    return rmse


def main(seed=100):
    truth, z = twin(seed)
    x0, P0 = truth[0], np.eye(D)
    common = dict(x=x0, P=P0, dim_z=D, dt=DT, N=N, hx=hx, fx=fx)
    print(f"Lorenz-96, d = {D}, z = |x| + N(0, {R_STD:g}^2), N = {N}, {CYCLES} cycles "
          f"({SPINUP} spin-up), seed {seed}")

    dkf = DiffusionKDEFilter(**common, rng=seed, vectorized=True)
    pf = ParticleFilter(**common, rng=seed, vectorized=True, resample_threshold=1.0, jitter=0.2)
    # filterpy draws from numpy's global generator; seed it for a repeatable run
    np.random.seed(seed)
    enkf = InflatedEnKF(**common, inflation=1.05)
    for f in (dkf, pf, enkf):
        f.Q = Q_STD ** 2 * np.eye(D)
        f.R = R_STD ** 2 * np.eye(D)
    run("DiffusionKDEFilter (defaults)", dkf, truth, z)
    run("EnsembleKalmanFilter (infl. 1.05)", enkf, truth, z)
    run("ParticleFilter (jitter 0.2)", pf, truth, z)


if __name__ == "__main__":
    main()

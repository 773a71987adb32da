"""One update of every kernel x sampler and of each other filter, on the installed package.

Run by .ci/min-versions in a venv holding the declared minimum versions of
Python, numpy, scipy and filterpy. Fails (non-zero exit) on any error,
non-finite result or warning that a dependency API changed.
"""
import itertools
import sys
import warnings
from importlib.metadata import version

import numpy as np
import scipy
import filterpy

import filterpy_diffusion as fd
from filterpy_diffusion.diffusion import SAMPLERS
from filterpy_diffusion.filter import KERNELS
from filterpy_diffusion.systems import IdentityObs, LorenzModel

warnings.simplefilter("error", DeprecationWarning)
warnings.simplefilter("error", FutureWarning)
# The version lives in filterpy_diffusion.__version__ only (setup.cfg reads it).
if version("filterpy-diffusion") != fd.__version__:
    sys.exit(f"installed metadata says {version('filterpy-diffusion')}, the package {fd.__version__}")
print(f"python {sys.version.split()[0]}, numpy {np.__version__}, scipy {scipy.__version__}, "
      f"filterpy {filterpy.__version__}; testing {fd.__file__}")

d, N = 3, 40
fx = LorenzModel("l63", 0.01, 10)
rng = np.random.default_rng(0)
truth = fx(np.array([1.0, 1.0, 20.0]))
z = truth + 2.0 * rng.normal(size=d)


def check(name, f):
    f.Q = 0.01 * np.eye(d)
    f.R = 4.0 * np.eye(f.dim_z)
    f.predict()
    f.update(z[: f.dim_z])
    assert f.sigmas.shape == (N, f.dim_x) and np.all(np.isfinite(f.sigmas)), name
    assert np.all(np.isfinite(f.x)) and np.all(np.isfinite(f.P)), name
    print(f"ok  {name}: x = {np.round(f.x, 3)}")


failures = 0
SAMPLER_FREE = ('etkf', 'bridge')
cases = [(f"DiffusionKDEFilter(kernel={k!r}, sampler={s!r})",
          lambda k=k, s=s: fd.DiffusionKDEFilter(truth, 4.0 * np.eye(d), d, 0.1, N, IdentityObs(), fx,
                                                 kernel=k, sampler=s, rng=1, vectorized=True))
         for k, s in itertools.product(KERNELS, SAMPLERS) if k not in SAMPLER_FREE]
# The ETKF core and the bridge draw nothing from a diffusion sampler.
cases += [(f"DiffusionKDEFilter(kernel={k!r})",
           lambda k=k: fd.DiffusionKDEFilter(truth, 4.0 * np.eye(d), d, 0.1, N, IdentityObs(), fx,
                                             kernel=k, rng=1, vectorized=True))
          for k in SAMPLER_FREE]
cases += [
    ("ParticleFilter()", lambda: fd.ParticleFilter(truth, 4.0 * np.eye(d), d, 0.1, N, IdentityObs(), fx,
                                                   rng=1, vectorized=True)),
    ("LETKF()", lambda: fd.LETKF(truth, 4.0 * np.eye(d), d, 0.1, N, IdentityObs(), fx,
                                 state_positions=np.arange(d), obs_positions=np.arange(d),
                                 domain_length=d, rng=1, vectorized=True)),
]
cases += [(f"LocalDiffusionKDEFilter(sampler={s!r})",
           lambda s=s: fd.LocalDiffusionKDEFilter(truth, 4.0 * np.eye(d), d, 0.1, N, IdentityObs(), fx,
                                                  state_positions=np.arange(d), obs_positions=np.arange(d),
                                                  domain_length=d, sampler=s, rng=1, vectorized=True))
          for s in ("exact", "ode")]
for name, make in cases:
    try:
        check(name, make())
    except Exception as e:      # report every failing case, then fail
        failures += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}")
print(f"{len(cases) - failures} of {len(cases)} passed")
sys.exit(1 if failures else 0)

"""Deprecated alias of :mod:`filterpy_diffusion.bench`, where the benchmark now lives.

``python -m filterpy_diffusion.benchmark ARGS`` runs ``python -m filterpy_diffusion.bench ARGS``;
a name imported from this module is :mod:`filterpy_diffusion.bench`'s.
"""
import sys
import warnings

import filterpy_diffusion.bench as _bench

_MESSAGE = ("filterpy_diffusion.benchmark is deprecated and will be removed: use "
            "filterpy_diffusion.bench (python -m filterpy_diffusion.bench)")
main = _bench.main


def __getattr__(name):
    return getattr(_bench, name)


if __name__ == "__main__":
    warnings.warn(_MESSAGE, DeprecationWarning, stacklevel=1)
    sys.exit(main())
else:
    warnings.warn(_MESSAGE, DeprecationWarning, stacklevel=2)

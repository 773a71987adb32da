"""pytest configuration for the checkout: which modules the doctest run leaves out.

``python -m pytest`` collects the docstring examples of every module of
``filterpy_diffusion`` (``--doctest-modules`` in setup.cfg) except these.
"""
import importlib.util

# filterpy_diffusion.dapper raises ImportError without DAPPER (Python >= 3.12
# only); its interop tests skip on their own (tests/test_dapper*.py).
collect_ignore = []
if importlib.util.find_spec("dapper") is None:
    collect_ignore.append("filterpy_diffusion/dapper.py")
# The benchmark harness is tested by tests/test_benchmark.py; it is moving to
# its own package, whose doctests are left to it.
collect_ignore += ["filterpy_diffusion/benchmark.py"]
collect_ignore_glob = ["filterpy_diffusion/bench/*", "filterpy_diffusion/bench"]

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


# Each example must run when pasted into a fresh interpreter, so it runs
# without its module's globals (it imports what it uses). These modules'
# examples still lean on their module's namespace; remove a name once its
# examples import what they use.
_MODULE_NAMESPACE = ("filterpy_diffusion.kde", "filterpy_diffusion.localization",
                     "filterpy_diffusion.systems")


def pytest_collection_modifyitems(items):
    for item in items:
        dtest = getattr(item, "dtest", None)
        if dtest is not None and not dtest.name.startswith(_MODULE_NAMESPACE):
            dtest.globs = {"__name__": "__main__"}

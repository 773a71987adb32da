"""The bench package's layout: the deprecated alias, the compatibility name, the core without it."""
import importlib
import os
import subprocess
import sys

import pytest

import filterpy_diffusion.bench as bench
from filterpy_diffusion.bench import models, problems, reference, twin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


def test_old_module_is_a_deprecated_alias_of_bench():
    sys.modules.pop("filterpy_diffusion.benchmark", None)
    with pytest.warns(DeprecationWarning, match="use filterpy_diffusion.bench"):
        old = importlib.import_module("filterpy_diffusion.benchmark")
    # the same objects, not copies
    assert old.main is bench.main and old.run_one is bench.run_one
    assert old.FILTERS is bench.FILTERS and old.parse_filter_spec is bench.parse_filter_spec
    with pytest.raises(AttributeError):
        old.no_such_name


def test_old_command_warns_and_runs_the_bench_command():
    old = _python("-m", "filterpy_diffusion.benchmark", "table", "--help")
    new = _python("-m", "filterpy_diffusion.bench", "table", "--help")
    assert old.returncode == 0 and new.returncode == 0, old.stderr + new.stderr
    assert "DeprecationWarning" in old.stderr and "python -m filterpy_diffusion.bench" in old.stderr
    assert old.stdout == new.stdout
    assert new.stdout.startswith("usage: python -m filterpy_diffusion.bench table")
    assert new.stderr == ""


def test_importing_the_library_does_not_import_the_harness():
    out = _python("-c", "import sys, filterpy_diffusion; print(sorted(m for m in sys.modules "
                        "if m.startswith('filterpy_diffusion.')))")
    assert out.returncode == 0, out.stderr
    loaded = eval(out.stdout)
    assert loaded and not [m for m in loaded if m.startswith(("filterpy_diffusion.bench",
                                                              "filterpy_diffusion.systems"))]


def test_systems_reexports_the_bench_objects():
    import filterpy_diffusion.systems as systems
    homes = (models, problems, reference, twin)
    for name in systems.__all__:
        obj = getattr(systems, name)
        assert any(getattr(m, name, None) is obj for m in homes), name
    assert systems.PROBLEMS is problems.PROBLEMS


def test_localization_script_parses_specs_with_the_registry_parser():
    from benchmark_scripts import load
    script = load("localization")
    assert script.parse("letkf:knob=1.05,radius=4") == ("letkf", {"radius": 4}, 1.05)
    # the registry's checks: a bare word is not an option, a knob-less filter takes no knob
    with pytest.raises(ValueError, match="not of the form key=value"):
        script.parse("ldkf:radius")
    with pytest.raises(ValueError, match="has no knob"):
        script.parse("ldkf:knob=1.1")
    # l96_problem(40) is the registry's l96-40
    assert twin.problem_config(script.l96_problem(40)) == twin.problem_config(
        problems.PROBLEMS["l96-40"])

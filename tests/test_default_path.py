"""benchmarks/default_path.py counts what a traced call executes: checked on a tiny synthetic package."""
import importlib
import sys
import textwrap
import types

import numpy as np
import pytest

from benchmark_scripts import load

dp = load("default_path")

BACKENDS = ["settrace"] + (["monitoring"] if hasattr(sys, "monitoring") else [])

# Comments say what the traced call ``a.run(1.0, policy, cb)`` does on each line.
A = '''
from .b import LIMIT, helper
from . import b

SCALE = 3
UNUSED = 7.5
LABEL = "not numeric"


class Holder:
    def __init__(self, policy):
        self.policy = policy

    def go(self):
        return self.policy.gamma                         # policy field gamma


def run(x, policy, cb, n=b.STEPS):                       # STEPS: only as a default
    cb(x)                                                # a user callback: not the path
    if x > LIMIT and policy.alpha > 0:                   # If (BoolOp), LIMIT, alpha; 0 is trivial
        y = helper(x)                                    # crosses a -> b
    elif x < -4.25:                                      # never tested
        y = 0
    else:
        y = 1
    while y < 3.5 * SCALE and y != -1:                   # While (BoolOp), 3.5 inline, SCALE; -1 trivial
        y += 1
    z = y if y != 0.5 else 2                             # IfExp; 0.5 and 2 trivial
    if x == 12345.0:                                     # If; 12345.0 inline
        w = 1 if UNUSED > 8.5 else 0                     # never runs
        if w or policy.beta:                             # never runs
            pass
    return z + n + Holder(policy).go() + sum(b.pair())    # pair: one start, three resumes


def never(x):
    if x > 77.0:
        return LIMIT
    return 0
'''

B = '''
LIMIT = 0.25
STEPS = 4
_TINY = 2.0 ** -10                                       # numeric at run time only


def helper(x):
    return x * _TINY if x > _TINY else x                 # IfExp, _TINY


def pair():
    yield 1
    yield 2


def unused(x):
    while x > 99.0:
        x -= 1
    return x
'''

C = '''
def cb(x):
    if x > 99.5:
        return 1
    return 0
'''

# Guards (an if whose body only raises or warns) against decisions.
D = '''
import warnings


def check(x):
    if x < 0:                                            # guard: raises only
        raise ValueError("negative")
    if x > 1e6:                                          # guard: warns only
        warnings.warn("large")
    if x == 3.0:                                         # decision: does more than raise
        x = 1
        raise ValueError("three")
    elif x > 100:                                        # guard: the elif is an If of its own
        raise ValueError("big")
    return x if x else 1                                 # IfExp: a decision
'''


@pytest.fixture
def synth(tmp_path, monkeypatch):
    pkg = tmp_path / "synthpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name, src in (("a", A), ("b", B), ("c", C), ("d", D)):
        (pkg / f"{name}.py").write_text(textwrap.dedent(src))
    monkeypatch.syspath_prepend(str(tmp_path))
    for m in [m for m in sys.modules if m == "synthpkg" or m.startswith("synthpkg.")]:
        monkeypatch.delitem(sys.modules, m)
    a = importlib.import_module("synthpkg.a")
    c = importlib.import_module("synthpkg.c")
    yield pkg, a, c
    for m in [m for m in sys.modules if m == "synthpkg" or m.startswith("synthpkg.")]:
        sys.modules.pop(m, None)


@pytest.mark.parametrize("backend", BACKENDS)
def test_counts_of_a_traced_call(synth, backend):
    pkg, a, c = synth
    rec = dp.LineRecorder(pkg, backend)
    cb = dp.CallCounter(c.cb, rec)
    policy = types.SimpleNamespace(alpha=1.0, beta=0.0, gamma=0.0)
    a.run(0.5, policy, cb)                               # untraced: nothing recorded from it
    with rec.recording():
        a.run(1.0, policy, cb)
    infos = dp.analyse_package(str(pkg), "synthpkg")
    got = dp.count_path(infos, rec.last)

    assert got["conditionals"] == 5
    assert got["conditionals_by_kind"] == {"If": 2, "IfExp": 2, "While": 1}
    assert got["conditionals_by_module"] == {"a": 4, "b": 1}
    assert got["boolops"] == 2 and got["boolop_operands"] == 2
    assert got["modules"] == 2 and set(got["lines_by_module"]) == {"a", "b"}
    assert got["named"] == {"a.SCALE": 3, "b.LIMIT": 0.25, "b._TINY": 2.0 ** -10}
    assert got["named_thresholds"] == 3 and got["named_public"] == 2
    assert got["named_via_defaults"] == {"b.STEPS": 4}
    assert sorted(t["value"] for t in got["inline"]) == [3.5, 12345.0]
    assert got["inline_thresholds"] == 2
    assert got["policy"] == ["alpha", "gamma"] and got["policy_fields"] == 2
    calls = {(infos[x].name, infos[y].name): n for (x, y), n in rec.last_calls.items()}
    assert calls == {("a", "b"): 2}                      # helper and pair, each started once
    assert (cb.calls, cb.rows) == (2, 2)

    assert (got["guards"], got["decisions"]) == (0, 5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_guards_are_ifs_that_only_raise_or_warn(synth, backend):
    pkg, _, _ = synth
    d = importlib.import_module("synthpkg.d")
    rec = dp.LineRecorder(pkg, backend)
    with rec.recording():
        d.check(1.0)
    got = dp.count_path(dp.analyse_package(str(pkg), "synthpkg"), rec.last)
    assert got["conditionals"] == 5
    assert (got["guards"], got["decisions"]) == (3, 2)
    assert got["decisions_by_module"] == {"d": 2}
    assert sum(s.endswith(" guard") for s in got["conditional_sites"]) == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_recording_starts_afresh(synth, backend):
    pkg, a, c = synth
    rec = dp.LineRecorder(pkg, backend)
    policy = types.SimpleNamespace(alpha=-1.0, beta=0.0, gamma=0.0)
    with rec.recording():
        a.run(1.0, types.SimpleNamespace(alpha=1.0, beta=0.0, gamma=0.0), c.cb)
    with rec.recording():
        a.run(-5.0, policy, c.cb)                        # the elif branch; helper not called
    infos = dp.analyse_package(str(pkg), "synthpkg")
    got = dp.count_path(infos, rec.last)
    # a: If, elif, While, IfExp, If(12345); c: the unwrapped callback now counts
    assert got["conditionals_by_module"] == {"a": 5, "c": 1}
    assert sorted(t["value"] for t in got["inline"]) == [-4.25, 3.5, 99.5, 12345.0]
    assert "b.LIMIT" in got["named"] and "b._TINY" not in got["named"]
    assert got["policy"] == ["alpha", "gamma"]
    calls = {(infos[x].name, infos[y].name): n for (x, y), n in rec.last_calls.items()}
    assert calls == {("a", "c"): 1, ("a", "b"): 1}       # Holder.go is a -> a: no crossing


def test_counting_generator_counts_outermost_calls_and_draws_the_same_numbers():
    g, ref = dp.CountingGenerator(5), np.random.Generator(np.random.PCG64(5))
    assert isinstance(g, np.random.Generator) and np.random.default_rng(g) is g
    x = g.multivariate_normal(np.zeros(2), np.eye(2), size=3)   # calls standard_normal inside
    y = g.standard_normal(4)
    p = g.permutation(7)
    np.testing.assert_array_equal(x, ref.multivariate_normal(np.zeros(2), np.eye(2), size=3))
    np.testing.assert_array_equal(y, ref.standard_normal(4))
    np.testing.assert_array_equal(p, ref.permutation(7))
    assert g.draws == {"multivariate_normal": 1, "standard_normal": 1, "permutation": 1}
    assert g.variates == {"multivariate_normal": 6, "standard_normal": 4, "permutation": 7}


def test_counting_generator_names_the_calling_line(tmp_path, monkeypatch):
    (tmp_path / "drawmod.py").write_text("def draw(rng):\n    return rng.normal(size=2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "drawmod", raising=False)
    drawmod = importlib.import_module("drawmod")
    g = dp.CountingGenerator(0, root=tmp_path)
    drawmod.draw(g)
    g.random()
    assert g.sites == {"drawmod.py:2 normal": 1, "(outside) random": 1}


def test_call_counter_counts_members_of_a_batch():
    f = dp.CallCounter(lambda x: np.asarray(x) * 2)
    f(np.ones(3))
    f(np.ones((5, 3)))
    assert (f.calls, f.rows) == (2, 6)

"""The problem modules: one per problem, each with the numbers it is known to give."""
import math
import os

import numpy as np
import pytest

from filterpy_diffusion.bench import problems
from filterpy_diffusion.bench.report import read_results
from filterpy_diffusion.bench.twin import Problem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEASURED = [m for m in problems.MODULES if m.KNOWN is not None]


def test_one_module_per_problem_named_after_it():
    assert list(problems.PROBLEMS) == [m.PROBLEM.name for m in problems.MODULES]
    assert len(set(problems.PROBLEMS)) == len(problems.MODULES)
    for m in problems.MODULES:
        assert isinstance(m.PROBLEM, Problem)
        assert m.__name__.rsplit(".", 1)[1] == m.PROBLEM.name.replace("-", "_")
        assert problems.known_results(m.PROBLEM.name) is m.KNOWN
    with pytest.raises(ValueError, match="unknown problem"):
        problems.known_results("l63-nope")


def test_every_problem_has_known_numbers():
    assert [m.PROBLEM.name for m in MEASURED] == list(problems.PROBLEMS)


def _sig3(x):
    return float(f"{x:.3g}")


@pytest.mark.parametrize("module", MEASURED, ids=lambda m: m.PROBLEM.name)
def test_known_numbers_are_those_of_the_committed_json(module):
    known = module.KNOWN
    doc = read_results([os.path.join(ROOT, known["json"])])
    assert doc["meta"]["command"] == known["command"]
    recs = [r for r in doc["records"] if r["problem"] == module.PROBLEM.name]
    assert recs
    for metric in ("rmse", "w2"):
        table = known.get(metric)
        if table is None:
            assert metric == "w2" and all(r["w2"] is None for r in recs)
            continue
        assert set(table) == {r["filter"] for r in recs}
        for filt, by_N in table.items():
            assert set(by_N) == {r["N"] for r in recs if r["filter"] == filt}
            for N, value in by_N.items():
                runs = [r for r in recs if r["filter"] == filt and r["N"] == N]
                ok = [r[metric] for r in runs if not (r["lost"] or r["diverged"])]
                if value is None:      # every seed lost track
                    assert not ok
                else:
                    assert ok and value == _sig3(np.mean(ok)), (filt, N, metric)
    lost = known.get("lost", {})
    for r in recs:
        n_lost = sum(x["lost"] or x["diverged"] for x in recs
                     if (x["filter"], x["N"]) == (r["filter"], r["N"]))
        assert lost.get(r["filter"], {}).get(r["N"], 0) == n_lost
    assert math.isfinite(doc["meta"]["elapsed_seconds"])

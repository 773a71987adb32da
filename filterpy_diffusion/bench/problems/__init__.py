"""The benchmark problems, one module each (DAPPER's ``mods`` style).

Each module defines ``PROBLEM`` (a :class:`~filterpy_diffusion.bench.twin.Problem`)
and ``KNOWN``: the numbers it is known to give, with the command and the
committed JSON they come from (None when never measured). :data:`PROBLEMS`
collects them in the benchmark's order; a new problem is a new module here
and one line below.
"""
import dataclasses

from ..twin import Problem
from . import l63_cubic, l63_full, l63_z, l96_10_abs, l96_20_cubic, l96_40, toy_abs

__all__ = ["PROBLEMS", "MODULES", "get_problem", "resolve_problem", "known_results"]

#: Problem modules in the benchmark's default order.
MODULES = (toy_abs, l63_full, l63_z, l63_cubic, l96_10_abs, l96_20_cubic, l96_40)
#: name -> Problem.
PROBLEMS = {m.PROBLEM.name: m.PROBLEM for m in MODULES}


def get_problem(name, **overrides):
    """Return the problem ``name``, with some fields replaced.

    Parameters
    ----------
    name : str
        A key of :data:`PROBLEMS`.
    **overrides
        Fields of :class:`~filterpy_diffusion.bench.twin.Problem` to
        replace, e.g. ``cycles=50, spinup=10`` for a short test run.

    Returns
    -------
    problem : Problem
    """
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; choose one of {sorted(PROBLEMS)}")
    fields = {f.name for f in dataclasses.fields(Problem)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ValueError(f"unknown Problem field(s) {bad}; fields are {sorted(fields)}")
    return dataclasses.replace(PROBLEMS[name], **overrides)


def resolve_problem(name, cycles=None, spinup=None):
    """The problem ``name`` with optional cycles/spin-up overrides.

    ``cycles`` alone scales the spin-up in proportion (so a short run still
    discards the same fraction); ``spinup`` alone keeps the cycles.
    """
    base = get_problem(name)
    if cycles is None and spinup is None:
        return base
    c = base.cycles if cycles is None else int(cycles)
    if spinup is None:
        s = int(round(base.spinup * c / base.cycles))
    else:
        s = int(spinup)
    if c < 1 or not 0 <= s < c:
        raise ValueError(f"{name}: need cycles >= 1 and 0 <= spinup < cycles, got cycles={c}, spinup={s}")
    return get_problem(name, cycles=c, spinup=s)


def known_results(name):
    """The ``KNOWN`` dict of problem ``name`` (None if never measured)."""
    for m in MODULES:
        if m.PROBLEM.name == name:
            return m.KNOWN
    raise ValueError(f"unknown problem {name!r}; choose one of {sorted(PROBLEMS)}")

"""Lorenz-63/96 models, measurement operators, problems and twin experiments (compatibility name).

They live in :mod:`filterpy_diffusion.bench` (``models``, ``twin``,
``problems``, ``reference``); this module re-exports them under their old
names, so ``from filterpy_diffusion.systems import LorenzModel`` keeps
working.
"""
from .bench.models import (AbsObs, ComponentObs, CubicObs, IdentityObs, LorenzModel,
                           RandomWalkModel, integrate, lorenz63, lorenz96, rk4_step)
from .bench.problems import PROBLEMS, get_problem
from .bench.reference import grid_posterior_toy_abs, point_mass_filter_1d, sample_grid
from .bench.twin import (ATTRACTOR_SPACING, TRUTH_SPINUP_STEPS, Problem, Twin,
                         twin_experiment)

__all__ = [
    "lorenz63", "lorenz96", "rk4_step", "integrate",
    "LorenzModel", "RandomWalkModel",
    "IdentityObs", "AbsObs", "CubicObs", "ComponentObs",
    "Problem", "PROBLEMS", "get_problem",
    "Twin", "twin_experiment",
    "point_mass_filter_1d", "grid_posterior_toy_abs", "sample_grid",
    "TRUTH_SPINUP_STEPS", "ATTRACTOR_SPACING",
]

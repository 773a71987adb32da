"""Twin-experiment benchmark of filterpy-diffusion (DAPPER style), outside the library core.

Install with the ``bench`` extra (matplotlib for plots, tqdm for progress;
both optional) and run::

    python -m filterpy_diffusion.bench --quick

Layout, one concept per module:

* :mod:`~filterpy_diffusion.bench.models`: Lorenz-63/96, RK4, random walk,
  measurement operators, written for whole ensembles;
* :mod:`~filterpy_diffusion.bench.twin`: :class:`Problem` and
  :func:`twin_experiment` (truth, observations, initial ensemble, seeds);
* :mod:`~filterpy_diffusion.bench.problems`: one module per problem, its
  set-up and the numbers it is known to give (``KNOWN``), and the
  :data:`PROBLEMS` registry;
* :mod:`~filterpy_diffusion.bench.reference`: reference posteriors for W2
  (exact grid filter, bootstrap particle filter, cache);
* :mod:`~filterpy_diffusion.bench.baselines`: filterpy's EnKF with
  vectorized forecasts, inflation and a Generator;
* :mod:`~filterpy_diffusion.bench.registry`: the filters (:data:`FILTERS`)
  and the one spec parser (:func:`parse_filter_spec`);
* :mod:`~filterpy_diffusion.bench.runner`: one run (:func:`run_one`), the
  tuning protocol (:func:`choose_knob`), the driver (:func:`run_benchmark`);
* :mod:`~filterpy_diffusion.bench.executors`: in-process, local processes,
  Dask;
* :mod:`~filterpy_diffusion.bench.report`: JSON, tables, plots;
* :mod:`~filterpy_diffusion.bench.cli`: the command line.

The names below are re-exported for scripts (``benchmarks/*.py``).
"""
from .baselines import EnKFRunner, filterpy_rng
from .cli import main
from .models import (AbsObs, ComponentObs, CubicObs, IdentityObs, LorenzModel, RandomWalkModel,
                     integrate, lorenz63, lorenz96, rk4_step)
from .problems import PROBLEMS, get_problem, known_results, resolve_problem
from .reference import (REFERENCE_PARTICLES, W2_EVERY, Reference, grid_posterior_toy_abs,
                        point_mass_filter_1d, reference_posterior, sample_grid, w2_cycles)
from .registry import (BANDWIDTH_FACTORS, FILTERS, INFLATION_FACTORS, JITTERS, LETKF_INFLATION,
                       FilterEntry, FilterSpec, ScaledStd, build_filter, check_filters,
                       grid_layout, local_problems, parse_filter_spec)
from .report import format_tables, make_plots, read_json, read_results, write_json
from .runner import (QUICK, RECORD_FIELDS, TIMING_FIELDS, choose_knob, objective_name,
                     run_benchmark, run_one)
from .twin import (ATTRACTOR_SPACING, TRUTH_SPINUP_STEPS, Problem, Twin, lorenz63_problem,
                   lorenz96_problem, twin_experiment)

__all__ = [
    "main",
    # models and problems
    "lorenz63", "lorenz96", "rk4_step", "integrate", "LorenzModel", "RandomWalkModel",
    "IdentityObs", "AbsObs", "CubicObs", "ComponentObs",
    "Problem", "lorenz63_problem", "lorenz96_problem", "PROBLEMS", "get_problem",
    "resolve_problem", "known_results", "Twin", "twin_experiment",
    "TRUTH_SPINUP_STEPS", "ATTRACTOR_SPACING",
    # references
    "Reference", "reference_posterior", "w2_cycles", "point_mass_filter_1d",
    "grid_posterior_toy_abs", "sample_grid", "W2_EVERY", "REFERENCE_PARTICLES",
    # filters
    "FILTERS", "FilterEntry", "FilterSpec", "parse_filter_spec", "build_filter", "check_filters",
    "grid_layout", "local_problems", "ScaledStd", "EnKFRunner", "filterpy_rng",
    "BANDWIDTH_FACTORS", "INFLATION_FACTORS", "LETKF_INFLATION", "JITTERS",
    # runs and reports
    "run_one", "choose_knob", "objective_name", "run_benchmark", "RECORD_FIELDS",
    "TIMING_FIELDS", "QUICK", "write_json", "read_json", "read_results", "format_tables",
    "make_plots",
]

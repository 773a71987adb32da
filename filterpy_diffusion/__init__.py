"""Closed-form conditional diffusion (KDE) filters for data assimilation."""

__version__ = "0.1.0.dev0"

from .filter import DiffusionKDEFilter
from .kde import ClusteredKDE, ConditionalKDE, CovarianceKDE, EnKPFDensity
from .localization import LETKF, LocalDiffusionKDEFilter
from .mixture import GaussianMixture
from .particle import ParticleFilter

__all__ = ["ClusteredKDE", "ConditionalKDE", "CovarianceKDE", "DiffusionKDEFilter",
           "EnKPFDensity", "GaussianMixture", "LETKF", "LocalDiffusionKDEFilter", "ParticleFilter"]

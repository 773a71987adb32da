"""Closed-form conditional diffusion (KDE) filters for data assimilation."""

__version__ = "0.1.0.dev0"

from .kde import ConditionalKDE
from .mixture import GaussianMixture

__all__ = ["ConditionalKDE", "GaussianMixture"]

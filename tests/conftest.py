"""Hypothesis profiles: 'ci' is deterministic (derandomized, no deadline); 'search' runs long."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "dev", deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow])
# A longer random search, for hunting counterexamples by hand, e.g.
# HYPOTHESIS_PROFILE=search python -m pytest tests/test_clustering.py --hypothesis-seed=0
settings.register_profile(
    "search", deadline=None, max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get(
    "HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

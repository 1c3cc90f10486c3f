"""Experiments as data: a YAML spec expands to configurations whose results go to a SQLite
store, one committed row per configuration, so sweeps resume where they stopped."""

from saddlepoint.experiments.engine import run_experiment
from saddlepoint.experiments.spec import ExperimentSpec, load_spec
from saddlepoint.experiments.store import ResultsStore

__all__ = ["ExperimentSpec", "ResultsStore", "load_spec", "run_experiment"]

"""``dnncomp tune``: search the recipe catalogue for the smallest or fastest variant within an accuracy budget.

Optuna does the search (multi-objective: validation accuracy and the objective, with the
budgets as constraints; the study in SQLite, so a killed tune resumes), Ray runs trials in
parallel or on a cluster. The search space is declared on the recipes' parameters
(:class:`dnncomp.compress.Search`). Optuna and Ray are the ``[tune]`` extra.
"""

from __future__ import annotations

from .engine import (
    OBJECTIVES,
    TrialPruned,
    TrialRunner,
    TuneConfig,
    TuneError,
    TuneOutcome,
    binding_budget,
    judge,
    pareto,
    parse_duration,
    parse_size,
    run_tune,
    tune_status,
)
from .space import candidate_recipes, describe_space, suggest
from .stats import paired_drop

__all__ = [
    "OBJECTIVES",
    "TrialPruned",
    "TrialRunner",
    "TuneConfig",
    "TuneError",
    "TuneOutcome",
    "binding_budget",
    "candidate_recipes",
    "describe_space",
    "judge",
    "paired_drop",
    "pareto",
    "parse_duration",
    "parse_size",
    "run_tune",
    "suggest",
    "tune_status",
]

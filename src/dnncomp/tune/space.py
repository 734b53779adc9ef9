"""The search space of ``dnncomp tune``, read from the recipe registry.

Each recipe parameter declares what tune may try (:class:`dnncomp.compress.Search` on its
:class:`~dnncomp.compress.Param`); a recipe's space is its parameters that declare one,
the others keep their defaults. Optuna parameter names are ``recipe`` (the family) and
``<recipe>.<key>``, so each recipe's parameters are learnt on their own.
"""

from __future__ import annotations

from typing import Any

from ..compress import Param, Recipe, describe_search, get_recipe, list_recipes
from ..errors import RecipeError

# The float baseline is what is compressed, not a candidate.
NOT_CANDIDATES = ("float",)


def candidate_recipes(names: list[str] | None = None) -> list[Recipe]:
    """The recipes tune chooses among: ``names`` (checked) or every registered one but float."""
    if names:
        recipes = [get_recipe(name) for name in names]
        if any(r.name in NOT_CANDIDATES for r in recipes):
            raise RecipeError("--recipes: float is the baseline every variant is compared with, not a candidate")
        return recipes
    return [r for r in list_recipes() if r.name not in NOT_CANDIDATES]


def searched_params(recipe: Recipe) -> dict[str, Param]:
    """The parameters of ``recipe`` that declare a search range, in declaration order."""
    return {key: param for key, param in recipe.params.items() if param.search is not None}


def describe_space(recipes: list[Recipe]) -> dict[str, dict[str, str]]:
    """Per recipe, each searched parameter's range as text (for the tune config and the report)."""
    return {
        recipe.name: {key: describe_search(param.search) for key, param in searched_params(recipe).items()} for recipe in recipes
    }


def suggest(trial, recipes: list[Recipe]) -> tuple[str, dict[str, Any]]:
    """Draw a recipe and its searched parameters from an Optuna ``trial``: (recipe name, params).

    A parameter with ``when=(key, value)`` is drawn only when ``key`` was drawn as ``value``
    (and keeps its default otherwise). Integer parameters draw integers; choices keep their types.
    """
    name = trial.suggest_categorical("recipe", [r.name for r in recipes])
    recipe = next(r for r in recipes if r.name == name)
    params: dict[str, Any] = {}
    for key, param in searched_params(recipe).items():
        search = param.search
        if (
            search.when is not None
            and params.get(search.when[0], recipe.params.get(search.when[0], Param(None)).default) != search.when[1]
        ):
            continue
        label = f"{name}.{key}"
        if search.choices is not None:
            params[key] = trial.suggest_categorical(label, list(search.choices))
        elif param.kind is int:
            params[key] = trial.suggest_int(label, int(search.low), int(search.high), log=search.log)
        else:
            params[key] = trial.suggest_float(label, float(search.low), float(search.high), log=search.log)
    recipe.resolve_params(params)  # a range outside the parameter's own bounds is a registry bug: say so now
    return name, params


def params_from_optuna(optuna_params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(recipe, recipe params) back from a trial's stored Optuna params."""
    name = optuna_params["recipe"]
    prefix = f"{name}."
    return name, {key[len(prefix) :]: value for key, value in optuna_params.items() if key.startswith(prefix)}

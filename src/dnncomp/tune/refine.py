"""Accuracy-aware refinement: from the best feasible trial, one step more compression along one knob.

Why: the question a tune answers is "how far can this model be compressed before it breaks the
accuracy budget", and an hour of fine-tuning buys a dozen trials. Optuna's TPE, given so few,
tends to stay near its first good region: session 6's study-cifar10 tune (docs/BENCHMARKS.md,
"dnncomp tune") made every pcqat trial with 16 clusters and never tried 8. The field's
accuracy-aware tools raise the compression rate until the budget binds and bisect the step when
it overshoots (NNCF's accuracy-aware training, "adaptive compression level"). Refinement trials do
that, alternating with the sampler's: a refinement copies the best feasible trial (smallest
objective) and moves one compression knob one step. Knobs are declared in the recipe registry
(``Search(stronger="higher"|"lower")``, next to the parameter); a continuous knob steps halfway to
the nearest value that already broke the accuracy budget from the same starting point (else to the
end of its range); a discrete one moves to the next choice. The sampler sees every refinement's
result like any other trial's.

A recipe that has only broken the accuracy budget so far (session 8's improved-cifar10 tune at 0.5
points: every pruning and clustering trial broke it, so nothing could be refined and the choice was
plain QAT) is backed off instead: from its least-broken trial, one knob one step weaker (halfway
to the weak end of its range, or the next weaker choice), as long as that trial was smaller than
the best feasible one. Once a weaker step holds, the forward steps above bisect between the two.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .space import searched_params

# A continuous knob has converged when the gap left to bisect is under this fraction of its range
# (0.0225 of sparsity: finer steps change the gzip size by a few per cent, less than run-to-run noise).
MIN_STEP_FRACTION = 0.05


@dataclass(frozen=True)
class Refinement:
    """One step along ``knob`` from trial ``parent``: ``recipe`` with ``params`` (``old`` -> ``new``)."""

    recipe: str
    params: dict[str, Any]
    parent: int
    knob: str
    old: Any
    new: Any

    def optuna_params(self) -> dict[str, Any]:
        """The trial's parameters as Optuna stores them (``recipe`` and ``<recipe>.<key>``), for enqueue_trial."""
        return {"recipe": self.recipe, **{f"{self.recipe}.{key}": value for key, value in self.params.items()}}

    def attrs(self) -> dict[str, Any]:
        return {"refines": self.parent, "knob": self.knob, "knob_step": [self.old, self.new]}


def step_text(attrs: dict[str, Any]) -> str:
    """A refinement trial's step from its stored attributes (:meth:`Refinement.attrs`): ``knob old -> new from trial N``."""
    old, new = attrs["knob_step"]
    return f"{attrs['knob']} {old:g} -> {new:g} from trial {attrs['refines']}"


def _key(recipe: str, params: dict[str, Any]) -> str:
    return json.dumps([recipe, params], sort_keys=True, default=str)


def _broke_accuracy(row: dict[str, Any]) -> bool:
    """Pruned (the budget was out of reach mid-fine-tuning) or complete with the drop over its budget."""
    return row["state"] == "PRUNED" or (row["state"] == "COMPLETE" and "drop" in (row.get("failing") or []))


def _at_least_as_strong(a: Any, b: Any, search) -> bool:
    return a >= b if search.stronger == "higher" else a <= b


def _weaker_breaks(rows, recipe: str, params: dict[str, Any], knobs: dict[str, Any]) -> list[dict[str, Any]]:
    """Trials that broke the accuracy budget with the same settings as ``params`` but no stronger on any knob.

    Compression knobs are taken as monotonic: more sparsity or fewer clusters, all else equal,
    does not bring accuracy back. So ``params`` is known to break too if one of these exists.
    """
    return [r for r in rows if r["recipe"] == recipe and _broke_accuracy(r) and _no_stronger(r["params"], params, knobs)]


def _stronger_holds(rows, recipe: str, params: dict[str, Any], knobs: dict[str, Any]) -> bool:
    """A feasible trial with ``params``' settings at least as strong on every knob exists: ``params`` would tell nothing."""
    return any(
        r["recipe"] == recipe and r["state"] == "COMPLETE" and not r["failing"] and _no_stronger(params, r["params"], knobs)
        for r in rows
    )


def _no_stronger(tried: dict[str, Any], params: dict[str, Any], knobs: dict[str, Any]) -> bool:
    """``tried`` has ``params``' settings and is no stronger than it on any knob."""
    return {k: v for k, v in tried.items() if k not in knobs} == {k: v for k, v in params.items() if k not in knobs} and all(
        k in tried and _at_least_as_strong(params[k], tried[k], knobs[k].search) for k in knobs
    )


def _siblings(rows: list[dict[str, Any]], parent: dict[str, Any], knob: str) -> list[dict[str, Any]]:
    """Trials of the parent's recipe that differ from it in ``knob`` only."""
    others = {k: v for k, v in parent["params"].items() if k != knob}
    return [
        r
        for r in rows
        if r["recipe"] == parent["recipe"]
        and knob in r["params"]
        and {k: v for k, v in r["params"].items() if k != knob} == others
        and r["number"] != parent["number"]
    ]


def _step(rows: list[dict[str, Any]], parent: dict[str, Any], knob: str, knobs: dict[str, Any]) -> Any | None:
    """The knob's next value from the parent's (None: no further step).

    Discrete: the next choice. Continuous: halfway to the weakest value known to break the budget
    from here (a trial that broke it at a stronger value of this knob while no stronger on the
    others), else to the end of the range; None once the step is under MIN_STEP_FRACTION of the range.
    """
    param = knobs[knob]
    search = param.search
    value = parent["params"][knob]
    up = search.stronger == "higher"
    if search.choices is not None:
        ordered = sorted(search.choices)
        stronger = [c for c in ordered if (c > value if up else c < value)]
        if not stronger:
            return None
        return stronger[0] if up else stronger[-1]
    low, high = float(search.low), float(search.high)
    # broke with the parent's settings, no stronger on the other knobs, and stronger than it on this one
    reach = {**parent["params"], knob: high if up else low}
    broken = [
        r["params"][knob]
        for r in _weaker_breaks(rows, parent["recipe"], reach, knobs)
        if (r["params"][knob] > value if up else r["params"][knob] < value)
    ]
    limit = (min(broken) if up else max(broken)) if broken else (high if up else low)
    if abs(limit - value) < MIN_STEP_FRACTION * (high - low):
        return None
    return _halfway(value, limit, param.kind is int)


def _weaker_step(parent: dict[str, Any], knob: str, knobs: dict[str, Any]) -> Any | None:
    """The knob's next weaker value from a trial that broke the accuracy budget (None: no further step).

    Discrete: the next weaker choice. Continuous: halfway to the weak end of the range (a recipe is
    backed off only while none of its trials holds, so no weaker value is known to hold); None once
    the step is under MIN_STEP_FRACTION of the range.
    """
    search = knobs[knob].search
    value = parent["params"][knob]
    up = search.stronger == "higher"
    if search.choices is not None:
        weaker = [c for c in sorted(search.choices) if (c < value if up else c > value)]
        if not weaker:
            return None
        return weaker[-1] if up else weaker[0]
    low, high = float(search.low), float(search.high)
    end = low if up else high
    if abs(end - value) < MIN_STEP_FRACTION * (high - low):
        return None
    return _halfway(value, end, knobs[knob].kind is int)


def _halfway(value: float, towards: float, integer: bool) -> Any | None:
    """Halfway from ``value`` to ``towards``; an integer knob rounds towards ``towards`` (so from 2 towards 1 it
    reaches 1, where round-half-to-even would stay at 2), None when that does not move it."""
    new = (value + towards) / 2
    if integer:
        new = math.ceil(new) if towards > value else math.floor(new)
        return None if new == value else new
    return round(new, 4)


def _knobs(recipe, params: dict[str, Any]) -> dict[str, Any]:
    return {key: param for key, param in searched_params(recipe).items() if param.search.stronger is not None and key in params}


def _backed_off_in_vain(row: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
    """``row`` stepped back (weaker) from a trial that broke the budget, and scored no better on validation."""
    parent = next((r for r in rows if r["number"] == row.get("refines")), None)
    if parent is None or not parent.get("values") or not _broke_accuracy(parent) or not row.get("knob"):
        return False
    return row["values"][0] <= parent["values"][0]


def back_off_candidate(rows: list[dict[str, Any]], recipes) -> Refinement | None:
    """A step weaker from a recipe that has only broken the accuracy budget, or None.

    Parents: complete trials that failed the accuracy budget and nothing else, of a recipe with no
    feasible trial yet, smaller than the best feasible trial (a weaker step only grows the
    variant); the least broken first (highest validation accuracy). A step that a trial no stronger
    already broke, or one already tried, is not proposed. A back-off that scored no better than the
    trial it stepped back from is not stepped back further: what breaks the budget there is not that
    knob (the fine-tuning, say), and the next step would cost a training for the same answer.
    """
    by_name = {recipe.name: recipe for recipe in recipes}
    tried = {_key(r["recipe"], r["params"]) for r in rows if r["recipe"] is not None}
    feasible = [r for r in rows if r["state"] == "COMPLETE" and not r["failing"] and r["values"]]
    holding = {r["recipe"] for r in feasible}
    best = min((r["values"][1] for r in feasible), default=None)
    broken = sorted(
        (
            r
            for r in rows
            if r["state"] == "COMPLETE"
            and r["failing"] == ["drop"]
            and r.get("duplicate_of") is None
            and r["recipe"] in by_name
            and r["recipe"] not in holding
            and r["values"]
            and (best is None or r["values"][1] < best)
            and not _backed_off_in_vain(r, rows)
        ),
        key=lambda r: (-r["values"][0], r["values"][1], r["number"]),
    )
    for parent in broken:
        knobs = _knobs(by_name[parent["recipe"]], parent["params"])
        for key in sorted(knobs, key=lambda k: knobs[k].search.choices is None):  # discrete first: one decisive step
            new = _weaker_step(parent, key, knobs)
            if new is None:
                continue
            params = {**parent["params"], key: new}
            if _key(parent["recipe"], params) in tried or _weaker_breaks(rows, parent["recipe"], params, knobs):
                continue
            return Refinement(parent["recipe"], params, parent["number"], key, parent["params"][key], new)
    return None


def refine_candidate(rows: list[dict[str, Any]], recipes) -> Refinement | None:
    """The next refinement trial, or None when no trial has a knob left to move.

    ``rows`` are :func:`dnncomp.tune.engine.trial_rows` records (every state: a step already
    tried, running or queued is not proposed again); ``recipes`` the candidate
    :class:`~dnncomp.compress.Recipe` objects. Parents are tried from the smallest objective up;
    a parent's knobs in the order of how few refinements have moved each (discrete knobs first
    on a tie: one step there is a large, decisive move). When no feasible trial has a step left,
    :func:`back_off_candidate` steps back from a recipe that has only broken the accuracy budget.
    """
    by_name = {recipe.name: recipe for recipe in recipes}
    tried = {_key(r["recipe"], r["params"]) for r in rows if r["recipe"] is not None}
    feasible = sorted(
        (
            r
            for r in rows
            if r["state"] == "COMPLETE"
            and not r["failing"]
            and r.get("duplicate_of") is None
            and r["recipe"] in by_name
            and r["values"]
        ),
        key=lambda r: (r["values"][1], -r["values"][0], r["number"]),
    )
    for parent in feasible:
        knobs = _knobs(by_name[parent["recipe"]], parent["params"])
        # steps already taken from here along each knob (a weaker sibling is where the parent came from)
        moved = {
            key: sum(
                1
                for r in _siblings(rows, parent, key)
                if r["params"][key] != parent["params"][key]
                and _at_least_as_strong(r["params"][key], parent["params"][key], knobs[key].search)
            )
            for key in knobs
        }
        for key in sorted(knobs, key=lambda k: (moved[k], knobs[k].search.choices is None)):
            new = _step(rows, parent, key, knobs)
            if new is None:
                continue
            params = {**parent["params"], key: new}
            if (
                _key(parent["recipe"], params) in tried
                or _weaker_breaks(rows, parent["recipe"], params, knobs)
                or _stronger_holds(rows, parent["recipe"], params, knobs)
            ):
                continue
            return Refinement(parent["recipe"], params, parent["number"], key, parent["params"][key], new)
    return back_off_candidate(rows, recipes)

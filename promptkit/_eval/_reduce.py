"""Reducers: a variant's trials on one row (one per epoch) folded into one score per metric.

``"mean"`` averages the scored trials; ``"majority"`` keeps the prediction most trials gave
(by equality, or by JSON form for models, dicts and lists; ties go to the first) and its
scores; ``"pass@k"`` is the chance that at least one of ``k`` trials passes, estimated without
bias from every epoch (``"pass@k"`` with the letter ``k`` means ``k`` = the number of epochs: any
trial passed). A function ``f(trials, metric_name) -> float | None`` is a reducer too. Trials
that ended in an error are never scored, so they never count as failures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from .._errors import EvaluationError
from ._types import Cell, Trial

__all__ = ["REDUCERS", "Reducer", "ReducerLike", "resolve_reducer"]

ReducerFunction = Callable[[list[Trial], str], "float | None"]
ReducerLike = str | ReducerFunction

REDUCERS = ("mean", "majority", "pass@k")


class Reducer:
    """A resolved reducer: its name (for the report) and how it builds a :class:`Cell`.

    >>> from promptkit import Score
    >>> trials = [Trial(epoch=e, status="ok", prediction=p, scores={"exact": Score(value=v)})
    ...           for e, (p, v) in enumerate([("4", 1.0), ("5", 0.0), ("4", 1.0)])]
    >>> resolve_reducer("mean", 3).cell("v", "r1", trials, ["exact"]).scores["exact"]
    0.6666666666666666
    >>> resolve_reducer("pass@1", 3).cell("v", "r1", trials, ["exact"]).scores["exact"]
    0.6666666666666667
    >>> resolve_reducer("majority", 3).cell("v", "r1", trials, ["exact"]).prediction
    '4'
    """

    __slots__ = ("function", "k", "kind", "name")

    def __init__(self, name: str, kind: str, *, k: int | None = None, function: ReducerFunction | None = None) -> None:
        self.name = name
        self.kind = kind
        self.k = k
        self.function = function

    def cell(self, variant: str, row_id: str, trials: Sequence[Trial], metrics: Sequence[str]) -> Cell:
        """The cell of ``variant`` on row ``row_id``: its trials and each metric's reduced score."""
        scored = [trial for trial in trials if trial.scored]
        prediction = next((trial.prediction for trial in scored if trial.status == "ok"), None)
        if self.kind == "majority":
            voters = _majority(scored)
            if voters and voters[0].status == "ok":
                prediction = voters[0].prediction
            scores = {name: _mean(voters, name) for name in metrics}
        elif self.kind == "pass":
            scores = {name: _pass_at(scored, name, self.k) for name in metrics}
        elif self.kind == "function":
            scores = {name: self._call(list(trials), name, variant, row_id) for name in metrics}
        else:
            scores = {name: _mean(scored, name) for name in metrics}
        return Cell(variant=variant, row_id=row_id, trials=tuple(trials), scores=scores, prediction=prediction)

    def _call(self, trials: list[Trial], metric: str, variant: str, row_id: str) -> float | None:
        assert self.function is not None
        value = self.function(trials, metric)
        if value is None:
            return None
        if isinstance(value, bool):
            return 1.0 if value else 0.0
        if not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 <= value <= 1.0:
            raise EvaluationError(
                f"the reducer {self.name!r} returned {value!r} for metric {metric!r} on row {row_id!r} "
                f"of {variant!r}; a reducer returns a score in [0, 1] or None"
            )
        return float(value)

    def __repr__(self) -> str:
        return f"Reducer({self.name!r})"


def resolve_reducer(reducer: ReducerLike, epochs: int) -> Reducer:
    """The :class:`Reducer` for ``reducer`` (a name or a function), checked against ``epochs``.

    >>> resolve_reducer("pass@k", 4).k
    4
    """
    if callable(reducer):
        return Reducer(getattr(reducer, "__name__", "custom"), "function", function=reducer)
    if not isinstance(reducer, str):
        raise EvaluationError(f"reducer must be a name ({', '.join(REDUCERS)}) or a function, not {reducer!r}")
    if reducer in ("mean", "majority"):
        return Reducer(reducer, reducer)
    if reducer.startswith("pass@"):
        count = reducer[5:]
        if count == "k":
            return Reducer(reducer, "pass", k=epochs)
        if count.isdigit() and int(count) >= 1:
            k = int(count)
            if k > epochs:
                raise EvaluationError(f"{reducer} needs at least {k} epochs, and epochs={epochs}")
            return Reducer(reducer, "pass", k=k)
    raise EvaluationError(
        f"unknown reducer {reducer!r}; use 'mean', 'majority', 'pass@k' (k = the epochs), 'pass@2', ... "
        "or a function (trials, metric_name) -> float | None"
    )


def _mean(trials: Sequence[Trial], metric: str) -> float | None:
    values = [trial.scores[metric].value for trial in trials if metric in trial.scores]
    return math.fsum(values) / len(values) if values else None


def _pass_at(trials: Sequence[Trial], metric: str, k: int | None) -> float | None:
    """The unbiased pass@k estimate ``1 - C(n-c, k) / C(n, k)`` over the ``n`` scored trials."""
    outcomes = [trial.scores[metric].passed for trial in trials if metric in trial.scores]
    n, c = len(outcomes), sum(outcomes)
    if n == 0:
        return None
    if k is None or k >= n:
        return 1.0 if c else 0.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def vote_key(value: Any) -> Hashable:
    """What a prediction votes with: itself when hashable, else its JSON form (models, dicts, lists)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        value = dump(mode="json")
    if isinstance(value, (dict, list, tuple, set)):
        return ("json", json.dumps(value, sort_keys=True, default=repr))
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    hashable: Hashable = value
    return hashable


def _majority(scored: Sequence[Trial]) -> list[Trial]:
    """The trials that gave the most common prediction (ties: the one seen first). Only parsed
    predictions vote; when none parsed, the trials that did not parse (scored 0) stand."""
    ok = [trial for trial in scored if trial.status == "ok"]
    if not ok:
        return list(scored)
    groups: dict[Hashable, list[Trial]] = {}
    for trial in ok:
        groups.setdefault(vote_key(trial.prediction), []).append(trial)
    return max(groups.values(), key=len)  # max keeps the first of equal lengths

"""The values an evaluation passes around: rows, scores, the metric protocol, trials and cells.

A :class:`Row` is one dataset entry (inputs, optionally an expected output, metadata, and an id
that follows every result). A metric turns a prediction and its row into a :class:`Score` in
[0, 1]. Each variant's call on a row is a :class:`Trial` (one per epoch); a :class:`Cell` holds a
variant's trials on one row and the scores reduced over them. The report is built from cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from .._messages import Usage

if TYPE_CHECKING:
    from .._result import Result

__all__ = [
    "NO_EXPECTED",
    "Cell",
    "Metric",
    "Row",
    "Score",
    "TrialStatus",
    "Trial",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class _NoExpected:
    """The expected output of a row that has none (``None`` can be a real expected value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_EXPECTED"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NO_EXPECTED"


NO_EXPECTED: Any = _NoExpected()


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One dataset entry: the prompt's ``inputs``, the ``expected`` output (or ``NO_EXPECTED``),
    free ``metadata``, and an ``id`` (given, or derived from the content) that follows every result.

    >>> Row(id="r1", inputs={"q": "2+2?"}, expected="4").has_expected
    True
    """

    id: str
    inputs: Mapping[str, Any]
    expected: Any = NO_EXPECTED
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def has_expected(self) -> bool:
        """True when the row carries an expected output."""
        return self.expected is not NO_EXPECTED


@dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    """A metric's verdict on one prediction: ``value`` in [0, 1], an optional ``detail`` (a
    judge's reasoning, a diff), and what scoring itself used (a judge's calls: ``usage``, ``cost``
    in USD, ``None`` when a price is unknown).

    >>> Score(value=1.0).passed
    True
    """

    value: float
    detail: str | None = None
    usage: Usage = field(default_factory=Usage, repr=False)
    cost: float | None = field(default=0.0, repr=False)

    @property
    def passed(self) -> bool:
        """True for a full score (what binary metrics and pass@k count)."""
        return self.value >= 1.0


@runtime_checkable
class Metric(Protocol):
    """Scores one prediction against its row; ``name`` labels the report's column.

    ``score`` returns a float or bool in [0, 1], or a :class:`Score` (with a detail or a judge's
    cost). A plain function ``f(prediction, row)`` is a metric too: its name is ``f.__name__``.
    """

    @property
    def name(self) -> str:
        """The metric's label in the report (a plain attribute satisfies it too)."""
        ...

    def score(self, prediction: Any, row: Row) -> float | bool | Score: ...


TrialStatus = Literal["ok", "parse_error", "error", "skipped", "cancelled"]
"""How a trial ended: ``ok`` (scored), ``parse_error`` (the model's reply did not parse: scored 0,
the model's fault), ``error`` (the provider or the setup failed: not scored, never a wrong answer),
``skipped`` (the spending cap stopped it before it was sent) or ``cancelled``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Trial:
    """One call of a variant on a row (``epoch`` counts repeats from 0) and how it was scored.

    ``prediction`` is the parsed value (``None`` unless ``ok``); ``text`` the raw reply (also of
    a reply that did not parse); ``scores`` maps metric names to scores (empty when not scored);
    ``error`` the exception's one-line description when the trial failed; ``result`` the full
    :class:`~promptkit.Result` when the trial ran in this process (``None`` when read back from a
    file). ``usage``/``cost`` count the variant's calls only (a judge's are in its scores).
    """

    epoch: int
    status: TrialStatus
    prediction: Any = None
    text: str | None = None
    scores: Mapping[str, Score] = field(default_factory=lambda: _EMPTY)
    error: str | None = None
    error_type: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float | None = 0.0
    seconds: float | None = None
    excluded_examples: int = 0
    result: Result[Any] | None = field(default=None, repr=False, compare=False)

    @property
    def scored(self) -> bool:
        """True when the trial counts towards the metrics (``ok`` or ``parse_error``)."""
        return self.status in ("ok", "parse_error")


@dataclass(frozen=True, slots=True, kw_only=True)
class Cell:
    """A variant's trials on one row, and each metric's score reduced over the epochs.

    ``scores`` holds the reduced value per metric, ``None`` where no trial was scored (errors are
    never scored as wrong answers); ``prediction`` is the first scored trial's prediction (the
    majority's, with the ``majority`` reducer).
    """

    variant: str
    row_id: str
    trials: tuple[Trial, ...]
    scores: Mapping[str, float | None]
    prediction: Any = None

    @property
    def status(self) -> TrialStatus:
        """``ok`` if any trial was ok, else the first trial's status (``parse_error`` before ``error``)."""
        statuses = [trial.status for trial in self.trials]
        for status in ("ok", "parse_error", "error", "skipped", "cancelled"):
            if status in statuses:
                return status
        return "cancelled"

    @property
    def usage(self) -> Usage:
        """Tokens of the variant's calls on this row, over every epoch."""
        total = Usage()
        for trial in self.trials:
            total = total + trial.usage
        return total

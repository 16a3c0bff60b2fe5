"""The confusion matrix of a classification: expected labels against predicted ones.

Labels match loosely, as :class:`~promptkit.ChoiceParser` reads them: case, surrounding
whitespace and an ``Enum`` wrapper do not count (``"Positive"`` is the label ``"positive"``). A
prediction that is none of the labels (a parse failure, a label the task does not have) is counted
in an "other" column, never dropped.
"""

from __future__ import annotations

import enum
import html
import unicodedata
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from .._errors import ConfigurationError, MetricError
from ._agreement import rate

__all__ = ["OTHER", "ConfusionMatrix", "confusion_matrix", "label_key"]

OTHER = "(other)"
"""The column header of predictions outside the labels."""


def label_key(value: Any) -> Hashable:
    """What two labels must share to be the same label: case-folded, trimmed text for strings and
    enum members; the value itself for other hashables (``None`` and unhashables match nothing).

    >>> label_key(" Positive ") == label_key("positive")
    True
    """
    if isinstance(value, enum.Enum):
        value = value.value if isinstance(value.value, str) else value.name
    if isinstance(value, str):
        return " ".join(unicodedata.normalize("NFKC", value).casefold().split())
    if value is None:
        return _NOTHING
    try:
        hash(value)
    except TypeError:
        return _NOTHING
    return value  # type: ignore[no-any-return]


class _Nothing:
    """The key of a value that can be no label (``None``, unhashables)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no label>"


_NOTHING = _Nothing()


def _shown(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value if isinstance(value.value, str) else value.name
    return value if isinstance(value, str) else repr(value)


class ConfusionMatrix:
    """Counts of expected (rows) against predicted (columns) labels, plus an "other" column.

    ``counts[i][j]`` is how often label ``labels[i]`` was expected and ``labels[j]`` predicted;
    ``counts[i][-1]`` how often something outside the labels was predicted (``others`` counts
    those predictions by their text). ``precision`` and ``recall`` map each label to its rate, or
    ``None`` when the label was never predicted (precision) or never expected (recall).

    >>> m = confusion_matrix(["pos", "neg", "pos", "maybe"], ["pos", "neg", "neg", "pos"])
    >>> m.labels, m.counts
    (('neg', 'pos'), ((1, 1, 0), (0, 1, 1)))
    >>> m.accuracy, m.precision["pos"], m.recall["pos"]
    (0.5, 0.5, 0.5)
    """

    __slots__ = ("_index", "counts", "labels", "others", "precision", "recall")

    def __init__(
        self, *, labels: Sequence[Any], counts: Sequence[Sequence[int]], others: Mapping[str, int] | None = None
    ) -> None:
        self.labels: tuple[Any, ...] = tuple(labels)
        self.counts: tuple[tuple[int, ...], ...] = tuple(tuple(row) for row in counts)
        width = len(self.labels) + 1
        if len(self.counts) != len(self.labels) or any(len(row) != width for row in self.counts):
            raise ConfigurationError(
                f"a confusion matrix of {len(self.labels)} labels needs {len(self.labels)} rows of {width} counts"
            )
        self.others: Mapping[str, int] = MappingProxyType(dict(others or {}))
        self._index = {label_key(label): i for i, label in enumerate(self.labels)}
        columns = [sum(row[j] for row in self.counts) for j in range(len(self.labels))]
        self.precision: Mapping[Any, float | None] = MappingProxyType(
            {label: rate(self.counts[i][i], columns[i]) for i, label in enumerate(self.labels)}
        )
        self.recall: Mapping[Any, float | None] = MappingProxyType(
            {label: rate(self.counts[i][i], sum(self.counts[i])) for i, label in enumerate(self.labels)}
        )

    @property
    def n(self) -> int:
        """How many predictions were counted."""
        return sum(sum(row) for row in self.counts)

    @property
    def accuracy(self) -> float | None:
        """The share of predictions equal to the expected label (``None`` with no predictions)."""
        return rate(sum(self.counts[i][i] for i in range(len(self.labels))), self.n)

    @property
    def other(self) -> int:
        """How many predictions were none of the labels."""
        return sum(row[-1] for row in self.counts)

    def count(self, expected: Any, predicted: Any) -> int:
        """How often ``expected`` was expected and ``predicted`` predicted (``OTHER``: outside the labels)."""
        i = self._position(expected)
        j = len(self.labels) if predicted is OTHER else self._position(predicted)
        return self.counts[i][j]

    def _position(self, label: Any) -> int:
        position = self._index.get(label_key(label))
        if position is None:
            raise ConfigurationError(f"{label!r} is not one of the labels {list(self.labels)!r}")
        return position

    def _columns(self) -> list[str]:
        return [*map(_shown, self.labels), OTHER]

    def to_pandas(self) -> Any:
        """The counts as a ``pandas.DataFrame``: expected labels as the index, predicted as columns."""
        from .._utils import require

        pd = require("pandas", extra="pandas")
        frame = pd.DataFrame(
            [list(row) for row in self.counts], index=[_shown(label) for label in self.labels], columns=self._columns()
        )
        frame.index.name = "expected"
        frame.columns.name = "predicted"
        return frame

    def __str__(self) -> str:
        header = ["expected \\ predicted", *self._columns(), "recall"]
        lines = [header]
        for i, label in enumerate(self.labels):
            recall = self.recall[label]
            lines.append([_shown(label), *map(str, self.counts[i]), "-" if recall is None else f"{recall:.2f}"])
        lines.append(
            ["precision", *("-" if p is None else f"{p:.2f}" for p in self.precision.values()), "", ""],
        )
        widths = [max(len(_one_line(row[k])) for row in lines) for k in range(len(header))]
        text = "\n".join(
            "  ".join(_one_line(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in lines
        )
        accuracy = self.accuracy
        summary = f"n={self.n}, accuracy={'-' if accuracy is None else f'{accuracy:.3f}'}, other={self.other}"
        return f"{text}\n{summary}"

    def __repr__(self) -> str:
        return f"ConfusionMatrix(labels={list(self.labels)!r}, n={self.n}, other={self.other})"

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(column)}</th>" for column in self._columns())
        body = []
        for i, label in enumerate(self.labels):
            cells = "".join(
                f"<td><b>{count}</b></td>" if j == i else f"<td>{count}</td>" for j, count in enumerate(self.counts[i])
            )
            recall = self.recall[label]
            body.append(
                f"<tr><th>{esc(_shown(label))}</th>{cells}<td>{'-' if recall is None else f'{recall:.2f}'}</td></tr>"
            )
        precision = "".join(f"<td>{'-' if p is None else f'{p:.2f}'}</td>" for p in self.precision.values())
        body.append(f"<tr><th>precision</th>{precision}<td></td><td></td></tr>")
        accuracy = self.accuracy
        return (
            "<table><thead><tr><th>expected \\ predicted</th>"
            f"{head}<th>recall</th></tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<small>n={self.n}, accuracy={'-' if accuracy is None else f'{accuracy:.3f}'}, "
            f"other={self.other}</small>"
        )


def _one_line(text: str, limit: int = 40) -> str:
    """A table cell: one line, at most ``limit`` characters (labels are data, maybe long)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def confusion_matrix(
    predictions: Iterable[Any], expected: Iterable[Any], labels: Sequence[Any] | None = None
) -> ConfusionMatrix:
    """Count predictions against expected labels (aligned sequences) in a :class:`ConfusionMatrix`.

    ``labels`` fixes the labels and their order; by default they are the distinct expected
    values, sorted. An expected value outside ``labels`` is an error (the dataset is wrong); a
    prediction outside them is counted in the "other" column.

    >>> print(confusion_matrix(["yes", "No", None], ["yes", "no", "no"]))
    expected \\ predicted  no    yes   (other)  recall
    no                    1     0     1        0.50
    yes                   0     1     0        1.00
    precision             1.00  1.00
    n=3, accuracy=0.667, other=1
    """
    predicted, truth = list(predictions), list(expected)
    if len(predicted) != len(truth):
        raise ConfigurationError(
            f"confusion_matrix() needs one prediction per expected label; got {len(predicted)} and {len(truth)}"
        )
    if labels is None:
        first: dict[Hashable, Any] = {}
        for value in truth:
            first.setdefault(label_key(value), value)
        first.pop(_NOTHING, None)
        chosen = sorted(first.values(), key=_shown)
    else:
        if isinstance(labels, (str, bytes)):
            raise ConfigurationError("labels must be a sequence of labels, not a string")
        chosen = list(labels)
        keys = [label_key(label) for label in chosen]
        if len(set(keys)) != len(keys) or _NOTHING in keys:
            raise ConfigurationError(f"labels must be distinct, hashable and not None; got {chosen!r}")
    index = {label_key(label): i for i, label in enumerate(chosen)}
    width = len(chosen) + 1
    counts = [[0] * width for _ in chosen]
    others: Counter[str] = Counter()
    for position, (prediction, want) in enumerate(zip(predicted, truth, strict=True)):
        row = index.get(label_key(want))
        if row is None:
            raise MetricError(
                f"expected label {want!r} (item {position}) is not one of the labels {[*map(_shown, chosen)]!r}"
            )
        column = index.get(label_key(prediction))
        if column is None:
            counts[row][-1] += 1
            others[_one_line(_shown(prediction), 80)] += 1
        else:
            counts[row][column] += 1
    return ConfusionMatrix(labels=chosen, counts=counts, others=dict(others))

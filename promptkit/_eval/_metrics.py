"""Built-in metrics, and :func:`as_metric`, which makes a plain function one.

A metric has a ``name`` and ``score(prediction, row)`` returning a float or bool in [0, 1] or a
:class:`~promptkit.Score` (with a ``detail`` saying why). Predictions are model output, so they
are treated as hostile data: nothing is evaluated, text is only compared, searched or parsed as
JSON, and scoring never raises on a strange prediction (it scores 0 and says why). Only a
misconfiguration raises: a row without the expected output a metric needs, a bad pattern, a
schema that is not a type; those raise :class:`~promptkit.MetricError` or
:class:`~promptkit.ConfigurationError` naming the row or the argument.

:func:`apply_metric` (and :func:`aapply_metric`) run one metric on one prediction and check what
it returns, so an evaluation gets a :class:`Score` in [0, 1] or an error naming metric and row.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .._errors import BackendError, ConfigurationError, GuardError, MetricError
from ._confusion import ConfusionMatrix, confusion_matrix, label_key
from ._types import Metric, Row, Score

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = [
    "ChoiceAccuracy",
    "Contains",
    "ExactMatch",
    "FieldMatch",
    "JSONValid",
    "NumericMatch",
    "RegexMatch",
    "SchemaValid",
    "TokenF1",
    "aapply_metric",
    "apply_metric",
    "as_metric",
    "expected_of",
    "text_of",
]

MAX_REGEX_CHARS = 100_000
"""Predictions longer than this are not searched by :class:`RegexMatch` (they score 0, with a detail)."""


# -- turning things into metrics and scores ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FunctionMetric:
    """A plain function ``fn(prediction, row)`` used as a metric."""

    name: str
    fn: Callable[[Any, Row], Any] = field(repr=False)

    def score(self, prediction: Any, row: Row) -> Any:
        return self.fn(prediction, row)


@dataclass(frozen=True, slots=True)
class _Renamed:
    """A metric shown under another name (its ``ascore`` kept, if it has one)."""

    name: str
    metric: Metric

    def score(self, prediction: Any, row: Row) -> Any:
        return self.metric.score(prediction, row)

    async def ascore(self, prediction: Any, row: Row) -> Any:
        ascore = getattr(self.metric, "ascore", None)
        if ascore is None:
            return self.metric.score(prediction, row)
        return await ascore(prediction, row)


def as_metric(obj: Any, *, name: str | None = None) -> Metric:
    """``obj`` as a :class:`~promptkit.Metric`: a metric passes through, a plain function
    ``f(prediction, row)`` becomes one named ``f.__name__``; ``name`` renames either.

    A lambda (or a ``functools.partial``) has no useful name, so it needs ``name=``.

    >>> def shouts(prediction, row):
    ...     return prediction.isupper()
    >>> as_metric(shouts).name
    'shouts'
    >>> as_metric(lambda p, r: 1.0, name="one").score("x", Row(id="r", inputs={}))
    1.0
    """
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise MetricError(f"a metric's name must be a non-empty string, not {name!r}")
    score = getattr(obj, "score", None)
    if callable(score) and isinstance(getattr(obj, "name", None), str) and not inspect.isfunction(obj):
        if not obj.name.strip():
            raise MetricError(f"metric {obj!r} has an empty name")
        return obj if name is None or name == obj.name else _Renamed(name, obj)
    if callable(obj) and not isinstance(obj, type):
        given = name if name is not None else getattr(obj, "__name__", None)
        if not isinstance(given, str) or given == "<lambda>":
            raise MetricError(
                f"the function {obj!r} needs a name for the report: as_metric(fn, name='my_metric'), "
                "or define it with def"
            )
        return _FunctionMetric(given, obj)
    raise MetricError(
        f"{obj!r} is not a metric: give an object with a name and score(prediction, row), "
        "or a function f(prediction, row)"
    )


def _checked(value: Any, metric: Metric, row: Row) -> Score:
    if isinstance(value, Score):
        number: Any = value.value
    elif isinstance(value, bool):
        return Score(value=1.0 if value else 0.0)
    else:
        number = value
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
        raise MetricError(
            f"metric {metric.name!r} returned {value!r} on row {row.id!r}; a metric returns a float or bool "
            "in [0, 1] or a Score",
            metric=metric.name,
            row_id=row.id,
        )
    if not 0.0 <= number <= 1.0:
        raise MetricError(
            f"metric {metric.name!r} scored {number!r} on row {row.id!r}, outside [0, 1]",
            metric=metric.name,
            row_id=row.id,
        )
    if isinstance(value, Score):
        return value if isinstance(value.value, float) else dataclasses.replace(value, value=float(number))
    return Score(value=float(number))


def _wrapped(exc: Exception, metric: Metric, row: Row) -> Exception:
    """Errors of the metric's own making become a ``MetricError`` naming it and the row; a
    backend's error (an LLM judge's call) and the test guards pass as they are."""
    if isinstance(exc, (BackendError, GuardError, MetricError)):
        return exc
    return MetricError(
        f"metric {metric.name!r} failed on row {row.id!r}: {type(exc).__name__}: {exc}",
        metric=metric.name,
        row_id=row.id,
    )


def apply_metric(metric: Metric, prediction: Any, row: Row) -> Score:
    """Score ``prediction`` with ``metric`` and check the result: a :class:`Score` in [0, 1].

    >>> apply_metric(ExactMatch(), "Paris", Row(id="r1", inputs={}, expected="paris")).value
    1.0
    """
    try:
        value = metric.score(prediction, row)
    except Exception as exc:
        wrapped = _wrapped(exc, metric, row)
        if wrapped is exc:
            raise
        raise wrapped from exc
    return _checked(value, metric, row)


async def aapply_metric(metric: Metric, prediction: Any, row: Row) -> Score:
    """Async :func:`apply_metric`: awaits the metric's ``ascore`` when it has one (an LLM judge)."""
    ascore = getattr(metric, "ascore", None)
    try:
        value = await ascore(prediction, row) if ascore is not None else metric.score(prediction, row)
    except Exception as exc:
        wrapped = _wrapped(exc, metric, row)
        if wrapped is exc:
            raise
        raise wrapped from exc
    return _checked(value, metric, row)


# -- shared helpers ---------------------------------------------------------------------------------


def expected_of(row: Row, metric: str) -> Any:
    """``row.expected``, or a :class:`~promptkit.MetricError` naming the row and metric that need it."""
    if not row.has_expected:
        raise MetricError(
            f"metric {metric!r} compares with the expected output, but row {row.id!r} has none",
            metric=metric,
            row_id=row.id,
        )
    return row.expected


def text_of(value: Any) -> str:
    """A prediction or expected value as text: strings as they are, an enum member's value, JSON
    for models, mappings and lists, ``str()`` for the rest.

    >>> text_of({"a": 1}), text_of(3.5), text_of(None)
    ('{"a": 1}', '3.5', '')
    """
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, str) else value.name
    plain = _plain(value)
    if isinstance(plain, (dict, list)):
        return json.dumps(plain, ensure_ascii=False, default=str)
    return str(value)


def _plain(value: Any) -> Any:
    """Models and dataclasses as dicts, tuples as lists, recursively; other values unchanged."""
    from .._utils import is_model_instance

    if is_model_instance(value):
        return _plain(value.model_dump(mode="python"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


_MISSING: Any = object()


def _lookup(value: Any, path: str) -> Any:
    """The value at a dotted ``path`` in nested dicts (from :func:`_plain`); ``_MISSING`` if absent."""
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _short(value: Any, limit: int = 80) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "\u2026"


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"a metric's name must be a non-empty string, not {name!r}")


# -- string matching --------------------------------------------------------------------------------

_PUNCTUATION = frozenset(string.punctuation)


def _strip_punctuation(text: str) -> str:
    return "".join(" " if ch in _PUNCTUATION or unicodedata.category(ch).startswith("P") else ch for ch in text).strip()


@dataclass(frozen=True, slots=True)
class ExactMatch:
    """1.0 when the prediction equals ``row.expected`` (or ``row.expected[field]``) after
    normalisation, else 0.0.

    The text is case-folded (unless ``case_sensitive``), stripped, whitespace runs collapsed, and
    with ``ignore_punctuation`` punctuation removed; ``normalize`` (a ``str -> str`` function) runs
    last. ``field`` (a dotted path) picks a part of the expected output, and of the prediction too
    when it is a mapping, model or dataclass. Non-text values are compared as text (JSON for
    dicts and models, an enum member's value).

    >>> row = Row(id="r1", inputs={}, expected="Paris")
    >>> ExactMatch().score("  paris ", row).value, ExactMatch(case_sensitive=True).score("paris", row).value
    (1.0, 0.0)
    >>> ExactMatch(ignore_punctuation=True).score("Paris!", row).passed
    True
    """

    _: KW_ONLY
    field: str | None = None
    case_sensitive: bool = False
    strip: bool = True
    normalize_whitespace: bool = True
    ignore_punctuation: bool = False
    normalize: Callable[[str], str] | None = None
    name: str = "exact_match"

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.field is not None and (not isinstance(self.field, str) or not self.field):
            raise ConfigurationError(f"field must be a dotted path such as 'answer', not {self.field!r}")
        if self.normalize is not None and not callable(self.normalize):
            raise ConfigurationError(f"normalize must be a function str -> str, not {self.normalize!r}")

    def _clean(self, value: Any) -> str:
        text = text_of(value)
        if not self.case_sensitive:
            text = unicodedata.normalize("NFKC", text).casefold()
        if self.ignore_punctuation:
            text = _strip_punctuation(text)
        if self.normalize_whitespace:
            text = " ".join(text.split())
        elif self.strip:
            text = text.strip()
        if self.normalize is not None:
            text = self.normalize(text)
            if not isinstance(text, str):
                raise ConfigurationError(f"normalize must return a str, not {type(text).__name__}")
        return text

    def score(self, prediction: Any, row: Row) -> Score:
        expected = expected_of(row, self.name)
        if self.field is not None:
            found = _lookup(_plain(expected), self.field)
            if found is _MISSING:
                raise MetricError(
                    f"metric {self.name!r}: the expected output of row {row.id!r} has no field {self.field!r}",
                    metric=self.name,
                    row_id=row.id,
                )
            expected = found
            plain = _plain(prediction)
            if isinstance(plain, dict):
                prediction = _lookup(plain, self.field)
                if prediction is _MISSING:
                    return Score(value=0.0, detail=f"the prediction has no field {self.field!r}")
        if self._clean(prediction) == self._clean(expected):
            return Score(value=1.0)
        return Score(value=0.0, detail=f"expected {_short(text_of(expected))}, got {_short(text_of(prediction))}")


def _substrings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        items = list(value)
        if items and all(isinstance(item, str) for item in items):
            return items
    return [text_of(value)]


@dataclass(frozen=True, slots=True)
class Contains:
    """1.0 when the prediction contains ``substring`` (by default ``row.expected``; a list of
    strings: any of them), ignoring case unless ``case_sensitive``.

    >>> Contains("Paris").score("It is paris, of course.", Row(id="r1", inputs={}))
    1.0
    >>> Contains().score("Lyon", Row(id="r2", inputs={}, expected=["Paris", "Lutetia"]))
    0.0
    """

    substring: str | Sequence[str] | None = None
    _: KW_ONLY
    case_sensitive: bool = False
    name: str = "contains"

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.substring is not None and not _substrings(self.substring)[0]:
            raise ConfigurationError("Contains needs a non-empty substring")
        if self.substring is not None and not isinstance(self.substring, str):
            object.__setattr__(self, "substring", tuple(_substrings(self.substring)))

    def _fold(self, text: str) -> str:
        return text if self.case_sensitive else unicodedata.normalize("NFKC", text).casefold()

    def score(self, prediction: Any, row: Row) -> float:
        wanted = self.substring if self.substring is not None else expected_of(row, self.name)
        haystack = self._fold(text_of(prediction))
        return 1.0 if any(self._fold(part) in haystack for part in _substrings(wanted)) else 0.0


@dataclass(frozen=True, slots=True)
class RegexMatch:
    """1.0 when the prediction matches ``pattern`` (searched anywhere, or the whole text with
    ``full=True``), compiled once with Python's ``re``.

    The pattern is yours, and ``re`` backtracks: keep it free of nested quantifiers such as
    ``(a+)+``. Predictions longer than ``max_chars`` are not searched (they score 0 with a detail),
    which bounds the time a linear pattern takes on hostile output.

    >>> RegexMatch(r"\\b4\\b").score("The answer is 4.", Row(id="r1", inputs={})).value
    1.0
    >>> RegexMatch(r"\\d+", full=True).score("42 apples", Row(id="r1", inputs={})).value
    0.0
    """

    pattern: str | re.Pattern[str]
    _: KW_ONLY
    full: bool = False
    flags: int = 0
    max_chars: int = MAX_REGEX_CHARS
    name: str = "regex_match"
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        try:
            compiled = re.compile(self.pattern, self.flags) if isinstance(self.pattern, str) else self.pattern
        except (re.error, TypeError, ValueError) as exc:
            raise MetricError(f"RegexMatch: invalid regular expression {self.pattern!r}: {exc}") from exc
        if not isinstance(compiled, re.Pattern) or not isinstance(compiled.pattern, str):
            raise MetricError(f"RegexMatch needs a str pattern, not {self.pattern!r}")
        if isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int) or self.max_chars < 1:
            raise ConfigurationError(f"max_chars must be a whole number >= 1, not {self.max_chars!r}")
        object.__setattr__(self, "compiled", compiled)

    def score(self, prediction: Any, row: Row) -> Score:
        text = text_of(prediction)
        if len(text) > self.max_chars:
            return Score(value=0.0, detail=f"prediction of {len(text)} characters is over max_chars={self.max_chars}")
        found = self.compiled.fullmatch(text) if self.full else self.compiled.search(text)
        return Score(value=1.0) if found else Score(value=0.0, detail=f"no match for {self.compiled.pattern!r}")


# -- labels, numbers, JSON --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChoiceAccuracy:
    """1.0 when the predicted label is the expected one (case, whitespace and enum wrappers do not
    count); with ``labels``, a prediction outside them scores 0 and an expected value outside them
    is an error. :meth:`confusion` counts many predictions in a :class:`ConfusionMatrix`.

    >>> accuracy = ChoiceAccuracy(["positive", "negative"])
    >>> accuracy.score("Positive", Row(id="r1", inputs={}, expected="positive")).value
    1.0
    >>> accuracy.confusion([("positive", "negative"), ("negative", "negative")]).recall["negative"]
    0.5
    """

    labels: Sequence[Any] | None = None
    _: KW_ONLY
    name: str = "accuracy"

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.labels is not None:
            if isinstance(self.labels, (str, bytes)):
                raise ConfigurationError("labels must be a sequence of labels, not a string")
            object.__setattr__(self, "labels", tuple(self.labels))

    def score(self, prediction: Any, row: Row) -> Score:
        expected = expected_of(row, self.name)
        want = label_key(expected)
        if self.labels is not None:
            keys = {label_key(label) for label in self.labels}
            if want not in keys:
                raise MetricError(
                    f"metric {self.name!r}: row {row.id!r} expects {expected!r}, which is not one of the labels "
                    f"{list(self.labels)!r}",
                    metric=self.name,
                    row_id=row.id,
                )
            if label_key(prediction) not in keys:
                return Score(value=0.0, detail=f"{_short(text_of(prediction))} is not one of the labels")
        if label_key(prediction) == want:
            return Score(value=1.0)
        return Score(value=0.0, detail=f"expected {_short(text_of(expected))}, got {_short(text_of(prediction))}")

    def confusion(self, pairs: Iterable[tuple[Any, Any]]) -> ConfusionMatrix:
        """The confusion matrix of ``(prediction, expected)`` pairs; ``expected`` may be a :class:`Row`."""
        predictions: list[Any] = []
        expected: list[Any] = []
        for prediction, truth in pairs:
            predictions.append(prediction)
            expected.append(expected_of(truth, self.name) if isinstance(truth, Row) else truth)
        return confusion_matrix(predictions, expected, self.labels)


def _number(value: Any, prefer: Literal["first", "last", "unique"]) -> tuple[float | None, str]:
    """A number from a prediction or expected value, or ``None`` and why not."""
    if isinstance(value, bool) or isinstance(_plain(value), (dict, list, set, frozenset)):
        return None, f"{_short(value)} is not a number"
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        from decimal import Decimal

        if isinstance(value, Decimal):
            number = float(value)
        else:
            from .._errors import ParseError
            from .._parsers import NumberParser

            text = text_of(value)
            try:
                number = NumberParser(float, prefer=prefer).parse(text)
            except ParseError as exc:
                return None, str(exc)
    if not math.isfinite(number):
        return None, f"{_short(value)} is not a finite number"
    return number, ""


@dataclass(frozen=True, slots=True)
class NumericMatch:
    """1.0 when the predicted number is within tolerance of the expected one
    (``math.isclose(abs_tol=, rel_tol=)``; by default exactly equal).

    Text is read as a number the way :class:`~promptkit.NumberParser` does (``"1,234.5"``,
    ``"$3"``, ``"about 42."``); with several numbers in the text the ``prefer``\\ red one counts
    (the last, as math benchmarks read a worked answer). A prediction with no number scores 0
    with a detail; an expected value that is no number is an error.

    >>> NumericMatch().score("That is $1,234.50.", Row(id="r1", inputs={}, expected=1234.5))
    Score(value=1.0, detail=None)
    >>> NumericMatch(rel_tol=0.01).score("99.5", Row(id="r2", inputs={}, expected="100"))
    Score(value=1.0, detail=None)
    """

    _: KW_ONLY
    abs_tol: float = 0.0
    rel_tol: float = 0.0
    prefer: Literal["first", "last", "unique"] = "last"
    name: str = "numeric_match"

    def __post_init__(self) -> None:
        _check_name(self.name)
        for option in ("abs_tol", "rel_tol"):
            value = getattr(self, option)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"{option} must be a non-negative number, not {value!r}")
        if self.prefer not in ("first", "last", "unique"):
            raise ConfigurationError(f"prefer must be 'first', 'last' or 'unique', not {self.prefer!r}")

    def score(self, prediction: Any, row: Row) -> Score:
        expected = expected_of(row, self.name)
        want, why = _number(expected, self.prefer)
        if want is None:
            raise MetricError(
                f"metric {self.name!r}: the expected output of row {row.id!r} is not a number ({why})",
                metric=self.name,
                row_id=row.id,
            )
        got, why = _number(prediction, self.prefer)
        if got is None:
            return Score(value=0.0, detail=f"no number in the prediction: {why}")
        if math.isclose(got, want, abs_tol=self.abs_tol, rel_tol=self.rel_tol):
            return Score(value=1.0)
        return Score(value=0.0, detail=f"expected {want!r}, got {got!r}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@dataclass(frozen=True, slots=True)
class JSONValid:
    """1.0 when the prediction is valid JSON text (strict: no ``NaN``, no trailing text), or an
    already-parsed JSON object or array (a dict or list, as a JSON parser returns).

    >>> JSONValid().score('{"a": [1, 2]}', Row(id="r1", inputs={}))
    Score(value=1.0, detail=None)
    >>> JSONValid().score("{'a': 1}", Row(id="r1", inputs={})).value
    0.0
    """

    _: KW_ONLY
    name: str = "json_valid"

    def __post_init__(self) -> None:
        _check_name(self.name)

    def score(self, prediction: Any, row: Row) -> Score:
        if isinstance(prediction, (dict, list)):
            return Score(value=1.0)
        if not isinstance(prediction, str):
            return Score(value=0.0, detail=f"a {type(prediction).__name__} is not JSON text")
        try:
            json.loads(prediction, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            return Score(value=0.0, detail=f"invalid JSON: {_short(str(exc), 200)}")
        return Score(value=1.0)


class SchemaValid:
    """1.0 when the prediction validates against ``model`` (a pydantic model, or any type pydantic's
    ``TypeAdapter`` accepts: a dataclass, a ``TypedDict``, ``list[int]``...); ``detail`` holds the
    validation error. Text is validated as JSON, other values as Python objects.

    >>> from pydantic import BaseModel
    >>> class City(BaseModel):
    ...     name: str
    ...     population: int
    >>> SchemaValid(City).score('{"name": "Oslo", "population": 709000}', Row(id="r1", inputs={})).value
    1.0
    >>> print(SchemaValid(City).score({"name": "Oslo"}, Row(id="r1", inputs={})).detail)
    1 validation error for City
    population
      Field required ...
    """

    __slots__ = ("_adapter", "model", "name")

    def __init__(self, model: Any, *, name: str = "schema_valid") -> None:
        import pydantic

        _check_name(name)
        try:
            self._adapter: TypeAdapter[Any] = pydantic.TypeAdapter(model)
        except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError) as exc:
            raise MetricError(f"SchemaValid: pydantic cannot validate {model!r}: {exc}") from exc
        self.model = model
        self.name = name

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, "name"):
            raise AttributeError("a SchemaValid metric cannot be changed")
        object.__setattr__(self, name, value)

    def score(self, prediction: Any, row: Row) -> Score:
        import pydantic

        model = self.model
        if isinstance(model, type) and isinstance(prediction, model):
            return Score(value=1.0)
        try:
            if isinstance(prediction, (str, bytes)):
                self._adapter.validate_json(prediction)
            else:
                self._adapter.validate_python(prediction)
        except pydantic.ValidationError as exc:
            return Score(value=0.0, detail=str(exc))
        except (ValueError, RecursionError) as exc:
            return Score(value=0.0, detail=f"{type(exc).__name__}: {_short(str(exc), 200)}")
        return Score(value=1.0)

    def __repr__(self) -> str:
        return f"SchemaValid({getattr(self.model, '__name__', self.model)!r}, name={self.name!r})"


# -- structured outputs and free text ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """The (weighted) share of fields equal in the prediction and ``row.expected``, for structured
    outputs: pydantic models, dataclasses, dicts, or JSON text of one.

    ``fields`` lists dotted paths (``"address.city"``, ``"items.0"``); by default every top-level
    field of the expected output. ``weights`` maps fields to weights (1 by default). ``detail``
    names the fields that differ.

    >>> row = Row(id="r1", inputs={}, expected={"name": "Oslo", "country": {"code": "NO"}})
    >>> s = FieldMatch(["name", "country.code"]).score({"name": "Oslo", "country": {"code": "SE"}}, row)
    >>> s.value, s.detail
    (0.5, "country.code: expected 'NO', got 'SE'")
    """

    fields: Sequence[str] | None = None
    _: KW_ONLY
    weights: Mapping[str, float] | None = None
    name: str = "field_match"

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.fields is not None:
            if isinstance(self.fields, str):
                raise ConfigurationError("fields must be a list of field paths, not a string")
            fields = tuple(self.fields)
            if not fields or not all(isinstance(f, str) and f for f in fields):
                raise ConfigurationError(f"fields must be non-empty field paths, not {self.fields!r}")
            if len(set(fields)) != len(fields):
                raise ConfigurationError(f"fields are listed twice in {list(fields)!r}")
            object.__setattr__(self, "fields", fields)
        if self.weights is not None:
            weights = dict(self.weights)
            for key, weight in weights.items():
                if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                    raise ConfigurationError(f"weight of {key!r} must be a number >= 0, not {weight!r}")
                if weight < 0:
                    raise ConfigurationError(f"weight of {key!r} must be a number >= 0, not {weight!r}")
            if self.fields is not None and not set(weights) <= set(self.fields):
                unknown = sorted(set(weights) - set(self.fields))
                raise ConfigurationError(f"weights name fields not in fields: {', '.join(unknown)}")
            object.__setattr__(self, "weights", weights)

    def score(self, prediction: Any, row: Row) -> Score:
        expected = _plain(expected_of(row, self.name))
        if isinstance(expected, str):
            try:
                expected = json.loads(expected)
            except ValueError:
                pass
        if not isinstance(expected, dict):
            raise MetricError(
                f"metric {self.name!r}: the expected output of row {row.id!r} is not a structure with fields",
                metric=self.name,
                row_id=row.id,
            )
        fields = self.fields if self.fields is not None else tuple(expected)
        if not fields:
            raise MetricError(
                f"metric {self.name!r}: the expected output of row {row.id!r} has no fields to compare",
                metric=self.name,
                row_id=row.id,
            )
        got = _plain(prediction)
        if isinstance(got, str):
            try:
                got = json.loads(got, parse_constant=_reject_constant)
            except (ValueError, RecursionError):
                return Score(value=0.0, detail="the prediction is text, not JSON with fields")
        weights = self.weights or {}
        total = sum(weights.get(path, 1.0) for path in fields)
        if total <= 0:
            raise ConfigurationError(f"metric {self.name!r}: the weights of the fields add up to 0")
        matched = 0.0
        wrong: list[str] = []
        for path in fields:
            want = _lookup(expected, path)
            if want is _MISSING:
                raise MetricError(
                    f"metric {self.name!r}: the expected output of row {row.id!r} has no field {path!r}",
                    metric=self.name,
                    row_id=row.id,
                )
            have = _lookup(got, path) if isinstance(got, (dict, list)) else _MISSING
            if have is _MISSING:
                wrong.append(f"{path}: missing")
            elif _same(have, want):
                matched += weights.get(path, 1.0)
            else:
                wrong.append(f"{path}: expected {_short(want)}, got {_short(have)}")
        return Score(value=min(1.0, matched / total), detail="; ".join(wrong) or None)


def _same(have: Any, want: Any) -> bool:
    """Equal values, where ``True`` is not ``1`` (JSON tells booleans from numbers)."""
    if isinstance(have, bool) or isinstance(want, bool):
        return type(have) is type(want) and have == want
    try:
        return bool(have == want)
    except Exception:  # a value with a hostile __eq__ is simply not equal
        return False


_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def squad_tokens(text: str) -> list[str]:
    """SQuAD's answer normalisation, as tokens: lower case, no punctuation, no articles.

    >>> squad_tokens("The Eiffel Tower, in Paris!")
    ['eiffel', 'tower', 'in', 'paris']
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return _ARTICLES.sub(" ", text).split()


def _f1(prediction: list[str], reference: list[str]) -> float:
    if not prediction or not reference:
        return 1.0 if prediction == reference else 0.0
    common = sum((Counter(prediction) & Counter(reference)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(prediction), common / len(reference)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True, slots=True)
class TokenF1:
    """Token-level F1 of the prediction against ``row.expected``, as SQuAD scores answers: both are
    lower-cased, stripped of punctuation and articles, split on whitespace, and compared as
    multisets. With a list of references, the best F1 counts.

    >>> TokenF1().score("the Eiffel tower", Row(id="r1", inputs={}, expected="Eiffel Tower in Paris"))
    0.6666666666666666
    """

    _: KW_ONLY
    name: str = "token_f1"

    def __post_init__(self) -> None:
        _check_name(self.name)

    def score(self, prediction: Any, row: Row) -> float:
        expected = expected_of(row, self.name)
        references = _substrings(expected) if not isinstance(expected, str) else [expected]
        tokens = squad_tokens(text_of(prediction))
        return max(_f1(tokens, squad_tokens(reference)) for reference in references)

"""Built-in metrics, as_metric and the confusion matrix: normalisation, bad rows, hostile predictions."""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import promptkit
from promptkit import (
    ChoiceAccuracy,
    ConfigurationError,
    ConfusionMatrix,
    Contains,
    ExactMatch,
    FieldMatch,
    JSONValid,
    Metric,
    MetricError,
    NumericMatch,
    RateLimitError,
    RegexMatch,
    Row,
    SchemaValid,
    Score,
    TokenF1,
    as_metric,
    confusion_matrix,
)
from promptkit._eval._metrics import MAX_REGEX_CHARS, aapply_metric, apply_metric, squad_tokens, text_of
from promptkit.testing import rate_limit_error


def row(expected: Any = promptkit._eval.NO_EXPECTED, id: str = "r1", **inputs: Any) -> Row:
    return Row(id=id, inputs=inputs or {"q": "?"}, expected=expected)


def value(result: float | bool | Score) -> float:
    return result.value if isinstance(result, Score) else float(result)


class Sentiment(enum.Enum):
    POSITIVE = "positive"
    NEGATIVE = "negative"


# -- as_metric and apply_metric ---------------------------------------------------------------------


def test_a_function_becomes_a_metric_named_after_it() -> None:
    def is_short(prediction: Any, row: Row) -> bool:
        return len(prediction) < 5

    metric = as_metric(is_short)
    assert metric.name == "is_short"
    assert isinstance(metric, Metric)
    assert metric.score("hi", row()) is True
    assert as_metric(is_short, name="short").name == "short"


def test_a_lambda_needs_a_name() -> None:
    with pytest.raises(MetricError, match=r"needs a name.*as_metric\(fn, name="):
        as_metric(lambda p, r: 1.0)
    assert as_metric(lambda p, r: 1.0, name="one").name == "one"


def test_a_metric_passes_through_and_can_be_renamed() -> None:
    metric = ExactMatch()
    assert as_metric(metric) is metric
    renamed = as_metric(metric, name="em")
    assert renamed.name == "em"
    assert value(renamed.score("a", row("A"))) == 1.0


@pytest.mark.parametrize("bad", [42, "exact", None, ExactMatch, object()])
def test_anything_else_is_not_a_metric(bad: Any) -> None:
    with pytest.raises(MetricError):
        as_metric(bad)


def test_a_metric_with_an_empty_name_is_refused() -> None:
    with pytest.raises(MetricError, match="non-empty"):
        as_metric(ExactMatch(), name=" ")
    with pytest.raises(ConfigurationError):
        ExactMatch(name="")


def test_apply_metric_checks_what_a_metric_returns() -> None:
    assert apply_metric(as_metric(lambda p, r: True, name="t"), "x", row()) == Score(value=1.0)
    assert apply_metric(as_metric(lambda p, r: 1, name="t"), "x", row()).value == 1.0
    for bad, message in [(1.5, "outside"), (-0.1, "outside"), (math.nan, "returned"), ("1", "returned")]:
        with pytest.raises(MetricError, match=message) as info:
            apply_metric(as_metric(lambda p, r, bad=bad: bad, name="bad"), "x", row(id="row-7"))
        assert "'bad'" in str(info.value)
        assert "'row-7'" in str(info.value)
        assert (info.value.metric, info.value.row_id) == ("bad", "row-7")
    with pytest.raises(MetricError, match="outside"):
        apply_metric(as_metric(lambda p, r: Score(value=2.0), name="s"), "x", row())


def test_a_metric_that_raises_is_named_with_the_row() -> None:
    def broken(prediction: Any, row: Row) -> float:
        raise KeyError("label")

    with pytest.raises(MetricError, match=r"metric 'broken' failed on row 'r9': KeyError") as info:
        apply_metric(as_metric(broken), "x", row(id="r9"))
    assert isinstance(info.value.__cause__, KeyError)


def test_a_backend_error_inside_a_metric_passes_as_it_is() -> None:
    def calls_a_model(prediction: Any, row: Row) -> float:
        raise rate_limit_error()

    with pytest.raises(RateLimitError):
        apply_metric(as_metric(calls_a_model), "x", row())


@pytest.mark.anyio
async def test_aapply_metric_awaits_ascore_and_falls_back_to_score() -> None:
    class Async:
        name = "async"

        def score(self, prediction: Any, row: Row) -> float:
            raise AssertionError("the sync path must not run")

        async def ascore(self, prediction: Any, row: Row) -> float:
            return 0.25

    assert (await aapply_metric(Async(), "x", row())).value == 0.25
    assert (await aapply_metric(as_metric(Async(), name="renamed"), "x", row())).value == 0.25
    assert (await aapply_metric(ExactMatch(), "a", row("a"))).value == 1.0


# -- exact match, contains, regex -------------------------------------------------------------------


def test_exact_match_normalises_as_asked() -> None:
    r = row("The  Eiffel Tower")
    assert value(ExactMatch().score("  the eiffel tower\n", r)) == 1.0
    assert value(ExactMatch(normalize_whitespace=False).score("the eiffel  tower", r)) == 0.0
    assert value(ExactMatch(normalize_whitespace=False).score(" the  eiffel tower ", r)) == 1.0
    assert value(ExactMatch(normalize_whitespace=False, strip=False).score(" the  eiffel tower", r)) == 0.0
    assert value(ExactMatch(case_sensitive=True).score("the eiffel tower", r)) == 0.0
    assert value(ExactMatch().score("The Eiffel Tower!", r)) == 0.0
    assert value(ExactMatch(ignore_punctuation=True).score("The Eiffel Tower!", r)) == 1.0
    assert value(ExactMatch(ignore_punctuation=True).score("\u00abThe Eiffel Tower\u00bb", r)) == 1.0
    strip_the = ExactMatch(normalize=lambda text: text.removeprefix("the "))
    assert value(strip_the.score("eiffel tower", r)) == 1.0


def test_exact_match_says_what_differed() -> None:
    score = ExactMatch().score("Lyon", row("Paris"))
    assert score.value == 0.0
    assert score.detail == "expected 'Paris', got 'Lyon'"


def test_exact_match_compares_non_text_as_text() -> None:
    assert value(ExactMatch().score(Sentiment.POSITIVE, row("Positive"))) == 1.0
    assert value(ExactMatch().score(4, row("4"))) == 1.0
    assert value(ExactMatch().score({"a": 1}, row({"a": 1}))) == 1.0


def test_exact_match_on_a_field() -> None:
    class Answer(BaseModel):
        label: str
        why: str

    metric = ExactMatch(field="label")
    assert value(metric.score("pos", row({"label": "POS", "why": "x"}))) == 1.0
    assert value(metric.score(Answer(label="pos", why="y"), row({"label": "pos"}))) == 1.0
    assert value(ExactMatch(field="a.b").score({"a": {"b": "x"}}, row({"a": {"b": "X"}}))) == 1.0
    missing = metric.score({"other": 1}, row({"label": "pos"}))
    assert missing.value == 0.0
    assert "no field 'label'" in (missing.detail or "")
    with pytest.raises(MetricError, match="row 'r1' has no field 'label'"):
        metric.score("pos", row({"name": "x"}))


@pytest.mark.parametrize(
    "metric", [ExactMatch(), Contains(), ChoiceAccuracy(), NumericMatch(), FieldMatch(), TokenF1()], ids=repr
)
def test_metrics_that_need_the_expected_output_name_the_row_without_it(metric: Any) -> None:
    with pytest.raises(MetricError, match=r"row 'no-answer' has none") as info:
        metric.score("x", Row(id="no-answer", inputs={"q": 1}))
    assert info.value.row_id == "no-answer"
    assert info.value.metric == metric.name


def test_contains() -> None:
    assert Contains("paris").score("PARIS, France", row()) == 1.0
    assert Contains("paris", case_sensitive=True).score("PARIS", row()) == 0.0
    assert Contains().score("it is Paris", row("paris")) == 1.0
    assert Contains(["Paris", "Lutetia"]).score("lutetia", row()) == 1.0
    assert Contains().score("Rome", row(["Paris", "Lutetia"])) == 0.0
    with pytest.raises(ConfigurationError):
        Contains("")


def test_regex_match_compiles_once_and_refuses_a_bad_pattern() -> None:
    metric = RegexMatch(r"\b(yes|no)\b")
    compiled = metric.compiled
    assert metric.score("I say yes.", row()).value == 1.0
    assert metric.score("maybe", row()).value == 0.0
    assert metric.compiled is compiled
    assert RegexMatch(r"\d+", full=True).score("42", row()).value == 1.0
    assert RegexMatch(r"\d+", full=True).score("42 apples", row()).value == 0.0
    with pytest.raises(MetricError, match="invalid regular expression"):
        RegexMatch("(unclosed")


def test_regex_match_does_not_search_huge_predictions() -> None:
    score = RegexMatch("x").score("x" * (MAX_REGEX_CHARS + 1), row())
    assert score.value == 0.0
    assert "max_chars" in (score.detail or "")
    assert RegexMatch("x", max_chars=10).score("x" * 10, row()).value == 1.0


def test_metrics_are_frozen() -> None:
    metric = ExactMatch()
    with pytest.raises(dataclasses.FrozenInstanceError):
        metric.name = "other"  # type: ignore[misc]
    schema = SchemaValid(int)
    with pytest.raises(AttributeError):
        schema.name = "other"


# -- choices and the confusion matrix ---------------------------------------------------------------


def test_choice_accuracy() -> None:
    metric = ChoiceAccuracy(["positive", "negative"])
    assert metric.score(" Positive", row("positive")).value == 1.0
    assert metric.score(Sentiment.NEGATIVE, row("negative")).value == 1.0
    wrong = metric.score("neutral", row("positive"))
    assert (wrong.value, wrong.detail) == (0.0, "'neutral' is not one of the labels")
    with pytest.raises(MetricError, match=r"row 'r1' expects 'neutral'"):
        metric.score("positive", row("neutral"))
    assert ChoiceAccuracy().score("b", row("a")).value == 0.0


def test_confusion_matrix_counts_and_rates() -> None:
    predictions = ["cat", "cat", "dog", "dog", "dog", "bird?", None, "Cat"]
    expected = ["cat", "dog", "dog", "dog", "cat", "cat", "dog", "cat"]
    matrix = confusion_matrix(predictions, expected)
    assert matrix.labels == ("cat", "dog")
    assert matrix.counts == ((2, 1, 1), (1, 2, 1))
    assert matrix.n == 8
    assert matrix.other == 2
    assert dict(matrix.others) == {"bird?": 1, "None": 1}
    assert matrix.count("cat", "dog") == 1
    assert matrix.count("dog", promptkit._eval._confusion.OTHER) == 1
    assert matrix.accuracy == 4 / 8
    assert matrix.precision["cat"] == 2 / 3
    assert matrix.recall["cat"] == 2 / 4
    assert matrix.recall["dog"] == 2 / 4


def test_confusion_matrix_with_fixed_labels_keeps_unseen_ones() -> None:
    matrix = confusion_matrix(["a"], ["a"], labels=["a", "b", "c"])
    assert matrix.precision == {"a": 1.0, "b": None, "c": None}
    assert matrix.recall == {"a": 1.0, "b": None, "c": None}
    with pytest.raises(MetricError, match="expected label 'z'"):
        confusion_matrix(["a"], ["z"], labels=["a", "b"])
    with pytest.raises(ConfigurationError, match="one prediction per expected"):
        confusion_matrix(["a", "b"], ["a"])
    with pytest.raises(ConfigurationError, match="distinct"):
        confusion_matrix(["a"], ["a"], labels=["a", "A"])


def test_choice_accuracy_confusion_from_rows() -> None:
    metric = ChoiceAccuracy(["yes", "no"])
    matrix = metric.confusion([("yes", row("yes")), ("no", row("yes")), ("maybe", row("no"))])
    assert matrix.labels == ("yes", "no")
    assert matrix.counts == ((1, 1, 0), (0, 0, 1))


def test_confusion_matrix_shows_as_text_pandas_and_escaped_html() -> None:
    hostile = "<script>alert(1)</script>"
    matrix = confusion_matrix([hostile, "ok", "<b>"], [hostile, "ok", "ok"])
    text = str(matrix)
    assert "(other)" in text
    assert "n=3, accuracy=0.667, other=1" in text
    page = matrix._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "<b>" not in page.replace("<b>1</b>", "")
    frame = matrix.to_pandas()
    assert list(frame.columns) == [hostile, "ok", "(other)"]
    assert frame.loc["ok", "(other)"] == 1
    assert frame.index.name == "expected"
    assert "ConfusionMatrix(labels=" in repr(matrix)


def test_confusion_matrix_validates_its_shape() -> None:
    with pytest.raises(ConfigurationError, match="needs 1 rows of 2 counts"):
        ConfusionMatrix(labels=["a"], counts=[[1]])


# -- numbers and JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [("1,234.5", 1234.5), ("$3", 3), ("The answer is 42.", "42"), (7, 7.0), ("3 + 4 = 7", 7), ("-2.5e3", -2500)],
)
def test_numeric_match_reads_numbers(prediction: Any, expected: Any) -> None:
    assert NumericMatch().score(prediction, row(expected)).value == 1.0


def test_numeric_match_tolerances() -> None:
    assert NumericMatch(abs_tol=0.5).score("10.4", row(10)).value == 1.0
    assert NumericMatch(abs_tol=0.5).score("10.6", row(10)).value == 0.0
    assert NumericMatch(rel_tol=0.1).score("109", row(100)).value == 1.0
    far = NumericMatch().score("11", row(10))
    assert far.detail == "expected 10.0, got 11.0"
    assert NumericMatch(prefer="first").score("3 + 4 = 7", row(3)).value == 1.0
    assert NumericMatch(prefer="unique").score("3 + 4 = 7", row(7)).value == 0.0
    with pytest.raises(ConfigurationError):
        NumericMatch(abs_tol=-1)


@pytest.mark.parametrize("prediction", ["no idea", "", None, True, math.inf, "1e9999", {"a": 1}])
def test_numeric_match_scores_a_non_number_zero_with_a_detail(prediction: Any) -> None:
    score = NumericMatch().score(prediction, row(1))
    assert score.value == 0.0
    assert score.detail


def test_numeric_match_needs_a_number_expected() -> None:
    with pytest.raises(MetricError, match="row 'r1' is not a number"):
        NumericMatch().score("1", row("many"))


def test_json_valid() -> None:
    metric = JSONValid()
    assert metric.score('{"a": [1, 2.5, null]}', row()).value == 1.0
    assert metric.score({"a": 1}, row()).value == 1.0
    assert metric.score([1], row()).value == 1.0
    for bad in ["{'a': 1}", '{"a": NaN}', '{"a": 1} trailing', "", "[" * 100_000]:
        score = metric.score(bad, row())
        assert score.value == 0.0
        assert (score.detail or "").startswith("invalid JSON")
    assert metric.score(3, row()).detail == "a int is not JSON text"


class City(BaseModel):
    name: str
    population: int


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_schema_valid_with_pydantic_models_and_other_types() -> None:
    assert SchemaValid(City).score('{"name": "Oslo", "population": 709000}', row()).value == 1.0
    assert SchemaValid(City).score(City(name="Oslo", population=1), row()).value == 1.0
    assert SchemaValid(City).score({"name": "Oslo", "population": "7"}, row()).value == 1.0
    bad = SchemaValid(City).score('{"name": "Oslo"}', row())
    assert bad.value == 0.0
    assert "population" in (bad.detail or "")
    assert "Field required" in (bad.detail or "")
    assert SchemaValid(list[int]).score("[1, 2]", row()).value == 1.0
    assert SchemaValid(list[int]).score(["x"], row()).value == 0.0
    assert SchemaValid(Point).score({"x": 1, "y": 2}, row()).value == 1.0
    assert SchemaValid(City).score("not json", row()).value == 0.0
    assert SchemaValid(City, name="city_ok").name == "city_ok"
    assert "City" in repr(SchemaValid(City))


def test_schema_valid_refuses_what_pydantic_cannot_validate() -> None:
    class NotAType:
        pass

    with pytest.raises(MetricError, match="pydantic cannot validate"):
        SchemaValid(NotAType())


# -- fields and tokens ------------------------------------------------------------------------------


class Address(BaseModel):
    city: str
    zip: str


class Person(BaseModel):
    name: str
    age: int
    address: Address


def test_field_match_on_models_dicts_and_dataclasses() -> None:
    expected = Person(name="Ada", age=36, address=Address(city="London", zip="W1"))
    got = Person(name="Ada", age=37, address=Address(city="London", zip="W2"))
    score = FieldMatch().score(got, row(expected))
    assert score.value == pytest.approx(1 / 3)
    assert score.detail == (
        "age: expected 36, got 37; "
        "address: expected {'city': 'London', 'zip': 'W1'}, got {'city': 'London', 'zip': 'W2'}"
    )
    nested = FieldMatch(["name", "age", "address.city", "address.zip"]).score(got, row(expected))
    assert nested.value == 0.5
    assert nested.detail == "age: expected 36, got 37; address.zip: expected 'W1', got 'W2'"
    assert FieldMatch().score(Point(1, 2), row({"x": 1, "y": 3})).value == 0.5
    assert FieldMatch().score('{"x": 1, "y": 2}', row(Point(1, 2))).value == 1.0


def test_field_match_weights_and_missing_fields() -> None:
    metric = FieldMatch(["a", "b"], weights={"a": 3})
    assert metric.score({"a": 1, "b": 0}, row({"a": 1, "b": 2})).value == 0.75
    missing = FieldMatch().score({"a": 1}, row({"a": 1, "b": 2}))
    assert (missing.value, missing.detail) == (0.5, "b: missing")
    assert FieldMatch().score("plain text", row({"a": 1})).value == 0.0
    assert FieldMatch().score(None, row({"a": 1})).value == 0.0
    with pytest.raises(MetricError, match="row 'r1' has no field 'c'"):
        FieldMatch(["c"]).score({"c": 1}, row({"a": 1}))
    with pytest.raises(MetricError, match="not a structure"):
        FieldMatch().score({"a": 1}, row("text"))
    with pytest.raises(ConfigurationError, match="not in fields"):
        FieldMatch(["a"], weights={"b": 1})
    with pytest.raises(ConfigurationError, match=">= 0"):
        FieldMatch(weights={"a": -1})
    with pytest.raises(ConfigurationError, match="add up to 0"):
        FieldMatch(["a"], weights={"a": 0}).score({"a": 1}, row({"a": 1}))


def test_field_match_tells_booleans_from_numbers_and_survives_hostile_eq() -> None:
    assert FieldMatch().score({"ok": 1}, row({"ok": True})).value == 0.0
    assert FieldMatch().score({"ok": True}, row({"ok": True})).value == 1.0
    assert FieldMatch().score({"n": 1.0}, row({"n": 1})).value == 1.0

    class Hostile:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("boom")

        __hash__ = object.__hash__

    assert FieldMatch().score({"a": Hostile()}, row({"a": 1})).value == 0.0


@pytest.mark.parametrize(
    ("prediction", "expected", "f1"),
    [
        ("the Eiffel Tower", "Eiffel Tower in Paris", 2 / 3),
        ("Paris", "paris.", 1.0),
        ("", "", 1.0),
        ("a the an", "", 1.0),  # only articles: both empty after normalisation
        ("Paris", "", 0.0),
        ("cat cat dog", "cat dog dog", 2 / 3),  # multisets: one cat and one dog in common
        ("London", "Paris", 0.0),
    ],
)
def test_token_f1_known_values(prediction: str, expected: str, f1: float) -> None:
    assert TokenF1().score(prediction, row(expected)) == pytest.approx(f1)


def test_token_f1_takes_the_best_reference_and_squad_normalisation() -> None:
    assert TokenF1().score("Denver Broncos", row(["Broncos", "Denver Broncos"])) == 1.0
    assert squad_tokens("The  Broncos' defense, an elite one!") == ["broncos", "defense", "elite", "one"]


def test_text_of() -> None:
    assert text_of(City(name="Oslo", population=1)) == '{"name": "Oslo", "population": 1}'
    assert text_of(Sentiment.POSITIVE) == "positive"
    assert text_of((1, 2)) == "[1, 2]"


# -- hostile predictions ----------------------------------------------------------------------------

ALL_METRICS: list[tuple[Any, Any]] = [
    (ExactMatch(), "x"),
    (ExactMatch(ignore_punctuation=True, field="a"), {"a": "x"}),
    (Contains(), "x"),
    (RegexMatch(r"\d+"), promptkit._eval.NO_EXPECTED),
    (ChoiceAccuracy(["x", "y"]), "x"),
    (NumericMatch(abs_tol=1), 3),
    (JSONValid(), promptkit._eval.NO_EXPECTED),
    (SchemaValid(City), promptkit._eval.NO_EXPECTED),
    (FieldMatch(), {"a": "x", "b": [1]}),
    (TokenF1(), "the x"),
]

predictions = st.one_of(
    st.text(max_size=200),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=4),
    st.lists(st.integers(), max_size=4),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prediction=predictions)
def test_every_builtin_scores_any_prediction_within_0_and_1(prediction: Any) -> None:
    for metric, expected in ALL_METRICS:
        score = apply_metric(metric, prediction, row(expected))
        assert 0.0 <= score.value <= 1.0, (metric, prediction)


def test_template_syntax_in_a_prediction_is_only_text() -> None:
    assert ExactMatch().score("{{ 7 * 7 }}", row("49")).value == 0.0
    assert Contains("49").score("{{ 7 * 7 }}", row()) == 0.0
    assert JSONValid().score("__import__('os').system('true')", row()).value == 0.0


def test_field_match_paths_into_lists_and_numbers_of_other_kinds() -> None:
    from decimal import Decimal

    metric = FieldMatch(["items.0", "items.1"])
    assert metric.score({"items": ["a", "c"]}, row({"items": ["a", "b"]})).value == 0.5
    assert metric.score({"items": ["a"]}, row({"items": ["a", "b"]})).detail == "items.1: missing"
    assert NumericMatch().score(Decimal("2.50"), row("2.5")).value == 1.0

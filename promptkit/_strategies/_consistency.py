"""Self-consistency: sample a strategy ``n`` times, parse each answer, and take a vote."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import BackendError, ConfigurationError, ParseError, PromptkitError
from .._messages import Completion
from ._base import Call, Context, Outcome, Plan, Strategy, planned_calls
from ._direct import Direct
from ._together import Ended, together

__all__ = ["Sample", "SelfConsistency"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One sample of self-consistency: its value, or why it abstained.

    ``error`` is the :class:`~promptkit.ParseError` of a reply that never parsed or the
    :class:`~promptkit.BackendError` of a call that failed; such a sample abstains from the vote.
    """

    index: int
    value: Any = None
    completion: Completion | None = None
    error: PromptkitError | None = None
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def abstained(self) -> bool:
        """True when the sample gave no value to vote with."""
        return self.error is not None


class SelfConsistency:
    """Draw ``n`` answers (concurrently, each with its own sample index) and vote.

    Each sample runs ``base`` (the direct ask by default; chain of thought works too), with
    repair. The majority value wins; ties go to the value that appeared first. Values vote by
    equality; pydantic models, dicts and lists by their JSON form. ``aggregate`` replaces the
    vote: it receives the valid values and returns the answer (a mean, a median, a merge).
    Samples that fail or never parse abstain and are shown on ``result.info["samples"]``.

    ``result.info`` holds ``votes`` (``(value, count)`` pairs, most votes first), ``agreement``
    (the winner's votes over ``n``), ``abstentions`` (their sample indices) and ``samples``.
    Samples need variety: ``temperature`` sets it for the sampled calls (a prompt at temperature 0
    without it is refused), and a prompt's ``seed`` is offset per sample. When the backend draws
    several choices per request (``max_choices >= n``: the provider's ``n``, as OpenAI's API
    has), the first round of samples is one request, so the prompt is paid for once; otherwise
    each sample is its own request with its own sample index, so a cache never merges two.

    >>> from promptkit import Prompt, ChoiceParser
    >>> from promptkit.testing import MockBackend
    >>> mock = MockBackend(["yes", "no", "yes"])
    >>> p = Prompt("Is it?", mock, parser=ChoiceParser(["yes", "no"]), strategy=SelfConsistency(3))
    >>> result = p.run()
    >>> result.value, result.info["votes"], round(result.info["agreement"], 2)
    ('yes', (('yes', 2), ('no', 1)), 0.67)
    """

    name = "self_consistency"
    streams = False

    @property
    def planned_calls(self) -> int:
        """``n`` runs of the base strategy (fewer requests where one draws several choices)."""
        return self.n * planned_calls(self.base)

    def __init__(
        self,
        n: int = 5,
        *,
        base: Strategy | None = None,
        temperature: float | None = None,
        aggregate: Callable[[Sequence[Any]], Any] | None = None,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigurationError(f"n must be a whole number of samples >= 1, not {n!r}")
        if temperature is not None and (
            isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0
        ):
            raise ConfigurationError(f"temperature for sampling must be a number > 0, not {temperature!r}")
        if aggregate is not None and not callable(aggregate):
            raise ConfigurationError(f"aggregate must be a function of the list of values, not {aggregate!r}")
        self.n = n
        self.base: Strategy = base if base is not None else Direct()
        self.temperature = temperature
        self.aggregate = aggregate
        if getattr(self.base, "name", None) == self.name:
            raise ConfigurationError("self-consistency cannot sample itself; give another base strategy")

    def check(self, *, params: Mapping[str, Any], **_: Any) -> None:
        """Refuse a prompt at temperature 0 without a sampling temperature: every sample would agree."""
        if self.temperature is None and params.get("temperature") == 0 and self.n > 1:
            raise ConfigurationError(
                "self-consistency at temperature 0 draws the same answer every time; "
                "pass SelfConsistency(temperature=...) or raise the prompt's temperature"
            )
        check = getattr(self.base, "check", None)
        if check is not None:
            check(params=params, **_)

    def plan(self, context: Context) -> Plan:
        extra: dict[str, Any] = {}
        if self.temperature is not None:
            extra["temperature"] = self.temperature
        seed = context.params.get("seed")

        def tag(i: int, call: Call) -> Call:
            params = dict(call.params)
            params.update(extra)
            if isinstance(seed, int) and not isinstance(seed, bool):
                params["seed"] = seed + i
            purpose = "sample" if call.purpose == "answer" else call.purpose
            return dataclasses.replace(call, sample=i, params=params, purpose=purpose)

        ends = yield from together([self.base.plan(context) for _ in range(self.n)], tag)
        samples = tuple(_sample(i, end) for i, end in enumerate(ends))
        valid = [s for s in samples if not s.abstained]
        if not valid:
            raise _no_answer(samples)
        votes = _tally(valid)
        if self.aggregate is not None:
            value = self.aggregate([s.value for s in valid])
            chosen = next((s for s in valid if _key(s.value) == _key_or_none(value)), valid[0])
            count = sum(1 for s in valid if _key(s.value) == _key_or_none(value))
        else:
            value, count = votes[0]
            chosen = next(s for s in valid if _key(s.value) == _key(value))
        assert chosen.completion is not None
        info: dict[str, Any] = {
            "votes": votes,
            "agreement": count / self.n,
            "abstentions": tuple(s.index for s in samples if s.abstained),
            "samples": samples,
        }
        if "reasoning" in chosen.info:
            info["reasoning"] = chosen.info["reasoning"]
        return Outcome(value=value, completion=chosen.completion, info=info)

    def __repr__(self) -> str:
        base = "" if isinstance(self.base, Direct) else f", base={self.base!r}"
        return f"SelfConsistency({self.n}{base})"


def _sample(index: int, end: Ended) -> Sample:
    if isinstance(end, Outcome):
        return Sample(index=index, value=end.value, completion=end.completion, info=dict(end.info))
    completion = end.completions[-1] if isinstance(end, ParseError) and end.completions else None
    return Sample(index=index, completion=completion, error=end)


def _key(value: Any) -> Hashable:
    """What a value votes as: itself when hashable, else its JSON form."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return ("model", type(value).__qualname__, json.dumps(dump(mode="json"), sort_keys=True))
    if isinstance(value, Hashable):
        return value
    try:
        return ("json", json.dumps(value, sort_keys=True, default=_refuse))
    except TypeError as exc:
        raise ConfigurationError(
            f"self-consistency cannot vote on a {type(value).__name__} value (it is neither hashable nor JSON); "
            "pass SelfConsistency(aggregate=...) to combine the samples"
        ) from exc


def _key_or_none(value: Any) -> Hashable | None:
    try:
        return _key(value)
    except ConfigurationError:
        return None


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _tally(valid: Sequence[Sample]) -> tuple[tuple[Any, int], ...]:
    counts: dict[Hashable, list[Any]] = {}  # key -> [first value, votes]; dicts keep first-seen order
    for sample in valid:
        entry = counts.setdefault(_key(sample.value), [sample.value, 0])
        entry[1] += 1
    ranked = sorted(counts.values(), key=lambda entry: -entry[1])  # stable: ties keep first-seen order
    return tuple((value, count) for value, count in ranked)


def _no_answer(samples: Sequence[Sample]) -> PromptkitError:
    errors = [s.error for s in samples if s.error is not None]
    if all(isinstance(e, BackendError) for e in errors):
        return errors[0]
    parse_errors = [e for e in errors if isinstance(e, ParseError)]
    completions = tuple(c for e in parse_errors for c in e.completions)
    return ParseError(
        f"none of the {len(samples)} samples gave a valid answer ({len(parse_errors)} did not parse, "
        f"{len(errors) - len(parse_errors)} failed); the last error: {parse_errors[-1].message}",
        text=parse_errors[-1].text,
        attempts=[c.text for c in completions] or [parse_errors[-1].text],
        completions=completions,
    )

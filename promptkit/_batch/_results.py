"""What a batch returns: items in input order, their totals, and a grid of several prompts' batches."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, overload

from .._cost import cost_of, usd
from .._errors import ConfigurationError, ParseError
from .._messages import Completion, Usage
from .._result import Result

__all__ = [
    "BatchEstimate",
    "BatchGrid",
    "BatchItem",
    "BatchResult",
    "Latency",
    "Status",
    "error_cost",
    "error_usage",
    "usd",
]

T = TypeVar("T")
K = TypeVar("K")

Status = Literal["ok", "failed", "skipped", "cancelled"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchItem(Generic[T]):
    """One input of a batch and how it ended.

    ``status`` is ``"ok"`` (``result`` holds the :class:`~promptkit.Result`), ``"failed"``
    (``error`` holds why, a template error included), ``"skipped"`` (not sent: ``error`` is the
    :class:`~promptkit.SpendingCapError` that stopped the batch) or ``"cancelled"`` (the batch
    was interrupted before it finished). ``restored`` marks a result read back from a checkpoint;
    ``seconds`` is the item's wall time in this run (``None`` when nothing was sent).

    >>> from promptkit import Prompt
    >>> from promptkit.testing import MockBackend
    >>> item = Prompt("{{ q }}", MockBackend(["4"])).batch([{"q": "2+2?"}], progress=False)[0]
    >>> item.status, item.value
    ('ok', '4')
    """

    index: int
    inputs: Mapping[str, Any] = field(repr=False)
    status: Status
    result: Result[T] | None = field(default=None, repr=False)
    error: Exception | None = None
    restored: bool = False
    seconds: float | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when the item has a result."""
        return self.status == "ok"

    @property
    def value(self) -> T:
        """The typed value; raises the item's error (or says why there is none)."""
        if self.result is not None:
            return self.result.value
        if self.error is not None:
            raise self.error
        raise ConfigurationError(f"item {self.index} has no value: it was {self.status}")

    @property
    def cost(self) -> float | None:
        """What this item's calls cost in USD in this run (0.0 when restored or never sent; ``None``:
        a reply's model has no known price)."""
        if self.restored:
            return 0.0
        if self.result is not None:
            return self.result.cost
        return error_cost(self.error)

    @property
    def usage(self) -> Usage:
        """Tokens this item's calls used in this run (a failed reply's included; none when restored)."""
        if self.restored:
            return Usage()
        if self.result is not None:
            return self.result.usage
        return error_usage(self.error)


def error_cost(error: BaseException | None) -> float | None:
    """What the replies behind a failed item cost (a reply that did not parse was still billed)."""
    total = 0.0
    if isinstance(error, ParseError):
        for completion in error.completions:
            if isinstance(completion, Completion):
                cost = cost_of(completion.usage, completion.model, completion.provider, batch=completion.batch)
                if cost is None:
                    return None
                total += cost
    return total


def error_usage(error: BaseException | None) -> Usage:
    total = Usage()
    if isinstance(error, ParseError):
        for completion in error.completions:
            if isinstance(completion, Completion):
                total = total + completion.usage
    return total


@dataclass(frozen=True, slots=True, kw_only=True)
class Latency:
    """Percentiles of the items' wall times in seconds (those sent in this run).

    >>> Latency.of([1.0, 2.0, 3.0]).p50
    2.0
    """

    count: int
    p50: float
    p90: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency | None:
        """The percentiles of ``seconds`` (``None`` for no values)."""
        if not seconds:
            return None
        if len(seconds) == 1:
            only = seconds[0]
            return cls(count=1, p50=only, p90=only, p99=only, mean=only, max=only)
        cuts = statistics.quantiles(seconds, n=100, method="inclusive")
        return cls(
            count=len(seconds),
            p50=cuts[49],
            p90=cuts[89],
            p99=cuts[98],
            mean=statistics.fmean(seconds),
            max=max(seconds),
        )


class BatchResult(Sequence[BatchItem[T]]):
    """A batch's items in input order, with what they add up to.

    :attr:`values` and :attr:`errors` list the successful values and the failures' errors;
    :attr:`ok`, :attr:`failed`, :attr:`skipped` and :attr:`cancelled` the items by status.
    :attr:`usage` sums the tokens of the calls this run made, :attr:`latency` gives percentiles of
    the items' times and :attr:`elapsed` the batch's wall time.

    >>> from promptkit import Prompt
    >>> from promptkit.testing import MockBackend
    >>> result = Prompt("{{ n }}+1?", MockBackend(["2", "3"])).batch([{"n": 1}, {"n": 2}], progress=False)
    >>> result.values, len(result.failed), result.usage.output_tokens
    (['2', '3'], 0, 2)
    """

    __slots__ = ("elapsed", "items")

    def __init__(self, items: Sequence[BatchItem[T]], *, elapsed: float = 0.0) -> None:
        self.items: tuple[BatchItem[T], ...] = tuple(items)
        self.elapsed = elapsed

    @overload
    def __getitem__(self, index: int) -> BatchItem[T]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[BatchItem[T]]: ...

    def __getitem__(self, index: int | slice) -> BatchItem[T] | Sequence[BatchItem[T]]:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def _with(self, status: Status) -> list[BatchItem[T]]:
        return [item for item in self.items if item.status == status]

    @property
    def values(self) -> list[T]:
        """The values of the successful items, in input order."""
        return [item.result.value for item in self.items if item.result is not None]

    @property
    def errors(self) -> list[Exception]:
        """The errors of the failed items, in input order."""
        return [item.error for item in self.items if item.status == "failed" and item.error is not None]

    @property
    def ok(self) -> list[BatchItem[T]]:
        return self._with("ok")

    @property
    def failed(self) -> list[BatchItem[T]]:
        return self._with("failed")

    @property
    def skipped(self) -> list[BatchItem[T]]:
        """Items not sent because the spending cap would have been passed."""
        return self._with("skipped")

    @property
    def cancelled(self) -> list[BatchItem[T]]:
        """Items left undone because the batch was interrupted."""
        return self._with("cancelled")

    @property
    def restored(self) -> int:
        """How many results were read back from the checkpoint instead of being sent."""
        return sum(item.restored for item in self.items)

    @property
    def counts(self) -> dict[str, int]:
        """Items per status."""
        out = dict.fromkeys(("ok", "failed", "skipped", "cancelled"), 0)
        for item in self.items:
            out[item.status] += 1
        return out

    @property
    def usage(self) -> Usage:
        """Tokens used by the calls this run made (restored items cost nothing)."""
        total = Usage()
        for item in self.items:
            total = total + item.usage
        return total

    @property
    def cost(self) -> float | None:
        """What the calls this run made cost in USD; ``None`` when a reply's model has no known price."""
        return _sum_costs(item.cost for item in self.items)

    @property
    def latency(self) -> Latency | None:
        """Percentiles of the wall times of the items sent in this run."""
        return Latency.of([item.seconds for item in self.items if item.seconds is not None])

    def __repr__(self) -> str:
        shown = ", ".join(f"{n} {status}" for status, n in self.counts.items() if n)
        return f"<BatchResult {len(self.items)} items: {shown or 'none'}; {self.elapsed:.2f} s>"

    def _repr_html_(self) -> str:
        import html

        usage = self.usage
        latency = self.latency
        rows = [(status, str(n)) for status, n in self.counts.items()]
        rows.append(("restored", str(self.restored)))
        rows.append(("tokens", f"in={usage.input_tokens} out={usage.output_tokens}"))
        cost = self.cost
        rows.append(("cost", "unknown" if cost is None else usd(cost)))
        if latency is not None:
            rows.append(("latency", f"p50={latency.p50:.2f} s p90={latency.p90:.2f} s p99={latency.p99:.2f} s"))
        rows.append(("elapsed", f"{self.elapsed:.2f} s"))
        table = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
        failures = "".join(
            f"<li>#{item.index}: <code>{html.escape(f'{type(item.error).__name__}: {item.error}')}</code></li>"
            for item in self.failed[:5]
        )
        more = f"<details><summary>first failures</summary><ul>{failures}</ul></details>" if failures else ""
        return f"<div><b>BatchResult</b> ({len(self.items)} items)<table>{table}</table>{more}</div>"


class BatchGrid(Mapping[K, BatchResult[Any]]):
    """The batches of several prompts over the same inputs: ``grid[key][i]`` is prompt ``key`` on input ``i``.

    Keys are the mapping's keys when the prompts were given as a mapping, positions for a list.
    :meth:`row` gives one input's items across the prompts, to compare variants side by side.

    >>> from promptkit import Prompt, batch
    >>> from promptkit.testing import MockBackend
    >>> llm = MockBackend(lambda request: request.messages[-1].text.upper())
    >>> grid = batch({"plain": Prompt("{{ w }}", llm), "polite": Prompt("please {{ w }}", llm)},
    ...              [{"w": "a"}, {"w": "b"}], progress=False)
    >>> grid["polite"].values, [item.value for item in grid.row(0).values()]
    (['PLEASE A', 'PLEASE B'], ['A', 'PLEASE A'])
    """

    __slots__ = ("_results", "elapsed")

    def __init__(self, results: Mapping[K, BatchResult[Any]], *, elapsed: float = 0.0) -> None:
        self._results = dict(results)
        self.elapsed = elapsed

    def __getitem__(self, key: K) -> BatchResult[Any]:
        return self._results[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def row(self, index: int) -> dict[K, BatchItem[Any]]:
        """Input ``index`` across the prompts: ``{key: item}``."""
        return {key: result[index] for key, result in self._results.items()}

    @property
    def usage(self) -> Usage:
        """Tokens used by every prompt's calls in this run."""
        total = Usage()
        for result in self._results.values():
            total = total + result.usage
        return total

    @property
    def cost(self) -> float | None:
        """What every prompt's calls cost in USD in this run; ``None`` when a price is unknown."""
        return _sum_costs(result.cost for result in self._results.values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{key!r}: {result!r}" for key, result in self._results.items())
        return f"<BatchGrid {{{inner}}}>"

    def _repr_html_(self) -> str:
        import html

        parts = "".join(
            f"<h4>{html.escape(str(key))}</h4>{result._repr_html_()}" for key, result in self._results.items()
        )
        return f"<div><b>BatchGrid</b>{parts}</div>"


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchEstimate:
    """What a batch would send, counted before anything is sent.

    ``calls`` is the number of first calls (a reply that needs repair adds more); ``input_tokens``
    counts the rendered messages; ``output_tokens`` is ``calls * max_tokens`` when every prompt
    sets ``max_tokens`` and ``None`` otherwise: a reply's length is unknown until it arrives.
    ``exact`` is false when some count used a stand-in tokenizer (Claude, test doubles).
    ``finished`` counts the items a checkpoint already holds (not sent again); ``errors`` the
    items that would fail before any call, by index; ``cost`` the worst case in USD.
    """

    items: int
    calls: int
    input_tokens: int
    output_tokens: int | None
    exact: bool = True
    finished: int = 0
    errors: tuple[tuple[int, Exception], ...] = ()
    cost: float | None = None
    """The worst case in USD (input and ``max_tokens`` at the models' prices), ``None`` while the
    output or a price is unknown."""

    @property
    def total_tokens(self) -> int | None:
        """Input plus output tokens, or ``None`` while the output is unknown."""
        return None if self.output_tokens is None else self.input_tokens + self.output_tokens


def _sum_costs(costs: Iterable[float | None]) -> float | None:
    total = 0.0
    for cost in costs:
        if cost is None:
            return None
        total += cost
    return total

"""What fitting a whole prompt into a token budget is told (``Fit``, ``Part``) and what it did (``FitReport``).

The fitting itself lives with the templates (``_templates/_fit.py``); these value types sit low
in the layers so that a :class:`~promptkit.backends.RequestPreview` can carry a report too.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ._errors import ConfigurationError
from ._messages import Message

__all__ = ["Fit", "FitReport", "FitRow", "Part", "coerce_fit"]

Truncate = Literal["start", "end", "middle"]
Action = Literal["kept", "cut", "dropped", "fallback"]

_EMPTY: Mapping[str, Part] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Part:
    """How one part of a prompt gives way when the prompt is over its budget.

    ``priority``: lower goes first (ties: the part later in the prompt goes first); ``None``
    never goes for the budget (only ``max_tokens`` cuts it). ``max_tokens`` caps the part
    whatever the budget. ``truncate`` (``"end"``, ``"start"`` or ``"middle"``: where text is
    removed) lets a text part be cut on token boundaries instead of dropped whole; ``marker``
    replaces what was cut and ``fallback`` stands in for a part dropped entirely. A history
    part loses whole turns, ``drop`` saying which first (``"oldest"``, the default, or
    ``"newest"``); the examples lose whole examples, worst-scored first.

    >>> Part(2, truncate="middle", marker=" [...] ").priority
    2
    """

    priority: float | None = 0
    max_tokens: int | None = field(default=None, kw_only=True)
    truncate: Truncate | None = field(default=None, kw_only=True)
    marker: str = field(default="", kw_only=True)
    fallback: str = field(default="", kw_only=True)
    drop: Literal["oldest", "newest"] = field(default="oldest", kw_only=True)

    def __post_init__(self) -> None:
        check_part_options(
            "Part",
            priority=self.priority,
            max_tokens=self.max_tokens,
            truncate=self.truncate,
            marker=self.marker,
            fallback=self.fallback,
        )
        if self.drop not in ("oldest", "newest"):
            raise ConfigurationError(f"Part.drop must be 'oldest' or 'newest', not {self.drop!r}")


def check_part_options(
    where: str, *, priority: Any, max_tokens: Any, truncate: Any, marker: Any, fallback: Any
) -> None:
    """The one check of a part's options, for :class:`Part` and the ``{% part %}`` tag alike."""
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, (int, float)) or not math.isfinite(priority)
    ):
        raise ConfigurationError(f"{where}: priority must be a finite number or None, not {priority!r}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0):
        raise ConfigurationError(f"{where}: max_tokens must be a whole number >= 0 or None, not {max_tokens!r}")
    if truncate not in (None, "start", "end", "middle"):
        raise ConfigurationError(f"{where}: truncate must be 'start', 'end', 'middle' or None, not {truncate!r}")
    for name, value in (("marker", marker), ("fallback", fallback)):
        if not isinstance(value, str):
            raise ConfigurationError(f"{where}: {name} must be a str, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fit:
    """Fit a prompt into ``budget`` tokens, keeping ``reserve`` of them for the answer.

    ``reserve`` ``None`` takes the call's ``max_tokens`` parameter (0 without one). ``parts``
    gives variables, message placeholders (history), ``"examples"`` and ``{% part %}`` names
    their :class:`Part` settings. ``model`` names the tokenizer (default: the backend's).

    >>> Fit(budget=8000, reserve=1000, parts={"history": Part(1)}).parts["history"].priority
    1
    """

    budget: int
    reserve: int | None = None
    parts: Mapping[str, Part] = field(default_factory=lambda: _EMPTY)
    model: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 0:
            raise ConfigurationError(f"Fit.budget must be a whole number of tokens >= 0, not {self.budget!r}")
        if self.reserve is not None and (
            isinstance(self.reserve, bool) or not isinstance(self.reserve, int) or self.reserve < 0
        ):
            raise ConfigurationError(f"Fit.reserve must be a whole number of tokens >= 0 or None, not {self.reserve!r}")
        if not isinstance(self.parts, Mapping):
            raise ConfigurationError(f"Fit.parts must map names to Part settings, not {self.parts!r}")
        for name, part in self.parts.items():
            if not isinstance(name, str) or not isinstance(part, Part):
                raise ConfigurationError(f"Fit.parts must map names to Part settings; {name!r}: {part!r} is not")
        object.__setattr__(self, "parts", MappingProxyType(dict(self.parts)))
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise ConfigurationError(f"Fit.model must be a model name or None, not {self.model!r}")


def coerce_fit(value: Fit | int | None) -> Fit | None:
    """A prompt's ``fit=`` setting: a :class:`Fit`, a budget in tokens, or ``None``."""
    if value is None or isinstance(value, Fit):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Fit(budget=value)
    raise ConfigurationError(f"fit must be a Fit, a budget in tokens or None, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FitRow:
    """One part in a :class:`FitReport`: its tokens before and after, and what fitting did.

    ``action`` is ``"kept"``, ``"cut"`` (shortened, or some of its turns/examples dropped),
    ``"dropped"`` or ``"fallback"`` (dropped, its fallback text shown instead). ``units`` is
    ``(before, after)`` for a history (turns) or the examples, else ``None``; ``reason`` says
    what forced the change (``"budget"`` or ``"max_tokens"``; empty when kept).
    """

    name: str
    priority: float | None
    tokens_before: int
    tokens_after: int
    action: Action
    units: tuple[int, int] | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FitReport:
    """What fitting a prompt did: the messages sent, their tokens, and one :class:`FitRow` per part.

    ``limit`` is ``budget - reserve``, the tokens the prompt may take; ``tokens`` counts the
    fitted messages (what :func:`~promptkit.count_tokens` says of ``messages``) and
    ``tokens_before`` the prompt before fitting. A part's tokens are counted on its own text
    (a history turn or a chat example with its messages' framing), so the rows add up to about
    the total, not to it exactly. ``exact`` is false when the tokenizer is an approximation.
    """

    budget: int
    reserve: int
    tokens: int
    tokens_before: int
    rows: tuple[FitRow, ...]
    encoding: str
    exact: bool = True
    messages: tuple[Message, ...] = field(default=(), repr=False)

    @property
    def limit(self) -> int:
        """The tokens the prompt may take: ``budget - reserve``."""
        return self.budget - self.reserve

    @property
    def changed(self) -> tuple[FitRow, ...]:
        """The rows of parts that were cut or dropped."""
        return tuple(r for r in self.rows if r.action != "kept")

    def row(self, name: str) -> FitRow:
        """The row of the part called ``name``."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def replace(self, **changes: Any) -> FitReport:
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        rows = self.changed
        changed = ", ".join(f"{r.name} {_what(r)}" for r in rows[-4:]) or "nothing cut"
        if len(rows) > 4:
            changed = f"{len(rows) - 4} more, " + changed
        return f"<FitReport {self.tokens}/{self.limit} tokens (from {self.tokens_before}): {changed}>"

    def __str__(self) -> str:
        head = (
            f"{self.tokens}/{self.limit} tokens (budget {self.budget}, reserve {self.reserve}), "
            f"from {self.tokens_before}"
        )
        width = max((len(r.name) for r in self.rows), default=4)
        lines = [head] + [
            f"  {r.name:<{width}}  priority {_priority(r.priority):>5}  "
            f"{r.tokens_before:>7} -> {r.tokens_after:<7} {_what(r)}"
            for r in self.rows
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colours = {"kept": "#15803d", "cut": "#b45309", "dropped": "#b91c1c", "fallback": "#b91c1c"}
        cells = "".join(
            "<tr>"
            f"<td><code>{html.escape(r.name)}</code></td><td>{_priority(r.priority)}</td>"
            f"<td style='text-align:right'>{r.tokens_before}</td><td style='text-align:right'>{r.tokens_after}</td>"
            f"<td style='color:{colours[r.action]}'>{html.escape(_what(r))}</td></tr>"
            for r in self.rows
        )
        exact = "" if self.exact else " (approximate)"
        return (
            f"<div><b>Fit</b> {self.tokens} / {self.limit} tokens{exact} "
            f"<small>budget {self.budget}, reserve {self.reserve}, before {self.tokens_before}, "
            f"{html.escape(self.encoding)}</small>"
            "<table><tr><th>part</th><th>priority</th><th>before</th><th>after</th><th>action</th></tr>"
            f"{cells}</table></div>"
        )


def _priority(priority: float | None) -> str:
    return "-" if priority is None else f"{priority:g}"


def _what(row: FitRow) -> str:
    text: str = row.action
    if row.units is not None and row.action == "cut":
        text += f" ({row.units[1]} of {row.units[0]} kept)"
    if row.reason and row.action != "kept":
        text += f" [{row.reason}]"
    return text

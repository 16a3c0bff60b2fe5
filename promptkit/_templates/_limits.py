"""Limits on one render and the checks that enforce them *before* work is done.

Every operation that can grow memory or CPU without bound is checked before it runs: ``*``,
``**``, ``+``, ``%``, ``~``, ``str.format``/``format_map`` widths, ``join``, ``replace``,
``center``, ``indent``, ``wordwrap``, ``batch``, ``slice``, ``round``, ``tojson``. Loop
iterations and calls count against one :class:`Budget` per render, which also carries a
wall-clock deadline checked cooperatively in those hooks (no signals, so it works in any
thread). Every container a render builds is weighed (see :func:`weigh`), and every buffer is
size-checked while it is joined, so no string larger than ``max_output_chars`` is ever built.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from itertools import islice
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace

from .._errors import ConfigurationError

__all__ = ["DEFAULT_LIMITS", "Budget", "TemplateLimits", "current_budget", "weigh"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TemplateLimits:
    """Bounds on one template: its size, and the work and output of one render.

    Exceeding a bound raises :class:`~promptkit.TemplateLimitError`; nothing hangs. The defaults
    suit prompts (a few MB of text at most) and are far above what normal templates use.

    * ``max_template_chars``: characters of template source (checked before compiling);
    * ``max_output_chars``: characters of any string a render builds, including the output;
    * ``max_operations``: loop iterations + calls + checked arithmetic per render;
    * ``max_call_depth``: nesting of calls (macro recursion, recursive loops);
    * ``max_int_bits``: size of integers produced by ``*`` and ``**``;
    * ``max_format_width``: widths and precisions in format specs (``'{:>99999}'``, ``'%9999s'``);
    * ``max_seconds``: wall-clock time per render, checked at each counted operation (``None``
      disables it).

    >>> TemplateLimits(max_operations=10_000).max_operations
    10000
    """

    max_template_chars: int = 200_000
    max_output_chars: int = 4_000_000
    max_operations: int = 1_000_000
    max_call_depth: int = 64
    max_int_bits: int = 16_384
    max_format_width: int = 10_000
    max_seconds: float | None = 5.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "max_seconds" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(f"TemplateLimits.{f.name} must be a positive number, not {value!r}")


DEFAULT_LIMITS = TemplateLimits()


class LimitExceededError(Exception):
    """Raised inside the sandbox's hooks; the render wraps it in ``TemplateLimitError``."""


class Budget:
    """Work done by one render: operations, call depth and the deadline."""

    __slots__ = ("active", "captured", "deadline", "depth", "limits", "ops", "weights")

    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.ops = 0
        self.captured = 0
        self.depth = 0
        self.weights: dict[int, tuple[Any, int]] = {}
        self.active: set[int] = set()
        self.deadline = None if limits.max_seconds is None else time.monotonic() + limits.max_seconds

    def tick(self, n: int = 1) -> None:
        self.ops += n
        if self.ops > self.limits.max_operations:
            raise LimitExceededError(
                f"render exceeded max_operations={self.limits.max_operations} (loop iterations, calls, arithmetic)"
            )
        if self.deadline is not None and (n > 1 or not self.ops & 63) and time.monotonic() > self.deadline:
            raise LimitExceededError(f"render exceeded max_seconds={self.limits.max_seconds}")

    def capture(self, n: int) -> None:
        """Count ``n`` characters written into captured output (macros, call/set/filter blocks)."""
        self.captured += n
        if self.captured > self.limits.max_output_chars:
            raise LimitExceededError(
                f"captured text (macros, set, call and filter blocks) passed "
                f"max_output_chars={self.limits.max_output_chars}"
            )

    def check_size(self, n: int, what: str) -> None:
        if n > self.limits.max_output_chars:
            raise LimitExceededError(f"{what} would be {n} long, over max_output_chars={self.limits.max_output_chars}")


BUDGET: ContextVar[Budget | None] = ContextVar("promptkit_template_budget", default=None)


def current_budget() -> Budget:
    budget = BUDGET.get()
    # Outside a budgeted render (a simple template's {% set %} block): a fresh default budget.
    return budget if budget is not None else Budget(DEFAULT_LIMITS)


def bounded_concat(parts: Iterable[str]) -> str:
    """``"".join`` that stops once the text passes ``max_output_chars``.

    Chunks are joined 64 at a time in C and checked after each batch: one check for a typical
    prompt, and at most 64 chunks of overshoot for a runaway loop.
    """
    limit = current_budget().limits.max_output_chars
    it = iter(parts)
    text = "".join(islice(it, 64))
    if len(text) > limit:
        raise LimitExceededError(f"rendered text passed max_output_chars={limit}")
    batch = list(islice(it, 64))
    if not batch:
        return text
    out = [text]
    total = len(text)
    while batch:
        chunk = "".join(batch)
        total += len(chunk)
        if total > limit:
            raise LimitExceededError(f"rendered text passed max_output_chars={limit}")
        out.append(chunk)
        batch = list(islice(it, 64))
    return "".join(out)


# -- container weights ---------------------------------------------------------------------------
#
# A template can build containers that share one value many times ({% set b = [a, a] %} repeated
# doubles the text str(b) would print, with no loop). Every container a render builds (literals,
# `*`, `+`, call results, namespace attributes) is weighed when it is built: its weight is about
# the number of characters str() of it would print, memoised per render, and must stay within
# max_output_chars. Namespaces cannot be stored inside containers or other namespaces, so a
# weight, once computed, never goes stale (lists, dicts and sets cannot be mutated).

CONTAINERS = (list, tuple, dict, set, frozenset, Namespace)


def weigh(value: Any, budget: Budget) -> int:
    """About how many characters ``str(value)`` prints; raises past ``max_output_chars``."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, CONTAINERS):
        if isinstance(value, int):
            return value.bit_length() // 3 + 1
        return 8
    key = id(value)
    memo = budget.weights.get(key)
    if memo is not None and memo[0] is value:
        return memo[1]
    if key in budget.active:
        return 8  # a cycle prints as [...]
    items: Iterable[Any]
    if isinstance(value, Namespace):
        items = _namespace_attrs(value).values()
    elif isinstance(value, dict):
        items = (x for pair in value.items() for x in pair)
    else:
        items = value
    limit = budget.limits.max_output_chars
    total = 2
    budget.active.add(key)
    try:
        for item in items:
            if isinstance(item, Namespace):
                raise SecurityError("a namespace cannot be stored inside a list, dict or another namespace")
            total += (len(item) if isinstance(item, str) else weigh(item, budget)) + 2
            if total > limit:
                kind = "namespace" if isinstance(value, Namespace) else type(value).__name__
                raise LimitExceededError(f"a {kind} would print over max_output_chars={limit}")
    finally:
        budget.active.discard(key)
    if total > 64 and not isinstance(value, Namespace):
        budget.weights[key] = (value, total)
    return total


def _namespace_attrs(ns: Namespace) -> dict[str, Any]:
    attrs: dict[str, Any] = object.__getattribute__(ns, "_Namespace__attrs")
    return attrs


class BoundedNamespace(Namespace):
    """``namespace()`` whose attributes are weighed on every assignment."""

    def __setitem__(self, name: str, value: Any) -> None:
        budget = current_budget()
        budget.tick()
        weigh(BoundedNamespace(_namespace_attrs(self), **{name: value}), budget)
        super().__setitem__(name, value)


def weighed(value: Any) -> Any:
    """Replaces container literals that hold variables: weighs the new container."""
    weigh(value, current_budget())
    return value


# -- size estimates for formatting --------------------------------------------------------------


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(str(value))


def _check_width(number: str, limits: TemplateLimits) -> None:
    if len(number) > 9 or int(number) > limits.max_format_width:
        raise LimitExceededError(f"format width {number} is over max_format_width={limits.max_format_width}")


_PERCENT_FLAGS = "-#0 +"


def _percent_specs(fmt: str, limits: TemplateLimits) -> int:
    """Count the conversions in a ``%``-format and check their widths."""
    count = 0
    i = fmt.find("%")
    n = len(fmt)
    while i != -1:
        j = i + 1
        if j < n and fmt[j] == "%":
            i = fmt.find("%", j + 1)
            continue
        if j < n and fmt[j] == "(":
            close = fmt.find(")", j)
            j = n if close == -1 else close + 1
        while j < n and fmt[j] in _PERCENT_FLAGS:
            j += 1
        for _ in range(2):  # width, then precision
            if j < n and fmt[j] == "*":
                raise LimitExceededError("'*' widths in %-formats are not allowed in templates")
            k = j
            while k < n and fmt[k].isdigit():
                k += 1
            if k > j:
                _check_width(fmt[j:k], limits)
            j = k
            if j < n and fmt[j] == ".":
                j += 1
            else:
                break
        count += 1
        i = fmt.find("%", j)
    return count


def check_percent_format(fmt: str, args: Any) -> None:
    budget = current_budget()
    specs = _percent_specs(fmt, budget.limits)
    if not specs:
        return
    values: Iterable[Any]
    if isinstance(args, tuple):
        values = args
    elif isinstance(args, Mapping):
        values = args.values()
    else:
        values = (args,)
    biggest = max((_text_len(v) for v in values), default=0)
    budget.check_size(len(fmt) + specs * (biggest + budget.limits.max_format_width), "a %-formatted string")


_FORMATTER = string.Formatter()


def check_str_format(fmt: str, args: Iterable[Any], kwargs: Mapping[str, Any]) -> None:
    budget = current_budget()
    fields = 0
    try:
        parsed = list(_FORMATTER.parse(fmt))
    except ValueError:
        return  # str.format itself raises the same error
    for _literal, field, spec, _conversion in parsed:
        if field is None:
            continue
        fields += 1
        if spec:
            if "{" in spec:
                raise LimitExceededError("nested replacement fields in format specs are not allowed in templates")
            digits = ""
            for ch in spec + " ":
                if ch.isdigit():
                    digits += ch
                elif digits:
                    _check_width(digits, budget.limits)
                    digits = ""
    if fields:
        biggest = max((_text_len(v) for v in (*args, *kwargs.values())), default=0)
        budget.check_size(len(fmt) + fields * (biggest + budget.limits.max_format_width), "a formatted string")


# -- checked operators --------------------------------------------------------------------------


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def checked_binop(op: str, left: Any, right: Any) -> Any:
    """Check ``left <operator> right`` before it runs, then run it (memoising a container's weight)."""
    budget = current_budget()
    budget.tick()
    limits = budget.limits
    weight = None
    if op == "*":
        if isinstance(left, (str, list, tuple)) and isinstance(right, int):
            weight = weigh(left, budget) * max(right, 0)
        elif isinstance(right, (str, list, tuple)) and isinstance(left, int):
            weight = weigh(right, budget) * max(left, 0)
        elif (
            isinstance(left, int)
            and isinstance(right, int)
            and _int_bits(left) + _int_bits(right) > limits.max_int_bits
        ):
            raise LimitExceededError(f"integer product over max_int_bits={limits.max_int_bits}")
        if weight is not None:
            budget.check_size(weight, "a repeated sequence")
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            bits = abs(left).bit_length() - 1  # left >= 2**bits, so the result has at least bits*right bits
            if bits > 0 and bits * right > limits.max_int_bits:
                raise LimitExceededError(f"integer power over max_int_bits={limits.max_int_bits}")
    elif op == "+":
        if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            weight = weigh(left, budget) + weigh(right, budget)
            budget.check_size(weight, "a concatenation")
    elif op == "%" and isinstance(left, str):
        check_percent_format(left, right)
    result = _BINOPS[op](left, right)
    if weight is not None and weight > 64 and isinstance(result, (list, tuple)):
        budget.weights[id(result)] = (result, weight)
    return result


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "*": operator.mul,
    "**": operator.pow,
    "+": operator.add,
    "%": operator.mod,
}


def checked_join(sep: str, items: Iterable[Any]) -> str:
    budget = current_budget()
    parts = [x if isinstance(x, str) else str(x) for x in items]
    budget.tick(len(parts) // 64 + 1)
    budget.check_size(sum(map(len, parts)) + len(sep) * max(len(parts) - 1, 0), "a joined string")
    return sep.join(parts)


def check_replace(s: str, old: str, new: str, count: Any = -1) -> None:
    n = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    current_budget().check_size(len(s) + n * (len(new) - len(old)), "a replaced string")


# -- filters with size checks -------------------------------------------------------------------


def bounded_filters(original: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Wrap the stock filters that can allocate without bound; each keeps its Jinja pass-arg."""
    out: dict[str, Callable[..., Any]] = {}

    def wrap(name: str, check: Callable[..., None]) -> None:
        orig = original[name]
        offset = 1 if hasattr(orig, "jinja_pass_arg") else 0

        @functools.wraps(orig)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            current_budget().tick()
            check(*args[offset:], **kwargs)
            return orig(*args, **kwargs)

        out[name] = wrapper

    def width_check(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
        if isinstance(width, int):
            _check_width(str(abs(width)), current_budget().limits)

    def indent_check(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
        text = str(s)
        pad = len(width) if isinstance(width, str) else max(int(width), 0)
        current_budget().check_size(len(text) + (text.count("\n") + 1) * pad, "an indented string")

    def format_check(value: Any, *args: Any, **kwargs: Any) -> None:
        check_percent_format(str(value), kwargs if kwargs else args)

    def replace_check(s: Any, old: Any, new: Any, count: Any = None) -> None:
        check_replace(str(s), str(old), str(new), -1 if count is None else count)

    def wordwrap_check(s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, **_: Any) -> None:
        text = str(s)
        extra = len(wrapstring) if isinstance(wrapstring, str) else 2
        current_budget().check_size(len(text) * (1 + extra), "a wrapped string")

    def count_check(value: Any, count: Any = 1, fill_with: Any = None) -> None:
        if isinstance(count, int) and count > 0:
            budget = current_budget()
            budget.tick(count)
            if fill_with is not None:
                budget.check_size(weigh(fill_with, budget) * count, "a filled batch")

    def tojson_check(value: Any, indent: Any = None) -> None:
        if (isinstance(indent, int) and indent > 64) or (isinstance(indent, str) and len(indent) > 64):
            raise LimitExceededError("tojson indent is limited to 64")

    def round_check(value: Any, precision: Any = 0, *_: Any, **__: Any) -> None:
        if isinstance(precision, int):
            _check_width(str(abs(precision)), current_budget().limits)

    wrap("round", round_check)
    wrap("center", width_check)
    wrap("indent", indent_check)
    wrap("format", format_check)
    wrap("replace", replace_check)
    wrap("wordwrap", wordwrap_check)
    wrap("batch", count_check)
    wrap("slice", count_check)
    wrap("tojson", tojson_check)

    @functools.wraps(original["join"])
    def join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
        if attribute is not None:
            value = map(jinja2.filters.make_attrgetter(eval_ctx.environment, attribute), value)
        return checked_join(str(d), value)

    out["join"] = join
    return out


@jinja2.pass_context
def captured_value(context: Any, value: Any) -> str:
    """Wrapped around each value written inside a capture: counts it as it is written, so a
    capture stops growing at the output limit instead of after its whole loop has run."""
    # str.__str__ gives a plain copy of a str subclass (a value fitted as a part prints without
    # its markers when captured)
    text = value if type(value) is str else str.__str__(value) if isinstance(value, str) else str(value)
    current_budget().capture(len(text))
    return text


@jinja2.pass_context
def captured_text(context: Any, n: int) -> str:
    """Counts the ``n`` characters of literal text an output node inside a capture writes."""
    current_budget().capture(n)
    return ""


def loop_counter(iterable: Any) -> Iterator[Any]:
    """Wrapped around every ``{% for %}`` iterable: one operation per iteration."""
    budget = current_budget()
    try:
        size = len(iterable)
    except TypeError:
        pass
    else:
        if budget.ops + size > budget.limits.max_operations:
            budget.tick(size)
    tick = budget.tick
    for item in iterable:
        tick()
        yield item


def bounded_range(*args: int) -> range:
    r = range(*args)
    budget = current_budget()
    if len(r) > budget.limits.max_operations:
        raise LimitExceededError(f"range of {len(r)} items is over max_operations={budget.limits.max_operations}")
    return r


def concat_filter(items: list[Any]) -> str:
    """Replaces the ``~`` operator: checks the size before joining."""
    return checked_join("", items)

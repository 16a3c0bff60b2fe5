"""The sandbox every promptkit template compiles and renders in, and the limits that bound it.

Jinja2's ``ImmutableSandboxedEnvironment`` already blocks private attributes and mutation of
lists, dicts and sets. This module closes what it leaves open:

* attribute access only on plain data: mappings, pydantic model fields, dataclass fields,
  enum ``name``/``value``, a short list of read-only ``str``/``list`` methods, and Jinja's own
  loop/namespace objects. ``obj.api_key`` on any other object is refused;
* every operation that can grow memory or CPU without bound is checked *before* it runs:
  ``*``, ``**``, ``+``, ``%``, ``~``, ``str.format``/``format_map`` widths, ``join``,
  ``replace``, ``center``, ``indent``, ``wordwrap``, ``batch``, ``slice``, ``tojson``;
* loop iterations and calls are counted against one budget per render, which also carries a
  wall-clock deadline; the deadline is checked cooperatively in those hooks, so it works in any
  thread (no signals). A single builtin call on huge input data (e.g. ``sort``) is not
  interrupted; the size of such data is the caller's to bound;
* every buffer (macro bodies, ``{% set %}`` blocks, the final output) is size-checked while it
  is joined, so no string larger than ``max_output_chars`` is ever built;
* ``lipsum`` is removed and ``range`` is bounded by the operation budget.

Role markers for chat templates live here too: a per-process random nonce that no value can
know, so a value can never forge a message boundary.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import secrets
import string
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from itertools import islice
from typing import Any

import jinja2
import pydantic
from jinja2 import nodes
from jinja2.environment import TemplateModule
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import BlockReference, Context, LoopContext, Macro, TemplateReference
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace

from .._errors import ConfigurationError

__all__ = ["DEFAULT_LIMITS", "TemplateLimits"]


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

    __slots__ = ("active", "deadline", "depth", "limits", "ops", "weights")

    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.ops = 0
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

_CONTAINERS = (list, tuple, dict, set, frozenset, Namespace)


def weigh(value: Any, budget: Budget) -> int:
    """About how many characters ``str(value)`` prints; raises past ``max_output_chars``."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, _CONTAINERS):
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


def _weighed(value: Any) -> Any:
    """Replaces container literals that hold variables: weighs the new container."""
    weigh(value, current_budget())
    return value


# -- attribute policy ---------------------------------------------------------------------------

_STR_METHODS = frozenset(
    (
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "index",
        "isalnum",
        "isalpha",
        "isascii",
        "isdecimal",
        "isdigit",
        "isidentifier",
        "islower",
        "isnumeric",
        "isprintable",
        "isspace",
        "istitle",
        "isupper",
        "join",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "replace",
        "rfind",
        "rindex",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
    )
)
_MAPPING_METHODS = frozenset({"get", "items", "keys", "values"})
_SEQUENCE_METHODS = frozenset({"count", "index"})
_JINJA_TYPES = (LoopContext, Namespace, Cycler, Joiner, Macro, BlockReference, TemplateReference, TemplateModule)


@functools.lru_cache(maxsize=512)
def _dataclass_fields(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def data_attribute_allowed(obj: Any, attr: str) -> bool:
    """Whether a template may read ``obj.attr`` (private names are refused before this)."""
    if isinstance(obj, enum.Enum):
        return attr in ("name", "value")
    if isinstance(obj, str):
        return attr in _STR_METHODS
    if isinstance(obj, Mapping):
        return attr in _MAPPING_METHODS
    if isinstance(obj, (list, tuple)):
        return attr in _SEQUENCE_METHODS
    if isinstance(obj, _JINJA_TYPES):
        return True
    if isinstance(obj, pydantic.BaseModel):
        cls = type(obj)
        return attr in cls.model_fields or attr in cls.model_computed_fields
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return attr in _dataclass_fields(type(obj))
    return False


def _readable(obj: Any, attr: str) -> bool:
    """Whether to read ``obj.attr`` at all; ``str.format`` is then replaced by a checked wrapper."""
    if attr.startswith("_"):
        return False
    if isinstance(obj, str) and attr in ("format", "format_map"):
        return True
    return data_attribute_allowed(obj, attr)


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


def _checked_binop(operator: str, left: Any, right: Any) -> None:
    budget = current_budget()
    budget.tick()
    limits = budget.limits
    if operator == "*":
        if isinstance(left, (str, list, tuple)) and isinstance(right, int):
            budget.check_size(weigh(left, budget) * max(right, 0), "a repeated sequence")
        elif isinstance(right, (str, list, tuple)) and isinstance(left, int):
            budget.check_size(weigh(right, budget) * max(left, 0), "a repeated sequence")
        elif (
            isinstance(left, int)
            and isinstance(right, int)
            and _int_bits(left) + _int_bits(right) > limits.max_int_bits
        ):
            raise LimitExceededError(f"integer product over max_int_bits={limits.max_int_bits}")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            bits = abs(left).bit_length() - 1  # left >= 2**bits, so the result has at least bits*right bits
            if bits > 0 and bits * right > limits.max_int_bits:
                raise LimitExceededError(f"integer power over max_int_bits={limits.max_int_bits}")
    elif operator == "+":
        if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            budget.check_size(weigh(left, budget) + weigh(right, budget), "a concatenation")
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left, right)


def _checked_join(sep: str, items: Iterable[Any]) -> str:
    budget = current_budget()
    parts = [x if isinstance(x, str) else str(x) for x in items]
    budget.tick(len(parts) // 64 + 1)
    budget.check_size(sum(map(len, parts)) + len(sep) * max(len(parts) - 1, 0), "a joined string")
    return sep.join(parts)


def _check_replace(s: str, old: str, new: str, count: Any = -1) -> None:
    n = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    current_budget().check_size(len(s) + n * (len(new) - len(old)), "a replaced string")


# -- filters with size checks -------------------------------------------------------------------


def _bounded_filters(original: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
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
        _check_replace(str(s), str(old), str(new), -1 if count is None else count)

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
        return _checked_join(str(d), value)

    out["join"] = join
    return out


def _loop_counter(iterable: Any) -> Iterator[Any]:
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


def _bounded_range(*args: int) -> range:
    r = range(*args)
    budget = current_budget()
    if len(r) > budget.limits.max_operations:
        raise LimitExceededError(f"range of {len(r)} items is over max_operations={budget.limits.max_operations}")
    return r


def _concat_filter(items: list[Any]) -> str:
    """Replaces the ``~`` operator: checks the size before joining."""
    return _checked_join("", items)


# -- chat role markers --------------------------------------------------------------------------

MARK = "\x00pk" + secrets.token_hex(12) + ":"
"""Starts every role marker. Random per process and never exposed to templates, so no value can
contain it: a message boundary can only come from the template itself."""
END = "\x01"
OPEN, CLOSE, SPLICE = "o", "c", "p"
_MARKER_ROLES = ("system", "user", "assistant", "tool")


class RoleExtension(Extension):
    """``{% role "system" %}...{% endrole %}`` and ``{% messages history %}`` for chat templates."""

    tags = {"role", "messages"}  # noqa: RUF012  # Jinja's Extension API declares a class-level set

    def parse(self, parser: Parser) -> list[nodes.Node]:
        token = next(parser.stream)
        lineno = token.lineno
        if token.value == "messages":
            name = parser.stream.expect("name")
            optional = parser.stream.skip_if("name:optional")
            flag = "?" if optional else ""
            return [
                nodes.ExprStmt(nodes.Name(name.value, "load", lineno=lineno), lineno=lineno),
                nodes.Output([nodes.TemplateData(f"{MARK}{SPLICE}{name.value}{flag}{END}")], lineno=lineno),
            ]
        role_token = parser.stream.expect("string")
        role = role_token.value
        if role not in _MARKER_ROLES:
            parser.fail(f"invalid role {role!r}; expected one of {', '.join(sorted(_MARKER_ROLES))}", lineno)
        if getattr(parser, "_promptkit_in_role", False):
            parser.fail("role blocks cannot be nested", lineno)
        parser._promptkit_in_role = True  # type: ignore[attr-defined]
        try:
            body = parser.parse_statements(("name:endrole",), drop_needle=True)
        finally:
            parser._promptkit_in_role = False  # type: ignore[attr-defined]
        return [
            nodes.Output([nodes.TemplateData(f"{MARK}{OPEN}{role}{END}")], lineno=lineno),
            *body,
            nodes.Output([nodes.TemplateData(f"{MARK}{CLOSE}{END}")], lineno=lineno),
        ]


HL_START, HL_END = "\x02", "\x03"


def _highlight(value: Any) -> str:
    return HL_START + str(value) + HL_END


_BUFFERED = (nodes.Macro, nodes.CallBlock, nodes.AssignBlock, nodes.FilterBlock)


def _is_marker(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Output)
        and len(node.nodes) == 1
        and isinstance(node.nodes[0], nodes.TemplateData)
        and node.nodes[0].data.startswith(MARK)
    )


def _transform(node: nodes.Node, buffered: bool) -> None:
    """Count loop iterations, check ``~`` sizes, and keep role markers out of captured text."""
    for child in node.iter_child_nodes():
        _transform(child, buffered or isinstance(child, _BUFFERED))
    if isinstance(node, nodes.For):
        node.iter = nodes.Filter(node.iter, "_promptkit_loop", [], [], None, None, lineno=node.lineno)
    elif buffered and _is_marker(node):
        raise jinja2.TemplateSyntaxError(
            "role and messages blocks cannot be inside macros, call, filter or set blocks", node.lineno
        )
    for field in node.fields:
        value = getattr(node, field)
        if isinstance(value, nodes.Node):
            setattr(node, field, _replacement(value))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, nodes.Node):
                    value[i] = _replacement(item)


def _replacement(node: nodes.Node) -> nodes.Node:
    if isinstance(node, nodes.Concat):
        return nodes.Filter(nodes.List(node.nodes), "_promptkit_concat", [], [], None, None, lineno=node.lineno)
    if _is_dynamic_literal(node):
        return nodes.Filter(node, "_promptkit_weigh", [], [], None, None, lineno=node.lineno)
    return node


def _is_dynamic_literal(node: nodes.Node) -> bool:
    """A list, tuple or dict display (not an assignment target) holding anything but constants."""
    if isinstance(node, nodes.Tuple):
        if node.ctx != "load":
            return False
        items: list[nodes.Node] = list(node.items)
    elif isinstance(node, nodes.List):
        items = list(node.items)
    elif isinstance(node, nodes.Dict):
        items = [x for pair in node.items for x in (pair.key, pair.value)]
    else:
        return False
    return not all(isinstance(item, nodes.Const) for item in items)


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """The promptkit sandbox: see the module docstring for what it adds to Jinja2's."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *, loader: jinja2.BaseLoader | None = None, highlight: bool = False) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            loader=loader,
            extensions=[RoleExtension],
            auto_reload=True,
            finalize=_highlight if highlight else None,
        )
        self.highlight = highlight
        self._preview: PromptEnvironment | None = None
        self.concat = bounded_concat  # type: ignore[method-assign]  # the generated code joins buffers with this
        self.globals.pop("lipsum", None)
        self.globals["range"] = _bounded_range
        self.globals["namespace"] = BoundedNamespace
        self.filters.update(_bounded_filters(self.filters))
        self.filters["_promptkit_loop"] = _loop_counter
        self.filters["_promptkit_concat"] = _concat_filter
        self.filters["_promptkit_weigh"] = _weighed

    def preview_environment(self) -> PromptEnvironment:
        """The same sandbox and loader, marking every ``{{ value }}`` for display."""
        if self.highlight:
            return self
        if self._preview is None:
            self._preview = PromptEnvironment(loader=self.loader, highlight=True)
        return self._preview

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        _transform(tree, buffered=False)
        return tree

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return super().is_safe_attribute(obj, attr, value) and data_attribute_allowed(obj, attr)

    # Jinja's sandbox reads an attribute (running properties and ``__getattr__``) before it asks
    # whether the read was allowed. These two overrides decide from the type alone first.
    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, jinja2.Undefined):
            return obj[attribute]  # raises the undefined (or unsafe) error it carries
        if attribute.startswith("_") and not isinstance(obj, Mapping):
            return self._refused(obj, attribute)
        if _readable(obj, attribute):
            try:
                value = getattr(obj, attribute)
            except AttributeError:
                pass
            else:
                return self._checked_value(obj, attribute, value)
        try:
            return obj[attribute]
        except (TypeError, LookupError):
            return self._refused(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, jinja2.Undefined):
            return obj[argument]
        try:
            return obj[argument]
        except (TypeError, LookupError):
            if not isinstance(argument, str):
                return self.undefined(obj=obj, name=argument)
        if _readable(obj, argument):
            try:
                value = getattr(obj, argument)
            except AttributeError:
                return self.undefined(obj=obj, name=argument)
            return self._checked_value(obj, argument, value)
        return self._refused(obj, argument)

    def _checked_value(self, obj: Any, name: str, value: Any) -> Any:
        fmt = self.wrap_str_format(value)
        if fmt is not None:
            return fmt
        if self.is_safe_attribute(obj, name, value):
            return value
        return self.unsafe_undefined(obj, name)

    def _refused(self, obj: Any, name: str) -> Any:
        try:
            inspect.getattr_static(obj, name)
        except AttributeError:
            return self.undefined(obj=obj, name=name)
        return self.unsafe_undefined(obj, name)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _checked_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__
        is_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            if is_map:
                mapping = args[0] if args and isinstance(args[0], Mapping) else {}
                check_str_format(fmt, (), mapping)
            else:
                check_str_format(fmt, args, kwargs)
            return wrapped(*args, **kwargs)

        return checked

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = current_budget()
        budget.tick()
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"{__obj!r} is not safely callable")
        if isinstance(__obj, types.BuiltinMethodType) and isinstance(getattr(__obj, "__self__", None), str):
            if __obj.__name__ == "join" and len(args) == 1 and not kwargs:
                return _checked_join(str(__obj.__self__), args[0])
            if __obj.__name__ == "replace" and len(args) >= 2:
                _check_replace(str(__obj.__self__), str(args[0]), str(args[1]), args[2] if len(args) > 2 else -1)
        if budget.depth >= budget.limits.max_call_depth:
            raise LimitExceededError(f"calls nested deeper than max_call_depth={budget.limits.max_call_depth}")
        budget.depth += 1
        try:
            result = __context.call(__obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        if isinstance(result, _CONTAINERS):
            weigh(result, budget)
        return result


DEFAULT_ENV = PromptEnvironment()

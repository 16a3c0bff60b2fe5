"""The environment every promptkit template compiles and renders in.

Jinja2's ``ImmutableSandboxedEnvironment`` already blocks private attributes and mutation of
lists, dicts and sets. :class:`PromptEnvironment` adds:

* attribute access only on plain data: mappings, pydantic model fields, dataclass fields, enum
  ``name``/``value``, a short list of read-only ``str``/``list`` methods, and Jinja's own
  loop/namespace objects, decided from the type *before* the attribute is read;
* the checks of :mod:`._limits`, wired into the sandbox's hooks (binary operators, calls,
  ``str.format``, buffers) and into the compiled code (an AST pass counts loop iterations,
  checks ``~`` and weighs container literals);
* ``lipsum`` removed, ``range`` and ``namespace`` bounded;
* role markers for chat templates: a per-process random nonce that no value can know, so a
  value can never forge a message boundary.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import json
import os
import types
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any

import jinja2
from jinja2 import nodes, pass_context
from jinja2.environment import TemplateModule
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import BlockReference, Context, LoopContext, Macro, TemplateReference
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace

from .._errors import ConfigurationError
from .._fitting import check_part_options
from .._utils import is_model_instance
from . import _images
from ._images import IMAGE, guard_text, image_filter_index
from ._limits import (
    CONTAINERS,
    BoundedNamespace,
    LimitExceededError,
    bounded_concat,
    bounded_filters,
    bounded_range,
    captured_text,
    captured_value,
    check_replace,
    check_str_format,
    checked_binop,
    checked_join,
    concat_filter,
    current_budget,
    loop_counter,
    weigh,
    weighed,
)

__all__ = ["DEFAULT_ENV", "END", "FITTING", "MARK", "PromptEnvironment", "Tagged"]


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
    if is_model_instance(obj):
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


# -- chat role markers --------------------------------------------------------------------------

MARK = "\x00pk" + os.urandom(12).hex() + ":"  # what secrets.token_hex does, without its imports
"""Starts every role marker. Random per process and never exposed to templates, so no value can
contain it: a message boundary can only come from the template itself."""
END = _images.END
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
        opening = nodes.TemplateData(f"{MARK}{OPEN}{role}{END}", lineno=lineno)
        closing = nodes.TemplateData(f"{MARK}{CLOSE}{END}", lineno=lineno)
        # Markers join the body's first and last output nodes when there are some, so the
        # compiler folds them into the neighbouring text (fewer chunks to yield and join).
        if body and isinstance(body[0], nodes.Output):
            body[0].nodes.insert(0, opening)
        else:
            body.insert(0, nodes.Output([opening], lineno=lineno))
        if isinstance(body[-1], nodes.Output):
            body[-1].nodes.append(closing)
        else:
            body.append(nodes.Output([closing], lineno=lineno))
        return body


# -- parts for fitting a prompt into a token budget (see _fit.py) ------------------------------

PART_OPEN, PART_CLOSE, UNIT = "f", "g", "n"
FITTING: ContextVar[bool] = ContextVar("promptkit_fitting", default=False)
"""True while a render is being fitted: only then do parts mark where they start and end."""


class _Raw(str):
    """A part marker (or nothing): printed as is, never highlighted as a value."""

    __slots__ = ()


_NOTHING = _Raw("")


class PartExtension(Extension):
    """``{% part "name" priority=1 max_tokens=200 truncate="end" marker="..." fallback="..." %}...{% endpart %}``.

    The options are expressions (a loop can give each item its own priority). Outside a fitted
    render a part prints nothing of its own; while fitting it wraps its body in markers built on
    the role markers' nonce (the options JSON-encoded, so no control character gets in).
    """

    tags = {"part"}  # noqa: RUF012  # Jinja's Extension API declares a class-level set
    options = ("priority", "max_tokens", "truncate", "marker", "fallback")

    def parse(self, parser: Parser) -> list[nodes.Node]:
        lineno = next(parser.stream).lineno
        name = parser.stream.expect("string").value
        if not name:
            parser.fail("a part needs a non-empty name", lineno)
        keywords: list[nodes.Keyword] = []
        while parser.stream.current.type != "block_end":
            if keywords:
                parser.stream.skip_if("comma")
            key = parser.stream.expect("name")
            if key.value not in self.options:
                parser.fail(f"unknown part option {key.value!r}; expected one of {', '.join(self.options)}", key.lineno)
            if any(k.key == key.value for k in keywords):
                parser.fail(f"part option {key.value!r} given twice", key.lineno)
            parser.stream.expect("assign")
            keywords.append(nodes.Keyword(key.value, parser.parse_expression(), lineno=key.lineno))
        body = parser.parse_statements(("name:endpart",), drop_needle=True)
        opening = nodes.Output([self.call_method("_open", [nodes.Const(name)], keywords, lineno=lineno)], lineno=lineno)
        closing = nodes.Output([self.call_method("_close", lineno=lineno)], lineno=lineno)
        return [opening, *body, closing]

    def _open(
        self,
        name: str,
        *,
        priority: Any = 0,
        max_tokens: Any = None,
        truncate: Any = None,
        marker: Any = "",
        fallback: Any = "",
    ) -> str:
        try:
            check_part_options(
                f"part {name!r}",
                priority=priority,
                max_tokens=max_tokens,
                truncate=truncate,
                marker=marker,
                fallback=fallback,
            )
        except ConfigurationError as exc:
            raise jinja2.TemplateRuntimeError(str(exc)) from None
        if not FITTING.get():
            return _NOTHING
        spec = json.dumps([name, priority, max_tokens, truncate, marker, fallback])
        return _Raw(f"{MARK}{PART_OPEN}{spec}{END}")

    def _close(self) -> str:
        return _Raw(f"{MARK}{PART_CLOSE}{END}") if FITTING.get() else _NOTHING


class Tagged(str):
    """A value fitted as a part: printed with ``{{ name }}`` it carries its part's markers.

    ``spec`` is the part's JSON options; ``units`` (the examples) are printed joined by
    ``separator``, each marked so that fitting can drop whole ones.
    """

    spec: str
    units: tuple[str, ...] | None
    separator: str

    def marked(self) -> str:
        if self.units is None:
            return f"{MARK}{PART_OPEN}{self.spec}{END}{self}{MARK}{PART_CLOSE}{END}"
        body = f"{MARK}{UNIT}{END}".join(self.units)
        return f"{MARK}{PART_OPEN}{self.spec}{END}{body}{MARK}{PART_CLOSE}{END}"


def tagged(text: str, spec: str, units: tuple[str, ...] | None = None, separator: str = "") -> Tagged:
    value = Tagged(text)
    value.spec, value.units, value.separator = spec, units, separator
    return value


def _fit_finalize(value: Any) -> Any:
    if isinstance(value, Tagged) and FITTING.get():
        return value.marked()
    return value


@pass_context
def _fit_checked(context: Context, value: Any) -> Any:
    return _fit_finalize(guard_text(context, value))


def _is_part_tag(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.ExtensionAttribute)
        and node.node.identifier == PartExtension.identifier
    )


HL_START, HL_END = _images.HL_START, _images.HL_END


def _highlight(value: Any) -> str:
    if type(value) is _Raw:
        return value
    return HL_START + str(value) + HL_END


@pass_context
def _highlight_checked(context: Context, value: Any) -> str:
    return _highlight(guard_text(context, value))


@pass_context
def _image_filter(context: Context, value: Any, detail: Any = None) -> str:
    """``{{ photo | image }}`` (or ``image("low")``): an image part in the current role block."""
    return f"{MARK}{IMAGE}{image_filter_index(context, value, detail)}{END}"


# Places whose output a template can get back as a value (and so could copy or alter):
# macros, call/set/filter blocks, blocks (via self.name() and super()), recursive loops.
_BUFFERED = (nodes.Macro, nodes.CallBlock, nodes.AssignBlock, nodes.FilterBlock, nodes.Block)


def _captures(node: nodes.Node) -> bool:
    return isinstance(node, _BUFFERED) or (isinstance(node, nodes.For) and bool(node.recursive))


def _is_marker(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Output) and any(
        (isinstance(child, nodes.TemplateData) and child.data.startswith(MARK)) or _is_part_tag(child)
        for child in node.nodes
    )


def _transform(node: nodes.Node, buffered: bool) -> None:
    """Count loop iterations, check ``~`` sizes, and keep role markers out of captured text."""
    for child in node.iter_child_nodes():
        _transform(child, buffered or _captures(child))
    if isinstance(node, nodes.For):
        node.iter = nodes.Filter(node.iter, "_promptkit_loop", [], [], None, None, lineno=node.lineno)
    elif buffered and _is_marker(node):
        raise jinja2.TemplateSyntaxError(
            "role, messages and part blocks cannot be inside macros, blocks, recursive loops or call, filter or set "
            "blocks",
            node.lineno,
        )
    elif buffered and isinstance(node, nodes.Output):
        _count_captured(node)
    for field in node.fields:
        value = getattr(node, field)
        if isinstance(value, nodes.Node):
            setattr(node, field, _replacement(value))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, nodes.Node):
                    value[i] = _replacement(item)


def _count_captured(node: nodes.Output) -> None:
    """Make an output node inside a capture count what it writes (values and literal text)."""
    literal = 0
    children: list[nodes.Expr] = []
    for child in node.nodes:
        if isinstance(child, nodes.TemplateData):
            literal += len(child.data)
            children.append(child)
        else:
            children.append(nodes.Filter(child, "_promptkit_captured", [], [], None, None, lineno=child.lineno))
    if literal:
        const = nodes.Const(literal, lineno=node.lineno)
        children.insert(0, nodes.Filter(const, "_promptkit_captured_text", [], [], None, None, lineno=node.lineno))
    node.nodes = children


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


def _buffer_concat(parts: Iterable[str]) -> str:
    """Joins captured output (macro results, ``{% set %}`` blocks, ...): size-checked, and never
    holding a role marker, so no template can get one back as a value and leak it."""
    text = bounded_concat(parts)
    if MARK in text:
        raise SecurityError("role and messages blocks cannot be captured (in a macro, block, set or filter block)")
    return text


class _JinjaTemplate(jinja2.Template):
    """Jinja2's template class, refusing to import a template that emits role markers
    (an imported module prints its body, which would hand the markers to the importer)."""

    def make_module(
        self,
        vars: dict[str, Any] | None = None,  # parameter names as in Jinja2
        shared: bool = False,
        locals: Mapping[str, Any] | None = None,
    ) -> TemplateModule:
        module = super().make_module(vars, shared, locals)
        if MARK in str(module):
            raise SecurityError("a template with role blocks cannot be imported; include it at the top level instead")
        return module


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """The promptkit sandbox: see the module docstring for what it adds to Jinja2's."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    template_class = _JinjaTemplate

    def __init__(self, *, loader: jinja2.BaseLoader | None = None, highlight: bool = False, fit: bool = False) -> None:
        finalize = _highlight_checked if highlight else _fit_checked if fit else guard_text
        super().__init__(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            loader=loader,
            extensions=[RoleExtension, PartExtension],
            auto_reload=True,
            finalize=finalize,
        )
        self.highlight = highlight
        self.fitting = fit
        self._preview: PromptEnvironment | None = None
        self._fit: PromptEnvironment | None = None
        self.concat = _buffer_concat  # type: ignore[method-assign]  # the generated code joins buffers with this
        self.globals.pop("lipsum", None)
        self.globals["range"] = bounded_range
        self.globals["namespace"] = BoundedNamespace
        self.filters.update(bounded_filters(self.filters))
        self.filters["_promptkit_loop"] = loop_counter
        self.filters["_promptkit_concat"] = concat_filter
        self.filters["_promptkit_weigh"] = weighed
        self.filters["_promptkit_captured"] = captured_value
        self.filters["_promptkit_captured_text"] = captured_text
        self.filters["image"] = _image_filter

    def preview_environment(self) -> PromptEnvironment:
        """The same sandbox and loader, marking every ``{{ value }}`` for display."""
        if self.highlight:
            return self
        if self._preview is None:
            self._preview = PromptEnvironment(loader=self.loader, highlight=True)
        return self._preview

    def fit_environment(self) -> PromptEnvironment:
        """The same sandbox and loader, printing the values fitted as parts with their markers."""
        if self.fitting:
            return self
        if self._fit is None:
            self._fit = PromptEnvironment(loader=self.loader, fit=True)
        return self._fit

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
        return checked_binop(operator, left, right)

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
                return checked_join(str(__obj.__self__), args[0])
            if __obj.__name__ == "replace" and len(args) >= 2:
                check_replace(str(__obj.__self__), str(args[0]), str(args[1]), args[2] if len(args) > 2 else -1)
        if budget.depth >= budget.limits.max_call_depth:
            raise LimitExceededError(f"calls nested deeper than max_call_depth={budget.limits.max_call_depth}")
        budget.depth += 1
        try:
            result = __context.call(__obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        if isinstance(result, CONTAINERS):
            weigh(result, budget)
        return result


DEFAULT_ENV = PromptEnvironment()

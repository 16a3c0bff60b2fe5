"""Templates: one Jinja2 string (``Template``) or a list of role messages (``ChatTemplate``).

Templates compile once, render in Jinja2's immutable sandbox with strict undefined variables,
and turn every Jinja2 error into a :class:`~promptkit.TemplateError` with the template's name
and line.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from types import MappingProxyType
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ._errors import (
    ConfigurationError,
    TemplateError,
    TemplateSecurityError,
    TemplateSyntaxError,
    UndefinedVariableError,
    UnexpectedVariableError,
)
from ._messages import ROLES, Message, _messages_html

__all__ = ["ChatTemplate", "Template"]


def _make_environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


_ENV = _make_environment()
_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")
_TEMPLATE_FILENAME = "<template>"


def _template_lineno(exc: BaseException) -> int | None:
    """The last line of template code in ``exc``'s traceback (Jinja2 rewrites frames to it)."""
    lineno = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == _TEMPLATE_FILENAME:
            lineno = frame.lineno
    return lineno


def _wrap_render_error(exc: Exception, name: str | None) -> TemplateError:
    lineno = _template_lineno(exc)
    if isinstance(exc, jinja2.UndefinedError):
        match = _UNDEFINED_NAME.match(str(exc.message or ""))
        if match:
            variable = match.group(1)
            return UndefinedVariableError(
                f"missing template variable {variable!r}", variable=variable, template=name, lineno=lineno
            )
        return UndefinedVariableError(str(exc.message), template=name, lineno=lineno)
    if isinstance(exc, SecurityError):
        return TemplateSecurityError(f"unsafe operation blocked: {exc}", template=name, lineno=lineno)
    if isinstance(exc, jinja2.TemplateError):
        return TemplateError(f"{type(exc).__name__}: {exc}", template=name, lineno=lineno)
    return TemplateError(f"rendering failed: {type(exc).__name__}: {exc}", template=name, lineno=lineno)


class Template:
    """One Jinja2 template string, compiled once and rendered in a sandbox.

    Values must cover every variable the template uses (a missing one raises
    :class:`~promptkit.UndefinedVariableError` naming it); values the template never uses raise
    :class:`~promptkit.UnexpectedVariableError` unless ``allow_extra=True``.

    >>> t = Template("Translate to {{ lang }}: {{ text }}")
    >>> sorted(t.variables)
    ['lang', 'text']
    >>> t.render(lang="French", text="cheese")
    'Translate to French: cheese'
    """

    __slots__ = ("__dict__", "_defaults", "_jinja", "allow_extra", "name", "source")

    def __init__(
        self,
        source: str,
        *,
        name: str | None = None,
        allow_extra: bool = False,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(source, str):
            raise ConfigurationError(f"template source must be a str, not {type(source).__name__}")
        self.source = source
        self.name = name
        self.allow_extra = allow_extra
        self._defaults: Mapping[str, Any] = MappingProxyType(dict(defaults or {}))
        try:
            self._jinja = _ENV.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateSyntaxError(
                f"invalid template syntax: {exc.message}", template=name, lineno=exc.lineno
            ) from exc

    @cached_property
    def _all_variables(self) -> frozenset[str]:
        return frozenset(meta.find_undeclared_variables(_ENV.parse(self.source)))

    @property
    def variables(self) -> frozenset[str]:
        """Variables the template reads and that are not yet fixed by :meth:`partial`."""
        return self._all_variables - self._defaults.keys()

    def partial(self, **values: Any) -> Template:
        """A new template with some variables fixed.

        >>> Template("{{ a }}-{{ b }}").partial(a=1).render(b=2)
        '1-2'
        """
        self._check_extra(values)
        return Template(
            self.source, name=self.name, allow_extra=self.allow_extra, defaults={**self._defaults, **values}
        )

    def _check_extra(self, values: Mapping[str, Any]) -> None:
        if not self.allow_extra:
            extra = sorted(set(values) - self._all_variables)
            if extra:
                raise UnexpectedVariableError(extra, template=self.name)

    def render(self, **values: Any) -> str:
        """Render with ``values``; raises a :class:`~promptkit.TemplateError` on any failure."""
        self._check_extra(values)
        context = {**self._defaults, **values} if self._defaults else values
        try:
            return self._jinja.render(context)
        except Exception as exc:
            raise _wrap_render_error(exc, self.name) from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Template):
            return NotImplemented
        return (self.source, self.name, self.allow_extra, _freeze(self._defaults)) == (
            other.source,
            other.name,
            other.allow_extra,
            _freeze(other._defaults),
        )

    def __hash__(self) -> int:
        return hash((self.source, self.name, self.allow_extra, _freeze(self._defaults)))

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        src = self.source if len(self.source) <= 60 else self.source[:57] + "..."
        return f"<Template{label} {src!r} variables={sorted(self.variables)}>"


def _freeze(values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    # Defaults may be unhashable (lists, dicts); their repr is a stable, good-enough key.
    return tuple(sorted((k, repr(v)) for k, v in values.items()))


class ChatTemplate:
    """A list of ``(role, template)`` pairs that renders to a list of :class:`Message`.

    >>> chat = ChatTemplate([("system", "You answer in {{ lang }}."), ("user", "{{ question }}")])
    >>> [m.role for m in chat.render(lang="French", question="Hi?")]
    ['system', 'user']
    """

    __slots__ = ("__dict__", "allow_extra", "messages", "name")

    def __init__(
        self,
        messages: Sequence[tuple[str, str | Template]],
        *,
        name: str | None = None,
        allow_extra: bool = False,
    ) -> None:
        if isinstance(messages, str):  # type: ignore[unreachable]  # guard for untyped callers
            raise ConfigurationError("ChatTemplate takes a list of (role, template) pairs; use Template for one string")
        parts: list[tuple[str, Template]] = []
        for i, item in enumerate(messages):
            if not (isinstance(item, tuple) and len(item) == 2):
                raise ConfigurationError(f"ChatTemplate message {i} must be a (role, template) pair, not {item!r:.60}")
            role, source = item
            if role not in ROLES:
                raise ConfigurationError(
                    f"ChatTemplate message {i} has invalid role {role!r}; expected one of {', '.join(sorted(ROLES))}"
                )
            label = f"{name or 'chat'}[{i}:{role}]"
            template = source if isinstance(source, Template) else Template(source, name=label, allow_extra=True)
            parts.append((role, template))
        if not parts:
            raise ConfigurationError("ChatTemplate needs at least one message")
        self.messages: tuple[tuple[str, Template], ...] = tuple(parts)
        self.name = name
        self.allow_extra = allow_extra

    @cached_property
    def variables(self) -> frozenset[str]:
        """Variables used by any of the messages."""
        return frozenset().union(*(t.variables for _, t in self.messages))

    def partial(self, **values: Any) -> ChatTemplate:
        """A new chat template with some variables fixed in every message."""
        self._check_extra(values)
        return ChatTemplate(
            [(role, t.partial(**{k: v for k, v in values.items() if k in t.variables})) for role, t in self.messages],
            name=self.name,
            allow_extra=self.allow_extra,
        )

    def _check_extra(self, values: Iterable[str]) -> None:
        if not self.allow_extra:
            extra = sorted(set(values) - self.variables)
            if extra:
                raise UnexpectedVariableError(extra, template=self.name)

    def render(self, **values: Any) -> list[Message]:
        """Render each message with ``values``; each role stays as declared."""
        self._check_extra(values)
        return [Message(role, t.render(**values)) for role, t in self.messages]  # type: ignore[arg-type]

    def _repr_html_(self) -> str:
        return _messages_html(Message(role, t.source) for role, t in self.messages)  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChatTemplate):
            return NotImplemented
        return (self.messages, self.name, self.allow_extra) == (other.messages, other.name, other.allow_extra)

    def __hash__(self) -> int:
        return hash((self.messages, self.name, self.allow_extra))

    def __repr__(self) -> str:
        roles = ", ".join(role for role, _ in self.messages)
        return f"<ChatTemplate [{roles}] variables={sorted(self.variables)}>"

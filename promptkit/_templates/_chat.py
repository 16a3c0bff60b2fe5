"""``ChatTemplate``: role blocks in one source (or ``(role, source)`` pairs), rendered to messages.

A chat template compiles to *one* Jinja2 template. Each role block emits a marker made of a
per-process random nonce; after rendering, the text is split at the markers. A value can never
contain the nonce, so whatever a value holds (``system:``, ``{% role %}``, ``<|im_start|>``) it
stays inside its message.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from jinja2 import nodes

from .._errors import (
    ConfigurationError,
    TemplateError,
    TemplateInputError,
    TemplateSecurityError,
    TemplateSyntaxError,
    UndefinedVariableError,
)
from .._messages import ROLES, ContentPart, ImagePart, Message, coerce_messages
from ._compile import Locator, compile_source, plain_locator, render_jinja
from ._display import document, highlight_source, role_block
from ._images import IMAGE, collecting, join_parts, merge_content, place_image, preview_text
from ._inputs import input_model
from ._limits import TemplateLimits
from ._sandbox import CLOSE, END, MARK, OPEN, PromptEnvironment
from ._template import Preview, Template, _TemplateBase

if TYPE_CHECKING:
    from ._inputs import InputsSpec
    from ._library import PromptLibrary

__all__ = ["ChatTemplate", "MessagesPlaceholder"]


class MessagesPlaceholder:
    """Where a list of messages (e.g. chat history) is spliced into a :class:`ChatTemplate`.

    The value of ``name`` must be a sequence of messages (``Message``, ``(role, content)`` or
    ``{"role", "content"}``); with ``optional=True`` a missing value or ``None`` adds nothing.
    In a template source the same is written ``{% messages history %}`` (or
    ``{% messages history optional %}``).

    >>> chat = ChatTemplate([("system", "Be brief."), MessagesPlaceholder("history"), ("user", "{{ q }}")])
    >>> [m.role for m in chat.render(history=[("user", "Hi"), ("assistant", "Hello")], q="Bye?")]
    ['system', 'user', 'assistant', 'user']
    """

    __slots__ = ("name", "optional")

    def __init__(self, name: str, *, optional: bool = False) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigurationError(f"placeholder name must be an identifier, not {name!r}")
        self.name = name
        self.optional = optional

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessagesPlaceholder):
            return NotImplemented
        return (self.name, self.optional) == (other.name, other.optional)

    def __hash__(self) -> int:
        return hash((MessagesPlaceholder, self.name, self.optional))

    def __repr__(self) -> str:
        return f"MessagesPlaceholder({self.name!r}{', optional=True' if self.optional else ''})"

    def source(self) -> str:
        return f"{{% messages {self.name}{' optional' if self.optional else ''} %}}"


ChatPart = tuple[str, "str | Template"] | MessagesPlaceholder


_new = object.__new__
_SLOTS: Mapping[str, Any] = vars(Message)  # a frozen dataclass with slots: its member descriptors
_set_role = _SLOTS["role"].__set__
_set_content = _SLOTS["content"].__set__
_set_cache = _SLOTS["cache"].__set__


def _message(role: str, content: str | tuple[ContentPart, ...]) -> Message:
    """A ``Message`` without re-validating: roles were checked when the template compiled."""
    message: Message = _new(Message)
    _set_role(message, role)
    _set_content(message, content)
    _set_cache(message, None)
    return message


def _check_top_level(env: PromptEnvironment, source: str, locate: Locator) -> None:
    """Refuse literal text outside role blocks at compile time, with its line."""
    stray = _text_outside_roles(env, source)
    if stray is not None:
        text, lineno = stray
        label, line = locate(lineno)
        raise TemplateSyntaxError(
            f"text outside a role block: {text[:60]!r}; put it inside {{% role %}}...{{% endrole %}}",
            template=label,
            lineno=line,
        )


@functools.lru_cache(maxsize=1024)
def _text_outside_roles(env: PromptEnvironment, source: str) -> tuple[str, int] | None:
    """The first literal text outside role blocks and its line; cached, as the source decides it."""
    role_open = False
    for node in env.parse(source).body:
        if not isinstance(node, nodes.Output):
            continue
        for child in node.nodes:
            if not isinstance(child, nodes.TemplateData):
                continue
            data = child.data
            if data.startswith(MARK):
                role_open = data[len(MARK)] == OPEN
            elif not role_open and data.strip():
                leading = data[: len(data) - len(data.lstrip())]
                return data.strip(), child.lineno + leading.count("\n")
    return None


class ChatTemplate(_TemplateBase):
    """A chat prompt that renders to a list of :class:`~promptkit.Message`.

    Build it from ``(role, template)`` pairs and :class:`MessagesPlaceholder` items, or from one
    source with role blocks via :meth:`from_source`::

        {% role "system" %}You answer in {{ lang }}.{% endrole %}
        {% messages history optional %}
        {% role "user" %}{{ question }}{% endrole %}

    Messages are shaped the way providers expect (each switch can be turned off):

    * ``strip``: surrounding whitespace of each template message is removed;
    * ``drop_empty``: a template message that renders empty (e.g. a false ``{% if %}``) is left out;
    * ``merge``: consecutive template messages of the same role are joined with a blank line
      (Anthropic needs alternating roles and one system prompt). Spliced messages are never
      merged or changed.

    Built from pairs, ``parts`` holds the pairs and placeholders in order and ``messages`` the
    ``(role, Template)`` pairs alone; built from a source, both are empty and ``source`` says it all.

    >>> chat = ChatTemplate([("system", "You answer in {{ lang }}."), ("user", "{{ question }}")])
    >>> [m.role for m in chat.render(lang="French", question="Hi?")]
    ['system', 'user']
    """

    __slots__ = ("drop_empty", "merge", "messages", "parts", "strip")

    parts: tuple[tuple[str, Template] | MessagesPlaceholder, ...]
    messages: tuple[tuple[str, Template], ...]
    strip: bool
    drop_empty: bool
    merge: bool

    def __init__(
        self,
        messages: Sequence[ChatPart],
        *,
        name: str | None = None,
        allow_extra: bool = False,
        defaults: Mapping[str, Any] | None = None,
        inputs: InputsSpec | None = None,
        limits: TemplateLimits | None = None,
        library: PromptLibrary | None = None,
        strip: bool = True,
        drop_empty: bool = True,
        merge: bool = True,
    ) -> None:
        options: dict[str, Any] = {
            "name": name,
            "allow_extra": allow_extra,
            "limits": limits,
            "strip": strip,
            "drop_empty": drop_empty,
            "merge": merge,
        }
        if (
            defaults is None
            and inputs is None
            and library is None
            and isinstance(messages, (list, tuple))
            and all(type(m) is tuple and len(m) == 2 and type(m[0]) is str and type(m[1]) is str for m in messages)
        ):
            # Plain (role, text) pairs: the same pairs and options give the same template, built once
            # per process (a template is immutable, so its parts are shared safely).
            built = _built_from_pairs(tuple(messages), tuple(options.items()))
            for slot in (*_TemplateBase.__slots__, *ChatTemplate.__slots__):
                if slot != "__dict__":
                    object.__setattr__(self, slot, getattr(built, slot))
            return
        self._build_pairs(messages, defaults=defaults, inputs=inputs, library=library, **options)

    def _build_pairs(
        self,
        messages: Sequence[ChatPart],
        *,
        name: str | None,
        allow_extra: bool,
        defaults: Mapping[str, Any] | None,
        inputs: InputsSpec | None,
        limits: TemplateLimits | None,
        library: PromptLibrary | None,
        strip: bool,
        drop_empty: bool,
        merge: bool,
    ) -> None:
        if isinstance(messages, str):  # type: ignore[unreachable]  # guard for untyped callers
            raise ConfigurationError(
                "ChatTemplate takes a list of (role, template) pairs; use ChatTemplate.from_source for role blocks "
                "or Template for one string"
            )
        if library is None:  # templates given as objects bring their library (for includes)
            for item in messages:
                if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Template) and item[1].library:
                    library = item[1].library
                    break
        parts: list[tuple[str, Template] | MessagesPlaceholder] = []
        merged_defaults: dict[str, Any] = {}
        chunks: list[str] = []
        starts: list[int] = []
        labels: list[str] = []
        line = 1
        for i, item in enumerate(messages):
            if isinstance(item, MessagesPlaceholder):
                parts.append(item)
                text = item.source() + "\n"
                starts.append(line)
                labels.append(f"{name or 'chat'}[{i}:{item.name}]")
                chunks.append(text)
                line += 1
                continue
            if not (isinstance(item, tuple) and len(item) == 2):
                raise ConfigurationError(f"ChatTemplate message {i} must be a (role, template) pair, not {item!r:.60}")
            role, src = item
            if role not in ROLES:
                raise ConfigurationError(
                    f"ChatTemplate message {i} has invalid role {role!r}; expected one of {', '.join(sorted(ROLES))}"
                )
            label = f"{name or 'chat'}[{i}:{role}]"
            template = (
                src
                if isinstance(src, Template)
                else Template(src, name=label, allow_extra=True, limits=limits, library=library)
            )
            for key, value in template.defaults.items():
                if key in merged_defaults and merged_defaults[key] != value:
                    raise ConfigurationError(f"messages fix different values for {key!r}")
                merged_defaults[key] = value
            parts.append((role, template))
            starts.append(line)
            labels.append(label)
            chunks.append(f'{{%+ role "{role}" +%}}{template.source}{{%+ endrole +%}}\n')
            line += template.source.count("\n") + 1
        if not parts:
            raise ConfigurationError("ChatTemplate needs at least one message")
        merged_defaults.update(defaults or {})

        def locate(lineno: int | None) -> tuple[str | None, int | None]:
            if lineno is None:
                return name, None
            i = max(bisect.bisect_right(starts, lineno) - 1, 0)
            return labels[i], lineno - starts[i] + 1

        self._setup(
            "".join(chunks),
            name=name,
            allow_extra=allow_extra,
            defaults=merged_defaults,
            inputs=inputs,
            limits=limits,
            library=library,
            strip=strip,
            drop_empty=drop_empty,
            merge=merge,
            locate=locate,
        )
        object.__setattr__(self, "parts", tuple(parts))
        object.__setattr__(self, "messages", tuple(p for p in parts if isinstance(p, tuple)))

    def _setup(
        self,
        source: str,
        *,
        name: str | None,
        allow_extra: bool,
        defaults: Mapping[str, Any] | None,
        inputs: InputsSpec | None,
        limits: TemplateLimits | None,
        library: PromptLibrary | None,
        strip: bool,
        drop_empty: bool,
        merge: bool,
        locate: Locator,
    ) -> None:
        object.__setattr__(self, "strip", strip)
        object.__setattr__(self, "drop_empty", drop_empty)
        object.__setattr__(self, "merge", merge)
        self._configure(
            source,
            name=name,
            allow_extra=allow_extra,
            defaults=defaults,
            inputs=inputs,
            limits=limits,
            library=library,
            locate=locate,
        )
        _check_top_level(self._env, source, locate)

    @classmethod
    def from_source(
        cls,
        source: str,
        *,
        name: str | None = None,
        allow_extra: bool = False,
        defaults: Mapping[str, Any] | None = None,
        inputs: InputsSpec | None = None,
        limits: TemplateLimits | None = None,
        library: PromptLibrary | None = None,
        strip: bool = True,
        drop_empty: bool = True,
        merge: bool = True,
        _line_offset: int = 0,
    ) -> ChatTemplate:
        """A chat template from one source with ``{% role "..." %}`` blocks and ``{% messages x %}``.

        Only whitespace, comments and statements (``set``, ``macro``, ``import``, ``if``, ``for``)
        may stand outside role blocks; role blocks may sit inside ``if`` and ``for`` (e.g. to emit
        few-shot turns) but not inside macros or ``set``/``filter``/``call`` blocks.

        >>> chat = ChatTemplate.from_source(
        ...     '{% role "system" %}Be brief.{% endrole %}{% role "user" %}{{ q }}{% endrole %}'
        ... )
        >>> chat.render(q="Hi")[1]
        Message(role='user', content='Hi')
        """
        if not isinstance(source, str):
            raise ConfigurationError(f"template source must be a str, not {type(source).__name__}")
        self = cls.__new__(cls)
        self._setup(
            source,
            name=name,
            allow_extra=allow_extra,
            defaults=defaults,
            inputs=inputs,
            limits=limits,
            library=library,
            strip=strip,
            drop_empty=drop_empty,
            merge=merge,
            locate=plain_locator(name, _line_offset),
        )
        self.parts = ()
        self.messages = ()
        return self

    def _replace(self, **changes: Any) -> ChatTemplate:
        new = object.__new__(type(self))
        for slot in (*_TemplateBase.__slots__, *ChatTemplate.__slots__):
            if slot != "__dict__":
                object.__setattr__(new, slot, getattr(self, slot))
        for key, value in changes.items():
            object.__setattr__(new, key, value)
        if "inputs" in changes:
            new._input_model = input_model(new.inputs, name=new.name)
        if "limits" in changes:
            new._jinja = compile_source(new._env, new.source, new.limits, new._locate)
        return new

    def partial(self, **values: Any) -> ChatTemplate:
        """A new chat template with some variables fixed in every message."""
        self._check_extra(values)
        return self._replace(_defaults=MappingProxyType({**self._defaults, **values}))

    def __add__(self, other: ChatTemplate) -> ChatTemplate:
        """Messages of ``self`` followed by those of ``other``."""
        if not isinstance(other, ChatTemplate):
            return NotImplemented
        options: dict[str, Any] = {
            "name": "+".join(n for n in (self.name, other.name) if n) or None,
            "allow_extra": self.allow_extra or other.allow_extra,
            "defaults": self._joined_defaults(other),
            "inputs": self.inputs if self.inputs is not None else other.inputs,
            "limits": self.limits,
            "library": self.library or other.library,
            "strip": self.strip,
            "drop_empty": self.drop_empty,
            "merge": self.merge,
        }
        if self.parts and other.parts:
            return ChatTemplate([*self.parts, *other.parts], **options)
        return ChatTemplate.from_source(self.source + "\n" + other.source, **options)

    # -- rendering -------------------------------------------------------------------------------
    def render(self, **values: Any) -> list[Message]:
        """Render to messages; raises a :class:`~promptkit.TemplateError` on any failure.

        A role block that places images (``{{ photo | image }}``) renders to a message whose
        content is its text and image parts in order.
        """
        context = self._context(values)
        if self._jinja.simple:  # no filters: no images
            return self._build(render_jinja(self._jinja, context, self.limits, self._locate), context)
        with collecting() as images:
            text = render_jinja(self._jinja, context, self.limits, self._locate)
        return self._build(text, context, images=images)

    def preview(self, **values: Any) -> Preview:
        """Render for display: roles in colour, substituted values highlighted, images shown."""
        context = self._context(values)
        jt = compile_source(self._env.preview_environment(), self.source, self.limits, self._locate)
        notes: list[str] = []
        with collecting() as images:
            text = render_jinja(jt, context, self.limits, self._locate)
        messages = self._build(text, context, notes, images=images)
        shown: list[ImagePart] = []
        marked: list[tuple[str | None, str, str]] = [
            (m.role, preview_text(m, shown), note) for m, note in zip(messages, notes, strict=True)
        ]
        return Preview(marked, images=tuple(shown))

    def _build(
        self,
        text: str,
        context: Mapping[str, Any],
        notes: list[str] | None = None,
        *,
        images: list[ImagePart] | None = None,
    ) -> list[Message]:
        """Cut the rendered text at the role markers into messages. No value can contain the
        marker's nonce, so every marker in the text came from the template itself."""
        parts = text.split(MARK)
        first = parts[0]
        if first and not first.isspace():
            self._outside(first)
        out: list[Message] = []
        strip, drop_empty, merge = self.strip, self.drop_empty, self.merge
        mergeable = False
        role: str | None = None
        content = ""
        pieces: list[ContentPart] | None = None  # a role block's text and images so far, when it has images
        for i in range(1, len(parts)):
            part = parts[i]
            kind = part[0]
            if kind == IMAGE:
                pieces, content = place_image(
                    pieces, content, part, images, role=role, template=self.name, preview=notes is not None
                )
                continue
            if kind == CLOSE:
                if role is None:
                    raise TemplateSecurityError("unbalanced message marker", template=self.name)
                body = (content.strip() if strip else content) if pieces is None else join_parts(pieces, content, strip)
                pieces = None
                if body or not drop_empty:
                    if merge and mergeable and out[-1].role == role:
                        out[-1] = _message(role, merge_content(out[-1].content, body))
                    else:
                        out.append(_message(role, body))
                        if notes is not None:
                            notes.append("")
                    mergeable = True
                role = None
                rest = part[2:]
                if rest and not rest.isspace():
                    self._outside(rest)
                continue
            if role is not None:
                what = "a role block" if kind == OPEN else "{% messages %}"
                raise TemplateError(f"{what} cannot be inside a role block", template=self.name)
            tag, _, rest = part.partition(END)
            if kind == OPEN:
                role, content = tag[1:], rest
                continue
            spliced = self._spliced(tag[1:], context)
            out.extend(spliced)
            if notes is not None:
                notes.extend("spliced" for _ in spliced)
            mergeable = mergeable and not spliced
            if rest and not rest.isspace():
                self._outside(rest)
        if role is not None:
            raise TemplateSecurityError("unbalanced message marker", template=self.name)
        return out

    def _outside(self, text: str) -> None:
        raise TemplateError(
            f"text outside a role block: {text.strip()[:60]!r}; put it inside {{% role %}}...{{% endrole %}}",
            template=self.name,
        )

    def _spliced(self, spec: str, context: Mapping[str, Any]) -> tuple[Message, ...]:
        optional = spec.endswith("?")
        name = spec.rstrip("?")
        value = context.get(name)
        if value is None:
            if optional:
                return ()
            raise UndefinedVariableError(
                f"missing template variable {name!r} (a list of messages)", variable=name, template=self.name
            )
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TemplateInputError(
                f"{name!r} must be a list of messages, not {type(value).__name__}", template=self.name
            )
        if not value:
            return ()
        try:
            return coerce_messages(value)
        except ConfigurationError as exc:
            raise TemplateInputError(f"{name!r} is not a list of messages: {exc}", template=self.name) from exc

    # -- identity and display --------------------------------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        return (*super()._key(), self.strip, self.drop_empty, self.merge)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        if self.parts:
            roles = ", ".join(p.name if isinstance(p, MessagesPlaceholder) else p[0] for p in self.parts)
            return f"<ChatTemplate{label} [{roles}] variables={sorted(self.variables)}>"
        return f"<ChatTemplate{label} variables={sorted(self.variables)}>"

    def _repr_html_(self) -> str:
        title = f"ChatTemplate {self.name or ''} · variables: {', '.join(sorted(self.variables)) or 'none'}"
        if self.parts:
            blocks = [
                role_block(p.name, highlight_source(p.source()), note="placeholder")
                if isinstance(p, MessagesPlaceholder)
                else role_block(p[0], highlight_source(p[1].source))
                for p in self.parts
            ]
        else:
            blocks = [role_block(None, highlight_source(self.source))]
        return document(blocks, title=title)


@functools.lru_cache(maxsize=512)
def _built_from_pairs(messages: tuple[tuple[str, str], ...], options: tuple[tuple[str, Any], ...]) -> ChatTemplate:
    """A chat template of plain ``(role, text)`` pairs, built once per pairs and options."""
    built = object.__new__(ChatTemplate)
    built._build_pairs(messages, defaults=None, inputs=None, library=None, **dict(options))
    return built

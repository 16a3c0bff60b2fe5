"""``Prompt``: a template, examples, a parser and a backend composed into one typed call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ._errors import ConfigurationError, ParseError, TemplateError, UnsupportedCapabilityError
from ._fewshot import ExampleLike, FewShot, FixedSelector, Selection, Selector, render_examples
from ._messages import Completion, Message, Usage, _messages_html
from ._parsers import FinalOnly, NativeOutputParser, Parser, StreamState, TextParser
from ._templates import ChatTemplate, Template
from .backends import Backend, Params
from .backends import backend as make_backend

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

__all__ = ["Prompt", "Result"]

T = TypeVar("T")
U = TypeVar("U")

ChatPart = tuple[str, "str | Template"] | FewShot
"""An item of a chat prompt given as a list: a ``(role, template)`` pair or the :class:`FewShot` marker."""

EXAMPLES_VAR = "examples"
INSTRUCTIONS_VAR = "format_instructions"


@dataclass(frozen=True, slots=True, kw_only=True)
class Result(Generic[T]):
    """Everything one prompt call produced: the typed value and how it was obtained.

    ``usage`` adds up every attempt's tokens; ``completions`` lists each attempt's reply (more
    than one when an invalid reply was repaired by re-asking); ``examples`` is the
    :class:`Selection` shown, with each example's score and tokens.
    """

    value: T
    messages: tuple[Message, ...]
    completion: Completion
    examples: Selection = field(default_factory=Selection)
    completions: tuple[Completion, ...] = field(default=(), repr=False)

    @property
    def usage(self) -> Usage:
        """Tokens used by all attempts together."""
        total = Usage()
        for completion in self.completions or (self.completion,):
            total = total + completion.usage
        return total

    @property
    def text(self) -> str:
        """The raw text of the reply the value was parsed from."""
        return self.completion.text

    def _repr_html_(self) -> str:
        import html

        value = html.escape(repr(self.value))
        u = self.usage
        shown = self.examples
        examples = (
            f"<details><summary>{len(shown)} example(s)</summary>{shown._repr_html_()}</details>" if shown else ""
        )
        return (
            f"<div><b>value</b> <code>{value}</code>"
            f"<details><summary>{len(self.messages)} message(s) sent</summary>"
            f"{_messages_html(self.messages)}</details>{examples}"
            f"<small>tokens in={u.input_tokens} out={u.output_tokens}</small></div>"
        )


class Prompt(Generic[T]):
    """A prompting strategy as one object: ``complete(**inputs)`` returns a typed value.

    ``template`` is a :class:`Template` (one user message), a :class:`ChatTemplate`, a string, or
    a list of ``(role, template)`` pairs that may hold one :class:`FewShot` marker.
    ``examples`` (a list or a :class:`Selector`) are rendered with ``example_template`` into the
    template variable ``examples``; with a :class:`ChatTemplate` as ``example_template`` each
    example becomes chat turns, inserted at the ``FewShot`` marker or before the last message.
    The parser's format instructions are offered as ``format_instructions``.

    When a reply does not parse, the prompt re-asks the model up to ``repair`` times (default 1),
    sending the bad reply and the parser's error; transport errors are never re-asked here (wrap
    the backend in a retry for those). A parser with native structured output (``PydanticParser``
    with ``mode="native"`` or ``"auto"``) sends ``output_schema`` to backends that support it.

    >>> from promptkit.testing import MockBackend
    >>> p = Prompt("Capital of {{ country }}?", MockBackend(["Paris"]))
    >>> p.complete(country="France")
    'Paris'
    """

    @overload
    def __init__(
        self: Prompt[str],
        template: Template | ChatTemplate | str | Sequence[ChatPart],
        backend: Backend | str | None = None,
        *,
        parser: None = None,
        examples: Selector | Sequence[ExampleLike] | None = None,
        example_template: Template | ChatTemplate | str | None = None,
        example_separator: str = "\n\n",
        params: Params | None = None,
        repair: int = 1,
    ) -> None: ...

    @overload
    def __init__(
        self: Prompt[U],
        template: Template | ChatTemplate | str | Sequence[ChatPart],
        backend: Backend | str | None = None,
        *,
        parser: Parser[U],
        examples: Selector | Sequence[ExampleLike] | None = None,
        example_template: Template | ChatTemplate | str | None = None,
        example_separator: str = "\n\n",
        params: Params | None = None,
        repair: int = 1,
    ) -> None: ...

    def __init__(
        self,
        template: Template | ChatTemplate | str | Sequence[ChatPart],
        backend: Backend | str | None = None,
        *,
        parser: Parser[Any] | None = None,
        examples: Selector | Sequence[ExampleLike] | None = None,
        example_template: Template | ChatTemplate | str | None = None,
        example_separator: str = "\n\n",
        params: Params | None = None,
        repair: int = 1,
    ) -> None:
        if isinstance(repair, bool) or not isinstance(repair, int) or repair < 0:
            raise ConfigurationError(f"repair must be a whole number of re-asks >= 0, not {repair!r}")
        self.repair = repair
        if isinstance(template, str):
            template = Template(template)
        self._examples_at: int | None = None  # where chat-style examples go (-1: before the last message)
        fewshot: FewShot | None = None
        if isinstance(template, (list, tuple)):
            template, self._examples_at, fewshot = _split_fewshot(template)
            if fewshot is not None:
                examples = examples if examples is not None else fewshot.examples
                example_template = example_template if example_template is not None else fewshot.example_template
        if not isinstance(template, (Template, ChatTemplate)):
            raise ConfigurationError(f"template must be a Template, ChatTemplate or str, not {type(template).__name__}")
        self.template = template
        self.backend: Backend | None = make_backend(backend) if isinstance(backend, str) else backend
        self.parser: Parser[T] = parser if parser is not None else TextParser()  # type: ignore[assignment]
        if examples is None or isinstance(examples, Selector):
            self.selector: Selector | None = examples
        else:
            self.selector = FixedSelector(examples)
        if isinstance(example_template, str):
            example_template = Template(example_template, name="example_template")
        self.example_template = example_template
        self.example_separator = example_separator
        if isinstance(example_template, ChatTemplate) and self._examples_at is None:
            self._examples_at = -1
        self._fewshot = FewShot(
            example_template,
            role=fewshot.role if fewshot is not None else "user",
            separator=fewshot.separator if fewshot is not None else example_separator,
        )
        self.params: Mapping[str, Any] = MappingProxyType(dict(params or {}))
        self._check_examples_place(self.selector)

    def _check_examples_place(self, selector: Selector | None) -> None:
        variables = self.template.variables
        if self._examples_at is not None:
            if EXAMPLES_VAR in variables:
                raise ConfigurationError(
                    f"examples are shown as messages here; remove {{{{ {EXAMPLES_VAR} }}}} from the template"
                )
        elif selector is not None and EXAMPLES_VAR not in variables:
            raise ConfigurationError(
                f"examples were given but the template never uses {{{{ {EXAMPLES_VAR} }}}}; "
                "add it where the examples should appear (or a FewShot marker in a chat prompt)"
            )

    # -- building the request -------------------------------------------------------------------
    @property
    def input_variables(self) -> frozenset[str]:
        """The inputs a call must provide (those the prompt fills itself are left out)."""
        return self.template.variables - {EXAMPLES_VAR, INSTRUCTIONS_VAR}

    def _select(self, inputs: Mapping[str, Any]) -> Selection:
        if self.selector is None:
            return Selection()
        return Selection.of(self.selector.select(inputs), selector=type(self.selector).__name__)

    async def _aselect(self, inputs: Mapping[str, Any]) -> Selection:
        aselect = getattr(self.selector, "aselect", None)
        if aselect is None:
            return self._select(inputs)
        return Selection.of(await aselect(inputs), selector=type(self.selector).__name__)

    def _render(self, inputs: Mapping[str, Any], examples: Selection, *, native: bool = False) -> tuple[Message, ...]:
        reserved = {EXAMPLES_VAR, INSTRUCTIONS_VAR} & inputs.keys()
        if reserved:
            raise TemplateError(f"{', '.join(sorted(reserved))} is filled by the prompt; do not pass it as an input")
        values = dict(inputs)
        variables = self.template.variables
        if EXAMPLES_VAR in variables:
            template = self.example_template if isinstance(self.example_template, Template) else None
            values[EXAMPLES_VAR] = render_examples(examples, template, separator=self.example_separator)
        if INSTRUCTIONS_VAR in variables:
            parser = self.parser
            if native and isinstance(parser, NativeOutputParser):
                values[INSTRUCTIONS_VAR] = parser.native_instructions()
            else:
                values[INSTRUCTIONS_VAR] = parser.instructions()
        if isinstance(self.template, ChatTemplate):
            messages = self.template.render(**values)
        else:
            messages = [Message("user", self.template.render(**values))]
        if self._examples_at is not None:
            at = len(messages) - 1 if self._examples_at < 0 else self._examples_at
            messages[at:at] = self._fewshot.messages(examples)
        return tuple(messages)

    def render(self, **inputs: Any) -> list[Message]:
        """The messages a call with ``inputs`` would send, without calling the backend."""
        native = self.backend is not None and self._native_schema(self.backend) is not None
        return list(self._render(inputs, self._select(inputs), native=native))

    def _backend(self) -> Backend:
        if self.backend is None:
            raise ConfigurationError("this Prompt has no backend; pass one or use prompt.with_backend(...)")
        return self.backend

    def _native_schema(self, backend: Backend) -> Any:
        """The ``output_schema`` to send when the parser asks for native output, else ``None``."""
        parser = self.parser
        if not isinstance(parser, NativeOutputParser) or "output_schema" in self.params:
            return None
        supported: frozenset[str] = getattr(backend, "supported_params", frozenset())
        if not parser.uses_native(supported):
            return None
        if "output_schema" not in supported:
            raise UnsupportedCapabilityError(
                f"{type(backend).__name__} has no native structured output (no 'output_schema' in its "
                f"supported_params); use mode='auto' or mode='prompt' on {parser!r}"
            )
        return parser.output_schema()

    def _prepare(self, inputs: Mapping[str, Any]) -> tuple[Backend, Selection, tuple[Message, ...], Params]:
        return self._finish_prepare(inputs, self._select(inputs))

    async def _aprepare(self, inputs: Mapping[str, Any]) -> tuple[Backend, Selection, tuple[Message, ...], Params]:
        return self._finish_prepare(inputs, await self._aselect(inputs))

    def _finish_prepare(
        self, inputs: Mapping[str, Any], examples: Selection
    ) -> tuple[Backend, Selection, tuple[Message, ...], Params]:
        backend = self._backend()
        schema = self._native_schema(backend)
        messages = self._render(inputs, examples, native=schema is not None)
        params: Params = {**self.params}  # type: ignore[typeddict-item]
        if schema is not None:
            params["output_schema"] = schema
        return backend, examples, messages, params

    def _repair_messages(
        self, messages: tuple[Message, ...], bad: Completion, error: ParseError
    ) -> tuple[Message, ...]:
        """The original messages, the invalid reply, and what was wrong with it."""
        note = (
            f"Your reply could not be used: {error.message}\n"
            "Reply again, following the original instructions exactly, with the corrected answer only."
        )
        return (*messages, Message("assistant", bad.text), Message("user", note))

    def _outcome(self, completions: list[Completion], errors: list[ParseError]) -> ParseError | None:
        """``None`` to re-ask, or the final error once the repair budget is spent."""
        if len(completions) <= self.repair:
            return None
        last = errors[-1]
        values = [e.last_value for e in errors if e.last_value is not None]
        n = len(completions)
        return ParseError(
            f"no valid reply after {n} attempt{'s' if n > 1 else ''}: {last.message}",
            text=last.text,
            attempts=[c.text for c in completions],
            last_value=values[-1] if values else None,
            position=last.position,
            completions=tuple(completions),
        )

    def _attempt(
        self,
        messages: tuple[Message, ...],
        completion: Completion,
        completions: list[Completion],
        errors: list[ParseError],
    ) -> tuple[bool, Any]:
        """Record one reply: ``(True, value)`` when it parsed, else ``(False, the conversation to
        send next)``; raises the final :class:`ParseError` once the repair budget is spent."""
        completions.append(completion)
        try:
            return True, self.parser.parse(completion.text)
        except ParseError as err:
            errors.append(err)
            final = self._outcome(completions, errors)
            if final is not None:
                raise final from err
            return False, self._repair_messages(messages, completion, err)

    def _result(
        self, messages: tuple[Message, ...], examples: Selection, value: T, completions: list[Completion]
    ) -> Result[T]:
        return Result(
            value=value,
            messages=messages,
            completion=completions[-1],
            examples=examples,
            completions=tuple(completions),
        )

    # -- calling --------------------------------------------------------------------------------
    def run(self, **inputs: Any) -> Result[T]:
        """Select examples, render, call the backend and parse (re-asking on an invalid reply)."""
        backend, examples, messages, params = self._prepare(inputs)
        return self._run(backend, examples, messages, params, [])

    def _run(
        self,
        backend: Backend,
        examples: Selection,
        messages: tuple[Message, ...],
        params: Params,
        completions: list[Completion],
        *,
        errors: list[ParseError] | None = None,
    ) -> Result[T]:
        errors = errors if errors is not None else []
        conversation = self._repair_messages(messages, completions[-1], errors[-1]) if errors else messages
        while True:
            parsed, outcome = self._attempt(messages, backend.complete(conversation, **params), completions, errors)
            if parsed:
                return self._result(messages, examples, outcome, completions)
            conversation = outcome

    async def arun(self, **inputs: Any) -> Result[T]:
        """Async :meth:`run`."""
        backend, examples, messages, params = await self._aprepare(inputs)
        return await self._arun(backend, examples, messages, params, [])

    async def _arun(
        self,
        backend: Backend,
        examples: Selection,
        messages: tuple[Message, ...],
        params: Params,
        completions: list[Completion],
        *,
        errors: list[ParseError] | None = None,
    ) -> Result[T]:
        errors = errors if errors is not None else []
        conversation = self._repair_messages(messages, completions[-1], errors[-1]) if errors else messages
        while True:
            parsed, outcome = self._attempt(
                messages, await backend.acomplete(conversation, **params), completions, errors
            )
            if parsed:
                return self._result(messages, examples, outcome, completions)
            conversation = outcome

    def complete(self, **inputs: Any) -> T:
        """The parsed, typed value for ``inputs``."""
        return self.run(**inputs).value

    async def acomplete(self, **inputs: Any) -> T:
        """Async :meth:`complete`."""
        return (await self.arun(**inputs)).value

    # -- streaming ------------------------------------------------------------------------------
    def _stream_state(self) -> StreamState[T]:
        make = getattr(self.parser, "stream_state", None)
        if make is not None:
            state: StreamState[T] = make()
            return state
        return FinalOnly(self.parser)

    def stream(self, **inputs: Any) -> Iterator[T]:
        """Stream the reply, yielding partial values as they arrive and the validated value last.

        Previews come from the parser's ``stream_state`` (a partial model, the list items so far,
        the text so far). When the finished reply does not parse, the prompt re-asks without
        streaming (up to ``repair`` times) and yields the repaired value last.

        >>> from promptkit.testing import MockBackend
        >>> p = Prompt("Say hi", MockBackend(["Hello there"], chunk_size=4))
        >>> list(p.stream())[-1]
        'Hello there'
        """
        backend, examples, messages, params = self._prepare(inputs)
        state = self._stream_state()
        with backend.stream(messages, **params) as stream:
            for delta in stream:
                yield from state.feed(delta)
            completion = stream.completion
        try:
            value = state.finish()
        except ParseError as err:
            final = self._outcome([completion], [err])
            if final is not None:
                raise final from err
            yield self._run(backend, examples, messages, params, [completion], errors=[err]).value
            return
        yield value

    async def astream(self, **inputs: Any) -> AsyncIterator[T]:
        """Async :meth:`stream`: ``async for value in prompt.astream(...)``."""
        backend, examples, messages, params = await self._aprepare(inputs)
        state = self._stream_state()
        async with backend.astream(messages, **params) as stream:
            async for delta in stream:
                for value in state.feed(delta):
                    yield value
            completion = stream.completion
        try:
            final_value = state.finish()
        except ParseError as err:
            final = self._outcome([completion], [err])
            if final is not None:
                raise final from err
            yield (await self._arun(backend, examples, messages, params, [completion], errors=[err])).value
            return
        yield final_value

    # -- variants -------------------------------------------------------------------------------
    def _copy(self, **changes: Any) -> Self:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def with_backend(self, backend: Backend | str) -> Self:
        """The same prompt on another backend."""
        return self._copy(backend=make_backend(backend) if isinstance(backend, str) else backend)

    def with_params(self, **params: Unpack[Params]) -> Self:
        """The same prompt with some call parameters added or changed."""
        return self._copy(params=MappingProxyType({**self.params, **params}))

    def with_parser(self, parser: Parser[U]) -> Prompt[U]:
        """The same prompt parsing replies with ``parser``."""
        return self._copy(parser=parser)  # type: ignore[return-value]

    def with_examples(self, examples: Selector | Sequence[ExampleLike] | None) -> Self:
        """The same prompt showing other examples (or none)."""
        selector = examples if examples is None or isinstance(examples, Selector) else FixedSelector(examples)
        self._check_examples_place(selector)
        return self._copy(selector=selector)

    def __repr__(self) -> str:
        backend = self.backend.name if self.backend is not None else None
        return f"<Prompt {self.template!r} backend={backend} parser={self.parser!r}>"

    def _repr_html_(self) -> str:
        import html

        rows = [
            ("backend", self.backend.name if self.backend is not None else "none"),
            ("parser", repr(self.parser)),
            ("examples", repr(self.selector) if self.selector is not None else "none"),
            ("params", ", ".join(f"{k}={v!r}" for k, v in self.params.items()) or "none"),
            ("repair", str(self.repair)),
        ]
        table = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{k}</th><td><code>{html.escape(v)}</code></td></tr>"
            for k, v in rows
        )
        return f"<div><b>Prompt</b><table>{table}</table>{self.template._repr_html_()}</div>"


def _split_fewshot(parts: Sequence[ChatPart]) -> tuple[ChatTemplate, int | None, FewShot | None]:
    """A chat prompt given as a list: its messages, and where the one ``FewShot`` marker stood."""
    markers = [i for i, part in enumerate(parts) if isinstance(part, FewShot)]
    if len(markers) > 1:
        raise ConfigurationError("a chat prompt can hold only one FewShot marker")
    messages = [part for part in parts if not isinstance(part, FewShot)]
    template = ChatTemplate(messages)
    if not markers:
        return template, None, None
    marker = parts[markers[0]]
    assert isinstance(marker, FewShot)
    return template, markers[0], marker

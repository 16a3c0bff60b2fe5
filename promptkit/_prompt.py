"""``Prompt``: a template, examples, a parser and a backend composed into one typed call."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar, overload

from typing_extensions import Self, Unpack

from ._errors import ConfigurationError, TemplateError
from ._fewshot import ExampleLike, FewShot, FixedSelector, Selection, Selector, render_examples
from ._messages import Completion, Message, Usage, _messages_html
from ._parsers import Parser, TextParser
from ._templates import ChatTemplate, Template
from .backends import Backend, Params
from .backends import backend as make_backend

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

    ``usage`` adds up every attempt's tokens; ``completions`` lists each attempt's reply;
    ``examples`` is the :class:`Selection` shown, with each example's score and tokens.
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
    ) -> None:
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

    def _render(self, inputs: Mapping[str, Any], examples: Selection) -> tuple[Message, ...]:
        reserved = {EXAMPLES_VAR, INSTRUCTIONS_VAR} & inputs.keys()
        if reserved:
            raise TemplateError(f"{', '.join(sorted(reserved))} is filled by the prompt; do not pass it as an input")
        values = dict(inputs)
        variables = self.template.variables
        if EXAMPLES_VAR in variables:
            template = self.example_template if isinstance(self.example_template, Template) else None
            values[EXAMPLES_VAR] = render_examples(examples, template, separator=self.example_separator)
        if INSTRUCTIONS_VAR in variables:
            values[INSTRUCTIONS_VAR] = self.parser.instructions()
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
        return list(self._render(inputs, self._select(inputs)))

    def _backend(self) -> Backend:
        if self.backend is None:
            raise ConfigurationError("this Prompt has no backend; pass one or use prompt.with_backend(...)")
        return self.backend

    # -- calling --------------------------------------------------------------------------------
    def run(self, **inputs: Any) -> Result[T]:
        """Select examples, render, call the backend and parse: the full :class:`Result`."""
        examples = self._select(inputs)
        messages = self._render(inputs, examples)
        completion = self._backend().complete(messages, **self.params)
        return self._result(messages, examples, completion)

    async def arun(self, **inputs: Any) -> Result[T]:
        """Async :meth:`run`."""
        examples = await self._aselect(inputs)
        messages = self._render(inputs, examples)
        completion = await self._backend().acomplete(messages, **self.params)
        return self._result(messages, examples, completion)

    def complete(self, **inputs: Any) -> T:
        """The parsed, typed value for ``inputs``."""
        return self.run(**inputs).value

    async def acomplete(self, **inputs: Any) -> T:
        """Async :meth:`complete`."""
        return (await self.arun(**inputs)).value

    def _result(self, messages: tuple[Message, ...], examples: Selection, completion: Completion) -> Result[T]:
        value = self.parser.parse(completion.text)
        return Result(
            value=value,
            messages=messages,
            completion=completion,
            examples=examples,
            completions=(completion,),
        )

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

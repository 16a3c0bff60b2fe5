"""``Prompt``: a template, examples, a parser and a backend composed into one typed call."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar, overload

from typing_extensions import Self, Unpack

from ._errors import ConfigurationError, TemplateError
from ._fewshot import Example, ExampleLike, FixedSelector, Selector, render_examples
from ._messages import Completion, Message, Usage, _messages_html
from ._parsers import Parser, TextParser
from ._templates import ChatTemplate, Template
from .backends import Backend, Params
from .backends import backend as make_backend

__all__ = ["Prompt", "Result"]

T = TypeVar("T")
U = TypeVar("U")

EXAMPLES_VAR = "examples"
INSTRUCTIONS_VAR = "format_instructions"


@dataclass(frozen=True, slots=True, kw_only=True)
class Result(Generic[T]):
    """Everything one prompt call produced: the typed value and how it was obtained.

    ``usage`` adds up every attempt's tokens; ``completions`` lists each attempt's reply.
    """

    value: T
    messages: tuple[Message, ...]
    completion: Completion
    examples: tuple[Example, ...] = ()
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
        return (
            f"<div><b>value</b> <code>{value}</code>"
            f"<details><summary>{len(self.messages)} message(s) sent</summary>"
            f"{_messages_html(self.messages)}</details>"
            f"<small>tokens in={u.input_tokens} out={u.output_tokens}</small></div>"
        )


class Prompt(Generic[T]):
    """A prompting strategy as one object: ``complete(**inputs)`` returns a typed value.

    ``template`` is a :class:`Template` (one user message), a :class:`ChatTemplate` or a string.
    ``examples`` (a list or a :class:`Selector`) are rendered with ``example_template`` into the
    template variable ``examples``; the parser's format instructions are offered as
    ``format_instructions``.

    >>> from promptkit.testing import MockBackend
    >>> p = Prompt("Capital of {{ country }}?", MockBackend(["Paris"]))
    >>> p.complete(country="France")
    'Paris'
    """

    @overload
    def __init__(
        self: Prompt[str],
        template: Template | ChatTemplate | str,
        backend: Backend | str | None = None,
        *,
        parser: None = None,
        examples: Selector | Sequence[ExampleLike] | None = None,
        example_template: Template | str | None = None,
        example_separator: str = "\n\n",
        params: Params | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: Prompt[U],
        template: Template | ChatTemplate | str,
        backend: Backend | str | None = None,
        *,
        parser: Parser[U],
        examples: Selector | Sequence[ExampleLike] | None = None,
        example_template: Template | str | None = None,
        example_separator: str = "\n\n",
        params: Params | None = None,
    ) -> None: ...

    def __init__(
        self,
        template: Template | ChatTemplate | str,
        backend: Backend | str | None = None,
        *,
        parser: Parser[Any] | None = None,
        examples: Selector | Sequence[ExampleLike] | None = None,
        example_template: Template | str | None = None,
        example_separator: str = "\n\n",
        params: Params | None = None,
    ) -> None:
        if isinstance(template, str):
            template = Template(template)
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
        self.params: Mapping[str, Any] = MappingProxyType(dict(params or {}))
        if self.selector is not None and EXAMPLES_VAR not in template.variables:
            raise ConfigurationError(
                f"examples were given but the template never uses {{{{ {EXAMPLES_VAR} }}}}; "
                "add it where the examples should appear"
            )

    # -- building the request -------------------------------------------------------------------
    @property
    def input_variables(self) -> frozenset[str]:
        """The inputs a call must provide (those the prompt fills itself are left out)."""
        return self.template.variables - {EXAMPLES_VAR, INSTRUCTIONS_VAR}

    def _select(self, inputs: Mapping[str, Any]) -> tuple[Example, ...]:
        return tuple(self.selector.select(inputs)) if self.selector is not None else ()

    def _render(self, inputs: Mapping[str, Any], examples: Sequence[Example]) -> tuple[Message, ...]:
        reserved = {EXAMPLES_VAR, INSTRUCTIONS_VAR} & inputs.keys()
        if reserved:
            raise TemplateError(f"{', '.join(sorted(reserved))} is filled by the prompt; do not pass it as an input")
        values = dict(inputs)
        variables = self.template.variables
        if EXAMPLES_VAR in variables:
            values[EXAMPLES_VAR] = render_examples(examples, self.example_template, separator=self.example_separator)
        if INSTRUCTIONS_VAR in variables:
            values[INSTRUCTIONS_VAR] = self.parser.instructions()
        if isinstance(self.template, ChatTemplate):
            return tuple(self.template.render(**values))
        return (Message("user", self.template.render(**values)),)

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
        examples = self._select(inputs)
        messages = self._render(inputs, examples)
        completion = await self._backend().acomplete(messages, **self.params)
        return self._result(messages, examples, completion)

    def complete(self, **inputs: Any) -> T:
        """The parsed, typed value for ``inputs``."""
        return self.run(**inputs).value

    async def acomplete(self, **inputs: Any) -> T:
        """Async :meth:`complete`."""
        return (await self.arun(**inputs)).value

    def _result(
        self, messages: tuple[Message, ...], examples: tuple[Example, ...], completion: Completion
    ) -> Result[T]:
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
        if selector is not None and EXAMPLES_VAR not in self.template.variables:
            raise ConfigurationError(f"the template never uses {{{{ {EXAMPLES_VAR} }}}}")
        return self._copy(selector=selector)

    def __repr__(self) -> str:
        backend = self.backend.name if self.backend is not None else None
        return f"<Prompt {self.template!r} backend={backend} parser={self.parser!r}>"

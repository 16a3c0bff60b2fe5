"""``Prompt``: a template, examples, a parser, a strategy and a backend composed into one typed call."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from ._errors import ConfigurationError, PromptkitError, TemplateError, UnsupportedCapabilityError
from ._fewshot import ExampleLike, FewShot, FixedSelector, Selection, Selector, render_example, render_examples
from ._fitting import Fit, FitReport, Part, coerce_fit
from ._messages import CACHE_TTLS, Message
from ._parsers import ConstrainedParser, NativeOutputParser, Parser, TextParser
from ._result import Result
from ._run import AsyncPromptStream, PromptStream, Run, adrive, drive, finish
from ._strategies import Call, Direct, Strategy, append_to_last_user
from ._templates import ChatTemplate, Template
from ._utils import UNSET, UnsetType
from .backends import ALL_PARAMS, Backend, Params, validate_params
from .backends import backend as make_backend
from .backends._preview import RequestPreview, neutral_body, preview_of

if TYPE_CHECKING:
    import os

    from typing_extensions import Self, Unpack

    from ._batch import BatchEstimate, BatchResult
    from ._batchapi import BatchJob, BatchLimits
    from ._tokens import Tokenizer

__all__ = ["Prompt", "Result"]

T = TypeVar("T")
U = TypeVar("U")

ChatPart = tuple[str, "str | Template"] | FewShot
"""An item of a chat prompt given as a list: a ``(role, template)`` pair or the :class:`FewShot` marker."""

EXAMPLES_VAR = "examples"
_PROBE = "\x00promptkit-cache-probe\x00"  # stands in for an input to see whether the prefix uses it
_PROBES = (_PROBE, None)  # a truthy and a falsy stand-in, so that {% if %} on an input is seen too
INSTRUCTIONS_VAR = "format_instructions"
PARAMS_VAR = "params"
RESERVED = frozenset({EXAMPLES_VAR, INSTRUCTIONS_VAR})

TemplateLike = Template | ChatTemplate | str | Sequence[ChatPart]
ExamplesLike = Selector | Sequence[ExampleLike] | None


class Prompt(Generic[T]):
    """A prompting strategy as one immutable object: ``complete(**inputs)`` returns a typed value.

    ``template`` is a :class:`Template` (one user message), a :class:`ChatTemplate`, a string, or
    a list of ``(role, template)`` pairs that may hold one :class:`FewShot` marker.
    ``examples`` (a list or a :class:`Selector`) are rendered with ``example_template`` into the
    template variable ``examples``; with a :class:`ChatTemplate` as ``example_template`` each
    example becomes chat turns, inserted at the ``FewShot`` marker or before the last message.

    The parser's format instructions fill ``{{ format_instructions }}`` where the template has
    it; otherwise they are appended to the last user message (``append_instructions=False``
    sends them only where the template asks for them). When a reply does not parse, the prompt
    re-asks the model up to ``repair`` times (default 1), sending the bad reply and the parser's
    error; transport errors are never re-asked here (backends retry those). ``strategy`` says
    how the value is obtained: the direct ask (zero- or few-shot) by default, or
    :class:`ChainOfThought`, :class:`SelfConsistency`, :class:`SelfRefine` or your own; swap it
    with :meth:`with_strategy` and nothing else changes. ``cache_prefix`` (``"5m"`` or ``"1h"``)
    marks everything before the last message (system, examples, history) as a provider
    prompt-cache prefix (see :meth:`cache_prefix_variables` and :meth:`cache_miss_variables`). A parser with
    native structured output (``PydanticParser`` with ``mode="native"`` or ``"auto"``) sends
    ``output_schema`` to backends that support it; otherwise a parser that describes its replies
    (``ChoiceParser``, ``RegexParser``, ``PydanticParser``) sends its ``constraint`` to a backend
    with constrained decoding (``backend("vllm:...")``), and the reply is still parsed.

    ``params`` are call parameters for every call (``temperature``, ``max_tokens``, ...); each
    call method also takes ``params={...}`` for one call. A prompt never changes: the ``with_*``
    methods return a new prompt, validated like a new one.

    >>> from promptkit.testing import MockBackend
    >>> p = Prompt("Capital of {{ country }}?", MockBackend(["Paris"]))
    >>> p.complete(country="France", params={"temperature": 0})
    'Paris'
    """

    __slots__ = (
        "_config",
        "_examples_at",
        "_fewshot",
        "_native",
        "_strategy",
        "append_instructions",
        "backend",
        "cache_prefix",
        "example_separator",
        "example_template",
        "fitting",
        "params",
        "parser",
        "repair",
        "selector",
        "template",
    )

    template: Template | ChatTemplate
    backend: Backend | None
    parser: Parser[T]
    selector: Selector | None
    example_template: Template | ChatTemplate | None
    example_separator: str
    params: Mapping[str, Any]
    repair: int
    append_instructions: bool
    cache_prefix: Literal["5m", "1h"] | None
    fitting: Fit | None
    _config: dict[str, Any]
    _examples_at: int | None
    _fewshot: FewShot
    _native: NativeOutputParser | None
    _strategy: Strategy

    @overload
    def __init__(
        self: Prompt[str],
        template: TemplateLike,
        backend: Backend | str | None = None,
        *,
        parser: None = None,
        examples: ExamplesLike = None,
        example_template: Template | ChatTemplate | str | None = None,
        example_separator: str = "\n\n",
        params: Params | None = None,
        repair: int = 1,
        append_instructions: bool = True,
        strategy: Strategy | None = None,
        cache_prefix: Literal["5m", "1h"] | None = None,
        fit: Fit | int | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: Prompt[U],
        template: TemplateLike,
        backend: Backend | str | None = None,
        *,
        parser: Parser[U],
        examples: ExamplesLike = None,
        example_template: Template | ChatTemplate | str | None = None,
        example_separator: str = "\n\n",
        params: Params | None = None,
        repair: int = 1,
        append_instructions: bool = True,
        strategy: Strategy | None = None,
        cache_prefix: Literal["5m", "1h"] | None = None,
        fit: Fit | int | None = None,
    ) -> None: ...

    def __init__(
        self,
        template: TemplateLike,
        backend: Backend | str | None = None,
        *,
        parser: Parser[Any] | None = None,
        examples: ExamplesLike | UnsetType = UNSET,
        example_template: Template | ChatTemplate | str | None = None,
        example_separator: str = "\n\n",
        params: Params | None = None,
        repair: int = 1,
        append_instructions: bool = True,
        strategy: Strategy | None = None,
        cache_prefix: Literal["5m", "1h"] | None = None,
        fit: Fit | int | None = None,
    ) -> None:
        self._setup(
            {
                "template": template,
                "backend": backend,
                "parser": parser,
                "examples": examples,
                "example_template": example_template,
                "example_separator": example_separator,
                "params": params,
                "repair": repair,
                "append_instructions": append_instructions,
                "strategy": strategy,
                "cache_prefix": cache_prefix,
                "fit": fit,
            }
        )

    def _setup(self, config: dict[str, Any]) -> None:
        """The one constructor path: ``__init__`` and every ``with_*`` validate here."""
        put = object.__setattr__
        repair = config["repair"]
        if isinstance(repair, bool) or not isinstance(repair, int) or repair < 0:
            raise ConfigurationError(f"repair must be a whole number of re-asks >= 0, not {repair!r}")
        if not isinstance(config["append_instructions"], bool):
            raise ConfigurationError(
                f"append_instructions must be True or False, not {config['append_instructions']!r}"
            )
        template, examples, example_template, examples_at, fewshot = _resolve_template(config)
        backend = config["backend"]
        if isinstance(backend, str):
            backend = make_backend(backend)
            config = {**config, "backend": backend}  # variants share the backend built once
        if backend is not None and not isinstance(backend, Backend):
            raise ConfigurationError(f"backend must be a Backend or a 'provider:model' string, not {backend!r}")
        parser = config["parser"] if config["parser"] is not None else TextParser()
        if examples is UNSET or examples is None or isinstance(examples, Selector):
            selector: Selector | None = None if examples is UNSET else examples
        else:
            selector = FixedSelector(examples)
        if isinstance(example_template, str):
            example_template = Template(example_template, name="example_template")
        if isinstance(example_template, ChatTemplate) and examples_at is None:
            examples_at = -1
        _check_examples_place(template, examples_at, selector)
        separator = config["example_separator"]
        if not isinstance(separator, str):
            raise ConfigurationError(f"example_separator must be a str, not {separator!r}")
        put(self, "_config", config)
        put(self, "template", template)
        put(self, "backend", backend)
        put(self, "parser", parser)
        # the protocol check costs microseconds; a prompt makes it once, not on every call
        put(self, "_native", parser if isinstance(parser, NativeOutputParser) else None)
        put(self, "selector", selector)
        put(self, "example_template", example_template)
        put(self, "example_separator", separator)
        put(self, "params", MappingProxyType(_check_params(config["params"], backend)))
        put(self, "repair", repair)
        put(self, "append_instructions", config["append_instructions"])
        cache_prefix = config.get("cache_prefix")
        if cache_prefix not in CACHE_TTLS:
            raise ConfigurationError(f"cache_prefix must be '5m', '1h' or None, not {cache_prefix!r}")
        put(self, "cache_prefix", cache_prefix)
        put(self, "fitting", coerce_fit(config.get("fit")))
        put(self, "_strategy", _check_strategy(config["strategy"], self.params, parser, backend))
        put(self, "_examples_at", examples_at)
        put(
            self,
            "_fewshot",
            FewShot(
                example_template,
                role=fewshot.role if fewshot is not None else "user",
                separator=fewshot.separator if fewshot is not None else separator,
            ),
        )

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Prompt cannot be changed; use prompt.with_{name.lstrip('_')}(...) for a new one")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("a Prompt cannot be changed")

    # -- variants -------------------------------------------------------------------------------
    def _replace(self, **changes: Any) -> Any:
        new = object.__new__(type(self))
        new._setup({**self._config, **changes})
        return new

    def with_template(self, template: TemplateLike) -> Self:
        """The same prompt with another template (examples and parser unchanged)."""
        replaced: Self = self._replace(template=template)
        return replaced

    def with_backend(self, backend: Backend | str) -> Self:
        """The same prompt on another backend (its parameters are checked against it)."""
        replaced: Self = self._replace(backend=backend)
        return replaced

    def with_params(self, **params: Unpack[Params]) -> Self:
        """The same prompt with some call parameters added or changed."""
        replaced: Self = self._replace(params={**self.params, **params})
        return replaced

    def with_parser(self, parser: Parser[U]) -> Prompt[U]:
        """The same prompt parsing replies with ``parser``."""
        replaced: Prompt[U] = self._replace(parser=parser)
        return replaced

    def with_examples(self, examples: ExamplesLike) -> Self:
        """The same prompt showing other examples (or none)."""
        replaced: Self = self._replace(examples=examples)
        return replaced

    def with_strategy(self, strategy: Strategy | None) -> Self:
        """The same prompt with another strategy (``None``: the direct ask).

        >>> from promptkit import ChainOfThought
        >>> from promptkit.testing import MockBackend
        >>> p = Prompt("2+2?", MockBackend(["<answer>4</answer>"]))
        >>> p.with_strategy(ChainOfThought()).complete()
        '4'
        """
        replaced: Self = self._replace(strategy=strategy)
        return replaced

    def with_cache_prefix(self, cache_prefix: Literal["5m", "1h"] | None) -> Self:
        """The same prompt with a provider prompt-cache breakpoint before its last message (or none)."""
        replaced: Self = self._replace(cache_prefix=cache_prefix)
        return replaced

    def with_fit(self, fit: Fit | int | None) -> Self:
        """The same prompt fitted into a token budget on every call (``None``: not fitted); see :class:`Fit`."""
        replaced: Self = self._replace(fit=fit)
        return replaced

    def with_repair(self, repair: int) -> Self:
        """The same prompt allowing ``repair`` re-asks when a reply does not parse."""
        replaced: Self = self._replace(repair=repair)
        return replaced

    # -- building the request -------------------------------------------------------------------
    @property
    def strategy(self) -> Strategy:
        """How the prompt gets its value (:class:`Direct` unless another strategy was given)."""
        return self._strategy

    @property
    def input_variables(self) -> frozenset[str]:
        """The inputs a call must provide (those the prompt fills itself are left out)."""
        return self.template.variables - RESERVED

    def _select(self, inputs: Mapping[str, Any]) -> Selection:
        if self.selector is None:
            return Selection()
        return Selection.of(self.selector.select(inputs), selector=type(self.selector).__name__)

    async def _aselect(self, inputs: Mapping[str, Any]) -> Selection:
        aselect = getattr(self.selector, "aselect", None)
        if aselect is None:
            return self._select(inputs)
        return Selection.of(await aselect(inputs), selector=type(self.selector).__name__)

    def _check_inputs(self, inputs: Mapping[str, Any]) -> None:
        reserved = RESERVED & inputs.keys()
        if reserved:
            raise TemplateError(f"{', '.join(sorted(reserved))} is filled by the prompt; do not pass it as an input")
        misplaced = sorted((inputs.keys() & ALL_PARAMS) - self.template.variables)
        if misplaced:
            shown = ", ".join(f"{name!r}: {inputs[name]!r}" for name in misplaced)
            raise ConfigurationError(
                f"{', '.join(misplaced)} is a call parameter, not a template variable; pass "
                f"params={{{shown}}} to this call, or set it on the prompt with prompt.with_params(...)"
            )

    def _render(self, inputs: Mapping[str, Any], examples: Selection, *, native: bool = False) -> tuple[Message, ...]:
        self._check_inputs(inputs)
        values = dict(inputs)
        variables = self.template.variables
        if EXAMPLES_VAR in variables:
            template = self.example_template if isinstance(self.example_template, Template) else None
            values[EXAMPLES_VAR] = render_examples(examples, template, separator=self.example_separator)
        native_parser = self._native
        instructions = (
            native_parser.native_instructions() if native and native_parser is not None else self.parser.instructions()
        )
        if INSTRUCTIONS_VAR in variables:
            values[INSTRUCTIONS_VAR] = instructions
        if isinstance(self.template, ChatTemplate):
            messages = self.template.render(**values)
        else:
            messages = [Message("user", self.template.render(**values))]
        if instructions and self.append_instructions and INSTRUCTIONS_VAR not in variables:
            append_to_last_user(messages, instructions)
        if self._examples_at is not None:
            at = len(messages) - 1 if self._examples_at < 0 else self._examples_at
            messages[at:at] = self._fewshot.messages(examples)
        if self.cache_prefix is not None and len(messages) > 1:
            messages[-2] = dataclasses.replace(messages[-2], cache=self.cache_prefix)
        return tuple(messages)

    def render(self, **inputs: Any) -> list[Message]:
        """The messages a call with ``inputs`` would send, without calling the backend (fitted
        into the prompt's budget when it has one, see :meth:`with_fit`)."""
        native = self.backend is not None and self._native_schema(self.backend, self.params) is not None
        examples = self._select(inputs)
        if self.fitting is not None:
            return list(self._render_fitted(inputs, examples, self.fitting, self.params, native=native)[1].messages)
        return list(self._render(inputs, examples, native=native))

    def fit(
        self,
        budget: int | Fit | None = None,
        *,
        reserve: int | None = None,
        parts: Mapping[str, Part] | None = None,
        **inputs: Any,
    ) -> FitReport:
        """Render ``inputs`` into ``budget`` tokens, keeping ``reserve`` for the answer: the
        :class:`FitReport` of what was kept, cut and dropped, whose ``messages`` are what to send.

        Without ``budget`` the prompt's own :class:`Fit` is used; ``reserve`` and ``parts``
        override it. Examples are selected first and fitted after. See docs/fitting.md.

        >>> from promptkit.testing import MockBackend
        >>> p = Prompt("{% part 'doc' truncate='end' %}{{ doc }}{% endpart %} Summarise.", MockBackend())
        >>> report = p.fit(30, doc="word " * 100)
        >>> report.tokens <= 30, report.row("doc").action
        (True, 'cut')
        """
        if isinstance(budget, Fit):
            base = budget
        elif budget is not None:
            base = Fit(budget=budget) if self.fitting is None else dataclasses.replace(self.fitting, budget=budget)
        elif self.fitting is not None:
            base = self.fitting
        else:
            raise ConfigurationError("fit() needs a budget: prompt.fit(8000, ...), or a prompt built with fit=")
        if reserve is not None or parts is not None:
            base = Fit(
                budget=base.budget,
                reserve=base.reserve if reserve is None else reserve,
                parts={**base.parts, **(parts or {})},
                model=base.model,
            )
        native = self.backend is not None and self._native_schema(self.backend, self.params) is not None
        return self._render_fitted(inputs, self._select(inputs), base, self.params, native=native)[1]

    def _tokenizer(self, fit: Fit) -> Tokenizer:
        """The tokenizer a fit counts with: the fit's model, else the backend's (as previews count)."""
        from ._tokens import get_tokenizer
        from .backends._ratelimit import _model_of

        if fit.model is not None:
            return get_tokenizer(model=fit.model)
        return get_tokenizer(model=_model_of(self.backend.name if self.backend is not None else "gpt-4o-mini"))

    def _render_fitted(
        self,
        inputs: Mapping[str, Any],
        examples: Selection,
        fit: Fit,
        params: Mapping[str, Any],
        *,
        native: bool = False,
    ) -> tuple[Selection, FitReport]:
        """:meth:`_render` fitted into ``fit``: the examples kept and the report (with the messages)."""
        from ._templates._fit import Extra, fit_template, tag_units

        self._check_inputs(inputs)
        values = dict(inputs)
        variables = self.template.variables
        part = fit.parts.get(EXAMPLES_VAR)
        order = _worst_first(examples)
        if EXAMPLES_VAR in variables:
            template = self.example_template if isinstance(self.example_template, Template) else None
            if part is not None and examples:
                units = [render_example(e, template) for e in examples]
                values[EXAMPLES_VAR] = tag_units(EXAMPLES_VAR, part, units, self.example_separator, order)
            else:
                values[EXAMPLES_VAR] = render_examples(examples, template, separator=self.example_separator)
        native_parser = self._native
        instructions = (
            native_parser.native_instructions() if native and native_parser is not None else self.parser.instructions()
        )
        if INSTRUCTIONS_VAR in variables:
            values[INSTRUCTIONS_VAR] = instructions
        extras = []
        if self._examples_at is not None and part is not None and examples:
            extras.append(
                Extra(
                    name=EXAMPLES_VAR,
                    part=part,
                    units=len(examples),
                    order=order,
                    render=lambda kept: self._fewshot.messages(_subset(examples, kept)),
                )
            )

        def finish(messages: list[Message], kept: Mapping[str, tuple[int, ...]]) -> list[Message]:
            if instructions and self.append_instructions and INSTRUCTIONS_VAR not in variables:
                append_to_last_user(messages, instructions)
            if self._examples_at is not None:
                at = len(messages) - 1 if self._examples_at < 0 else self._examples_at
                shown = _subset(examples, kept[EXAMPLES_VAR]) if EXAMPLES_VAR in kept else examples
                messages[at:at] = self._fewshot.messages(shown)
            if self.cache_prefix is not None and len(messages) > 1:
                messages[-2] = dataclasses.replace(messages[-2], cache=self.cache_prefix)
            return messages

        reserve = fit.reserve
        if reserve is None:
            limit = params.get("max_tokens")
            reserve = limit if isinstance(limit, int) and not isinstance(limit, bool) else 0
        report, kept = fit_template(
            self.template,
            values,
            fit=fit,
            reserve=reserve,
            tokenizer=self._tokenizer(fit),
            extras=extras,
            known=frozenset({EXAMPLES_VAR}),
            finish=finish,
        )
        shown = _subset(examples, kept[EXAMPLES_VAR]) if EXAMPLES_VAR in kept else examples
        return shown, report

    def _native_schema(self, backend: Backend, params: Mapping[str, Any]) -> Any:
        """The ``output_schema`` to send when the parser asks for native output, else ``None``."""
        parser = self._native
        if parser is None or "output_schema" in params:
            return None
        supported = backend.supported_params
        if not parser.uses_native(supported):
            return None
        if "output_schema" not in supported:
            raise UnsupportedCapabilityError(
                f"{type(backend).__name__} has no native structured output (no 'output_schema' in its "
                f"supported_params); use mode='auto' or mode='prompt' on {parser!r}"
            )
        return parser.output_schema()

    def _constraint(self, backend: Backend, params: Mapping[str, Any]) -> Any:
        """The parser's ``constraint`` when the backend decodes under one and none is set yet."""
        parser = self.parser
        if (
            "constraint" not in backend.supported_params
            or "constraint" in params
            or "output_schema" in params
            or not isinstance(parser, ConstrainedParser)
        ):
            return None
        return parser.constraint()

    def _start(
        self, inputs: Mapping[str, Any], params: Params | None, examples: Selection, *, traced: bool = True
    ) -> Run[T]:
        if self.backend is None:
            raise ConfigurationError("this Prompt has no backend; pass one or use prompt.with_backend(...)")
        backend = self.backend
        merged: dict[str, Any] = {**self.params, **_check_call_params(params)}
        schema = self._native_schema(backend, merged)
        report = None
        if self.fitting is not None:
            examples, report = self._render_fitted(inputs, examples, self.fitting, merged, native=schema is not None)
            messages = report.messages
        else:
            messages = self._render(inputs, examples, native=schema is not None)
        if schema is not None:
            merged["output_schema"] = schema
        else:
            constraint = self._constraint(backend, merged)
            if constraint is not None:
                merged["constraint"] = constraint
        return Run(
            backend=backend,
            parser=self.parser,
            strategy=self._strategy,
            messages=messages,
            examples=examples,
            params=merged,
            repair=self.repair,
            inputs=inputs,
            template=self.template,
            traced=traced,
            fit=report,
        )

    def _run(self, inputs: Mapping[str, Any], params: Params | None) -> Run[T]:
        return self._start(inputs, params, self._select(inputs))

    async def _arun(self, inputs: Mapping[str, Any], params: Params | None) -> Run[T]:
        return self._start(inputs, params, await self._aselect(inputs))

    def preview(self, *, params: Params | None = None, stream: bool = False, **inputs: Any) -> RequestPreview:
        """The first request a call with ``inputs`` would send, built exactly as a call builds it
        (examples, rendering, format instructions, native schema, the strategy's first step), but
        not sent: a :class:`~promptkit.backends.RequestPreview` with the backend's wire format,
        token count and estimated cost. ``stream=True`` previews what :meth:`stream` sends.

        >>> from promptkit.testing import MockBackend
        >>> Prompt("Capital of {{ country }}?", MockBackend()).preview(country="France").body["messages"]
        [{'role': 'user', 'content': 'Capital of France?'}]
        """
        run = self._start(inputs, params, self._select(inputs), traced=False)
        try:
            step = run.send(None)
            call = step if isinstance(step, Call) else next(iter(step), None) if isinstance(step, Sequence) else None
            if call is None:
                raise ConfigurationError(f"the strategy {self._strategy.name!r} sends no request to preview")
            request = run.request(call)
            backend = run.backend_for(call)
        finally:
            run.close()
        preview_request = getattr(backend, "preview_request", None)
        if preview_request is None:  # a Backend that is not a BaseBackend: the neutral form
            body = neutral_body(request)
            if stream and call.stream:
                body["stream"] = True
            result = preview_of(request, body=body, model=None)
        else:
            result = preview_request(request, stream=stream and call.stream)
        if self.cache_prefix is not None:
            result = dataclasses.replace(result, prefix_variables=self.cache_prefix_variables(**inputs))
        if run.fit is not None:
            result = dataclasses.replace(result, fit=run.fit)
        return result

    # -- the cached prefix ----------------------------------------------------------------------
    def _prefix(self, inputs: Mapping[str, Any], examples: Selection) -> tuple[Message, ...] | None:
        """The messages before the last one, as rendered (``None`` when rendering fails)."""
        try:
            return self._render(inputs, examples)[:-1]
        except PromptkitError:
            return None

    def cache_prefix_variables(self, **inputs: Any) -> tuple[str, ...]:
        """The inputs rendered before the last message: the ones that change the cached prefix.

        Each input is replaced in turn by probe values (a marker string, then ``None``); one that
        changes (or breaks) the messages before the last is part of the prefix. ``"examples"`` is named when the
        selected examples are. A change to any of these is a provider cache miss.

        >>> from promptkit.testing import MockBackend
        >>> p = Prompt([("system", "You are {{ persona }}."), ("user", "{{ q }}")], MockBackend(), cache_prefix="5m")
        >>> p.cache_prefix_variables(persona="a poet", q="Hi")
        ('persona',)
        """
        examples = self._select(inputs)
        base = self._prefix(inputs, examples)
        found = [
            name for name in inputs if any(self._prefix({**inputs, name: probe}, examples) != base for probe in _PROBES)
        ]
        if examples and self._prefix(inputs, Selection()) != base:
            found.append(EXAMPLES_VAR)
        return tuple(found)

    def cache_miss_variables(self, first: Mapping[str, Any], second: Mapping[str, Any]) -> tuple[str, ...]:
        """Why two calls sent different cached prefixes: the inputs (and ``"examples"``) whose
        change alone changes the prefix; empty when the prefixes are the same.

        >>> from promptkit.testing import MockBackend
        >>> p = Prompt([("system", "Today is {{ day }}."), ("user", "{{ q }}")], MockBackend(), cache_prefix="1h")
        >>> p.cache_miss_variables({"day": "Monday", "q": "a"}, {"day": "Tuesday", "q": "b"})
        ('day',)
        """
        chosen = self._select(first), self._select(second)
        base = self._prefix(first, chosen[0])
        if base == self._prefix(second, chosen[1]):
            return ()
        names = [
            k for k in (*first, *(k for k in second if k not in first)) if first.get(k, _PROBE) != second.get(k, _PROBE)
        ]
        found = []
        for name in names:
            changed = {**first, name: second[name]} if name in second else {k: v for k, v in first.items() if k != name}
            if self._prefix(changed, chosen[0]) != base:
                found.append(name)
        if chosen[0] != chosen[1] and self._prefix(first, chosen[1]) != base:
            found.append(EXAMPLES_VAR)
        return tuple(found)

    # -- calling --------------------------------------------------------------------------------
    def run(self, *, params: Params | None = None, **inputs: Any) -> Result[T]:
        """Select examples, render, call the backend and parse: the whole :class:`Result`.

        ``params`` are call parameters for this call only, laid over the prompt's.
        """
        return finish(drive(self._run(inputs, params), stream=False))

    async def arun(self, *, params: Params | None = None, **inputs: Any) -> Result[T]:
        """Async :meth:`run`."""
        run = await self._arun(inputs, params)
        results: list[Result[T]] = []
        async for _ in adrive(run, stream=False, done=results.append):
            pass  # pragma: no cover - a call without streaming yields no previews
        return results[0]

    def complete(self, *, params: Params | None = None, **inputs: Any) -> T:
        """The parsed, typed value for ``inputs`` (``params`` as in :meth:`run`)."""
        return self.run(params=params, **inputs).value

    async def acomplete(self, *, params: Params | None = None, **inputs: Any) -> T:
        """Async :meth:`complete`."""
        return (await self.arun(params=params, **inputs)).value

    # -- many calls ------------------------------------------------------------------------------
    def batch(
        self,
        inputs: Iterable[Mapping[str, Any]],
        *,
        params: Params | None = None,
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        max_tokens_total: int | None = None,
        max_cost: float | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
    ) -> BatchResult[T]:
        """Call the prompt once per mapping of ``inputs``: a :class:`BatchResult` in input order.

        A failed item keeps its error and never stops the others (test guards do: a
        :class:`GuardError` is raised). Up to ``max_concurrency`` calls run at once, in worker
        threads (no event loop is started, so this works inside Jupyter).
        ``requests_per_minute``/``tokens_per_minute`` limit the backend, shared by every batch on
        it; ``max_tokens_total`` and ``max_cost`` (USD) stop the batch before a request could pass
        them (items not sent are ``skipped``; they need ``max_tokens``). ``checkpoint`` names a JSON-lines file of
        finished items: a re-run sends only the others. ``progress`` shows a tqdm bar (``None``:
        when stderr is a terminal or in a notebook). Ctrl-C returns what finished, the rest
        ``cancelled``. See docs/batch.md.

        >>> from promptkit.testing import MockBackend
        >>> p = Prompt("Capital of {{ country }}?", MockBackend(["Paris", "Rome"]))
        >>> p.batch([{"country": "France"}, {"country": "Italy"}], progress=False).values
        ['Paris', 'Rome']
        """
        from ._batch import run_batch

        return run_batch(
            self,
            inputs,
            params=params,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            max_tokens_total=max_tokens_total,
            max_cost=max_cost,
            checkpoint=checkpoint,
            progress=progress,
        )

    async def abatch(
        self,
        inputs: Iterable[Mapping[str, Any]],
        *,
        params: Params | None = None,
        max_concurrency: int = 8,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        max_tokens_total: int | None = None,
        max_cost: float | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
    ) -> BatchResult[T]:
        """Async :meth:`batch` (calls through :meth:`arun`); a cancelled task returns what finished."""
        from ._batch import run_abatch

        return await run_abatch(
            self,
            inputs,
            params=params,
            max_concurrency=max_concurrency,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            max_tokens_total=max_tokens_total,
            max_cost=max_cost,
            checkpoint=checkpoint,
            progress=progress,
        )

    def estimate_batch(
        self,
        inputs: Iterable[Mapping[str, Any]],
        *,
        params: Params | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
    ) -> BatchEstimate:
        """What :meth:`batch` would send (calls, input and output tokens), counted without sending."""
        from ._batch import estimate_batch

        return estimate_batch(self, inputs, params=params, checkpoint=checkpoint)

    def submit_batch(
        self,
        inputs: Iterable[Mapping[str, Any]],
        *,
        params: Params | None = None,
        limits: BatchLimits | None = None,
        metadata: Mapping[str, str] | None = None,
        save: str | os.PathLike[str] | None = None,
    ) -> BatchJob[T]:
        """Send every input through the provider's batch API (OpenAI's Batch API, Anthropic's
        Message Batches): a :class:`BatchJob` to poll, save, resume elsewhere and collect.

        Each request is built exactly as :meth:`complete` builds it; nothing is uploaded when an
        input cannot be rendered or the backend has no batch API. The requests are split into
        as many provider batches as the providers' limits (or the lower ``limits``) need.
        ``save`` writes the job to that JSON file (and every later round too), for
        :meth:`BatchJob.load` in another process; ``metadata`` labels OpenAI's batches (Anthropic's
        take none). Replies that need another call (repair, a strategy's next turn) go out in a
        next round of batches. Results cost the batch rates. See docs/batch-api.md.

        >>> from promptkit.backends.anthropic import AnthropicBackend
        >>> from promptkit.testing import ProviderServer
        >>> with ProviderServer(default="4") as server, AnthropicBackend(
        ...     model="claude-haiku-4-5", base_url=server.anthropic_base_url, api_key="test"
        ... ) as llm:
        ...     job = Prompt("{{ a }}+{{ b }}?", llm).submit_batch([{"a": 2, "b": 2}])
        ...     job.wait(sleep=lambda seconds: None)[0].value
        '4'
        """
        from ._batchapi import submit_batch

        return submit_batch(self, inputs, params=params, limits=limits, metadata=metadata, save=save)

    async def asubmit_batch(
        self,
        inputs: Iterable[Mapping[str, Any]],
        *,
        params: Params | None = None,
        limits: BatchLimits | None = None,
        metadata: Mapping[str, str] | None = None,
        save: str | os.PathLike[str] | None = None,
    ) -> BatchJob[T]:
        """Async :meth:`submit_batch`: rendering and the upload run in a worker thread."""
        import asyncio

        from ._batchapi import submit_batch

        return await asyncio.to_thread(
            submit_batch, self, inputs, params=params, limits=limits, metadata=metadata, save=save
        )

    def stream(self, *, params: Params | None = None, **inputs: Any) -> PromptStream[T]:
        """Stream the reply: a :class:`PromptStream` of partial values, the validated value last.

        Previews come from the parser's ``stream_state`` (a partial model, the list items so far,
        the text so far). When the finished reply does not parse, the prompt re-asks without
        streaming (up to ``repair`` times) and yields the repaired value last. Once the stream is
        finished, ``stream.result`` is the whole :class:`Result`, usage included.

        >>> from promptkit.testing import MockBackend
        >>> p = Prompt("Say hi", MockBackend(["Hello there"], chunk_size=4))
        >>> list(p.stream())[-1]
        'Hello there'
        """
        self._check_streams()
        return PromptStream(drive(self._run(inputs, params), stream=True))

    def astream(self, *, params: Params | None = None, **inputs: Any) -> AsyncPromptStream[T]:
        """Async :meth:`stream`: ``async for value in prompt.astream(...)``, then ``.result``."""
        self._check_streams()

        def start(done: Callable[[Result[T]], None]) -> AsyncIterator[T]:
            return self._astream(inputs, params, done)

        return AsyncPromptStream(start)

    async def _astream(
        self, inputs: Mapping[str, Any], params: Params | None, done: Callable[[Result[T]], None]
    ) -> AsyncIterator[T]:
        run = await self._arun(inputs, params)
        steps = adrive(run, stream=True, done=done)
        try:
            async for value in steps:
                yield value
        finally:
            await steps.aclose()  # closed with this stream, so its connection is released now

    def _check_streams(self) -> None:
        if not self._strategy.streams:
            raise UnsupportedCapabilityError(
                f"{self._strategy!r} cannot stream: its value is known only once every call has returned; "
                "use run() or complete() (or arun()/acomplete())"
            )

    # -- display --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        backend = self.backend.name if self.backend is not None else None
        strategy = "" if self._strategy is _DIRECT else f" strategy={self._strategy!r}"
        return f"<Prompt {self.template!r} backend={backend} parser={self.parser!r}{strategy}>"

    def _repr_html_(self) -> str:
        import html

        rows = [
            ("backend", self.backend.name if self.backend is not None else "none"),
            ("parser", repr(self.parser)),
            ("examples", repr(self.selector) if self.selector is not None else "none"),
            ("params", ", ".join(f"{k}={v!r}" for k, v in self.params.items()) or "none"),
            ("repair", str(self.repair)),
            ("strategy", repr(self._strategy)),
        ]
        table = "".join(
            f"<tr><th style='text-align:left;padding-right:1em'>{k}</th><td><code>{html.escape(v)}</code></td></tr>"
            for k, v in rows
        )
        return f"<div><b>Prompt</b><table>{table}</table>{self.template._repr_html_()}</div>"


def _resolve_template(
    config: Mapping[str, Any],
) -> tuple[Template | ChatTemplate, Any, Any, int | None, FewShot | None]:
    """The template, the examples and their template, where chat examples go, and the marker."""
    template = config["template"]
    examples = config["examples"]
    example_template = config["example_template"]
    if isinstance(template, str):
        template = Template(template)
    examples_at: int | None = None  # where chat-style examples go (-1: before the last message)
    fewshot: FewShot | None = None
    if isinstance(template, (list, tuple)):
        template, examples_at, fewshot = _split_fewshot(template)
        if fewshot is not None:
            examples = fewshot.examples if examples is UNSET else examples
            example_template = example_template if example_template is not None else fewshot.example_template
    if not isinstance(template, (Template, ChatTemplate)):
        raise ConfigurationError(f"template must be a Template, ChatTemplate or str, not {type(template).__name__}")
    if PARAMS_VAR in template.variables:
        raise ConfigurationError(
            f"the template uses {{{{ {PARAMS_VAR} }}}}, but {PARAMS_VAR!r} is the keyword for per-call "
            "parameters in Prompt calls; rename the variable"
        )
    return template, examples, example_template, examples_at, fewshot


def _worst_first(examples: Selection) -> list[int]:
    """The order fitting drops examples in: lowest score first, as the token-budget selector
    values them (an example without a score is worth ``1 / (1 + rank)``); ties, the later first."""
    values = [s if s is not None else 1.0 / (1 + rank) for rank, s in enumerate(examples.scores)]
    return sorted(range(len(examples)), key=lambda i: (values[i], -i))


def _subset(examples: Selection, kept: Sequence[int]) -> Selection:
    """The picks at ``kept`` (in their original order), with their scores and reasons."""
    return Selection(
        [examples[i] for i in kept],
        scores=[examples.scores[i] for i in kept],
        tokens=[examples.tokens[i] for i in kept],
        indices=[examples.indices[i] for i in kept],
        reasons=[examples.reasons[i] for i in kept],
        selector=examples.selector,
    )


def _check_strategy(strategy: Any, params: Mapping[str, Any], parser: Parser[Any], backend: Any) -> Strategy:
    """The prompt's strategy, after it has checked the prompt's settings."""
    if strategy is None:
        return _DIRECT
    if not callable(getattr(strategy, "plan", None)) or not isinstance(getattr(strategy, "name", None), str):
        raise ConfigurationError(
            f"strategy must be a Strategy (an object with a name and a plan(context) method), not {strategy!r}"
        )
    check = getattr(strategy, "check", None)
    if check is not None:
        check(params=params, parser=parser, backend=backend)
    checked: Strategy = strategy
    return checked


_DIRECT = Direct()


def _check_params(params: Mapping[str, Any] | None, backend: Backend | None) -> dict[str, Any]:
    """The prompt's parameters, checked against its backend (or against every known name)."""
    params = _check_call_params(params)
    if backend is None:
        validate_params(params, supported=ALL_PARAMS, backend="Prompt")
    else:
        validate_params(params, supported=backend.supported_params, backend=type(backend).__name__)
    return dict(params)


def _check_call_params(params: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ConfigurationError(f"params must be a mapping of call parameters, not {params!r}")
    return params


def _check_examples_place(
    template: Template | ChatTemplate, examples_at: int | None, selector: Selector | None
) -> None:
    variables = template.variables
    if examples_at is not None:
        if EXAMPLES_VAR in variables:
            raise ConfigurationError(
                f"examples are shown as messages here; remove {{{{ {EXAMPLES_VAR} }}}} from the template"
            )
    elif selector is not None and EXAMPLES_VAR not in variables:
        raise ConfigurationError(
            f"examples were given but the template never uses {{{{ {EXAMPLES_VAR} }}}}; "
            "add it where the examples should appear (or a FewShot marker in a chat prompt)"
        )


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

"""``Template``: one Jinja2 string, compiled once, rendered in the sandbox."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from .._errors import ConfigurationError, TemplateSyntaxError, UnexpectedVariableError
from .._utils import UNSET, Unset
from ._compile import Compiled, Locator, compile_source, find_variables, plain_locator, render_jinja
from ._display import document, highlight_source, highlight_values, role_block
from ._images import unmark_images
from ._inputs import input_model, validate_inputs
from ._limits import DEFAULT_LIMITS, TemplateLimits
from ._sandbox import DEFAULT_ENV, HL_END, HL_START, MARK, PromptEnvironment

if TYPE_CHECKING:
    import pydantic
    from typing_extensions import Self

    from .._fitting import Fit, FitReport
    from .._messages import ImagePart
    from .._tokens import FitResult
    from ._inputs import InputsSpec
    from ._library import PromptLibrary

__all__ = ["Preview", "Template", "fit_values", "freeze"]


def freeze(values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A hashable key for values that may be unhashable (lists, dicts): their sorted reprs."""
    return tuple(sorted((k, repr(v)) for k, v in values.items()))


def _inputs_key(inputs: InputsSpec | None) -> object:
    if inputs is None or isinstance(inputs, type):
        return inputs
    return freeze(inputs)


class Preview:
    """A rendered template for display: the text (or messages) with substituted values marked.

    ``parts`` holds ``(role, text)`` pairs (``role`` is ``None`` for a plain template); the text
    contains no marks, and an image stands in it as a label such as ``[image photo 640x480]``.
    ``images`` holds those images in order. ``_repr_html_`` shows roles in colour, values
    highlighted and images as thumbnails.
    """

    __slots__ = ("_marked", "images", "parts")

    def __init__(self, marked: list[tuple[str | None, str, str]], *, images: tuple[ImagePart, ...] = ()) -> None:
        self._marked = tuple(marked)
        self.images = images
        self.parts: tuple[tuple[str | None, str], ...] = tuple(
            (role, unmark_images(_unmark(text), images)) for role, text, _note in self._marked
        )

    def __str__(self) -> str:
        return "\n\n".join(text if role is None else f"[{role}]\n{text}" for role, text in self.parts)

    def __repr__(self) -> str:
        return f"<Preview {str(self)[:80]!r}>"

    def _repr_html_(self) -> str:
        return document(
            role_block(role, unmark_images(highlight_values(text), self.images, html=True), note=note)
            for role, text, note in self._marked
        )


def _unmark(text: str) -> str:
    return text.replace(HL_START, "").replace(HL_END, "")


class _TemplateBase:
    """What :class:`Template` and :class:`ChatTemplate` share: configuration, variables, declared
    inputs, token fitting, immutability and identity. Subclasses add how they render."""

    __slots__ = (
        "__dict__",
        "_defaults",
        "_env",
        "_input_model",
        "_jinja",
        "_locate",
        "allow_extra",
        "inputs",
        "library",
        "limits",
        "name",
        "source",
    )

    source: str
    name: str | None
    allow_extra: bool
    inputs: InputsSpec | None
    library: PromptLibrary | None
    limits: TemplateLimits
    _env: PromptEnvironment
    _defaults: Mapping[str, Any]
    _input_model: type[pydantic.BaseModel] | None
    _locate: Locator
    _jinja: Compiled

    def _configure(
        self,
        source: str,
        *,
        name: str | None,
        allow_extra: bool,
        defaults: Mapping[str, Any] | None,
        inputs: InputsSpec | None,
        limits: TemplateLimits | None,
        library: PromptLibrary | None,
        locate: Locator,
    ) -> None:
        if limits is not None and not isinstance(limits, TemplateLimits):
            raise ConfigurationError(f"limits must be a TemplateLimits, not {type(limits).__name__}")
        put = object.__setattr__  # set once while building; __setattr__ guards the finished object
        put(self, "source", source)
        put(self, "name", name)
        put(self, "allow_extra", allow_extra)
        put(self, "inputs", inputs)
        put(self, "library", library)
        resolved = limits or (library.limits if library is not None else DEFAULT_LIMITS)
        put(self, "limits", resolved)
        env = library.environment if library is not None else DEFAULT_ENV
        put(self, "_env", env)
        put(self, "_defaults", MappingProxyType(dict(defaults or {})))
        put(self, "_input_model", input_model(inputs, name=name))
        put(self, "_locate", locate)
        put(self, "_jinja", compile_source(env, source, resolved, locate))

    def _replace(self, **changes: Any) -> Self:
        raise NotImplementedError

    def render(self, **values: Any) -> Any:
        raise NotImplementedError

    # -- introspection ---------------------------------------------------------------------------
    @cached_property
    def _all_variables(self) -> frozenset[str]:
        return find_variables(self._env, self.source)

    @cached_property
    def _known(self) -> frozenset[str]:
        declared = self._input_model.model_fields.keys() if self._input_model is not None else ()
        return self._all_variables | frozenset(declared)

    @property
    def variables(self) -> frozenset[str]:
        """Variables the template reads (in output, loops, conditions and message placeholders),
        not fixed by ``partial()``."""
        return self._all_variables - self._defaults.keys()

    @property
    def defaults(self) -> Mapping[str, Any]:
        """Values fixed by ``partial()``."""
        return self._defaults

    def with_limits(self, limits: TemplateLimits) -> Self:
        """The same template under other :class:`TemplateLimits`."""
        return self._replace(limits=limits)

    def _joined_defaults(self, other: _TemplateBase) -> dict[str, Any]:
        """The fixed values of ``self + other``, refusing joins that cannot be meant."""
        if other.library is not None and self.library is not None and other.library is not self.library:
            raise ConfigurationError("cannot join templates from two different PromptLibrary objects")
        clash = {k for k in self._defaults.keys() & other._defaults.keys() if self._defaults[k] != other._defaults[k]}
        if clash:
            raise ConfigurationError(f"templates fix different values for {', '.join(sorted(clash))}")
        return {**self._defaults, **other._defaults}

    # -- rendering -------------------------------------------------------------------------------
    def _check_extra(self, values: Mapping[str, Any]) -> None:
        if not self.allow_extra and not self._known.issuperset(values):
            raise UnexpectedVariableError(
                sorted(values.keys() - self._known), template=self.name or "<template>", known=self._known
            )

    def _context(self, values: Mapping[str, Any]) -> Mapping[str, Any]:
        self._check_extra(values)
        context = {**self._defaults, **values} if self._defaults else values
        if self._input_model is not None:
            context = validate_inputs(self._input_model, context, name=self.name)
        return context

    def fit(
        self,
        *,
        budget: int,
        variable: str,
        model: str | Unset = UNSET,
        encoding: str | Unset = UNSET,
        cut: Literal["end", "start", "middle"] = "end",
        marker: str = "",
        **values: Any,
    ) -> FitResult:
        """Render with ``variable`` cut on token boundaries so the result fits ``budget`` tokens.

        The other ``values`` stay whole; messages are counted with the chat format's
        per-message overhead. See :func:`promptkit.fit_to_budget` for ``cut`` and ``marker``.
        ``result.rendered`` is what :meth:`render` returned and ``result.value`` the cut value.

        >>> t = Template("Summarise:\\n{{ doc }}")
        >>> t.fit(budget=50, variable="doc", doc=long_text, model="gpt-4o").tokens <= 50  # doctest: +SKIP
        True
        """
        return fit_values(
            self.render,
            values,
            budget=budget,
            variable=variable,
            model=model,
            encoding=encoding,
            cut=cut,
            marker=marker,
        )

    def fit_parts(self, fit: Fit | int, /, **values: Any) -> FitReport:
        """Render into ``fit``'s budget by priority (see docs/fitting.md): the :class:`~promptkit.FitReport`,
        whose ``messages`` are the fitted render (a plain template's text as one user message).

        >>> t = Template("{% part 'doc' truncate='end' %}{{ doc }}{% endpart %} Summarise.")
        >>> t.fit_parts(20, doc="word " * 100).tokens <= 20
        True
        """
        from .._fitting import coerce_fit
        from .._tokens import get_tokenizer
        from ._fit import fit_template

        settings = coerce_fit(fit)
        if settings is None:
            raise ConfigurationError("fit_parts needs a Fit or a budget in tokens")
        tokenizer = get_tokenizer(model=settings.model) if settings.model else get_tokenizer()
        return fit_template(self, values, fit=settings, reserve=settings.reserve or 0, tokenizer=tokenizer)[0]

    # -- immutability and identity ---------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        # Attributes are set once, while the object is built; after that it is immutable.
        if hasattr(self, name):
            raise AttributeError(f"{type(self).__name__} is immutable; use partial() or with_limits() for variants")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _key(self) -> tuple[Any, ...]:
        return (
            self.source,
            self.name,
            self.allow_extra,
            freeze(self._defaults),
            _inputs_key(self.inputs),
            self.limits,
            id(self.library) if self.library is not None else None,
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _TemplateBase)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class Template(_TemplateBase):
    """One Jinja2 template string, compiled once and rendered in promptkit's sandbox.

    Values must cover every variable the template uses (a missing one raises
    :class:`~promptkit.UndefinedVariableError` naming it, the template and the line); values the
    template never uses raise :class:`~promptkit.UnexpectedVariableError` unless
    ``allow_extra=True``. ``inputs`` declares types (a pydantic model or ``{"name": type}``):
    values are validated and coerced before rendering. ``limits`` bounds size and work (see
    :class:`TemplateLimits`). Values are data: ``{{ ... }}`` inside a value is printed as text.

    >>> t = Template("Translate to {{ lang }}: {{ text }}")
    >>> sorted(t.variables)
    ['lang', 'text']
    >>> t.render(lang="French", text="cheese")
    'Translate to French: cheese'
    >>> (t + "\\nBe brief.").render(lang="German", text="cheese")
    'Translate to German: cheese\\nBe brief.'
    """

    __slots__ = ()

    def __init__(
        self,
        source: str,
        *,
        name: str | None = None,
        allow_extra: bool = False,
        defaults: Mapping[str, Any] | None = None,
        inputs: InputsSpec | None = None,
        limits: TemplateLimits | None = None,
        library: PromptLibrary | None = None,
        _locate: Locator | None = None,
        _line_offset: int = 0,
    ) -> None:
        if not isinstance(source, str):
            raise ConfigurationError(f"template source must be a str, not {type(source).__name__}")
        self._configure(
            source,
            name=name,
            allow_extra=allow_extra,
            defaults=defaults,
            inputs=inputs,
            limits=limits,
            library=library,
            locate=_locate or plain_locator(name, _line_offset),
        )
        if self._jinja.has_roles:
            raise TemplateSyntaxError(
                "role and messages blocks belong in a ChatTemplate (ChatTemplate.from_source), not a Template",
                template=name,
            )

    # -- variants --------------------------------------------------------------------------------
    def _replace(self, **changes: Any) -> Template:
        args: dict[str, Any] = {
            "name": self.name,
            "allow_extra": self.allow_extra,
            "defaults": self._defaults,
            "inputs": self.inputs,
            "limits": self.limits,
            "library": self.library,
        }
        args.update(changes)
        source = args.pop("source", self.source)
        if "name" not in changes and source == self.source:
            args["_locate"] = self._locate
        return Template(source, **args)

    def partial(self, **values: Any) -> Template:
        """A new template with some variables fixed (the compiled code is shared).

        >>> Template("{{ a }}-{{ b }}").partial(a=1).render(b=2)
        '1-2'
        """
        self._check_extra(values)
        return self._replace(defaults={**self._defaults, **values})

    def __add__(self, other: Template | str) -> Template:
        """Concatenate two templates (or a template and a string) into one."""
        if isinstance(other, str):
            return self._replace(source=self.source + other)
        if not isinstance(other, Template):
            return NotImplemented
        defaults = self._joined_defaults(other)
        if self.inputs is not None and other.inputs is not None:
            if not (isinstance(self.inputs, Mapping) and isinstance(other.inputs, Mapping)):
                raise ConfigurationError("cannot join two templates that both declare inputs with a pydantic model")
            inputs: InputsSpec | None = {**self.inputs, **other.inputs}
        else:
            inputs = self.inputs if self.inputs is not None else other.inputs
        name = "+".join(n for n in (self.name, other.name) if n) or None
        return Template(
            self.source + other.source,
            name=name,
            allow_extra=self.allow_extra or other.allow_extra,
            defaults=defaults,
            inputs=inputs,
            limits=self.limits,
            library=self.library or other.library,
        )

    def __radd__(self, other: str) -> Template:
        if isinstance(other, str):
            return self._replace(source=other + self.source)
        return NotImplemented

    # -- rendering -------------------------------------------------------------------------------
    def render(self, **values: Any) -> str:
        """Render with ``values``; raises a :class:`~promptkit.TemplateError` on any failure."""
        text = render_jinja(self._jinja, self._context(values), self.limits, self._locate)
        if not self._jinja.simple and MARK in text:  # role blocks reached through an include
            raise TemplateSyntaxError("role and messages blocks belong in a ChatTemplate", template=self.name)
        return text

    def preview(self, **values: Any) -> Preview:
        """Render for display: in a notebook the substituted values are highlighted."""
        env = self._env.preview_environment()
        jt = compile_source(env, self.source, self.limits, self._locate)
        text = render_jinja(jt, self._context(values), self.limits, self._locate)
        if MARK in text:
            raise TemplateSyntaxError("role and messages blocks belong in a ChatTemplate", template=self.name)
        return Preview([(None, text, "")])

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        src = self.source if len(self.source) <= 60 else self.source[:57] + "..."
        return f"<Template{label} {src!r} variables={sorted(self.variables)}>"

    def _repr_html_(self) -> str:
        title = f"Template {self.name or ''} · variables: {', '.join(sorted(self.variables)) or 'none'}"
        return document([role_block(None, highlight_source(self.source))], title=title)


def fit_values(
    render: Callable[..., Any],
    values: Mapping[str, Any],
    *,
    budget: int,
    variable: str,
    model: str | Unset,
    encoding: str | Unset,
    cut: Literal["end", "start", "middle"],
    marker: str,
) -> FitResult:
    from .._tokens import fit_to_budget

    if variable not in values:
        raise ConfigurationError(f"fit() needs the value of {variable!r} among the values")
    text = values[variable]
    if not isinstance(text, str):
        raise ConfigurationError(f"fit() can only cut a str value; {variable!r} is {type(text).__name__}")
    rest = {k: v for k, v in values.items() if k != variable}

    def build(value: str) -> Any:
        return render(**rest, **{variable: value})

    return fit_to_budget(build, text, budget=budget, model=model, encoding=encoding, cut=cut, marker=marker)
